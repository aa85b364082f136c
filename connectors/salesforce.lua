-- Salesforce (REST API and SOQL over the setup and audit objects).  Reference: shared/api/salesforce.md.
-- Every read is a SOQL query (GET /query, /queryAll where deleted rows matter) paged by nextRecordsUrl;
-- writes are sObject PATCH / DELETE / POST; log files and file contents are blob fields.
local c = connector "salesforce"
c.title = "Salesforce"
c.settings = {
  { "my_domain", required = true, example = "acme.my.salesforce.com", help = "the org's My Domain host: every call goes there" },
  { "client_id", required = true, help = "the connected app's consumer key" },
  { "username", help = "JWT bearer flow (auth=jwt, default): the integration user the app is pre-authorized for" },
  { "private_key", secret = true, help = "JWT bearer flow: the PEM private key of the certificate uploaded to the connected app" },
  { "sandbox_org", type = "boolean", help = "a sandbox org: its users sign in at test.salesforce.com (the JWT's audience)" },
  { "client_secret", secret = true, help = "web server flow (auth=web, cachost instance connect): the consumer secret" },
  { "quarantine_library_id", help = "the restricted library (ContentWorkspace, members: administrators) quarantined files go "
      .. "to (default: the library named 'cachost quarantine')" },
  { "api_usage_max", type = "integer", help = "percent of the org's daily API requests (Sforce-Limit-Info) past which cachost "
      .. "stops reading until the 24-hour window frees (default 90: the org's other integrations keep the rest)" },
}
c.base_url = function(s) return "https://" .. s.my_domain end

-- The API version every path is written against: one place.
local API = "/services/data/v62.0"
c.API = API

---------------------------------------------------------------------------------------------- auth
-- JWT bearer (OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration): an RS256 assertion signed with
-- the key of the certificate uploaded to the connected app: iss the consumer key, sub the integration
-- user, aud the login host, exp within 3 minutes.  The answer has no expires_in and no refresh token: a
-- session lasts the org's session timeout (15 minutes at the shortest), so a new assertion is made every
-- 15 minutes.  Web server flow with PKCE: the consent in a browser; its refresh token renews the session.
local SESSION = 15 * 60
local JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
local function login_host(s)
  return (s.sandbox_org == true or s.sandbox_org == "true") and "https://test.salesforce.com" or "https://login.salesforce.com"
end

-- The token answer's instance_url is where calls go: it must be the org's own My Domain (the instance's
-- base URL), or the credentials would be for another org.
local function same_org(settings, t)
  local want = (str(settings.base_url) or c.base_url(settings)):match("^(https?://[^/]+)")
  local got = str(t.instance_url) and t.instance_url:match("^(https?://[^/]+)")
  if not got or got:lower() ~= want:lower() then
    return nil, ("the token is for %s, not this instance's My Domain %s (check my_domain)"):format(tostring(t.instance_url), want)
  end
  return true
end

c.auth = {
  default = "jwt",
  jwt = {
    type = "exchange", token_url = "/services/oauth2/token",
    exchange = function(x)
      local s = x.settings
      if not str(s.username) then return nil, "the username setting (the integration user) is not set", "auth" end
      local now = math.floor(x.now())
      local jwt, jerr = x.jwt({ iss = s.client_id, sub = s.username, aud = login_host(s), exp = now + 180 }, "private_key")
      if not jwt then return nil, jerr, "auth" end
      local resp, err, token, answer = x.request("POST", "/services/oauth2/token",
        { form = { grant_type = JWT_BEARER, assertion = jwt }, idempotent = true })
      if not resp then
        local d = answer and answer.data
        if type(d) == "table" and str(d.error) then return nil, ("%s: %s"):format(d.error, tostring(d.error_description or "")), "auth" end
        return nil, err, token
      end
      local t = resp.data
      if type(t) ~= "table" or not str(t.access_token) then return nil, "the token answer has no access_token", "auth" end
      local ok, why = same_org(s, t)
      if not ok then return nil, why, "auth" end
      return { token = t.access_token, expires_at = now + SESSION }
    end,
  },
  web = {
    type = "oauth2", grant = "authorization_code", pkce = true, lifetime = SESSION, accept = same_org,
    authorize_url = "/services/oauth2/authorize", token_url = "/services/oauth2/token",
    scopes = { "api", "refresh_token" },
  },
}

---------------------------------------------------------------------------------------------- what it offers
c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = true,
  activities = { "signin", "admin", "user" },
}
c.needs = {
  users = "the integration user's API Enabled and Manage Users (UserLogin: frozen and password-locked state)",
  groups = "API Enabled",
  privileges = "View Setup and Configuration (PermissionSetAssignment, PermissionSet)",
  app_grants = "Manage Users (every user's OauthToken)",
  activities = "Manage Users (LoginHistory), View Setup and Configuration (SetupAuditTrail), View Event Log Files "
    .. "(EventLogFile; event types beyond Login and Logout need the Event Monitoring add-on)",
  files = "View All Data or Query All Files (every user's Salesforce Files)",
  suspend_user = "Manage Users (freezes the user: UserLogin.IsFrozen)", unsuspend_user = "Manage Users (unfreezes)",
  deactivate_user = "Manage Users", revoke_sessions = "Manage Users (AuthSession)", reset_password = "Manage Users (Salesforce e-mails the user)",
  unlock_user = "Manage Users", remove_admin_role = "Manage Users and Assign Permission Sets",
  quarantine_file = "Modify All Data and membership of the quarantine library", unquarantine_file = "Modify All Data",
  remove_shared_link = "Modify All Data", remove_collaborator = "Modify All Data", make_private = "Modify All Data",
  trash_file = "Modify All Data",
  revoke_grant = "Manage Users", revoke_token = "Manage Users",
}

