-- The GCP sandbox follows Google, not the connector: the service account's own assertion (no `sub`: no
-- domain-wide delegation in Cloud), setIamPolicy refused with 409 ABORTED on a stale etag, entries:list
-- answering an empty page with a next token, page tokens bound to their query, user-managed keys only
-- disabled, read-only tokens refused writes, the caller's IAM roles (inherited down the hierarchy)
-- deciding what it may read and do, and Google's error bodies.
local google = require "sandbox.google"
local helpers = require "helpers"

local SCOPE = "https://www.googleapis.com/auth/"
local function jwt(sa, claims)
  local b64 = function(t) return crypto.b64url(json.encode(t)) end
  local input = b64 { alg = "RS256", typ = "JWT", kid = sa.key_id } .. "." .. b64(claims)
  return input .. "." .. crypto.b64url(assert(crypto.rs256_sign(sa.private_key, input)))
end

describe("gcp sandbox", function()
  local t, srv
  -- the tenant's service account's token (another tenant's: tt at url)
  local function token(over, tt, url)
    tt, url = tt or t, url or srv.url
    local now = math.floor(sched.time())
    local c = { iss = tt.sa.email, aud = url .. "/token", iat = now, exp = now + 3600, scope = SCOPE .. "cloud-platform" }
    for k, v in pairs(over or {}) do c[k] = v end
    local r = assert(http.request { method = "POST", url = url .. "/token",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion = jwt(tt.sa, c) } })
    return r.status, json.decode(r.body)
  end
  local function call(tok, method, path, body)
    local r = assert(http.request { method = method, url = srv.url .. path, body = body and json.encode(body),
      headers = { Authorization = "Bearer " .. tok, ["Content-Type"] = "application/json" } })
    return r.status, json.decode(r.body) or r.body
  end
  setup(function()
    t = google.gcp { seed = 3, projects = 3, entries = 40 }
    srv = helpers.serve(t)
  end)
  teardown(function() srv:close() end)

  it("issues the service account's token, and refuses an assertion that asks to act as a user", function()
    local st, b = token()
    assert.equal(200, st); assert.matches("^ya29%.", b.access_token)
    st, b = token { sub = "admin@" .. t.domain }
    assert.equal(401, st); assert.equal("unauthorized_client", b.error)
    st, b = call("ya29.forged", "POST", "/v3/" .. t.org.name .. ":getIamPolicy", {})
    assert.equal(401, st); assert.equal("UNAUTHENTICATED", b.error.status)
  end)

  it("refuses setIamPolicy with a stale etag (409 ABORTED) and a write with a read-only token", function()
    local _, b = token()
    local p = t.state.projects[1]
    local st, pol = call(b.access_token, "POST", "/v3/projects/" .. p.projectId .. ":getIamPolicy", { options = { requestedPolicyVersion = 3 } })
    assert.equal(200, st); assert.is_string(pol.etag)
    local public = false
    for _, x in ipairs(pol.bindings) do for _, m in ipairs(x.members) do public = public or m == "allUsers" end end
    assert.is_true(public)
    local stale = json.decode(json.encode(pol))
    st = call(b.access_token, "POST", "/v3/" .. p.name .. ":setIamPolicy", { policy = pol })
    assert.equal(200, st)
    local body
    st, body = call(b.access_token, "POST", "/v3/" .. p.name .. ":setIamPolicy", { policy = stale })
    assert.equal(409, st); assert.equal("ABORTED", body.error.status); assert.equal(409, body.error.code)
    local _, ro = token { scope = SCOPE .. "cloud-platform.read-only" }
    st, body = call(ro.access_token, "POST", "/v3/" .. p.name .. ":setIamPolicy", { policy = pol })
    assert.equal(403, st); assert.equal("insufficientPermissions", body.error.errors[1].reason)
    local sa = p.sas[1]
    st = call(b.access_token, "POST", "/v1/" .. sa.keys[1].name .. ":disable")
    assert.equal(400, st)                                   -- a system-managed key is Google's to rotate
    st = call(b.access_token, "POST", "/v1/" .. sa.keys[2].name .. ":disable")
    assert.equal(200, st); assert.is_true(sa.keys[2].disabled)
  end)

  it("answers entries:list with an empty page and a next token first, and binds the token to its query", function()
    local _, b = token()
    local q = { resourceNames = { "projects/" .. t.state.projects[1].projectId }, orderBy = "timestamp asc", pageSize = 5,
                filter = 'logName:"cloudaudit.googleapis.com" AND timestamp>="2000-01-01T00:00:00Z"' }
    local st, page = call(b.access_token, "POST", "/v2/entries:list", q)
    assert.equal(200, st); assert.is_nil(page.entries); assert.is_string(page.nextPageToken)
    q.pageToken = page.nextPageToken
    st, page = call(b.access_token, "POST", "/v2/entries:list", q)
    assert.equal(200, st); assert.equal(5, #page.entries)
    assert.is_true(page.entries[1].timestamp <= page.entries[5].timestamp)
    q.filter = 'timestamp>="2000-01-01T00:00:00Z"'
    st, page = call(b.access_token, "POST", "/v2/entries:list", q)
    assert.equal(400, st); assert.equal("INVALID_ARGUMENT", page.error.status)
    q.pageToken, q.filter = nil, "severity>=WARNING OR foo"
    st = call(b.access_token, "POST", "/v2/entries:list", q)
    assert.equal(400, st)
  end)

  it("decides by the caller's IAM roles, inherited down the hierarchy, and answers Google's 403 bodies", function()
    -- a service account with Logs Viewer on the organization and Security Reviewer on one folder only
    local narrow = google.gcp { seed = 3, projects = 3, entries = 10, roles = { "roles/logging.viewer" } }
    local nsrv <close> = helpers.serve(narrow)
    local inside = narrow.state.projects[2]
    local folder = narrow.state.by_name[inside.parent]
    narrow:bind(folder, "roles/iam.securityReviewer", "serviceAccount:" .. narrow.sa.email)
    local _, b = token(nil, narrow, nsrv.url)
    local function ncall(method, path, body)
      local r = assert(http.request { method = method, url = nsrv.url .. path, body = body and json.encode(body),
        headers = { Authorization = "Bearer " .. b.access_token, ["Content-Type"] = "application/json" } })
      return r.status, json.decode(r.body)
    end
    local st, body = ncall("POST", "/v3/" .. narrow.org.name .. ":getIamPolicy", {})
    assert.equal(403, st)
    assert.same({ error = { code = 403, message = "The caller does not have permission", status = "PERMISSION_DENIED" } }, body)
    assert.equal(200, (ncall("POST", "/v3/" .. folder.name .. ":getIamPolicy", {})))
    assert.equal(200, (ncall("POST", "/v3/" .. inside.name .. ":getIamPolicy", {})))        -- inherited from its folder
    assert.equal(403, (ncall("POST", "/v3/" .. narrow.state.projects[1].name .. ":getIamPolicy", {})))   -- right under the organization
    st, body = ncall("GET", "/v1/projects/" .. narrow.state.projects[1].projectId .. "/serviceAccounts")
    assert.equal(403, st)
    assert.equal("Permission 'iam.serviceAccounts.list' denied on resource (or it may not exist).", body.error.message)
    assert.equal("IAM_PERMISSION_DENIED", body.error.details[1].reason)
    assert.equal("iam.serviceAccounts.list", body.error.details[1].metadata.permission)
    assert.equal(200, (ncall("GET", "/v1/projects/" .. inside.projectId .. "/serviceAccounts")))
    st, body = ncall("GET", "/v3/folders?parent=" .. narrow.org.name)
    assert.equal(403, st)
    assert.matches("^Permission 'resourcemanager.folders.list' denied on resource '//cloudresourcemanager.googleapis.com/organizations/%d+'",
      body.error.message)
    assert.equal(200, (ncall("POST", "/v2/entries:list", { resourceNames = { narrow.org.name } })))    -- Logs Viewer
    assert.equal(403, (ncall("POST", "/v1/" .. inside.sas[1].keys[2].name .. ":disable")))          -- a reviewer does not disable keys
    assert.is_false(inside.sas[1].keys[2].disabled)
  end)

  it("sends Google's quota error", function()
    local _, b = token()
    t:fault { path = "entries:list", kind = "429" }
    local st, body = call(b.access_token, "POST", "/v2/entries:list", { resourceNames = { t.org.name } })
    assert.equal(429, st); assert.equal("rateLimitExceeded", body.error.errors[1].reason)
  end)
end)
