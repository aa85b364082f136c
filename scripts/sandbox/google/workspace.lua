-- sandbox/google/workspace.lua — a Google Workspace customer: its seeded directory (users with their
-- status and 2SV, groups with internal and external members, admin roles assigned to users and to a
-- group, third-party OAuth tokens), the Reports activities of each application (visible only after that
-- application's documented lag), Drive files per owner with sharing and content; domain-wide delegation
-- for the token endpoint; the ground truth for tests.
local T = require "sandbox.tenant"
local C = require "sandbox.google.common"
local json = C.json

local W = setmetatable({}, { __index = C.G })
W.__index = W
local M = { W = W }

-- Scopes this connector's kind of client is granted in the Admin console (Security > API controls >
-- Domain-wide delegation) unless a test says otherwise.
M.DWD_SCOPES = {
  "admin.directory.user", "admin.directory.user.readonly", "admin.directory.user.security",
  "admin.directory.group.readonly", "admin.directory.group.member.readonly",
  "admin.directory.rolemanagement.readonly", "admin.directory.rolemanagement",
  "admin.reports.audit.readonly", "drive", "drive.readonly",
}

-- Reports lag (support.google.com/a/answer/7061566 "Data retention and lag times"): admin, groups,
-- user accounts, SAML, OAuth token and Drive log events are near real time (a couple of minutes); login
-- events can take a few hours.  Seconds.
M.LAG = { admin = 120, groups = 120, user_accounts = 120, token = 120, saml = 120, drive = 120, login = 3 * 3600 }
M.APPS = { "login", "admin", "drive", "token", "saml", "groups", "user_accounts" }

M.SENSITIVE = {
  card = "Payment run\nVisa 4111 1111 1111 1111 exp 12/29\nMastercard 5500 0000 0000 0004\n",
  ssn = "Employee records\nJane Roe SSN 078-05-1120\n",
  aws = "deploy creds\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
}
local FIRST = { "Ada", "Brook", "Cyd", "Dana", "Eli", "Fay", "Gus", "Hana", "Ira", "Jo", "Kai", "Lee", "Mo", "Ned", "Oli", "Pia" }
local LAST = { "Stone", "Rivers", "Hale", "Moss", "Park", "Quinn", "Reyes", "Shaw", "Tate", "Vance", "Wolfe", "Young" }
local APPS3P = {
  { clientId = "1055942338.apps.googleusercontent.com", displayText = "Slack", scopes = { "openid", "email", "profile" }, nativeApp = false },
  { clientId = "4723811111.apps.googleusercontent.com", displayText = "MailMerge Pro",
    scopes = { "https://mail.google.com/", "https://www.googleapis.com/auth/drive" }, nativeApp = false },
  { clientId = "3399124777.apps.googleusercontent.com", displayText = "Sync Desktop", scopes = { "https://www.googleapis.com/auth/drive.file" }, nativeApp = true },
}
M.DOC = "application/vnd.google-apps.document"
M.SHEET = "application/vnd.google-apps.spreadsheet"
M.FOLDER = "application/vnd.google-apps.folder"

local function num_id(seed, ...) return "1" .. ("%020d"):format(T.below(T.hash(seed, ...), 9000000000000000000)) end