-- [{"message", "errorCode", "fields"}]; the OAuth endpoints: {"error", "error_description"}.
local function first_error(d)
  if type(d) == "table" and json.is_array(d) and type(d[1]) == "table" then return d[1] end
end
function c.error_message(resp)
  local d = resp.data
  local e = first_error(d)
  if e then return ("%s: %s"):format(tostring(e.errorCode), tostring(e.message):gsub("%s+", " ")) end
  if type(d) == "table" and str(d.error) then return d.error .. (str(d.error_description) and (": " .. d.error_description) or "") end
  return (resp.body or ""):sub(1, 200)
end

-- REQUEST_LIMIT_EXCEEDED (403, no Retry-After): the org's concurrent long-request limit, or its daily
-- allowance.  Retried with backoff; past the retries the stream fails "throttled" and keeps what it read.
function c.is_throttled(resp)
  local e = resp.status == 403 and first_error(resp.data or (resp.body and select(2, pcall(json.decode, resp.body))))
  return e and e.errorCode == "REQUEST_LIMIT_EXCEEDED" or false
end

-- Professional Edition has no API unless the org bought it.
function c.unavailable(resp)
  local e = first_error(resp.data)
  if e and e.errorCode == "API_DISABLED_FOR_ORG" then return "Enterprise, Unlimited, Performance or Developer Edition, or the API add-on" end
end

---------------------------------------------------------------------------------------------- queries
-- Sforce-Limit-Info: api-usage=used/limit over the last 24 hours, the whole org's.  Past api_usage_max
-- percent cachost stops, so the org's other integrations keep their share.
local function spend(ctx, resp)
  local used, limit = tostring(resp.headers["sforce-limit-info"] or ""):match("api%-usage=(%d+)/(%d+)")
  used, limit = tonumber(used), tonumber(limit)
  local share = tonumber(ctx.settings.api_usage_max) or 90
  if used and limit and limit > 0 and used * 100 >= limit * share then
    fail(("the org has used %d of its %d daily API requests; cachost stops at %d%% (api_usage_max) until the 24-hour window frees")
      :format(used, limit, share), "throttled")
  end
end

-- Where a query's next batch is: nextRecordsUrl while done is false.
local function next_records(resp)
  local d = resp.data
  if d.done == true then return nil end
  if d.done == false and type(d.nextRecordsUrl) == "string" and d.nextRecordsUrl ~= "" then return d.nextRecordsUrl end
  error("malformed listing: a query answer without done, or not done without nextRecordsUrl", 0)
end
local NEXT = { items = "records", next = function(resp) return next_records(resp) end }

-- Objects that need a permission: a user without it is told the object does not exist (INVALID_TYPE).
local NEEDS = { UserLogin = "Manage Users", AuthSession = "Manage Users", LoginHistory = "Manage Users", LoginGeo = "Manage Users",
  SetupAuditTrail = "View Setup and Configuration", PermissionSetAssignment = "View Setup and Configuration",
  PermissionSet = "View Setup and Configuration", EventLogFile = "View Event Log Files" }

-- A SOQL query from its clauses: { object, "field, ...", where = "...", order = "..." }.
local function soql(q)
  return "SELECT " .. q[2] .. " FROM " .. q[1] .. (q.where and (" WHERE " .. q.where) or "")
    .. (q.order and (" ORDER BY " .. q.order) or "")
end

-- query(ctx, clauses, fn[, all]): fn(records) for each batch of the answer (queryAll with `all`).
local function query(ctx, clauses, fn, all)
  local path, q = API .. (all and "/queryAll" or "/query"), soql(clauses)
  local resp, err, token, answer = ctx:try("GET", path, { query = { q = q }, expect_json = true })
  if not resp then
    local e = answer and first_error(answer.data)
    local object = clauses[1]
    if e and e.errorCode == "INVALID_TYPE" and NEEDS[object] then
      fail(("%s is not visible to the integration user: it needs %s"):format(object, NEEDS[object]), "permission")
    end
    fail(err, token)
  end
  spend(ctx, resp)
  fn(ctx:listing(resp.data, "records", path))
  local url = next_records(resp)
  if not url then return end
  for records, r in ctx:pages(url, nil, NEXT) do
    spend(ctx, r)
    fn(records)
  end
end

