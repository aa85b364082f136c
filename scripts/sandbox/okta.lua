-- sandbox/okta.lua — an Okta org emulator (Management API + org authorization server), following
-- /work/shared/api/okta.md: SSWS and private_key_jwt OAuth auth, Link/`after` pagination, System Log
-- polling, lifecycle governance, event hooks, Okta error bodies and X-Rate-Limit-* headers.
--
--   local okta = require "sandbox.okta"
--   local t = okta.new{seed=1, users=50, groups=8, events_per_day=200, days=8, token="..."}
--   t:mount(srv[, prefix])
--
-- The System Log is generated lazily: event i is a pure function of (seed, i) with timestamps
-- monotonic in i, so a 1,000,000-event log costs no memory; only events caused by state changes or
-- injected by tests are stored.
local T = require "sandbox.tenant"

local M = {}
local Okta = setmetatable({}, { __index = T.Base })
Okta.__index = Okta
Okta.default_rate_limit = 600

local function json() return T.host("json") end
local function crypto() return T.host("crypto") end
local function jnull() return json().null end

local FIRST = { "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
  "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter", "Xena", "Yusuf", "Zoe",
  "Aisha", "Bruno", "Chen", "Dmitri", "Elena", "Fatima", "Goran", "Hiro", "Ingrid", "Jamal", "Kenji", "Lucia" }
local LAST = { "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson",
  "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Clark",
  "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Kowalski" }
local DEPTS = { "Engineering", "Sales", "Marketing", "Finance", "Support", "Legal", "IT", "HR", "Operations" }
local TITLES = { "Engineer", "Senior Engineer", "Manager", "Director", "Analyst", "Specialist", "Associate" }
local GROUPS = { "Engineering", "Sales", "Marketing", "Finance", "Support", "Contractors", "IT Admins",
  "West Coast users", "Executives", "Interns", "Legal", "Operations", "Security", "Design", "Data" }
local ROLE_TYPES = {
  { "SUPER_ADMIN", "Super Organization administrator" }, { "ORG_ADMIN", "Organization administrator" },
  { "APP_ADMIN", "Application administrator" }, { "USER_ADMIN", "Group administrator" },
  { "HELP_DESK_ADMIN", "Help Desk administrator" }, { "READ_ONLY_ADMIN", "Read only administrator" },
  { "REPORT_ADMIN", "Report administrator" }, { "GROUP_MEMBERSHIP_ADMIN", "Group membership administrator" },
  { "API_ACCESS_MANAGEMENT_ADMIN", "API Access Management administrator" },
}
local APPS = {
  { "salesforce", "Salesforce.com", "SAML_2_0" }, { "slack", "Slack", "SAML_2_0" }, { "zoomus", "Zoom", "SAML_2_0" },
  { "github_enterprise", "GitHub Enterprise Cloud", "SAML_2_0" }, { "oidc_client", "Expense Portal", "OPENID_CONNECT" },
  { "oidc_client", "Mobile App", "OPENID_CONNECT" }, { "box", "Box", "SAML_2_0" }, { "office365", "Microsoft Office 365", "WS_FEDERATION" },
}
local CITIES = {
  { "New York", "New York", "United States", "10013", 40.7157, -74.01 },
  { "San Francisco", "California", "United States", "94107", 37.7749, -122.4194 },
  { "London", "England", "United Kingdom", "EC1A", 51.5072, -0.1276 },
  { "Berlin", "Berlin", "Germany", "10115", 52.52, 13.405 },
  { "Austin", "Texas", "United States", "78701", 30.2672, -97.7431 },
  { "Toronto", "Ontario", "Canada", "M5H", 43.6532, -79.3832 },
}
local FOREIGN = { { "Lagos", "Lagos", "Nigeria", "100001", 6.5244, 3.3792 }, { "Moscow", "Moscow", "Russia", "101000", 55.7558, 37.6173 },
  { "Sao Paulo", "Sao Paulo", "Brazil", "01000", -23.55, -46.63 } }
