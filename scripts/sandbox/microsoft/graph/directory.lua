-- sandbox/microsoft/graph/directory.lua — the tenant's directory (generated from the seed) and Graph's
-- users (with delta, password reset, session revocation) and groups (members, owners, $ref edits).
local C = require "sandbox.microsoft.common"
local T, MS, json, jnull, A, nz = C.T, C.MS, C.json, C.jnull, C.A, C.nz
local ROLE_BY_NAME, CITIES, DEVICES, iso7, isoz, ip_of = C.ROLE_BY_NAME, C.CITIES, C.DEVICES, C.iso7, C.isoz, C.ip_of
local enc_skip, dec_skip, body_json, RES_APPID, MS_TENANT = C.enc_skip, C.dec_skip, C.body_json, C.RES_APPID, C.MS_TENANT
local O = require "sandbox.microsoft.graph.odata"
local project = O.project

local FIRST = { "Adele", "Alex", "Allan", "Christie", "Debra", "Diego", "Emily", "Enrico", "Grady", "Henrietta",
  "Irvin", "Isaiah", "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep",
  "Raul", "Sofia", "Tomas", "Uma", "Vikram", "Wanda", "Yara", "Zoltan" }
local LAST = { "Vance", "Wilber", "Deyoung", "Cline", "Berg", "Siciliani", "Braun", "Catteneo", "Archie", "Gonzalez",
  "Sayers", "Langer", "Lanier", "Sherman", "Gu", "Holloway", "Robbins", "Bowen", "Graham", "Wilke", "Fernandez",
  "Gupta", "Okafor", "Novak", "Kowalski", "Tanaka", "Moreau", "Silva" }
local DEPTS = { "Engineering", "Sales", "Marketing", "Finance", "Legal", "IT", "HR", "Operations", "Retail" }
local TITLES = { "Engineer", "Senior Engineer", "Marketing Manager", "Director", "Analyst", "Sales Rep", "Attorney", "IT Admin" }
local OFFICES = { "12/1110", "131/1104", "20/1101", "18/2111", "19/3123", "98/2202" }
local GROUP_NAMES = { "Sales and Marketing", "Retail", "U.S. Sales", "Mark 8 Project Team", "Digital Initiative Public Relations",
  "Leadership", "Finance", "IT Admins", "Engineering", "Contractors", "Legal", "Security", "Design", "Data", "Operations" }
-- third-party / line-of-business apps that hold delegated grants
local THIRD_APPS = { { "Contoso Expenses", "Contoso" }, { "Slack", "Slack Technologies" }, { "Zoom", "Zoom Video Communications" },
  { "Free PDF Converter", nil }, { "Adobe Acrobat", "Adobe Inc." }, { "Mail Merge Pro", nil } }
local DELEGATED_SCOPES = { "User.Read", "openid profile email offline_access User.Read", "Mail.Read Mail.Send offline_access",
  "Files.ReadWrite.All Sites.Read.All offline_access", "User.Read Calendars.ReadWrite Contacts.Read",
  "Directory.ReadWrite.All Mail.ReadWrite Files.ReadWrite.All offline_access" }


