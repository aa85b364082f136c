-- Microsoft Office 365 (Entra ID + Office 365 through Microsoft Graph v1.0, and the Office 365 Management
-- Activity API).  References: shared/api/microsoft-graph.md, shared/api/office365-management.md.
local c = connector "office365"
local microsoft = provider("microsoft")
c.title = "Microsoft Office 365"
c.identity = "provider"     -- its deactivated and deleted accounts are people who left (policies/offboarding.lua)
c.single_instance = true
c.settings = microsoft.settings {
  { "components", example = "users,audits,signins,apps,activities,files",
    help = "what to collect (default all): users (Entra users and groups, required by the others), audits "
      .. "(Entra management events), signins (Entra sign-in events), apps (Entra apps), activities "
      .. "(Office 365 activities), files (Office 365 files)" },
  { "client_state", secret = true, help = "the clientState of the Graph change-notification subscriptions" },
  { "publisher_id", help = "PublisherIdentifier for the Management Activity API quota (default: tenant_id)" },
}

-- Graph, manage.office.com and login each have their own host; a `base_url` setting (a sandbox tenant)
-- serves all three.
local GRAPH, MANAGE = microsoft.GRAPH, microsoft.MANAGE
c.base_url = GRAPH
c.hosts = function(s) return { provider_host(s, MANAGE) } end    -- login: the token endpoint

-- App-only (client credentials, §2).  One token per resource: requests to manage.office.com name the
-- `mgmt` scheme.  `instance connect` first asks an administrator's consent for the tenant (§2).
c.auth = {
  default = "graph",
  graph = microsoft.client_credentials(GRAPH, { admin_consent = microsoft.admin_consent }),
  mgmt = microsoft.client_credentials(MANAGE),
}

c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = true,
  activities = { "signin", "admin", "user" },
}

-- What each stream and action needs (`cachost connectors office365`): Microsoft Graph application
-- permissions (admin consent), the Management Activity API's, and the tenant's licences.
local FILES_RW = "Graph: Files.ReadWrite.All"
c.needs = {
  users = "Graph: User.Read.All, RoleManagement.Read.Directory (directory roles and their members, groups among them), "
    .. "GroupMember.Read.All",
  groups = "Graph: GroupMember.Read.All",
  privileges = "Graph: RoleManagement.Read.Directory (directory roles, held directly or through role-assignable groups)",
  app_grants = "Graph: Application.Read.All (servicePrincipals, appRoleAssignedTo), DelegatedPermissionGrant.Read.All",
  files = "Graph: Files.Read.All, Sites.Read.All; Sites.FullControl.All to read every item's sharing (delta with "
    .. "Prefer: hierarchicalsharing)",
  activities = "Graph: AuditLog.Read.All, Directory.Read.All; sign-ins (interactive, and non-interactive through beta): "
    .. "Microsoft Entra ID P1 or P2; Office 365 Management APIs: ActivityFeed.Read (ActivityFeed.ReadDlp for DLP.All), "
    .. "with audit logging on in Microsoft Purview",
  suspend_user = "Graph: User.ReadWrite.All", unsuspend_user = "Graph: User.ReadWrite.All",
  revoke_sessions = "Graph: User.RevokeSessions.All",
  expire_password = "Graph: User-PasswordProfile.ReadWrite.All (application permission; for administrators' passwords "
    .. "also a directory role allowed to manage them)",
  revoke_grant = "Graph: DelegatedPermissionGrant.ReadWrite.All (delegated grants), AppRoleAssignment.ReadWrite.All "
    .. "(application permissions)",
  quarantine_file = FILES_RW, unquarantine_file = FILES_RW, trash_file = FILES_RW, remove_collaborator = FILES_RW,
  remove_shared_link = FILES_RW, make_private = FILES_RW,
}

c.error_message = microsoft.error_message
c.unavailable = microsoft.unavailable      -- sign-in logs without Microsoft Entra ID P1 or P2
c.is_throttled = microsoft.is_throttled

---------------------------------------------------------------------------------------------- components
-- users: Entra users and groups; audits: Entra management events; signins: Entra sign-in events; apps:
-- Entra apps; activities: Office 365 activities; files: Office 365 files
local COMPONENTS = { "users", "audits", "signins", "apps", "activities", "files" }

-- The components an instance has on: a set, or nil, err.
local function chosen(settings)
  local on, err = components(settings.components, COMPONENTS, "office365")
  if not on then return nil, err end
  if not on.users then
    return nil, "office365: the 'users' component (Entra users and groups) is required by every other component: "
      .. "add it (cachost instance edit <name> --set components=users,...)"
  end
  return on
end
c.components = chosen
function c.validate(settings) return chosen(settings) end   -- at instance add / edit

local STREAM_NEEDS = { users = { "users" }, groups = { "users" }, app_grants = { "apps" }, files = { "files" },
  activities = { "audits", "signins", "activities" } }

function c.enabled(stream, settings)
  local on, err = chosen(settings)
  if not on then return nil, err end
  for _, comp in ipairs(STREAM_NEEDS[stream] or {}) do if on[comp] then return true end end
  return false
end

---------------------------------------------------------------------------------------------- Graph helpers
local GRAPH_PAGES = microsoft.graph_pages()
local function graph_pages(ctx, path, query) return ctx:pages(path, query, GRAPH_PAGES) end
local odata_type = microsoft.odata_type

---------------------------------------------------------------------------------------------- users
local USER_SELECT = microsoft.USER_SELECT

-- Activated directory roles and the users holding them (§3: /directoryRoles does not page): members
-- are users, or role-assignable groups whose members hold the role through them (such groups cannot
-- contain groups: their members are users, service principals and devices).
local function admin_roles(ctx)
  local rows, admins = {}, {}
  local function add(r, uid, via)
    admins[uid] = true
    rows[#rows + 1] = { ext_id = r.id .. ":" .. uid .. (via and (":" .. via.id) or ""), user_id = uid,
                        role = r.displayName, scope = "/",
                        raw = { role = r, member = { id = uid }, group = via and { id = via.id, displayName = via.displayName } or nil } }
  end
  for _, r in ipairs(ctx:list("/v1.0/directoryRoles", nil, "value")) do
    for page in graph_pages(ctx, "/v1.0/directoryRoles/" .. urlencode(r.id) .. "/members") do
      for _, m in ipairs(page) do
        local kind = odata_type(m)
        if kind == "user" then add(r, m.id)
        elseif kind == "group" then
          for gpage in graph_pages(ctx, "/v1.0/groups/" .. urlencode(m.id) .. "/transitiveMembers", { ["$top"] = 999 }) do
            for _, gm in ipairs(gpage) do if odata_type(gm) == "user" then add(r, gm.id, m) end end
          end
        end
      end
    end
  end
  return rows, admins
