-- sandbox/okta/org.lua — the Okta org emulator's core: the generated org (users, groups, admin roles,
-- apps, grants, tokens, sessions), Okta's error body, the `after`/Link paging, lookups and ground truth.
-- The API surfaces add their methods and routes to the Okta class in the files beside this one
-- (auth, users, groups, apps, logs, hooks); init.lua mounts them.
local T = require "sandbox.tenant"

local O = { T = T }
local Okta = setmetatable({}, { __index = T.Base })
Okta.__index = Okta
Okta.default_rate_limit = 600
O.Okta = Okta

local function json() return T.host("json") end
local function jnull() return json().null end
O.json, O.jnull = json, jnull
O.crypto = function() return T.host("crypto") end

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
  "okta.sessions.manage", "okta.eventHooks.read", "okta.eventHooks.manage", "okta.apiTokens.read",
  "okta.apiTokens.manage",
}

O.CITIES, O.FOREIGN, O.UAS, O.SCOPES = CITIES, FOREIGN, UAS, SCOPES

---------------------------------------------------------------------------------------------------
-- Construction
---------------------------------------------------------------------------------------------------
function O.new(opts)
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
    -- dpop: the app's "Require Demonstrating Proof of Possession (DPoP) header in token requests"
    self.clients[c.client_id] = { client_id = c.client_id, public_key = c.public_key, scopes = c.scopes or SCOPES,
                                  dpop = c.dpop or false,
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
  local function mkgroup(i, name, gtype, desc, rr)
    rr = rr or r
    local g = { id = "00g" .. T.b62(17, seed, "group", i), created = now - rr:int(400, 1200) * 86400000,
                type = gtype, name = name, description = desc, members = {}, index = i }
    g.lastUpdated = g.created + rr:int(1, 300) * 86400000
    g.lastMembershipUpdated = now - rr:int(1, 60) * 86400000
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

  -- A role held through a group (assignmentType GROUP): a small "Help Desk" group whose members hold
  -- Help Desk administrator.  Its own random stream: the rest of the org is generated as before.
  local rg = T.rng(seed, "okta-group-roles")
  local hd = mkgroup(#glist + 1, "Help Desk", "OKTA_GROUP", "Help desk staff", rg)
  for _ = 1, math.min(3, #gen) do hd.members[rg:pick(gen).id] = true end
  table.sort(st.groups, function(a, b) return a.id < b.id end)
  st.group_roles = { [hd.id] = { { id = "gra" .. T.b62(17, seed, "grouprole", 1), type = "HELP_DESK_ADMIN",
    label = "Help Desk Administrator", status = "ACTIVE", created = hd.created + 86400000,
    lastUpdated = hd.created + 86400000, assignmentType = "GROUP", group = hd.id } } }

  -- API tokens (SSWS): the sandbox's own, of the super admin, and one of another admin; MFA factors
  local function api_token(k, u, name, secret)
    local created = now - rg:int(1, 60) * 86400000
    return { id = "00T" .. T.b62(17, seed, "apitoken", k), name = name, userId = u.id, clientName = "Okta API",
             created = created, lastUpdated = created, expiresAt = created + 30 * 86400000, tokenWindow = "P30D",
             secret = secret }
  end
  st.api_tokens = { api_token(1, gen[1], "cachost", self.token) }
  for i = 2, #gen do
    if st.roles[gen[i].id] then
      st.api_tokens[2] = api_token(2, gen[i], "provisioning script", "00" .. T.b62(40, seed, "apitoken-secret", 2))
      break
    end
  end
  table.sort(st.api_tokens, function(a, b) return a.id < b.id end)
  for _, u in ipairs(gen) do u.factors = (u.activated and u.status ~= "DEPROVISIONED") and rg:int(1, 2) or 0 end

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


local function iso(ms) if ms == nil then return jnull() end return T.iso_ms(ms) end
O.iso = iso

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

O.page_after, O.get_limit = page_after, get_limit

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
  elseif what == "roles" then           -- admin role assignments, one per holder (group ones per member)
    return #self:truth().privileges
  elseif what == "api_tokens" then return #st.api_tokens
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
  for gid, list in pairs(st.group_roles) do
    for uid in pairs(st.group_by_id[gid].members) do
      for _, ra in ipairs(list) do t.privileges[#t.privileges + 1] = uid .. ":" .. ra.id end
    end
  end
  -- app grants: users' consents, app assignments ("app:user") and API tokens
  for _, g in ipairs(st.grants) do
    if g.userId and g.status == "ACTIVE" then t.app_grants[#t.app_grants + 1] = g.id end
  end
  for _, a in ipairs(st.apps) do
    for uid in pairs(a.users) do t.app_grants[#t.app_grants + 1] = a.id .. ":" .. uid end
  end
  for _, k in ipairs(st.api_tokens) do t.app_grants[#t.app_grants + 1] = k.id end
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


local function user_target(u)
  return { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() } }
end
O.user_target = user_target

-- the System Log event of a change made through the API, by the request's actor
function Okta:gov_event(req, etype, target, extra)
  local spec = { eventType = etype, actor = req.actor, target = target, ip = req.remote and tostring(req.remote):match("^[^:]+") or "127.0.0.1",
                 request_uri = req.path, txtype = "WEB" }
  for k, v in pairs(extra or {}) do spec[k] = v end
  local ua = req.headers["user-agent"]
  if ua then spec.ua = { ua, "Unknown", "UNKNOWN", "Unknown" } end
  return self:add_event(spec)
end

return O
