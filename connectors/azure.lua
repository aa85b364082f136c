-- Microsoft Azure (Resource Manager: activity log and RBAC role assignments; the principals behind them
-- through Microsoft Graph).  References: shared/api/azure.md, shared/api/microsoft-graph.md.
local c = connector "azure"
c.title = "Microsoft Azure"
c.single_instance = true
c.settings = {
  { "tenant_id", required = true, example = "84bd8158-6d4d-4958-8b9f-9d6445542f95", help = "the Entra tenant id (GUID)" },
  { "client_id", required = true, help = "application (client) id of the app registration" },
  { "client_secret", secret = true, help = "a client secret of the app registration" },
  { "subscription_ids", example = "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2,089bd33f-d4ec-47fe-8ba5-0753aa5c5b33",
    help = "subscriptions to read, comma separated (default: every subscription the app can see)" },
}

-- ARM, Graph and login each have their own host; a `base_url` setting (a sandbox tenant) serves all three.
local ARM, GRAPH, LOGIN = "https://management.azure.com", "https://graph.microsoft.com", "https://login.microsoftonline.com"
c.base_url = ARM
local function token_url(settings)
  return provider_host(settings, LOGIN) .. "/" .. urlencode(settings.tenant_id) .. "/oauth2/v2.0/token"
end

c.hosts = function(s) return { provider_host(s, GRAPH) } end     -- login: the token endpoint

-- Client credentials (§1), one token per resource: Graph requests name the `graph` scheme.
c.auth = {
  default = "arm",
  arm = { type = "oauth2", grant = "client_credentials", token_url = token_url,
          scopes = { "https://management.azure.com/.default" } },
  graph = { type = "oauth2", grant = "client_credentials", token_url = token_url,
            scopes = { "https://graph.microsoft.com/.default" } },
}

c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = false, files = false, activities = { "admin" },
}

-- ARM: {"error":{"code","message",...}}; the activity log's flat {"code","message"}; token errors
-- {"error","error_description"} (§7).
function c.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return (resp.body or ""):sub(1, 200) end
  local e = type(d.error) == "table" and d.error or d
  if e.message or e.code then return ("%s (%s)"):format(tostring(e.message or "?"), tostring(e.code or "?")) end
  return tostring(d.error_description or d.error or (resp.body or ""):sub(1, 200))
end

function c.is_throttled(resp)
  return resp.status == 429 or ((resp.status == 503 or resp.status == 504) and resp.headers["retry-after"] ~= nil)
end


