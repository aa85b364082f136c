-- Google Workspace (Admin SDK Directory and Reports, Drive v3).  Reference: shared/api/google-workspace.md
-- and Google's discovery documents (admin:directory_v1, admin:reports_v1, drive:v3).
local google = provider("google")
local c = connector "google-workspace"
c.title = "Google Workspace"
c.identity = "provider"     -- its deactivated and deleted accounts are people who left (policies/offboarding.lua)
c.settings = {
  { "admin_email", required = true, example = "admin@acme.com",
    help = "a super admin the service account acts as for Directory and Reports (domain-wide delegation)" },
  { google.KEY_SECRET, secret = true, help = "the service account's JSON key file (Cloud console > IAM > Service accounts > Keys)" },
  { "customer_id", example = "C01abc23d", help = "the Workspace customer id (default my_customer: the admin's own)" },
  { "read_only", type = "boolean", help = "ask only for read scopes (delegate only those; no governance actions)" },
  { "client_id", example = "1234-abc.apps.googleusercontent.com", help = "with auth=oauth: the Desktop app OAuth client of your Cloud project" },
  { "client_secret", secret = true, help = "with auth=oauth: that OAuth client's secret" },
  { "oauth_base_url", example = "https://oauth2.googleapis.com", help = "host of /token and of the consent page /o/oauth2/v2/auth (default Google's; a sandbox serves both)" },
}
c.base_url = "https://admin.googleapis.com"
local DRIVE = "https://www.googleapis.com"
c.hosts = function(s) return { provider_host(s, DRIVE) } end

-- §2: a service account with domain-wide delegation; the admin grants its client id these scopes in the
-- Admin console (Security > API controls > Domain-wide delegation).
local S = google.SCOPE
-- Google issues a token only when every requested scope is delegated: an instance with read_only asks
-- for the read scopes alone (no governance actions), so the admin may delegate only those.  tokens.list
-- has no read-only scope: admin.directory.user.security is both.
local READ = { "admin.directory.user.readonly", "admin.directory.group.readonly", "admin.directory.group.member.readonly",
  "admin.directory.rolemanagement.readonly", "admin.reports.audit.readonly", "drive.readonly", "admin.directory.user.security" }
local WRITE = { "admin.directory.user", "admin.directory.user.security", "admin.directory.group.readonly",
  "admin.directory.group.member.readonly", "admin.directory.rolemanagement", "admin.reports.audit.readonly", "drive" }
