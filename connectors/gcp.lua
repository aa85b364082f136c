-- Google Cloud Platform: who holds which role (Resource Manager v3 IAM policies of the organization, its
-- folders and projects), service accounts and their keys (IAM v1), Cloud Audit Logs (Logging v2
-- entries:list).  Reference: shared/api/gcp.md and Google's discovery documents (cloudresourcemanager:v3,
-- iam:v1, logging:v2).  One instance per organization (organization_id) or per project (project_id).
local google = provider("google")
local c = connector "gcp"
c.title = "Google Cloud Platform"
c.settings = {
  { "organization_id", example = "123456789012", help = "the organization (numeric id) to read: its folders and projects too" },
  { "project_id", example = "acme-web-1", help = "or a single project (id or number) when no organization is given" },
  { google.KEY_SECRET, secret = true, help = "the service account's JSON key file (Cloud console > IAM > Service accounts > Keys)" },
  { "oauth_base_url", example = "https://oauth2.googleapis.com", help = "host of /token (default Google's; a sandbox serves it)" },
}
c.base_url = "https://cloudresourcemanager.googleapis.com"
local IAM, LOGGING = "https://iam.googleapis.com", "https://logging.googleapis.com"
c.hosts = function(s) return { provider_host(s, IAM), provider_host(s, LOGGING) } end

-- §1: the service account's own JWT-bearer assertion (no `sub`: Cloud has no domain-wide delegation).
-- The scope is cloud-platform: the IAM roles granted to the service account on the organization (or the
-- project) decide what it may do.  Each call below names the permission Google checks; the least-
-- privileged predefined role that grants it is what a 403 reports missing.
local GRANTED_BY = {
  ["resourcemanager.folders.list"] = "roles/iam.securityReviewer", ["resourcemanager.projects.list"] = "roles/iam.securityReviewer",
  ["resourcemanager.organizations.getIamPolicy"] = "roles/iam.securityReviewer",
  ["resourcemanager.folders.getIamPolicy"] = "roles/iam.securityReviewer",
  ["resourcemanager.projects.getIamPolicy"] = "roles/iam.securityReviewer",
  ["iam.serviceAccounts.list"] = "roles/iam.securityReviewer", ["iam.serviceAccountKeys.list"] = "roles/iam.securityReviewer",
  ["resourcemanager.projects.get"] = "roles/logging.viewer",       -- a project instance; also in roles/browser
  ["logging.logEntries.list"] = "roles/logging.viewer",
  ["iam.serviceAccountKeys.disable"] = "roles/iam.serviceAccountKeyAdmin",
  ["iam.serviceAccounts.disable"] = "roles/iam.serviceAccountAdmin", ["iam.serviceAccounts.enable"] = "roles/iam.serviceAccountAdmin",
  ["resourcemanager.organizations.setIamPolicy"] = "roles/resourcemanager.organizationAdmin",
  ["resourcemanager.folders.setIamPolicy"] = "roles/resourcemanager.folderIamAdmin",
  ["resourcemanager.projects.setIamPolicy"] = "roles/resourcemanager.projectIamAdmin",
}
local REVIEWER = "role roles/iam.securityReviewer on the organization or project (getIamPolicy, folders.list, projects.list, serviceAccounts.list, serviceAccountKeys.list)"
c.needs = {
  users = REVIEWER .. "; people's own accounts come from Google Workspace / Cloud Identity",
  groups = REVIEWER,
  privileges = REVIEWER,
  app_grants = REVIEWER,
  activities = "role roles/logging.viewer (logging.logEntries.list: Admin Activity, System Event, Policy Denied), roles/logging.privateLogViewer for Data Access;"
    .. " for an organization also roles/browser or roles/iam.securityReviewer (folders.list, projects.list: each project's own logs)",
  revoke_token = "role roles/iam.serviceAccountKeyAdmin (iam.serviceAccountKeys.disable)",
  suspend_user = "role roles/iam.serviceAccountAdmin (iam.serviceAccounts.disable); people are suspended in Google Workspace",
  unsuspend_user = "role roles/iam.serviceAccountAdmin (iam.serviceAccounts.enable)",
  remove_admin_role = "role roles/resourcemanager.projectIamAdmin / folderIamAdmin / organizationAdmin on the resource (setIamPolicy): a principal out of its bindings (--param role=, resource=)",
}

