-- sandbox/salesforce/org.lua — the Salesforce org emulator's core (shared/api/salesforce.md): the objects
-- a tenant holds and their fields (the schema SOQL is checked against), the generated org, 18-character
-- record ids, Salesforce's error body (a JSON array of {message, errorCode, fields}), the daily API request
-- allowance with its Sforce-Limit-Info header, who may see what, and the ground truth.  auth.lua (OAuth)
-- and rest.lua (query, sObject rows, blobs) add their routes; init.lua mounts them.
local T = require "sandbox.tenant"
local soql = require "sandbox.salesforce.soql"

local S = { T = T }
local Org = setmetatable({}, { __index = T.Base })
Org.__index = Org
S.Org = Org

local function json() return T.host("json") end
S.json = json
S.crypto = function() return T.host("crypto") end
S.VERSIONS = { "31.0", "40.0", "50.0", "55.0", "58.0", "59.0", "60.0", "61.0", "62.0" }

---------------------------------------------------------------------------------------------- the schema
-- Field types of each object (Object Reference), as far as a tenant keeps them.
local B, ID, STR, DT, INT, DBL, PICK = "boolean", "id", "string", "datetime", "int", "double", "picklist"
local PERMS = { "PermissionsModifyAllData", "PermissionsViewAllData", "PermissionsManageUsers", "PermissionsApiEnabled",
  "PermissionsViewSetup", "PermissionsViewEventLogFiles", "PermissionsCustomizeApplication" }
local function with_perms(f) for _, p in ipairs(PERMS) do f[p] = B end; return f end