local UAS = {
  { "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36", "Mac OS X", "CHROME", "Computer" },
  { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Windows 10", "EDGE_CHROMIUM", "Computer" },
  { "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "iOS", "SAFARI", "Mobile" },
  { "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Linux", "FIREFOX", "Computer" },
}

local SCOPES = {
  "okta.users.read", "okta.users.manage", "okta.groups.read", "okta.groups.manage", "okta.roles.read",
  "okta.roles.manage", "okta.logs.read", "okta.apps.read", "okta.apps.manage", "okta.sessions.read",
  "okta.sessions.manage", "okta.eventHooks.read", "okta.eventHooks.manage",
}

---------------------------------------------------------------------------------------------------
-- Construction
---------------------------------------------------------------------------------------------------
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Okta)
  T.Base.init(self, opts)
  self.token = opts.token or "00sandbox-okta-api-token"
  self.domain = opts.email_domain or "example.com"
  self.nusers = opts.users or 50
  self.ngroups = opts.groups or 8
  self.days = opts.days or 8
  self.nevents = opts.events or math.floor((opts.events_per_day or 200) * self.days)
  self.failed_share = opts.failed_signin_share or 0.1
  -- OAuth service apps allowed to use client credentials: {client_id=, public_key=PEM, scopes={...}}
  self.clients = {}
  for _, c in ipairs(opts.clients or (opts.oauth_client and { opts.oauth_client }) or {}) do
    self.clients[c.client_id] = { client_id = c.client_id, public_key = c.public_key, scopes = c.scopes or SCOPES,
                                  name = c.name or "cachost service app" }
  end
  self.access_tokens = {}
  self.used_jti = {}
  self.seq = 0
  self:generate()
  return self
end

function Okta:generate()
  local seed, r = self.seed, T.rng(self.seed, "okta")
  local now = self.t0_ms
  local st = { users = {}, by_id = {}, by_login = {}, groups = {}, group_by_id = {}, roles = {}, apps = {},
               app_by_id = {}, grants = {}, tokens = {}, sessions = {}, session_by_id = {}, events = {},
               hooks = {}, app_users = {} }
  self.state = st
  self.orgid = "00o" .. T.b62(17, seed, "org")
  -- users, in generation order (event actors refer to this order), stored sorted by id for paging
  local used = {}
  local gen = {}
  for i = 1, self.nusers do
    local first, last = r:pick(FIRST), r:pick(LAST)
    local base = (first .. "." .. last):lower()
    local login = base .. "@" .. self.domain
    local k = 1
    while used[login] do k = k + 1; login = base .. k .. "@" .. self.domain end
    used[login] = true
    local status = "ACTIVE"
    if i > 1 then
      local x = r:float()
      if x < 0.04 then status = "SUSPENDED" elseif x < 0.07 then status = "STAGED"
      elseif x < 0.10 then status = "PROVISIONED" elseif x < 0.13 then status = "LOCKED_OUT"
      elseif x < 0.15 then status = "PASSWORD_EXPIRED" elseif x < 0.18 then status = "DEPROVISIONED"
      elseif x < 0.20 then status = "RECOVERY" end
    end
    local created = now - r:int(40, 900) * 86400000 - r:int(0, 86399999)
    local activated = (status ~= "STAGED" and status ~= "PROVISIONED") and created + r:int(60000, 86400000) or nil
    local changed = activated and math.min(now - 3600000, activated + r:int(0, 30) * 86400000) or nil
    local last_login = (activated and status ~= "DEPROVISIONED") and (now - r:int(1, 30 * 86400) * 1000) or nil
    local u = {
      id = "00u" .. T.b62(17, seed, "user", i), status = status, created = created, activated = activated,
      statusChanged = changed, lastLogin = last_login, lastUpdated = math.max(changed or created, created),
      passwordChanged = activated and activated + 60000 or nil, typeId = "oty" .. T.b62(17, seed, "usertype"),
      profile = {
        firstName = first, lastName = last, mobilePhone = r:chance(0.5) and string.format("+1-555-%03d-%04d", r:int(100, 999), r:int(0, 9999)) or jnull(),
        secondEmail = jnull(), login = login, email = login, displayName = first .. " " .. last,
        title = r:pick(TITLES), department = r:pick(DEPTS), employeeNumber = tostring(1000 + i),
      },
      ip = string.format("%d.%d.%d.%d", r:int(11, 199), r:int(0, 255), r:int(0, 255), r:int(1, 254)),
      city = r:int(1, #CITIES), ua = r:int(1, #UAS), index = i,
    }
    gen[i] = u
    st.by_id[u.id] = u
    st.by_login[login:lower()] = u
  end
  self.gen_users = gen
  for i = 1, #gen do st.users[i] = gen[i] end
  table.sort(st.users, function(a, b) return a.id < b.id end)
  self.admin = gen[1]

  -- groups: Everyone (BUILT_IN) + OKTA_GROUPs (+ one APP_GROUP)
  local function mkgroup(i, name, gtype, desc)
    local g = { id = "00g" .. T.b62(17, seed, "group", i), created = now - r:int(400, 1200) * 86400000,
                type = gtype, name = name, description = desc, members = {}, index = i }
    g.lastUpdated = g.created + r:int(1, 300) * 86400000
    g.lastMembershipUpdated = now - r:int(1, 60) * 86400000
    st.group_by_id[g.id] = g
    st.groups[#st.groups + 1] = g
    return g
  end
  local everyone = mkgroup(0, "Everyone", "BUILT_IN", "All users in your organization")
  for _, u in ipairs(gen) do everyone.members[u.id] = true end
  local glist = {}
  for i = 1, math.max(0, self.ngroups - 1) do
    local name = GROUPS[(i - 1) % #GROUPS + 1] .. (i > #GROUPS and (" " .. (i // #GROUPS + 1)) or "")
    glist[i] = mkgroup(i, name, (i == 4) and "APP_GROUP" or "OKTA_GROUP", "All " .. name:lower() .. " users")
  end
  if #glist > 0 then
    for _, u in ipairs(gen) do
      for _ = 1, r:int(1, math.min(3, #glist)) do r:pick(glist).members[u.id] = true end
    end
  end
  table.sort(st.groups, function(a, b) return a.id < b.id end)
  self.groups_by_index = glist

  -- admin role assignments
  local function addrole(u, rt, k)
    st.roles[u.id] = st.roles[u.id] or {}
    local ra = { id = "ra1" .. T.b62(17, seed, "role", u.index, k), type = rt[1], label = rt[2], status = "ACTIVE",
                 created = u.created + 86400000, assignmentType = "USER", user = u.id }
    ra.lastUpdated = ra.created
    table.insert(st.roles[u.id], ra)
  end
  addrole(gen[1], ROLE_TYPES[1], 1)
  for i = 2, #gen do
    if r:chance(0.06) then addrole(gen[i], ROLE_TYPES[r:int(2, #ROLE_TYPES)], 1) end
  end

  -- apps, app assignments, consent grants, refresh tokens
  for i, a in ipairs(APPS) do
    local app = { id = "0oa" .. T.b62(17, seed, "app", i), name = a[1], label = a[2], signOnMode = a[3],
                  status = "ACTIVE", created = now - r:int(100, 700) * 86400000, index = i, users = {} }
    app.lastUpdated = app.created + 86400000
    st.apps[i] = app
    st.app_by_id[app.id] = app
    for _, u in ipairs(gen) do if r:chance(0.5) then app.users[u.id] = true end end
  end
  table.sort(st.apps, function(a, b) return a.id < b.id end)
  local oidc = {}
  for _, a in ipairs(st.apps) do if a.signOnMode == "OPENID_CONNECT" then oidc[#oidc + 1] = a end end
  local gi, ti = 0, 0
  for _, a in ipairs(oidc) do
    for _, sc in ipairs({ "okta.users.read", "okta.groups.read" }) do          -- admin-granted scopes
      gi = gi + 1
      st.grants[#st.grants + 1] = { id = "oag" .. T.b62(17, seed, "grant", gi), status = "ACTIVE", created = a.created + 3600000,
        createdBy = self.admin.id, clientId = a.id, appId = a.id, scopeId = sc, source = "ADMIN" }
    end
  end
  for _, u in ipairs(gen) do
    if u.status == "ACTIVE" and #oidc > 0 and r:chance(0.3) then
      local a = r:pick(oidc)
      for _, sc in ipairs({ "openid", "profile", "offline_access" }) do
        gi = gi + 1
        st.grants[#st.grants + 1] = { id = "oag" .. T.b62(17, seed, "grant", gi), status = "ACTIVE",
          created = u.lastLogin - 86400000, createdBy = u.id, clientId = a.id, appId = a.id, userId = u.id, scopeId = sc, source = "END_USER" }
      end
      ti = ti + 1
      local c = u.lastLogin - 3600000
      st.tokens[#st.tokens + 1] = { id = "oar" .. T.b62(17, seed, "token", ti), status = "ACTIVE", created = c,
        expiresAt = c + 90 * 86400000, clientId = a.id, appId = a.id, userId = u.id, scopes = { "openid", "profile", "offline_access" } }
    end
  end
  for _, g in ipairs(st.grants) do g.lastUpdated = g.created end
  for _, t in ipairs(st.tokens) do t.lastUpdated = t.created end
  table.sort(st.grants, function(a, b) return a.id < b.id end)
  table.sort(st.tokens, function(a, b) return a.id < b.id end)

  -- sessions of signed-in users
  for _, u in ipairs(gen) do
    if u.status == "ACTIVE" and u.lastLogin and r:chance(0.6) then
      local s = { id = "102" .. T.b62(22, seed, "session", u.index), userId = u.id, login = u.profile.login,
                  createdAt = u.lastLogin, status = "ACTIVE" }
      st.sessions[#st.sessions + 1] = s
      st.session_by_id[s.id] = s
    end
  end
end

---------------------------------------------------------------------------------------------------
-- Rendering (shapes of fixtures/okta/*.json)
---------------------------------------------------------------------------------------------------
local function iso(ms) if ms == nil then return jnull() end return T.iso_ms(ms) end

function Okta:user_json(u)
  local b = self.base_url .. "/api/v1/users/" .. u.id
  local links = { self = { href = b } }
  local s = u.status
  local function lk(name, path) links[name] = { href = b .. path, method = "POST" } end
  if s == "ACTIVE" or s == "PASSWORD_EXPIRED" or s == "RECOVERY" or s == "LOCKED_OUT" then
    lk("suspend", "/lifecycle/suspend"); lk("resetPassword", "/lifecycle/reset_password")
    lk("expirePassword", "/lifecycle/expire_password"); lk("deactivate", "/lifecycle/deactivate")
    lk("resetFactors", "/lifecycle/reset_factors")
    links.changePassword = { href = b .. "/credentials/change_password", method = "POST" }
    links.forgotPassword = { href = b .. "/credentials/forgot_password", method = "POST" }
  end
  if s == "SUSPENDED" then lk("unsuspend", "/lifecycle/unsuspend"); lk("deactivate", "/lifecycle/deactivate") end
  if s == "LOCKED_OUT" then lk("unlock", "/lifecycle/unlock") end
  if s == "STAGED" or s == "PROVISIONED" then lk("activate", "/lifecycle/activate"); lk("deactivate", "/lifecycle/deactivate") end
  if s == "DEPROVISIONED" then lk("activate", "/lifecycle/activate") end
  local p = u.profile
  return {
    id = u.id, status = s, created = iso(u.created), activated = iso(u.activated), statusChanged = iso(u.statusChanged),
    lastLogin = iso(u.lastLogin), lastUpdated = iso(u.lastUpdated), passwordChanged = iso(u.passwordChanged),
    type = { id = u.typeId },
    profile = { firstName = p.firstName, lastName = p.lastName, mobilePhone = p.mobilePhone, secondEmail = p.secondEmail,
                login = p.login, email = p.email, displayName = p.displayName, title = p.title, department = p.department,
                employeeNumber = p.employeeNumber },
    credentials = { password = setmetatable({}, { __jsontype = "object" }), provider = { type = "OKTA", name = "OKTA" } },
    _links = links,
  }
end

function Okta:group_json(g)
  local b = self.base_url
  return {
    id = g.id, created = iso(g.created), lastUpdated = iso(g.lastUpdated), lastMembershipUpdated = iso(g.lastMembershipUpdated),
    objectClass = json().array({ g.type == "APP_GROUP" and "okta:windows_security_principal" or "okta:user_group" }),
    type = g.type, profile = { name = g.name, description = g.description },
    _links = {
      logo = json().array({ { name = "medium", href = b .. "/img/logos/groups/okta-medium.png", type = "image/png" },
                            { name = "large", href = b .. "/img/logos/groups/okta-large.png", type = "image/png" } }),
      users = { href = b .. "/api/v1/groups/" .. g.id .. "/users" },
      apps = { href = b .. "/api/v1/groups/" .. g.id .. "/apps" },
    },
  }
end

function Okta:role_json(ra)
  return { id = ra.id, label = ra.label, type = ra.type, status = ra.status, created = iso(ra.created),
           lastUpdated = iso(ra.lastUpdated), assignmentType = ra.assignmentType,
           _links = { assignee = { href = self.base_url .. "/api/v1/users/" .. ra.user } } }
end

function Okta:app_json(a)
  local b = self.base_url .. "/api/v1/apps/" .. a.id
  return { id = a.id, name = a.name, label = a.label, status = a.status, signOnMode = a.signOnMode,
           created = iso(a.created), lastUpdated = iso(a.lastUpdated), accessibility = { selfService = false },
           visibility = { autoSubmitToolbar = false, hide = { iOS = false, web = false } },
           credentials = { userNameTemplate = { template = "${source.login}", type = "BUILT_IN" } },
           settings = { app = {} },
           _links = { self = { href = b }, users = { href = b .. "/users" }, groups = { href = b .. "/groups" },
                      deactivate = { href = b .. "/lifecycle/deactivate" } } }
end

function Okta:grant_json(g, expand)
  local a = self.state.app_by_id[g.appId]
  local self_href = g.userId and (self.base_url .. "/api/v1/users/" .. g.userId .. "/grants/" .. g.id)
                    or (self.base_url .. "/api/v1/apps/" .. g.appId .. "/grants/" .. g.id)
  local o = { id = g.id, status = g.status, created = iso(g.created), createdBy = { id = g.createdBy, type = "User" },
              lastUpdated = iso(g.lastUpdated), issuer = self.base_url, clientId = g.clientId, userId = g.userId,
              scopeId = g.scopeId, source = g.source,
              _links = { app = { href = self.base_url .. "/api/v1/apps/" .. g.appId, title = a and a.label },
                         self = { href = self_href, hints = { allow = json().array({ "GET", "DELETE" }) } },
                         client = { href = self.base_url .. "/oauth2/v1/clients/" .. g.clientId, title = a and a.label } } }
  if expand then o._embedded = { scope = { id = g.scopeId } } end
  return o
end

function Okta:token_json(t, expand)
  local a = self.state.app_by_id[t.appId]
  local u = self.state.by_id[t.userId]
  local self_href = self.base_url .. "/api/v1/apps/" .. t.appId .. "/tokens/" .. t.id
  local o = { id = t.id, status = t.status, created = iso(t.created), lastUpdated = iso(t.lastUpdated),
              expiresAt = iso(t.expiresAt), issuer = self.base_url .. "/oauth2/default", clientId = t.clientId,
              userId = t.userId, scopes = json().array(T.deep(t.scopes)),
              _links = { app = { href = self.base_url .. "/api/v1/apps/" .. t.appId, title = a and a.label },
                         self = { href = self_href },
                         revoke = { href = self_href, hints = { allow = json().array({ "DELETE" }) } },
                         client = { href = self.base_url .. "/oauth2/v1/clients/" .. t.clientId, title = a and a.label },
                         user = { href = self.base_url .. "/api/v1/users/" .. t.userId, title = u and u.profile.displayName } } }
  if expand then
    local sc = {}
    for i, s in ipairs(t.scopes) do sc[i] = { id = "scp" .. T.b62(17, self.seed, "scope", s), name = s } end
    o._embedded = { scopes = json().array(sc) }
  end
  return o
end

---------------------------------------------------------------------------------------------------
-- Errors, auth, rate limits
---------------------------------------------------------------------------------------------------
local ERR = {
  E0000001 = { 400, "Api validation failed: %s" }, E0000003 = { 400, "The request body was not well-formed." },
  E0000004 = { 401, "Authentication failed" }, E0000006 = { 403, "You do not have permission to perform the requested action" },
  E0000007 = { 404, "Not found: Resource not found: %s (%s)" }, E0000009 = { 500, "Internal Server Error" },
  E0000011 = { 401, "Invalid token provided" }, E0000022 = { 405, "The endpoint does not support the provided HTTP method" },
  E0000028 = { 400, "The request is missing a required parameter." }, E0000038 = { 403, "This operation is not allowed in the user's current status." },
  E0000047 = { 429, "API call exceeded rate limit due to too many requests." },
}

function Okta:err(code, summary, status, causes)
  local e = ERR[code]
  self.nerr = (self.nerr or 0) + 1
  local body = { errorCode = code, errorSummary = summary or (e and e[2]) or code, errorLink = code,
                 errorId = "oae" .. T.b62(22, self.seed, "err", self.nerr), errorCauses = json().array(causes or {}) }
  return status or (e and e[1]) or 400, body, { ["Content-Type"] = "application/json" }
end
function Okta:not_found(kind, id)
  return self:err("E0000007", string.format("Not found: Resource not found: %s (%s)", id, kind))
end

local function bucket_of(path)
  local fam = path:match("^/api/v1/([%w]+)") or path:match("^/oauth2/v1/(%w+)") or "other"
  return fam
end

-- Scope needed by a route: ropts.scope = "okta.users" (+ .read / .manage by method) or explicit
local function needed_scope(req, ropts)
  if not ropts.scope then return nil end
  if ropts.scope:find("%.read$") or ropts.scope:find("%.manage$") then return ropts.scope end
  return ropts.scope .. ((req.method == "GET" or req.method == "HEAD") and ".read" or ".manage")
end

function Okta:precheck(req, ropts)
  local path = self.prefix and req.path:sub(#self.prefix + 1) or req.path
  local limit, remaining, reset, exceeded = self:rate_take(bucket_of(path))
  req._rl = { limit, remaining, reset }
  if exceeded then
    local st, body, hdr = self:err("E0000047")
    return st, body, hdr
  end
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local scheme, cred = auth:match("^(%S+)%s+(.+)$")
  scheme = scheme and scheme:lower()
  if scheme == "ssws" and crypto().equal(cred, self.token) then
    req.actor = { id = self.admin.id, type = "User", alternateId = self.admin.profile.login,
                  displayName = self.admin.profile.displayName, detailEntry = jnull() }
    return nil
  elseif scheme == "bearer" then
    local at = self.access_tokens[cred]
    if at and at.exp > self:wall_s() then
      local need = needed_scope(req, ropts)
      if need and not at.scopes[need] then
        local st, body, hdr = self:err("E0000006")
        hdr["WWW-Authenticate"] = string.format('Bearer authorization_uri="%s/oauth2/v1/authorize", realm="%s", scope="%s", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="%s"',
          self.base_url, self.base_url, need, path)
        return st, body, hdr
      end
      local c = self.clients[at.client_id]
      req.actor = { id = at.client_id, type = "PublicClientApp", alternateId = at.client_id,
                    displayName = c and c.name or at.client_id, detailEntry = jnull() }
      return nil
    end
  end
  return self:err("E0000011")
end

function Okta:decorate(req, status, hdr)
  local rl = req._rl
  if rl then
    hdr["X-Rate-Limit-Limit"] = tostring(rl[1])
    hdr["X-Rate-Limit-Remaining"] = tostring(rl[2])
    hdr["X-Rate-Limit-Reset"] = tostring(rl[3])
  end
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json"
end

function Okta:fault_response(f, req)
  local k = f.kind
  local hdr
  local st, body
  if k == "429" then
    st, body, hdr = self:err("E0000047")
    local ra = f.retry_after or 1
    hdr["X-Rate-Limit-Limit"] = tostring(self.rate.limit)
    hdr["X-Rate-Limit-Remaining"] = "0"
    hdr["X-Rate-Limit-Reset"] = tostring(self:wall_s() + math.ceil(ra))
    hdr["Retry-After"] = tostring(ra)
  elseif k == "503" or k == "502" then
    st, body, hdr = self:err("E0000009", "Service Unavailable", tonumber(k))
  else
    st, body, hdr = self:err("E0000009", nil, 500)
  end
  return st, json().encode(body), hdr
end

---------------------------------------------------------------------------------------------------
-- Pagination helpers
---------------------------------------------------------------------------------------------------
-- list sorted by .id; returns page, next_after (nil when this is the last page)
local function page_after(list, after, limit)
  local start = 1
  if after and after ~= "" then
    local lo, hi = 1, #list + 1
    while lo < hi do
      local mid = (lo + hi) // 2
      if list[mid].id <= after then lo = mid + 1 else hi = mid end
    end
    start = lo
  end
  local page = {}
  for i = start, math.min(#list, start + limit - 1) do page[#page + 1] = list[i] end
  local nxt = (start + limit - 1 < #list) and page[#page] and page[#page].id or nil
  return page, nxt
end

function Okta:links(path, params, next_after)
  local function url(extra)
    local l = {}
    for _, kv in ipairs(params) do l[#l + 1] = kv end
    if extra then l[#l + 1] = { "after", extra } end
    local q = T.qs(l)
    return self.base_url .. path .. (q ~= "" and ("?" .. q) or "")
  end
  local links = { { url(nil), "self" } }
  if next_after then links[#links + 1] = { url(next_after), "next" } end
  return T.link(links)
end

local function get_limit(q, default, max)
  local n = T.intparam(q.limit, default, 1, max)
  return n
end

-- page a list with the Okta cursor conventions and return the HTTP answer
function Okta:paged(req, path, list, default, max, render, extra_params)
  local limit = get_limit(req.query, default, max)
  if not limit then return self:err("E0000001", "Api validation failed: limit") end
  local page, nxt = page_after(list, req.query.after, limit)
  local out = {}
  for i, x in ipairs(page) do out[i] = render(x) end
  local params = {}
  for _, kv in ipairs(extra_params or {}) do params[#params + 1] = kv end
  params[#params + 1] = { "limit", tostring(limit) }
  return 200, json().array(out), { Link = self:links(path, params, nxt) }
end

---------------------------------------------------------------------------------------------------
-- System Log: generated events (pure in (seed, i)) merged with stored events
---------------------------------------------------------------------------------------------------
local GEN_TYPES = {   -- cumulative weights
  { 0.40, "user.session.start" }, { 0.65, "user.authentication.sso" }, { 0.80, "user.authentication.auth_via_mfa" },
  { 0.88, "policy.evaluate_sign_on" }, { 0.95, "user.session.end" }, { 0.97, "group.user_membership.add" },
  { 0.98, "app.oauth2.as.consent.grant" }, { 0.99, "user.account.update_profile" }, { 1.01, "user.account.lock" },
}
local DISPLAY = {
  ["user.session.start"] = { "User login to Okta", "core.user_auth.login_success" },
  ["user.authentication.sso"] = { "User single sign on to app", "app.auth.sso" },
  ["user.authentication.auth_via_mfa"] = { "Authentication of user via MFA", "core.user.factor.attempt_success" },
  ["policy.evaluate_sign_on"] = { "Evaluation of sign-on policy", nil },
  ["user.session.end"] = { "User logout from Okta", "core.user_auth.logout_success" },
  ["group.user_membership.add"] = { "Add user to group membership", "group.user_membership.add" },
  ["group.user_membership.remove"] = { "Remove user from group membership", "group.user_membership.remove" },
  ["app.oauth2.as.consent.grant"] = { "User granted consent to app", nil },
  ["app.oauth2.as.consent.revoke"] = { "Consent revoked", nil },
  ["user.account.update_profile"] = { "Update user profile for Okta", "core.user.config.profile_update.success" },
  ["user.account.lock"] = { "Max sign in attempts exceeded", "core.user_auth.account_locked" },
  ["user.lifecycle.suspend"] = { "Suspend Okta user", "core.user.config.user_status.suspended" },
  ["user.lifecycle.unsuspend"] = { "Unsuspend Okta user", "core.user.config.user_status.unsuspended" },
  ["user.lifecycle.deactivate"] = { "Deactivate Okta user", "core.user.config.user_deactivated" },
  ["user.lifecycle.activate"] = { "Activate Okta user", "core.user.config.user_activated" },
  ["user.lifecycle.reactivate"] = { "Reactivate Okta user", "core.user.config.user_activated" },
  ["user.lifecycle.delete.initiated"] = { "Delete Okta user", "core.user.config.user_deleted" },
  ["user.account.unlock_by_admin"] = { "Unlock user account", "core.user.config.user_status.unlocked" },
  ["user.account.expire_password"] = { "User's Okta password is expired", "core.user.config.password_expired" },
  ["user.account.reset_password"] = { "Fired when the user's Okta password is reset", "core.user.config.password_reset" },
  ["user.mfa.factor.reset_all"] = { "Reset all factors for user", "core.user.factor.reset_all" },
  ["user.session.clear"] = { "Clear user session", "core.user.session.clear" },
  ["app.oauth2.token.revoke"] = { "OAuth2 token revocation request", nil },
  ["user.account.privilege.revoke"] = { "User privilege revocation", "core.user.admin_privilege.revoked" },
  ["application.user_membership.remove"] = { "Remove user from application membership", "app.user_management.user_deleted" },
  ["application.lifecycle.deactivate"] = { "Deactivate application", "app.generic.config.app_deactivated" },
  ["event_hook.verified"] = { "Event hook verified", nil },
}

-- timestamp (ms) of generated event i (0-based): monotonic, spread evenly over [now - days, now)
function Okta:gen_ms(i)
  local span = self.days * 86400000
  local u = T.unit(T.hash(self.seed, "logt", i))
  return self.t0_ms - span + math.floor((i + u) * span / self.nevents)
end

local function geo(c)
  return { city = c[1], state = c[2], country = c[3], postalCode = c[4], geolocation = { lat = c[5], lon = c[6] } }
end

-- the full LogEvent for generated index i
function Okta:gen_event(i)
  local seed = self.seed
  local h = T.hash(seed, "logev", i)
  local x = T.unit(h)
  local etype = "user.session.start"
  for _, w in ipairs(GEN_TYPES) do if x < w[1] then etype = w[2]; break end end
  local u = self.gen_users[T.below(T.hash(seed, "actor", i), #self.gen_users) + 1]
  local h2 = T.hash(seed, "detail", i)
  local ip, city = u.ip, CITIES[u.city]
  local result, reason = "SUCCESS", jnull()
  if etype == "user.session.start" and T.unit(h2) < self.failed_share then
    result, reason = "FAILURE", "INVALID_CREDENTIALS"
    if T.unit(T.hash(h2, 1)) < 0.3 then   -- failures from elsewhere
      city = FOREIGN[T.below(T.hash(h2, 2), #FOREIGN) + 1]
      ip = string.format("%d.%d.%d.%d", 41 + T.below(T.hash(h2, 3), 150), T.below(T.hash(h2, 4), 256), T.below(T.hash(h2, 5), 256), 1 + T.below(T.hash(h2, 6), 254))
    end
  elseif etype == "policy.evaluate_sign_on" then
    result = "ALLOW"
  elseif etype == "user.account.lock" then
    result = "FAILURE"; reason = "LOCKED_OUT"
  end
  local target
  if etype == "user.authentication.sso" or etype == "app.oauth2.as.consent.grant" then
    local a = self.state.apps[T.below(T.hash(seed, "app", i), #self.state.apps) + 1]
    target = { { id = a.id, type = "AppInstance", alternateId = a.label, displayName = a.label, detailEntry = jnull() } }
  elseif etype == "group.user_membership.add" and #self.state.groups > 0 then
    local g = self.state.groups[T.below(T.hash(seed, "grp", i), #self.state.groups) + 1]
    target = { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() },
               { id = g.id, type = "UserGroup", alternateId = "unknown", displayName = g.name, detailEntry = jnull() } }
  else
    target = { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() } }
  end
  return self:event{
    ms = self:gen_ms(i), uuid = T.uuid(seed, "uuid", i), eventType = etype, result = result, reason = reason,
    actor = { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() },
    ip = ip, city = city, ua = UAS[u.ua], target = target, txid = T.b62(27, seed, "tx", i),
    session = "102" .. T.b62(22, seed, "sess", u.index, i // 50),
    severity = (result == "FAILURE") and "WARN" or "INFO", request_id = T.hexs(32, seed, "rq", i),
  }
end

-- build a LogEvent table (fixtures/okta/sign-in-event.json shape)
function Okta:event(e)
  local d = DISPLAY[e.eventType] or { e.eventType, nil }
  local city, ua = e.city or CITIES[1], e.ua or UAS[1]
  local g = geo(city)
  return {
    actor = e.actor,
    client = { userAgent = { rawUserAgent = ua[1], os = ua[2], browser = ua[3] }, zone = jnull(), device = ua[4],
               id = jnull(), ipAddress = e.ip, geographicalContext = g },
    device = jnull(),
    authenticationContext = { authenticationProvider = jnull(), credentialProvider = jnull(), credentialType = jnull(),
                              issuer = jnull(), interface = jnull(), authenticationStep = 0,
                              rootSessionId = e.session or jnull(), externalSessionId = e.session or jnull() },
    displayMessage = d[1], eventType = e.eventType,
    outcome = { result = e.result or "SUCCESS", reason = e.reason or jnull() },
    published = T.iso_ms(e.ms),
    securityContext = { asNumber = 394089, asOrg = "ASN 0000", isp = "sandbox-isp", domain = jnull(), isProxy = false },
    severity = e.severity or "INFO",
    debugContext = { debugData = { requestId = e.request_id or "", requestUri = e.request_uri or "/api/v1/authn", url = e.request_uri or "/api/v1/authn" } },
    legacyEventType = d[2] or jnull(),
    transaction = { type = e.txtype or "WEB", id = e.txid or "", detail = setmetatable({}, { __jsontype = "object" }) },
    uuid = e.uuid, version = "0",
    request = { ipChain = json().array({ { ip = e.ip, geographicalContext = g, version = "V4", source = jnull() } }) },
    target = json().array(e.target or {}),
  }
end

-- store an event (state change or injected).  spec = {eventType, actor?, target?, result?, reason?, ip?, ms?, ...}
function Okta:add_event(spec)
  self.seq = self.seq + 1
  local seq = self.seq
  local ms = spec.ms or (spec.published and T.parse_iso(spec.published)) or self:now_ms()
  local ev = spec.event
  if not ev then
    local u = spec.user and self:find_user(spec.user) or nil
    local actor = spec.actor or (u and { id = u.id, type = "User", alternateId = u.profile.login,
                  displayName = u.profile.displayName, detailEntry = jnull() })
                  or { id = self.admin.id, type = "User", alternateId = self.admin.profile.login,
                       displayName = self.admin.profile.displayName, detailEntry = jnull() }
    ev = self:event{ ms = ms, uuid = T.uuid(self.seed, "stored", seq), eventType = spec.eventType,
                     result = spec.result, reason = spec.reason, actor = actor,
                     ip = spec.ip or (u and u.ip) or "127.0.0.1", city = spec.city, ua = spec.ua,
                     target = spec.target, txid = T.b62(27, self.seed, "stx", seq), session = spec.session,
                     severity = spec.severity, request_id = T.hexs(32, self.seed, "srq", seq),
                     request_uri = spec.request_uri, txtype = spec.txtype }
  end
  local rec = { ms = ms, seq = seq, ev = ev }
  local list = self.state.events
  local pos = #list + 1
  while pos > 1 and (list[pos - 1].ms > ms) do pos = pos - 1 end
  table.insert(list, pos, rec)
  self:hook_deliver(ev)
  return ev
end

-- n failed sign-ins, then one success, all from one IP (for detection tests)
function Okta:simulate_bruteforce(login, n, opts)
  opts = opts or {}
  local u = assert(self:find_user(login), "no such user " .. tostring(login))
  local ip = opts.ip or "203.0.113.66"
  local city = FOREIGN[2]
  local out = {}
  local tgt = { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() } }
  for _ = 1, n do
    out[#out + 1] = self:add_event{ eventType = "user.session.start", user = u, result = "FAILURE",
      reason = "INVALID_CREDENTIALS", ip = ip, city = city, severity = "WARN", target = tgt }
  end
  if opts.success ~= false then
    out[#out + 1] = self:add_event{ eventType = "user.session.start", user = u, result = "SUCCESS", ip = ip, city = city, target = tgt }
  end
  return out
end

local function key_lt(a1, b1, c1, a2, b2, c2)
  if a1 ~= a2 then return a1 < a2 end
  if b1 ~= b2 then return b1 < b2 end
  return c1 < c2
end

-- first generated index whose key (ms,0,i) > K ; last index whose key < K
function Okta:gen_first_after(ms, src, idx)
  local lo, hi = 0, self.nevents
  while lo < hi do
    local mid = (lo + hi) // 2
    if key_lt(ms, src, idx, self:gen_ms(mid), 0, mid) then hi = mid else lo = mid + 1 end
  end
  return lo
end
function Okta:gen_last_before(ms, src, idx)
  local lo, hi = 0, self.nevents   -- count of keys < K
  while lo < hi do
    local mid = (lo + hi) // 2
    if key_lt(self:gen_ms(mid), 0, mid, ms, src, idx) then lo = mid + 1 else hi = mid end
  end
  return lo - 1
end
function Okta:st_first_after(ms, src, idx)
  local list = self.state.events
  local lo, hi = 1, #list + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if key_lt(ms, src, idx, list[mid].ms, 1, list[mid].seq) then hi = mid else lo = mid + 1 end
  end
  return lo
end
function Okta:st_last_before(ms, src, idx)
  local list = self.state.events
  local lo, hi = 1, #list + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if key_lt(list[mid].ms, 1, list[mid].seq, ms, src, idx) then lo = mid + 1 else hi = mid end
  end
  return lo - 1
end

local function enc_cursor(ms, src, idx) return string.format("%d_%d_%d", ms, src, idx) end
local function dec_cursor(s)
  local a, b, c = (s or ""):match("^(%-?%d+)_(%d+)_(%d+)$")
  if not a then return nil end
  return math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c))
end

local LOG_ATTRS = nil -- any attribute path is accepted by the System Log filter

-- Query the System Log.  Returns events (tables), next cursor or nil, and the resolved bounds.
function Okta:query_log(q)
  local now = self:now_ms()
  local until_ms, since_ms
  if q["until"] and q["until"] ~= "" then
    until_ms = T.parse_iso(q["until"])
    if not until_ms then return nil, "until" end
  end
  local bounded = until_ms ~= nil
  local upper = until_ms or (now + 1)      -- polling includes events published at `now`
  if q.since and q.since ~= "" then
    since_ms = T.parse_iso(q.since)
    if not since_ms then return nil, "since" end
  else
    since_ms = (until_ms or now) - 7 * 86400000
  end
  local limit = T.intparam(q.limit, 100, 0)
  if not limit then return nil, "limit" end
  if limit > 1000 then limit = 1000 end
  local desc = (q.sortOrder or "ASCENDING"):upper() == "DESCENDING"
  local pred = nil
  if q.filter and q.filter ~= "" then
    local f, err = T.scim_filter(q.filter, LOG_ATTRS)
    if not f then return nil, "filter: " .. err end
    pred = f
  end
  if q.q and q.q ~= "" then
    local words = {}
    for w in q.q:gmatch("%S+") do words[#words + 1] = w:lower() end
    local jsonm = json()
    local inner = pred
    pred = function(ev)
      if inner and not inner(ev) then return false end
      local s = jsonm.encode(ev):lower()
      for _, w in ipairs(words) do if not s:find(w, 1, true) then return false end end
      return true
    end
  end
  local out = {}
  local list = self.state.events
  local cms, csrc, cidx
  if q.after and q.after ~= "" then
    cms, csrc, cidx = dec_cursor(q.after)
    if not cms then return nil, "after" end
  end
  local last_key
  local more = false
  if not desc then
    if not cms then cms, csrc, cidx = since_ms - 1, 9, 0 end
    local gi = self:gen_first_after(cms, csrc, cidx)
    local si = self:st_first_after(cms, csrc, cidx)
    local scanned = 0
    while true do
      local gms = gi < self.nevents and self:gen_ms(gi) or nil
      local s = list[si]
      local take_gen
      if gms and s then take_gen = key_lt(gms, 0, gi, s.ms, 1, s.seq)
      elseif gms then take_gen = true
      elseif s then take_gen = false
      else break end
      local ms = take_gen and gms or s.ms
      if ms >= upper or ms > now then break end
      if #out >= limit then more = true; break end
      local ev = take_gen and self:gen_event(gi) or s.ev
      if ms >= since_ms and (not pred or pred(ev)) then out[#out + 1] = ev end
      if take_gen then last_key = { ms, 0, gi }; gi = gi + 1 else last_key = { ms, 1, s.seq }; si = si + 1 end
      scanned = scanned + 1
      -- a selective filter over a huge log: hand back what we have with a cursor
      if scanned >= 20000 and #out < limit then more = true; break end
    end
    local cursor
    if last_key then cursor = enc_cursor(last_key[1], last_key[2], last_key[3])
    else cursor = q.after ~= "" and q.after or enc_cursor(cms, csrc, cidx) end
    if bounded then return out, more and cursor or nil, limit
    else return out, cursor, limit end    -- polling: next link always present
  else
    if not cms then cms, csrc, cidx = upper, -1, 0 end
    local gi = self:gen_last_before(cms, csrc, cidx)
    local si = self:st_last_before(cms, csrc, cidx)
    local scanned = 0
    while true do
      local gms = gi >= 0 and self:gen_ms(gi) or nil
      local s = list[si]
      local take_gen
      if gms and s then take_gen = key_lt(s.ms, 1, s.seq, gms, 0, gi)
      elseif gms then take_gen = true
      elseif s then take_gen = false
      else break end
      local ms = take_gen and gms or s.ms
      if ms < since_ms then break end
      if #out >= limit then more = true; break end
      local ev = take_gen and self:gen_event(gi) or s.ev
      if ms < upper and ms <= now and (not pred or pred(ev)) then out[#out + 1] = ev end
      if take_gen then last_key = { ms, 0, gi }; gi = gi - 1 else last_key = { ms, 1, s.seq }; si = si - 1 end
      scanned = scanned + 1
      if scanned >= 20000 and #out < limit then more = true; break end
    end
    local cursor = last_key and enc_cursor(last_key[1], last_key[2], last_key[3])
    return out, more and cursor or nil, limit
  end
end

-- total stored + generated events (ground truth)
function Okta:log_size() return self.nevents + #self.state.events end

---------------------------------------------------------------------------------------------------
-- Event hooks (outgoing)
---------------------------------------------------------------------------------------------------
function Okta:hook_json(h)
  local b = self.base_url .. "/api/v1/eventHooks/" .. h.id
  local headers = {}
  for i, kv in ipairs(h.headers or {}) do headers[i] = { key = kv.key, value = kv.value } end
  return { id = h.id, status = h.status, verificationStatus = h.verificationStatus, name = h.name,
           description = h.description or jnull(), created = iso(h.created), createdBy = h.createdBy,
           lastUpdated = iso(h.lastUpdated),
           events = { type = "EVENT_TYPE", items = json().array(T.deep(h.items)), filter = jnull() },
           channel = { type = "HTTP", version = "1.0.0",
                       config = { uri = h.uri, headers = json().array(headers), method = "POST",
                                  authScheme = h.auth_key and { type = "HEADER", key = h.auth_key } or jnull() } },
           _links = { self = { href = b },
                      verify = { href = b .. "/lifecycle/verify", hints = { allow = json().array({ "POST" }) } },
                      deactivate = { href = b .. "/lifecycle/deactivate", hints = { allow = json().array({ "POST" }) } } } }
end

function Okta:create_hook(spec)
  local st = self.state
  local n = #st.hooks + 1
  local h = { id = "who" .. T.b62(17, self.seed, "hook", n), name = spec.name or ("hook " .. n), status = "ACTIVE",
              verificationStatus = "UNVERIFIED", created = self:now_ms(), createdBy = self.admin.id,
              items = spec.items or {}, uri = spec.uri, headers = spec.headers or {},
              auth_key = spec.auth_key, auth_value = spec.auth_value, description = spec.description }
  h.lastUpdated = h.created
  st.hooks[#st.hooks + 1] = h
  return h
end

-- one-time verification: GET uri with X-Okta-Verification-Challenge; expect {"verification": value}
-- (blocking: call inside a task).  Returns true or nil, err.
function Okta:verify_hook(h)
  local challenge = T.b62(40, self.seed, "challenge", h.id, self.seq)
  local headers = { ["X-Okta-Verification-Challenge"] = challenge, Accept = "application/json" }
  for _, kv in ipairs(h.headers or {}) do headers[kv.key] = kv.value end
  if h.auth_key then headers[h.auth_key] = h.auth_value end
  local ok_resp
  for _ = 1, 2 do                          -- one retry, as Okta does
    local res = T.host("http").request{ method = "GET", url = h.uri, headers = headers, timeout = 3 }
    if res and res.status == 200 then
      local body = json().decode(res.body or "")
      if type(body) == "table" and body.verification == challenge then ok_resp = true; break end
    end
  end
  if not ok_resp then return nil, "verification failed" end
  h.verificationStatus = "VERIFIED"
  h.lastUpdated = self:now_ms()
  return true
end

function Okta:hook_deliver(ev)
  for _, h in ipairs(self.state.hooks) do
    if h.status == "ACTIVE" and h.verificationStatus == "VERIFIED" then
      local want = false
      for _, it in ipairs(h.items) do if it == ev.eventType then want = true; break end end
      if want then
        self.ndeliv = (self.ndeliv or 0) + 1
        local body = json().encode{
          eventType = "com.okta.event_hook", eventTypeVersion = "1.0", cloudEventsVersion = "0.1",
          contentType = "application/json", eventId = T.uuid(self.seed, "delivery", self.ndeliv),
          eventTime = T.iso_ms(self:now_ms()), source = self.base_url .. "/api/v1/eventHooks/" .. h.id,
          data = { events = json().array({ ev }) } }
        local headers = { ["Content-Type"] = "application/json", Accept = "application/json" }
        for _, kv in ipairs(h.headers or {}) do headers[kv.key] = kv.value end
        if h.auth_key then headers[h.auth_key] = h.auth_value end
        self:deliver{ url = h.uri, headers = headers, body = body, event = ev.eventType, retries = 1,
                      no_retry_4xx = true, timeout = 3, hook = h.id }
      end
    end
  end
end

-- Test helper: register an event hook for all event types the tenant emits, authenticated with
-- `Authorization: <secret>`.  opts.verify (default true) runs the verification GET first (in a task).
function Okta:webhook_target(url, secret, opts)
  opts = opts or {}
  local items = opts.events or { "user.session.start", "user.lifecycle.suspend", "user.lifecycle.unsuspend",
    "user.lifecycle.deactivate", "user.lifecycle.activate", "user.lifecycle.reactivate", "user.account.unlock_by_admin",
    "user.account.expire_password", "user.account.reset_password", "user.session.clear", "user.account.lock",
    "group.user_membership.add", "group.user_membership.remove", "app.oauth2.as.consent.revoke",
    "app.oauth2.token.revoke", "user.account.privilege.revoke", "user.lifecycle.delete.initiated" }
  local h = self:create_hook{ uri = url, items = items, auth_key = "Authorization", auth_value = secret,
                              name = opts.name or "cachost" }
  if opts.verify == false then
    h.verificationStatus = "VERIFIED"
  else
    local t = T.host("sched").spawn(function() return self:verify_hook(h) end)
    self.tasks[#self.tasks + 1] = t
  end
  return h
end

---------------------------------------------------------------------------------------------------
-- Lookups and ground truth
---------------------------------------------------------------------------------------------------
function Okta:find_user(id)
  if type(id) == "table" then return id end
  local st = self.state
  if st.by_id[id] then return st.by_id[id] end
  local l = tostring(id):lower()
  if st.by_login[l] then return st.by_login[l] end
  -- unambiguous shortname (login without domain)
  local found
  for _, u in ipairs(st.users) do
    if u.profile.login:lower():match("^([^@]+)") == l then
      if found then return nil end
      found = u
    end
  end
  return found
end

function Okta:count(what, status)
  local st = self.state
  if what == "users" then
    if not status then return #st.users end
    local n = 0
    for _, u in ipairs(st.users) do if u.status == status then n = n + 1 end end
    return n
  elseif what == "groups" then return #st.groups
  elseif what == "events" or what == "logs" then return self:log_size()
  elseif what == "stored_events" then return #st.events
  elseif what == "apps" then return #st.apps
  elseif what == "grants" then return #st.grants
  elseif what == "tokens" then return #st.tokens
  elseif what == "sessions" then return #st.sessions
  elseif what == "roles" then
    local n = 0
    for _, l in pairs(st.roles) do n = n + #l end
    return n
  end
  error("count: unknown " .. tostring(what))
end

-- Ground truth by entity, as the provider's ids (relations as "group:user", "user:role"): what a complete
-- sync of this org holds (the kill suite compares stores with it), and the lifecycle calls served.
-- Admin-granted consents belong to no user, so the per-user grants listing never shows them.
function Okta:truth()
  local st = self.state
  local t = { users = {}, groups = {}, group_members = {}, privileges = {}, app_grants = {}, activities = {} }
  for _, u in ipairs(st.users) do t.users[#t.users + 1] = u.id end
  for _, g in ipairs(st.groups) do
    t.groups[#t.groups + 1] = g.id
    for uid in pairs(g.members) do t.group_members[#t.group_members + 1] = g.id .. ":" .. uid end
  end
  for uid, list in pairs(st.roles) do
    for _, ra in ipairs(list) do t.privileges[#t.privileges + 1] = uid .. ":" .. ra.id end
  end
  for _, g in ipairs(st.grants) do
    if g.userId and g.status == "ACTIVE" then t.app_grants[#t.app_grants + 1] = g.id end
  end
  for i = 0, self.nevents - 1 do t.activities[#t.activities + 1] = T.uuid(self.seed, "uuid", i) end
  for _, rec in ipairs(st.events) do t.activities[#t.activities + 1] = rec.ev.uuid end
  -- lifecycle operations that succeeded, by "user:operation": how often governance really acted
  t.lifecycle = {}
  for _, l in ipairs(self.log) do
    local uid, op = l.path:match("/api/v1/users/([^/]+)/lifecycle/([%w_]+)$")
    if uid and l.method == "POST" and l.status == 200 then t.lifecycle[uid .. ":" .. op] = (t.lifecycle[uid .. ":" .. op] or 0) + 1 end
  end
  return t
end

---------------------------------------------------------------------------------------------------
-- Route handlers
---------------------------------------------------------------------------------------------------
local function user_target(u)
  return { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() } }
end

function Okta:gov_event(req, etype, target, extra)
  local spec = { eventType = etype, actor = req.actor, target = target, ip = req.remote and tostring(req.remote):match("^[^:]+") or "127.0.0.1",
                 request_uri = req.path, txtype = "WEB" }
  for k, v in pairs(extra or {}) do spec[k] = v end
  local ua = req.headers["user-agent"]
  if ua then spec.ua = { ua, "Unknown", "UNKNOWN", "Unknown" } end
  return self:add_event(spec)
end

local USER_FILTER_ATTRS = { status = true, lastUpdated = true, id = true, ["profile.login"] = true,
  ["profile.email"] = true, ["profile.firstName"] = true, ["profile.lastName"] = true }

function Okta:h_list_users(req)
  local q = req.query
  local list = self.state.users
  local sel = {}
  local default = 200
  local extra = {}
  if q.q and q.q ~= "" then
    local p = q.q:lower()
    for _, u in ipairs(list) do
      local pr = u.profile
      if pr.firstName:lower():sub(1, #p) == p or pr.lastName:lower():sub(1, #p) == p or pr.email:lower():sub(1, #p) == p then
        if u.status ~= "DEPROVISIONED" then sel[#sel + 1] = u end
      end
    end
    default = 10
    extra[#extra + 1] = { "q", q.q }
  elseif (q.filter and q.filter ~= "") or (q.search and q.search ~= "") then
    local expr = (q.search and q.search ~= "") and q.search or q.filter
    local f, err = T.scim_filter(expr, (q.search and q.search ~= "") and nil or USER_FILTER_ATTRS)
    if not f then
      return self:err("E0000031", "Invalid search criteria.", 400, { { errorSummary = err } })
    end
    for _, u in ipairs(list) do
      local j = self:user_json(u)
      if f(j) then sel[#sel + 1] = u end
    end
    extra[#extra + 1] = { (q.search and q.search ~= "") and "search" or "filter", expr }
  else
    for _, u in ipairs(list) do if u.status ~= "DEPROVISIONED" then sel[#sel + 1] = u end end
  end
  return self:paged(req, "/api/v1/users", sel, default, 200, function(u) return self:user_json(u) end, extra)
end

function Okta:h_get_user(req)
  local id = req.params.id
  local u = (id == "me") and self.admin or self:find_user(id)
  if not u then return self:not_found("User", id) end
  return 200, self:user_json(u), { ETag = 'W/"' .. T.hexs(16, self.seed, u.id, u.lastUpdated) .. '"' }
end

function Okta:h_user_groups(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local out = {}
  for _, g in ipairs(self.state.groups) do if g.members[u.id] then out[#out + 1] = self:group_json(g) end end
  return 200, json().array(out)
end

function Okta:h_app_links(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local out = {}
  for i, a in ipairs(self.state.apps) do
    if a.users[u.id] and a.status == "ACTIVE" then
      out[#out + 1] = { id = "00ub" .. T.b62(16, self.seed, "applink", i, u.index), label = a.label,
        linkUrl = self.base_url .. "/home/" .. a.name .. "/" .. a.id .. "/" .. i, logoUrl = self.base_url .. "/img/logos/" .. a.name .. ".png",
        appName = a.name, appInstanceId = a.id, appAssignmentId = "0ua" .. T.b62(17, self.seed, "assign", i, u.index),
        credentialsSetup = false, hidden = false, sortOrder = i - 1 }
    end
  end
  return 200, json().array(out)
end

function Okta:h_user_roles(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local out = {}
  for _, ra in ipairs(self.state.roles[u.id] or {}) do out[#out + 1] = self:role_json(ra) end
  return 200, json().array(out)
end

function Okta:h_delete_role(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local l = self.state.roles[u.id] or {}
  for i, ra in ipairs(l) do
    if ra.id == req.params.rid then
      table.remove(l, i)
      self:gov_event(req, "user.account.privilege.revoke", user_target(u))
      return 204, ""
    end
  end
  return self:not_found("RoleAssignment", req.params.rid)
end

function Okta:h_assignees(req)
  local users = {}
  for _, u in ipairs(self.state.users) do
    if self.state.roles[u.id] and #self.state.roles[u.id] > 0 then users[#users + 1] = u end
  end
  local limit = get_limit(req.query, 100, 200)
  if not limit then return self:err("E0000001", "Api validation failed: limit") end
  local page, nxt = page_after(users, req.query.after, limit)
  local vals = {}
  for i, u in ipairs(page) do
    vals[i] = { id = u.id, orn = "orn:okta:directory:" .. self.orgid .. ":users:" .. u.id,
                _links = { self = { href = self.base_url .. "/api/v1/users/" .. u.id } } }
  end
  local body = { value = json().array(vals), _links = {} }
  if nxt then
    body._links.next = { href = self.base_url .. "/api/v1/iam/assignees/users?" .. T.qs{ { "after", nxt }, { "limit", tostring(limit) } } }
  end
  return 200, body, { Link = self:links("/api/v1/iam/assignees/users", { { "limit", tostring(limit) } }, nxt) }
end

-- lifecycle transitions: action -> {from = set (nil = any), to, event, returns}
local LIFECYCLE = {
  suspend = { from = { ACTIVE = true }, to = "SUSPENDED", event = "user.lifecycle.suspend",
              err = "Cannot suspend a user that is not active" },
  unsuspend = { from = { SUSPENDED = true }, to = "ACTIVE", event = "user.lifecycle.unsuspend",
                err = "Cannot unsuspend a user that is not suspended" },
  unlock = { from = { LOCKED_OUT = true }, to = "ACTIVE", event = "user.account.unlock_by_admin",
             err = "Cannot unlock a user that is not locked out" },
  deactivate = { notfrom = { DEPROVISIONED = true }, to = "DEPROVISIONED", event = "user.lifecycle.deactivate" },
  activate = { from = { STAGED = true, PROVISIONED = true, DEPROVISIONED = true }, to = "PROVISIONED", event = "user.lifecycle.activate",
               err = "Activation failed because the user is already active" },
  reactivate = { from = { PROVISIONED = true }, to = "PROVISIONED", event = "user.lifecycle.reactivate",
                 err = "Cannot reactivate a user that is not provisioned" },
  expire_password = { notfrom = { DEPROVISIONED = true, STAGED = true, SUSPENDED = true }, to = "PASSWORD_EXPIRED", event = "user.account.expire_password" },
  expire_password_with_temp_password = { notfrom = { DEPROVISIONED = true, STAGED = true, SUSPENDED = true }, to = "PASSWORD_EXPIRED", event = "user.account.expire_password" },
  reset_password = { notfrom = { DEPROVISIONED = true, STAGED = true, SUSPENDED = true }, to = "RECOVERY", event = "user.account.reset_password" },
  reset_factors = { notfrom = { DEPROVISIONED = true, STAGED = true }, event = "user.mfa.factor.reset_all" },
}

function Okta:set_status(u, status)
  local now = self:now_ms()
  if u.status ~= status then u.status = status; u.statusChanged = now end
  if status == "ACTIVE" and not u.activated then u.activated = now end
  u.lastUpdated = now
end

function Okta:revoke_user_sessions(req, u, oauth)
  local kept = {}
  local n = 0
  for _, s in ipairs(self.state.sessions) do
    if s.userId == u.id then self.state.session_by_id[s.id] = nil; n = n + 1 else kept[#kept + 1] = s end
  end
  self.state.sessions = kept
  if oauth then self:revoke_tokens(req, function(t) return t.userId == u.id end) end
  return n
end

function Okta:revoke_tokens(req, pred)
  local kept, n = {}, 0
  for _, t in ipairs(self.state.tokens) do
    if pred(t) then
      n = n + 1
      local u = self.state.by_id[t.userId]
      self:gov_event(req, "app.oauth2.token.revoke", { { id = t.id, type = "RefreshToken", alternateId = t.clientId,
        displayName = "refresh token", detailEntry = jnull() } }, { user = u })
    else kept[#kept + 1] = t end
  end
  self.state.tokens = kept
  return n
end

function Okta:revoke_grants(req, pred)
  local kept, n = {}, 0
  for _, g in ipairs(self.state.grants) do
    if pred(g) then
      n = n + 1
      self:gov_event(req, "app.oauth2.as.consent.revoke", { { id = g.id, type = "OAuth2Grant", alternateId = g.scopeId,
        displayName = g.scopeId, detailEntry = jnull() } })
    else kept[#kept + 1] = g end
  end
  self.state.grants = kept
  return n
end

function Okta:h_lifecycle(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local action = req.params.action
  local L = LIFECYCLE[action]
  if not L then return self:not_found("Resource", req.path) end
  if action == "reset_password" and (req.query.sendEmail == nil or req.query.sendEmail == "") then
    return self:err("E0000028", "The request is missing a required parameter.", 400, { { errorSummary = "sendEmail" } })
  end
  if (L.from and not L.from[u.status]) or (L.notfrom and L.notfrom[u.status]) then
    if u.status == "DEPROVISIONED" then return self:err("E0000038") end
    return self:err("E0000001", "Api validation failed: " .. (L.err or action), 400,
                    { { errorSummary = L.err or ("This operation is not allowed in the user's current status.") } })
  end
  if L.to then self:set_status(u, L.to) else u.lastUpdated = self:now_ms() end
  if action == "deactivate" then
    -- deprovisioned users lose sessions and tokens
    self:revoke_user_sessions(req, u, false)
  end
  if (action == "reset_password" or action == "expire_password_with_temp_password") and req.query.revokeSessions == "true" then
    self:revoke_user_sessions(req, u, false)
  end
  if action == "activate" and req.query.sendEmail == "false" then
    -- activation without email returns an activation token
  end
  self:gov_event(req, L.event, user_target(u))
  if action == "expire_password" then
    return 200, self:user_json(u)
  elseif action == "expire_password_with_temp_password" then
    return 200, { tempPassword = T.b62(10, self.seed, "temp", u.id, self.seq), user = self:user_json(u) }
  elseif action == "reset_password" then
    if req.query.sendEmail == "false" then
      return 200, { summary = "Reset password without sending email",
                    resetPasswordUrl = self.base_url .. "/reset_password/" .. T.b62(20, self.seed, "reset", u.id, self.seq) }
    end
    return 200, setmetatable({}, { __jsontype = "object" })
  elseif action == "activate" then
    if req.query.sendEmail == "false" then
      local tok = T.b62(20, self.seed, "act", u.id, self.seq)
      return 200, { activationUrl = self.base_url .. "/welcome/" .. tok, activationToken = tok }
    end
    return 200, setmetatable({}, { __jsontype = "object" })
  end
  return 200, setmetatable({}, { __jsontype = "object" })
end

function Okta:h_delete_user(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  if u.status ~= "DEPROVISIONED" then
    self:set_status(u, "DEPROVISIONED")
    self:revoke_user_sessions(req, u, false)
    self:gov_event(req, "user.lifecycle.deactivate", user_target(u))
    return 204, ""
  end
  local st = self.state
  for i, x in ipairs(st.users) do if x == u then table.remove(st.users, i); break end end
  st.by_id[u.id] = nil
  st.by_login[u.profile.login:lower()] = nil
  for _, g in ipairs(st.groups) do g.members[u.id] = nil end
  st.roles[u.id] = nil
  self:gov_event(req, "user.lifecycle.delete.initiated", user_target(u))
  return 204, ""
end

function Okta:h_user_sessions_delete(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  self:revoke_user_sessions(req, u, req.query.oauthTokens == "true")
  self:gov_event(req, "user.session.clear", user_target(u))
  return 204, ""
end

function Okta:h_user_grants(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local sel = {}
  for _, g in ipairs(self.state.grants) do
    if g.userId == u.id and (not req.query.scopeId or req.query.scopeId == g.scopeId) then sel[#sel + 1] = g end
  end
  local expand = req.query.expand == "scope"
  return self:paged(req, "/api/v1/users/" .. u.id .. "/grants", sel, 20, 200, function(g) return self:grant_json(g, expand) end)
end

function Okta:h_user_grants_delete(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local gid, cid = req.params.gid, req.params.cid
  local n = self:revoke_grants(req, function(g)
    return g.userId == u.id and (not gid or g.id == gid) and (not cid or g.clientId == cid)
  end)
  if gid and n == 0 then return self:not_found("OAuth2Grant", gid) end
  return 204, ""
end

function Okta:h_user_clients(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local seen, out = {}, {}
  local function add(cid)
    if seen[cid] then return end
    seen[cid] = true
    local a = self.state.app_by_id[cid]
    local b = self.base_url .. "/api/v1/users/" .. u.id .. "/clients/" .. cid
    out[#out + 1] = { client_id = cid, client_name = a and a.label or cid, client_uri = jnull(), logo_uri = jnull(),
                      _links = { grants = { href = b .. "/grants" }, tokens = { href = b .. "/tokens" } } }
  end
  for _, g in ipairs(self.state.grants) do if g.userId == u.id then add(g.clientId) end end
  for _, t in ipairs(self.state.tokens) do if t.userId == u.id then add(t.clientId) end end
  return 200, json().array(out)
end

function Okta:h_user_client_tokens(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local cid = req.params.cid
  local sel = {}
  for _, t in ipairs(self.state.tokens) do if t.userId == u.id and t.clientId == cid then sel[#sel + 1] = t end end
  local expand = req.query.expand == "scope"
  return self:paged(req, "/api/v1/users/" .. u.id .. "/clients/" .. cid .. "/tokens", sel, 20, 200,
                    function(t) return self:token_json(t, expand) end)
end

function Okta:h_user_client_grants(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local cid = req.params.cid
  local sel = {}
  for _, g in ipairs(self.state.grants) do if g.userId == u.id and g.clientId == cid then sel[#sel + 1] = g end end
  return self:paged(req, "/api/v1/users/" .. u.id .. "/clients/" .. cid .. "/grants", sel, 20, 200,
                    function(g) return self:grant_json(g, req.query.expand == "scope") end)
end

function Okta:h_user_client_tokens_delete(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local cid, tid = req.params.cid, req.params.tid
  local n = self:revoke_tokens(req, function(t) return t.userId == u.id and t.clientId == cid and (not tid or t.id == tid) end)
  if tid and n == 0 then return self:not_found("OAuth2RefreshToken", tid) end
  return 204, ""
end

function Okta:h_list_groups(req)
  local q = req.query
  local sel = {}
  local extra = {}
  if q.q and q.q ~= "" then
    local p = q.q:lower()
    for _, g in ipairs(self.state.groups) do if g.name:lower():sub(1, #p) == p then sel[#sel + 1] = g end end
    extra[#extra + 1] = { "q", q.q }
  elseif (q.filter and q.filter ~= "") or (q.search and q.search ~= "") then
    local expr = (q.search and q.search ~= "") and q.search or q.filter
    local f, err = T.scim_filter(expr)
    if not f then return self:err("E0000031", "Invalid search criteria.", 400, { { errorSummary = err } }) end
    for _, g in ipairs(self.state.groups) do if f(self:group_json(g)) then sel[#sel + 1] = g end end
    extra[#extra + 1] = { (q.search and q.search ~= "") and "search" or "filter", expr }
  else
    sel = self.state.groups
  end
  return self:paged(req, "/api/v1/groups", sel, 10000, 10000, function(g) return self:group_json(g) end, extra)
end

function Okta:h_get_group(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  return 200, self:group_json(g)
end

function Okta:h_group_users(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  local sel = {}
  for _, u in ipairs(self.state.users) do if g.members[u.id] then sel[#sel + 1] = u end end
  return self:paged(req, "/api/v1/groups/" .. g.id .. "/users", sel, 1000, 1000, function(u) return self:user_json(u) end)
end

function Okta:h_group_member(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  local u = self:find_user(req.params.uid)
  if not u then return self:not_found("User", req.params.uid) end
  local tgt = user_target(u)
  tgt[2] = { id = g.id, type = "UserGroup", alternateId = "unknown", displayName = g.name, detailEntry = jnull() }
  if req.method == "DELETE" then
    if g.type == "BUILT_IN" then return self:err("E0000006") end
    if g.members[u.id] then
      g.members[u.id] = nil
      g.lastMembershipUpdated = self:now_ms()
      self:gov_event(req, "group.user_membership.remove", tgt)
    end
  else
    if not g.members[u.id] then
      g.members[u.id] = true
      g.lastMembershipUpdated = self:now_ms()
      self:gov_event(req, "group.user_membership.add", tgt)
    end
  end
  return 204, ""
end

function Okta:h_group_roles(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  return 200, json().array({})
end

function Okta:h_list_apps(req)
  local sel = {}
  local q = req.query
  local f
  if q.filter and q.filter ~= "" then
    local uid = q.filter:match('^user%.id eq "([^"]+)"$')
    local gid = q.filter:match('^group%.id eq "([^"]+)"$')
    if uid then f = function(a) return a.users[uid] end
    elseif gid then
      local g = self.state.group_by_id[gid]
      f = function() return g ~= nil and false end
    else
      local p, err = T.scim_filter(q.filter)
      if not p then return self:err("E0000031", "Invalid search criteria.", 400, { { errorSummary = err } }) end
      f = function(a) return p(self:app_json(a)) end
    end
  end
  for _, a in ipairs(self.state.apps) do
    if (not f or f(a)) and (not q.q or q.q == "" or a.label:lower():sub(1, #q.q) == q.q:lower() or a.name:lower():sub(1, #q.q) == q.q:lower()) then
      sel[#sel + 1] = a
    end
  end
  local extra = {}
  if q.filter then extra[#extra + 1] = { "filter", q.filter } end
  if q.q then extra[#extra + 1] = { "q", q.q } end
  return self:paged(req, "/api/v1/apps", sel, 200, 200, function(a) return self:app_json(a) end, extra)
end

function Okta:app_or_404(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return nil, self:not_found("Application", req.params.aid) end
  return a
end

function Okta:h_get_app(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  return 200, self:app_json(a)
end

function Okta:h_app_users(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local sel = {}
  for _, u in ipairs(self.state.users) do if a.users[u.id] then sel[#sel + 1] = u end end
  return self:paged(req, "/api/v1/apps/" .. a.id .. "/users", sel, 50, 500, function(u)
    return { id = u.id, externalId = jnull(), created = iso(u.created), lastUpdated = iso(u.lastUpdated), scope = "USER",
             status = "ACTIVE", statusChanged = iso(u.statusChanged), passwordChanged = jnull(), syncState = "DISABLED",
             credentials = { userName = u.profile.login }, profile = setmetatable({}, { __jsontype = "object" }),
             _links = { app = { href = self.base_url .. "/api/v1/apps/" .. a.id }, user = { href = self.base_url .. "/api/v1/users/" .. u.id } } }
  end)
end

function Okta:h_app_user_delete(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local u = self:find_user(req.params.uid)
  if not u or not a.users[u.id] then return self:not_found("AppUser", req.params.uid) end
  a.users[u.id] = nil
  local tgt = user_target(u)
  tgt[2] = { id = a.id, type = "AppInstance", alternateId = a.label, displayName = a.label, detailEntry = jnull() }
  self:gov_event(req, "application.user_membership.remove", tgt)
  return 204, ""
end

function Okta:h_app_grants(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local out = {}
  for _, g in ipairs(self.state.grants) do
    if g.appId == a.id and not g.userId then out[#out + 1] = self:grant_json(g, req.query.expand == "scope") end
  end
  return 200, json().array(out)
end

function Okta:h_app_grant_delete(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local gid = req.params.gid
  local n = self:revoke_grants(req, function(g) return g.appId == a.id and g.id == gid end)
  if n == 0 then return self:not_found("OAuth2ScopeConsentGrant", gid) end
  return 204, ""
end

function Okta:h_app_tokens(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local sel = {}
  for _, t in ipairs(self.state.tokens) do if t.appId == a.id then sel[#sel + 1] = t end end
  return self:paged(req, "/api/v1/apps/" .. a.id .. "/tokens", sel, 20, 200, function(t) return self:token_json(t, req.query.expand == "scope") end)
end

function Okta:h_app_tokens_delete(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local tid = req.params.tid
  local n = self:revoke_tokens(req, function(t) return t.appId == a.id and (not tid or t.id == tid) end)
  if tid and n == 0 then return self:not_found("OAuth2RefreshToken", tid) end
  return 204, ""
end

function Okta:h_app_lifecycle(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local act = req.params.action
  if act == "deactivate" then
    a.status = "INACTIVE"
    self:gov_event(req, "application.lifecycle.deactivate", { { id = a.id, type = "AppInstance", alternateId = a.label, displayName = a.label, detailEntry = jnull() } })
  elseif act == "activate" then
    a.status = "ACTIVE"
  else
    return self:not_found("Resource", req.path)
  end
  a.lastUpdated = self:now_ms()
  return 200, setmetatable({}, { __jsontype = "object" })
end

function Okta:h_session(req)
  local s = self.state.session_by_id[req.params.sid]
  if not s then return self:not_found("Session", req.params.sid) end
  if req.method == "DELETE" then
    self.state.session_by_id[s.id] = nil
    for i, x in ipairs(self.state.sessions) do if x == s then table.remove(self.state.sessions, i); break end end
    local u = self.state.by_id[s.userId]
    self:gov_event(req, "user.session.clear", u and user_target(u) or {})
    return 204, ""
  end
  local b = self.base_url .. "/api/v1/sessions/" .. s.id
  return 200, { id = s.id, userId = s.userId, login = s.login, createdAt = iso(s.createdAt),
                expiresAt = iso(s.createdAt + 7200000), status = "ACTIVE", lastPasswordVerification = iso(s.createdAt),
                lastFactorVerification = jnull(), amr = json().array({ "pwd" }),
                idp = { id = self.orgid, type = "OKTA" }, mfaActive = false,
                _links = { self = { href = b }, refresh = { href = b .. "/lifecycle/refresh" },
                           user = { href = self.base_url .. "/api/v1/users/" .. s.userId } } }
end

function Okta:h_logs(req)
  local q = req.query
  local events, cursor, limit_or_err = self:query_log(q)
  if not events then
    return self:err("E0000001", "Api validation failed: " .. tostring(cursor), 400,
                    { { errorSummary = "Invalid value for parameter " .. tostring(cursor) } })
  end
  local params = {}
  for _, k in ipairs({ "since", "until", "filter", "q" }) do
    if q[k] and q[k] ~= "" then params[#params + 1] = { k, q[k] } end
  end
  params[#params + 1] = { "limit", tostring(limit_or_err) }
  if q.sortOrder and q.sortOrder ~= "" then params[#params + 1] = { "sortOrder", q.sortOrder } end
  local self_params = {}
  for i, kv in ipairs(params) do self_params[i] = kv end
  if q.after and q.after ~= "" then self_params[#self_params + 1] = { "after", q.after } end
  local links = { { self.base_url .. "/api/v1/logs?" .. T.qs(self_params), "self" } }
  if cursor then
    local np = {}
    for i, kv in ipairs(params) do np[i] = kv end
    np[#np + 1] = { "after", cursor }
    links[#links + 1] = { self.base_url .. "/api/v1/logs?" .. T.qs(np), "next" }
  end
  return 200, json().array(events), { Link = T.link(links) }
end

-- event hooks API
function Okta:h_hooks(req)
  if req.method == "GET" then
    local out = {}
    for i, h in ipairs(self.state.hooks) do out[i] = self:hook_json(h) end
    return 200, json().array(out)
  end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" then return self:err("E0000003") end
  local ch = body.channel or {}
  local cfg = ch.config or {}
  if type(body.name) ~= "string" or type(cfg.uri) ~= "string" or type(body.events) ~= "table" then
    return self:err("E0000001", "Api validation failed: eventHook", 400, { { errorSummary = "name, events and channel.config.uri are required" } })
  end
  if #self.state.hooks >= 25 then return self:err("E0000001", "Api validation failed: maximum number of event hooks reached") end
  local auth = cfg.authScheme
  local h = self:create_hook{ name = body.name, description = body.description ~= json().null and body.description or nil,
    items = body.events.items or {}, uri = cfg.uri, headers = cfg.headers ~= json().null and cfg.headers or {},
    auth_key = type(auth) == "table" and auth.key or nil, auth_value = type(auth) == "table" and auth.value or nil }
  return 200, self:hook_json(h)
end

function Okta:hook_or_404(id)
  for _, h in ipairs(self.state.hooks) do if h.id == id then return h end end
end

function Okta:h_hook(req)
  local h = self:hook_or_404(req.params.hid)
  if not h then return self:not_found("EventHook", req.params.hid) end
  if req.method == "DELETE" then
    if h.status == "ACTIVE" then return self:err("E0000001", "Api validation failed: Cannot delete an ACTIVE event hook") end
    for i, x in ipairs(self.state.hooks) do if x == h then table.remove(self.state.hooks, i) break end end
    return 204, ""
  end
  return 200, self:hook_json(h)
end

function Okta:h_hook_lifecycle(req)
  local h = self:hook_or_404(req.params.hid)
  if not h then return self:not_found("EventHook", req.params.hid) end
  local act = req.params.action
  if act == "verify" then
    local ok = self:verify_hook(h)
    if not ok then
      return self:err("E0000001", "Api validation failed: Verification of the event hook failed", 400,
                      { { errorSummary = "Event hook verification failed" } })
    end
    self:add_event{ eventType = "event_hook.verified", actor = req.actor,
                    target = { { id = h.id, type = "EventHook", alternateId = h.name, displayName = h.name, detailEntry = jnull() } } }
  elseif act == "activate" then h.status = "ACTIVE"
  elseif act == "deactivate" then h.status = "INACTIVE"
  else return self:not_found("Resource", req.path) end
  h.lastUpdated = self:now_ms()
  return 200, self:hook_json(h)
end

-- OAuth 2.0 client credentials with private_key_jwt
local function oauth_err(status, code, desc)
  return status, { error = code, error_description = desc }, { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" }
end

function Okta:h_token(req)
  local ct = (req.headers["content-type"] or ""):lower()
  if not ct:find("application/x-www-form-urlencoded", 1, true) then
    return oauth_err(400, "invalid_request", "The request must be application/x-www-form-urlencoded.")
  end
  local f = T.parse_form(req.body)
  if f.grant_type ~= "client_credentials" then
    return oauth_err(400, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].")
  end
  if f.client_assertion_type ~= "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or not f.client_assertion then
    return oauth_err(401, "invalid_client", "Client authentication failed. Either the client or the client credentials are invalid.")
  end
  local h64, p64, s64 = f.client_assertion:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  local cr = crypto()
  local header = h64 and json().decode(cr.unb64url(h64) or "")
  local claims = p64 and json().decode(cr.unb64url(p64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" then
    return oauth_err(401, "invalid_client", "The client_assertion token is invalid.")
  end
  if header.alg ~= "RS256" then
    return oauth_err(401, "invalid_client", "The client_assertion token has an unsupported signing algorithm.")
  end
  local c = self.clients[claims.iss]
  if not c or (f.client_id and f.client_id ~= claims.iss) then
    return oauth_err(401, "invalid_client", "The client_assertion token contains an unknown client.")
  end
  if not cr.rs256_verify(c.public_key, h64 .. "." .. p64, cr.unb64url(s64) or "") then
    return oauth_err(401, "invalid_client", "The client_assertion signature is invalid.")
  end
  local now = self:wall_s()
  if claims.sub ~= claims.iss then
    return oauth_err(401, "invalid_client", "The client_assertion token must have an 'iss' claim that matches the 'sub' claim.")
  end
  if claims.aud ~= self.base_url .. "/oauth2/v1/token" then
    return oauth_err(401, "invalid_client", "The audience claim for client_assertion must be the endpoint invoked for the request.")
  end
  if type(claims.exp) ~= "number" or claims.exp <= now then
    return oauth_err(401, "invalid_client", "The client_assertion token is expired.")
  end
  if type(claims.iat) == "number" and claims.exp - claims.iat > 3600 then
    return oauth_err(401, "invalid_client", "The client_assertion token has an expiration too far in the future.")
  end
  if claims.jti then
    if self.used_jti[claims.jti] then
      return oauth_err(401, "invalid_client", "The client_assertion token has already been used.")
    end
    self.used_jti[claims.jti] = true
  end
  if not f.scope or f.scope == "" then
    return oauth_err(400, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.")
  end
  local granted = {}
  for _, s in ipairs(c.scopes) do granted[s] = true end
  local set, list = {}, {}
  for s in f.scope:gmatch("%S+") do
    if not granted[s] then
      return oauth_err(400, "invalid_scope", "The following scopes are not allowed: [" .. s .. "].")
    end
    set[s] = true; list[#list + 1] = s
  end
  local tok = cr.b64url(cr.random(32))
  self.access_tokens[tok] = { client_id = c.client_id, scopes = set, exp = now + 3600 }
  return 200, { token_type = "Bearer", expires_in = 3600, access_token = tok, scope = table.concat(list, " ") },
         { ["Cache-Control"] = "no-store", Pragma = "no-cache" }
end

function Okta:h_revoke(req)
  local f = T.parse_form(req.body)
  if f.token and self.access_tokens[f.token] then self.access_tokens[f.token] = nil end
  return 200, ""
end

---------------------------------------------------------------------------------------------------
-- Mount
---------------------------------------------------------------------------------------------------
function Okta:mount(srv, prefix)
  local U, G, R, L, A, S, H = { scope = "okta.users" }, { scope = "okta.groups" }, { scope = "okta.roles" },
    { scope = "okta.logs.read" }, { scope = "okta.apps" }, { scope = "okta.sessions" }, { scope = "okta.eventHooks" }
  local routes = {
    { "GET", "/api/v1/users", Okta.h_list_users, U },
    { "GET", "/api/v1/users/:id", Okta.h_get_user, U },
    { "DELETE", "/api/v1/users/:id", Okta.h_delete_user, U },
    { "GET", "/api/v1/users/:id/groups", Okta.h_user_groups, U },
    { "GET", "/api/v1/users/:id/appLinks", Okta.h_app_links, U },
    { "GET", "/api/v1/users/:id/roles", Okta.h_user_roles, R },
    { "DELETE", "/api/v1/users/:id/roles/:rid", Okta.h_delete_role, R },
    { "POST", "/api/v1/users/:id/lifecycle/:action", Okta.h_lifecycle, U },
    { "DELETE", "/api/v1/users/:id/sessions", Okta.h_user_sessions_delete, { scope = "okta.users.manage" } },
    { "GET", "/api/v1/users/:id/grants", Okta.h_user_grants, U },
    { "DELETE", "/api/v1/users/:id/grants", Okta.h_user_grants_delete, U },
    { "DELETE", "/api/v1/users/:id/grants/:gid", Okta.h_user_grants_delete, U },
    { "GET", "/api/v1/users/:id/clients", Okta.h_user_clients, U },
    { "GET", "/api/v1/users/:id/clients/:cid/tokens", Okta.h_user_client_tokens, U },
    { "DELETE", "/api/v1/users/:id/clients/:cid/tokens", Okta.h_user_client_tokens_delete, U },
    { "DELETE", "/api/v1/users/:id/clients/:cid/tokens/:tid", Okta.h_user_client_tokens_delete, U },
    { "GET", "/api/v1/users/:id/clients/:cid/grants", Okta.h_user_client_grants, U },
    { "DELETE", "/api/v1/users/:id/clients/:cid/grants", Okta.h_user_grants_delete, U },
    { "GET", "/api/v1/groups", Okta.h_list_groups, G },
    { "GET", "/api/v1/groups/:gid", Okta.h_get_group, G },
    { "GET", "/api/v1/groups/:gid/users", Okta.h_group_users, G },
    { "PUT", "/api/v1/groups/:gid/users/:uid", Okta.h_group_member, G },
    { "DELETE", "/api/v1/groups/:gid/users/:uid", Okta.h_group_member, G },
    { "GET", "/api/v1/groups/:gid/roles", Okta.h_group_roles, R },
    { "GET", "/api/v1/iam/assignees/users", Okta.h_assignees, R },
    { "GET", "/api/v1/apps", Okta.h_list_apps, A },
    { "GET", "/api/v1/apps/:aid", Okta.h_get_app, A },
    { "GET", "/api/v1/apps/:aid/users", Okta.h_app_users, A },
    { "DELETE", "/api/v1/apps/:aid/users/:uid", Okta.h_app_user_delete, A },
    { "GET", "/api/v1/apps/:aid/grants", Okta.h_app_grants, A },
    { "DELETE", "/api/v1/apps/:aid/grants/:gid", Okta.h_app_grant_delete, A },
    { "GET", "/api/v1/apps/:aid/tokens", Okta.h_app_tokens, A },
    { "DELETE", "/api/v1/apps/:aid/tokens", Okta.h_app_tokens_delete, A },
    { "DELETE", "/api/v1/apps/:aid/tokens/:tid", Okta.h_app_tokens_delete, A },
    { "POST", "/api/v1/apps/:aid/lifecycle/:action", Okta.h_app_lifecycle, A },
    { "GET", "/api/v1/sessions/:sid", Okta.h_session, S },
    { "DELETE", "/api/v1/sessions/:sid", Okta.h_session, S },
    { "GET", "/api/v1/logs", Okta.h_logs, L },
    { "GET", "/api/v1/eventHooks", Okta.h_hooks, H },
    { "POST", "/api/v1/eventHooks", Okta.h_hooks, H },
    { "GET", "/api/v1/eventHooks/:hid", Okta.h_hook, H },
    { "DELETE", "/api/v1/eventHooks/:hid", Okta.h_hook, H },
    { "POST", "/api/v1/eventHooks/:hid/lifecycle/:action", Okta.h_hook_lifecycle, H },
    { "POST", "/oauth2/v1/token", Okta.h_token, { noauth = true } },
    { "POST", "/oauth2/v1/revoke", Okta.h_revoke, { noauth = true } },
    { "*", "/api/v1/*", function(t, req) return t:not_found("Resource", req.path) end, {} },
  }
  return self:mount_routes(srv, prefix, routes)
end

M.SCOPES = SCOPES
return M