local ARM_PAGES = {
  items = "value",
  next = function(resp) return str(resp.data.nextLink) end,
}
local GRAPH_PAGES = {
  items = "value",
  next = function(resp) return resp.data["@odata.nextLink"] end,
  auth = "graph",
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

---------------------------------------------------------------------------------------------- role assignments
-- Built-in privileged roles (§2), by role definition GUID.
local PRIVILEGED = {
  ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"] = "Owner",
  ["b24988ac-6180-42a0-ab88-20f7382dd24c"] = "Contributor",
  ["18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"] = "User Access Administrator",
}
local function role_of(a)
  local p = type(a.properties) == "table" and a.properties or {}
  local guid = tostring(p.roleDefinitionId or ""):match("([%x%-]+)$")
  return guid and PRIVILEGED[guid:lower()], p
end

-- Each page of role assignments; an assignment without its principal is not understood (rejected: the
-- run then marks nothing deleted) and left out.
local function each_assignment(ctx, fn, entity)
  for _, sub in ipairs(subscriptions(ctx)) do
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
      fn(good, sub)
    end
  end
end

function c.streams.privileges(ctx)
  local admins = {}
  each_assignment(ctx, function(page)
    ctx:emit("privileges", page, function(a)
      local role, p = role_of(a)
      if not role then return nil end
      if (p.principalType or "User") == "User" then admins[p.principalId] = true end
      return { ext_id = a.id, user_id = p.principalId, role = role, scope = p.scope }
    end)
  end, "privileges")
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- principals
local USER_SELECT = "id,displayName,mail,userPrincipalName,accountEnabled,userType,createdDateTime"

local function user_row(u, admin)
  return {
    ext_id = u.id, email = str(u.mail) or str(u.userPrincipalName), display_name = str(u.displayName),
    status = u.accountEnabled == false and "disabled" or "active", is_admin = admin and 1 or 0,
    external = u.userType == "Guest" and 1 or 0, created_at = str(u.createdDateTime),
  }
end

-- One directory object through Graph, or nil when it no longer exists (an orphaned assignment).
local function graph_get(ctx, path, query)
  return ctx:try_get(graph(ctx, path), query, { auth = "graph" })
end

-- Users and groups holding any role assignment (Entra users themselves are the Office 365 connector's).
function c.streams.users(ctx)
  local users, groups, order = {}, {}, {}
  each_assignment(ctx, function(page)
    for _, a in ipairs(page) do
      local role, p = role_of(a)
      local kind = p.principalType or "User"
      local set = kind == "User" and users or kind == "Group" and groups or nil
      if set and p.principalId then
        if set[p.principalId] == nil then order[#order + 1] = { set, p.principalId } end
        set[p.principalId] = set[p.principalId] or role ~= nil
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
      if g then grows[#grows + 1] = { ext_id = g.id, name = g.displayName, email = str(g.mail), description = str(g.description), raw = g } end
    end
  end
  ctx:emit("users", urows)
  ctx:emit("groups", grows)
end

---------------------------------------------------------------------------------------------- activity log
local OVERLAP = 15 * 60             -- the activity log is eventually consistent: re-read the last minutes
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

-- Incremental per subscription by eventTimestamp: the cursor is a JSON object subscription -> newest
-- event time seen; each poll reads from that time minus the overlap (ext_id makes re-reads no-ops).
c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local state = cursor and json.decode(cursor) or nil
  if type(state) ~= "table" then state = {} end
  local now = sched.time()
  local days = tonumber(ctx.settings.initial_days) or c.initial_days
  local function z(t) return (iso(t):gsub("%.%d+Z$", "Z")) end
  for _, sub in ipairs(subscriptions(ctx)) do
    local last = parse_iso(state[sub] or "")
    local from = math.max(last and (last - OVERLAP) or (now - days * 86400), now - RETENTION)
    local newest = last or from
    -- the upper bound a little ahead: events of the current second are not left for the next poll
    local filter = ("eventTimestamp ge '%s' and eventTimestamp le '%s'"):format(z(from), z(now + 60))
    for page in ctx:pages("/subscriptions/" .. urlencode(sub) .. "/providers/microsoft.insights/eventtypes/management/values",
        { ["api-version"] = "2015-04-01", ["$filter"] = filter }, ARM_PAGES) do
      for _, e in ipairs(page) do
        local t = parse_iso(e.eventTimestamp)
        if t and t > newest then newest = t end
      end
      ctx:emit("activities", page, event_row)
    end
    state[sub] = iso(newest)
    ctx:checkpoint(json.encode(state), iso(newest))
    ctx:emit("activities", {})         -- commit this subscription's position now
  end
  ctx:checkpoint(json.encode(state))
end

c.stream_order = { users = 1, privileges = 2, activities = 3 }

function c.fetch.users(ctx, id)
  local u = graph_get(ctx, "/v1.0/users/" .. urlencode(id), { ["$select"] = USER_SELECT })
  if not u then return end
  local cur = ctx:stored("users", u.id)
  ctx:emit("users", { u }, function(x) return user_row(x, cur and cur.is_admin == 1) end)
end

---------------------------------------------------------------------------------------------- connection test
-- The app must hold Security Administrator or Global Administrator in Entra ID (built-in role template
-- ids below), besides Reader on the subscriptions.  Raises a clear "auth: ..." error when it does not
-- (cachost instance connect calls it); returns a one-line summary when it does.
local ADMIN_ROLES = {
  ["62e90394-69f5-4237-9190-012177145e10"] = "Global Administrator",
  ["194ae4cb-b126-40b2-bd5b-6091b380977d"] = "Security Administrator",
}

function c.test(ctx)
  local subs = subscriptions(ctx)
  local sp
  for page in ctx:pages(graph(ctx, "/v1.0/servicePrincipals"),
      { ["$filter"] = ("appId eq '%s'"):format(ctx.settings.client_id) }, GRAPH_PAGES) do
    sp = page[1]
    break
  end
  if not sp then
    fail(("the app %s has no service principal in tenant %s (admin consent missing?)")
      :format(ctx.settings.client_id, ctx.settings.tenant_id), "auth")
  end
  local held = {}
  for page in ctx:pages(graph(ctx, "/v1.0/roleManagement/directory/roleAssignments"),
      { ["$filter"] = ("principalId eq '%s'"):format(sp.id) }, GRAPH_PAGES) do
    for _, a in ipairs(page) do
      local name = ADMIN_ROLES[tostring(a.roleDefinitionId):lower()]
      if name and (a.directoryScopeId == nil or a.directoryScopeId == "/") then held[#held + 1] = name end
    end
  end
  if #held == 0 then
    fail(("the app %s holds neither the Security Administrator nor the Global Administrator role in "
      .. "Entra ID: assign one of them to it, then test again"):format(ctx.settings.client_id), "auth")
  end
  table.sort(held)
  return ("%s; %d subscription(s) readable"):format(table.concat(held, ", "), #subs)
end

return c
