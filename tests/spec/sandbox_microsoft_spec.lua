-- sandbox_microsoft_spec.lua — the Microsoft sandbox tenant (identity platform, Graph, Office 365
-- Management Activity API, Azure Resource Manager) exercised over real HTTP on a port-0 server.
local T = require "sandbox.tenant"
local ms = require "sandbox.microsoft"
local J = T.host("json")

local NOW = 1735689600   -- 2025-01-01T00:00:00Z
local SECRET = "sbx~client.secret"

local function new_tenant(extra)
  local o = { seed = 11, users = 50, groups = 8, signins = 600, audits = 300, mgmt_records_per_day = 400, days = 7,
              files_per_user = 3, subscriptions = 2, client_secret = SECRET, now = NOW, frozen = true }
  for k, v in pairs(extra or {}) do o[k] = v end
  return ms.new(o)
end

local function start(t)
  local srv = assert(server.listen{ port = 0 })
  t:mount(srv)
  return srv
end

local function form(t)
  local l = {}
  for k, v in pairs(t) do l[#l + 1] = T.urlencode(k) .. "=" .. T.urlencode(v) end
  table.sort(l)
  return table.concat(l, "&")
end

local function token(srv, t, resource, extra)
  local f = { client_id = t.client_id, client_secret = SECRET, grant_type = "client_credentials",
              scope = ms.RESOURCES[resource] .. "/.default" }
  for k, v in pairs(extra or {}) do f[k] = v end
  local res = assert(http.request{ method = "POST", url = srv.url .. "/" .. t.tenant_id .. "/oauth2/v2.0/token",
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }, body = form(f) })
  return res, J.decode(res.body)
end

local function bearer(srv, t, resource)
  local res, b = token(srv, t, resource)
  assert(res.status == 200, res.body)
  return b.access_token
end

local function call(srv, tok, method, path, body, hdr)
  local h = { Authorization = tok and ("Bearer " .. tok) or nil, Accept = "application/json" }
  if body then h["Content-Type"] = "application/json" end
  for k, v in pairs(hdr or {}) do h[k] = v end
  local url = path:match("^http") and path or (srv.url .. path)
  local res = assert(http.request{ method = method, url = url, headers = h, body = body and (type(body) == "string" and body or J.encode(body)) or nil })
  local ok, dec = pcall(J.decode, res.body or "")
  res.json = ok and dec or nil
  return res
end