S.SCHEMA = {
  User = { prefix = "005", fields = { Id = ID, Username = STR, Email = STR, Name = STR, FirstName = STR, LastName = STR,
    Alias = STR, IsActive = B, UserType = PICK, ProfileId = ID, UserRoleId = ID, LastLoginDate = DT, CreatedDate = DT,
    LastModifiedDate = DT, SystemModstamp = DT, FederationIdentifier = STR, Department = STR, Title = STR },
    rels = { Profile = { object = "Profile", key = "ProfileId" }, UserRole = { object = "UserRole", key = "UserRoleId" } },
    update = { IsActive = B, FirstName = STR, LastName = STR, Title = STR, Department = STR, ProfileId = ID } },
  Profile = { prefix = "00e", fields = with_perms { Id = ID, Name = STR, UserType = PICK, CreatedDate = DT, LastModifiedDate = DT },
    needs = "PermissionsViewSetup" },
  UserRole = { prefix = "00E", fields = { Id = ID, Name = STR, DeveloperName = STR, ParentRoleId = ID } },
  UserLogin = { prefix = "060", fields = { Id = ID, UserId = ID, IsFrozen = B, IsPasswordLocked = B, LastModifiedDate = DT,
    LastModifiedById = ID }, needs = "PermissionsManageUsers", update = { IsFrozen = B, IsPasswordLocked = B } },
  PermissionSet = { prefix = "0PS", fields = with_perms { Id = ID, Name = STR, Label = STR, IsOwnedByProfile = B, ProfileId = ID,
    CreatedDate = DT }, rels = { Profile = { object = "Profile", key = "ProfileId" } }, needs = "PermissionsViewSetup" },
  PermissionSetAssignment = { prefix = "0Pa", fields = { Id = ID, AssigneeId = ID, PermissionSetId = ID, SystemModstamp = DT },
    rels = { Assignee = { object = "User", key = "AssigneeId" }, PermissionSet = { object = "PermissionSet", key = "PermissionSetId" } },
    needs = "PermissionsViewSetup", deletable = true },
  Group = { prefix = "00G", fields = { Id = ID, Name = STR, DeveloperName = STR, Type = PICK, Email = STR, RelatedId = ID,
    CreatedDate = DT } },
  GroupMember = { prefix = "011", fields = { Id = ID, GroupId = ID, UserOrGroupId = ID, SystemModstamp = DT },
    rels = { Group = { object = "Group", key = "GroupId" } }, deletable = true },
  LoginGeo = { prefix = "04F", fields = { Id = ID, City = STR, Country = STR, CountryIso = STR, Subdivision = STR, PostalCode = STR,
    Latitude = DBL, Longitude = DBL, LoginTime = DT }, needs = "PermissionsManageUsers" },
  LoginHistory = { prefix = "0Ya", fields = { Id = ID, UserId = ID, LoginTime = DT, LoginType = PICK, LoginSubType = PICK,
    SourceIp = STR, Status = STR, Application = STR, Browser = STR, Platform = STR, LoginUrl = STR, ApiType = STR,
    ApiVersion = STR, ClientVersion = STR, CountryIso = STR, LoginGeoId = ID, TlsProtocol = PICK, CipherSuite = PICK,
    AuthenticationServiceId = ID, AuthMethodReference = STR, ForwardedForIp = STR, NetworkId = ID },
    rels = { LoginGeo = { object = "LoginGeo", key = "LoginGeoId" } }, needs = "PermissionsManageUsers" },
  SetupAuditTrail = { prefix = "0Ym", fields = { Id = ID, Action = STR, Section = STR, Display = STR, CreatedDate = DT,
    CreatedById = ID, DelegateUser = STR, ResponsibleNamespacePrefix = STR, CreatedByContext = STR, CreatedByIssuer = STR },
    rels = { CreatedBy = { object = "User", key = "CreatedById" } }, needs = "PermissionsViewSetup" },
  EventLogFile = { prefix = "0AT", fields = { Id = ID, EventType = PICK, LogDate = DT, Interval = PICK, Sequence = INT,
    LogFileLength = DBL, LogFileContentType = STR, LogFileFieldNames = STR, LogFileFieldTypes = STR, CreatedDate = DT,
    ApiVersion = DBL, LogFile = "base64" }, needs = "PermissionsViewEventLogFiles" },
  AuthSession = { prefix = "0Ak", fields = { Id = ID, UsersId = ID, CreatedDate = DT, LastModifiedDate = DT, NumSecondsValid = INT,
    LoginType = PICK, SessionType = PICK, SessionSecurityLevel = PICK, SourceIp = STR, UserType = PICK, LoginHistoryId = ID,
    ParentId = ID, IsCurrent = B }, rels = { Users = { object = "User", key = "UsersId" } }, needs = "PermissionsManageUsers",
    deletable = true },
  OauthToken = { prefix = "0CQ", fields = { Id = ID, AppName = STR, AppMenuItemId = ID, UserId = ID, CreatedDate = DT,
    LastUsedDate = DT, UseCount = INT, DeleteToken = STR, RequestToken = STR },
    rels = { User = { object = "User", key = "UserId" } } },
  ContentWorkspace = { prefix = "058", fields = { Id = ID, Name = STR, DeveloperName = STR, Description = STR, CreatedDate = DT } },
  ContentDocument = { prefix = "069", fields = { Id = ID, Title = STR, FileExtension = STR, FileType = STR, ContentSize = INT,
    OwnerId = ID, LatestPublishedVersionId = ID, ParentId = ID, PublishStatus = PICK, SharingOption = PICK, IsArchived = B,
    IsDeleted = B, CreatedDate = DT, LastModifiedDate = DT, SystemModstamp = DT },
    rels = { Owner = { object = "User", key = "OwnerId" }, LatestPublishedVersion = { object = "ContentVersion", key = "LatestPublishedVersionId" } },
    deletable = true },
  ContentVersion = { prefix = "068", fields = { Id = ID, ContentDocumentId = ID, Title = STR, PathOnClient = STR,
    VersionData = "base64", VersionNumber = STR, IsLatest = B, ContentSize = INT, Checksum = STR, FileExtension = STR,
    FileType = STR, ReasonForChange = STR, FirstPublishLocationId = ID, OwnerId = ID, CreatedDate = DT, SystemModstamp = DT },
    rels = { ContentDocument = { object = "ContentDocument", key = "ContentDocumentId" } } },
  ContentDocumentLink = { prefix = "06A", fields = { Id = ID, ContentDocumentId = ID, LinkedEntityId = ID, ShareType = PICK,
    Visibility = PICK, IsDeleted = B, SystemModstamp = DT },
    rels = { ContentDocument = { object = "ContentDocument", key = "ContentDocumentId" }, LinkedEntity = { poly = true, key = "LinkedEntityId" } },
    deletable = true },
  ContentDistribution = { prefix = "05D", fields = { Id = ID, Name = STR, ContentVersionId = ID, ContentDocumentId = ID,
    DistributionPublicUrl = STR, ContentDownloadUrl = STR, ExpiryDate = DT, PreferencesPasswordRequired = B,
    PreferencesAllowViewInBrowser = B, PreferencesExpires = B, ViewCount = INT, OwnerId = ID, CreatedDate = DT, SystemModstamp = DT },
    deletable = true },
}
local PREFIX = {}
for name, def in pairs(S.SCHEMA) do PREFIX[def.prefix] = name end
PREFIX["00D"] = "Organization"