-- An id in a SOQL literal: ids are 15 or 18 letters and digits, nothing to escape.
local function lit(id)
  id = tostring(id)
  if not id:match("^%w+$") or (#id ~= 15 and #id ~= 18) then fail("not a Salesforce id: " .. id, "http") end
  return "'" .. id .. "'"
end
local function list_of(ids)
  local out = {}
  for _, id in ipairs(ids) do out[#out + 1] = lit(id) end
  return "(" .. table.concat(out, ",") .. ")"
end

-- SOQL dateTime literal (no fraction): 2024-01-01T00:00:00Z.
local function soql_time(t) return (iso(t):gsub("%.%d+Z$", "Z")) end
local function when(s) local t = str(s) and parse_iso(s); return t and iso(t) or nil end
local function rel(r, name) return type(r[name]) == "table" and r[name] or {} end

---------------------------------------------------------------------------------------------- users, groups, privileges
-- Users who are not the org's own staff: partner and customer community users, guests.
local INTERNAL = { Standard = true, AutomatedProcess = true }

local USER_FIELDS = "Id, Username, Email, Name, IsActive, UserType, ProfileId, Profile.Name, UserRoleId, UserRole.Name, "
  .. "LastLoginDate, CreatedDate"

-- Status: deactivated (IsActive false) is disabled; frozen (UserLogin.IsFrozen: cannot sign in, keeps its
-- licence) is suspended; locked out by failed sign-ins (IsPasswordLocked) is locked.
local function user_row(logins)
  return function(u)
    local l = logins[u.Id] or {}
    local status = not u.IsActive and "disabled" or l.IsFrozen and "suspended" or l.IsPasswordLocked and "locked" or "active"
    return { ext_id = u.Id, email = str(u.Email) or u.Username, display_name = str(u.Name), status = status,
             last_login = when(u.LastLoginDate), created_at = when(u.CreatedDate), external = INTERNAL[u.UserType] and 0 or 1 }
  end
end

local function logins_of(ctx, where)
  local logins = {}
  query(ctx, { "UserLogin", "Id, UserId, IsFrozen, IsPasswordLocked", where = where }, function(rows)
    for _, l in ipairs(rows) do
      if type(l) == "table" and str(l.UserId) then logins[l.UserId] = l
      else ctx:reject("users", "a UserLogin without UserId") end       -- a user's state unknown: no complete listing
    end
  end)
  return logins
end

function c.streams.users(ctx)
  local logins = logins_of(ctx)
  query(ctx, { "User", USER_FIELDS }, function(rows) ctx:emit("users", rows, user_row(logins)) end)
end

function c.fetch.users(ctx, id)
  local logins = logins_of(ctx, "UserId = " .. lit(id))
  local found = false
  query(ctx, { "User", USER_FIELDS, where = "Id = " .. lit(id) }, function(rows)
    found = found or #rows > 0
    ctx:emit("users", rows, user_row(logins))
  end)
  if not found then ctx:retire("users", { id }) end
end

-- Public groups (Type Regular) and their members (users, or other groups).
function c.streams.groups(ctx)
  query(ctx, { "Group", "Id, Name, DeveloperName, Type, Email", where = "Type = 'Regular'" }, function(rows)
    ctx:emit("groups", rows, function(g) return { ext_id = g.Id, name = str(g.Name) or g.DeveloperName, email = str(g.Email) } end)
  end)
  query(ctx, { "GroupMember", "Id, GroupId, UserOrGroupId", where = "Group.Type = 'Regular'" }, function(rows)
    ctx:emit("group_members", rows, function(m)
      return { ext_id = m.Id, group_id = m.GroupId, member_id = m.UserOrGroupId,
               member_type = m.UserOrGroupId:sub(1, 3) == "00G" and "group" or "user" }
    end)
  end)
end

-- Admin power comes from permission sets, a profile's among them (its profile-owned permission set):
-- Modify All Data, View All Data, Manage Users.
local POWERS = { "ModifyAllData", "ViewAllData", "ManageUsers" }
function c.streams.privileges(ctx)
  local admins = {}
  local q = { "PermissionSetAssignment", "Id, AssigneeId, PermissionSetId, PermissionSet.Name, PermissionSet.Label, "
    .. "PermissionSet.IsOwnedByProfile, PermissionSet.Profile.Name, PermissionSet.PermissionsModifyAllData, "
    .. "PermissionSet.PermissionsViewAllData, PermissionSet.PermissionsManageUsers",
    where = "PermissionSet.PermissionsModifyAllData = true OR PermissionSet.PermissionsViewAllData = true "
      .. "OR PermissionSet.PermissionsManageUsers = true" }
  query(ctx, q, function(rows)
    ctx:emit("privileges", rows, function(a)
      local ps = rel(a, "PermissionSet")
      local powers = {}
      for _, p in ipairs(POWERS) do if ps["Permissions" .. p] == true then powers[#powers + 1] = p end end
      admins[a.AssigneeId] = true
      local role = ps.IsOwnedByProfile and ("profile " .. tostring(rel(ps, "Profile").Name or ps.Name))
        or ("permission set " .. tostring(str(ps.Label) or ps.Name))
      return { ext_id = a.Id, user_id = a.AssigneeId, role = role, scope = table.concat(powers, ", ") }
    end)
  end)
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- app permissions
-- OAuth tokens users granted to connected apps (OauthToken: app, user, use count, last use).  Its
-- DeleteToken, what revokes it, is read only when revoking and never stored.
function c.streams.app_grants(ctx)
  query(ctx, { "OauthToken", "Id, AppName, AppMenuItemId, UserId, User.Username, CreatedDate, LastUsedDate, UseCount" }, function(rows)
    ctx:emit("app_grants", rows, function(t)
      return { ext_id = t.Id, client_id = str(t.AppMenuItemId) or t.AppName, app_name = t.AppName, user_id = t.UserId,
               user = str(rel(t, "User").Username), created_at = when(t.CreatedDate), last_used = when(t.LastUsedDate) }
    end)
  end)
end

---------------------------------------------------------------------------------------------- activities
-- Three sources, each with its own watermark in the cursor: LoginHistory (every sign-in, successful or
-- not), SetupAuditTrail (admin changes) and EventLogFile (daily CSV logs of Logout, API, URI, Report
-- Export... events).  Login events of the log files are LoginHistory's own rows again: left out.
c.initial_days = 7
local OVERLAP = 600
local ELF_SKIP = { Login = true }
local ELF_KIND = { Logout = "signin", LoginAs = "signin" }

local function user_names(ctx)
  local names = {}
  for _, u in ipairs(ctx:known_users()) do names[u.ext_id] = u.email; names[u.ext_id:sub(1, 15)] = u.email end
  return names
end

local function login_row(names)
  return function(l)
    local g = rel(l, "LoginGeo")
    local place = {}
    for _, k in ipairs { "City", "Country" } do if str(g[k]) then place[#place + 1] = g[k] end end
    local ua = table.concat({ str(l.Browser) or "", str(l.Platform) or "" }, " "):gsub("^%s+", ""):gsub("%s+$", "")
    return { ext_id = l.Id, time = when(l.LoginTime), kind = "signin", action = "login" .. (str(l.LoginType) and (": " .. l.LoginType) or ""),
             actor = names[l.UserId], actor_id = l.UserId, ip = str(l.SourceIp), location = #place > 0 and table.concat(place, ", ") or nil,
             user_agent = ua ~= "" and ua or nil, outcome = l.Status == "Success" and "success" or "failure",
             app = str(l.Application), lat = tonumber(g.Latitude), lon = tonumber(g.Longitude) }
  end
end

local function audit_row(a)
  return { ext_id = a.Id, time = when(a.CreatedDate), kind = "admin", action = a.Action, actor = str(rel(a, "CreatedBy").Username),
           actor_id = a.CreatedById, target = str(a.Display), app = "Setup" .. (str(a.Section) and (": " .. a.Section) or "") }
end

local function log_row(names, file, n, e)
  local uid = str(e.USER_ID_DERIVED) or str(e.USER_ID)
  local what = str(e.METHOD_NAME) or str(e.URI) or str(e.REPORT_DESCRIPTION)
  return { ext_id = file.Id .. ":" .. n, time = when(e.TIMESTAMP_DERIVED), kind = ELF_KIND[file.EventType] or "user",
           action = file.EventType .. (what and (" " .. what) or ""), actor = uid and names[uid], actor_id = uid,
           ip = str(e.CLIENT_IP) or str(e.SOURCE_IP), app = "Event Monitoring",
           outcome = e.REQUEST_STATUS == "F" and "failure" or nil }
end

function c.streams.activities(ctx, cursor)
  local cur = cursor and json.decode(cursor) or {}
  if type(cur) ~= "table" then cur = {} end
  local days = tonumber(ctx.settings.initial_days) or c.initial_days
  local start = soql_time(sched.time() - days * 86400)
  local names = user_names(ctx)
  local function save(watermark) ctx:checkpoint(json.encode(cur), watermark) end

  -- sign-ins and admin changes: from OVERLAP before the last one seen, as rows are written after the
  -- moment they record (the ids make what is read again harmless)
  local function from(mark) return mark and soql_time(parse_iso(mark) - OVERLAP) or start end
  query(ctx, { "LoginHistory", "Id, UserId, LoginTime, LoginType, SourceIp, Status, Application, Browser, Platform, LoginUrl, "
    .. "CountryIso, LoginGeo.City, LoginGeo.Country, LoginGeo.Latitude, LoginGeo.Longitude",
    where = "LoginTime >= " .. from(cur.login), order = "LoginTime" }, function(rows)
    local last = rows[#rows]
    local t = type(last) == "table" and str(last.LoginTime) and parse_iso(last.LoginTime)
    if t then cur.login = soql_time(t) end
    save(t and iso(t))
    ctx:emit("activities", rows, login_row(names))
  end)
  query(ctx, { "SetupAuditTrail", "Id, Action, Section, Display, CreatedDate, CreatedById, CreatedBy.Username, DelegateUser",
    where = "CreatedDate >= " .. from(cur.audit), order = "CreatedDate" }, function(rows)
    local last = rows[#rows]
    if type(last) == "table" and when(last.CreatedDate) then cur.audit = soql_time(parse_iso(last.CreatedDate)) end
    save()
    ctx:emit("activities", rows, audit_row)
  end)
  -- log files appear after their day (or hour) is over: read by CreatedDate; the files already read at
  -- the watermark's second are remembered so they are not downloaded again
  local files = {}
  query(ctx, { "EventLogFile", "Id, EventType, LogDate, Interval, CreatedDate, LogFileLength",
    where = "Interval = 'Daily' AND CreatedDate >= " .. (cur.elf or start), order = "CreatedDate" }, function(rows)
    for _, f in ipairs(rows) do files[#files + 1] = f end
  end)
  local done = {}
  for _, id in ipairs(type(cur.elf_ids) == "table" and cur.elf_ids or {}) do done[id] = true end
  for _, f in ipairs(files) do
    if type(f) ~= "table" or not str(f.Id) or not when(f.CreatedDate) then fail("malformed items: an EventLogFile without Id or CreatedDate", "malformed") end
    if not done[f.Id] then
      local records = {}
      if not ELF_SKIP[f.EventType] then
        local resp = select(2, ctx:request("GET", API .. "/sobjects/EventLogFile/" .. urlencode(f.Id) .. "/LogFile",
          { raw = true, headers = { Accept = "text/csv" } }))
        spend(ctx, resp)
        local err
        records, err = csv.records(resp.body)
        if not records then fail(("EventLogFile %s (%s): %s"):format(f.Id, tostring(f.EventType), err), "malformed") end
      end
      local t = soql_time(parse_iso(f.CreatedDate))
      if t ~= cur.elf then cur.elf, cur.elf_ids = t, {} end
      cur.elf_ids[#cur.elf_ids + 1] = f.Id
      save()
      local rows = {}
      for n, e in ipairs(records) do rows[n] = log_row(names, f, n, e) end
      ctx:emit("activities", rows)
    end
  end
  save()
end

---------------------------------------------------------------------------------------------- files
-- Salesforce Files: ContentDocument (its latest version holds the content), shared by ContentDocumentLink
-- (users, groups, the whole org, libraries, records) and by public links (ContentDistribution).  A full
-- listing every full_scan_interval (12 hours by default); in between, what changed since the last
-- SystemModstamp (queryAll: a deleted file is seen going).  New and removed links of a file that did not
-- change itself wait for the next full listing.
local DOC_FIELDS = "Id, Title, FileExtension, FileType, ContentSize, OwnerId, Owner.Username, LatestPublishedVersionId, "
  .. "LatestPublishedVersion.Checksum, ParentId, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp"
local CHUNK = 200               -- ids in one IN (...): the query stays well inside the URL's length
local RANK = { private = 0, internal = 1, external = 2, public = 3 }
local MIME = { txt = "text/plain", csv = "text/csv", pdf = "application/pdf", png = "image/png", jpg = "image/jpeg",
  docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  pptx = "application/vnd.openxmlformats-officedocument.presentationml.presentation" }
local ROLE = { V = "viewer", C = "collaborator", I = "inferred" }
local ENTITY = { ["005"] = "user", ["00G"] = "group", ["00D"] = "organization", ["058"] = "library" }

-- The sharing of a batch of documents -> perms rows, and the access level of each document.
local function sharing(ctx, docs, people)
  local ids, owner, level, perms = {}, {}, {}, {}
  for _, d in ipairs(docs) do ids[#ids + 1] = d.Id; owner[d.Id] = d.OwnerId; level[d.Id] = "private" end
  local function raise(id, to) if RANK[to] > RANK[level[id]] then level[id] = to end end
  local now = sched.time()
  for k = 1, #ids, CHUNK do
    local chunk = list_of(table.move(ids, k, math.min(#ids, k + CHUNK - 1), 1, {}))
    query(ctx, { "ContentDocumentLink", "Id, ContentDocumentId, LinkedEntityId, LinkedEntity.Name, LinkedEntity.Type, ShareType, "
      .. "Visibility", where = "ContentDocumentId IN " .. chunk }, function(rows)
      for _, l in ipairs(rows) do
        local doc, who = l.ContentDocumentId, l.LinkedEntityId
        local kind = ENTITY[tostring(who):sub(1, 3)] or "record"
        local external = kind == "user" and people[who] == 1
        local is_owner = who == owner[doc]
        if not is_owner then raise(doc, external and "external" or "internal") end
        perms[#perms + 1] = { ext_id = l.Id, file_id = doc, principal = str(rel(l, "LinkedEntity").Name) or who,
          principal_type = kind, role = is_owner and "owner" or (ROLE[l.ShareType] or l.ShareType), external = external and 1 or 0, raw = l }
      end
    end)
    query(ctx, { "ContentDistribution", "Id, ContentDocumentId, ContentVersionId, DistributionPublicUrl, ExpiryDate, "
      .. "PreferencesPasswordRequired, ViewCount", where = "ContentDocumentId IN " .. chunk }, function(rows)
      for _, d in ipairs(rows) do
        local exp = d.ExpiryDate ~= json.null and parse_iso(tostring(d.ExpiryDate)) or nil
        if not exp or exp > now then raise(d.ContentDocumentId, d.PreferencesPasswordRequired == true and "external" or "public") end
        perms[#perms + 1] = { ext_id = d.Id, file_id = d.ContentDocumentId, principal = "anyone with the link", principal_type = "link",
          role = "viewer", external = 1, link = str(d.DistributionPublicUrl), expires_at = exp and iso(exp) or nil, raw = d }
      end
    end)
  end
  return perms, level
end

local function file_row(d, level)
  local ext = str(d.FileExtension) or ""
  local name = ext ~= "" and (d.Title .. "." .. ext) or d.Title
  return { ext_id = d.Id, name = name, path = "/" .. name, is_folder = 0, owner = str(rel(d, "Owner").Username),
           size = math.tointeger(d.ContentSize), mime = MIME[ext:lower()], md5 = str(rel(d, "LatestPublishedVersion").Checksum),
           access_level = level, trashed = 0, created_at = when(d.CreatedDate), modified_at = when(d.LastModifiedDate) }
end

-- One batch of documents: the live ones with their sharing; the deleted ones (queryAll) retired.
local function emit_docs(ctx, docs, people)
  local live, gone = {}, {}
  for _, d in ipairs(docs) do
    if type(d) ~= "table" or not str(d.Id) or not str(d.Title) then ctx:reject("files", "a ContentDocument without Id or Title")
    elseif d.IsDeleted == true then gone[#gone + 1] = d.Id
    else live[#live + 1] = d end
  end
  local perms, level = sharing(ctx, live, people)
  ctx:emit("files", live, function(d) return file_row(d, level[d.Id]) end)
  ctx:emit("file_permissions", perms)
  if #gone > 0 then
    ctx:retire("files", gone)
    for _, id in ipairs(gone) do ctx:retire("file_permissions", ctx:stored_ids("file_permissions", "file_id", id)) end
  end
end

local function people_of(ctx)
  local p = {}
  for _, u in ipairs(ctx:known_users()) do p[u.ext_id] = u.external end
  return p
end

function c.streams.files(ctx, cursor)
  local cur = cursor and json.decode(cursor) or nil
  local every = tonumber(ctx.settings.full_scan_interval) or 43200
  local now = sched.time()
  local people = people_of(ctx)
  local mark
  local function seen(rows)
    for _, d in ipairs(rows) do
      local t = type(d) == "table" and str(d.SystemModstamp) and parse_iso(d.SystemModstamp)
      if t and (not mark or t > mark) then mark = t end
    end
  end
  if type(cur) ~= "table" or not tonumber(cur.full_at) or not str(cur.since) or now - cur.full_at >= every then
    -- a complete listing: what it does not see is gone
    ctx:complete()
    cur = { full_at = now }
    ctx:checkpoint(json.encode(cur))
    query(ctx, { "ContentDocument", DOC_FIELDS, order = "SystemModstamp" }, function(rows)
      seen(rows)
      emit_docs(ctx, rows, people)
    end)
  else
    query(ctx, { "ContentDocument", DOC_FIELDS, where = "SystemModstamp >= " .. cur.since, order = "SystemModstamp" },
      function(rows)
        seen(rows)
        if mark then cur.since = soql_time(mark) end
        ctx:checkpoint(json.encode(cur))
        emit_docs(ctx, rows, people)
      end, true)
  end
  -- from the newest change seen (again: changes within its second repeat harmlessly); nothing seen:
  -- where it was, or for an empty org a margin for the clocks' difference
  cur.since = mark and soql_time(mark) or cur.since or soql_time(now - 300)
  ctx:checkpoint(json.encode(cur), mark and iso(mark))
end

-- One file again (after an action): its row and sharing, or gone.
function c.fetch.files(ctx, id)
  local found = false
  query(ctx, { "ContentDocument", DOC_FIELDS, where = "Id = " .. lit(id) }, function(rows)
    found = found or #rows > 0
    emit_docs(ctx, rows, people_of(ctx))
  end, true)
  if not found then
    ctx:retire("files", { id })
    ctx:retire("file_permissions", ctx:stored_ids("file_permissions", "file_id", id))
  end
end

local function raw_of(row)
  local raw = row.raw
  if type(raw) == "string" then raw = json.decode(raw) end
  return type(raw) == "table" and raw or {}
end

-- Content for the data scan: the latest version's VersionData blob.
function c.content(ctx, file, max_size)
  local v = str(raw_of(file).LatestPublishedVersionId)
  if not v then return nil, "unsupported: the file has no published version" end
  local resp, err = ctx:try("GET", API .. "/sobjects/ContentVersion/" .. urlencode(v) .. "/VersionData",
    { raw = true, max_size = max_size, headers = { Accept = "*/*" } })
  if not resp then return nil, err end
  return resp.body
end

c.stream_order = { users = 1, groups = 2, privileges = 3, app_grants = 4, files = 5, activities = 6 }
-- files is polled with activities (`cachost run`): its increments between its own full listings
c.polled = { "files" }

---------------------------------------------------------------------------------------------- account governance
local function sobject(name, id) return API .. "/sobjects/" .. name .. "/" .. urlencode(id) end

-- The user's UserLogin row (freeze state), by its user.
local function user_login(ctx, user)
  local row
  query(ctx, { "UserLogin", "Id, IsFrozen, IsPasswordLocked", where = "UserId = " .. lit(user.ext_id) }, function(rows) row = row or rows[1] end)
  if type(row) ~= "table" or not str(row.Id) then fail(("http: user %s has no UserLogin row"):format(user.ext_id), "http") end
  return row
end

-- The generic suspension is a freeze: the user cannot sign in, keeps their licence and data.
function c.actions.suspend_user(ctx, user)
  ctx:patch(sobject("UserLogin", user_login(ctx, user).Id), { IsFrozen = true })
  return { undo = { action = "unsuspend_user", params = {} } }
end
function c.actions.unsuspend_user(ctx, user)
  ctx:patch(sobject("UserLogin", user_login(ctx, user).Id), { IsFrozen = false })
  return { undo = { action = "suspend_user", params = {} } }
end
function c.actions.unlock_user(ctx, user)
  ctx:patch(sobject("UserLogin", user_login(ctx, user).Id), { IsPasswordLocked = false })
end
-- Signed out everywhere: each of the user's sessions (AuthSession) is deleted.
function c.actions.revoke_sessions(ctx, user)
  local ids = {}
  query(ctx, { "AuthSession", "Id", where = "UsersId = " .. lit(user.ext_id) }, function(rows)
    for _, r in ipairs(rows) do ids[#ids + 1] = r.Id end
  end)
  for _, id in ipairs(ids) do ctx:delete(sobject("AuthSession", id)) end
end
-- Deactivation frees the licence; the user can be reactivated (IsActive true) by an admin.
function c.actions.deactivate_user(ctx, user) ctx:patch(sobject("User", user.ext_id), { IsActive = false }) end

-- Salesforce generates a temporary password and e-mails the user; the answer also carries it: dropped
-- here, never stored or shown.
function c.actions.reset_password(ctx, user)
  local resp, err, token = ctx:try("DELETE", sobject("User", user.ext_id) .. "/password")
  if not resp then fail(err, token) end
end

-- The admin-granting permission sets assigned to the user themselves (params.role: only the one with
-- that Name); a profile's power stays with the profile (change the user's profile).
function c.actions.remove_admin_role(ctx, user, params)
  local want = params and str(params.role)
  local removed = 0
  query(ctx, { "PermissionSetAssignment", "Id, PermissionSet.Name", where = "AssigneeId = " .. lit(user.ext_id)
    .. " AND PermissionSet.IsOwnedByProfile = false AND (PermissionSet.PermissionsModifyAllData = true OR "
    .. "PermissionSet.PermissionsViewAllData = true OR PermissionSet.PermissionsManageUsers = true)" }, function(rows)
    for _, a in ipairs(rows) do
      if not want or rel(a, "PermissionSet").Name == want then
        ctx:delete(sobject("PermissionSetAssignment", a.Id))
        removed = removed + 1
      end
    end
  end)
  if removed == 0 then
    fail(("%s holds no %s admin permission set of their own (a profile's power goes with a profile change)"):format(user.ext_id, want or "admin"), "http")
  end
end
c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user", quarantine_file = "unquarantine_file" }

---------------------------------------------------------------------------------------------- app-permission governance
-- OauthToken cannot be deleted as an sObject: its DeleteToken is posted to the revoke endpoint.
function c.actions.revoke_grant(ctx, grant)
  local token
  query(ctx, { "OauthToken", "Id, DeleteToken", where = "Id = " .. lit(grant.ext_id) }, function(rows)
    token = token or (type(rows[1]) == "table" and str(rows[1].DeleteToken))
  end)
  if not token then fail(("not_found: the OAuth token %s is gone"):format(grant.ext_id), "not_found") end
  local resp, err, tok = ctx:try("POST", "/services/oauth2/revoke", { form = { token = token } })
  if not resp then fail(err, tok) end
end
c.actions.revoke_token = c.actions.revoke_grant

---------------------------------------------------------------------------------------------- data governance
local function links_of(ctx, id)
  local out = {}
  query(ctx, { "ContentDocumentLink", "Id, LinkedEntityId, ShareType, Visibility", where = "ContentDocumentId = " .. lit(id) },
    function(rows) for _, l in ipairs(rows) do out[#out + 1] = l end end)
  return out
end
local function distributions_of(ctx, id)
  local out = {}
  query(ctx, { "ContentDistribution", "Id", where = "ContentDocumentId = " .. lit(id) }, function(rows)
    for _, d in ipairs(rows) do out[#out + 1] = d end
  end)
  return out
end
local function document(ctx, id)
  local doc
  query(ctx, { "ContentDocument", "Id, Title, FileExtension, OwnerId, LatestPublishedVersionId", where = "Id = " .. lit(id) },
    function(rows) doc = doc or rows[1] end)
  if type(doc) ~= "table" then fail(("not_found: file %s is gone"):format(id), "not_found") end
  return doc
end

-- Public links (ContentDistribution) go.
function c.actions.remove_shared_link(ctx, file, params)
  local only = params and str(params.link_id)
  for _, d in ipairs(distributions_of(ctx, file.ext_id)) do
    if not only or d.Id == only then ctx:delete(sobject("ContentDistribution", d.Id)) end
  end
end

-- A share (ContentDocumentLink): params.link_id, or every share with an external user.  The owner's
-- link cannot be removed.
function c.actions.remove_collaborator(ctx, file, params)
  local only = params and str(params.link_id)
  local people = people_of(ctx)
  local owner = document(ctx, file.ext_id).OwnerId
  for _, l in ipairs(links_of(ctx, file.ext_id)) do
    local hit = only and l.Id == only or (not only and people[l.LinkedEntityId] == 1)
    if hit and l.LinkedEntityId ~= owner then ctx:delete(sobject("ContentDocumentLink", l.Id)) end
  end
end

function c.actions.make_private(ctx, file)
  c.actions.remove_shared_link(ctx, file)
  local owner = document(ctx, file.ext_id).OwnerId
  for _, l in ipairs(links_of(ctx, file.ext_id)) do
    if l.LinkedEntityId ~= owner then ctx:delete(sobject("ContentDocumentLink", l.Id)) end
  end
end

-- DELETE moves the file to the Recycle Bin (restorable there for 15 days).
function c.actions.trash_file(ctx, file) ctx:delete(sobject("ContentDocument", file.ext_id)) end

local QUARANTINE = "cachost quarantine"
local function quarantine_library(ctx)
  local id = str(ctx.settings.quarantine_library_id)
  if id then return id end
  query(ctx, { "ContentWorkspace", "Id", where = "Name = '" .. QUARANTINE .. "'" }, function(rows)
    id = id or (type(rows[1]) == "table" and str(rows[1].Id))
  end)
  if not id then
    fail(("no quarantine library: create a library named '%s' whose only members are administrators, or set "
      .. "quarantine_library_id"):format(QUARANTINE), "http")
  end
  return id
end

-- Quarantine: the public links go, the file joins the restricted quarantine library, every other share
-- but its owner's goes, and a tombstone becomes its latest version (the content stays in the version
-- history, which only the owner and the library's members reach).  The undo record keeps the shares.
function c.actions.quarantine_file(ctx, file)
  local id = file.ext_id
  local doc = document(ctx, id)
  local lib = quarantine_library(ctx)
  for _, d in ipairs(distributions_of(ctx, id)) do ctx:delete(sobject("ContentDistribution", d.Id)) end
  local links, in_library = links_of(ctx, id), false
  for _, l in ipairs(links) do in_library = in_library or l.LinkedEntityId:sub(1, 15) == lib:sub(1, 15) end
  if not in_library then
    ctx:post(API .. "/sobjects/ContentDocumentLink", { ContentDocumentId = id, LinkedEntityId = lib, ShareType = "I", Visibility = "AllUsers" })
  end
  local removed = {}
  for _, l in ipairs(links) do
    if l.LinkedEntityId ~= doc.OwnerId and l.LinkedEntityId:sub(1, 15) ~= lib:sub(1, 15) then
      ctx:delete(sobject("ContentDocumentLink", l.Id))
      removed[#removed + 1] = { LinkedEntityId = l.LinkedEntityId, ShareType = l.ShareType, Visibility = l.Visibility }
    end
  end
  local name = doc.Title .. (str(doc.FileExtension) and ("." .. doc.FileExtension) or "")
  local note = ("This file was quarantined by your administrator.\n\nFile: %s\nIts content and sharing are held in the "
    .. "restricted library '%s'.\n"):format(name, QUARANTINE)
  ctx:post(API .. "/sobjects/ContentVersion", { ContentDocumentId = id, PathOnClient = doc.Title .. ".quarantined.txt",
    VersionData = crypto.b64(note), ReasonForChange = "Quarantined by cachost" })
  return { undo = { action = "unquarantine_file", params = { links = removed, version_id = doc.LatestPublishedVersionId,
    path = name, library_id = not in_library and lib or nil } } }
end

-- Undo: the quarantined version's content becomes the latest again, the shares come back and the file
-- leaves the library.  Public links are not recreated (a new one would have another URL).
function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  local id = file.ext_id
  local v = str(params.version_id)
  if not v then fail("unquarantine_file needs params.version_id (the quarantine's undo record)", "http") end
  local doc = document(ctx, id)
  local resp = select(2, ctx:request("GET", sobject("ContentVersion", v) .. "/VersionData", { raw = true, headers = { Accept = "*/*" } }))
  ctx:post(API .. "/sobjects/ContentVersion", { ContentDocumentId = id, PathOnClient = str(params.path) or doc.Title,
    VersionData = crypto.b64(resp.body), ReasonForChange = "Released from quarantine by cachost" })
  local have = {}
  for _, l in ipairs(links_of(ctx, id)) do have[l.LinkedEntityId:sub(1, 15)] = l end
  for _, l in ipairs(type(params.links) == "table" and params.links or {}) do
    if not have[tostring(l.LinkedEntityId):sub(1, 15)] then
      ctx:post(API .. "/sobjects/ContentDocumentLink", { ContentDocumentId = id, LinkedEntityId = l.LinkedEntityId,
        ShareType = l.ShareType, Visibility = l.Visibility })
    end
  end
  local lib = str(params.library_id)
  local l = lib and have[lib:sub(1, 15)]
  if l then ctx:delete(sobject("ContentDocumentLink", l.Id)) end
end

-- No signed webhook registration exists (outbound messages are SOAP from workflows, Platform Events need
-- the Pub/Sub API): real time is not offered; the scans poll.
return c
