-- Microsoft Azure (Resource Manager: activity log and RBAC role assignments; the principals behind them
-- through Microsoft Graph).  References: shared/api/azure.md, shared/api/microsoft-graph.md.
local c = connector "azure"
local microsoft = provider("microsoft")
c.title = "Microsoft Azure"
c.single_instance = true
c.settings = microsoft.settings {
  { "subscription_ids", example = "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2,089bd33f-d4ec-47fe-8ba5-0753aa5c5b33",
    help = "subscriptions to read, comma separated (default: every subscription the app can see)" },
  { "activity_overlap_minutes", type = "integer", example = "60",
    help = "how late an activity log event may become readable and still be collected (default 60)" },
}

-- At instance add / edit: subscription ids are GUIDs; the overlap is whole minutes within the log's 90 days.
local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
function c.validate(s)
  for id in tostring(s.subscription_ids or ""):gmatch("[^,%s]+") do
    if not id:match(GUID) then return nil, ("setting 'subscription_ids': '%s' is not a subscription id (a GUID)"):format(id) end
  end
  local m = s.activity_overlap_minutes
  if m ~= nil and (math.type(m) ~= "integer" or m < 1 or m > 90 * 1440) then
    return nil, "setting 'activity_overlap_minutes' must be from 1 to 129600 minutes (the activity log keeps 90 days)"
  end
  return true
end

-- ARM, Graph and login each have their own host; a `base_url` setting (a sandbox tenant) serves all three.
local ARM, GRAPH = microsoft.ARM, microsoft.GRAPH
c.base_url = ARM

c.hosts = function(s) return { provider_host(s, GRAPH) } end     -- login: the token endpoint

-- Client credentials (§1), one token per resource: Graph requests name the `graph` scheme.
c.auth = {
  default = "arm",
  arm = microsoft.client_credentials(ARM),
  graph = microsoft.client_credentials(GRAPH),
}

c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = false, files = false, activities = { "admin" },
}
c.not_offered = {
  app_grants = "the tenant's app permissions are Entra ID's: the Office 365 connector reads them (service principals' grants)",
  files = "Azure Resource Manager manages resources, not their data: storage content is outside its API",
}

-- What each capability needs, least privilege: no Entra directory role (c.test checks exactly these).
local READER = "Azure RBAC: Reader on each subscription"
c.needs = {
  users = { READER, "Microsoft Graph application permission: User.Read.All" },
  groups = { READER, "Microsoft Graph application permission: GroupMember.Read.All" },
  privileges = { READER },
  activities = { READER },
}

-- ARM: {"error":{"code","message",...}}; the activity log's flat {"code","message"}; token errors
-- {"error","error_description"} (§7): the provider module reads them all.
c.error_message = microsoft.error_message
c.is_throttled = microsoft.is_throttled

local ARM_PAGES = {
  items = "value",
  next = function(resp) return str(resp.data.nextLink) end,
}
local function graph(ctx, path) return provider_host(ctx.settings, GRAPH) .. path end

