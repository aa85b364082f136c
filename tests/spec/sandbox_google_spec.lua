-- The Google Workspace sandbox follows Google, not the connector: the token endpoint verifies the
-- assertion (signature, audience, lifetime, delegated subject and scopes), Directory and Reports only
-- answer an administrator, Reports hide what is still within its application's lag, Drive answers the
-- short file form unless fields= asks, refuses alt=media on Docs and an inherited permission's deletion,
-- page tokens cannot be forged, changes.watch channels notify as Google's do, and errors have Google's body.
local google = require "sandbox.google"
local helpers = require "helpers"

local function jwt(sa, claims, key)
  local b64 = function(t) return crypto.b64url(json.encode(t)) end
  local input = b64 { alg = "RS256", typ = "JWT", kid = sa.key_id } .. "." .. b64(claims)
  return input .. "." .. crypto.b64url(assert(crypto.rs256_sign(key or sa.private_key, input)))
end

describe("google workspace sandbox", function()
  local t, srv
  local function token(claims, key)
    local r = assert(http.request { method = "POST", url = srv.url .. "/token",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion = jwt(t.sa, claims, key) } })
    return r.status, json.decode(r.body)
  end
  local function claims(over)
    local now = math.floor(sched.time())
    local c = { iss = t.sa.email, aud = srv.url .. "/token", iat = now, exp = now + 3600, sub = t.admin.primaryEmail,
                scope = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/drive" }
    for k, v in pairs(over or {}) do c[k] = v end
    return c
  end
  local function get(tok, path)
    local r = assert(http.request { method = "GET", url = srv.url .. path, headers = { Authorization = "Bearer " .. tok } })
    return r.status, json.decode(r.body) or r.body
  end
  setup(function()
    t = google.workspace { seed = 11, users = 12, files = 20, events = 70, days = 3 }
    srv = helpers.serve(t)
  end)
  teardown(function() srv:close() end)

  it("issues a token for a valid assertion and refuses bad ones with Google's OAuth errors", function()
    local st, b = token(claims())
    assert.equal(200, st); assert.matches("^ya29%.", b.access_token); assert.equal("Bearer", b.token_type)
    st, b = token(claims(), crypto.keygen("RSA"))
    assert.equal(400, st); assert.equal("invalid_grant", b.error); assert.equal("Invalid JWT Signature.", b.error_description)
    st, b = token(claims { aud = "https://example.com/token" })
    assert.equal("invalid_grant", b.error); assert.matches("audience", b.error_description)
    st, b = token(claims { exp = math.floor(sched.time()) + 7200 })
    assert.equal("invalid_grant", b.error); assert.matches("short%-lived", b.error_description)
    st, b = token(claims { sub = "nobody@" .. t.domain })
    assert.equal("invalid_grant", b.error)
    st, b = token(claims { scope = "https://www.googleapis.com/auth/admin.directory.group" })
    assert.equal(401, st); assert.equal("unauthorized_client", b.error)
  end)

  it("lets only an administrator read the directory, with the scopes of the token", function()
    local _, b = token(claims())
    local st, body = get(b.access_token, "/admin/directory/v1/users?customer=my_customer&maxResults=5")
    assert.equal(200, st); assert.equal(5, #body.users); assert.is_string(body.nextPageToken)
    st, body = get(b.access_token, "/admin/directory/v1/users?customer=my_customer&pageToken=bm90LWEtdG9rZW4")
    assert.equal(400, st); assert.equal("INVALID_ARGUMENT", body.error.status)
    st, body = get(b.access_token, "/admin/directory/v1/groups?customer=my_customer")
    assert.equal(403, st); assert.equal("insufficientPermissions", body.error.errors[1].reason)
    local _, ub = token(claims { sub = t.state.users[5].primaryEmail })
    st, body = get(ub.access_token, "/admin/directory/v1/users?customer=my_customer")
    assert.equal(403, st); assert.equal("Not Authorized to access this resource/api", body.error.message)
    st = get("ya29.forged", "/admin/directory/v1/users?customer=my_customer")
    assert.equal(401, st)
  end)

  it("serves Drive as the impersonated user: short form unless fields=, Docs exported, not downloaded", function()
    local card = t.state.files_by[t:sensitive_file("card")]
    local owner = t.state.by_id[card.owner]
    local _, b = token(claims { sub = owner.primaryEmail })
    local st, body = get(b.access_token, "/drive/v3/files?q=" .. http.urlencode("'me' in owners"))
    assert.equal(200, st)
    for _, f in ipairs(body.files) do assert.is_nil(f.permissions); assert.is_nil(f.owners) end
    st, body = get(b.access_token, "/drive/v3/files/" .. card.id .. "?fields=" .. http.urlencode("id,permissions(id,type)"))
    assert.equal(200, st); assert.equal("anyone", body.permissions[2].type); assert.is_nil(body.name)
    st, body = get(b.access_token, "/drive/v3/files/" .. card.id .. "?alt=media")
    assert.equal(403, st); assert.equal("fileNotDownloadable", body.error.errors[1].reason)
    st, body = get(b.access_token, "/drive/v3/files/" .. card.id .. "/export?mimeType=text/plain")
    assert.equal(200, st); assert.equal(google.SENSITIVE.card, body)
    -- another user of the domain does not see it
    local _, o = token(claims { sub = t.state.users[11].primaryEmail })
    st = get(o.access_token, "/drive/v3/files/" .. card.id)
    assert.equal(404, st)
  end)

  it("makes changes.watch channels as Google does: https only, unique ids, at most a week, sync first, stop", function()
    local u = t.state.users[4]
    local _, b = token(claims { sub = u.primaryEmail })
    local function watch(page, body)
      local r = assert(http.request { method = "POST", url = srv.url .. "/drive/v3/changes/watch?pageToken=" .. page, body = json.encode(body),
        headers = { Authorization = "Bearer " .. b.access_token, ["Content-Type"] = "application/json" } })
      return r.status, json.decode(r.body)
    end
    local hits = {}
    local hook <close> = assert(server.listen { port = 0 })
    hook:route("POST", "/hook", function(req) hits[#hits + 1] = req.headers; return 200, "" end)
    local _, start = get(b.access_token, "/drive/v3/changes/startPageToken")
    local st, body = watch(start.startPageToken, { id = "ch-1", type = "web_hook", address = "http://example.com/hook" })
    assert.equal(400, st); assert.equal("push.webhookUrlNotHttps", body.error.errors[1].reason)
    st = watch("999999", { id = "ch-1", type = "web_hook", address = hook.url .. "/hook" })
    assert.equal(400, st)
    local far = math.floor(sched.time() * 1000) + 30 * 86400 * 1000
    st, body = watch(start.startPageToken, { id = "ch-1", type = "web_hook", address = hook.url .. "/hook", token = "t0k", expiration = tostring(far) })
    assert.equal(200, st); assert.equal("api#channel", body.kind); assert.is_string(body.resourceId)
    assert.is_true(tonumber(body.expiration) <= math.floor(sched.time() * 1000) + 604800 * 1000 + 1000, "a week at most")
    st, body = watch(start.startPageToken, { id = "ch-1", type = "web_hook", address = hook.url .. "/hook" })
    assert.equal(400, st); assert.equal("channelIdNotUnique", body.error.errors[1].reason)
    t:flush()
    assert.equal(1, #hits)
    assert.equal("sync", hits[1]["x-goog-resource-state"]); assert.equal("1", hits[1]["x-goog-message-number"])
    assert.equal("t0k", hits[1]["x-goog-channel-token"]); assert.equal("ch-1", hits[1]["x-goog-channel-id"])
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", hits[1]["x-goog-channel-expiration"])
    -- a change this user can see: "change"; one they cannot: nothing
    local mine, other
    for _, f in ipairs(t.state.files) do
      if f.owner == u.id then mine = mine or f elseif f.owner ~= u.id and #f.perms == 0 then other = other or f end
    end
    t:add_permission(mine, { type = "user", role = "reader", emailAddress = "x@outside.example.net" })
    t:add_permission(other, { type = "user", role = "reader", emailAddress = "y@outside.example.net" })
    t:flush()
    assert.equal(2, #hits)
    assert.equal("change", hits[2]["x-goog-resource-state"]); assert.equal("2", hits[2]["x-goog-message-number"])
    local r = assert(http.request { method = "POST", url = srv.url .. "/drive/v3/channels/stop", body = json.encode { id = "ch-1", resourceId = "nope" },
      headers = { Authorization = "Bearer " .. b.access_token, ["Content-Type"] = "application/json" } })
    assert.equal(404, r.status)
    r = assert(http.request { method = "POST", url = srv.url .. "/drive/v3/channels/stop", body = json.encode { id = "ch-1", resourceId = t.state.channels["ch-1"].resourceId },
      headers = { Authorization = "Bearer " .. b.access_token, ["Content-Type"] = "application/json" } })
    assert.equal(204, r.status)
    t:add_permission(mine, { type = "user", role = "reader", emailAddress = "z@outside.example.net" })
    t:flush()
    assert.equal(2, #hits)                                  -- a stopped channel says nothing more
  end)

  it("runs an admin's OAuth consent: loopback redirect only, PKCE checked, a code used once, offline refresh", function()
    t:register_client { client_id = "9-desk.apps.googleusercontent.com", client_secret = "GOCSPX-desk" }
    local verifier = crypto.b64url(crypto.random(32))
    local cb <close> = assert(server.listen { port = 0 })        -- cachost's loopback listener
    local back
    cb:route("GET", "/callback", function(req) back = req.query; return 200, "ok" end)
    local redirect = cb.url .. "/callback"
    -- the browser: the consent page, then the redirect -> (status of the consent page, the redirect's query)
    local function authorize(over)
      local q = { client_id = "9-desk.apps.googleusercontent.com", redirect_uri = redirect, response_type = "code",
                  scope = "https://www.googleapis.com/auth/admin.directory.user.readonly", state = "st8", access_type = "offline",
                  code_challenge = crypto.b64url(crypto.sha256(verifier)), code_challenge_method = "S256" }
      for k, v in pairs(over or {}) do q[k] = v end
      back = nil
      local r = assert(http.request { url = srv.url .. "/o/oauth2/v2/auth?" .. http.form(q) })
      return r.status, back
    end
    local function exchange(f)
      local r = assert(http.request { method = "POST", url = srv.url .. "/token", headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = http.form(f) })
      return r.status, json.decode(r.body)
    end
    assert.equal(400, (authorize { redirect_uri = "https://evil.example.com/callback" }))
    assert.equal(401, (authorize { client_id = "unknown.apps.googleusercontent.com" }))
    local st0, q = authorize()
    assert.equal(200, st0); assert.equal("st8", q.state); assert.is_string(q.code)
    local base = { grant_type = "authorization_code", code = q.code, client_id = "9-desk.apps.googleusercontent.com",
                   client_secret = "GOCSPX-desk", redirect_uri = redirect }
    local f = {} for k, v in pairs(base) do f[k] = v end
    f.code_verifier = crypto.b64url(crypto.random(32))
    local st, b = exchange(f)
    assert.equal(400, st); assert.equal("invalid_grant", b.error); assert.equal("Invalid code verifier.", b.error_description)
    base.code = select(2, authorize()).code
    base.code_verifier = verifier
    st, b = exchange(base)
    assert.equal(200, st); assert.matches("^ya29%.", b.access_token); assert.is_string(b.refresh_token)
    local st2, users = get(b.access_token, "/admin/directory/v1/users?customer=my_customer&maxResults=2")
    assert.equal(200, st2); assert.equal(2, #users.users)                  -- as the admin who consented
    st = exchange(base)
    assert.equal(400, st)                                                  -- a code is good once
    st, b = exchange { grant_type = "refresh_token", refresh_token = b.refresh_token, client_id = base.client_id, client_secret = base.client_secret }
    assert.equal(200, st); assert.matches("^ya29%.", b.access_token); assert.is_nil(b.refresh_token)
  end)

  it("serves shared drives as Google does: admins list them all, members read their items with supportsAllDrives", function()
    local fin = t.state.drives[1]
    local organizer = fin.members[1].emailAddress
    local _, admin = token(claims())
    local st, body = get(admin.access_token, "/drive/v3/drives?useDomainAdminAccess=true")
    assert.equal(200, st); assert.equal(#t.state.drives, #body.drives); assert.equal("drive#driveList", body.kind)
    local _, user = token(claims { sub = t.state.users[10].primaryEmail })
    st, body = get(user.access_token, "/drive/v3/drives?useDomainAdminAccess=true")
    assert.equal(403, st)
    st, body = get(user.access_token, "/drive/v3/drives")
    assert.equal(200, st); assert.equal(0, #body.drives)                   -- a member of none
    local _, m = token(claims { sub = organizer })
    local base = "/drive/v3/files?corpora=drive&driveId=" .. fin.id
    st = get(m.access_token, base)
    assert.equal(400, st)                                                   -- includeItemsFromAllDrives is required
    st, body = get(m.access_token, base .. "&includeItemsFromAllDrives=true&supportsAllDrives=true&fields=" .. http.urlencode("files(id,owners,driveId,permissions)"))
    assert.equal(200, st); assert.equal(3, #body.files)
    for _, f in ipairs(body.files) do assert.equal(fin.id, f.driveId); assert.is_nil(f.owners); assert.is_nil(f.permissions) end
    st = get(user.access_token, base .. "&includeItemsFromAllDrives=true&supportsAllDrives=true")
    assert.equal(404, st)                                                   -- not a member
    local id = body.files[1].id
    assert.equal(404, (get(m.access_token, "/drive/v3/files/" .. id)))     -- without supportsAllDrives
    st, body = get(m.access_token, "/drive/v3/files/" .. id .. "/permissions?supportsAllDrives=true")
    assert.equal(200, st); assert.equal(3, #body.permissions)
    assert.equal("member", body.permissions[1].permissionDetails[1].permissionType)
    st, body = get(admin.access_token, "/drive/v3/files/" .. fin.id .. "/permissions?supportsAllDrives=true&useDomainAdminAccess=true")
    assert.equal(200, st); assert.equal("organizer", body.permissions[1].role)
  end)

  it("shows Reports activities only after their application's lag", function()
    local _, b = token(claims { scope = "https://www.googleapis.com/auth/admin.reports.audit.readonly" })
    local path = "/admin/reports/v1/activity/users/all/applications/login?startTime=" .. http.urlencode(os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(sched.time()) - 3600))
    local _, body = get(b.access_token, path)
    local before = #(body.items or {})
    t:add_activity("login", t.state.users[3], { name = "login_failure" })
    _, body = get(b.access_token, path)
    assert.equal(before, #(body.items or {}))
    t:advance(google.LAG.login + 1)
    _, body = get(b.access_token, path)
    assert.equal(before + 1, #body.items)
    assert.equal("login_failure", body.items[1].events[1].name)
  end)
end)
