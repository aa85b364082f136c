-- sandbox/servicenow/instance.lua — the ServiceNow instance emulator's core: the tables it serves (their
-- fields, reference fields and the roles their ACLs ask for), the generated instance (users, groups,
-- roles, sign-in events, audit history, attachments, OAuth registries and tokens), ServiceNow's error
-- body, its date format, and the ground truth.  Reference: shared/api/servicenow.md.
-- The API surfaces (auth.lua, table.lua, attachment.lua) add their methods and routes to the class.
local T = require "sandbox.tenant"

local S = { T = T }
local Now = setmetatable({}, { __index = T.Base })
Now.__index = Now
S.Now = Now

local function json() return T.host("json") end
S.json = json
S.crypto = function() return T.host("crypto") end

---------------------------------------------------------------------------------------------- tables
-- Each table: its fields (every value a string), the reference fields and the table they point at, the
-- field shown as a reference's display value, and the roles its read and write ACLs accept (admin passes
-- every ACL).  Reading sys_user* needs user_admin; the event queue and the audit log admin; the OAuth
-- tables oauth_admin (shared/api/servicenow.md §1).
local USER_ADMIN, ADMIN, OAUTH = { "user_admin" }, {}, { "oauth_admin" }
local COMMON = { "sys_id", "sys_created_on", "sys_created_by", "sys_updated_on", "sys_updated_by", "sys_mod_count" }
local TABLES = {
  sys_user = { display = "name", read = USER_ADMIN, write = USER_ADMIN, refs = { manager = "sys_user" },
    fields = { "user_name", "first_name", "last_name", "name", "email", "active", "locked_out", "password_needs_reset",
      "failed_attempts", "last_login_time", "last_login", "web_service_access_only", "internal_integration_user",
      "title", "department", "manager", "source" } },
  sys_user_group = { display = "name", read = USER_ADMIN, write = USER_ADMIN,
    refs = { manager = "sys_user", parent = "sys_user_group" },
    fields = { "name", "description", "active", "manager", "email", "parent", "type", "roles" } },
  sys_user_grmember = { read = USER_ADMIN, write = USER_ADMIN, refs = { user = "sys_user", group = "sys_user_group" },
    fields = { "user", "group" } },
  sys_user_role = { display = "name", read = USER_ADMIN, write = ADMIN,
    fields = { "name", "description", "elevated_privilege", "suffix" } },
  sys_user_has_role = { read = USER_ADMIN, write = ADMIN,
    refs = { user = "sys_user", role = "sys_user_role", granted_by = "sys_user_group" },
    fields = { "user", "role", "inherited", "granted_by", "state", "inh_count" } },
  sys_group_has_role = { read = USER_ADMIN, write = ADMIN, refs = { group = "sys_user_group", role = "sys_user_role" },
    fields = { "group", "role", "inherits" } },
  sysevent = { read = ADMIN, write = ADMIN,
    fields = { "name", "parm1", "parm2", "instance", "table", "uri", "queue", "state", "process_on", "processed", "claimed_by" } },
  sys_audit = { read = ADMIN, write = ADMIN,
    fields = { "tablename", "documentkey", "fieldname", "oldvalue", "newvalue", "user", "reason", "record_checkpoint",
      "internal_checkpoint" } },
  -- any signed-in user reads sys_attachment, but only the rows of records they may read (Now:row_readable)
  sys_attachment = { display = "file_name", read = { "*" }, write = ADMIN,
    fields = { "file_name", "content_type", "size_bytes", "size_compressed", "compressed", "table_name", "table_sys_id",
      "hash", "state" } },
  oauth_entity = { display = "name", read = OAUTH, write = OAUTH,
    fields = { "name", "client_id", "active", "type", "access_token_lifespan", "refresh_token_lifespan", "redirect_url" } },
  oauth_credential = { read = OAUTH, write = OAUTH, refs = { user = "sys_user", peer = "oauth_entity" },
    fields = { "user", "peer", "type", "expires", "scope", "token_received" } },
  incident = { display = "number", read = { "itil" }, write = { "itil" }, refs = { caller_id = "sys_user" },
    fields = { "number", "short_description", "caller_id", "state" } },
}
for _, t in pairs(TABLES) do
  t.refs = t.refs or {}
  local all, set = {}, {}
  for _, f in ipairs(COMMON) do all[#all + 1] = f end
  for _, f in ipairs(t.fields) do all[#all + 1] = f end
  for _, f in ipairs(all) do set[f] = true end
  t.all, t.has = all, set
end
S.TABLES = TABLES

local ROLES = {
  { "admin", "Administrator: passes every ACL" }, { "security_admin", "Security administrator (elevated)", true },
  { "user_admin", "User administrator" }, { "oauth_admin", "OAuth administrator" }, { "itil", "ITIL user" },
  { "itil_admin", "ITIL administrator" }, { "web_service_admin", "Web service administrator" },
  { "snc_internal", "Internal user" }, { "catalog_admin", "Catalog administrator" }, { "knowledge_admin", "Knowledge administrator" },
  { "report_admin", "Report administrator" }, { "approver_user", "Approver" },
}
local FIRST = { "Abel", "Beth", "Carlos", "Dana", "Elif", "Femi", "Greta", "Hugo", "Isla", "Jonas", "Keiko", "Liam", "Maya",
  "Nikolai", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Ula", "Vera", "Wen", "Ximena", "Yara", "Zane" }
local LAST = { "Tuter", "Anand", "Brooks", "Castillo", "Dubois", "Eriksen", "Fischer", "Gomez", "Hansen", "Ito", "Jensen",
  "Kowal", "Larsen", "Mendes", "Novak", "Okafor", "Petrov", "Quiroga", "Rossi", "Sato", "Torres", "Ueda", "Varga" }
local GROUPS = { "Service Desk", "Network", "Database", "Hardware", "Software", "CAB Approval", "Change Management",
  "Problem Solving", "Incident Management", "Knowledge", "Field Services", "Openspace" }
local TITLES = { "Service Desk Agent", "Network Engineer", "DBA", "IT Manager", "Change Manager", "Analyst", "Developer" }
local DEPTS = { "IT", "Finance", "Sales", "HR", "Customer Support", "Engineering", "Legal" }
local IPS = { "198.51.100.", "203.0.113.", "192.0.2." }

-- "2024-03-01 12:00:00" (UTC): ServiceNow's date-time values
function S.glide_time(ms)
  return (T.iso_s(math.floor(ms / 1000)):gsub("T", " "):gsub("Z$", ""))
end

---------------------------------------------------------------------------------------------- construction
-- opts: seed, users (default 50), groups (8), days of history (8), events_per_day (sign-ins, 100),
-- files (attachments, 20), the integration user's name and password, the OAuth client id and secret.
function S.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Now)
  T.Base.init(self, opts)
  -- ServiceNow's rate limits are per hour (sys_rate_limit_rules); none unless the test asks for one
  if not opts.rate_limit then self.rate = { limit = 1000000, window = 3600, used = 0 } end
  self.instance_name = opts.instance or "dev12345"
  self.nusers, self.ngroups = opts.users or 50, opts.groups or 8
  self.days, self.per_day = opts.days or 8, opts.events_per_day or 100
  self.nfiles = opts.files or 20
  self.integration = { user_name = opts.username or "cachost.integration", password = opts.password or "sandbox-integration-pw" }
  self.client = { id = opts.client_id or "cachost-oauth-client", secret = opts.client_secret or "sandbox-oauth-secret" }
  -- glide.invalid_query.returns_no_rows: an encoded query naming an unknown field returns nothing
  -- (default false: the invalid condition is ignored, shared/api/servicenow.md §2)
  self.invalid_query_no_rows = opts.invalid_query_returns_no_rows or false
  self.access_tokens, self.refresh_tokens = {}, {}
  self.contents = {}          -- attachment sys_id -> bytes
  self.passwords = {}         -- user sys_id -> password (never rendered)
  self.secrets = {}           -- oauth_entity sys_id -> client secret
  self.run_as = {}            -- oauth_entity sys_id -> the user a client-credentials token acts as
  self.nseq = 0
  self:generate()
  return self
end

function Now:sys_id(kind, i) return T.hexs(32, self.seed, kind, i) end

-- A new record of a table, stamped created/updated now (by `who`, a user_name) -> record.
function Now:insert(table_name, fields, who, ms)
  local t = self.tables[table_name]
  self.nseq = self.nseq + 1
  local at = S.glide_time(ms or self:now_ms())
  local rec = { sys_id = fields.sys_id or self:sys_id("rec-" .. table_name, self.nseq), sys_created_on = at,
                sys_created_by = who or "system", sys_updated_on = at, sys_updated_by = who or "system", sys_mod_count = "0" }
  for k, v in pairs(fields) do rec[k] = v end
  for _, f in ipairs(TABLES[table_name].all) do if rec[f] == nil then rec[f] = "" end end
  t.rows[#t.rows + 1] = rec
  t.by_id[rec.sys_id] = rec
  return rec
end

function Now:remove(table_name, rec)
  local t = self.tables[table_name]
  t.by_id[rec.sys_id] = nil
  for i, r in ipairs(t.rows) do if r == rec then table.remove(t.rows, i); break end end
end

function Now:get(table_name, id) return self.tables[table_name].by_id[id] end

function Now:generate()
  local r = T.rng(self.seed, "servicenow")
  local now = self.t0_ms
  self.tables = {}
  for name in pairs(TABLES) do self.tables[name] = { rows = {}, by_id = {} } end
  local function ago(days_max, days_min)
    return now - r:int((days_min or 0) * 86400, days_max * 86400) * 1000
  end
  -- roles
  local role = {}
  for i, def in ipairs(ROLES) do
    role[def[1]] = self:insert("sys_user_role", { sys_id = self:sys_id("role", i), name = def[1], description = def[2],
      elevated_privilege = def[3] and "true" or "false" }, "system", now - 900 * 86400000)
  end
  self.roles = role
  -- users: the built-in admin, the integration users, then employees
  local users = {}
  local function user(i, u, ms)
    u.sys_id = self:sys_id("user", i)
    u.name = u.name or (u.first_name .. " " .. u.last_name)
    for k, v in pairs { active = "true", locked_out = "false", password_needs_reset = "false", failed_attempts = "0",
                        web_service_access_only = "false", internal_integration_user = "false", source = "" } do
      if u[k] == nil then u[k] = v end
    end
    local rec = self:insert("sys_user", u, "system", ms)
    users[#users + 1] = rec
    self.passwords[rec.sys_id] = "pw-" .. T.b62(16, self.seed, "password", i)
    return rec
  end
  self.admin = user(1, { user_name = "admin", first_name = "System", last_name = "Administrator", email = "admin@example.com",
    title = "System Administrator", department = "IT" }, now - 800 * 86400000)
  local integ = user(2, { user_name = self.integration.user_name, first_name = "cachost", last_name = "Integration",
    email = "", web_service_access_only = "true", title = "Integration" }, now - 60 * 86400000)
  self.passwords[integ.sys_id] = self.integration.password
  self.integration.rec = integ
  -- a least-privilege reader (user_admin only): the sys_user* tables, not the logs or the OAuth tables
  local reader = user(3, { user_name = "cachost.reader", first_name = "cachost", last_name = "Reader", email = "",
    web_service_access_only = "true" }, now - 60 * 86400000)
  self.passwords[reader.sys_id] = self.integration.password .. "-reader"
  self.reader = reader
  local used = {}
  for i = 4, math.max(4, self.nusers) do
    local first, last = r:pick(FIRST), r:pick(LAST)
    local base = (first .. "." .. last):lower()
    local name, k = base, 1
    while used[name] do k = k + 1; name = base .. k end
    used[name] = true
    local x = r:float()
    user(i, { user_name = name, first_name = first, last_name = last, email = name .. "@example.com",
      title = r:pick(TITLES), department = r:pick(DEPTS), active = x < 0.08 and "false" or "true",
      locked_out = (x >= 0.08 and x < 0.12) and "true" or "false",
      last_login_time = r:chance(0.85) and S.glide_time(ago(30)) or "",
      manager = i > 4 and users[r:int(1, #users)].sys_id or "" }, ago(700, 40))
  end
  for _, u in ipairs(users) do u.last_login = u.last_login_time ~= "" and u.last_login_time:sub(1, 10) or "" end
  self.users = users
  -- groups, one of them holding the admin role (its members inherit it)
  local groups = {}
  for i = 1, self.ngroups do
    local name = GROUPS[(i - 1) % #GROUPS + 1] .. (i > #GROUPS and (" " .. i) or "")
    if i == 1 then name = "ServiceNow Admins" end
    groups[i] = self:insert("sys_user_group", { sys_id = self:sys_id("group", i), name = name,
      description = name .. " group", active = "true", type = "", email = "", parent = "", roles = i == 1 and "admin" or "itil",
      manager = users[r:int(1, #users)].sys_id }, "admin", ago(800, 100))
  end
  self.groups = groups
  local function grant(u, rl, group, ms)
    return self:insert("sys_user_has_role", { user = u.sys_id, role = rl.sys_id, inherited = group and "true" or "false",
      granted_by = group and group.sys_id or "", state = "active", inh_count = group and "1" or "0" }, "admin", ms)
  end
  if #groups > 0 then
    self:insert("sys_group_has_role", { group = groups[1].sys_id, role = role.admin.sys_id, inherits = "true" }, "admin", ago(800, 100))
    for i = 2, #groups do
      self:insert("sys_group_has_role", { group = groups[i].sys_id, role = role.itil.sys_id, inherits = "true" }, "admin", ago(800, 100))
    end
  end
  local function join(u, g, ms)
    local m = self:insert("sys_user_grmember", { user = u.sys_id, group = g.sys_id }, "admin", ms)
    for _, gr in ipairs(self.tables.sys_group_has_role.rows) do
      if gr.group == g.sys_id then grant(u, self:get("sys_user_role", gr.role), g, ms) end
    end
    return m
  end
  -- direct roles
  grant(self.admin, role.admin, nil, now - 800 * 86400000)
  grant(self.admin, role.security_admin, nil, now - 800 * 86400000)
  grant(integ, role.admin, nil, now - 60 * 86400000)
  grant(reader, role.user_admin, nil, now - 60 * 86400000)
  for i = 4, #users do
    local u = users[i]
    if r:chance(0.5) then grant(u, role.itil, nil, ago(300, 30)) end
    if r:chance(0.05) then grant(u, role.admin, nil, ago(300, 30)) end
    if r:chance(0.05) then grant(u, role[r:pick { "user_admin", "security_admin", "oauth_admin", "itil_admin" }], nil, ago(300, 30)) end
  end
  -- memberships: a couple of admins through the group, everyone else in one to three groups
  if #groups > 0 then
    for i = 4, #users do
      local u = users[i]
      if i <= 5 then join(u, groups[1], ago(300, 30)) end
      if #groups > 1 then
        local seen = {}
        for _ = 1, r:int(1, math.min(3, #groups - 1)) do
          local g = groups[r:int(2, #groups)]
          if not seen[g] then seen[g] = true; join(u, g, ago(300, 30)) end
        end
      end
    end
  end
  -- OAuth application registries: cachost's own (password and refresh grants), a client-credentials one
  -- acting as the integration user, and apps users authorized
  local function entity(i, name, client_id, secret, run_as)
    local e = self:insert("oauth_entity", { sys_id = self:sys_id("entity", i), name = name, client_id = client_id,
      active = "true", type = "client", access_token_lifespan = "1800", refresh_token_lifespan = "8640000",
      redirect_url = "" }, "admin", ago(400, 60))
    self.secrets[e.sys_id], self.run_as[e.sys_id] = secret, run_as
    return e
  end
  self.entity = entity(1, "cachost", self.client.id, self.client.secret)
  self.cc_entity = entity(2, "cachost (client credentials)", self.client.id .. "-cc", self.client.secret, integ.sys_id)
  local apps = { entity(3, "ServiceNow Agent mobile", "mobile-" .. T.hexs(24, self.seed, "mobile"), T.b62(20, self.seed, "ms")),
                 entity(4, "Tableau connector", "tableau-" .. T.hexs(24, self.seed, "tableau"), T.b62(20, self.seed, "ts")) }
  for i = 4, #users do
    local u = users[i]
    if u.active == "true" and r:chance(0.25) then
      local app = r:pick(apps)
      local at = ago(20)
      for _, kind in ipairs { "access_token", "refresh_token" } do
        self:insert("oauth_credential", { user = u.sys_id, peer = app.sys_id, type = kind, scope = "useraccount",
          expires = S.glide_time(at + (kind == "access_token" and 1800 or 8640000) * 1000),
          token_received = "true" }, u.user_name, at)
      end
    end
  end
  -- records with attachments; a few hold card numbers
  local incidents = {}
  for i = 1, math.max(1, math.ceil(self.nfiles / 2)) do
    incidents[i] = self:insert("incident", { sys_id = self:sys_id("incident", i), number = ("INC%07d"):format(10000 + i),
      short_description = "Incident " .. i, caller_id = users[r:int(1, #users)].sys_id, state = "2" }, "admin", ago(60, 10))
  end
  for i = 1, self.nfiles do
    local inc = incidents[(i - 1) % #incidents + 1]
    local secret = i % 7 == 3
    local body = secret and ("Card on file for the refund: 4111 1111 1111 1111, exp 12/29. Case " .. inc.number .. "\n")
      or ("Screenshot notes for " .. inc.number .. ": the VPN client times out after login.\n")
    self:attach(inc, ("%s-notes-%d.txt"):format(inc.number:lower(), i), "text/plain", body,
      users[r:int(4, math.max(4, #users))].user_name, ago(30, 1))
  end
  -- a few on groups (readable by a user_admin, where incidents' need itil)
  local gr = T.rng(self.seed, "servicenow-group-files")
  for i = 1, math.min(#groups, math.max(1, self.nfiles // 4)) do
    self:attach(groups[i], ("charter-%d.txt"):format(i), "text/plain", "Charter of " .. groups[i].name .. "\n",
      "admin", now - gr:int(1, 30) * 86400000)
  end
  -- history: sign-ins (the event queue) and audited changes, spread over the days before now
  local ev = T.rng(self.seed, "servicenow-events")
  local nev = self.per_day * self.days
  local span = self.days * 86400000
  for i = 1, nev do
    local ms = now - span + math.floor(i * span / (nev + 1))
    local u = users[ev:int(1, #users)]
    local x = ev:float()
    if x < 0.08 then
      self:event("login.failed", u.user_name, ev:pick(IPS) .. ev:int(1, 254), ms)
    elseif x < 0.92 then
      self:event("login", u.user_name, ev:pick(IPS) .. ev:int(1, 254), ms)
    else
      -- events of other kinds share the queue; the connector asks for sign-ins only
      self:insert("sysevent", { name = "incident.updated", parm1 = "", parm2 = "", queue = "", state = "processed",
        table = "incident", instance = "" }, "system", ms)
    end
    if i % 9 == 0 then
      local target = users[ev:int(4, math.max(4, #users))]
      self:audit("sys_user", target.sys_id, "title", target.title, target.title .. " (acting)", "admin", ms)
    end
  end
end

-- An attachment on a record -> its sys_attachment row
function Now:attach(record, file_name, content_type, body, who, ms)
  local table_name
  for name, t in pairs(self.tables) do if t.by_id[record.sys_id] == record then table_name = name end end
  local crypto = S.crypto()
  local rec = self:insert("sys_attachment", { file_name = file_name, content_type = content_type,
    size_bytes = tostring(#body), size_compressed = tostring(#body), compressed = "false", table_name = table_name,
    table_sys_id = record.sys_id, hash = crypto.hex(crypto.sha256(body)), state = "available" }, who, ms)
  self.contents[rec.sys_id] = body
  return rec
end

-- A sysevent row; a `login` also sets the user's last login (the "Last Login Time" script action,
-- KB1500674), a failure counts in failed_attempts.
function Now:event(name, user_name, ip, ms)
  local rec = self:insert("sysevent", { name = name, parm1 = user_name, parm2 = ip, queue = "", state = "processed",
    table = "sys_user", instance = T.hexs(32, self.seed, "session", self.nseq) }, "system", ms)
  local u = self:user_by_name(user_name)
  if u then
    if name == "login" then
      u.last_login_time, u.last_login, u.failed_attempts = rec.sys_created_on, rec.sys_created_on:sub(1, 10), "0"
    elseif name == "login.failed" then
      u.failed_attempts = tostring((tonumber(u.failed_attempts) or 0) + 1)
    end
  end
  return rec
end

-- A sys_audit row: one field of one record changed (or "DELETED": the record was deleted).
function Now:audit(table_name, key, field, old, new, who, ms)
  return self:insert("sys_audit", { tablename = table_name, documentkey = key, fieldname = field,
    oldvalue = old or "", newvalue = new or "", user = who or "system", reason = "", record_checkpoint = "1",
    internal_checkpoint = T.hexs(16, self.seed, "checkpoint", self.nseq) }, who, ms)
end

function Now:user_by_name(name)
  for _, u in ipairs(self.tables.sys_user.rows) do if u.user_name == name then return u end end
end

-- n failed sign-ins then a success for one user, from one address (the brute-force control): a second
-- apart, ending now (sys_created_on counts whole seconds: events of one second have no order).
function Now:simulate_bruteforce(login, failures, opts)
  opts = opts or {}
  local u = self:user_by_name(login)
  if not u then
    for _, x in ipairs(self.tables.sys_user.rows) do if x.email ~= "" and x.email:lower() == tostring(login):lower() then u = x end end
  end
  assert(u, "no such user " .. tostring(login))
  local ip, out, now = opts.ip or "203.0.113.66", {}, self:now_ms()
  for k = 1, failures do out[#out + 1] = self:event("login.failed", u.user_name, ip, now - (failures + 1 - k) * 1000) end
  if opts.success ~= false then out[#out + 1] = self:event("login", u.user_name, ip, now) end
  return out
end

---------------------------------------------------------------------------------------------- errors
-- ServiceNow's error body: {"error": {"message", "detail"}, "status": "failure"}.
function Now:err(status, message, detail)
  return status, { error = { message = message, detail = detail == nil and json().null or detail }, status = "failure" },
    { ["Content-Type"] = "application/json" }
end

---------------------------------------------------------------------------------------------- ground truth
local ADMIN_ROLES = { admin = true, security_admin = true }
S.ADMIN_ROLES = ADMIN_ROLES

-- What roles a user holds (directly or through groups): a set of names.
function Now:roles_of(u)
  local set = {}
  for _, hr in ipairs(self.tables.sys_user_has_role.rows) do
    if hr.user == u.sys_id then
      local rl = self:get("sys_user_role", hr.role)
      if rl then set[rl.name] = true end
    end
  end
  return set
end

function Now:count(what)
  local t = self.tables[what]
  if t then return #t.rows end
  if what == "users" then return #self.tables.sys_user.rows end
  if what == "events" then return #self:truth().activities end
  error("count: unknown " .. tostring(what))
end

-- The provider ids a complete sync holds, by entity: privileges are the role rows of admin and elevated
-- roles, activities the sign-in events and the audited changes to users, groups, roles and ACLs.
S.AUDITED = { "sys_user", "sys_user_group", "sys_user_grmember", "sys_user_has_role", "sys_group_has_role", "sys_security_acl" }
function Now:truth()
  local t = { users = {}, groups = {}, group_members = {}, privileges = {}, app_grants = {}, activities = {}, files = {} }
  local function ids(list, rows, keep)
    for _, x in ipairs(rows) do if not keep or keep(x) then list[#list + 1] = x.sys_id end end
  end
  local tb = self.tables
  ids(t.users, tb.sys_user.rows)
  ids(t.groups, tb.sys_user_group.rows)
  ids(t.group_members, tb.sys_user_grmember.rows)
  ids(t.privileges, tb.sys_user_has_role.rows, function(x)
    local rl = self:get("sys_user_role", x.role)
    return rl and (ADMIN_ROLES[rl.name] or rl.elevated_privilege == "true")
  end)
  ids(t.app_grants, tb.oauth_credential.rows)
  ids(t.app_grants, tb.oauth_entity.rows)
  local audited = {}
  for _, n in ipairs(S.AUDITED) do audited[n] = true end
  ids(t.activities, tb.sysevent.rows, function(x) return x.name == "login" or x.name == "login.failed" end)
  ids(t.activities, tb.sys_audit.rows, function(x) return audited[x.tablename] end)
  ids(t.files, tb.sys_attachment.rows)
  return t
end

return S