function W:gen_users(rng)
  local st = self.state
  for i = 1, self.nusers do
    local f, l = FIRST[(i - 1) % #FIRST + 1], LAST[(i * 7) % #LAST + 1]
    local email = i == 1 and ("admin@" .. self.domain) or (("%s.%s%d@%s"):format(f, l, i, self.domain)):lower()
    local created = self.t0_ms - (400 - i) * 86400000
    local u = {
      kind = "admin#directory#user", id = num_id(self.seed, "user", i), primaryEmail = email,
      name = { givenName = f, familyName = l, fullName = f .. " " .. l }, isAdmin = i == 1, isDelegatedAdmin = false,
      suspended = false, archived = false, isEnrolledIn2Sv = rng:chance(0.6) or i == 1, isEnforcedIn2Sv = false,
      changePasswordAtNextLogin = false, customerId = self.customer_id, orgUnitPath = "/",
      creationTime = C.time(created), lastLoginTime = C.time(self.t0_ms - rng:int(1, 20) * 3600000),
      agreedToTerms = true, isMailboxSetup = true, includeInGlobalAddressList = true,
    }
    if i > 1 and i % 9 == 0 then u.suspended, u.suspensionReason = true, "ADMIN" end
    if i == 7 then u.archived = true end
    st.users[#st.users + 1] = u
    st.by_id[u.id], st.by_email[email] = u, u
    u.sessions = 1
  end
  -- two users deleted within the restore window: only showDeleted=true lists them
  for i = 1, 2 do
    local email = ("former%d@%s"):format(i, self.domain)
    st.deleted[#st.deleted + 1] = { kind = "admin#directory#user", id = num_id(self.seed, "deleted", i), primaryEmail = email,
      name = { givenName = "Former", familyName = tostring(i), fullName = "Former " .. i }, isAdmin = false, isDelegatedAdmin = false,
      suspended = false, archived = false, isEnrolledIn2Sv = false, customerId = self.customer_id, orgUnitPath = "/",
      creationTime = C.time(self.t0_ms - 500 * 86400000), deletionTime = C.time(self.t0_ms - i * 86400000) }
  end
  self.admin = st.users[1]
end

function W:gen_groups(rng)
  local st = self.state
  for i = 1, self.ngroups do
    local name = ({ "Engineering", "Sales", "Finance", "Helpdesk", "Marketing", "Legal" })[(i - 1) % 6 + 1] .. (i > 6 and tostring(i) or "")
    local g = { kind = "admin#directory#group", id = ("0%s"):format(T.hexs(14, self.seed, "group", i)), email = name:lower() .. "@" .. self.domain,
                name = name, description = name .. " team", adminCreated = true, members = {} }
    st.groups[#st.groups + 1] = g
    st.groups_by[g.id], st.groups_by[g.email] = g, g
    for _, u in ipairs(st.users) do
      if rng:chance(0.3) then
        g.members[#g.members + 1] = { kind = "admin#directory#member", id = u.id, email = u.primaryEmail,
          role = #g.members == 0 and "OWNER" or "MEMBER", type = "USER", status = u.suspended and "SUSPENDED" or "ACTIVE" }
      end
    end
    if i % 2 == 1 then      -- a partner's Google account in the group
      g.members[#g.members + 1] = { kind = "admin#directory#member", id = num_id(self.seed, "ext", i),
        email = ("partner%d@partner.example.org"):format(i), role = "MEMBER", type = "USER", status = "ACTIVE" }
    end
  end
end

-- System roles (the Admin console's pre-built roles) and assignments: the super admin, two delegated
-- admins, and the Helpdesk group holding the Help Desk Admin role (its members hold it through the group).
local ROLES = {
  { "_SEED_ADMIN_ROLE", "Super Admin", true, { { "SUPER_ADMIN", "00haapch16h1ysv" } } },
  { "_GROUPS_ADMIN_ROLE", "Groups Admin", false, { { "GROUPS_ALL", "01ci93xb3tmzyin" } } },
  { "_USER_MANAGEMENT_ADMIN_ROLE", "User Management Admin", false, { { "USERS_ALL", "00haapch16h1ysv" } } },
  { "_HELP_DESK_ADMIN_ROLE", "Help Desk Admin", false, { { "USERS_RETRIEVE", "00haapch16h1ysv" }, { "USERS_RESET_PASSWORD", "00haapch16h1ysv" } } },
}
function W:gen_roles()
  local st = self.state
  for i, r in ipairs(ROLES) do
    local privs = {}
    for _, p in ipairs(r[4]) do privs[#privs + 1] = { privilegeName = p[1], serviceId = p[2] } end
    local role = { kind = "admin#directory#role", roleId = tostring(9170516996784128 + i), roleName = r[1],
                   roleDescription = r[2], isSystemRole = true, isSuperAdminRole = r[3], rolePrivileges = json().array(privs) }
    st.roles[#st.roles + 1] = role
    st.roles_by[role.roleName] = role
  end
  local function assign(role, who, typ)
    st.nassign = st.nassign + 1
    st.assignments[#st.assignments + 1] = { kind = "admin#directory#roleAssignment", roleAssignmentId = tostring(9170516996784200 + st.nassign),
      roleId = st.roles_by[role].roleId, assignedTo = who, assigneeType = typ, scopeType = "CUSTOMER" }
  end
  assign("_SEED_ADMIN_ROLE", self.admin.id, "USER")
  for _, i in ipairs { 2, 3 } do
    local u = st.users[i]
    if u then
      u.isDelegatedAdmin = true
      assign(i == 2 and "_GROUPS_ADMIN_ROLE" or "_USER_MANAGEMENT_ADMIN_ROLE", u.id, "USER")
    end
  end
  local helpdesk = st.groups[4] or st.groups[#st.groups]
  if helpdesk then
    helpdesk.security = true           -- only security groups may hold roles
    assign("_HELP_DESK_ADMIN_ROLE", helpdesk.id, "GROUP")
  end
end

function W:gen_tokens(rng)
  for i, u in ipairs(self.state.users) do
    u.tokens = {}
    for j, a in ipairs(APPS3P) do
      if (i + j) % 3 == 0 or (i == 2 and j == 2) then
        u.tokens[#u.tokens + 1] = { kind = "admin#directory#token", clientId = a.clientId, displayText = a.displayText,
          scopes = json().array(T.deep(a.scopes)), anonymous = false, nativeApp = a.nativeApp, userKey = u.id }
      end
    end
  end
  local _ = rng
end

---------------------------------------------------------------------------------------------------
-- Drive
---------------------------------------------------------------------------------------------------
-- owner: a user, or nil for an item of shared drive f.drive (the drive owns it)
function W:new_file(owner, f)
  local st = self.state
  st.nfile = st.nfile + 1
  local ms = f.time or (self.t0_ms - (200 - st.nfile % 200) * 3600000)
  local file = {
    kind = "drive#file", id = "1" .. T.b62(32, self.seed, "file", st.nfile), name = f.name, mimeType = f.mimeType or "text/plain",
    owner = owner and owner.id, drive = f.drive, parent = f.parent or f.drive or owner.root, createdTime = C.time(ms),
    modifiedTime = C.time(ms), trashed = false, content = f.content, perms = {},
  }
  st.files[#st.files + 1] = file
  st.files_by[file.id] = file
  self:change(file)
  return file
end

function W:add_permission(file, p)
  self.state.nperm = self.state.nperm + 1
  p.kind = "drive#permission"
  p.id = p.id or (p.type == "anyone" and "anyoneWithLink" or p.type == "domain" and ("%s"):format(T.hexs(20, self.seed, "pd", self.state.nperm))
    or num_id(self.seed, "perm", p.emailAddress or self.state.nperm))
  file.perms[#file.perms + 1] = p
  self:change(file)
  return p
end

-- The change log (changes.list): one entry per change of a file, in order.
function W:change(file, removed)
  local st = self.state
  st.changes[#st.changes + 1] = { fileId = file.id, time = C.time(self:now_ms()), removed = removed or false }
  if self.notify_change then self:notify_change(file) end       -- watch channels (drive.lua)
end

function W:gen_drive(rng)
  local st = self.state
  for _, u in ipairs(st.users) do
    u.root = "0A" .. T.b62(17, self.seed, "root", u.id)
  end
  local owners = {}
  for i = 1, math.min(#st.users, 8) do owners[#owners + 1] = st.users[i] end
  for i = 1, self.nfiles do
    local u = owners[(i - 1) % #owners + 1]
    local kind = i % 4
    local f
    if kind == 0 then
      f = self:new_file(u, { name = ("Projects %d"):format(i), mimeType = M.FOLDER })
      u.folder = f
    elseif kind == 1 then
      f = self:new_file(u, { name = ("Notes %d"):format(i), mimeType = M.DOC, content = ("Meeting notes %d\nNothing sensitive.\n"):format(i),
                             parent = u.folder and u.folder.id or nil })
    else
      local body = ("report %d\n"):format(i)
      f = self:new_file(u, { name = ("report-%d.txt"):format(i), content = body, parent = u.folder and u.folder.id or nil })
    end
    local r = rng:float()
    if r < 0.15 then self:add_permission(f, { type = "anyone", role = "reader", allowFileDiscovery = false })
    elseif r < 0.3 then self:add_permission(f, { type = "domain", role = "reader", domain = self.domain, allowFileDiscovery = true })
    elseif r < 0.45 then
      local other = st.users[rng:int(1, #st.users)]
      if other ~= u then self:add_permission(f, { type = "user", role = "writer", emailAddress = other.primaryEmail, displayName = other.name.fullName }) end
    elseif r < 0.55 then
      self:add_permission(f, { type = "user", role = "reader", emailAddress = "guest@outside.example.net", displayName = "Guest" })
    end
    if i % 11 == 0 and f.mimeType ~= M.FOLDER then f.trashed = true; f.trashedTime = f.modifiedTime end
  end
  -- the seeded sensitive files: card numbers in a Doc shared with anyone with the link, SSNs shared with
  -- an outsider, AWS keys in a private text file
  local a, b = st.users[2] or self.admin, st.users[3] or self.admin
  local card = self:new_file(a, { name = "Q3 payments", mimeType = M.DOC, content = M.SENSITIVE.card })
  self:add_permission(card, { type = "anyone", role = "reader", allowFileDiscovery = false })
  local ssn = self:new_file(b, { name = "employees.txt", content = M.SENSITIVE.ssn })
  self:add_permission(ssn, { type = "user", role = "reader", emailAddress = "recruiter@agency.example.com", displayName = "Recruiter" })
  local aws = self:new_file(a, { name = "deploy.env", content = M.SENSITIVE.aws })
  st.sensitive = { card = card.id, ssn = ssn.id, aws = aws.id }
  self:gen_shared_drives()
end

-- Shared drives: Finance (a manager, a contributor, an outside auditor reading), its Invoices folder and
-- a bank-details Doc; Marketing (a manager) with a plan shared with anyone with the link.
function W:shared_drive(name, members)
  local st = self.state
  local d = { id = "0A" .. T.b62(17, self.seed, "drive", #st.drives + 1) .. "Uk9PVA", name = name,
              createdTime = C.time(self.t0_ms - 300 * 86400000), members = {} }
  for _, m in ipairs(members) do
    d.members[#d.members + 1] = { kind = "drive#permission", id = num_id(self.seed, "perm", m[1]), type = "user", role = m[2],
                                  emailAddress = m[1], displayName = m[1] }
  end
  st.drives[#st.drives + 1] = d
  st.drives_by[d.id] = d
  return d
end

function W:gen_shared_drives()
  local st = self.state
  local function user(i) return st.users[math.min(i, #st.users)].primaryEmail end
  local fin = self:shared_drive("Finance", { { user(4), "organizer" }, { user(5), "writer" }, { "auditor@audit.example.org", "reader" } })
  local inv = self:new_file(nil, { drive = fin.id, name = "Invoices", mimeType = M.FOLDER })
  self:new_file(nil, { drive = fin.id, name = "budget-2027.csv", content = "line,amount\nrent,1200\n" })
  self:new_file(nil, { drive = fin.id, parent = inv.id, name = "Vendor bank details", mimeType = M.DOC, content = "IBAN DE89 3704 0044 0532 0130 00\n" })
  local mkt = self:shared_drive("Marketing", { { user(6), "organizer" } })
  local plan = self:new_file(nil, { drive = mkt.id, name = "launch-plan.txt", content = "Launch on Monday.\n" })
  self:add_permission(plan, { type = "anyone", role = "reader", allowFileDiscovery = false })
end

---------------------------------------------------------------------------------------------------
-- Reports activities
---------------------------------------------------------------------------------------------------
local EVENTS = {
  login = { { "login", "login_success" }, { "login", "login_failure" }, { "login", "logout" } },
  admin = { { "USER_SETTINGS", "SUSPEND_USER" }, { "USER_SETTINGS", "CHANGE_PASSWORD" }, { "DELEGATED_ADMIN_SETTINGS", "ASSIGN_ROLE" } },
  drive = { { "access", "view" }, { "access", "edit" }, { "acl_change", "change_document_visibility" } },
  token = { { "auth", "authorize" }, { "auth", "revoke" } },
  saml = { { "login", "login_success" } },
  groups = { { "acl_change", "change_acl_permission" }, { "user_change", "add_user" } },
  user_accounts = { { "2sv_change", "2sv_enroll" }, { "password_change", "password_edit" } },
}

-- add_activity(app, user, opts{name=, time_ms=, ip=, params=}) -> the activity (visible after the app's lag)
function W:add_activity(app, u, opts)
  opts = opts or {}
  local st = self.state
  st.nact = st.nact + 1
  local list = EVENTS[app]
  local ev = list[(st.nact % #list) + 1]
  local typ, name = ev[1], opts.name or ev[2]
  for _, e in ipairs(list) do if e[2] == name then typ = e[1] end end
  local ms = opts.time_ms or self:now_ms()
  local params = opts.params or {}
  if app == "login" then params[#params + 1] = { name = "login_type", value = "google_password" } end
  if app == "token" then
    params[#params + 1] = { name = "client_id", value = APPS3P[2].clientId }
    params[#params + 1] = { name = "app_name", value = APPS3P[2].displayText }
  end
  if app == "drive" then params[#params + 1] = { name = "doc_id", value = st.sensitive and st.sensitive.card or "x" } end
  local a = {
    kind = "admin#reports#activity",
    id = { time = C.time(ms), uniqueQualifier = tostring(T.below(T.hash(self.seed, "uq", st.nact), 9000000000000000000) - 4500000000000000000),
           applicationName = app, customerId = self.customer_id },
    actor = { email = u.primaryEmail, profileId = u.id, callerType = "USER" },
    ipAddress = opts.ip or ("203.0.113.%d"):format(st.nact % 250 + 1), ownerDomain = self.domain,
    events = json().array({ { type = typ, name = name, parameters = json().array(params) } }),
    ms = ms, visible_ms = ms + (opts.lag or M.LAG[app]) * 1000,
  }
  local acts = st.activities[app]
  acts[#acts + 1] = a
  table.sort(acts, function(x, y) return x.ms > y.ms end)       -- newest first, as the API answers
  return a
end

function W:gen_activities(rng)
  for _, app in ipairs(M.APPS) do self.state.activities[app] = {} end
  local span = self.days * 86400000
  for i = 1, self.nevents do
    local app = M.APPS[(i - 1) % #M.APPS + 1]
    local u = self.state.users[rng:int(1, #self.state.users)]
    self:add_activity(app, u, { time_ms = self.t0_ms - math.floor(span * i / self.nevents) - 3600000 * 4 })
  end
end

---------------------------------------------------------------------------------------------------
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, W)
  T.Base.init(self, opts)
  self.domain = opts.domain or "acme.example.com"
  self.customer_id = opts.customer_id or ("C0" .. T.hexs(7, self.seed, "customer"))
  self.nusers, self.ngroups, self.nfiles = opts.users or 30, opts.groups or 4, opts.files or 40
  self.nevents, self.days = opts.events or 140, opts.days or 10
  self.tokens = {}
  self.state = { users = {}, by_id = {}, by_email = {}, deleted = {}, groups = {}, groups_by = {}, roles = {}, roles_by = {},
                 assignments = {}, nassign = 0, files = {}, files_by = {}, nfile = 0, nperm = 0, changes = {},
                 activities = {}, nact = 0, channels = {}, drives = {}, drives_by = {} }
  self.sa = self:new_service_account(opts.service_account or "cachost-reader", opts.project or "acme-security")
  -- domain-wide delegation: client id -> granted scopes
  self.dwd = {}
  local granted = {}
  for _, s in ipairs(opts.dwd_scopes or M.DWD_SCOPES) do granted[C.SCOPE .. s] = true end
  self.dwd[self.sa.client_id] = granted
  if opts.oauth_client then self:register_client(opts.oauth_client) end     -- a Desktop app OAuth client
  local rng = T.rng(self.seed, "workspace")
  self:gen_users(rng)
  self:gen_groups(rng)
  self:gen_roles()
  self:gen_tokens(rng)
  self:gen_drive(rng)
  self:gen_activities(rng)
  return self
end

-- Domain-wide delegation (G:h_token's hook): the subject is a user of the domain (not deleted), and the
-- service account's client id was granted every requested scope.
function W:delegate(sub, scopes, sa)
  local u = self.state.by_email[sub:lower()] or self.state.by_id[sub]
  if not u then return nil, "invalid_grant", "Invalid email or User ID" end
  local granted = self.dwd[sa.client_id] or {}
  for _, s in ipairs(scopes) do
    if not granted[s] then
      return nil, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
    end
  end
  return true
end

-- The user the OAuth consent screen approves as: the super admin.
function W:consenting_user() return self.admin.primaryEmail end

-- Who the request acts as (the token's sub), or nil for the service account itself.
function W:actor(req) return req.token and req.token.sub and self.state.by_email[req.token.sub:lower()] end

---------------------------------------------------------------------------------------------------
-- Ground truth
---------------------------------------------------------------------------------------------------
function W:user_status(u)
  if u.deletionTime then return "deleted" end
  if u.archived then return "archived" end
  if u.suspended then return "suspended" end
  return "active"
end

-- The privileges a complete sync holds: assignment id, or assignment id:member id through a group.
function W:privilege_ids()
  local out = {}
  for _, a in ipairs(self.state.assignments) do
    if a.assigneeType == "USER" then out[#out + 1] = a.roleAssignmentId
    else
      for _, m in ipairs(self.state.groups_by[a.assignedTo].members) do
        if self.state.by_id[m.id] then out[#out + 1] = a.roleAssignmentId .. ":" .. m.id end
      end
    end
  end
  return out
end

-- Every permission of a file, its own and those its folders give it (Drive lists inherited ones too).
function W:perms_of(f)
  local out, seen = {}, {}
  local cur = f
  while cur do
    for _, p in ipairs(cur.perms) do
      if not seen[p.id] then seen[p.id] = true; out[#out + 1] = { p = p, inherited = cur ~= f, from = cur.id } end
    end
    cur = self.state.files_by[cur.parent]
  end
  local d = f.drive and self.state.drives_by[f.drive]
  for _, p in ipairs(d and d.members or {}) do
    if not seen[p.id] then seen[p.id] = true; out[#out + 1] = { p = p, inherited = true, from = d.id, member = true } end
  end
  return out
end

function W:count(what)
  local st = self.state
  local n = 0
  if what == "users" then return #st.users + #st.deleted end
  if what == "suspended" or what == "archived" or what == "active" then
    for _, u in ipairs(st.users) do if self:user_status(u) == what then n = n + 1 end end
    return n
  end
  if what == "deleted" then return #st.deleted end
  if what == "2sv" then for _, u in ipairs(st.users) do if u.isEnrolledIn2Sv then n = n + 1 end end return n end
  if what == "groups" then return #st.groups end
  if what == "memberships" then for _, g in ipairs(st.groups) do n = n + #g.members end return n end
  if what == "external_members" then
    for _, g in ipairs(st.groups) do for _, m in ipairs(g.members) do if not st.by_id[m.id] then n = n + 1 end end end
    return n
  end
  if what == "privileges" then return #self:privilege_ids() end
  if what == "tokens" then for _, u in ipairs(st.users) do n = n + #u.tokens end return n end
  if what == "files" then return #st.files end
  if what == "trashed" then for _, f in ipairs(st.files) do if f.trashed then n = n + 1 end end return n end
  if what == "permissions" then
    for _, f in ipairs(st.files) do for _, x in ipairs(self:perms_of(f)) do if x.p.role ~= "owner" then n = n + 1 end end end
    return n
  end
  if what == "activities" or what == "events" then
    for _, app in ipairs(M.APPS) do
      for _, a in ipairs(st.activities[app]) do if a.visible_ms <= self:now_ms() then n = n + #a.events end end
    end
    return n
  end
  error("count: unknown " .. tostring(what))
end

function W:truth()
  local st = self.state
  local t = { users = {}, groups = {}, group_members = {}, privileges = self:privilege_ids(), app_grants = {}, files = {}, file_permissions = {} }
  for _, u in ipairs(st.users) do
    t.users[#t.users + 1] = u.id
    for _, k in ipairs(u.tokens) do t.app_grants[#t.app_grants + 1] = u.id .. ":" .. k.clientId end
  end
  for _, u in ipairs(st.deleted) do t.users[#t.users + 1] = u.id end
  for _, g in ipairs(st.groups) do
    t.groups[#t.groups + 1] = g.id
    for _, m in ipairs(g.members) do t.group_members[#t.group_members + 1] = g.id .. ":" .. m.id end
  end
  for _, f in ipairs(st.files) do
    t.files[#t.files + 1] = f.id
    for _, x in ipairs(self:perms_of(f)) do
      if x.p.role ~= "owner" then t.file_permissions[#t.file_permissions + 1] = f.id .. ":" .. x.p.id end
    end
  end
  return t
end

function W:sensitive_file(kind) return self.state.sensitive[kind] end

return M