---------------------------------------------------------------------------------------------- ids and times
-- An 18-character id: 15 case-sensitive characters and a 3-character suffix that makes it unique
-- case-insensitively (each character encodes which of 5 characters are upper case).
local SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
function S.id18(id15)
  local out = {}
  for chunk = 0, 2 do
    local flags = 0
    for k = 0, 4 do
      local c = id15:byte(chunk * 5 + k + 1)
      if c >= 65 and c <= 90 then flags = flags | (1 << k) end
    end
    out[#out + 1] = SUFFIX:sub(flags + 1, flags + 1)
  end
  return id15 .. table.concat(out)
end

function Org:new_id(object, salt)
  local prefix = object == "Organization" and "00D" or S.SCHEMA[object].prefix
  self.idseq = (self.idseq or 0) + 1
  return S.id18(prefix .. "5g" .. T.b62(10, self.seed, object, salt or self.idseq))
end

-- Salesforce writes dateTimes as 2013-05-20T20:49:32.000+0000.
function S.sftime(ms) return (T.iso_ms(ms):gsub("Z$", "+0000")) end

---------------------------------------------------------------------------------------------- errors
-- [{"message", "errorCode", "fields"}] — how the REST API answers every error.
function S.err(status, code, message, fields)
  return status, { { message = message, errorCode = code, fields = fields and json().array(fields) or nil } }
end
function Org:not_found(what)
  return S.err(404, "NOT_FOUND", "The requested resource does not exist" .. (what and (": " .. what) or ""))
end

---------------------------------------------------------------------------------------------- generation
local FIRST = { "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
  "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter", "Xena", "Yusuf", "Zoe", "Aisha", "Bruno", "Chen" }
local LAST = { "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson", "Thomas",
  "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Nguyen" }
local PROFILES = {
  { "System Administrator", "Standard", { ModifyAllData = true, ViewAllData = true, ManageUsers = true, ApiEnabled = true,
    ViewSetup = true, ViewEventLogFiles = true, CustomizeApplication = true } },
  { "Standard User", "Standard", { ApiEnabled = true } },
  { "Read Only", "Standard", {} },
  { "Marketing User", "Standard", { ApiEnabled = true } },
  { "Contract Manager", "Standard", { ApiEnabled = true } },
  { "Partner Community User", "PowerPartner", {} },
}
local PERMSETS = {
  { "Security_Admin", "Security Admin", { ManageUsers = true, ViewSetup = true } },
  { "Data_Auditor", "Data Auditor", { ViewAllData = true } },
  { "Sales_Ops", "Sales Operations", { ApiEnabled = true } },
}
local ROLES = { "CEO", "VP Sales", "Sales Manager", "Sales Rep", "Support" }
local GROUPS = { "Sales Team", "Support Team", "Finance", "EMEA", "Executives", "Partners" }
S.CITIES = {
  { "New York", "United States", "US", "New York", 40.7157, -74.01 }, { "San Francisco", "United States", "US", "California", 37.7749, -122.4194 },
  { "London", "United Kingdom", "GB", "England", 51.5072, -0.1276 }, { "Berlin", "Germany", "DE", "Berlin", 52.52, 13.405 },
}
S.FOREIGN = { { "Lagos", "Nigeria", "NG", "Lagos", 6.5244, 3.3792 }, { "Moscow", "Russia", "RU", "Moscow", 55.7558, 37.6173 } }
local APPS = { "Salesforce for iOS", "Salesforce for Android", "Data Loader", "Salesforce CLI", "Workbench", "Slack",
  "Contacts Export Pro" }
local BROWSERS = { { "Chrome 127", "Mac OSX" }, { "Firefox 128", "Linux" }, { "Edge 126", "Windows 10" }, { "Safari 17", "iPhone" } }

local function put(self, object, row)
  row.Id = row.Id or self:new_id(object)
  local list = self.db[object]
  list[#list + 1] = row
  self.byid[row.Id:sub(1, 15)] = row
  row["@type"] = object
  return row
end
Org.put = put

function S.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Org)
  T.Base.init(self, opts)
  self.name = opts.org_name or "acme"
  self.domain = opts.email_domain or (self.name .. ".example.com")
  self.is_sandbox = opts.is_sandbox or false
  self.edition = opts.edition or "Enterprise Edition"
  self.nusers = opts.users or 40
  self.days = opts.days or 7
  self.nlogins = opts.logins or math.floor((opts.logins_per_day or 30) * self.days)
  self.nfiles = opts.files or math.max(6, self.nusers // 2)
  self.event_monitoring = opts.event_monitoring ~= false     -- the add-on: every event type, else Login and Logout
  self.api_limit = opts.api_limit or 100000                  -- DailyApiRequests
  self.api_used = opts.api_used or 0
  self.session_seconds = opts.session_seconds or 7200        -- the org's session timeout
  self.tokens, self.codes, self.refresh_tokens, self.cursors, self.used_jti = {}, {}, {}, {}, {}
  self.db, self.byid = {}, {}
  for name in pairs(S.SCHEMA) do self.db[name] = {} end
  self:generate(opts)
  -- the connected app cachost uses: its consumer key, the certificate (public key) its JWTs are checked
  -- with, the consumer secret of the web server flow, and the users pre-authorized to use it
  local app = opts.app or {}
  local cr = S.crypto()
  self.app = {
    client_id = app.client_id or ("3MVG9" .. T.b62(80, self.seed, "consumer-key")),
    client_secret = app.client_secret or T.hexs(64, self.seed, "consumer-secret"),
    private_key = app.private_key,
    name = "cachost",
    authorized = {},
  }
  if not app.public_key and not self.app.private_key then self.app.private_key = cr.keygen("RSA") end
  self.app.public_key = app.public_key or cr.jwk_pem(cr.jwk(self.app.private_key))
  self.app.authorized[self.integration.Id] = true
  return self
end

function Org:generate(opts)
  local r, seed = T.rng(self.seed, "salesforce"), self.seed
  local now = self.t0_ms
  local day = 86400000
  local function at(back_days) return now - math.floor(back_days * day) end
  self.org_id = self:new_id("Organization", "org")
  self.profiles = {}
  for k, p in ipairs(PROFILES) do
    local row = put(self, "Profile", { Name = p[1], UserType = p[2], CreatedDate = S.sftime(at(900)), LastModifiedDate = S.sftime(at(400)) })
    for _, perm in ipairs(PERMS) do row[perm] = p[3][perm:gsub("^Permissions", "")] == true end
    self.profiles[k] = row
    local ps = put(self, "PermissionSet", { Name = "X" .. row.Id:sub(1, 15), Label = "", IsOwnedByProfile = true, ProfileId = row.Id,
      CreatedDate = row.CreatedDate })
    for _, perm in ipairs(PERMS) do ps[perm] = row[perm] end
    row["@permset"] = ps
  end
  self.permsets = {}
  for _, p in ipairs(PERMSETS) do
    local ps = put(self, "PermissionSet", { Name = p[1], Label = p[2], IsOwnedByProfile = false, CreatedDate = S.sftime(at(300)) })
    for _, perm in ipairs(PERMS) do ps[perm] = p[3][perm:gsub("^Permissions", "")] == true end
    self.permsets[#self.permsets + 1] = ps
  end
  self.roles = {}
  for _, name in ipairs(ROLES) do
    self.roles[#self.roles + 1] = put(self, "UserRole", { Name = name, DeveloperName = name:gsub("%s", "_") })
  end
  -- users: the first is the integration user cachost signs in as (System Administrator)
  local used = {}
  self.users = {}
  for i = 1, self.nusers do
    local first, last = r:pick(FIRST), r:pick(LAST)
    if i == 1 then first, last = "Integration", "Cachost" end
    local base = (first .. "." .. last):lower()
    local uname = base .. "@" .. self.domain
    local k = 1
    while used[uname] do k = k + 1; uname = base .. k .. "@" .. self.domain end
    used[uname] = true
    local x = i == 1 and 0 or r:float()
    local profile = self.profiles[i == 1 and 1 or (x < 0.08 and 1 or x < 0.12 and 6 or r:int(2, 5))]
    local active = not (i > 2 and r:chance(0.1))
    local u = put(self, "User", {
      Username = uname, Email = uname, FirstName = first, LastName = last, Name = first .. " " .. last,
      Alias = (first:sub(1, 1) .. last:sub(1, 4)):lower(), IsActive = active,
      UserType = profile.UserType, ProfileId = profile.Id, UserRoleId = profile.UserType == "Standard" and r:pick(self.roles).Id or nil,
      LastLoginDate = S.sftime(at(r:float() * 3)), CreatedDate = S.sftime(at(30 + r:int(1, 600))),
      LastModifiedDate = S.sftime(at(r:int(1, 20))), Title = profile.UserType == "Standard" and "Account Executive" or "Partner",
    })
    u.SystemModstamp = u.LastModifiedDate
    self.users[i] = u
    local frozen = i > 2 and active and r:chance(0.06)
    local locked = i > 2 and active and not frozen and r:chance(0.05)
    u["@login"] = put(self, "UserLogin", { UserId = u.Id, IsFrozen = frozen, IsPasswordLocked = locked, LastModifiedDate = u.LastModifiedDate })
    -- every user holds their profile's permission set
    put(self, "PermissionSetAssignment", { AssigneeId = u.Id, PermissionSetId = profile["@permset"].Id, SystemModstamp = u.CreatedDate })
    if i > 1 and profile.UserType == "Standard" and r:chance(0.15) then
      put(self, "PermissionSetAssignment", { AssigneeId = u.Id, PermissionSetId = r:pick(self.permsets).Id, SystemModstamp = u.CreatedDate })
    end
  end
  self.integration = self.users[1]
  -- groups: public groups (Regular) with users and a nested group; the org-wide group
  put(self, "Group", { Name = "All Internal Users", DeveloperName = "AllInternalUsers", Type = "Organization", CreatedDate = S.sftime(at(900)) })
  local groups = {}
  for k = 1, math.max(2, math.min(#GROUPS, self.nusers // 6)) do
    local g = put(self, "Group", { Name = GROUPS[k], DeveloperName = GROUPS[k]:gsub("%s", "_"), Type = "Regular", CreatedDate = S.sftime(at(200)) })
    groups[k] = g
    for _, u in ipairs(self.users) do
      if r:chance(0.3) then put(self, "GroupMember", { GroupId = g.Id, UserOrGroupId = u.Id, SystemModstamp = g.CreatedDate }) end
    end
    if k > 1 and r:chance(0.5) then put(self, "GroupMember", { GroupId = g.Id, UserOrGroupId = groups[1].Id, SystemModstamp = g.CreatedDate }) end
  end
  for _, role in ipairs(self.roles) do
    put(self, "Group", { Name = "", DeveloperName = role.DeveloperName, Type = "Role", RelatedId = role.Id, CreatedDate = S.sftime(at(900)) })
  end
  -- sign-ins (LoginHistory, oldest first), some failing, a few from abroad
  self.geos = {}
  for _, c in ipairs(S.CITIES) do self.geos[#self.geos + 1] = self:geo(c) end
  for k = 0, self.nlogins - 1 do
    local u = self.users[r:int(2, #self.users)]
    local ms = now - self.days * day + math.floor((k + 0.5) * self.days * day / math.max(1, self.nlogins))
    local failed = r:chance(0.12)
    self:add_login(u, ms, failed and "Invalid Password" or "Success", r:pick(self.geos), r:pick(BROWSERS), r)
  end
  -- Setup Audit Trail: admin changes
  local ACTIONS = { { "PermSetAssign", "Manage Users", "Permission set Security Admin: assigned to %s" },
    { "changedprofileforuser", "Manage Users", "Changed profile for user %s from Standard User to System Administrator" },
    { "createduser", "Manage Users", "Created new user %s" }, { "frozeuser", "Manage Users", "Froze user %s" },
    { "PermSetCreate", "Manage Users", "Created permission set Data Auditor" } }
  for k = 1, math.max(4, self.nusers // 3) do
    local a, target = r:pick(ACTIONS), r:pick(self.users)
    self:audit(a[1], a[2], a[3]:format(target.Username), now - self.days * day + k * math.floor(self.days * day / (self.nusers // 3 + 5)))
  end
  -- OAuth tokens users granted to connected apps
  self.app_items = {}
  for _, name in ipairs(APPS) do self.app_items[name] = self:new_id("OauthToken", "menu" .. name):gsub("^0CQ", "0Pp") end
  for _, u in ipairs(self.users) do
    if u.IsActive and u ~= self.users[1] and r:chance(0.4) then
      for _ = 1, r:int(1, 2) do
        local name = r:pick(APPS)
        put(self, "OauthToken", { AppName = name, AppMenuItemId = self.app_items[name], UserId = u.Id,
          CreatedDate = S.sftime(at(r:int(5, 200))), LastUsedDate = S.sftime(at(r:float() * 4)), UseCount = r:int(1, 900),
          DeleteToken = T.b62(40, seed, "delete-token", u.Id, name), RequestToken = T.b62(24, seed, "request-token", u.Id, name) })
      end
    end
  end
  self:generate_files(r, at)
  self:generate_log_files()
end

function Org:geo(c)
  return put(self, "LoginGeo", { City = c[1], Country = c[2], CountryIso = c[3], Subdivision = c[4], Latitude = c[5], Longitude = c[6] })
end

-- One LoginHistory row (and the user's LastLoginDate on success).
-- One LoginHistory row; a success updates the user's LastLoginDate and opens a session (AuthSession,
-- valid 2 hours) when it is that recent.
function Org:add_login(u, ms, status, geo, browser, r)
  local ip = ("%d.%d.%d.%d"):format(r:int(20, 200), r:int(0, 255), r:int(0, 255), r:int(1, 254))
  local row = put(self, "LoginHistory", { UserId = u.Id, LoginTime = S.sftime(ms), LoginType = "Application",
    SourceIp = ip, Status = status, Application = "Browser", Browser = browser[1], Platform = browser[2],
    LoginUrl = self.name .. ".my.salesforce.com", CountryIso = geo.CountryIso, LoginGeoId = geo.Id,
    TlsProtocol = "TLS 1.3", CipherSuite = "TLS_AES_256_GCM_SHA384", ApiType = "N/A", ApiVersion = "N/A" })
  if status == "Success" then
    u.LastLoginDate = row.LoginTime
    if ms > self.t0_ms - 7200000 then
      put(self, "AuthSession", { UsersId = u.Id, CreatedDate = row.LoginTime, LastModifiedDate = row.LoginTime, NumSecondsValid = 7200,
        LoginType = "Application", SessionType = "UI", SessionSecurityLevel = "STANDARD", SourceIp = ip, UserType = u.UserType,
        LoginHistoryId = row.Id, IsCurrent = true })
    end
  end
  return row
end

function Org:audit(action, section, display, ms, by)
  return put(self, "SetupAuditTrail", { Action = action, Section = section, Display = display, CreatedDate = S.sftime(ms or self:now_ms()),
    CreatedById = (by or self.integration or self.users[1]).Id })
end

---------------------------------------------------------------------------------------------- files
local CARD = "Customer cards on file:\n4111 1111 1111 1111 exp 12/29\n5500 0000 0000 0004 exp 01/28\n"
local TEXTS = { "Quarterly pipeline review notes.\n", "Meeting agenda: renewals, pricing, next steps.\n",
  "Onboarding checklist for new account executives.\n", "Territory plan draft.\n" }

function Org:add_version(doc, body, path, reason, ms)
  local cr = S.crypto()
  for _, v in ipairs(self.db.ContentVersion) do if v.ContentDocumentId == doc.Id then v.IsLatest = false end end
  local n = 0
  for _, v in ipairs(self.db.ContentVersion) do if v.ContentDocumentId == doc.Id then n = n + 1 end end
  local ext = path:match("%.(%w+)$") or ""
  local v = put(self, "ContentVersion", { ContentDocumentId = doc.Id, Title = doc.Title, PathOnClient = path,
    VersionNumber = tostring(n + 1), IsLatest = true, ContentSize = #body, Checksum = cr.hex(cr.sha256(body)):sub(1, 32),
    FileExtension = ext, FileType = ext == "txt" and "TEXT" or ext:upper(), ReasonForChange = reason, OwnerId = doc.OwnerId,
    CreatedDate = S.sftime(ms), SystemModstamp = S.sftime(ms) })
  v["@data"] = body
  doc.LatestPublishedVersionId, doc.ContentSize, doc.FileExtension, doc.FileType = v.Id, #body, ext, v.FileType
  doc.LastModifiedDate, doc.SystemModstamp = S.sftime(ms), S.sftime(ms)
  return v
end

function Org:link(doc, entity, share, visibility, ms)
  return put(self, "ContentDocumentLink", { ContentDocumentId = doc.Id, LinkedEntityId = entity, ShareType = share,
    Visibility = visibility, IsDeleted = false, SystemModstamp = S.sftime(ms or self:now_ms()) })
end

function Org:distribute(doc, ms, expiry)
  local key = T.b62(20, self.seed, "dist", doc.Id)
  local host = "https://" .. self.name .. ".my.salesforce.com"
  return put(self, "ContentDistribution", { Name = doc.Title, ContentVersionId = doc.LatestPublishedVersionId, ContentDocumentId = doc.Id,
    DistributionPublicUrl = host .. "/sfc/p/" .. key, ContentDownloadUrl = host .. "/sfc/dist/version/download/?d=" .. key,
    ExpiryDate = expiry and S.sftime(expiry) or nil, PreferencesPasswordRequired = false, PreferencesAllowViewInBrowser = true,
    PreferencesExpires = expiry ~= nil, ViewCount = 3, OwnerId = doc.OwnerId, CreatedDate = S.sftime(ms), SystemModstamp = S.sftime(ms) })
end

function Org:generate_files(r, at)
  self.libraries = {
    put(self, "ContentWorkspace", { Name = "Sales Collateral", DeveloperName = "Sales_Collateral", CreatedDate = S.sftime(at(300)) }),
    put(self, "ContentWorkspace", { Name = "cachost quarantine", DeveloperName = "cachost_quarantine",
      Description = "Restricted: files quarantined by cachost (members: administrators only)", CreatedDate = S.sftime(at(300)) }),
  }
  local partners = {}
  for _, u in ipairs(self.users) do if u.UserType ~= "Standard" then partners[#partners + 1] = u end end
  for k = 1, self.nfiles do
    local owner = self.users[r:int(2, #self.users)]
    local card = k == 1
    local title = card and "customer-cards" or ("notes-" .. k)
    local ms = at(r:int(2, 100))
    local doc = put(self, "ContentDocument", { Title = title, OwnerId = owner.Id, PublishStatus = "R", SharingOption = "A",
      IsArchived = false, IsDeleted = false, CreatedDate = S.sftime(ms) })
    self:add_version(doc, card and CARD or r:pick(TEXTS), title .. ".txt", nil, ms)
    self:link(doc, owner.Id, "I", "AllUsers", ms)
    local x = r:float()
    if card or x < 0.2 then self:distribute(doc, ms) end
    if x > 0.5 then
      local other = r:pick(self.users)
      if other == owner then other = self.users[1] end
      self:link(doc, other.Id, r:chance(0.5) and "V" or "C", "AllUsers", ms)
    end
    if x > 0.8 then self:link(doc, self.org_id, "V", "InternalUsers", ms) end
    if x > 0.3 and x < 0.4 and #partners > 0 then self:link(doc, r:pick(partners).Id, "V", "AllUsers", ms) end
    if x > 0.9 then self:link(doc, self.libraries[1].Id, "I", "AllUsers", ms) end
  end
  -- one file deleted (in the Recycle Bin): queryAll shows it, query does not
  local gone = self.db.ContentDocument[#self.db.ContentDocument]
  if #self.db.ContentDocument > 3 then gone.IsDeleted = true end
end

---------------------------------------------------------------------------------------------- event log files
-- The columns of each event type (EventLogFile Supported Event Types), in the file's order.
S.LOG_FIELDS = {
  Login = { "EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "USER_NAME", "LOGIN_STATUS", "SOURCE_IP",
    "BROWSER_TYPE", "TLS_PROTOCOL", "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP" },
  Logout = { "EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "USER_TYPE", "SESSION_TYPE", "SESSION_LEVEL",
    "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP" },
  API = { "EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "METHOD_NAME", "ENTITY_NAME", "ROWS_PROCESSED",
    "CLIENT_NAME", "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP" },
  URI = { "EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "URI", "REFERRER_URI", "REQUEST_STATUS",
    "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP" },
  ReportExport = { "EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "REPORT_DESCRIPTION", "CLIENT_INFO",
    "TIMESTAMP_DERIVED", "USER_ID_DERIVED", "CLIENT_IP" },
}
local FREE_TYPES = { Login = true, Logout = true }    -- without Event Monitoring

-- Daily files for each whole day of the log that has ended (a day's file appears the next morning).
function Org:generate_log_files()
  local day = 86400000
  local today = self.t0_ms - self.t0_ms % day
  for d = self.days, 1, -1 do
    local log_date = today - d * day
    for _, ty in ipairs { "Login", "Logout", "API", "URI", "ReportExport" } do
      if self.event_monitoring or FREE_TYPES[ty] then
        local f = put(self, "EventLogFile", { EventType = ty, LogDate = S.sftime(log_date), Interval = "Daily", Sequence = 0,
          LogFileContentType = "CSV", LogFileFieldNames = table.concat(S.LOG_FIELDS[ty], ","), ApiVersion = 62.0,
          LogFileFieldTypes = table.concat(S.LOG_FIELDS[ty], ","):gsub("[^,]+", "String"),
          CreatedDate = S.sftime(log_date + day + 3 * 3600000) })
        f.LogFileLength = #self:log_csv(f)
      end
    end
  end
end

local function q(v) return '"' .. tostring(v or ""):gsub('"', '""') .. '"' end

-- The CSV of an event log file: a header and one quoted record per event.
function Org:log_csv(f)
  local fields = S.LOG_FIELDS[f.EventType]
  local r = T.rng(self.seed, "elf:" .. f.Id)
  local from = soql.ms(f.LogDate)
  local lines = { table.concat(fields, ",") }
  local events = {}
  if f.EventType == "Login" or f.EventType == "Logout" then
    for _, l in ipairs(self.db.LoginHistory) do
      local ms = soql.ms(l.LoginTime)
      if ms >= from and ms < from + 86400000 and (f.EventType == "Login" or l.Status == "Success") then
        events[#events + 1] = { ms = f.EventType == "Logout" and ms + 1800000 or ms, user = self.byid[l.UserId:sub(1, 15)], login = l }
      end
    end
  else
    for k = 1, r:int(3, 12) do
      events[#events + 1] = { ms = from + math.floor(k * 86400000 / 13), user = self.users[r:int(1, #self.users)] }
    end
  end
  for k, e in ipairs(events) do
    local ts = T.iso_ms(e.ms)
    local v = { EVENT_TYPE = f.EventType, TIMESTAMP = ts:gsub("[-T:Z]", ""), REQUEST_ID = "4" .. T.b62(14, self.seed, f.Id, k),
      ORGANIZATION_ID = self.org_id:sub(1, 15), USER_ID = e.user.Id:sub(1, 15), USER_ID_DERIVED = e.user.Id,
      TIMESTAMP_DERIVED = ts, CLIENT_IP = e.login and e.login.SourceIp or ("10.0.%d.%d"):format(r:int(0, 9), r:int(1, 254)),
      USER_NAME = e.user.Username, LOGIN_STATUS = e.login and (e.login.Status == "Success" and "LOGIN_NO_ERROR" or "LOGIN_ERROR_INVALID_PASSWORD"),
      SOURCE_IP = e.login and e.login.SourceIp, BROWSER_TYPE = e.login and e.login.Browser, TLS_PROTOCOL = "1.3",
      USER_TYPE = "Standard", SESSION_TYPE = "UI", SESSION_LEVEL = "STANDARD", METHOD_NAME = r:pick { "query", "update", "create" },
      ENTITY_NAME = r:pick { "Account", "Contact", "Opportunity" }, ROWS_PROCESSED = tostring(r:int(1, 500)),
      CLIENT_NAME = r:pick { "DataLoader", "Workbench", "" }, URI = r:pick { "/home/home.jsp", "/001/o", "/006/o" },
      REFERRER_URI = "/", REQUEST_STATUS = "S", REPORT_DESCRIPTION = "Pipeline by owner", CLIENT_INFO = "Browser" }
    local out = {}
    for c, name in ipairs(fields) do out[c] = q(v[name]) end
    lines[#lines + 1] = table.concat(out, ",")
  end
  return table.concat(lines, "\r\n") .. "\r\n"
end

---------------------------------------------------------------------------------------------- who sees what
-- The integration user's permissions: their profile's and their permission sets'.
function Org:perms(u)
  local p = {}
  for _, a in ipairs(self.db.PermissionSetAssignment) do
    if a.AssigneeId == u.Id then
      local ps = self.byid[a.PermissionSetId:sub(1, 15)]
      for _, name in ipairs(PERMS) do if ps[name] then p[name] = true end end
    end
  end
  return p
end

-- An object the user may not see does not exist for them (INVALID_TYPE).
function Org:visible(u)
  local p = self:perms(u)
  return function(object)
    local need = S.SCHEMA[object].needs
    return not need or p[need] == true or p.PermissionsModifyAllData == true
  end
end

function Org:resolver()
  return function(id) return self.byid[tostring(id):sub(1, 15)] end
end

---------------------------------------------------------------------------------------------- the API allowance
-- Every REST call counts against the org's DailyApiRequests (a rolling 24 hours); past it, 403
-- REQUEST_LIMIT_EXCEEDED.  Every answer says where the org stands: Sforce-Limit-Info: api-usage=N/M.
function Org:take_request()
  self.api_used = self.api_used + 1
  return self.api_used <= self.api_limit
end

function Org:decorate(req, status, hdr)
  if req.sf_counted then hdr["Sforce-Limit-Info"] = ("api-usage=%d/%d"):format(math.min(self.api_used, self.api_limit), self.api_limit) end
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json;charset=UTF-8"
end

-- The shared faults, as Salesforce answers them: its limit error (no Retry-After: Salesforce sends none),
-- UNKNOWN_EXCEPTION, SERVER_UNAVAILABLE, INSUFFICIENT_ACCESS.
function Org:fault_response(f, req)
  local k = f.kind
  local st, body
  if k == "429" or k == "secondary" then
    st, body = S.err(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
  elseif k == "primary" then
    st, body = S.err(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
  elseif k == "403" then
    st, body = S.err(403, "INSUFFICIENT_ACCESS", "You do not have permission to view this record.")
  elseif k == "500" then
    st, body = S.err(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1180453672-61447 (-1530488837)")
  else
    st, body = S.err(tonumber(k) or 503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
  end
  return st, json().encode(body), { ["Content-Type"] = "application/json;charset=UTF-8" }
end

---------------------------------------------------------------------------------------------- simulations and truth
-- Failed sign-ins to `login` (a username), then a success: a guessed password.
function Org:simulate_bruteforce(login, failures)
  local u
  for _, x in ipairs(self.users) do if x.Username == login or x.Email == login then u = x end end
  assert(u, "no such user: " .. tostring(login))
  local r = T.rng(self.seed, "bruteforce" .. login .. #self.db.LoginHistory)
  local geo = self:geo(S.FOREIGN[r:int(1, #S.FOREIGN)])
  local start = self:now_ms() - (failures + 1) * 20000
  for k = 1, failures do self:add_login(u, start + k * 20000, "Invalid Password", geo, BROWSERS[1], r) end
  self:add_login(u, start + (failures + 1) * 20000, "Success", geo, BROWSERS[1], r)
end

local function live(list, keep)
  local out = {}
  for _, row in ipairs(list) do if not row.IsDeleted and (not keep or keep(row)) then out[#out + 1] = row.Id end end
  return out
end

-- The provider ids of everything a complete sync holds.
function Org:truth()
  local db = self.db
  local regular = {}
  for _, g in ipairs(db.Group) do if g.Type == "Regular" then regular[g.Id] = true end end
  local docs = {}
  for _, d in ipairs(db.ContentDocument) do if not d.IsDeleted then docs[d.Id] = true end end
  local admin = {}
  for _, ps in ipairs(db.PermissionSet) do
    if ps.PermissionsModifyAllData or ps.PermissionsViewAllData or ps.PermissionsManageUsers then admin[ps.Id] = true end
  end
  local perms = live(db.ContentDocumentLink, function(l) return docs[l.ContentDocumentId] end)
  for _, id in ipairs(live(db.ContentDistribution, function(x) return docs[x.ContentDocumentId] end)) do perms[#perms + 1] = id end
  return {
    users = live(db.User), groups = live(db.Group, function(g) return regular[g.Id] end),
    group_members = live(db.GroupMember, function(m) return regular[m.GroupId] end),
    privileges = live(db.PermissionSetAssignment, function(a) return admin[a.PermissionSetId] end),
    app_grants = live(db.OauthToken), files = live(db.ContentDocument), file_permissions = perms,
  }
end

function Org:count(what)
  local t = self:truth()
  if t[what] then return #t[what] end
  if self.db[what] then return #self.db[what] end
  error("unknown count " .. tostring(what))
end

function Org:user_by_name(name)
  for _, u in ipairs(self.users) do if u.Username == name then return u end end
end

return S