describe("sandbox microsoft: identity platform", function()
  local t, srv
  before_each(function() t = new_tenant(); srv = start(t) end)
  after_each(function() srv:close() end)

  it("issues client-credentials tokens per resource and refuses bad secrets and scopes with AADSTS bodies", function()
    local res, b = token(srv, t, "graph")
    assert.are.equal(200, res.status)
    assert.are.equal("Bearer", b.token_type)
    assert.are.equal(3599, b.expires_in)
    assert.is_string(b.access_token)
    assert.is_nil(b.refresh_token)
    res, b = token(srv, t, "graph", { client_secret = "wrong" })
    assert.are.equal(401, res.status)
    assert.are.equal("invalid_client", b.error)
    assert.matches("^AADSTS7000215:", b.error_description)
    assert.are.equal(7000215, b.error_codes[1])
    assert.is_string(b.trace_id); assert.is_string(b.correlation_id)
    res, b = token(srv, t, "graph", { scope = "User.Read.All" })
    assert.are.equal(400, res.status)
    assert.are.equal("invalid_scope", b.error)
    res = assert(http.request{ method = "POST", url = srv.url .. "/nosuch.example/oauth2/v2.0/token",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = form{ client_id = t.client_id, client_secret = SECRET, grant_type = "client_credentials", scope = "https://graph.microsoft.com/.default" } })
    assert.are.equal(400, res.status)
    assert.matches("AADSTS90002", res.body)
  end)

  it("a token for one resource is refused by the others with each API's own error", function()
    local g, m, a = bearer(srv, t, "graph"), bearer(srv, t, "mgmt"), bearer(srv, t, "arm")
    local r = call(srv, m, "GET", "/v1.0/users")
    assert.are.equal(401, r.status)
    assert.are.equal("InvalidAuthenticationToken", r.json.error.code)
    assert.is_string(r.json.error.innerError["request-id"])
    r = call(srv, g, "GET", "/api/v1.0/" .. t.tenant_id .. "/activity/feed/subscriptions/list")
    assert.are.equal(401, r.status)
    assert.are.equal("AF10001", r.json.error.code)
    r = call(srv, g, "GET", "/subscriptions?api-version=2020-01-01")
    assert.are.equal(401, r.status)
    assert.are.equal("InvalidAuthenticationToken", r.json.error.code)
    assert.matches("wrong audience", r.json.error.message)
    assert.are.equal(200, call(srv, g, "GET", "/v1.0/users").status)
    assert.are.equal(200, call(srv, m, "GET", "/api/v1.0/" .. t.tenant_id .. "/activity/feed/subscriptions/list").status)
    assert.are.equal(200, call(srv, a, "GET", "/subscriptions?api-version=2020-01-01").status)
    r = call(srv, nil, "GET", "/v1.0/users")
    assert.are.equal(401, r.status)
    assert.are.equal("Access token is empty.", r.json.error.message)
    t:expire_tokens()
    r = call(srv, g, "GET", "/v1.0/users")
    assert.are.equal(401, r.status)
    assert.matches("expired", r.json.error.message)
  end)

  it("authorization code with PKCE, refresh token, and revocation by revokeSignInSessions", function()
    local verifier = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG"
    local challenge = crypto.b64url(crypto.sha256(verifier))
    srv:route("GET", "/cb", function(req) return 200, J.encode(req.query) end)
    local redirect = srv.url .. "/cb"
    local function authorize(state)
      local r = assert(http.request{ url = srv.url .. "/" .. t.tenant_id .. "/oauth2/v2.0/authorize?" .. form{
        client_id = t.client_id, response_type = "code", redirect_uri = redirect, scope = "offline_access openid User.Read.All",
        state = state, code_challenge = challenge, code_challenge_method = "S256" } })
      assert.are.equal(200, r.status)          -- followed the 302 to our callback
      local q = J.decode(r.body)
      assert.are.equal(state, q.state)
      return q.code
    end
    local code = authorize("st4te")
    local tokurl = srv.url .. "/" .. t.tenant_id .. "/oauth2/v2.0/token"
    local hdr = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    local bad = assert(http.request{ method = "POST", url = tokurl, headers = hdr, body = form{ client_id = t.client_id,
      client_secret = SECRET, grant_type = "authorization_code", code = code, redirect_uri = redirect, code_verifier = "nope" } })
    assert.are.equal(400, bad.status)
    -- codes are single use
    local again = assert(http.request{ method = "POST", url = tokurl, headers = hdr, body = form{ client_id = t.client_id,
      client_secret = SECRET, grant_type = "authorization_code", code = code, redirect_uri = redirect, code_verifier = verifier } })
    assert.are.equal(400, again.status)
    assert.matches("AADSTS70008", again.body)
    code = authorize("s2")
    local ok = assert(http.request{ method = "POST", url = tokurl, headers = hdr, body = form{ client_id = t.client_id,
      client_secret = SECRET, grant_type = "authorization_code", code = code, redirect_uri = redirect, code_verifier = verifier } })
    assert.are.equal(200, ok.status)
    local b = J.decode(ok.body)
    assert.is_string(b.refresh_token); assert.is_string(b.id_token); assert.is_string(b.access_token)
    assert.are.equal(200, call(srv, b.access_token, "GET", "/v1.0/users").status)
    local rf = assert(http.request{ method = "POST", url = tokurl, headers = hdr, body = form{ client_id = t.client_id,
      client_secret = SECRET, grant_type = "refresh_token", refresh_token = b.refresh_token, scope = "https://manage.office.com/.default" } })
    assert.are.equal(200, rf.status)
    local m = J.decode(rf.body).access_token
    assert.are.equal(200, call(srv, m, "GET", "/api/v1.0/" .. t.tenant_id .. "/activity/feed/subscriptions/list").status)
    -- revoking the admin's sessions kills the refresh token
    t:advance(5)
    local g = bearer(srv, t, "graph")
    assert.are.equal(200, call(srv, g, "POST", "/v1.0/users/" .. t.admin.id .. "/revokeSignInSessions").status)
    rf = assert(http.request{ method = "POST", url = tokurl, headers = hdr, body = form{ client_id = t.client_id,
      client_secret = SECRET, grant_type = "refresh_token", refresh_token = b.refresh_token } })
    assert.are.equal(400, rf.status)
    assert.matches("AADSTS50173", rf.body)
  end)
end)