function MS:generate()
  local seed, r = self.seed, T.rng(self.seed, "microsoft")
  local now = self.t0_ms
  local st = { users = {}, user_by_id = {}, user_by_upn = {}, groups = {}, group_by_id = {}, sps = {}, sp_by_id = {},
               grants = {}, role_assignments = {}, audits = {}, signins = {}, drives = {}, drive_by_id = {},
               items = {}, sites = {}, subscriptions = {}, mgmt_subs = {}, mgmt_stored = {}, mgmt_notifications = {},
               arm_subs = {}, arm_sub_by_id = {}, arm_assignments = {}, arm_events = {}, expired_blobs = {},
               deleted_users = {} }
  self.state = st
  -- users (generation order = index; listing order = id)
  local used = {}
  for i = 1, self.nusers do
    local first, last = r:pick(FIRST), r:pick(LAST)
    local nick = (first .. last:sub(1, 1)):gsub("[^%w]", "")
    local k = 1
    while used[nick:lower()] do k = k + 1; nick = first .. last:sub(1, 1) .. k end
    used[nick:lower()] = true
    local guest = i > 2 and r:chance(0.08)
    local u = {
      id = T.uuid(seed, "user", i), index = i, givenName = first, surname = last, displayName = first .. " " .. last,
      jobTitle = r:pick(TITLES), department = r:pick(DEPTS), officeLocation = r:pick(OFFICES),
      mobilePhone = r:chance(0.5) and string.format("+1 425 555 %04d", r:int(0, 9999)) or nil,
      businessPhones = r:chance(0.6) and { string.format("+1 425 555 %04d", r:int(0, 9999)) } or {},
      preferredLanguage = "en-US", accountEnabled = true, userType = "Member",
      created = now - r:int(60, 1200) * 86400000 - r:int(0, 86399999),
      city = r:int(1, #CITIES), device = r:int(1, #DEVICES), forceChange = false,
    }
    u.ip = ip_of(T.hash(seed, "uip", i))
    if guest then
      local ext = nick:lower() .. "@" .. r:pick({ "gmail.com", "outlook.com", "fabrikam.com", "partner.example" })
      u.userType = "Guest"
      u.mail = ext
      u.upn = ext:gsub("@", "_") .. "#EXT#@" .. self.initial_domain
      u.externalUserState = r:chance(0.8) and "Accepted" or "PendingAcceptance"
      u.jobTitle, u.department, u.officeLocation = nil, nil, nil
    else
      u.upn = nick .. "@" .. self.domain
      u.mail = u.upn
    end
    if i > 1 and r:chance(0.06) then u.accountEnabled = false end
    u.enabled0 = u.accountEnabled            -- generated history depends on the initial state only
    u.lastPasswordChange = u.created + r:int(1, 50) * 86400000
    u.sessionsValidFrom = u.lastPasswordChange
    u.lastSignIn = u.accountEnabled and (now - r:int(60, 20 * 86400) * 1000) or nil
    st.users[#st.users + 1] = u
    st.user_by_id[u.id] = u
    st.user_by_upn[u.upn:lower()] = u
  end
  self.gen_users = {}
  for i, u in ipairs(st.users) do self.gen_users[i] = u end
  table.sort(st.users, function(a, b) return a.id < b.id end)
  self.admin = self.gen_users[1]
  self.admin.jobTitle = "IT Admin"

  -- groups: Microsoft 365 (Unified) groups and security groups; the third can hold directory roles
  for i = 1, self.ngroups do
    local name = GROUP_NAMES[(i - 1) % #GROUP_NAMES + 1] .. (i > #GROUP_NAMES and (" " .. (i // #GROUP_NAMES + 1)) or "")
    local unified = (i % 3) ~= 0
    local nick = name:gsub("[^%w]", "")
    local g = { id = T.uuid(seed, "group", i), index = i, displayName = name, description = "Group for " .. name,
                mailNickname = nick, mailEnabled = unified, securityEnabled = not unified or i == 1,
                groupTypes = unified and { "Unified" } or {}, visibility = unified and (i % 2 == 0 and "Public" or "Private") or nil,
                isAssignableToRole = (i == 3), created = now - r:int(100, 900) * 86400000, members = {}, member_set = {} }
    g.mail = unified and (nick .. "@" .. self.domain) or nil
    for _, u in ipairs(self.gen_users) do
      if r:chance(0.35) then g.members[#g.members + 1] = u.id; g.member_set[u.id] = true end
    end
    g.owner = g.members[1]
    st.groups[#st.groups + 1] = g
    st.group_by_id[g.id] = g
  end
  table.sort(st.groups, function(a, b) return a.id < b.id end)

  -- service principals: first-party resources, the connector's own app, third-party apps
  local function addsp(key, appId, name, owner_tid, publisher)
    local sp = { id = T.uuid(seed, "sp", key), appId = appId, displayName = name, accountEnabled = true,
                 appOwnerOrganizationId = owner_tid, publisherName = publisher, created = now - r:int(30, 700) * 86400000 }
    st.sps[#st.sps + 1] = sp
    st.sp_by_id[sp.id] = sp
    return sp
  end
  self.sp_graph = addsp("graph", RES_APPID.graph, "Microsoft Graph", MS_TENANT, "Microsoft Services")
  self.sp_mgmt = addsp("mgmt", RES_APPID.mgmt, "Office 365 Management APIs", MS_TENANT, "Microsoft Services")
  self.sp_arm = addsp("arm", RES_APPID.arm, "Windows Azure Service Management API", MS_TENANT, "Microsoft Services")
  self.sp_client = addsp("client", self.client_id, self.client_name, self.tenant_id, "Contoso")
  local third = {}
  for i, a in ipairs(THIRD_APPS) do
    third[i] = addsp("third" .. i, T.uuid(seed, "appid", i), a[1], a[2] and T.uuid(seed, "pubtenant", i) or T.uuid(seed, "unverified", i), a[2] or jnull())
  end
  table.sort(st.sps, function(a, b) return a.id < b.id end)
  self:generate_app_roles(third)

  -- delegated permission grants (to Microsoft Graph)
  local gi = 0
  local function addgrant(sp, ctype, principal, scope)
    gi = gi + 1
    local g = { id = T.b62(43, seed, "grant", gi), clientId = sp.id, consentType = ctype, principalId = principal,
                resourceId = self.sp_graph.id, scope = scope }
    st.grants[#st.grants + 1] = g
  end
  addgrant(third[1], "AllPrincipals", nil, DELEGATED_SCOPES[2])
  addgrant(third[5], "AllPrincipals", nil, DELEGATED_SCOPES[1])
  for _, u in ipairs(self.gen_users) do
    if u.accountEnabled and r:chance(0.25) then
      local k = r:int(2, #third)
      addgrant(third[k], "Principal", u.id, DELEGATED_SCOPES[(k % #DELEGATED_SCOPES) + 1])
    end
  end
  table.sort(st.grants, function(a, b) return a.id < b.id end)

  -- directory role assignments (unifiedRoleAssignment); directoryRoles are derived from them
  local ai = 0
  local function assign(principal, role_name)
    ai = ai + 1
    local role = ROLE_BY_NAME[role_name]
    st.role_assignments[#st.role_assignments + 1] = { id = T.b62(43, seed, "roleassign", ai) .. "-1",
      principalId = principal, roleDefinitionId = role[2], directoryScopeId = "/" }
  end
  assign(self.admin.id, "Global Administrator")
  local others = { "User Administrator", "Exchange Administrator", "SharePoint Administrator", "Security Reader",
                   "Global Reader", "Global Administrator", "Privileged Role Administrator" }
  for _, u in ipairs(self.gen_users) do
    if u.index > 1 and u.userType == "Member" and r:chance(0.1) then assign(u.id, r:pick(others)) end
  end
  for _, rn in ipairs(self.client_roles) do assign(self.sp_client.id, rn) end
  -- a role held through a role-assignable group: its members are Exchange administrators
  for _, g in ipairs(st.groups) do if g.isAssignableToRole then assign(g.id, "Exchange Administrator") end end

  self:generate_files(r)
  self:generate_arm(r)
end


-------------------------------------------------------------------------------------------------
-- Graph rendering
-------------------------------------------------------------------------------------------------
local USER_DEFAULT = { "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
                       "preferredLanguage", "surname", "userPrincipalName", "id" }
local USER_PROPS = { "accountEnabled", "businessPhones", "createdDateTime", "department", "deletedDateTime", "displayName",
  "externalUserState", "givenName", "id", "jobTitle", "lastPasswordChangeDateTime", "mail", "mailNickname", "mobilePhone",
  "officeLocation", "onPremisesSyncEnabled", "passwordProfile", "preferredLanguage", "signInActivity",
  "signInSessionsValidFromDateTime", "surname", "userPrincipalName", "userType", "usageLocation", "creationType" }

function MS:user_full(u)
  return {
    id = u.id, businessPhones = A(T.deep(u.businessPhones)), displayName = u.displayName, givenName = nz(u.givenName),
    jobTitle = nz(u.jobTitle), mail = nz(u.mail), mobilePhone = nz(u.mobilePhone), officeLocation = nz(u.officeLocation),
    preferredLanguage = nz(u.preferredLanguage), surname = nz(u.surname), userPrincipalName = u.upn,
    accountEnabled = u.accountEnabled, userType = u.userType, createdDateTime = isoz(u.created), department = nz(u.department),
    deletedDateTime = isoz(u.deleted), externalUserState = nz(u.externalUserState), mailNickname = u.upn:match("^[^@]+"),
    lastPasswordChangeDateTime = isoz(u.lastPasswordChange), onPremisesSyncEnabled = jnull(),
    passwordProfile = { forceChangePasswordNextSignIn = u.forceChange, forceChangePasswordNextSignInWithMfa = false, password = jnull() },
    signInSessionsValidFromDateTime = isoz(u.sessionsValidFrom), usageLocation = "US",
    creationType = u.userType == "Guest" and "Invitation" or jnull(),
    signInActivity = { lastSignInDateTime = iso7(u.lastSignIn), lastSignInRequestId = u.lastSignIn and self:const("lsr", u.index) or jnull(),
                       lastNonInteractiveSignInDateTime = iso7(u.lastSignIn and u.lastSignIn - 3600000),
                       lastNonInteractiveSignInRequestId = u.lastSignIn and self:const("lnsr", u.index) or jnull(),
                       lastSuccessfulSignInDateTime = iso7(u.lastSignIn),
                       lastSuccessfulSignInRequestId = u.lastSignIn and self:const("lssr", u.index) or jnull() },
  }
end

local GROUP_PROPS = { "id", "displayName", "description", "mail", "mailEnabled", "mailNickname", "securityEnabled", "groupTypes",
  "visibility", "isAssignableToRole", "membershipRule", "membershipRuleProcessingState", "createdDateTime", "deletedDateTime",
  "classification", "renewedDateTime", "securityIdentifier", "proxyAddresses", "onPremisesSyncEnabled" }
function MS:group_full(g)
  return { id = g.id, displayName = g.displayName, description = g.description, mail = nz(g.mail), mailEnabled = g.mailEnabled,
           mailNickname = g.mailNickname, securityEnabled = g.securityEnabled, groupTypes = A(T.deep(g.groupTypes)),
           visibility = nz(g.visibility), isAssignableToRole = g.isAssignableToRole, membershipRule = jnull(),
           membershipRuleProcessingState = jnull(), createdDateTime = isoz(g.created), deletedDateTime = jnull(),
           classification = jnull(), renewedDateTime = isoz(g.created),
           securityIdentifier = "S-1-12-1-" .. (T.hash(self.seed, "sid", g.index) >> 33),
           proxyAddresses = A(g.mail and { "SMTP:" .. g.mail } or {}), onPremisesSyncEnabled = jnull() }
end


-- directory objects (members lists) carry @odata.type
function MS:dirobj(id)
  local st = self.state
  local u = st.user_by_id[id]
  if u then
    local o, full = {}, self:user_full(u)
    for _, k in ipairs(USER_DEFAULT) do o[k] = full[k] end
    o["@odata.type"] = "#microsoft.graph.user"
    return o, "user"
  end
  local sp = st.sp_by_id[id]
  if sp then
    local o = { id = sp.id, appId = sp.appId, displayName = sp.displayName, accountEnabled = sp.accountEnabled,
                servicePrincipalType = "Application", ["@odata.type"] = "#microsoft.graph.servicePrincipal" }
    return o, "servicePrincipal"
  end
  local g = st.group_by_id[id]
  if g then
    local o = self:group_full(g)
    o["@odata.type"] = "#microsoft.graph.group"
    return o, "group"
  end
end


function MS:find_user(id)
  if type(id) == "table" then return id end
  local st = self.state
  local u = st.user_by_id[id] or st.user_by_upn[tostring(id):lower()]
  if u and not u.deleted then return u end
end


---------------------------------------------------------------------------------------------------
-- Graph: users
---------------------------------------------------------------------------------------------------
function MS:h_users(req)
  return self:graph_collection(req, { list = self.state.users, full = function(u) return self:user_full(u) end,
    where = function(u) return not u.deleted end, props = USER_PROPS, defaults = USER_DEFAULT, type = "user",
    context = "users", top_default = 100, top_max = 999 })
end

function MS:h_user(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  if req.method == "GET" then
    local sel, serr = self:graph_select(req, USER_PROPS, "user")
    if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
    local o = project(self:user_full(u), sel or USER_DEFAULT)
    o["@odata.context"] = self.base_url .. "/v1.0/$metadata#users/$entity"
    return 200, o
  elseif req.method == "DELETE" then
    u.deleted = self:now_ms()
    self:user_changed(u)
    self:audit{ activity = "Delete user", category = "UserManagement", operationType = "Delete", target = u, req = req }
    self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Delete user.", ObjectId = u.upn, RecordType = 8, target = u })
    self:notify_change("users", "deleted", u.id, "#Microsoft.Graph.User", "Users/" .. u.id)
    return 204, ""
  end
  -- PATCH
  local b = body_json(req)
  if not b then return self:graph_err(400, "Request_BadRequest", "Invalid request body.", req) end
  local allowed = { accountEnabled = "boolean", passwordProfile = "table", displayName = "string", jobTitle = "string",
                    department = "string", officeLocation = "string", mobilePhone = "string", usageLocation = "string" }
  for k, v in pairs(b) do
    if not allowed[k] then return self:graph_err(400, "Request_BadRequest", "Property '" .. k .. "' is read-only or does not exist on type 'microsoft.graph.user'.", req) end
    if type(v) ~= allowed[k] then return self:graph_err(400, "Request_BadRequest", "Invalid value specified for property '" .. k .. "' of resource 'User'.", req) end
  end
  local mods = {}
  if b.accountEnabled ~= nil and b.accountEnabled ~= u.accountEnabled then
    mods[#mods + 1] = { displayName = "AccountEnabled", oldValue = "[" .. tostring(u.accountEnabled) .. "]", newValue = "[" .. tostring(b.accountEnabled) .. "]" }
    u.accountEnabled = b.accountEnabled
  end
  if b.passwordProfile then
    local pp = b.passwordProfile
    if pp.forceChangePasswordNextSignIn ~= nil then u.forceChange = pp.forceChangePasswordNextSignIn and true or false end
    if type(pp.password) == "string" then u.lastPasswordChange = self:now_ms() end
    mods[#mods + 1] = { displayName = "PasswordProfile", oldValue = jnull(), newValue = jnull() }
  end
  for _, k in ipairs({ "displayName", "jobTitle", "department", "officeLocation", "mobilePhone" }) do
    if b[k] ~= nil then mods[#mods + 1] = { displayName = k, oldValue = json().encode({ u[k] }), newValue = json().encode({ b[k] }) }; u[k] = b[k] end
  end
  self:user_changed(u)
  local act = "Update user"
  if b.accountEnabled == false then act = "Disable account" elseif b.accountEnabled == true then act = "Enable account" end
  self:audit{ activity = act, category = "UserManagement", operationType = "Update", target = u, modified = mods, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = act .. ".", ObjectId = u.upn, RecordType = 8, target = u })
  self:notify_change("users", "updated", u.id, "#Microsoft.Graph.User", "Users/" .. u.id)
  return 204, ""
end

function MS:h_revoke_sessions(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  u.sessionsValidFrom = self:now_ms()
  self:user_changed(u)
  for _, rt in pairs(self.refresh) do if rt.user == u.id then rt.revoked = true end end
  self:audit{ activity = "Invalidate all refresh tokens for a user", category = "UserManagement", operationType = "Update", target = u, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Invalidate all refresh tokens for a user.", ObjectId = u.upn, RecordType = 8, target = u })
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#Edm.Boolean", value = true }
end

local PASSWORD_METHOD = "28c10230-6103-485e-b985-444c60001490"
function MS:h_reset_password(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  if req.params.mid ~= PASSWORD_METHOD then return self:graph_404(req, req.params.mid) end
  if req.token and req.token.app_only then
    return self:graph_err(403, "accessDenied", "Request Authorization failed", req)
  end
  local b = body_json(req) or {}
  u.lastPasswordChange = self:now_ms()
  u.forceChange = true
  self:audit{ activity = "Reset password (by admin)", category = "UserManagement", operationType = "Update", target = u, req = req }
  local op = T.uuid(self.seed, "pwop", self:seq())
  local body = b.newPassword and {} or { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#microsoft.graph.passwordResetResponse",
                                         newPassword = "Sbx" .. T.b62(9, self.seed, "pw", op) }
  return 202, body, { Location = self.base_url .. "/v1.0/users/" .. u.id .. "/authentication/operations/" .. op, ["Retry-After"] = "5" }
end

function MS:h_member_of(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  local out = {}
  for _, g in ipairs(self.state.groups) do
    if g.member_set[u.id] then local o = self:group_full(g); o["@odata.type"] = "#microsoft.graph.group"; out[#out + 1] = o end
  end
  for _, r in ipairs(self:directory_roles()) do
    if r.members[u.id] then out[#out + 1] = self:dirrole_json(r, true) end
  end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#directoryObjects", value = A(out) }
end

-- users/delta(): full enumeration then changes; removed users carry @removed
function MS:user_changed(u)
  self.user_seq = (self.user_seq or 0) + 1
  u.cseq = self.user_seq
end

function MS:h_users_delta(req)
  local q = req.query
  local top = math.min(math.tointeger(tonumber(q["$top"] or "")) or 100, 999)
  local sel, serr = self:graph_select(req, USER_PROPS, "user")
  if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
  local base = self.base_url .. "/v1.0/users/delta()"
  -- token: "epoch:mode:since:after"; mode n = initial enumeration (snapshot since), d = changes after since
  local mode, since, after = "n", self.user_seq or 0, ""
  local tok = q["$deltatoken"] or q["$skiptoken"]
  if tok then
    local e, m, s2, a2 = (dec_skip(tok) or ""):match("^(%d+):([nd]):(%d+):(.*)$")
    if not e then return self:graph_err(400, "Request_BadRequest", "Invalid delta token.", req) end
    if tonumber(e) ~= self.delta_epoch then
      return self:graph_err(410, "syncStateNotFound", "The sync state generation is not found. Please restart the delta query without a token.", req)
    end
    mode, since, after = m, math.tointeger(tonumber(s2)), a2
  end
  local out, last, more = {}, nil, false
  for _, u in ipairs(self.state.users) do
    local want
    if mode == "d" then want = (u.cseq or 0) > since else want = not u.deleted end
    if want and u.id > after then
      if #out >= top then more = true; break end
      local o
      if u.deleted then o = { id = u.id, ["@removed"] = { reason = "changed" } }
      else o = project(self:user_full(u), sel or USER_DEFAULT); o.id = u.id end
      out[#out + 1] = o; last = u.id
    end
  end
  local body = { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#users", value = A(out) }
  local selq = q["$select"] and ("$select=" .. T.urlencode(q["$select"]) .. "&") or ""
  if more then
    body["@odata.nextLink"] = base .. "?" .. selq .. "$skiptoken=" .. enc_skip(table.concat({ self.delta_epoch, mode, since, last }, ":"))
  else
    local nxt = mode == "n" and since or (self.user_seq or 0)
    body["@odata.deltaLink"] = base .. "?" .. selq .. "$deltatoken=" .. enc_skip(table.concat({ self.delta_epoch, "d", nxt, "" }, ":"))
  end
  return 200, body
end

---------------------------------------------------------------------------------------------------
-- Graph: groups and members
---------------------------------------------------------------------------------------------------
function MS:h_groups(req)
  return self:graph_collection(req, { list = self.state.groups, full = function(g) return self:group_full(g) end,
    props = GROUP_PROPS, type = "group", context = "groups", top_default = 100, top_max = 999 })
end

function MS:h_group(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:graph_404(req, req.params.gid) end
  local sel, serr = self:graph_select(req, GROUP_PROPS, "group")
  if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
  local o = sel and project(self:group_full(g), sel) or self:group_full(g)
  o["@odata.context"] = self.base_url .. "/v1.0/$metadata#groups/$entity"
  return 200, o
end

function MS:h_group_members(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:graph_404(req, req.params.gid) end
  local list = {}
  local ids = req.path:find("/owners$") and { g.owner } or g.members
  for _, id in ipairs(ids) do
    local u = self.state.user_by_id[id]
    if u and not u.deleted then list[#list + 1] = { id = id } end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return self:graph_collection(req, { list = list, full = function(x) return (self:dirobj(x.id)) end,
    props = USER_PROPS, type = "directoryObject", context = "directoryObjects", top_default = 100, top_max = 999 })
end

function MS:h_group_member_ref(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:graph_404(req, req.params.gid) end
  if req.method == "POST" then
    local b = body_json(req)
    local id = b and type(b["@odata.id"]) == "string" and b["@odata.id"]:match("([%x%-]+)$")
    if not id or not self.state.user_by_id[id] then return self:graph_err(400, "Request_BadRequest", "Invalid object identifier.", req) end
    if g.member_set[id] then
      return self:graph_err(400, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.", req)
    end
    g.members[#g.members + 1] = id; g.member_set[id] = true
    self:audit{ activity = "Add member to group", category = "GroupManagement", operationType = "Assign", target = self.state.user_by_id[id], group = g, req = req }
    self:notify_change("groups", "updated", g.id, "#Microsoft.Graph.Group", "Groups/" .. g.id)
    return 204, ""
  end
  local id = req.params.oid
  if not g.member_set[id] then return self:graph_404(req, id) end
  g.member_set[id] = nil
  for i, m in ipairs(g.members) do if m == id then table.remove(g.members, i) break end end
  local u = self.state.user_by_id[id]
  self:audit{ activity = "Remove member from group", category = "GroupManagement", operationType = "Unassign", target = u, group = g, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Remove member from group.", ObjectId = u and u.upn or id, RecordType = 8, target = u })
  self:notify_change("groups", "updated", g.id, "#Microsoft.Graph.Group", "Groups/" .. g.id)
  return 204, ""
end


return true