local function consented(s) return s.auth == "oauth" end
function c.scopes(s)
  local list = {}
  for _, x in ipairs((s.read_only == true or s.read_only == "true") and READ or WRITE) do
    if not (consented(s) and x:match("^drive")) then list[#list + 1] = S .. x end     -- an admin's consent reads no Drive
  end
  return list
end
-- service_account (default): domain-wide delegation, acting as admin_email and, for Drive, as each user.
-- oauth: an admin's own consent (cachost instance connect: browser, loopback redirect, PKCE; the refresh
-- token in the vault); the tokens act as that admin only, so Drive (each user's files) is not read.
c.auth = {
  default = "service_account",
  service_account = google.service_account { scopes = c.scopes, subject = function(s) return s.admin_email end },
  oauth = google.consent { scopes = c.scopes },
}
-- What each capability needs granted to the service account's client id (domain-wide delegation), and of
-- admin_email (a super admin: Directory and Reports answer 403 to anyone else).
local DWD = "domain-wide delegation of "
c.needs = {
  users = DWD .. "admin.directory.user.readonly, admin.directory.rolemanagement.readonly; admin_email a super admin",
  groups = DWD .. "admin.directory.group.readonly, admin.directory.group.member.readonly",
  privileges = DWD .. "admin.directory.rolemanagement.readonly",
  app_grants = DWD .. "admin.directory.user.security",
  activities = DWD .. "admin.reports.audit.readonly",
  files = DWD .. "drive.readonly (drive for the data governance actions), impersonating each user and a member of each shared drive;"
    .. " admin_email lists the shared drives (useDomainAdminAccess); auth=service_account (an admin's consent does not give it)",
  suspend_user = DWD .. "admin.directory.user", unsuspend_user = DWD .. "admin.directory.user",
  expire_password = DWD .. "admin.directory.user",
  revoke_sessions = DWD .. "admin.directory.user.security (signOut)",
  revoke_grant = DWD .. "admin.directory.user.security (tokens.delete)",
  revoke_token = DWD .. "admin.directory.user.security (tokens.delete)",
  remove_admin_role = DWD .. "admin.directory.rolemanagement",
  remove_shared_link = DWD .. "drive, impersonating the file's owner",
  remove_collaborator = DWD .. "drive, impersonating the file's owner",
  make_private = DWD .. "drive, impersonating the file's owner",
  trash_file = DWD .. "drive, impersonating the file's owner",
  quarantine_file = DWD .. "drive, impersonating the owner and admin_email (ownership is transferred to it)",
  unquarantine_file = DWD .. "drive, impersonating admin_email and the owner",
  overwrite_file = DWD .. "drive, impersonating the file's owner",
}

c.capabilities = {
  users = true, groups = true, privileges = true, files = true, app_grants = true,
  activities = { "signin", "admin", "user" },
}
c.error_message = google.error_message
c.is_throttled = google.is_throttled

local function customer(ctx) return str(ctx.settings.customer_id) or "my_customer" end
local DIR = "/admin/directory/v1"
local function drive_url(ctx, path) return provider_host(ctx.settings, DRIVE) .. "/drive/v3" .. path end

local each_page = google.each_page      -- §7: token paging (providers/google.lua)

-- Drive is read and changed as each file's owner (domain-wide delegation); an admin's consent acts as
-- that admin alone.
local function delegated(ctx)
  if consented(ctx.settings) then
    fail("needs auth=service_account: Drive is read as each user through domain-wide delegation, which an admin's consent does not give", "unavailable")
  end
end

---------------------------------------------------------------------------------------------- users
-- Status model (§3): suspended (with suspensionReason), archived, deleted (showDeleted=true, within the
-- 20-day restore window); else active.
local function status_of(u)
  if u.deletionTime then return "deleted" end
  if u.archived == true then return "archived" end
  if u.suspended == true then return "suspended" end
  return "active"
end
local function user_row(u)
  if not str(u.primaryEmail) then error("user without primaryEmail") end
  return {
    ext_id = u.id, email = u.primaryEmail, display_name = type(u.name) == "table" and str(u.name.fullName) or nil,
    status = status_of(u), is_admin = (u.isAdmin == true or u.isDelegatedAdmin == true) and 1 or 0,
    last_login = str(u.lastLoginTime) ~= "1970-01-01T00:00:00.000Z" and str(u.lastLoginTime) or nil,
    created_at = str(u.creationTime), external = 0,
  }
end

-- Role assignments (§3) become privileges: one row per assignment to a user; an assignment to a group is
-- held by each of its members (ext_id assignment:member).  Role names from the customer's roles.
local function privileges(ctx, admins)
  local names = {}
  each_page(ctx, DIR .. "/customer/" .. urlencode(customer(ctx)) .. "/roles", { maxResults = 100 }, "items", function(list)
    for _, r in ipairs(list) do names[tostring(r.roleId)] = str(r.roleDescription) or r.roleName end
  end)
  each_page(ctx, DIR .. "/customer/" .. urlencode(customer(ctx)) .. "/roleassignments", { maxResults = 200 }, "items", function(list)
    local rows = {}
    for _, a in ipairs(list) do
      local role = names[tostring(a.roleId)] or tostring(a.roleId)
      local scope = a.scopeType == "ORG_UNIT" and ("org_unit:" .. tostring(a.orgUnitId)) or "customer"
      if a.assigneeType == "GROUP" then
        each_page(ctx, DIR .. "/groups/" .. urlencode(a.assignedTo) .. "/members", { maxResults = 200 }, "members", function(ms)
          for _, m in ipairs(ms) do
            if m.type == "USER" then
              rows[#rows + 1] = { ext_id = a.roleAssignmentId .. ":" .. m.id, user_id = m.id, role = role, scope = scope .. " (via group " .. tostring(a.assignedTo) .. ")", raw = a }
            end
          end
        end)
      else
        rows[#rows + 1] = { ext_id = a.roleAssignmentId, user_id = a.assignedTo, role = role, scope = scope, raw = a }
      end
    end
    for _, r in ipairs(rows) do admins[r.user_id] = true end
    ctx:emit("privileges", rows)
  end)
end

function c.streams.users(ctx)
  local admins = {}
  for _, deleted in ipairs { "false", "true" } do
    each_page(ctx, DIR .. "/users", { customer = customer(ctx), maxResults = 500, showDeleted = deleted, projection = "basic" }, "users",
      function(list)
        ctx:emit("users", list, user_row)
        for _, u in ipairs(list) do if u.isAdmin == true or u.isDelegatedAdmin == true then admins[u.id] = true end end
      end)
  end
  privileges(ctx, admins)
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- groups
function c.streams.groups(ctx)
  local ids = {}
  each_page(ctx, DIR .. "/groups", { customer = customer(ctx), maxResults = 200 }, "groups", function(list)
    ctx:emit("groups", list, function(g)
      ids[#ids + 1] = g.id
      return { ext_id = g.id, name = g.name, email = g.email, description = str(g.description) }
    end)
  end)
  -- members: users of the domain, outside Google accounts (not among the customer's users), groups
  local inside = {}
  for _, u in ipairs(ctx:known_users()) do inside[u.ext_id] = true end
  for _, gid in ipairs(ids) do
    each_page(ctx, DIR .. "/groups/" .. urlencode(gid) .. "/members", { maxResults = 200 }, "members", function(list)
      ctx:emit("group_members", list, function(m)
        local kind = m.type == "GROUP" and "group" or m.type == "CUSTOMER" and "customer"
          or ((m.type == "EXTERNAL" or not inside[m.id]) and "external" or "user")
        return { ext_id = gid .. ":" .. m.id, group_id = gid, member_id = m.id, member_type = kind, role = m.role }
      end)
    end)
  end
end

---------------------------------------------------------------------------------------------- app grants
-- Each user's third-party OAuth tokens (§3 tokens.list: no paging).
function c.streams.app_grants(ctx)
  for _, u in ipairs(ctx:known_users()) do
    local st = ctx:stored("users", u.ext_id)
    if not st or st.status ~= "deleted" then
      local data = ctx:try_get(DIR .. "/users/" .. urlencode(u.ext_id) .. "/tokens")
      local list = data and ctx:listing({ items = data.items or {} }, "items", "tokens") or {}
      ctx:emit("app_grants", list, function(t)
        local scopes = type(t.scopes) == "table" and table.concat(t.scopes, " ") or nil
        return { ext_id = u.ext_id .. ":" .. t.clientId, client_id = t.clientId, app_name = str(t.displayText) or t.clientId,
                 user_id = u.ext_id, user = u.email, scopes = scopes }
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- activities
-- §4: one listing per application, newest first.  Reports lag behind the events (login up to a few
-- hours, the others a couple of minutes: support.google.com/a/answer/7061566), so each run reads from
-- its last start minus OVERLAP; an activity's id (time, uniqueQualifier) makes a re-read idempotent.
local APPS = { "login", "admin", "drive", "token", "saml", "groups", "user_accounts" }
local KIND = { login = "signin", saml = "signin", admin = "admin", groups = "admin", user_accounts = "user", drive = "user", token = "user" }
c.OVERLAP = 6 * 3600
c.initial_days = 7

local function param(e, name)
  for _, p in ipairs(type(e.parameters) == "table" and e.parameters or {}) do
    if p.name == name then return p.value or (p.intValue and tostring(p.intValue)) or (type(p.multiValue) == "table" and table.concat(p.multiValue, " ")) end
  end
end

local function event_rows(app, a)
  local rows = {}
  local id, actor = a.id, type(a.actor) == "table" and a.actor or {}
  if type(id) ~= "table" or not str(id.time) then error("activity without id.time") end
  for i, e in ipairs(type(a.events) == "table" and a.events or {}) do
    local outcome
    if app == "login" then outcome = e.name == "login_failure" and "failure" or (e.name == "login_success" and "success" or nil) end
    rows[#rows + 1] = {
      ext_id = ("%s:%s:%s:%d"):format(app, id.time, tostring(id.uniqueQualifier), i), time = id.time, kind = KIND[app],
      action = app .. "." .. tostring(e.name), actor = str(actor.email), actor_id = str(actor.profileId),
      target = param(e, "affected_email_address") or param(e, "USER_EMAIL") or param(e, "doc_title") or param(e, "app_name"),
      target_id = param(e, "doc_id") or param(e, "client_id"), ip = str(a.ipAddress), outcome = outcome, app = "Google Workspace",
      raw = a,
    }
  end
  return rows
end

local function rfc3339(t) return (iso(t):gsub("%.%d+Z$", "Z")) end

function c.streams.activities(ctx)
  local now = sched.time()
  local since
  local w = ctx.watermark and parse_iso(ctx.watermark)
  if w then since = w - c.OVERLAP
  else since = now - (tonumber(ctx.settings.initial_days) or c.initial_days) * 86400 end
  since = math.max(since, now - 180 * 86400)             -- the Reports API keeps 180 days
  for _, app in ipairs(APPS) do
    each_page(ctx, "/admin/reports/v1/activity/users/all/applications/" .. app,
      { startTime = rfc3339(since), maxResults = 1000 }, "items", function(list)
        local rows = {}
        for _, a in ipairs(list) do
          local ok, r = pcall(event_rows, app, a)
          if ok then for _, x in ipairs(r) do rows[#rows + 1] = x end else ctx:reject("activities", r) end
        end
        ctx:emit("activities", rows)
      end)
  end
  -- complete up to this run's start: the next run re-reads OVERLAP before it for late arrivals
  ctx:checkpoint(nil, iso(now))
end

---------------------------------------------------------------------------------------------- files
-- §5: every user's My Drive, read as that user (domain-wide delegation, sub = the user): the files they
-- own ('me' in owners: each file once), with their permissions (inherited ones included) in the listing;
-- and every shared drive, read as one of its members (below).
local PERM_FIELDS = "id,type,role,emailAddress,domain,allowFileDiscovery,expirationTime,permissionDetails"
local FILE_FIELDS = "nextPageToken,files(id,name,mimeType,parents,driveId,owners(emailAddress,permissionId),size,md5Checksum," ..
  "createdTime,modifiedTime,trashed,webViewLink,permissions(" .. PERM_FIELDS .. "))"
local FOLDER = "application/vnd.google-apps.folder"
local RANK = { private = 0, internal = 1, external = 2, public = 3 }

local function domain_of(email) return type(email) == "string" and email:match("@(.+)$") and email:match("@(.+)$"):lower() or nil end

-- A permission as a file_permissions row and the access level it gives.
local function perm_row(f, p, home)
  if p.role == "owner" then return nil, "private" end
  local principal, external, level, link
  if p.type == "anyone" then
    principal, external, level = "anyone", 1, "public"
    link = p.allowFileDiscovery == false and str(f.webViewLink) or nil
  elseif p.type == "domain" then
    principal = p.domain
    external = (str(p.domain) and p.domain:lower() ~= home) and 1 or 0
    level = external == 1 and "external" or "internal"
  else
    principal = p.emailAddress
    external = (domain_of(p.emailAddress) and domain_of(p.emailAddress) ~= home) and 1 or 0
    level = external == 1 and "external" or "internal"
  end
  return { ext_id = f.id .. ":" .. p.id, file_id = f.id, principal = principal, principal_type = p.type, role = p.role,
           external = external, link = link, expires_at = str(p.expirationTime), raw = p }, level
end

local function file_rows(f, home, paths)
  local perms, level = {}, "private"
  for _, p in ipairs(type(f.permissions) == "table" and f.permissions or {}) do
    local row, l = perm_row(f, p, home)
    if row then perms[#perms + 1] = row end
    if RANK[l] > RANK[level] then level = l end
  end
  local owner = type(f.owners) == "table" and f.owners[1] or {}
  local parent = type(f.parents) == "table" and f.parents[1] or nil
  local row = {
    ext_id = f.id, name = f.name, path = (paths[parent] or "") .. "/" .. tostring(f.name), parent_id = parent,
    is_folder = f.mimeType == FOLDER and 1 or 0, owner = str(owner.emailAddress), size = math.tointeger(tonumber(f.size or "")),
    mime = f.mimeType, md5 = str(f.md5Checksum), access_level = level, trashed = f.trashed == true and 1 or 0,
    created_at = str(f.createdTime), modified_at = str(f.modifiedTime), raw = f,
  }
  return row, perms
end

-- The paths of a listing's folders, from its roots' (paths: {id = path}).  Folders come before what
-- they hold in a listing only by chance: a whole listing is read first, its paths resolved after.
local function resolve_paths(items, paths)
  local byid = {}
  for _, f in ipairs(items) do byid[f.id] = f end
  local function path(id, depth)
    if paths[id] then return paths[id] end
    local f = byid[id]
    if not f or depth > 50 then return "" end
    local parent = type(f.parents) == "table" and f.parents[1] or nil
    paths[id] = path(parent, depth + 1) .. "/" .. tostring(f.name)
    return paths[id]
  end
  for _, f in ipairs(items) do if f.mimeType == FOLDER then path(f.id, 0) end end
  return paths
end

-- Each user's files, as that user.
local function user_files(ctx, email)
  local items = {}
  each_page(ctx, drive_url(ctx, "/files"), { q = "'me' in owners", pageSize = 1000, fields = FILE_FIELDS,
      spaces = "drive", corpora = "user" }, "files", function(list)
    for _, f in ipairs(list) do items[#items + 1] = f end
  end, { auth = { subject = email } })
  return items, resolve_paths(items, {})
end

-- Emits files and their permissions.  partial: these files were read one by one (changes, a re-fetch),
-- so a permission stored for them that they no longer have is retired here (a full listing's end does
-- that for the others).
local function emit_user_files(ctx, items, home, paths, partial)
  local files, perms = {}, {}
  for _, f in ipairs(items) do
    local ok, row, p = pcall(file_rows, f, home, paths)
    if ok then
      files[#files + 1] = row
      for _, x in ipairs(p) do perms[#perms + 1] = x end
      if partial then
        local now = {}
        for _, x in ipairs(p) do now[x.ext_id] = true end
        local stale = {}
        for _, id in ipairs(ctx:stored_ids("file_permissions", "file_id", row.ext_id)) do
          if not now[id] then stale[#stale + 1] = id end
        end
        if #stale > 0 then ctx:retire("file_permissions", stale) end
      end
    else ctx:reject("files", row) end
  end
  ctx:emit("files", files)
  ctx:emit("file_permissions", perms)
end

-- A shared drive's item's permissions (permissions.list, as a member) into f.permissions.
local function item_permissions(ctx, f, member)
  local perms = {}
  each_page(ctx, drive_url(ctx, "/files/" .. urlencode(f.id) .. "/permissions"), { supportsAllDrives = "true", pageSize = 100,
      fields = "nextPageToken,permissions(" .. PERM_FIELDS .. ")" }, "permissions", function(list)
    for _, p in ipairs(list) do perms[#perms + 1] = p end
  end, { auth = { subject = member } })
  f.permissions = perms
end

-- Changes since a page token (§5 changes.list) -> the token to start from next time.  A user's (as that
-- user): the files they own that changed (with their permissions now); a shared drive's (drive = {id,
-- name}, as its member email): its items that changed, their permissions read one by one.  Those gone
-- are retired.
local function changes_since(ctx, email, token, home, drive)
  local auth = { subject = email }
  local path = drive_url(ctx, "/changes")
  local newest
  local query = { pageToken = token, pageSize = 1000, spaces = "drive", includeRemoved = "true",
                  fields = "nextPageToken,newStartPageToken,changes(fileId,removed,time," .. FILE_FIELDS:match("^nextPageToken,(files%(.+%))$"):gsub("^files", "file") .. ")" }
  if drive then query.driveId, query.includeItemsFromAllDrives, query.supportsAllDrives = drive.id, "true", "true" end
  for list, resp in ctx:pages(path, query, {
    items = "changes", absent_empty = true, auth = auth,
    next = function(r)
      if str(r.data.newStartPageToken) then newest = r.data.newStartPageToken end
      local t = r.data.nextPageToken
      if not str(t) then return nil end
      local q = {}
      for k, v in pairs(query) do q[k] = v end
      q.pageToken = t
      return path, q
    end,
  }) do
    local items, gone, paths = {}, {}, {}
    for _, ch in ipairs(list) do
      local f = type(ch.file) == "table" and ch.file or nil
      local owner = f and type(f.owners) == "table" and type(f.owners[1]) == "table" and f.owners[1].emailAddress
      if ch.removed == true or not f then
        if str(ch.fileId) then gone[#gone + 1] = ch.fileId end
      elseif drive and f.driveId == drive.id or owner == email then   -- a file shared with them is its owner's to report
        if drive then item_permissions(ctx, f, email) end
        items[#items + 1] = f
        local parent = type(f.parents) == "table" and f.parents[1]
        local prow = parent and ctx:stored("files", parent)
        if prow then paths[parent] = prow.path end
      end
    end
    if drive then paths[drive.id] = "/" .. tostring(drive.name) end
    emit_user_files(ctx, items, home, paths, true)
    if #gone > 0 then ctx:retire("files", gone) end
    if str(resp.data.newStartPageToken) then newest = resp.data.newStartPageToken end
  end
  if not newest then fail(("changes.list ended without newStartPageToken (GET %s)"):format("/drive/v3/changes"), "malformed") end
  return newest
end

-- §5 shared drives: every one of the domain (drives.list with useDomainAdminAccess, as admin_email);
-- a drive's items are read as a member of the domain (files.list answers members only; a manager
-- first) with corpora=drive, driveId, includeItemsFromAllDrives and supportsAllDrives.  A shared drive's
-- items carry no owners (the drive owns them) nor permissions in a listing: permissions.list
-- (supportsAllDrives) gives them, the drive's members included (inherited, permissionType "member").
-- A drive's changes are then followed from its page token, like a user's (cursor key "drive:<id>").
local MEMBER_RANK = { organizer = 1, fileOrganizer = 2, writer = 3, commenter = 4, reader = 5 }
local members_seen = setmetatable({}, { __mode = "k" })          -- ctx -> {drive id -> member email | false}
local function drive_member(ctx, drive_id)
  local seen = members_seen[ctx] or {}
  members_seen[ctx] = seen
  if seen[drive_id] ~= nil then return seen[drive_id] or nil end
  local home, best, rank = domain_of(ctx.settings.admin_email), false, nil
  each_page(ctx, drive_url(ctx, "/files/" .. urlencode(drive_id) .. "/permissions"), { supportsAllDrives = "true",
      useDomainAdminAccess = "true", pageSize = 100, fields = "nextPageToken,permissions(type,role,emailAddress)" }, "permissions", function(list)
    for _, p in ipairs(list) do
      local r = MEMBER_RANK[p.role]
      if p.type == "user" and r and domain_of(p.emailAddress) == home and (not rank or r < rank) then best, rank = p.emailAddress, r end
    end
  end, { auth = { subject = ctx.settings.admin_email } })
  seen[drive_id] = best
  return best or nil
end

local function shared_drives(ctx, home, old, tokens)
  local drives = {}
  each_page(ctx, drive_url(ctx, "/drives"), { useDomainAdminAccess = "true", pageSize = 100 }, "drives", function(list)
    for _, d in ipairs(list) do drives[#drives + 1] = d end
  end, { auth = { subject = ctx.settings.admin_email } })
  for _, d in ipairs(drives) do
    local member = drive_member(ctx, d.id)
    if not member then
      log.warn("google-workspace: a shared drive has no member of the domain to read it as", { instance = ctx.instance, drive = d.id })
    elseif old and str(old["drive:" .. d.id]) then
      tokens["drive:" .. d.id] = changes_since(ctx, member, old["drive:" .. d.id], home, d)
    else
      local start = ctx:get(drive_url(ctx, "/changes/startPageToken"), { driveId = d.id, supportsAllDrives = "true" }, { auth = { subject = member } })
      if not str(start.startPageToken) then fail("changes.getStartPageToken answered without startPageToken", "malformed") end
      tokens["drive:" .. d.id] = start.startPageToken
      local items = {}
      each_page(ctx, drive_url(ctx, "/files"), { corpora = "drive", driveId = d.id, includeItemsFromAllDrives = "true",
          supportsAllDrives = "true", pageSize = 1000, fields = FILE_FIELDS }, "files", function(list)
        for _, f in ipairs(list) do items[#items + 1] = f end
      end, { auth = { subject = member } })
      for _, f in ipairs(items) do item_permissions(ctx, f, member) end
      emit_user_files(ctx, items, home, resolve_paths(items, { [d.id] = "/" .. tostring(d.name) }))
    end
  end
end

-- Full scan (no cursor: the first run, then every full_scan_interval): each user's start page token is
-- taken before their listing, so what changes while it is read comes with the next run.  Later runs
-- read each user's changes from there.  The cursor is {email = page token}.
function c.streams.files(ctx, cursor)
  delegated(ctx)
  local home = domain_of(ctx.settings.admin_email)
  local tokens = {}
  local old = cursor and json.decode(cursor)
  if type(old) ~= "table" then old = nil end
  for _, u in ipairs(ctx:known_users()) do
    local st = ctx:stored("users", u.ext_id)
    if st and st.status ~= "deleted" then        -- suspended and archived users keep their files and sharing
      if old and str(old[u.email]) then
        tokens[u.email] = changes_since(ctx, u.email, old[u.email], home)
      else
        local start = ctx:get(drive_url(ctx, "/changes/startPageToken"), nil, { auth = { subject = u.email } })
        if not str(start.startPageToken) then fail("changes.getStartPageToken answered without startPageToken", "malformed") end
        tokens[u.email] = start.startPageToken
        local items, paths = user_files(ctx, u.email)
        emit_user_files(ctx, items, home, paths)
      end
    end
  end
  shared_drives(ctx, home, old, tokens)
  ctx:checkpoint(json.encode(tokens))
  if not old then ctx:complete() end             -- every user's files were listed: the rest is gone
end

-- Whom to act as on a stored file: its owner, or for a shared drive's item a member who manages it.
local function actor(ctx, file)
  if str(file.owner) then return file.owner end
  local raw = type(file.raw) == "string" and json.decode(file.raw) or file.raw
  local drive = type(raw) == "table" and str(raw.driveId)
  if not drive then error("http: the file has no known owner to act as", 0) end
  return drive_member(ctx, drive) or fail("no member of the domain in shared drive " .. drive .. " to act as", "permission")
end

-- The files stream's cursor: {email = that user's changes page token} ({} before the first scan).
local function page_tokens(ctx)
  local t = json.decode(ctx:state("files").cursor or "")
  return type(t) == "table" and t or {}
end

-- Targeted re-fetch: one file, read as its owner; or "changes:<email>" (a push notification): that
-- user's changes since the files stream's page token, which then moves on.
function c.fetch.files(ctx, id)
  delegated(ctx)
  local email = tostring(id):match("^changes:(.+)$")
  if email then
    local tokens = page_tokens(ctx)
    if not str(tokens[email]) then return end          -- not scanned yet: the first full scan reads it all
    tokens[email] = changes_since(ctx, email, tokens[email], domain_of(ctx.settings.admin_email))
    local now = page_tokens(ctx)                         -- another re-fetch may have moved other users on
    now[email] = tokens[email]
    ctx:save_cursor("files", json.encode(now))
    return
  end
  local row = ctx:stored("files", id)
  if not row then return end
  local who = actor(ctx, row)
  local f = ctx:try_get(drive_url(ctx, "/files/" .. urlencode(id)), { fields = FILE_FIELDS:match("files%((.+)%)$"), supportsAllDrives = "true" },
    { auth = { subject = who } })
  if not f then ctx:retire("files", { id }); return end
  if str(f.driveId) then item_permissions(ctx, f, who) end
  local parent = type(f.parents) == "table" and f.parents[1]
  local prow = parent and ctx:stored("files", parent)
  emit_user_files(ctx, { f }, domain_of(ctx.settings.admin_email), { [parent or ""] = prow and prow.path or nil }, true)
end

-- Content for the DLP step, as the owner: Docs Editors files are exported as text (Sheets as CSV), other
-- files downloaded with alt=media; folders and other Google types have none.
local EXPORT = { ["application/vnd.google-apps.document"] = "text/plain", ["application/vnd.google-apps.presentation"] = "text/plain",
                 ["application/vnd.google-apps.spreadsheet"] = "text/csv" }
function c.content(ctx, file, max_size)
  if consented(ctx.settings) then return nil, "unavailable: needs auth=service_account (domain-wide delegation)" end
  if file.is_folder == 1 then return nil, "unsupported: a folder has no content" end
  local opts = { max_size = max_size, raw = true, headers = { Accept = "*/*" }, auth = { subject = actor(ctx, file) } }
  local url = drive_url(ctx, "/files/" .. urlencode(file.ext_id))
  local mime = file.mime or ""
  if EXPORT[mime] then
    opts.query = { mimeType = EXPORT[mime], supportsAllDrives = "true" }
    url = url .. "/export"
  elseif mime:match("^application/vnd%.google%-apps%.") then
    return nil, "unsupported: " .. mime .. " has no downloadable content"
  else
    opts.query = { alt = "media", supportsAllDrives = "true" }
  end
  local resp, err = ctx:try("GET", url, opts)
  if not resp then return nil, err end
  return resp.body, nil, opts.query.mimeType           -- an export is of that type, not the Doc's
end

c.stream_order = { users = 1, groups = 2, app_grants = 3, files = 4, activities = 5 }

---------------------------------------------------------------------------------------------- push notifications
-- §9: a changes.watch channel per user's Drive (made as that user), to the daemon's webhook URL.  Drive
-- keeps a changes channel at most a week: the daemon renews daily (c.subscribe), each channel asked for
-- WATCH_TTL; renewing makes new channels first, then stops the old ones.  A channel's token is an HMAC of
-- its id with the instance's watch secret (in the vault); the current channels (id, resourceId, user) are
-- kept in the vault too.  Notifications carry no body: each "change" is a targeted re-fetch of that
-- user's changes (c.fetch.files "changes:<email>").
local WATCH_TTL = 3 * 86400
local CHANNELS = "drive_channels"

local function watch_secret(ctx)
  local s = ctx:secret("watch_secret")
  if not s then
    s = crypto.b64url(crypto.random(32))
    ctx:set_secret("watch_secret", s)
  end
  return s
end
local function channel_token(secret, id)
  local t = crypto.b64url(crypto.hmac_sha256(secret, "cachost drive channel " .. id))
  log.redact(t)
  return t
end
local function channels(ctx)
  local t = json.decode(ctx:secret(CHANNELS) or "")
  return type(t) == "table" and t or {}
end

-- One user's channel from their page token (the files stream's, else the current start) -> id, channel
local function watch(ctx, url, secret, email, page)
  if not str(page) then
    page = ctx:get(drive_url(ctx, "/changes/startPageToken"), nil, { auth = { subject = email } }).startPageToken
  end
  local id = crypto.hex(crypto.random(16))
  local ch = ctx:request("POST", drive_url(ctx, "/changes/watch"), { query = { pageToken = page, includeRemoved = "true", spaces = "drive" },
    json = { id = id, type = "web_hook", address = url, token = channel_token(secret, id),
             expiration = tostring(math.floor((sched.time() + WATCH_TTL) * 1000)) },
    auth = { subject = email } })
  if not str(ch.resourceId) then fail("changes.watch answered without resourceId", "malformed") end
  return id, { user = email, resourceId = ch.resourceId, expiration = ch.expiration }
end

function c.subscribe(ctx, url)
  delegated(ctx)
  local secret, old = watch_secret(ctx), channels(ctx)
  local tokens, now, made = page_tokens(ctx), {}, 0
  local ok, err = pcall(function()
    for _, u in ipairs(ctx:known_users()) do
      local st = ctx:stored("users", u.ext_id)
      if st and st.status ~= "deleted" then
        local id, ch = watch(ctx, url, secret, u.email, tokens[u.email])
        now[id], made = ch, made + 1
      end
    end
  end)
  if not ok then                          -- those made are ours too; the old ones stay until a renewal completes
    for id, ch in pairs(now) do old[id] = ch end
    ctx:set_secret(CHANNELS, json.encode(old))
    error(err, 0)
  end
  ctx:set_secret(CHANNELS, json.encode(now))
  for id, ch in pairs(old) do                            -- replaced: stopped (gone already is fine)
    local _, err, token = ctx:try("POST", drive_url(ctx, "/channels/stop"), { json = { id = id, resourceId = ch.resourceId },
      auth = { subject = ch.user } })
    if err and token ~= "not_found" then log.warn("google-workspace: a replaced channel could not be stopped", { instance = ctx.instance, error = err }) end
  end
  return made
end

-- A notification (§9): no body, no signature.  The channel must be one of ours (X-Goog-Channel-ID known,
-- X-Goog-Resource-ID its resource), its token ours (constant time); "sync" (the channel's first message)
-- is acknowledged, "change" re-reads that user's changes.  A message number already handled within
-- SEEN_FOR is acknowledged and not acted on again (Google redelivers what was not acknowledged).
local SEEN_FOR = 24 * 3600
function c.webhook(ctx, req)
  local h = req.headers or {}
  local id, got = h["x-goog-channel-id"], h["x-goog-channel-token"]
  if type(id) ~= "string" or type(got) ~= "string" then return 400, { error = "not a Drive notification" } end
  local secret = ctx:secret("watch_secret")
  local ch = channels(ctx)[id]
  if not secret or not ch then return 404, { error = "unknown channel" } end
  if not crypto.equal(got, channel_token(secret, id)) or h["x-goog-resource-id"] ~= ch.resourceId then
    return 401, { error = "bad channel token" }
  end
  local state, n = h["x-goog-resource-state"], math.tointeger(tonumber(h["x-goog-message-number"] or ""))
  if not n then return 400, { error = "no X-Goog-Message-Number" } end
  if state == "sync" then return 200 end
  if state ~= "change" then return 400, { error = "unexpected X-Goog-Resource-State" } end
  if not webhook.first(ctx.instance .. "/drive-channels", id .. "#" .. n, SEEN_FOR) then return 200, { duplicate = true } end
  return 200, nil, { { entity = "files", id = "changes:" .. ch.user } }
end

---------------------------------------------------------------------------------------------- governance
local function user_path(user) return DIR .. "/users/" .. urlencode(user.ext_id) end

-- §6: PATCH users/{userKey} {"suspended": ...}, {"changePasswordAtNextLogin": true}; POST .../signOut.
function c.actions.suspend_user(ctx, user)
  ctx:patch(user_path(user), { suspended = true })
  return { undo = { action = "unsuspend_user", params = {} } }
end
function c.actions.unsuspend_user(ctx, user)
  ctx:patch(user_path(user), { suspended = false })
  return { undo = { action = "suspend_user", params = {} } }
end
function c.actions.expire_password(ctx, user) ctx:patch(user_path(user), { changePasswordAtNextLogin = true }) end
function c.actions.revoke_sessions(ctx, user) ctx:post(user_path(user) .. "/signOut") end

-- roleAssignments.delete of the user's own assignments (params.role: a role name or id, else all); an
-- assignment held through a group is the group's: the user leaves the group instead.
function c.actions.remove_admin_role(ctx, user, params)
  local want = params and str(params.role)
  local base = DIR .. "/customer/" .. urlencode(customer(ctx))
  local names = {}
  each_page(ctx, base .. "/roles", { maxResults = 100 }, "items", function(list)
    for _, r in ipairs(list) do names[tostring(r.roleId)] = r.roleName end
  end)
  local mine = {}
  each_page(ctx, base .. "/roleassignments", { userKey = user.ext_id, maxResults = 200 }, "items", function(list)
    for _, a in ipairs(list) do
      if a.assignedTo == user.ext_id and (not want or want == a.roleId or want == names[tostring(a.roleId)] or want == a.roleAssignmentId) then
        mine[#mine + 1] = a.roleAssignmentId
      end
    end
  end)
  if #mine == 0 then error(("http: %s holds no %s role assignment of their own"):format(user.ext_id, want or "admin"), 0) end
  for _, id in ipairs(mine) do ctx:delete(base .. "/roleassignments/" .. urlencode(id)) end
end

-- tokens.delete: the user's grant to that app's client id.
function c.actions.revoke_grant(ctx, grant)
  local _, err, token = ctx:try("DELETE", DIR .. "/users/" .. urlencode(grant.user_id) .. "/tokens/" .. urlencode(grant.client_id))
  if err and token ~= "not_found" then fail(err, token) end
end
c.actions.revoke_token = c.actions.revoke_grant

-- Sharing changes act as the file's owner (a shared drive's item: a member who manages it): DELETE
-- files/{id}/permissions/{permissionId}.  A permission inherited from a folder or the drive's membership
-- cannot be removed on the file (it is removed where it comes from).
local function current_perms(ctx, file, who)
  local f = { id = file.ext_id }
  item_permissions(ctx, f, who)
  return f.permissions
end
local function inherited(p)
  for _, d in ipairs(type(p.permissionDetails) == "table" and p.permissionDetails or {}) do if d.inherited == true then return true end end
  return false
end
local function remove_perms(ctx, file, keep)
  local n, who = 0, actor(ctx, file)
  for _, p in ipairs(current_perms(ctx, file, who)) do
    if p.role ~= "owner" and not inherited(p) and not keep(p) then
      local _, err, token = ctx:try("DELETE", drive_url(ctx, "/files/" .. urlencode(file.ext_id) .. "/permissions/" .. urlencode(p.id)),
        { query = { supportsAllDrives = "true" }, auth = { subject = who } })
      if err and token ~= "not_found" then fail(err, token) end
      n = n + 1
    end
  end
  return n
end

function c.actions.remove_shared_link(ctx, file)
  remove_perms(ctx, file, function(p) return p.type ~= "anyone" and p.type ~= "domain" end)
end

-- params.permission_id removes that one; without it every collaborator outside the domain goes.
function c.actions.remove_collaborator(ctx, file, params)
  local home = domain_of(ctx.settings.admin_email)
  local pid = params and params.permission_id and tostring(params.permission_id):gsub("^.*:", "")
  remove_perms(ctx, file, function(p)
    if pid then return p.id ~= pid end
    if p.type == "user" or p.type == "group" then return domain_of(p.emailAddress) == home end
    return true
  end)
end

function c.actions.make_private(ctx, file) remove_perms(ctx, file, function() return false end) end

-- PATCH files/{id} {"trashed": true}: restorable from the owner's trash for 30 days.
function c.actions.trash_file(ctx, file)
  ctx:request("PATCH", drive_url(ctx, "/files/" .. urlencode(file.ext_id)), { query = { supportsAllDrives = "true" }, json = { trashed = true },
    auth = { subject = actor(ctx, file) } })
end

-- Quarantine: the file goes to the admin's quarantine folder (the setting, else "cachost quarantine" in
-- admin_email's My Drive, created once).  Drive moves a file only for someone who can edit it and the
-- target folder, so its ownership is transferred to the admin first (permissions.create with
-- transferOwnership=true, as the owner; the owner keeps writer access until make_private removes every
-- permission but the admin's).  A tombstone "<name>.quarantined.txt" in the original folder, created as
-- the owner (files.create then an upload with uploadType=media), says why and where.
local QUARANTINE = "cachost quarantine"
local function upload_url(ctx, id) return provider_host(ctx.settings, "https://www.googleapis.com") .. "/upload/drive/v3/files/" .. urlencode(id) end
local function as(email) return { auth = { subject = email } } end

local function quarantine_folder(ctx, admin)
  local id = str(ctx.settings.quarantine_folder_id)
  if id then return id end
  local found
  each_page(ctx, drive_url(ctx, "/files"), { q = ("name = '%s' and mimeType = '%s' and 'me' in owners and trashed = false"):format(QUARANTINE, FOLDER),
      fields = "nextPageToken,files(id)" }, "files", function(list) found = found or (list[1] and list[1].id) end, as(admin))
  if found then return found end
  local f = ctx:request("POST", drive_url(ctx, "/files"), { json = { name = QUARANTINE, mimeType = FOLDER }, auth = { subject = admin } })
  return f.id
end

local function move(ctx, id, from, to, who)
  ctx:request("PATCH", drive_url(ctx, "/files/" .. urlencode(id)), { query = { addParents = to, removeParents = from }, json = {}, auth = { subject = who } })
end

local function transfer(ctx, id, from, to)
  ctx:request("POST", drive_url(ctx, "/files/" .. urlencode(id) .. "/permissions"), { query = { transferOwnership = "true" },
    json = { type = "user", role = "owner", emailAddress = to }, auth = { subject = from } })
end

function c.actions.quarantine_file(ctx, file, params)
  params = params or {}
  local admin, owner = ctx.settings.admin_email, file.owner
  if not str(owner) then fail("unsupported: a shared drive's item is not quarantined (it has no owner to take it from); remove its sharing or trash it", "unsupported") end
  local it = ctx:get(drive_url(ctx, "/files/" .. urlencode(file.ext_id)), { fields = "id,name,parents" }, as(owner))
  local origin = type(it.parents) == "table" and it.parents[1]
  local qid = quarantine_folder(ctx, admin)
  if origin == qid then error("http: file is already in the quarantine folder", 0) end
  if owner:lower() ~= admin:lower() then transfer(ctx, file.ext_id, owner, admin) end
  move(ctx, file.ext_id, origin, qid, admin)
  remove_perms(ctx, { ext_id = file.ext_id, owner = admin }, function() return false end)
  local note = ("This file was quarantined by your administrator.\n\nFile: %s\nOriginal location: %s\n" ..
    "Moved to: the admin quarantine folder '%s' (id %s) of %s\nCorrelation id: %s\n"):format(
    it.name, tostring(file.path or it.name), QUARANTINE, qid, admin, tostring(params.correlation_id or "-"))
  local tomb = ctx:request("POST", drive_url(ctx, "/files"), { json = { name = it.name .. ".quarantined.txt", parents = { origin },
    mimeType = "text/plain" }, auth = { subject = owner } })
  ctx:request("PATCH", upload_url(ctx, tomb.id), { query = { uploadType = "media" }, body = note,
    headers = { ["Content-Type"] = "text/plain" }, auth = { subject = owner } })
  return { undo = { action = "unquarantine_file", params = { parent_id = origin, owner = owner, tombstone_id = tomb.id,
    correlation_id = params.correlation_id } } }
end

-- Overwrite (§6 files.update, uploadType=media, as the owner): the content becomes a notice; the file
-- keeps its id, name, place and sharing.  A Docs Editors file has no content to upload over.
function c.actions.overwrite_file(ctx, file, params)
  if (file.mime or ""):match("^application/vnd%.google%-apps%.") then
    fail("unsupported: " .. tostring(file.mime) .. " has no uploadable content (quarantine or trash it instead)", "unsupported")
  end
  local notice = params and str(params.notice) or "This file's content was removed by your administrator."
  ctx:request("PATCH", upload_url(ctx, file.ext_id), { query = { uploadType = "media", supportsAllDrives = "true" }, body = notice,
    headers = { ["Content-Type"] = "text/plain" }, auth = { subject = actor(ctx, file) } })
end

-- Back where it was, to its owner; the tombstone goes to the owner's trash.
function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  local admin, owner, origin = ctx.settings.admin_email, str(params.owner), str(params.parent_id)
  if not owner or not origin then error("http: unquarantine_file needs params.owner and params.parent_id (the quarantine's undo record)", 0) end
  local it = ctx:get(drive_url(ctx, "/files/" .. urlencode(file.ext_id)), { fields = "id,parents" }, as(admin))
  if owner:lower() ~= admin:lower() then transfer(ctx, file.ext_id, admin, owner) end
  move(ctx, file.ext_id, it.parents[1], origin, owner)
  if str(params.tombstone_id) then
    local _, err, token = ctx:try("PATCH", drive_url(ctx, "/files/" .. urlencode(params.tombstone_id)), { json = { trashed = true }, auth = { subject = owner } })
    if err and token ~= "not_found" then fail(err, token) end
  end
end

-- Every data governance action acts as the file's owner: not with an admin's consent.
for _, name in ipairs { "remove_shared_link", "remove_collaborator", "make_private", "trash_file", "quarantine_file",
                        "unquarantine_file", "overwrite_file" } do
  local act = c.actions[name]
  c.actions[name] = function(ctx, ...)
    delegated(ctx)
    return act(ctx, ...)
  end
end

c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user", quarantine_file = "unquarantine_file" }

return c