-- The subscriptions to read: the setting, or every subscription the app can see.
local function subscriptions(ctx)
  local list = {}
  local v = ctx.settings.subscription_ids
  if type(v) == "string" and v ~= "" then
    for id in v:gmatch("[^,%s]+") do list[#list + 1] = id end
    return list
  end
  for page in ctx:pages("/subscriptions", { ["api-version"] = "2020-01-01" }, ARM_PAGES) do
    for _, s in ipairs(page) do
      if s.state == nil or s.state == "Enabled" or s.state == "Warned" or s.state == "PastDue" then
        list[#list + 1] = s.subscriptionId
      end
    end
  end
  return list
end

---------------------------------------------------------------------------------------------- role definitions
-- Which roles are privileged is read from their definitions (§2 RoleDefinition.permissions), not from a
-- list of names: a role is privileged when it can change who has access (it grants
-- Microsoft.Authorization/roleAssignments/write: Owner, User Access Administrator, Role Based Access
-- Control Administrator, a custom role with `Microsoft.Authorization/*/write`) or when it writes every
-- resource (Contributor's `*`, which Microsoft ranks among the privileged administrator roles too).
local ASSIGN = "microsoft.authorization/roleassignments/write"
-- A write on a resource type that no pattern names except `*` and `*/write`: granted, the role writes
-- every resource (minus its notActions: Contributor keeps this, a "* but */write" role does not).
local ANY_WRITE = "any.provider/anyresource/write"

-- An Azure action pattern: `*` stands for any run of characters; names are case-insensitive.
local function action_matches(pattern, action)
  local p = tostring(pattern):lower():gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*")
  return action:match("^" .. p .. "$") ~= nil
end

local function grants(perm, action)
  local allowed = false
  for _, a in ipairs(type(perm.actions) == "table" and perm.actions or {}) do
    allowed = allowed or action_matches(a, action)
  end
  if not allowed then return false end
  for _, a in ipairs(type(perm.notActions) == "table" and perm.notActions or {}) do
    if action_matches(a, action) then return false end
  end
  return true
end

local function privileged(def)
  for _, perm in ipairs(type(def.permissions) == "table" and def.permissions or {}) do
    if type(perm) == "table" then
      if grants(perm, ASSIGN) or grants(perm, ANY_WRITE) then return true end
    end
  end
  return false
end

local function guid_of(id) return (tostring(id or ""):match("([%x%-]+)$") or ""):lower() end

-- GET of one ARM or Graph object, or nil when it no longer exists (an orphaned assignment).
local function get_or_nil(ctx, url, query, auth) return (ctx:try_get(url, query, { auth = auth })) end

-- The role definitions a run meets, by GUID -> {name=, privileged=}: each subscription's listing (built-in
-- roles and the custom roles assignable there), then any other definition read by its id.
local function role_book(ctx)
  local book, listed = {}, {}
  local function add(d)
    local p = type(d) == "table" and type(d.properties) == "table" and d.properties
    if p and str(d.name) then book[guid_of(d.name)] = { name = str(p.roleName) or d.name, privileged = privileged(p) } end
  end
  local R = {}
  function R.list(sub)
    if listed[sub] then return end
    listed[sub] = true
    for page in ctx:pages("/subscriptions/" .. urlencode(sub) .. "/providers/Microsoft.Authorization/roleDefinitions",
        { ["api-version"] = "2022-04-01" }, ARM_PAGES) do
      for _, d in ipairs(page) do add(d) end
    end
  end
  -- the definition an assignment names, or nil when it does not exist
  function R.of(a)
    local id = a.properties.roleDefinitionId
    local guid = guid_of(id)
    if book[guid] == nil and str(id) then
      add(get_or_nil(ctx, id, { ["api-version"] = "2022-04-01" }))
      book[guid] = book[guid] or false
    end
    return book[guid] or nil
  end
  return R
end

---------------------------------------------------------------------------------------------- role assignments
-- Each page of role assignments with the role book; an assignment without its principal is not
-- understood (rejected: the run then marks nothing deleted) and left out.
local function each_assignment(ctx, fn, entity)
  local roles = role_book(ctx)
  for _, sub in ipairs(subscriptions(ctx)) do
    roles.list(sub)
    for page in ctx:pages("/subscriptions/" .. urlencode(sub) .. "/providers/Microsoft.Authorization/roleAssignments",
        { ["api-version"] = "2022-04-01" }, ARM_PAGES) do
      local good = {}
      for _, a in ipairs(page) do
        if type(a) == "table" and str(a.id) and type(a.properties) == "table" and str(a.properties.principalId) then
          good[#good + 1] = a
        else
          ctx:reject(entity, "a role assignment without id or properties.principalId")
        end
      end
      fn(good, roles)
    end
  end
end

-- Privileged assignments of every principal: users, groups and service principals (applications and
-- managed identities) alike; users.is_admin follows those held by users.
function c.streams.privileges(ctx)
  local admins = {}
  each_assignment(ctx, function(page, roles)
    ctx:emit("privileges", page, function(a)
      local p, def = a.properties, roles.of(a)
      if not (def and def.privileged) then return nil end
      if (p.principalType or "User") == "User" then admins[p.principalId] = true end
      return { ext_id = a.id, user_id = p.principalId, role = def.name, scope = p.scope }
    end)
  end, "privileges")
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- principals
local USER_SELECT = microsoft.USER_SELECT
local function user_row(u, admin) return microsoft.user_row(u, admin == true) end

local function graph_get(ctx, path, query) return get_or_nil(ctx, graph(ctx, path), query, "graph") end

-- Users and groups holding any role assignment (Entra users themselves are the Office 365 connector's).
function c.streams.users(ctx)
  local users, groups, order = {}, {}, {}
  each_assignment(ctx, function(page, roles)
    for _, a in ipairs(page) do
      local p, def = a.properties, roles.of(a)
      local kind = p.principalType or "User"
      local set = kind == "User" and users or kind == "Group" and groups or nil
      if set and p.principalId then
        if set[p.principalId] == nil then order[#order + 1] = { set, p.principalId } end
        set[p.principalId] = set[p.principalId] or (def ~= nil and def.privileged)
      end
    end
  end, "users")
  local urows, grows = {}, {}
  for _, o in ipairs(order) do
    local set, id = o[1], o[2]
    if set == users then
      local u = graph_get(ctx, "/v1.0/users/" .. urlencode(id), { ["$select"] = USER_SELECT })
      if u then urows[#urows + 1] = user_row(u, users[id]); urows[#urows].raw = u end
    else
      local g = graph_get(ctx, "/v1.0/groups/" .. urlencode(id))
      if g then grows[#grows + 1] = microsoft.group_row(g); grows[#grows].raw = g end
    end
  end
  ctx:emit("users", urows)
  ctx:emit("groups", grows)
end

---------------------------------------------------------------------------------------------- activity log
-- The activity log is filtered on eventTimestamp (when the operation happened), but an event can be read
-- only from its submissionTimestamp on ("when the event became available for querying"), and Microsoft
-- documents entries as "usually available for analysis and alerting within 3 to 20 minutes of the event
-- occurring" (learn.microsoft.com, Azure Monitor activity log).  So each poll reads again from LATE
-- before where the previous one stopped: three times the documented figure, for the "usually".  An event
-- arriving later than that (an Azure incident) is missed; `activity_overlap_minutes` widens the window.
-- eventDataId keys the rows: what is read again is stored once.
local LATE = 60 * 60
local RETENTION = 90 * 86400 - 3600

local OUTCOME = { succeeded = "success", failed = "failure", canceled = "failure" }

local function event_row(e)
  local claims = type(e.claims) == "table" and e.claims or {}
  local op = type(e.operationName) == "table" and e.operationName or {}
  local status = type(e.status) == "table" and str(e.status.value) or nil
  local http = type(e.httpRequest) == "table" and e.httpRequest or {}
  return {
    ext_id = assert(str(e.eventDataId) or str(e.id), "event without id"),
    time = iso(assert(parse_iso(e.eventTimestamp), "event without eventTimestamp")), kind = "admin",
    action = str(op.value), actor = str(e.caller),
    actor_id = str(claims["http://schemas.microsoft.com/identity/claims/objectidentifier"]),
    target = str(e.resourceId), target_id = str(e.resourceId), ip = str(http.clientIpAddress),
    outcome = status and (OUTCOME[status:lower()] or status:lower()) or nil,
    app = "Azure",
  }
end

-- Incremental per subscription: the cursor is a JSON object subscription -> the time its log was read up
-- to; each poll reads eventTimestamp from that time minus the overlap up to now.  The watermark (complete
-- up to) is now minus the overlap: later events may still arrive.
c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local ok, state = pcall(json.decode, cursor or "")
  if not ok or type(state) ~= "table" then state = {} end
  local now = sched.time()
  local days = tonumber(ctx.settings.initial_days) or c.initial_days
  local late = (tonumber(ctx.settings.activity_overlap_minutes) or LATE / 60) * 60
  local function z(t) return (iso(t):gsub("%.%d+Z$", "Z")) end
  for _, sub in ipairs(subscriptions(ctx)) do
    local last = type(state[sub]) == "string" and parse_iso(state[sub]) or nil
    local from = math.max(last and (last - late) or (now - days * 86400), now - RETENTION)
    -- the upper bound a little ahead: the filter counts whole seconds, and a clock behind Azure's would
    -- leave the newest events to the next poll
    local filter = ("eventTimestamp ge '%s' and eventTimestamp le '%s'"):format(z(from), z(now + 60))
    for page in ctx:pages("/subscriptions/" .. urlencode(sub) .. "/providers/microsoft.insights/eventtypes/management/values",
        { ["api-version"] = "2015-04-01", ["$filter"] = filter }, ARM_PAGES) do
      ctx:emit("activities", page, event_row)
    end
    state[sub] = iso(now)
    ctx:checkpoint(json.encode(state), iso(now - late))
    ctx:emit("activities", {})         -- commit this subscription's position now
  end
  ctx:checkpoint(json.encode(state), iso(now - late))
end

c.stream_order = { users = 1, privileges = 2, activities = 3 }

function c.fetch.users(ctx, id)
  local u = graph_get(ctx, "/v1.0/users/" .. urlencode(id), { ["$select"] = USER_SELECT })
  if not u then return end
  local cur = ctx:stored("users", u.id)
  ctx:emit("users", { u }, function(x) return user_row(x, cur and cur.is_admin == 1) end)
end

---------------------------------------------------------------------------------------------- connection test
-- The test asks for exactly what the streams use (c.needs), by making their calls once: Reader on each
-- subscription (role assignments and definitions, the activity log), and Graph's application permissions
-- to read the users and groups that hold roles.  No directory role is needed.  What is missing fails as
-- "permission: <what>" (health: "permission missing: <what>"); a dead credential fails as auth.

-- One call of a stream's kind: true, or false when the provider answers 403.
local function allowed(ctx, url, query, auth)
  local resp, err, token = ctx:try("GET", url, { query = query, auth = auth, expect_json = true })
  if resp then return true end
  if token == "permission" then return false end
  fail(err, token)
end

function c.test(ctx)
  local missing = {}
  local subs = subscriptions(ctx)     -- the listing shows only the subscriptions the app holds a role on
  if #subs == 0 then missing[#missing + 1] = "Reader on a subscription (the app sees none)" end
  local since = (iso(sched.time() - 60):gsub("%.%d+Z$", "Z"))
  for _, sub in ipairs(subs) do
    local base = "/subscriptions/" .. urlencode(sub) .. "/providers/"
    local ok = allowed(ctx, base .. "Microsoft.Authorization/roleAssignments", { ["api-version"] = "2022-04-01", ["$filter"] = "atScope()" })
      and allowed(ctx, base .. "Microsoft.Authorization/roleDefinitions", { ["api-version"] = "2022-04-01", ["$filter"] = "roleName eq 'Reader'" })
      and allowed(ctx, base .. "microsoft.insights/eventtypes/management/values", { ["api-version"] = "2015-04-01",
        ["$filter"] = ("eventTimestamp ge '%s' and eventTimestamp le '%s'"):format(since, since) })
    if not ok then missing[#missing + 1] = "Reader on subscription " .. sub end
  end
  if not allowed(ctx, graph(ctx, "/v1.0/users"), { ["$top"] = "1", ["$select"] = "id" }, "graph") then
    missing[#missing + 1] = "User.Read.All (Microsoft Graph application permission)"
  end
  if not allowed(ctx, graph(ctx, "/v1.0/groups"), { ["$top"] = "1", ["$select"] = "id" }, "graph") then
    missing[#missing + 1] = "GroupMember.Read.All (Microsoft Graph application permission)"
  end
  if #missing > 0 then fail(table.concat(missing, "; "), "permission") end
  return ("%d subscription(s) readable (role assignments, role definitions, activity log); Microsoft Graph users "
    .. "and groups readable"):format(#subs)
end

return c