-- Google's 403 for a call needing `permission` on resource `on`, raised as "permission: <the role that
-- grants it> (<permission> on <resource>): <Google's message>" (the health's "permission missing: ...").
local function missing(permission, on, message)
  fail(("%s (%s on %s): %s"):format(GRANTED_BY[permission] or permission, permission, on,
    (tostring(message):gsub("^permission: ", ""):gsub("^HTTP %d+: ", ""))), "permission")
end

-- Runs fn(...), a call needing `permission` on `on`; an HTTP 403 it raises (a failure with the provider's
-- answer: not one already named by a call inside it) is reported as that permission missing.
local function needing(permission, on, fn, ...)
  local res = table.pack(pcall(fn, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local e = res[2]
  if token_of(e) == "permission" and e.resp then missing(permission, on, e.message) end
  error(e, 0)
end
c.not_offered = {
  files = "Google Cloud's files are Cloud Storage objects: buckets and objects are not scanned by this connector (their IAM bindings on projects are read as privileges)",
}
c.scopes = { google.SCOPE .. "cloud-platform" }
c.auth = google.service_account { scopes = c.scopes }
c.capabilities = { users = true, groups = true, privileges = true, app_grants = true, activities = { "admin", "user" } }
c.error_message = google.error_message
c.is_throttled = google.is_throttled

local function iam_url(ctx, path) return provider_host(ctx.settings, IAM) .. "/v1" .. path end
local function logging_url(ctx, path) return provider_host(ctx.settings, LOGGING) .. "/v2" .. path end

-- §5: pageSize + pageToken -> nextPageToken (the shared Google paging).
local each_page = google.each_page

-- The resources whose policies are read: the organization, its folders (any depth) and projects; or one project.
local function resources(ctx)
  local org, project = str(ctx.settings.organization_id), str(ctx.settings.project_id)
  if not org and not project then fail("settings: organization_id or project_id is required", "settings") end
  local out = {}
  if not org then
    local p = needing("resourcemanager.projects.get", "projects/" .. project, ctx.get, ctx, "/v3/projects/" .. urlencode(project))
    out[1] = { name = p.name, projectId = p.projectId, kind = "project" }
    return out
  end
  out[1] = { name = "organizations/" .. org, kind = "organization" }
  local i = 1
  while out[i] do                                    -- breadth first: folders.list and projects.list by parent
    local parent = out[i].name
    if out[i].kind ~= "project" then
      needing("resourcemanager.folders.list", parent, each_page, ctx, "/v3/folders", { parent = parent, pageSize = 1000 }, "folders", function(list)
        for _, f in ipairs(list) do out[#out + 1] = { name = f.name, kind = "folder" } end
      end)
      needing("resourcemanager.projects.list", parent, each_page, ctx, "/v3/projects", { parent = parent, pageSize = 1000 }, "projects", function(list)
        for _, p in ipairs(list) do
          if p.state == "ACTIVE" then out[#out + 1] = { name = p.name, projectId = p.projectId, kind = "project" } end
        end
      end)
    end
    i = i + 1
  end
  return out
end

local PRIVILEGED = { ["roles/owner"] = true, ["roles/editor"] = true, ["roles/resourcemanager.organizationAdmin"] = true,
  ["roles/iam.securityAdmin"] = true, ["roles/iam.serviceAccountTokenCreator"] = true, ["roles/iam.serviceAccountKeyAdmin"] = true }
local PUBLIC = { allUsers = true, allAuthenticatedUsers = true }

-- A member string ("user:a@x.com", "group:g@x.com", "serviceAccount:...", "allUsers") -> kind, who
local function principal(m)
  local kind, who = m:match("^([%a]+):(.+)$")
  if kind == "deleted" then return "deleted", m end
  return kind or m, who or m
end

-- The resource-manager permission of a verb on a resource: "projects/1" -> resourcemanager.projects.<verb>
local function rm_permission(name, verb) return "resourcemanager." .. name:match("^(%a+)/") .. "." .. verb end

local function get_policy(ctx, name)
  return needing(rm_permission(name, "getIamPolicy"), name, ctx.request, ctx, "POST", "/v3/" .. name .. ":getIamPolicy",
    { json = { options = { requestedPolicyVersion = 3 } }, idempotent = true })
end

-- A project's service accounts (§2 serviceAccounts.list): fn(accounts) per page.
local function each_account(ctx, r, fn)
  needing("iam.serviceAccounts.list", r.name, each_page, ctx, iam_url(ctx, "/projects/" .. urlencode(r.projectId) .. "/serviceAccounts"),
    { pageSize = 100 }, "accounts", fn)
end

-- A policy's bindings, each {role, members[]} (a binding that is not is a malformed item: rejected, so the
-- scan is no complete listing and marks nothing deleted).
local function bindings(ctx, pol, name)
  local out = {}
  for _, b in ipairs(google.repeated(ctx, pol, "bindings", "/v3/" .. name .. ":getIamPolicy")) do
    if type(b) == "table" and str(b.role) and type(b.members) == "table" and json.is_array(b.members) then out[#out + 1] = b
    else ctx:reject("privileges", "a binding without role or members in " .. name) end
  end
  return out
end

---------------------------------------------------------------------------------------------- users, privileges
-- §2: every binding of every policy is a privilege row (resource|role|member); a public binding
-- (allUsers / allAuthenticatedUsers) is flagged in its scope.  Principals seen in bindings are the users
-- (people and service accounts, by email: Workspace's users join on it; allUsers and allAuthenticatedUsers
-- as external pseudo-users, so that governance can take them out of a binding) and groups.
-- each(ctx, fn(r, binding, member, policy)) over every member of every binding; -> the resources
local function each_member(ctx, fn)
  local list = resources(ctx)
  for _, r in ipairs(list) do
    local pol = get_policy(ctx, r.name)
    for _, b in ipairs(bindings(ctx, pol, r.name)) do
      for _, m in ipairs(b.members) do
        if str(m) then fn(r, b, m, pol) else ctx:reject("privileges", "a member that is not a string in " .. r.name) end
      end
    end
  end
  return list
end

function c.streams.users(ctx)
  local users, admins, privs = {}, {}, {}
  local list = each_member(ctx, function(r, b, m, pol)
    local kind, who = principal(m)
    privs[#privs + 1] = { ext_id = r.name .. "|" .. b.role .. "|" .. m, user_id = who, role = b.role,
      scope = r.name .. (PUBLIC[m] and " (public: " .. m .. ")" or "") .. (b.condition and " (conditional)" or ""),
      raw = { resource = r.name, role = b.role, member = m, condition = b.condition, etag = pol.etag } }
    if kind == "user" or kind == "serviceAccount" or PUBLIC[m] then
      users[who] = users[who] or { ext_id = who, email = not PUBLIC[m] and who or nil, status = "active", external = PUBLIC[m] and 1 or 0,
        display_name = m == "allUsers" and "anyone on the internet" or m == "allAuthenticatedUsers" and "any signed-in Google account" or nil,
        raw = { member = m } }
      if PRIVILEGED[b.role] then admins[who] = true end
    end
  end)
  -- service accounts of each project, disabled ones suspended
  for _, r in ipairs(list) do
    if r.kind == "project" then
      each_account(ctx, r, function(accounts)
        for _, sa in ipairs(accounts) do
          users[sa.email] = { ext_id = sa.email, email = sa.email, display_name = str(sa.displayName),
            status = sa.disabled == true and "suspended" or "active", external = 0, raw = sa }
        end
      end)
    end
  end
  local ulist = {}
  for _, u in pairs(users) do ulist[#ulist + 1] = u end
  ctx:emit("users", ulist)
  ctx:emit("privileges", privs)
  ctx:set_admins(admins)
end

-- Groups seen in bindings; their members live in Workspace / Cloud Identity (joined by the group's email).
function c.streams.groups(ctx)
  local groups = {}
  each_member(ctx, function(_, _, m)
    local kind, who = principal(m)
    if kind == "group" then groups[who] = { ext_id = who, name = who, email = who, raw = { member = m } } end
  end)
  local glist = {}
  for _, g in pairs(groups) do glist[#glist + 1] = g end
  ctx:emit("groups", glist)
end

---------------------------------------------------------------------------------------------- app grants
-- Service accounts' user-managed keys (keys.list, keyTypes=USER_MANAGED: no paging): long-lived
-- credentials; validAfterTime gives the age.  Last use is not in the IAM API (Policy Intelligence's
-- activity analysis would be): not read.
-- (Read from the projects themselves, not the users stream's rows: streams run in any order.)
function c.streams.app_grants(ctx)
  for _, r in ipairs(resources(ctx)) do
    if r.kind == "project" then
      each_account(ctx, r, function(accounts)
        for _, sa in ipairs(accounts) do
          local data = needing("iam.serviceAccountKeys.list", r.name, ctx.try_get, ctx, iam_url(ctx, "/" .. sa.name .. "/keys"), { keyTypes = "USER_MANAGED" })
          local keys = data and ctx:listing({ keys = data.keys or {} }, "keys", "keys") or {}
          ctx:emit("app_grants", keys, function(k)
            return { ext_id = k.name, client_id = sa.email, app_name = (str(sa.displayName) or sa.email) .. " key",
                     user_id = sa.email, user = sa.email, created_at = str(k.validAfterTime), raw = k }
          end)
        end
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- activities
-- §3: Cloud Audit Logs through entries:list, ascending from the watermark minus OVERLAP (entries can be
-- ingested late), idempotent by insertId.  A page may be empty while nextPageToken is present: keep
-- paging with identical parameters.
local KIND = { activity = "admin", system_event = "admin", data_access = "user", policy = "user" }
c.OVERLAP = 600
c.initial_days = 7
c.max_pages = 10000

local function rfc3339(t) return (iso(t):gsub("%.%d+Z$", "Z")) end

local function entry_row(e)
  if not str(e.insertId) or not str(e.timestamp) then error("log entry without insertId or timestamp") end
  local p = type(e.protoPayload) == "table" and e.protoPayload or {}
  local auth = type(p.authenticationInfo) == "table" and p.authenticationInfo or {}
  local meta = type(p.requestMetadata) == "table" and p.requestMetadata or {}
  local log = tostring(e.logName):match("cloudaudit%.googleapis%.com%%2F(%w+)$") or "activity"
  local failed = type(p.status) == "table" and tonumber(p.status.code) and tonumber(p.status.code) ~= 0
  return { ext_id = e.insertId, time = e.timestamp, kind = KIND[log] or "admin", action = str(p.methodName) or log,
           actor = str(auth.principalEmail), target = str(p.resourceName), ip = str(meta.callerIp),
           user_agent = str(meta.callerSuppliedUserAgent), outcome = (failed or log == "policy") and "failure" or "success",
           app = "Google Cloud", raw = e }
end

function c.streams.activities(ctx)
  local now = sched.time()
  local w = ctx.watermark and parse_iso(ctx.watermark)
  local since = w and (w - c.OVERLAP) or (now - (tonumber(ctx.settings.initial_days) or c.initial_days) * 86400)
  local names = {}
  local org, project = str(ctx.settings.organization_id), str(ctx.settings.project_id)
  if org then
    -- each resource's own logs (an organization's resourceName does not include its projects' logs)
    for _, r in ipairs(resources(ctx)) do names[#names + 1] = r.kind == "project" and ("projects/" .. r.projectId) or r.name end
  elseif project then names[1] = "projects/" .. project
  else fail("settings: organization_id or project_id is required", "settings") end
  local body = { resourceNames = names, orderBy = "timestamp asc", pageSize = 1000,
                 filter = ('logName:"cloudaudit.googleapis.com" AND timestamp>="%s"'):format(rfc3339(since)) }
  local newest = w
  local seen, n = {}, 0
  repeat
    local data = needing("logging.logEntries.list", table.concat(names, ", "), ctx.request, ctx, "POST", logging_url(ctx, "/entries:list"),
      { json = body, idempotent = true })        -- a read: safe to resend
    local rows = {}
    for _, e in ipairs(type(data.entries) == "table" and data.entries or {}) do
      local ok, r = pcall(entry_row, e)
      if ok then
        rows[#rows + 1] = r
        local t = parse_iso(r.time)
        if t and (not newest or t > newest) then newest = t end
      else ctx:reject("activities", r) end
    end
    ctx:emit("activities", rows)
    local tok = str(data.nextPageToken)
    n = n + 1
    if tok and (seen[tok] or n > c.max_pages) then fail("endless pagination: entries:list gave the same page token again", "endless") end
    if tok then seen[tok] = true end
    body.pageToken = tok
  until not tok
  ctx:checkpoint(nil, newest and iso(newest) or ctx.watermark)
end

---------------------------------------------------------------------------------------------- actions
local function sa_path(raw) return "/projects/" .. urlencode(raw.projectId) .. "/serviceAccounts/" .. urlencode(raw.email) end

-- revoke_token: disable a user-managed key (§4 keys.disable; enable undoes it, unlike delete)
function c.actions.revoke_token(ctx, row)
  return needing("iam.serviceAccountKeys.disable", row.ext_id, ctx.post, ctx, iam_url(ctx, "/" .. row.ext_id:gsub("[^%w%-%._~@/]", urlencode) .. ":disable"), {})
end

local function service_account(row)
  local raw = row and row.raw and json.decode(row.raw)
  if type(raw) ~= "table" or not str(raw.uniqueId) then
    fail("only a service account is suspended in Google Cloud; a person is suspended in Google Workspace", "unsupported")
  end
  return raw
end
local function sa_verb(ctx, row, verb)
  local sa = service_account(row)
  return needing("iam.serviceAccounts." .. verb, "projects/" .. sa.projectId, ctx.post, ctx, iam_url(ctx, sa_path(sa) .. ":" .. verb), {})
end
function c.actions.suspend_user(ctx, row) return sa_verb(ctx, row, "disable") end
function c.actions.unsuspend_user(ctx, row) return sa_verb(ctx, row, "enable") end

-- remove_admin_role on a principal (a users row: person, service account, allUsers...), params role= and
-- resource= to narrow it (default: every binding the last scan saw it in).  Per resource a read-modify-
-- write: getIamPolicy, drop the member from those roles' bindings, setIamPolicy with the policy's etag;
-- 409 ABORTED (someone changed the policy meanwhile) -> read again, up to 5 times.
local function member_of(user)
  local raw = type(user.raw) == "string" and json.decode(user.raw) or {}
  if str(raw.member) then return raw.member end
  if str(raw.uniqueId) then return "serviceAccount:" .. user.ext_id end
  return "user:" .. user.ext_id
end

local function remove_from(ctx, res, roles, member)
  for _ = 1, 5 do
    local pol = get_policy(ctx, res)
    local bindings, removed = {}, 0
    -- every binding is written back as it came but for the member taken out (a malformed answer raises
    -- here rather than being written back as an empty policy)
    for _, b in ipairs(google.repeated(ctx, pol, "bindings", "/v3/" .. res .. ":getIamPolicy")) do
      local emptied = false
      if type(b) == "table" and roles[b.role] and type(b.members) == "table" then
        local keep = {}
        for _, m in ipairs(b.members) do
          if m == member then removed = removed + 1 else keep[#keep + 1] = m end
        end
        b.members, emptied = keep, #keep == 0
      end
      if not emptied then bindings[#bindings + 1] = b end
    end
    if removed == 0 then return 0 end
    pol.bindings, pol.version = json.array(bindings), 3
    local resp, err, token, answer = ctx:try("POST", "/v3/" .. res .. ":setIamPolicy", { json = { policy = pol, updateMask = "bindings,etag" } })
    if resp then return removed end
    if token == "permission" then missing(rm_permission(res, "setIamPolicy"), res, err) end
    if not (answer and answer.status == 409) then fail(err, token) end
  end
  fail("setIamPolicy on " .. res .. ": the policy kept changing (409 ABORTED five times)", "conflict")
end

function c.actions.remove_admin_role(ctx, user, params)
  params = params or {}
  local member = member_of(user)
  local by_res = {}
  for _, id in ipairs(ctx:stored_ids("privileges", "user_id", user.ext_id)) do
    local res, role, m = id:match("^([^|]+)|([^|]+)|(.+)$")
    if res and m == member and (not str(params.role) or params.role == role) and (not str(params.resource) or params.resource == res) then
      by_res[res] = by_res[res] or {}
      by_res[res][role] = true
    end
  end
  local removed = 0
  for res, roles in pairs(by_res) do removed = removed + remove_from(ctx, res, roles, member) end
  if removed == 0 then fail(("%s holds no %s binding"):format(member, str(params.role) or "role"), "not_found") end
  return { removed = removed }
end

return c