end

-- Users with their admin roles: privileges rows and users.is_admin from the same listing.
function c.streams.users(ctx)
  local privs, admins = admin_roles(ctx)
  for page in graph_pages(ctx, "/v1.0/users", { ["$select"] = USER_SELECT, ["$top"] = 999 }) do
    ctx:emit("users", page, function(u) return microsoft.user_row(u, admins[u.id] == true) end)
  end
  ctx:emit("privileges", privs)
end

function c.streams.groups(ctx)
  local ids = {}
  for page in graph_pages(ctx, "/v1.0/groups", { ["$top"] = 999 }) do
    ctx:emit("groups", page, function(g)
      ids[#ids + 1] = g.id
      return microsoft.group_row(g)
    end)
  end
  for _, gid in ipairs(ids) do
    for page in graph_pages(ctx, "/v1.0/groups/" .. urlencode(gid) .. "/members", { ["$top"] = 999 }) do
      ctx:emit("group_members", page, function(m)
        return { ext_id = gid .. ":" .. m.id, group_id = gid, member_id = m.id, member_type = odata_type(m) or "user" }
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- apps
-- Delegated permission grants (oauth2PermissionGrants: scopes a client may use on behalf of one user or
-- all users) and application permissions (appRoleAssignments: app roles of an API granted to a client
-- service principal, used without a signed-in user).  Application permissions are read where they are
-- defined: each API service principal that exposes app roles lists who holds them (appRoleAssignedTo),
-- far fewer calls than asking every service principal.
function c.streams.app_grants(ctx)
  local sps, apis = {}, {}
  for page in graph_pages(ctx, "/v1.0/servicePrincipals", { ["$top"] = 999 }) do
    for _, sp in ipairs(page) do
      sps[sp.id] = sp
      if type(sp.appRoles) == "table" and #sp.appRoles > 0 then apis[#apis + 1] = sp end
    end
  end
  local emails = {}
  for _, u in ipairs(ctx:known_users()) do emails[u.ext_id] = u.email end
  for page in graph_pages(ctx, "/v1.0/oauth2PermissionGrants") do
    ctx:emit("app_grants", page, function(g)
      local sp = sps[g.clientId] or {}
      local uid = str(g.principalId)
      return {
        ext_id = g.id, client_id = sp.appId or g.clientId, app_name = sp.displayName or g.clientId,
        user_id = uid, user = uid and emails[uid] or (g.consentType == "AllPrincipals" and "all users" or nil),
        scopes = str(g.scope),
      }
    end)
  end
  for _, api in ipairs(apis) do
    local role = {}
    for _, r in ipairs(api.appRoles) do if type(r) == "table" and r.id then role[r.id] = str(r.value) or str(r.displayName) end end
    for page in graph_pages(ctx, "/v1.0/servicePrincipals/" .. urlencode(api.id) .. "/appRoleAssignedTo", { ["$top"] = 999 }) do
      ctx:emit("app_grants", page, function(a)
        if a.principalType ~= "ServicePrincipal" then return nil end     -- users and groups assigned to the app
        local sp = sps[a.principalId] or {}
        return {
          ext_id = a.id, client_id = sp.appId or a.principalId, app_name = sp.displayName or str(a.principalDisplayName) or a.principalId,
          user = "application", scopes = role[a.appRoleId] or a.appRoleId, created_at = str(a.createdDateTime),
        }
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- activities
-- One stream, three sources (each a component): Entra directory audits and sign-ins through Graph, and
-- the Office 365 Management Activity API.  The cursor is a JSON object with one position per source.
local OVERLAP = 15 * 60              -- Entra logs arrive late: re-read this much before the last event
local MGMT_OVERLAP = 60 * 60         -- content blobs too (documented delays); dedup by ext_id
local MAX_WINDOW = 24 * 3600         -- content listing windows (§3)
local MAX_AGE = 7 * 24 * 3600 - 600  -- content older than 7 days cannot be listed

local function place(loc)
  if type(loc) ~= "table" then return nil end
  local parts = {}
  for _, k in ipairs { "city", "state", "countryOrRegion" } do
    if str(loc[k]) then parts[#parts + 1] = loc[k] end
  end
  return #parts > 0 and table.concat(parts, ", ") or nil
end

local function audit_row(a)
  local by = type(a.initiatedBy) == "table" and a.initiatedBy or {}
  local u = type(by.user) == "table" and by.user or {}
  local app = type(by.app) == "table" and by.app or {}
  local t = type(a.targetResources) == "table" and a.targetResources[1] or {}
  if type(t) ~= "table" then t = {} end
  return {
    ext_id = a.id, time = iso(assert(parse_iso(a.activityDateTime))), kind = "admin",
    action = a.activityDisplayName, actor = str(u.userPrincipalName) or str(app.displayName),
    actor_id = str(u.id) or str(app.servicePrincipalId), target = str(t.userPrincipalName) or str(t.displayName),
    target_id = str(t.id), ip = str(u.ipAddress), outcome = str(a.result), app = "Microsoft Entra ID",
  }
end

-- A sign-in: the app signed in to is the target, the client app (browser, mobile, legacy protocols...)
-- goes in user_agent, errorCode 0 is success.
local function signin_row(s)
  local st = type(s.status) == "table" and s.status or {}
  local geo = type(s.location) == "table" and type(s.location.geoCoordinates) == "table" and s.location.geoCoordinates or {}
  local dev = type(s.deviceDetail) == "table" and s.deviceDetail or {}
  local client = str(s.clientAppUsed)
  if str(dev.browser) then client = (client and (client .. "; ") or "") .. dev.browser end
  return {
    ext_id = s.id, time = iso(assert(parse_iso(s.createdDateTime))), kind = "signin",
    action = s.isInteractive == false and "sign-in (non-interactive)" or "sign-in",
    actor = str(s.userPrincipalName), actor_id = str(s.userId), target = str(s.appDisplayName), target_id = str(s.appId),
    ip = str(s.ipAddress), location = place(s.location), user_agent = client,
    outcome = tonumber(st.errorCode) == 0 and "success" or "failure", app = "Microsoft Entra ID",
    lat = tonumber(geo.latitude), lon = tonumber(geo.longitude),
  }
end

-- Graph log listing from a time (ge), any order: returns the newest time seen.
local function graph_log(ctx, path, field, since, map, save, also)
  local newest = since
  local filter = ("%s ge %s"):format(field, iso(since):gsub("%.%d+Z$", "Z")) .. (also and (" and " .. also) or "")
  for page in graph_pages(ctx, path, { ["$filter"] = filter }) do
    for _, e in ipairs(page) do
      local t = parse_iso(e[field])
      if t and t > newest then newest = t end
    end
    ctx:emit("activities", page, map)
  end
  save(newest)
end

-- Office 365 workloads -> the app an activity came from.
local WORKLOAD = {
  Exchange = "Exchange", SharePoint = "SharePoint", OneDrive = "OneDrive", MicrosoftTeams = "Teams",
  PowerBI = "Power BI", Dynamics365 = "Dynamics 365", CRM = "Dynamics 365", MicrosoftFlow = "Power Automate",
  PowerAutomate = "Power Automate", Yammer = "Yammer", SkypeForBusiness = "Skype for Business",
}
local SIGNIN_TYPES = { [9] = true, [15] = true }
local ADMIN_TYPES = { [1] = true, [8] = true, [10] = true, [18] = true }
local OUTCOME = { succeeded = "success", ["true"] = "success", success = "success", partiallysucceeded = "partial",
  failed = "failure", ["false"] = "failure", failure = "failure" }

local function record_time(s)
  if type(s) ~= "string" then return nil end
  if not s:match("[Zz]$") and not s:match("[+-]%d%d:?%d%d$") then s = s .. "Z" end   -- UTC without a zone (§4)
  local t = parse_iso(s)
  return t and iso(t) or nil
end

local function record_row(r)
  local rt = tonumber(r.RecordType)
  local kind = SIGNIN_TYPES[rt] and "signin" or ADMIN_TYPES[rt] and "admin" or "user"
  local outcome = r.ResultStatus ~= nil and OUTCOME[tostring(r.ResultStatus):lower()] or nil
  if rt == 15 and r.ErrorCode ~= nil then outcome = tostring(r.ErrorCode) == "0" and "success" or "failure" end
  return {
    ext_id = assert(str(r.Id), "record without Id"), time = assert(record_time(r.CreationTime), "record without CreationTime"),
    kind = kind, action = r.Operation, actor = str(r.UserId), actor_id = str(r.UserKey),
    target = str(r.ObjectId), ip = str(r.ClientIP) or str(r.ActorIpAddress), user_agent = str(r.UserAgent),
    outcome = outcome, app = WORKLOAD[r.Workload] or "Office",
  }
end

-- What record_row reads of a record: the only members decoded (raw: the record's whole text).
local RECORD_FIELDS = { "Id", "CreationTime", "RecordType", "Operation", "ResultStatus", "ErrorCode", "UserId", "UserKey",
  "ObjectId", "ClientIP", "ActorIpAddress", "UserAgent", "Workload" }

local CONTENT_TYPES = { "Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General" }

local function feed(ctx) return provider_host(ctx.settings, MANAGE) .. "/api/v1.0/" .. urlencode(ctx.settings.tenant_id) .. "/activity/feed" end
local function mgmt(ctx, method, url, query, body, fields)
  query = query or {}
  query.PublisherIdentifier = ctx.settings.publisher_id or ctx.settings.tenant_id
  return ctx:try(method, url, { query = query, json = body, auth = "mgmt", expect_json = true, fields = fields })
end

-- Subscriptions must be started once per content type before content is listed.
local function ensure_subscriptions(ctx)
  local list, lerr, ltoken = mgmt(ctx, "GET", feed(ctx) .. "/subscriptions/list")
  if not list then fail(lerr, ltoken) end
  local enabled = {}
  for _, s in ipairs(type(list.data) == "table" and list.data or {}) do
    if s.status == "enabled" then enabled[s.contentType] = true end
  end
  for _, ct in ipairs(CONTENT_TYPES) do
    if not enabled[ct] then
      local _, err, token = mgmt(ctx, "POST", feed(ctx) .. "/subscriptions/start", { contentType = ct })
      if err then fail(err, token) end
      log.info("office365: started Management Activity subscription", { instance = ctx.instance, content_type = ct })
    end
  end
end

-- A contentUri a webhook notification names, if it is a blob of this tenant's feed ({root}/audit/
-- {contentId}, §3): no other URL a notification names is ever fetched.
local function content_uri(ctx, uri)
  if type(uri) ~= "string" then return nil end
  local prefix = feed(ctx) .. "/audit/"
  local id = uri:sub(1, #prefix) == prefix and uri:sub(#prefix + 1) or ""
  if not id:match("^[%w%$_%-%.]+$") or id:match("^%.+$") then return nil end
  return uri
end

local function fmt(t) return (iso(t):gsub("%.%d+Z$", "")) end     -- YYYY-MM-DDTHH:MM:SS, UTC

local BLOBS_IN_FLIGHT = 8

-- One content blob: its records, or nil when it expired / disappeared (logged, skipped).
local function fetch_blob(ctx, uri)
  local resp, err, token, raw = mgmt(ctx, "GET", uri, nil, nil, RECORD_FIELDS)
  if resp then return ctx:listing(resp.data, nil, "content blob") end
  local code = raw and type(raw.data) == "table" and type(raw.data.error) == "table" and raw.data.error.code
  if token == "not_found" or code == "AF20051" or code == "AF20050" then
    log.warn("office365: content blob expired or gone, skipped", { instance = ctx.instance, error = err })
    return nil
  end
  fail(err, token)
end

-- Content blobs ({contentUri}), BLOBS_IN_FLIGHT at a time, each group's records committed together;
-- stored(blob) after its group is.  The poller and the webhook's re-fetch both store records here.
local function store_blobs(ctx, blobs, stored)
  for first = 1, #blobs, BLOBS_IN_FLIGHT do
    local last = math.min(#blobs, first + BLOBS_IN_FLIGHT - 1)
    local tasks, records = {}, {}
    for i = first, last do tasks[#tasks + 1] = sched.spawn(fetch_blob, ctx, blobs[i].contentUri) end
    for _, t in ipairs(tasks) do
      local ok, got = t:join()
      if not ok then error(got, 0) end
      for _, r in ipairs(got or {}) do records[#records + 1] = r end
    end
    if #records > 0 then ctx:emit("activities", records, record_row) end
    if stored then for i = first, last do stored(blobs[i]) end end
  end
end

-- Content of [from, now) in windows of at most 24 h; blobs already fetched in the overlap are skipped.
-- state = {time = end of the last complete window, seen = {contentId = contentCreated}}.
local function management(ctx, state, save)
  ensure_subscriptions(ctx)
  -- whole-second windows (the API's resolution), the last one ending at the next second: what it
  -- misses that is created later in that second comes with the overlap of the next run
  local now = math.ceil(sched.time())
  local from = math.floor(math.max(state.time and (state.time - MGMT_OVERLAP) or 0, now - MAX_AGE))
  local seen = type(state.seen) == "table" and state.seen or {}
  while from < now do
    local to = math.min(from + MAX_WINDOW, now)
    for _, ct in ipairs(CONTENT_TYPES) do
      local url, query = feed(ctx) .. "/subscriptions/content", { contentType = ct, startTime = fmt(from), endTime = fmt(to) }
      while url do
        local resp, err, token = mgmt(ctx, "GET", url, query)
        if not resp then fail(err, token) end
        -- the listing's new blobs
        local todo = {}
        for _, blob in ipairs(ctx:listing(resp.data, nil, url)) do
          if not seen[blob.contentId] then todo[#todo + 1] = blob end
        end
        store_blobs(ctx, todo, function(blob) seen[blob.contentId] = blob.contentCreated or fmt(to) end)
        url, query = resp.headers["nextpageuri"], nil
      end
    end
    -- forget blobs older than the next overlap
    local keep = to - MGMT_OVERLAP
    for id, created in pairs(seen) do
      local t = parse_iso(record_time(created) or "")
      if not t or t < keep then seen[id] = nil end
    end
    save { time = to, seen = seen }
    from = to
  end
end

c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local on = assert(chosen(ctx.settings))
  local state = cursor and json.decode(cursor) or nil
  if type(state) ~= "table" then state = {} end
  local days = tonumber(ctx.settings.initial_days) or c.initial_days
  local start = sched.time() - days * 86400
  local function saver(key)
    return function(v)
      state[key] = v
      ctx:checkpoint(json.encode(state))
      ctx:emit("activities", {})           -- commits the cursor now: a later source's failure keeps it
    end
  end
  local errors = {}
  local function source(name, fn)
    if not on[name] then return end
    local ok, err = pcall(fn)
    if not ok then errors[#errors + 1] = { message = tostring(err), token = token_of(err) } end
  end
  source("audits", function()
    local since = state.audits and math.max(state.audits - OVERLAP, start - 86400 * 365) or start
    graph_log(ctx, "/v1.0/auditLogs/directoryAudits", "activityDateTime", since, audit_row, saver("audits"))
  end)
  source("signins", function()
    local since = state.signins and (state.signins - OVERLAP) or start
    graph_log(ctx, "/v1.0/auditLogs/signIns", "createdDateTime", since, signin_row, saver("signins"))
    -- non-interactive sign-ins (a client refreshing tokens for the user) are only in beta, and only
    -- when asked for by type
    local ni_since = state.signins_ni and (state.signins_ni - OVERLAP) or start
    graph_log(ctx, "/beta/auditLogs/signIns", "createdDateTime", ni_since, signin_row, saver("signins_ni"),
      "signInEventTypes/any(t: t eq 'nonInteractiveUser')")
  end)
  source("activities", function()
    local m = type(state.management) == "table" and state.management or {}
    if not m.time then m.time = start + MGMT_OVERLAP end
    management(ctx, m, saver("management"))
  end)
  ctx:checkpoint(json.encode(state))
  -- the stream's health is its first error's token: a failure leads, a source the tenant's plan does
  -- not offer (sign-ins without P1/P2) or this app may not read comes after
  local later = { unavailable = 2, permission = 1 }
  table.sort(errors, function(a, b) return (later[a.token] or 0) < (later[b.token] or 0) end)
  if #errors > 0 then
    local text = {}
    for i, e in ipairs(errors) do text[i] = e.message end
    if errors[1].token then fail(table.concat(text, "; "), errors[1].token) end
    error(table.concat(text, "; "), 0)
  end
end

---------------------------------------------------------------------------------------------- files
-- OneDrive and SharePoint document libraries, read with delta queries: the cursor is a JSON object
-- drive id -> deltaLink.  A run that started every drive afresh is a complete listing.
local QUARANTINE = "cachost quarantine"

local function decode_raw(row)
  if type(row.raw) == "table" then return row.raw end
  return type(row.raw) == "string" and json.decode(row.raw) or {}
end

local function drive_of(row)
  local raw = decode_raw(row)
  local pr = type(raw.parentReference) == "table" and raw.parentReference or {}
  return assert(str(pr.driveId) or str(raw.drive_id), "file has no drive id (scan it again)")
end

-- Internal domains: those of the tenant's own (member, not guest) users as last scanned.
local function tenant_domains(ctx)
  local doms = {}
  for _, u in ipairs(ctx:known_users()) do
    local d = u.external == 0 and type(u.email) == "string" and u.email:match("@(.+)$")
    if d then doms[d:lower()] = true end
  end
  return doms
end

local function identity(set)
  if type(set) ~= "table" then return nil end
  for _, k in ipairs { "user", "group", "siteUser", "siteGroup", "application", "device" } do
    if type(set[k]) == "table" then return set[k], (k:gsub("^site", ""):lower()) end
  end
end

local function is_external(ident, doms)
  if type(ident) ~= "table" then return false end
  local mail = str(ident.email) or str(ident.loginName) or ""
  if mail:find("#ext#", 1, true) then return true end
  local dom = mail:match("@([^@|]+)$")
  return dom ~= nil and not doms[dom:lower()]
end

-- A permission -> a file_permissions row, and how open it leaves the item.
local LEVEL = { private = 0, internal = 1, external = 2, public = 3 }
local function permission_row(item_id, p, doms)
  local roles = type(p.roles) == "table" and p.roles or {}
  local row = { ext_id = item_id .. ":" .. p.id, file_id = item_id, role = roles[1], expires_at = str(p.expirationDateTime),
                external = 0 }
  local level = "private"
  if type(p.link) == "table" then
    row.principal_type, row.link = "link", str(p.link.webUrl)
    local scope = p.link.scope or "anonymous"
    row.principal = "link:" .. tostring(scope)
    if scope == "anonymous" then level, row.external = "public", 1
    elseif scope == "organization" then level = "internal"
    else level = "internal" end
  end
  local grants = {}
  local who, kind = identity(p.grantedToV2 or p.grantedTo)
  if who then grants[1] = { who, kind } end
  for _, g in ipairs(type(p.grantedToIdentitiesV2 or p.grantedToIdentities) == "table" and (p.grantedToIdentitiesV2 or p.grantedToIdentities) or {}) do
    local w, k = identity(g)
    if w then grants[#grants + 1] = { w, k } end
  end
  for _, g in ipairs(grants) do
    row.principal = row.principal or str(g[1].email) or str(g[1].displayName) or str(g[1].id)
    row.principal_type = row.principal_type or g[2]
    if roles[1] ~= "owner" then
      if is_external(g[1], doms) then row.external = 1; if LEVEL[level] < LEVEL.external then level = "external" end
      elseif LEVEL[level] < LEVEL.internal then level = "internal" end
    end
  end
  if type(p.invitation) == "table" and str(p.invitation.email) and is_external({ email = p.invitation.email }, doms) then
    row.external = 1
    if LEVEL[level] < LEVEL.external then level = "external" end
  end
  return row, level
end

-- The path below the drive root of an item as a non-delta answer describes it (parentReference.path
-- "/drives/{id}/root:/a/b"); nil when the answer has no path (delta answers never have one, §5).
local function answered_path(it)
  if it.root then return "" end
  local pr = type(it.parentReference) == "table" and it.parentReference or {}
  if not str(pr.path) then return nil end
  return (pr.path:gsub("^/drives?/[^/]*/?root:", ""):gsub("^/drive/root:", "")) .. "/" .. tostring(it.name)
end

local function in_quarantine(path) return path:sub(1, #QUARANTINE + 2) == "/" .. QUARANTINE .. "/" end

local function file_row(it, drive, level, path)
  local f = type(it.file) == "table" and it.file or nil
  local h = f and type(f.hashes) == "table" and f.hashes or {}
  local pr = type(it.parentReference) == "table" and it.parentReference or {}
  local owner = type(drive.owner) == "table" and identity(drive.owner) or nil
  local by = identity(it.createdBy)
  if not str(pr.driveId) then                   -- actions need the drive: keep it with the item
    pr.driveId = drive.id
    it.parentReference = pr
  end
  return {
    ext_id = it.id, name = it.name, path = path, parent_id = str(pr.id), is_folder = it.folder and 1 or 0,
    owner = owner and (str(owner.email) or str(owner.displayName)) or by and (str(by.email) or str(by.displayName)) or nil,
    size = math.tointeger(it.size), mime = f and str(f.mimeType) or nil, sha1 = str(h.sha1Hash), sha256 = str(h.sha256Hash),
    access_level = level, trashed = 0, quarantined = in_quarantine(path) and 1 or 0,
    created_at = str(it.createdDateTime), modified_at = str(it.lastModifiedDateTime),
    raw = it,
  }
end

-- Permissions of one item: rows and the item's access level.
local function item_permissions(ctx, drive_id, item_id, doms)
  local rows, level = {}, "private"
  for page in graph_pages(ctx, "/v1.0/drives/" .. urlencode(drive_id) .. "/items/" .. urlencode(item_id) .. "/permissions") do
    for _, p in ipairs(page) do
      local row, l = permission_row(item_id, p, doms)
      row.raw = p
      if not (type(p.roles) == "table" and p.roles[1] == "owner" and not p.link) then rows[#rows + 1] = row end
      if LEVEL[l] > LEVEL[level] then level = l end
    end
  end
  return rows, level
end

-- Every drive: each user's OneDrive and each site's document libraries.
local function drives(ctx)
  local list, seen = {}, {}
  local function add(d) if type(d) == "table" and d.id and not seen[d.id] then seen[d.id] = true; list[#list + 1] = d end end
  for _, u in ipairs(ctx:known_users()) do
    -- no OneDrive provisioned: 404; a drive without an id is not understood: its files are then not
    -- listed, so none is deleted
    local d = ctx:try_get("/v1.0/users/" .. urlencode(u.ext_id) .. "/drive")
    if d then
      if type(d) == "table" and str(d.id) then add(d) else ctx:reject("files", "a drive without id") end
    end
  end
  local ok, err = pcall(function()
    for page in graph_pages(ctx, "/v1.0/sites", { search = "*" }) do
      for _, s in ipairs(page) do
        for dpage in graph_pages(ctx, "/v1.0/sites/" .. urlencode(s.id) .. "/drives") do
          for _, d in ipairs(dpage) do add(d) end
        end
      end
    end
  end)
  if not ok and token_of(err) ~= "not_found" then error(err, 0) end
  return list
end

-- Graph's scan guidance for delta: deleted items shown as deleted, permission gaps traversed, sharing
-- changes annotated (@microsoft.graph.sharedChanged, which needs the two before it), and the sharing
-- facet only on the roots of permission hierarchies (hierarchicalsharing): an item without it inherits
-- its parent's sharing, and an empty one means "its own, not shared".
local DELTA_PREFER = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges, hierarchicalsharing"

-- The stored permission rows of an item not in `keep` are gone.
local function retire_permissions(ctx, item_id, keep)
  local gone = {}
  for _, pid in ipairs(ctx:stored_ids("file_permissions", "file_id", item_id)) do
    if not (keep and keep[pid]) then gone[#gone + 1] = pid end
  end
  if #gone > 0 then ctx:retire("file_permissions", gone) end
end

-- A folder's path and access level: from this run's delta, the store, or Graph's answer for the item.
-- The drive root's level is its own permissions'.  level nil: unknown (the child reads its own).
local function folder_info(ctx, drive, known, doms, id)
  local k = known[id]
  if k then return k end
  local row = ctx:stored("files", id)
  if row and not row.deleted_at and row.path then
    k = { path = row.path, level = row.access_level }
  else
    local it = ctx:try_get("/v1.0/drives/" .. urlencode(drive.id) .. "/items/" .. urlencode(id))
    k = { path = it and answered_path(it) }
    if it and it.root then k.level = select(2, item_permissions(ctx, drive.id, id, doms)) end
  end
  known[id] = k
  return k
end

-- One item of a delta page -> {it=, path=, level=, deleted=, perms=rows | nil (unchanged)}.
local function delta_item(ctx, drive, known, doms, it, fresh)
  local stored = ctx:stored("files", it.id)
  if type(it.deleted) == "table" then       -- deleted items come without a name (§5): keep the stored one
    if stored and not str(it.name) then it.name = stored.name end
    return { it = it, deleted = true, path = stored and stored.path or ("/" .. tostring(it.name)),
             level = stored and stored.access_level or "private" }
  end
  local pr = type(it.parentReference) == "table" and it.parentReference or {}
  local parent = str(pr.id) and folder_info(ctx, drive, known, doms, pr.id) or {}
  local path = parent.path and (parent.path .. "/" .. tostring(it.name)) or answered_path(it)
  if not path then                          -- the parent is gone from Graph and the store: ask for the item
    local again = ctx:try_get("/v1.0/drives/" .. urlencode(drive.id) .. "/items/" .. urlencode(it.id))
    path = again and answered_path(again) or ("/" .. tostring(it.name))
  end
  local f = { it = it, path = path }
  local facet = it.shared
  if type(facet) == "table" and next(facet) == nil then
    f.level, f.perms = "private", {}        -- its own sharing, none
  elseif type(facet) == "table" then
    -- a permission root: read its permissions, unless only its content changed since they were read
    local same = not fresh and stored and not stored.deleted_at and stored.parent_id == str(pr.id)
      and it["@microsoft.graph.sharedChanged"] == nil
    if same then f.level = stored.access_level else f.perms, f.level = item_permissions(ctx, drive.id, it.id, doms) end
  elseif parent.level then
    f.level, f.perms = parent.level, {}     -- inherits: no permissions of its own
  else
    f.perms, f.level = item_permissions(ctx, drive.id, it.id, doms)
  end
  if it.folder then
    known[it.id] = { path = path, level = f.level }
    -- renamed, moved or re-shared: its stored descendants need the new path and level (below)
    f.restamp = stored ~= nil and not stored.deleted_at and (stored.path ~= path or stored.access_level ~= f.level)
  end
  return f
end

-- Graph's delta does not return the descendants of a folder that was renamed or moved, nor (with
-- hierarchicalsharing) the items whose inherited sharing changed with it (§5): the stored ones get the
-- folder's new path, and its level unless they are permission roots themselves (they keep theirs until
-- their own sharing changes).  -> rows to emit
local function restamp(ctx, drive, folder_id, path, level, rows)
  for _, id in ipairs(ctx:stored_ids("files", "parent_id", folder_id)) do
    local row = ctx:stored("files", id)
    if row and not row.deleted_at then
      local raw = decode_raw(row)
      local own = type(raw.shared) == "table" and next(raw.shared) ~= nil
      local p, l = path .. "/" .. tostring(row.name), own and row.access_level or level
      if p ~= row.path or l ~= row.access_level then
        local new = file_row(raw, drive, l, p)
        new.owner = row.owner
        rows[#rows + 1] = new
        if row.is_folder == 1 then restamp(ctx, drive, id, p, l, rows) end
      end
    end
  end
  return rows
end

-- One drive's delta from `link` (nil: from scratch).  -> the new deltaLink, restarted (bool)
local function drive_delta(ctx, drive, link, doms)
  local restarted = link == nil
  local function run(from)
    local path = from or ("/v1.0/drives/" .. urlencode(drive.id) .. "/root/delta")
    local delta
    local known = {}
    for page in ctx:pages(path, nil, { items = "value", headers = { Prefer = DELTA_PREFER },
        next = function(r) delta = r.data["@odata.deltaLink"] or delta; return r.data["@odata.nextLink"] end }) do
      local files, perms = {}, {}
      for _, it in ipairs(page) do
        if it.root then
          local facet = type(it.shared) == "table" and next(it.shared) ~= nil
          known[it.id] = { path = "", level = facet and select(2, item_permissions(ctx, drive.id, it.id, doms)) or "private" }
        else
          local f = delta_item(ctx, drive, known, doms, it, from == nil)
          files[#files + 1] = f
          for _, r in ipairs(f.perms or {}) do perms[#perms + 1] = r end
        end
      end
      ctx:emit("files", files, function(f)
        local row = file_row(f.it, drive, f.level, f.path)
        if f.deleted then row.trashed = 1 end
        return row
      end)
      ctx:emit("file_permissions", perms)
      local moved = {}
      for _, f in ipairs(files) do if f.restamp then restamp(ctx, drive, f.it.id, f.path, f.level, moved) end end
      if #moved > 0 then ctx:emit("files", moved, function(x) return x end) end
      -- permissions an item no longer has (listed again, or none of its own now)
      for _, f in ipairs(files) do
        if f.perms then
          local keep = {}
          for _, r in ipairs(f.perms) do keep[r.ext_id] = true end
          retire_permissions(ctx, f.it.id, keep)
        end
      end
    end
    return delta
  end
  local ok, res = pcall(run, link)
  if not ok then
    -- 410 Gone (resyncRequired / syncStateNotFound): the token is stale; enumerate again (§5)
    if link and tostring(res):match("HTTP 410") then
      log.warn("office365: delta link expired, restarting the drive's delta", { instance = ctx.instance, drive = drive.id })
      return run(nil), true
    end
    error(res, 0)
  end
  return res, restarted
end

function c.streams.files(ctx, cursor)
  local links = cursor and json.decode(cursor) or nil
  if type(links) ~= "table" then links = {} end
  local doms = tenant_domains(ctx)
  local all_fresh = true
  local next_links = {}
  for _, d in ipairs(drives(ctx)) do
    local link, fresh = drive_delta(ctx, d, links[d.id], doms)
    all_fresh = all_fresh and fresh
    next_links[d.id] = link
    links[d.id] = link
    ctx:checkpoint(json.encode(links))
  end
  ctx:checkpoint(json.encode(next_links))
  if all_fresh then ctx:complete() end
end

---------------------------------------------------------------------------------------------- re-fetch
c.stream_order = { users = 1, groups = 2, app_grants = 3, files = 4, activities = 5 }

function c.fetch.users(ctx, id)
  local u = ctx:try_get("/v1.0/users/" .. urlencode(id), { ["$select"] = USER_SELECT })
  if not u then return end      -- deleted: the next full scan marks it
  local row = microsoft.user_row(u)
  local cur = ctx:stored("users", u.id)
  row.is_admin = cur and cur.is_admin or 0
  ctx:emit("users", { u }, function() return row end)
end

-- A file (after an action) or a whole drive ("drive:<id>", after a change notification): the drive's
-- delta from its stored link, which then moves on.
function c.fetch.files(ctx, id)
  local drive_id = tostring(id):match("^drive:(.+)$")
  local doms = tenant_domains(ctx)
  if not drive_id then
    local row = ctx:stored("files", id)
    if not row then return end
    drive_id = drive_of(row)
    local item = ctx:try_get("/v1.0/drives/" .. urlencode(drive_id) .. "/items/" .. urlencode(id))
    local drive = { id = drive_id }
    if not item then
      local gone = file_row(decode_raw(row), drive, row.access_level, row.path)
      gone.trashed, gone.raw = 1, decode_raw(row)
      ctx:emit("files", { gone }, function(x) return x end)
      return
    end
    local rows, level = item_permissions(ctx, drive_id, id, doms)
    local frow = file_row(item, drive, level, answered_path(item) or row.path)
    frow.owner = row.owner
    ctx:emit("files", { frow }, function(x) return x end)
    ctx:emit("file_permissions", rows)
    -- permissions removed by the action: the item's rows not listed now are gone
    local keep = {}
    for _, r in ipairs(rows) do keep[r.ext_id] = true end
    retire_permissions(ctx, id, keep)
    return
  end
  local state = ctx:state("files")
  local links = state.cursor and json.decode(state.cursor) or {}
  if type(links) ~= "table" then links = {} end
  local link = drive_delta(ctx, { id = drive_id }, links[drive_id], doms)
  links[drive_id] = link
  ctx:save_cursor("files", json.encode(links))
end

-- Content blobs named by a Management Activity notification (c.webhook checked the URI): stored as the
-- poller stores them; the poll that lists them later finds the same records and adds nothing.
function c.fetch.activities(ctx, uri)
  store_blobs(ctx, { { contentUri = assert(content_uri(ctx, uri), "not a content blob of this tenant") } })
end

---------------------------------------------------------------------------------------------- governance
local function user_path(user) return "/v1.0/users/" .. urlencode(user.ext_id) end

function c.actions.suspend_user(ctx, user) ctx:patch(user_path(user), { accountEnabled = false }) end
function c.actions.unsuspend_user(ctx, user) ctx:patch(user_path(user), { accountEnabled = true }) end
function c.actions.revoke_sessions(ctx, user) ctx:post(user_path(user) .. "/revokeSignInSessions") end
function c.actions.expire_password(ctx, user)
  ctx:patch(user_path(user), { passwordProfile = { forceChangePasswordNextSignIn = true } })
end
-- A delegated grant is deleted; an application permission is removed from the API that defines it.
function c.actions.revoke_grant(ctx, grant)
  local raw = decode_raw(grant)
  if str(raw.appRoleId) and str(raw.resourceId) then
    ctx:delete("/v1.0/servicePrincipals/" .. urlencode(raw.resourceId) .. "/appRoleAssignedTo/" .. urlencode(grant.ext_id))
  else
    ctx:delete("/v1.0/oauth2PermissionGrants/" .. urlencode(grant.ext_id))
  end
end
c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user" }

local function item_path(drive_id, item_id)
  return "/v1.0/drives/" .. urlencode(drive_id) .. "/items/" .. urlencode(item_id)
end

-- The item's own (not inherited) permissions that `pick` selects are deleted (§4: only non-inherited
-- permissions can be removed).  -> how many
local function delete_permissions(ctx, file, pick)
  local drive_id = drive_of(file)
  local n = 0
  local list = {}
  for page in graph_pages(ctx, item_path(drive_id, file.ext_id) .. "/permissions") do
    for _, p in ipairs(page) do list[#list + 1] = p end
  end
  for _, p in ipairs(list) do
    local owner = type(p.roles) == "table" and p.roles[1] == "owner"
    if not p.inheritedFrom and not owner and pick(p) then
      ctx:delete(item_path(drive_id, file.ext_id) .. "/permissions/" .. urlencode(p.id))
      n = n + 1
    end
  end
  return n
end

-- params.permission_id: just that one.
function c.actions.remove_shared_link(ctx, file, params)
  params = params or {}
  delete_permissions(ctx, file, function(p)
    if params.permission_id then return p.id == params.permission_id end
    return type(p.link) == "table"
  end)
end

-- params.permission_id or params.principal (an e-mail); neither: every external collaborator.
function c.actions.remove_collaborator(ctx, file, params)
  params = params or {}
  local doms = (params.permission_id or params.principal) and {} or tenant_domains(ctx)
  local n = delete_permissions(ctx, file, function(p)
    if type(p.link) == "table" then return params.permission_id == p.id end
    if params.permission_id then return p.id == params.permission_id end
    local who = identity(p.grantedToV2 or p.grantedTo)
    if params.principal then
      return who ~= nil and (tostring(who.email or ""):lower() == tostring(params.principal):lower())
    end
    return is_external(who, doms)
  end)
  if n == 0 and (params.permission_id or params.principal) then
    error("http: no such removable permission on " .. tostring(file.name), 0)
  end
end

function c.actions.make_private(ctx, file) delete_permissions(ctx, file, function() return true end) end

function c.actions.trash_file(ctx, file) ctx:delete(item_path(drive_of(file), file.ext_id)) end

local function quarantine_folder(ctx, drive_id)
  local root = "/v1.0/drives/" .. urlencode(drive_id) .. "/root"
  for page in graph_pages(ctx, root .. "/children") do
    for _, it in ipairs(page) do if it.name == QUARANTINE and it.folder then return it.id end end
  end
  local f = ctx:post(root .. "/children", { name = QUARANTINE, folder = json.decode("{}"),
    ["@microsoft.graph.conflictBehavior"] = "fail" })
  return f.id
end

local function upload(ctx, drive_id, parent_id, name, text)
  return ctx:request("PUT", item_path(drive_id, parent_id) .. ":/" .. urlencode(name) .. ":/content",
    { body = text, headers = { ["Content-Type"] = "text/plain" } })
end

-- Move the item into the drive's quarantine folder and leave a tombstone at its place.
function c.actions.quarantine_file(ctx, file, params)
  params = params or {}
  local drive_id = drive_of(file)
  local it = ctx:get(item_path(drive_id, file.ext_id))
  local parent = assert(type(it.parentReference) == "table" and str(it.parentReference.id), "item has no parent")
  local folder = quarantine_folder(ctx, drive_id)
  if parent == folder then return end
  ctx:patch(item_path(drive_id, file.ext_id), { parentReference = { id = folder } })
  local note = ("%s was quarantined by the organization's administrator (cachost).\n"
    .. "Correlation id: %s\n"):format(it.name, tostring(params.correlation_id))
  local tomb = upload(ctx, drive_id, parent, it.name .. ".quarantined.txt", note)
  return { undo = { action = "unquarantine_file", params = {
    drive_id = drive_id, parent_id = parent, name = it.name, tombstone_id = type(tomb) == "table" and tomb.id or nil } } }
end

function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  local drive_id = params.drive_id or drive_of(file)
  local parent = params.parent_id
  if not parent then error("http: unquarantine_file needs the original folder (params.parent_id)", 0) end
  ctx:patch(item_path(drive_id, file.ext_id), { parentReference = { id = parent }, name = params.name })
  if params.tombstone_id then
    local _, err, token = ctx:try("DELETE", item_path(drive_id, params.tombstone_id))
    if err and token ~= "not_found" then fail(err, token) end
  end
end

---------------------------------------------------------------------------------------------- change notifications
-- Two kinds arrive at the daemon's /webhooks/<instance>: Graph change notifications (users, drives) and
-- Management Activity API notifications (new content blobs).  One secret, client_state, authenticates
-- both: Graph echoes it as clientState; the Management API's authId (sent back as Webhook-AuthID, its
-- notifications have no signature) is derived from it.
local function client_state(ctx)
  local state = ctx:secret("client_state")
  if not state then
    state = crypto.b64url(crypto.random(24))
    ctx:set_secret("client_state", state)
  end
  return state
end

local function mgmt_auth_id(state)
  local id = crypto.b64url(crypto.hmac_sha256(state, "cachost office365 Management Activity webhook authId"))
  log.redact(id)
  return id
end

-- Management Activity subscriptions with the webhook (§3, §7): each content type is started with it
-- unless already enabled with this address and authId (start also updates and re-enables a webhook the
-- service disabled).  The service validates the address during the start.
local function subscribe_management(ctx, url, auth_id)
  local list, lerr, ltoken = mgmt(ctx, "GET", feed(ctx) .. "/subscriptions/list")
  if not list then fail(lerr, ltoken) end
  local have = {}
  for _, s in ipairs(type(list.data) == "table" and list.data or {}) do
    if type(s) == "table" then have[s.contentType] = s end
  end
  for _, ct in ipairs(CONTENT_TYPES) do
    local s = have[ct] or {}
    local w = type(s.webhook) == "table" and s.webhook or {}
    if not (s.status == "enabled" and w.status == "enabled" and w.address == url
            and type(w.authId) == "string" and crypto.equal(w.authId, auth_id)) then
      local _, err, token = mgmt(ctx, "POST", feed(ctx) .. "/subscriptions/start", { contentType = ct },
        { webhook = { address = url, authId = auth_id, expiration = "" } })
      if err then fail(err, token) end
      log.info("office365: Management Activity webhook started", { instance = ctx.instance, content_type = ct })
    end
  end
end

-- Graph subscriptions for users and (with the files component) every drive root, pointing at `url`:
-- created, or renewed when one exists (lifetimes below the maxima of §7).  Graph validates the URL
-- during the POST/PATCH, so the webhook must already be served.  With the activities component, the
-- Management Activity webhook too.  -> the Graph subscriptions' ids
local LIFETIME = { users = 41000, drive = 42000 }     -- minutes
function c.subscribe(ctx, url)
  local state = client_state(ctx)
  local on = assert(chosen(ctx.settings))
  local existing = {}
  for page in graph_pages(ctx, "/v1.0/subscriptions") do
    for _, s in ipairs(page) do
      if s.notificationUrl == url then existing[(tostring(s.resource):gsub("^/", ""))] = s end
    end
  end
  local wanted = { { resource = "users", changeType = "updated,deleted", minutes = LIFETIME.users } }
  if on.files then
    for _, d in ipairs(drives(ctx)) do
      wanted[#wanted + 1] = { resource = "drives/" .. d.id .. "/root", changeType = "updated", minutes = LIFETIME.drive }
    end
  end
  local ids = {}
  for _, w in ipairs(wanted) do
    local exp = iso(sched.time() + w.minutes * 60)
    local have = existing[w.resource]
    if have then
      ctx:patch("/v1.0/subscriptions/" .. urlencode(have.id), { expirationDateTime = exp })
      ids[#ids + 1] = have.id
    else
      local s = ctx:post("/v1.0/subscriptions", { changeType = w.changeType, notificationUrl = url, resource = w.resource,
        expirationDateTime = exp, clientState = state, latestSupportedTlsVersion = "v1_2" })
      ids[#ids + 1] = s.id
    end
  end
  if on.activities then subscribe_management(ctx, url, mgmt_auth_id(state)) end
  return ids
end

-- Management Activity notifications (§7): Webhook-AuthID must be ours (validation included); the
-- validation is answered 200, no echo; a notification is a JSON array of content blobs, each re-fetched
-- if its contentUri is in this tenant's feed (else the whole notification is refused).  Notifications are
-- unsigned and at-least-once: a blob already named within BLOB_SEEN_FOR is not fetched again (the authId
-- is the only secret; a replayed notification can only name blobs of this tenant's own feed).
local BLOB_SEEN_FOR = 24 * 3600
local function management_webhook(ctx, req)
  local state = ctx:secret("client_state")
  if not state then return 403, { error = "client_state not configured" } end
  local got = req.headers["webhook-authid"]
  if type(got) ~= "string" or not crypto.equal(got, mgmt_auth_id(state)) then return 401, { error = "bad Webhook-AuthID" } end
  if req.headers["webhook-validationcode"] then return 200 end
  local list, status, why = webhook.json(req)
  if not list then return status, { error = why } end
  if type(list) ~= "table" or not json.is_array(list) then return 400, { error = "not a content notification" } end
  local uris = {}
  for _, n in ipairs(list) do
    local uri = type(n) == "table" and content_uri(ctx, n.contentUri)
    if not uri then
      log.warn("office365: notification names a content URI outside this tenant's feed, refused", { instance = ctx.instance })
      return 400, { error = "contentUri is not a content blob of this tenant" }
    end
    uris[#uris + 1] = uri
  end
  local refetch = {}
  for _, uri in ipairs(uris) do
    if webhook.first(ctx.instance .. "/office365-blobs", uri, BLOB_SEEN_FOR) then
      refetch[#refetch + 1] = { entity = "activities", id = uri }
    end
  end
  return 200, nil, refetch
end

-- Management Activity notifications (Webhook-AuthID / Webhook-ValidationCode headers, an array body)
-- are answered above.  Graph POSTs `?validationToken=` to verify the URL (echo it as text/plain, §7);
-- its notifications carry the subscription's clientState, compared in constant time.  Users -> re-fetch
-- the user; drive roots -> the drive's delta.  Not de-duplicated: a notification carries no id, and two
-- identical ones may mean two changes; a replay can only make us re-read the user or drive it names.
function c.webhook(ctx, req)
  req.headers = req.headers or {}
  if req.headers["webhook-authid"] or req.headers["webhook-validationcode"] or (req.body or ""):match("^%s*%[") then
    return management_webhook(ctx, req)
  end
  local token = req.query and req.query.validationToken
  if token then return 200, token, nil, { ["Content-Type"] = "text/plain" } end
  local secret = ctx:secret("client_state")
  if not secret then return 403, { error = "client_state not configured" } end
  local body, status, why = webhook.json(req)
  if not body then return status, { error = why } end
  if type(body) ~= "table" or type(body.value) ~= "table" then return 400, { error = "not a change notification" } end
  local refetch, seen = {}, {}
  for _, n in ipairs(body.value) do
    if type(n) ~= "table" or type(n.clientState) ~= "string" or not crypto.equal(n.clientState, secret) then
      return 401, { error = "bad clientState" }
    end
    local res = tostring(n.resource or "")
    local rd = type(n.resourceData) == "table" and n.resourceData or {}
    local item
    local uid = res:match("^[Uu]sers/([^/]+)$")
    if uid then item = { entity = "users", id = str(rd.id) or uid }
    else
      local did = res:match("^/?drives/([^/]+)/root") or res:match("^/?[Dd]rives/([^/]+)")
      if did then item = { entity = "files", id = "drive:" .. did } end
    end
    if item and not seen[item.entity .. item.id] then
      seen[item.entity .. item.id] = true
      refetch[#refetch + 1] = item
    end
  end
  return 202, nil, refetch
end

return c