describe("sandbox microsoft: graph directory", function()
  local t, srv, g
  before_each(function() t = new_tenant(); srv = start(t); g = bearer(srv, t, "graph") end)
  after_each(function() srv:close() end)

  it("pages users to the end exactly once with $top and @odata.nextLink, default properties only", function()
    local seen, n, pages = {}, 0, 0
    local url = "/v1.0/users?$top=7"
    while url do
      local r = call(srv, g, "GET", url)
      assert.are.equal(200, r.status)
      assert.matches("%$metadata#users", r.json["@odata.context"])
      for _, u in ipairs(r.json.value) do
        assert.is_nil(seen[u.id]); seen[u.id] = true; n = n + 1
        assert.is_string(u.userPrincipalName)
        assert.is_nil(u.accountEnabled)           -- not a default property
        assert.is_table(u.businessPhones)
      end
      pages = pages + 1
      url = r.json["@odata.nextLink"]
      if url then assert.matches("%$skiptoken=", url) end
    end
    assert.are.equal(t:count("users"), n)
    assert.are.equal(8, pages)
  end)

  it("filters users on accountEnabled and userType, $select, and rejects unknown properties", function()
    local r = call(srv, g, "GET", "/v1.0/users?$filter=" .. T.urlencode("accountEnabled eq false") .. "&$select=id,accountEnabled,userType")
    assert.are.equal(200, r.status)
    assert.are.equal(t:count("users_disabled"), #r.json.value)
    for _, u in ipairs(r.json.value) do assert.is_false(u.accountEnabled); assert.is_nil(u.displayName) end
    r = call(srv, g, "GET", "/v1.0/users?$filter=" .. T.urlencode("userType eq 'Guest'") .. "&$select=id,userType,externalUserState")
    assert.are.equal(t:count("guests"), #r.json.value)
    assert.is_true(#r.json.value > 0)
    r = call(srv, g, "GET", "/v1.0/users?$select=nope")
    assert.are.equal(400, r.status)
    assert.are.equal("Request_BadRequest", r.json.error.code)
    r = call(srv, g, "GET", "/v1.0/users/" .. t.admin.upn .. "?$select=signInActivity,accountEnabled")
    assert.are.equal(200, r.status)
    assert.is_string(r.json.signInActivity.lastSignInDateTime)
  end)

  it("groups with Unified filter and paged members", function()
    local r = call(srv, g, "GET", "/v1.0/groups?$filter=" .. T.urlencode("groupTypes/any(c:c eq 'Unified')"))
    assert.are.equal(200, r.status)
    local unified = 0
    for _, gr in ipairs(t.state.groups) do if #gr.groupTypes > 0 then unified = unified + 1 end end
    assert.are.equal(unified, #r.json.value)
    local gr = t.state.groups[1]
    local n, url = 0, "/v1.0/groups/" .. gr.id .. "/members?$top=5"
    while url do
      r = call(srv, g, "GET", url)
      for _, m in ipairs(r.json.value) do assert.are.equal("#microsoft.graph.user", m["@odata.type"]); n = n + 1 end
      url = r.json["@odata.nextLink"]
    end
    assert.are.equal(t:count("members", gr.id), n)
  end)
end)
