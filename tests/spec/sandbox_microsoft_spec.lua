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

local start = require("helpers").serve

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

  it("a directory role held through a role-assignable group lists the group among the role's members", function()
    local grp
    for _, x in ipairs(t.state.groups) do if x.isAssignableToRole then grp = x end end
    assert(grp and grp.securityEnabled and #grp.members > 0)
    local roles = call(srv, g, "GET", "/v1.0/directoryRoles").json.value
    local held
    for _, role in ipairs(roles) do
      for _, m in ipairs(call(srv, g, "GET", "/v1.0/directoryRoles/" .. role.id .. "/members").json.value) do
        if m.id == grp.id then held = role; assert.are.equal("#microsoft.graph.group", m["@odata.type"]) end
      end
    end
    assert.are.equal("Exchange Administrator", held.displayName)
    local ra = call(srv, g, "GET", "/v1.0/roleManagement/directory/roleAssignments?$filter=" .. T.urlencode("principalId eq '" .. grp.id .. "'"))
    assert.are.equal(1, #ra.json.value)
  end)

  it("application permissions: appRoleAssignments of a client, appRoleAssignedTo of Graph, revocable", function()
    local graph_sp = call(srv, g, "GET", "/v1.0/servicePrincipals/" .. t.sp_graph.id).json
    local role_name = {}
    for _, role in ipairs(graph_sp.appRoles) do role_name[role.id] = role.value end
    assert.are.equal("Mail.Read", role_name["810c84a8-4a9e-49e6-bf7d-12d183f40d01"])
    local total = 0
    for _, sp in ipairs(t.state.sps) do
      local r = call(srv, g, "GET", "/v1.0/servicePrincipals/" .. sp.id .. "/appRoleAssignments")
      assert.are.equal(200, r.status)
      for _, a in ipairs(r.json.value) do
        assert.are.equal(sp.id, a.principalId)
        assert.are.equal("ServicePrincipal", a.principalType)
        assert.is_string(role_name[a.appRoleId])
        total = total + 1
      end
    end
    assert.is_true(total > 2)
    assert.are.equal(t:count("app_role_assignments"), total)
    local to = call(srv, g, "GET", "/v1.0/servicePrincipals/" .. t.sp_graph.id .. "/appRoleAssignedTo?$top=999").json.value
    assert.are.equal(total, #to)
    assert.are.equal(404, call(srv, g, "DELETE", "/v1.0/servicePrincipals/" .. t.sp_mgmt.id .. "/appRoleAssignedTo/" .. to[1].id).status)
    assert.are.equal(204, call(srv, g, "DELETE", "/v1.0/servicePrincipals/" .. t.sp_graph.id .. "/appRoleAssignedTo/" .. to[1].id).status)
    assert.are.equal(total - 1, t:count("app_role_assignments"))
  end)
end)

describe("sandbox microsoft: audit logs and sign-ins", function()
  local t, srv, g
  before_each(function() t = new_tenant(); srv = start(t); g = bearer(srv, t, "graph") end)
  after_each(function() srv:close() end)

  it("sign-ins: newest first, $filter createdDateTime ge, paging to the end exactly once, full shape", function()
    local since = T.iso_s(NOW - 3 * 86400)
    local url = "/v1.0/auditLogs/signIns?$top=50&$filter=" .. T.urlencode("createdDateTime ge " .. since)
    local seen, n, prev, pages = {}, 0, nil, 0
    while url do
      local r = call(srv, g, "GET", url)
      assert.are.equal(200, r.status)
      for _, s in ipairs(r.json.value) do
        assert.is_nil(seen[s.id]); seen[s.id] = true; n = n + 1
        assert.is_true(s.createdDateTime >= since)
        if prev then assert.is_true(s.createdDateTime <= prev) end
        prev = s.createdDateTime
        assert.is_number(s.status.errorCode)
        assert.is_string(s.location.countryOrRegion)
        assert.is_number(s.location.geoCoordinates.latitude)
        assert.is_string(s.clientAppUsed)
      end
      pages = pages + 1
      url = r.json["@odata.nextLink"]
    end
    local expect = 0
    for _ = 1, 1 do
      for i = 0, t.nsignins - 1 do if T.parse_iso(t:gen_signin(i).createdDateTime) >= (NOW - 3 * 86400) * 1000 then expect = expect + 1 end end
    end
    assert.are.equal(expect, n)
    assert.is_true(pages > 1)
    -- failures only
    local r = call(srv, g, "GET", "/v1.0/auditLogs/signIns?$filter=" .. T.urlencode("status/errorCode eq 50126"))
    for _, s in ipairs(r.json.value) do assert.are.equal(50126, s.status.errorCode); assert.is_string(s.status.failureReason) end
  end)

  it("beta sign-ins: interactive by default, non-interactive only when the filter asks by signInEventTypes", function()
    local function all(url)
      local out = {}
      while url do
        local r = call(srv, g, "GET", url)
        assert.are.equal(200, r.status, r.body)
        for _, s in ipairs(r.json.value) do out[#out + 1] = s end
        url = r.json["@odata.nextLink"]
      end
      return out
    end
    local plain = all("/beta/auditLogs/signIns?$top=500")
    assert.are.equal(t:count("signins"), #plain)
    for _, s in ipairs(plain) do assert.are.same({ "interactiveUser" }, s.signInEventTypes); assert.is_true(s.isInteractive) end
    local ni = all("/beta/auditLogs/signIns?$top=500&$filter=" .. T.urlencode("createdDateTime ge " .. T.iso_s(NOW - 30 * 86400)
      .. " and signInEventTypes/any(t: t eq 'nonInteractiveUser')"))
    assert.is_true(t:count("noninteractive_signins") > 0)
    assert.are.equal(t:count("noninteractive_signins"), #ni)
    for _, s in ipairs(ni) do assert.are.same({ "nonInteractiveUser" }, s.signInEventTypes); assert.is_false(s.isInteractive) end
    -- v1.0 has no non-interactive sign-ins; without Entra ID P1/P2 both logs are refused
    assert.are.equal(t:count("signins"), #all("/v1.0/auditLogs/signIns?$top=500"))
    t.entra_premium = false
    local r = call(srv, g, "GET", "/beta/auditLogs/signIns?$filter=" .. T.urlencode("signInEventTypes/any(t: t eq 'nonInteractiveUser')"))
    assert.are.equal(403, r.status)
    assert.are.equal("Authentication_RequestFromNonPremiumTenantOrB2CTenant", r.json.error.code)
  end)

  it("add_signin appears first with its location, and governance writes directory audits", function()
    t:add_signin{ user = t.admin.upn, errorCode = 50126, city = "Lagos", countryOrRegion = "NG", latitude = 6.52, longitude = 3.37,
                  ip = "203.0.113.9", clientAppUsed = "IMAP4" }
    local r = call(srv, g, "GET", "/v1.0/auditLogs/signIns?$top=1")
    local s = r.json.value[1]
    assert.are.equal("Lagos", s.location.city)
    assert.are.equal("NG", s.location.countryOrRegion)
    assert.are.equal(6.52, s.location.geoCoordinates.latitude)
    assert.are.equal("IMAP4", s.clientAppUsed)
    assert.are.equal(50126, s.status.errorCode)
    local before = t:count("audits")
    local u = t.gen_users[5]
    assert.are.equal(204, call(srv, g, "PATCH", "/v1.0/users/" .. u.id, { accountEnabled = false }).status)
    assert.are.equal(before + 1, t:count("audits"))
    r = call(srv, g, "GET", "/v1.0/auditLogs/directoryAudits?$top=5&$filter=" .. T.urlencode("activityDateTime ge " .. T.iso_s(NOW - 60)))
    assert.are.equal(200, r.status)
    assert.are.equal(1, #r.json.value)
    local a = r.json.value[1]
    assert.are.equal("Disable account", a.activityDisplayName)
    assert.are.equal(u.id, a.targetResources[1].id)
    assert.are.equal("AccountEnabled", a.targetResources[1].modifiedProperties[1].displayName)
    assert.are.equal(t.client_id, a.initiatedBy.app.appId)
  end)
end)

describe("sandbox microsoft: office 365 management activity api", function()
  local t, srv, m, root
  before_each(function()
    t = new_tenant(); srv = start(t); m = bearer(srv, t, "mgmt")
    root = "/api/v1.0/" .. t.tenant_id .. "/activity/feed"
  end)
  after_each(function() srv:close() end)

  local function collect(ct, a, b)
    local blobs, url = {}, root .. "/subscriptions/content?" .. form{ contentType = ct, startTime = T.iso_s(a // 1000):sub(1, 19), endTime = T.iso_s(b // 1000):sub(1, 19) }
    while url do
      local r = call(srv, m, "GET", url)
      assert.are.equal(200, r.status, r.body)
      for _, c in ipairs(r.json) do blobs[#blobs + 1] = c end
      url = r.headers["nextpageuri"]
    end
    return blobs
  end

  it("requires a started subscription, lists content in 24 h windows with NextPageUri, fetches blobs", function()
    local r = call(srv, m, "GET", root .. "/subscriptions/content?contentType=Audit.SharePoint")
    assert.are.equal(400, r.status)
    assert.are.equal("AF20022", r.json.error.code)
    r = call(srv, m, "POST", root .. "/subscriptions/start?contentType=Audit.SharePoint")
    assert.are.equal(200, r.status)
    assert.are.equal("enabled", r.json.status)
    r = call(srv, m, "POST", root .. "/subscriptions/start?contentType=Audit.Bogus")
    assert.are.equal("AF20020", r.json.error.code)
    r = call(srv, m, "GET", root .. "/subscriptions/list")
    assert.are.equal(1, #r.json)
    assert.are.equal("Audit.SharePoint", r.json[1].contentType)
    -- window rules
    r = call(srv, m, "GET", root .. "/subscriptions/content?" .. form{ contentType = "Audit.SharePoint", startTime = "2024-12-20T00:00:00", endTime = "2024-12-22T00:00:00" })
    assert.are.equal("AF20055", r.json.error.code)
    r = call(srv, m, "GET", root .. "/subscriptions/content?" .. form{ contentType = "Audit.SharePoint", startTime = "2024-12-30T00:00:00" })
    assert.are.equal("AF20055", r.json.error.code)
    -- walk 6 days of windows, every record exactly once after de-duplicating by Id
    t.opts.content_page = 10
    local ids, dups, n, wl = {}, 0, 0, {}
    for d = 6, 1, -1 do
      local blobs = collect("Audit.SharePoint", (NOW - d * 86400) * 1000, (NOW - (d - 1) * 86400) * 1000)
      for _, c in ipairs(blobs) do
        assert.are.equal("Audit.SharePoint", c.contentType)
        assert.is_true(c.contentExpiration > c.contentCreated)
        local b = call(srv, m, "GET", c.contentUri)
        assert.are.equal(200, b.status)
        for _, rec in ipairs(b.json) do
          if ids[rec.Id] then dups = dups + 1 else ids[rec.Id] = true; n = n + 1 end
          wl[rec.Workload] = true
          assert.are.equal(t.tenant_id, rec.OrganizationId)
          assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d$", rec.CreationTime)
        end
      end
    end
    assert.is_true(wl.SharePoint and wl.OneDrive)
    assert.is_true(n > 0)
    -- ground truth: records whose blob became available in the walked span
    local expect, walked = 0, {}
    local c = 3
    local lo_s, hi_s = ((NOW - 7 * 86400) * 1000) // t.blob_ms - 40, (NOW * 1000) // t.blob_ms
    for s = lo_s, hi_s do
      local cr = t:blob_created(c, s)
      local a, b = t:slot_range(c, s)
      if cr >= (NOW - 6 * 86400) * 1000 and cr < NOW * 1000 and b > a then walked[s] = true; expect = expect + (b - a) end
    end
    -- duplicates re-delivered from a slot whose own blob was outside the walk are new Ids too
    for s in pairs(walked) do
      if not walked[s - 1] then
        local a, b = t:slot_range(c, s - 1)
        for i = a, b - 1 do if t:is_dup(c, i) then expect = expect + 1 end end
      end
    end
    assert.are.equal(expect, n)
  end)

  it("general workloads, duplicates across blobs, expired and missing blobs", function()
    t = new_tenant{ mgmt_records_per_day = 3000, duplicate_share = 0.2 }
    srv:close(); srv = start(t); m = bearer(srv, t, "mgmt")
    root = "/api/v1.0/" .. t.tenant_id .. "/activity/feed"
    call(srv, m, "POST", root .. "/subscriptions/start?contentType=Audit.General")
    local blobs = collect("Audit.General", (NOW - 86400) * 1000, NOW * 1000)
    local wl, seen, dup = {}, {}, 0
    for _, c in ipairs(blobs) do
      for _, rec in ipairs(call(srv, m, "GET", c.contentUri).json) do
        wl[rec.Workload] = true
        if seen[rec.Id] then dup = dup + 1 end
        seen[rec.Id] = true
      end
    end
    for _, w in ipairs({ "MicrosoftTeams", "PowerBI", "CRM", "MicrosoftFlow", "PowerApps", "Yammer", "SkypeForBusiness", "OfficeNative" }) do
      assert.is_true(wl[w], w)
    end
    assert.is_true(dup > 0)
    t:expire_blob(blobs[1].contentId)
    local r = call(srv, m, "GET", blobs[1].contentUri)
    assert.are.equal(404, r.status)
    assert.are.equal("AF20051", r.json.error.code)
    r = call(srv, m, "GET", root .. "/audit/" .. (blobs[2].contentId:gsub("^%d", "1")))
    assert.are.equal(404, r.status)
    r = call(srv, m, "GET", root .. "/audit/garbage")
    assert.are.equal("AF20052", r.json.error.code)
    -- tenant in URL must be the token's
    r = call(srv, m, "GET", "/api/v1.0/" .. T.uuid(1, "other") .. "/activity/feed/subscriptions/list")
    assert.are.equal("AF20010", r.json.error.code)
  end)

  it("webhook: validation on start, notification for a new record with Webhook-AuthID", function()
    local got, validated = {}, nil
    srv:route("POST", "/hook", function(req)
      if req.headers["webhook-validationcode"] then
        validated = J.decode(req.body).validationCode == req.headers["webhook-validationcode"] and req.headers["webhook-authid"]
      else
        got[#got + 1] = { auth = req.headers["webhook-authid"], body = J.decode(req.body) }
      end
      return 200, ""
    end)
    srv:route("POST", "/badhook", function() return 500, "" end)
    local r = call(srv, m, "POST", root .. "/subscriptions/start?contentType=Audit.Exchange", { webhook = { address = srv.url .. "/badhook", authId = "x" } })
    assert.are.equal(400, r.status)
    assert.are.equal("AF20021", r.json.error.code)
    r = call(srv, m, "POST", root .. "/subscriptions/start?contentType=Audit.Exchange",
             { webhook = { address = srv.url .. "/hook", authId = "o365activityapinotification", expiration = "" } })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal("o365activityapinotification", validated)
    assert.are.equal("enabled", r.json.webhook.status)
    local _, id = t:add_record{ workload = "Exchange", operation = "New-InboxRule", record_type = 1 }
    t:flush(5)
    assert.are.equal(1, #got)
    assert.are.equal("o365activityapinotification", got[1].auth)
    assert.are.equal(id, got[1].body[1].contentId)
    assert.are.equal("Audit.Exchange", got[1].body[1].contentType)
    local b = call(srv, m, "GET", got[1].body[1].contentUri)
    assert.are.equal("New-InboxRule", b.json[1].Operation)
    assert.are.equal("Exchange", b.json[1].Workload)
    -- listed with its webhook
    r = call(srv, m, "GET", root .. "/subscriptions/list")
    assert.are.equal(srv.url .. "/hook", r.json[1].webhook.address)
    assert.are.equal("o365activityapinotification", r.json[1].webhook.authId)
    -- generated blobs that become available as time passes are notified once, in one array, with the
    -- blobs the content listing gives for that time
    local t0 = t:now_ms()
    t:advance(2 * 3600)
    t:flush(5)
    assert.are.equal(2, #got)
    local listed = call(srv, m, "GET", root .. "/subscriptions/content?contentType=Audit.Exchange&startTime="
      .. T.iso_s(t0 // 1000):gsub("Z$", "") .. "&endTime=" .. T.iso_s(t:now_ms() // 1000 + 1):gsub("Z$", ""))
    assert.are.equal(200, listed.status, listed.body)
    local want = {}
    for _, o in ipairs(listed.json) do if o.contentCreated >= T.iso_ms(t0 + 1) then want[#want + 1] = o.contentId end end
    local notified = {}
    for _, o in ipairs(got[2].body) do
      notified[#notified + 1] = o.contentId
      assert.are.equal("Audit.Exchange", o.contentType)
      assert.are.equal("o365activityapinotification", got[2].auth)
    end
    assert.is_true(#want > 0)
    assert.are.same(want, notified)
    t:advance(1)
    t:flush(5)
    assert.are.equal(2, #got)
  end)
end)

describe("sandbox microsoft: azure resource manager", function()
  local t, srv, a
  before_each(function() t = new_tenant(); srv = start(t); a = bearer(srv, t, "arm") end)
  after_each(function() srv:close() end)

  it("lists subscriptions and pages the activity log (newest first) to the end exactly once", function()
    local r = call(srv, a, "GET", "/subscriptions?api-version=2020-01-01")
    assert.are.equal(200, r.status)
    assert.are.equal(2, #r.json.value)
    assert.is_string(r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    local sid = r.json.value[1].subscriptionId
    r = call(srv, a, "GET", "/subscriptions/" .. sid .. "/providers/microsoft.insights/eventtypes/management/values")
    assert.are.equal(400, r.status)
    assert.are.equal("MissingApiVersionParameter", r.json.error.code)
    t.opts.arm_page_size = 25
    local f = "eventTimestamp ge '" .. T.iso_s(NOW - 5 * 86400) .. "' and eventTimestamp le '" .. T.iso_s(NOW) .. "'"
    local url = "/subscriptions/" .. sid .. "/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&$filter=" .. T.urlencode(f)
    local seen, n, prev = {}, 0, nil
    while url do
      r = call(srv, a, "GET", url)
      assert.are.equal(200, r.status, r.body)
      for _, e in ipairs(r.json.value) do
        assert.is_nil(seen[e.eventDataId]); seen[e.eventDataId] = true; n = n + 1
        if prev then assert.is_true(e.eventTimestamp <= prev) end
        prev = e.eventTimestamp
        assert.is_string(e.operationName.value)
        assert.are.equal(sid, e.subscriptionId)
      end
      url = r.json.nextLink
    end
    local expect = 0
    for i = 0, t.arm_events - 1 do
      local ms_ = T.parse_iso(t:gen_arm_event(1, i).eventTimestamp)
      if ms_ >= (NOW - 5 * 86400) * 1000 and ms_ <= NOW * 1000 then expect = expect + 1 end
    end
    assert.are.equal(expect, n)
    r = call(srv, a, "GET", "/subscriptions/" .. sid .. "/providers/microsoft.insights/eventtypes/management/values?api-version=2015-04-01")
    assert.are.equal(400, r.status)
  end)

  it("role assignments and definitions; deleting an assignment is logged; RBAC refusal", function()
    local sid = t.state.arm_subs[1].id
    local r = call(srv, a, "GET", "/subscriptions/" .. sid .. "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01")
    assert.are.equal(200, r.status)
    assert.are.equal(t:count("arm_role_assignments", sid), #r.json.value)
    local owner
    for _, x in ipairs(r.json.value) do
      assert.are.equal("Microsoft.Authorization/roleAssignments", x.type)
      if x.properties.roleDefinitionId:find("8e3af657%-a8ff%-443c%-a75c%-2fe8c4bcb635$") and x.properties.principalId == t.admin.id then owner = x end
    end
    assert.is_table(owner)
    r = call(srv, a, "GET", "/subscriptions/" .. sid .. "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=" .. T.urlencode("roleName eq 'User Access Administrator'"))
    assert.are.equal(1, #r.json.value)
    assert.are.equal("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", r.json.value[1].name)
    r = call(srv, a, "GET", "/subscriptions/" .. sid .. "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=" .. T.urlencode("principalId eq '" .. t.admin.id .. "'"))
    for _, x in ipairs(r.json.value) do assert.are.equal(t.admin.id, x.properties.principalId) end
    local before = t:count("arm_role_assignments")
    r = call(srv, a, "DELETE", owner.id .. "?api-version=2022-04-01")
    assert.are.equal(200, r.status)
    assert.are.equal(owner.name, r.json.name)
    assert.are.equal(before - 1, t:count("arm_role_assignments"))
    assert.are.equal(204, call(srv, a, "DELETE", owner.id .. "?api-version=2022-04-01").status)
    local f = "eventTimestamp ge '" .. T.iso_s(NOW - 60) .. "' and eventTimestamp le '" .. T.iso_s(NOW + 60) .. "'"
    r = call(srv, a, "GET", "/subscriptions/" .. sid .. "/providers/microsoft.insights/eventtypes/management/values?api-version=2015-04-01&$filter=" .. T.urlencode(f))
    assert.are.equal(1, #r.json.value)
    assert.are.equal("Microsoft.Authorization/roleAssignments/delete", r.json.value[1].operationName.value)
    -- a principal without Azure roles is refused
    local t2 = new_tenant{ arm_client_roles = {} }
    local srv2 = start(t2)
    local a2 = bearer(srv2, t2, "arm")
    r = call(srv2, a2, "GET", "/subscriptions/" .. t2.state.arm_subs[1].id .. "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01")
    assert.are.equal(403, r.status)
    assert.are.equal("AuthorizationFailed", r.json.error.code)
    srv2:close()
  end)

  it("an event is readable only from its submissionTimestamp, whatever its eventTimestamp", function()
    local sub = t.state.arm_subs[1]
    local before = t:count("arm_events", sub.id)
    -- happened 10 minutes ago, submitted 15 minutes after that
    local ev = t:add_arm_event(sub, { op = { "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute", "virtualMachines", "PUT", "Created", 201 },
                                      ms = NOW * 1000 - 600000, delay = 900 })
    assert.are.equal(NOW * 1000 + 300000, T.parse_iso(ev.submissionTimestamp))
    local f = "eventTimestamp ge '" .. T.iso_s(NOW - 3600) .. "' and eventTimestamp le '" .. T.iso_s(NOW + 3600) .. "'"
    local url = "/subscriptions/" .. sub.id .. "/providers/microsoft.insights/eventtypes/management/values?api-version=2015-04-01&$filter=" .. T.urlencode(f)
    local function listed()
      local r = call(srv, a, "GET", url)
      assert.are.equal(200, r.status, r.body)
      for _, e in ipairs(r.json.value) do if e.eventDataId == ev.eventDataId then return true end end
      return false
    end
    assert.is_false(listed())
    assert.are.equal(before, t:count("arm_events", sub.id))
    t:advance(300)
    assert.is_true(listed())
    assert.are.equal(before + 1, t:count("arm_events", sub.id))
  end)

  it("role definitions: built-in and custom roles where they are assignable; atScopeAndBelow(); by id", function()
    local sid = t.state.arm_subs[1].id
    local base = "/subscriptions/" .. sid .. "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01"
    local function names(r)
      assert.are.equal(200, r.status, r.body)
      local out = {}
      for _, d in ipairs(r.json.value) do out[d.properties.roleName] = d end
      return out
    end
    local at = names(call(srv, a, "GET", base))
    assert.is_table(at["Role Based Access Control Administrator"])
    assert.are.equal("f58310d9-a9f6-439a-9e8d-f62e7b41a168", at["Role Based Access Control Administrator"].name)
    assert.are.equal("CustomRole", at["Contoso Access Delegator"].properties.type)
    assert.is_table(at["Contoso Auditor"])
    assert.is_nil(at["Contoso Data Access Administrator"])          -- assignable only in a resource group
    local below = names(call(srv, a, "GET", base .. "&$filter=" .. T.urlencode("atScopeAndBelow()")))
    local rg_role = assert(below["Contoso Data Access Administrator"])
    local custom = names(call(srv, a, "GET", base .. "&$filter=" .. T.urlencode("type eq 'CustomRole'")))
    assert.is_nil(custom.Owner)
    assert.is_table(custom["Contoso Auditor"])
    local r = call(srv, a, "GET", rg_role.id .. "?api-version=2022-04-01")
    assert.are.equal(200, r.status)
    assert.are.equal("/subscriptions/" .. sid .. "/resourceGroups/rg-data", r.json.properties.assignableScopes[1])
    -- a custom role is assigned only where it is assignable
    r = call(srv, a, "PUT", "/subscriptions/" .. sid .. "/providers/Microsoft.Authorization/roleAssignments/" .. T.uuid(5, "x", 1)
      .. "?api-version=2022-04-01", { properties = { roleDefinitionId = rg_role.id, principalId = t.admin.id } })
    assert.are.equal(400, r.status)
  end)

  it("the connector's directory role is visible through Graph (Security Administrator)", function()
    local g = bearer(srv, t, "graph")
    local r = call(srv, g, "GET", "/v1.0/servicePrincipals?$filter=" .. T.urlencode("appId eq '" .. t.client_id .. "'"))
    assert.are.equal(1, #r.json.value)
    local spid = r.json.value[1].id
    r = call(srv, g, "GET", "/v1.0/roleManagement/directory/roleAssignments?$filter=" .. T.urlencode("principalId eq '" .. spid .. "'") .. "&$expand=roleDefinition")
    assert.are.equal(1, #r.json.value)
    assert.are.equal("Security Administrator", r.json.value[1].roleDefinition.displayName)
    assert.are.equal("194ae4cb-b126-40b2-bd5b-6091b380977d", r.json.value[1].roleDefinitionId)
  end)
end)

describe("sandbox microsoft: onedrive and sharepoint files", function()
  local t, srv, g
  before_each(function() t = new_tenant(); srv = start(t); g = bearer(srv, t, "graph") end)
  after_each(function() srv:close() end)

  local function delta_all(url)
    local items, pages = {}, 0
    while true do
      local r = call(srv, g, "GET", url)
      assert.are.equal(200, r.status, r.body)
      for _, it in ipairs(r.json.value) do items[#items + 1] = it end
      pages = pages + 1
      if r.json["@odata.deltaLink"] then return items, r.json["@odata.deltaLink"], pages end
      url = assert(r.json["@odata.nextLink"])
    end
  end

  it("delta enumerates a drive exactly once, then returns only changes; a stale token is 410 resyncRequired", function()
    local u = t.gen_users[2]
    local r = call(srv, g, "GET", "/v1.0/users/" .. u.id .. "/drive")
    assert.are.equal(200, r.status)
    assert.are.equal("business", r.json.driveType)
    local did = r.json.id
    local items, dl, pages = delta_all("/v1.0/drives/" .. did .. "/root/delta?$top=2")
    assert.is_true(pages > 1)
    local seen = {}
    for _, it in ipairs(items) do assert.is_nil(seen[it.id]); seen[it.id] = true end
    assert.are.equal(t:count("items", did) + 1, #items)         -- + the root
    -- nothing changed: empty page with a new deltaLink
    local ch, dl2 = delta_all(dl)
    assert.are.equal(0, #ch)
    -- create a folder, upload a file into it, delete another file
    r = call(srv, g, "POST", "/v1.0/drives/" .. did .. "/root/children", { name = "Quarantine", folder = {}, ["@microsoft.graph.conflictBehavior"] = "fail" })
    assert.are.equal(201, r.status)
    local qid = r.json.id
    assert.are.equal(409, call(srv, g, "POST", "/v1.0/drives/" .. did .. "/root/children", { name = "Quarantine", folder = {} }).status)
    r = call(srv, g, "PUT", "/v1.0/drives/" .. did .. "/items/" .. qid .. ":/README.txt:/content", "this file was quarantined", { ["Content-Type"] = "text/plain" })
    assert.are.equal(201, r.status, r.body)
    assert.are.equal(25, r.json.size)
    local victim
    for _, it in ipairs(items) do if it.file then victim = it; break end end
    assert.are.equal(204, call(srv, g, "DELETE", "/v1.0/drives/" .. did .. "/items/" .. victim.id).status)
    assert.are.equal(404, call(srv, g, "GET", "/v1.0/drives/" .. did .. "/items/" .. victim.id).status)
    ch = delta_all(dl2)
    local by = {}
    for _, it in ipairs(ch) do by[it.id] = it end
    assert.is_table(by[qid]); assert.is_table(by[qid].folder)
    assert.are.same({ state = "deleted" }, by[victim.id].deleted)
    local readme
    for _, it in ipairs(ch) do if it.name == "README.txt" then readme = it end end
    assert.are.equal(qid, readme.parentReference.id)
    -- token expiry: 410 Gone with the real error, then a clean restart
    t:expire_delta()
    r = call(srv, g, "GET", dl2)
    assert.are.equal(410, r.status)
    assert.are.equal("resyncRequired", r.json.error.code)
    local again = delta_all(r.headers.location or ("/v1.0/drives/" .. did .. "/root/delta"))
    assert.are.equal(t:count("items", did) + 1, #again)
  end)

  it("permissions: sharing links, external users, inherited; remove and move (quarantine)", function()
    -- find a drive item with an own external-user or anonymous link permission
    local target, tperm
    for _, it in pairs(t.state.items) do
      if not it.folder and #it.perms > 0 and not target then target, tperm = it, it.perms[1] end
    end
    local did = target.drive.id
    local r = call(srv, g, "GET", "/v1.0/drives/" .. did .. "/items/" .. target.id .. "/permissions")
    assert.are.equal(200, r.status)
    local own
    for _, p in ipairs(r.json.value) do if p.id == tperm.id then own = p end end
    assert.is_table(own)
    if tperm.kind == "link" then assert.are.equal(tperm.scope, own.link.scope) else assert.are.equal(tperm.email, own.invitation.email) end
    local item = call(srv, g, "GET", "/v1.0/drives/" .. did .. "/items/" .. target.id).json
    assert.is_table(item.shared)
    local before = t:count("permissions")
    assert.are.equal(204, call(srv, g, "DELETE", "/v1.0/drives/" .. did .. "/items/" .. target.id .. "/permissions/" .. tperm.id).status)
    assert.are.equal(before - 1, t:count("permissions"))
    r = call(srv, g, "GET", "/v1.0/drives/" .. did .. "/items/" .. target.id .. "/permissions")
    for _, p in ipairs(r.json.value) do assert.are_not.equal(tperm.id, p.id) end
    -- inherited permissions (children of "Shared") cannot be removed on the child
    local shared, child
    for _, it in ipairs(target.drive.items) do if it.name == "Shared" then shared = it end end
    for _, it in ipairs(target.drive.items) do if it.parent == shared.id and not it.deleted then child = it end end
    if child then
      r = call(srv, g, "GET", "/v1.0/drives/" .. did .. "/items/" .. child.id .. "/permissions")
      local inh
      for _, p in ipairs(r.json.value) do if p.inheritedFrom then inh = p end end
      assert.are.equal(shared.id, inh.inheritedFrom.id)
      assert.are.equal("anonymous", inh.link.scope)
      assert.are.equal(400, call(srv, g, "DELETE", "/v1.0/drives/" .. did .. "/items/" .. child.id .. "/permissions/" .. inh.id).status)
      -- move the child out of Shared into a new quarantine folder: inherited link gone
      local q = call(srv, g, "POST", "/v1.0/drives/" .. did .. "/root/children", { name = "Quarantine", folder = {} }).json
      r = call(srv, g, "PATCH", "/v1.0/drives/" .. did .. "/items/" .. child.id, { parentReference = { id = q.id } })
      assert.are.equal(200, r.status)
      assert.are.equal(q.id, r.json.parentReference.id)
      assert.matches("/Quarantine$", r.json.parentReference.path)
      r = call(srv, g, "GET", "/v1.0/drives/" .. did .. "/items/" .. child.id .. "/permissions")
      for _, p in ipairs(r.json.value) do assert.is_nil(p.inheritedFrom) end
    end
    -- the owner permission stays
    local udrive = t:user_drive(t.gen_users[2])
    r = call(srv, g, "GET", "/v1.0/drives/" .. udrive.id .. "/items/" .. udrive.root.id .. "/permissions")
    assert.are.equal("owner", r.json.value[1].roles[1])
    assert.are.equal(403, call(srv, g, "DELETE", "/v1.0/drives/" .. udrive.id .. "/items/" .. udrive.root.id .. "/permissions/" .. r.json.value[1].id).status)
  end)

  it("delta leaves parentReference.path out and honours the Prefer sharing tokens", function()
    local d = t:user_drive(t.gen_users[2])
    local base = "/v1.0/drives/" .. d.id .. "/root/delta"
    local function delta(url, prefer)
      local r = call(srv, g, "GET", url, nil, prefer and { Prefer = prefer } or nil)
      assert.are.equal(200, r.status, r.body)
      local by = {}
      for _, it in ipairs(r.json.value) do by[it.id] = it end
      return by, r.json["@odata.deltaLink"]
    end
    -- delta: parent ids, never paths (a plain GET has the path)
    local plain, dl = delta(base)
    local inside
    for id, it in pairs(plain) do
      if not it.root then
        assert.is_string(it.parentReference.id)
        assert.is_nil(it.parentReference.path)
        if t.state.items[it.parentReference.id] ~= d.root then inside = id end
      end
    end
    assert.matches("^/drives/.+/root:/", call(srv, g, "GET", "/v1.0/drives/" .. d.id .. "/items/" .. inside).json.parentReference.path)
    -- without hierarchicalsharing every item under the shared folder carries the sharing facet; with it,
    -- only the roots of permission hierarchies (the drive root with an empty one)
    local shared_folder
    for _, it in ipairs(d.items) do if it.name == "Shared" then shared_folder = it end end
    local kid
    for _, it in ipairs(d.items) do if it.parent == shared_folder.id and #it.perms == 0 then kid = it end end
    assert(kid, "a file that inherits the Shared folder's link")
    assert.are.equal("anonymous", plain[kid.id].shared.scope)
    local hier = delta(base, "hierarchicalsharing")
    assert.is_nil(hier[kid.id].shared)
    assert.are.equal("anonymous", hier[shared_folder.id].shared.scope)
    assert.are.same({}, hier[d.root.id].shared)
    for id, it in pairs(hier) do
      if it.shared and next(it.shared) then assert.is_true(#t.state.items[id].perms > 0) end
    end
    -- a sharing change: @microsoft.graph.sharedChanged only with all three tokens; removing an item's last
    -- own permission leaves an empty facet
    local all3 = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"
    local _, dl_h = delta(base .. "?token=latest", "hierarchicalsharing")
    local p = t:share(kid, { kind = "user", email = "auditor@fabrikam.com", roles = { "read" }, external = true })
    local ch = delta(dl, all3)
    assert.are.equal("True", ch[kid.id]["@microsoft.graph.sharedChanged"])
    assert.is_nil(delta(dl, "deltashowsharingchanges")[kid.id]["@microsoft.graph.sharedChanged"])
    assert.are.equal(204, call(srv, g, "DELETE", "/v1.0/drives/" .. d.id .. "/items/" .. kid.id .. "/permissions/" .. p.id).status)
    local after, dl_after = delta(dl_h, "hierarchicalsharing")
    assert.are.same({}, after[kid.id].shared)
    -- a renamed folder comes back alone: its descendants' paths are the client's to follow
    assert.are.equal(200, call(srv, g, "PATCH", "/v1.0/drives/" .. d.id .. "/items/" .. shared_folder.id, { name = "Shared 2" }).status)
    local renamed = delta(dl_after)
    assert.is_table(renamed[shared_folder.id])
    assert.is_nil(renamed[kid.id])
  end)

  it("lists sites and their document libraries", function()
    local r = call(srv, g, "GET", "/v1.0/sites?search=*")
    assert.are.equal(t:count("sites"), #r.json.value)
    r = call(srv, g, "GET", "/v1.0/sites/" .. r.json.value[1].id .. "/drives")
    assert.are.equal("documentLibrary", r.json.value[1].driveType)
    r = call(srv, g, "GET", "/v1.0/drives/" .. r.json.value[1].id .. "/root/children")
    assert.are.equal(200, r.status)
    assert.is_true(#r.json.value > 0)
  end)
end)

describe("sandbox microsoft: change notifications", function()
  local t, srv, g
  before_each(function() t = new_tenant(); srv = start(t); g = bearer(srv, t, "graph") end)
  after_each(function() srv:close() end)

  it("validation handshake (echo as text/plain), notifications with clientState, renew and delete", function()
    local got = {}
    srv:route("POST", "/notify", function(req)
      if req.query.validationToken then return 200, req.query.validationToken, { ["Content-Type"] = "text/plain" } end
      got[#got + 1] = J.decode(req.body)
      return 202, ""
    end)
    srv:route("POST", "/wrong", function(req) return 200, "nope", { ["Content-Type"] = "text/plain" } end)
    local exp = T.iso_ms((NOW + 3600) * 1000)
    local r = call(srv, g, "POST", "/v1.0/subscriptions", { changeType = "updated,deleted", notificationUrl = srv.url .. "/wrong",
      resource = "users", expirationDateTime = exp, clientState = "s3cr3t" })
    assert.are.equal(400, r.status)
    assert.matches("validationToken", r.json.error.message)
    r = call(srv, g, "POST", "/v1.0/subscriptions", { changeType = "updated,deleted", notificationUrl = srv.url .. "/notify",
      resource = "users", expirationDateTime = T.iso_ms((NOW + 40 * 86400) * 1000), clientState = "s3cr3t" })
    assert.are.equal(400, r.status)          -- beyond the 41,760-minute maximum
    r = call(srv, g, "POST", "/v1.0/subscriptions", { changeType = "updated,deleted", notificationUrl = srv.url .. "/notify",
      resource = "users", expirationDateTime = exp, clientState = "s3cr3t" })
    assert.are.equal(201, r.status, r.body)
    local sid = r.json.id
    assert.are.equal("s3cr3t", r.json.clientState)
    local u = t.gen_users[3]
    assert.are.equal(204, call(srv, g, "PATCH", "/v1.0/users/" .. u.id, { accountEnabled = false }).status)
    t:flush(5)
    assert.are.equal(1, #got)
    local n = got[1].value[1]
    assert.are.equal(sid, n.subscriptionId)
    assert.are.equal("s3cr3t", n.clientState)
    assert.are.equal("updated", n.changeType)
    assert.are.equal(u.id, n.resourceData.id)
    assert.are.equal(t.tenant_id, n.tenantId)
    -- drive subscription: a file change notifies
    local d = t:user_drive(t.gen_users[2])
    r = call(srv, g, "POST", "/v1.0/subscriptions", { changeType = "updated", notificationUrl = srv.url .. "/notify",
      resource = "/drives/" .. d.id .. "/root", expirationDateTime = exp, clientState = "d" })
    assert.are.equal(201, r.status, r.body)
    call(srv, g, "PUT", "/v1.0/drives/" .. d.id .. "/root:/new.txt:/content", "hello", { ["Content-Type"] = "text/plain" })
    t:flush(5)
    local drive_notes = 0
    for _, x in ipairs(got) do if x.value[1].clientState == "d" then drive_notes = drive_notes + 1 end end
    assert.is_true(drive_notes >= 1)
    -- renew, then delete
    r = call(srv, g, "PATCH", "/v1.0/subscriptions/" .. sid, { expirationDateTime = T.iso_ms((NOW + 7200) * 1000) })
    assert.are.equal(200, r.status)
    assert.matches("^2025%-01%-01T02:00:00", r.json.expirationDateTime)
    assert.are.equal(204, call(srv, g, "DELETE", "/v1.0/subscriptions/" .. sid).status)
    assert.are.equal(1, t:count("graph_subscriptions"))
  end)
end)

describe("sandbox microsoft: governance state and throttling", function()
  local t, srv, g
  before_each(function() t = new_tenant(); srv = start(t); g = bearer(srv, t, "graph") end)
  after_each(function() srv:close() end)

  it("a disabled user stays disabled, force-change sticks, a revoked grant is gone", function()
    local u = t.gen_users[4]
    assert.are.equal(204, call(srv, g, "PATCH", "/v1.0/users/" .. u.id, { accountEnabled = false, passwordProfile = { forceChangePasswordNextSignIn = true } }).status)
    local r = call(srv, g, "GET", "/v1.0/users/" .. u.id .. "?$select=accountEnabled,passwordProfile")
    assert.is_false(r.json.accountEnabled)
    assert.is_true(r.json.passwordProfile.forceChangePasswordNextSignIn)
    assert.are.equal(400, call(srv, g, "PATCH", "/v1.0/users/" .. u.id, { id = "x" }).status)
    r = call(srv, g, "POST", "/v1.0/users/" .. u.id .. "/revokeSignInSessions")
    assert.are.equal(200, r.status)
    assert.is_true(r.json.value)
    r = call(srv, g, "GET", "/v1.0/oauth2PermissionGrants")
    local n = #r.json.value
    assert.are.equal(t:count("grants"), n)
    local gid = r.json.value[1].id
    assert.are.equal(204, call(srv, g, "DELETE", "/v1.0/oauth2PermissionGrants/" .. gid).status)
    assert.are.equal(404, call(srv, g, "DELETE", "/v1.0/oauth2PermissionGrants/" .. gid).status)
    r = call(srv, g, "GET", "/v1.0/oauth2PermissionGrants")
    assert.are.equal(n - 1, #r.json.value)
    local m = bearer(srv, t, "mgmt")
    local root = "/api/v1.0/" .. t.tenant_id .. "/activity/feed"
    call(srv, m, "POST", root .. "/subscriptions/start?contentType=Audit.AzureActiveDirectory")
    local list = call(srv, m, "GET", root .. "/subscriptions/content?contentType=Audit.AzureActiveDirectory").json
    local ops = {}
    for _, c in ipairs(list) do
      if c.contentId:find("%$s%d+$") then
        for _, rec in ipairs(call(srv, m, "GET", c.contentUri).json) do ops[rec.Operation] = true end
      end
    end
    assert.is_true(ops["Disable account."])
    assert.is_true(ops["Invalidate all refresh tokens for a user."])
    assert.is_true(ops["Remove delegated permission grant."])
  end)

  it("429 with Retry-After from the rate budget and from injected faults, per API error shape", function()
    t:set_rate_limit(3, 60)
    local last
    for _ = 1, 4 do last = call(srv, g, "GET", "/v1.0/groups") end
    assert.are.equal(429, last.status)
    assert.is_truthy(tonumber(last.headers["retry-after"]))
    assert.are.equal("activityLimitReached", last.json.error.code)
    t:set_rate_limit(1000, 60)
    t:fault{ kind = "429", path = "/activity/feed/", retry_after = 7 }
    local m = bearer(srv, t, "mgmt")
    local r = call(srv, m, "GET", "/api/v1.0/" .. t.tenant_id .. "/activity/feed/subscriptions/list")
    assert.are.equal(429, r.status)
    assert.are.equal("7", r.headers["retry-after"])
    assert.are.equal("AF429", r.json.error.code)
    assert.are.equal(200, call(srv, m, "GET", "/api/v1.0/" .. t.tenant_id .. "/activity/feed/subscriptions/list").status)
    t:fault{ kind = "429", path = "^/subscriptions", retry_after = 2 }
    local a = bearer(srv, t, "arm")
    r = call(srv, a, "GET", "/subscriptions?api-version=2020-01-01")
    assert.are.equal(429, r.status)
    assert.are.equal("2", r.headers["retry-after"])
    t:fault{ kind = "503", path = "^/v1.0/users" }
    r = call(srv, g, "GET", "/v1.0/users")
    assert.are.equal(503, r.status)
    assert.are.equal("serviceNotAvailable", r.json.error.code)
  end)

  it("is deterministic from the seed and generates big Management streams lazily", function()
    local a, b, c = new_tenant(), new_tenant(), new_tenant{ seed = 12 }
    assert.are.equal(a.state.users[1].id, b.state.users[1].id)
    assert.are.same(a:gen_record(3, 17), b:gen_record(3, 17))
    assert.are.same(a:gen_signin(5), b:gen_signin(5))
    assert.are_not.equal(a.state.users[1].id, c.state.users[1].id)
    local big = new_tenant{ mgmt_records = 1000000 }
    assert.are.equal(1000000, big:count("mgmt_records"))
    local s = (NOW * 1000 - 3 * 86400000) // big.blob_ms
    local recs = big:blob_records(3, s)
    assert.is_true(#recs > 100)
    for _, r in ipairs(recs) do assert.are.equal(big.tenant_id, r.OrganizationId) end
  end)
end)

describe("sandbox microsoft: users delta", function()
  it("enumerates users once, then reports changes and removals", function()
    local t = new_tenant()
    local srv = start(t)
    local g = bearer(srv, t, "graph")
    local function run(url)
      local all = {}
      while true do
        local r = call(srv, g, "GET", url)
        assert.are.equal(200, r.status, r.body)
        for _, u in ipairs(r.json.value) do all[#all + 1] = u end
        if r.json["@odata.deltaLink"] then return all, r.json["@odata.deltaLink"] end
        url = r.json["@odata.nextLink"]
      end
    end
    local all, dl = run("/v1.0/users/delta()?$select=id,accountEnabled&$top=9")
    assert.are.equal(t:count("users"), #all)
    local a, b = t.gen_users[6], t.gen_users[7]
    call(srv, g, "PATCH", "/v1.0/users/" .. a.id, { accountEnabled = false })
    call(srv, g, "DELETE", "/v1.0/users/" .. b.id)
    local ch = run(dl)
    assert.are.equal(2, #ch)
    local by = {}
    for _, u in ipairs(ch) do by[u.id] = u end
    assert.is_false(by[a.id].accountEnabled)
    assert.are.equal("changed", by[b.id]["@removed"].reason)
    assert.are.equal(t:count("users") + 1, #all)
    srv:close()
  end)
end)
