-- sandbox/microsoft/arm.lua — Azure Resource Manager: subscriptions, the activity log (lazy, newest first)
-- and RBAC (role assignments and definitions).
local C = require "sandbox.microsoft.common"
local T, MS, jnull, A, ARM_ROLES, ARM_ROLE_BY_NAME = C.T, C.MS, C.jnull, C.A, C.ARM_ROLES, C.ARM_ROLE_BY_NAME
local ARM_ROLE_BY_ID, sub, below, iso7, odata_qs, spread_ms = C.ARM_ROLE_BY_ID, C.sub, C.below, C.iso7, C.odata_qs, C.spread_ms
local enc_skip, dec_skip, body_json = C.enc_skip, C.dec_skip, C.body_json

local SUB_NAMES = { "Contoso Production", "Contoso Development", "Contoso Sandbox", "Contoso Shared Services" }
local RGS = { "rg-web", "rg-data", "rg-network" }
local ARM_OPS = {   -- operationName, provider, resource type, method, subStatus
  { "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute", "virtualMachines", "PUT", "Created", 201 },
  { "Microsoft.Storage/storageAccounts/listKeys/action", "Microsoft.Storage", "storageAccounts", "POST", "OK", 200 },
  { "Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization", "roleAssignments", "PUT", "Created", 201 },
  { "Microsoft.Network/networkSecurityGroups/securityRules/write", "Microsoft.Network", "networkSecurityGroups/securityRules", "PUT", "Created", 201 },
  { "Microsoft.Resources/deployments/write", "Microsoft.Resources", "deployments", "PUT", "Created", 201 },
  { "Microsoft.KeyVault/vaults/delete", "Microsoft.KeyVault", "vaults", "DELETE", "OK", 200 },
  { "Microsoft.Compute/virtualMachines/start/action", "Microsoft.Compute", "virtualMachines", "POST", "Accepted", 202 },
  { "Microsoft.Sql/servers/firewallRules/write", "Microsoft.Sql", "servers/firewallRules", "PUT", "Created", 201 },
}

function MS:generate_arm(r)
  local seed, st = self.seed, self.state
  local now = self.t0_ms
  for k = 1, self.nsubs do
    local sub = { id = T.uuid(seed, "armsub", k), index = k, displayName = SUB_NAMES[k] or ("Contoso Subscription " .. k) }
    st.arm_subs[k] = sub
    st.arm_sub_by_id[sub.id] = sub
    st.arm_events[k] = {}
  end
  st.arm_custom_roles = {}
  local ai = 0
  local function assign(sub, scope, role, principal, ptype)
    ai = ai + 1
    local a = { name = T.uuid(seed, "armassign", ai), scope = scope, sub = sub.id, role = role, principalId = principal,
                principalType = ptype, created = now - r:int(5, 600) * 86400000, createdBy = self.admin.id }
    st.arm_assignments[#st.arm_assignments + 1] = a
    return a
  end
  for _, sub in ipairs(st.arm_subs) do
    local sscope = "/subscriptions/" .. sub.id
    assign(sub, sscope, "Owner", self.admin.id, "User")
    for _, u in ipairs(self.gen_users) do
      if u.index > 1 and u.userType == "Member" and r:chance(0.08) then
        local x = r:float()
        local role = x < 0.6 and "Contributor" or (x < 0.8 and "User Access Administrator" or "Owner")
        local scope = r:chance(0.3) and (sscope .. "/resourceGroups/" .. r:pick(RGS)) or sscope
        assign(sub, scope, role, u.id, "User")
      end
    end
    if st.groups[1] then assign(sub, sscope, "Reader", st.groups[1].id, "Group") end
    for _, rn in ipairs(self.arm_client_roles) do assign(sub, sscope, rn, self.sp_client.id, "ServicePrincipal") end
  end
  -- custom roles (CustomRole definitions): one that may assign roles (privileged), one that only reads, and
  -- one assignable only in a resource group (so not listed at the subscription's scope)
  local scopes = {}
  for _, s in ipairs(st.arm_subs) do scopes[#scopes + 1] = "/subscriptions/" .. s.id end
  local first = st.arm_subs[1]
  local rg = "/subscriptions/" .. first.id .. "/resourceGroups/rg-data"
  local function custom(key, name, description, actions, not_actions, assignable)
    local def = { name, T.uuid(seed, "armrole", key), description, actions, not_actions, custom = true, scopes = assignable,
                  created = now - 200 * 86400000 }
    st.arm_custom_roles[#st.arm_custom_roles + 1] = def
    return def
  end
  custom("delegator", "Contoso Access Delegator", "Grants access to resources to others.",
    { "Microsoft.Authorization/*/read", "Microsoft.Authorization/*/write", "Microsoft.Resources/subscriptions/resourceGroups/read" }, {}, scopes)
  custom("auditor", "Contoso Auditor", "Reads resources and the activity log.", { "*/read", "Microsoft.Insights/eventtypes/*" }, {}, scopes)
  custom("dataaccess", "Contoso Data Access Administrator", "Manages role assignments in rg-data.",
    { "Microsoft.Authorization/roleAssignments/*", "Microsoft.Resources/subscriptions/resourceGroups/read" }, {}, { rg })
  -- everything but writes, deletes and actions: reads only
  custom("readerplus", "Contoso Reader Plus", "Reads everything, changes nothing.", { "*" }, { "*/write", "*/delete", "*/action" }, scopes)
  -- who holds the newer kinds of role: users and service principals (not the connector's own app)
  local x = T.rng(seed, "armextra")
  local members, apps = {}, {}
  for _, u in ipairs(self.gen_users) do if u.index > 1 and u.userType == "Member" then members[#members + 1] = u end end
  for _, sp in ipairs(st.sps) do
    if sp ~= self.sp_client and sp ~= self.sp_graph and sp ~= self.sp_mgmt and sp ~= self.sp_arm then apps[#apps + 1] = sp end
  end
  for _, s in ipairs(st.arm_subs) do
    local sscope = "/subscriptions/" .. s.id
    if #members > 0 then
      assign(s, sscope, "Role Based Access Control Administrator", x:pick(members).id, "User")
      assign(s, sscope, "Contoso Access Delegator", x:pick(members).id, "User")
      assign(s, sscope, "Contoso Auditor", x:pick(members).id, "User")
    end
    if #apps > 0 then
      assign(s, sscope, "Role Based Access Control Administrator", x:pick(apps).id, "ServicePrincipal")
      assign(s, sscope, "Contoso Access Delegator", x:pick(apps).id, "ServicePrincipal")
    end
  end
  if #members > 0 then
    assign(first, rg, "Contoso Data Access Administrator", x:pick(members).id, "User")
    assign(first, "/subscriptions/" .. first.id, "Contoso Reader Plus", x:pick(members).id, "User")
  end
  table.sort(st.arm_assignments, function(a, b) return a.name < b.name end)
end

-- a role definition by name or GUID: the built-in roles, then the tenant's custom roles
function MS:arm_role(name, guid)
  local def = name and ARM_ROLE_BY_NAME[name] or guid and ARM_ROLE_BY_ID[guid:lower()]
  if def then return def end
  for _, c in ipairs(self.state.arm_custom_roles) do
    if (name and c[1] == name) or (guid and c[2] == guid:lower()) then return c end
  end
end

-- a custom role is assignable at scope when one of its assignable scopes is the scope or above it
local function assignable_at(def, scope)
  if not def.custom then return true end
  scope = scope:lower()
  for _, s in ipairs(def.scopes) do
    s = s:lower()
    if scope == s or scope:sub(1, #s + 1) == s .. "/" then return true end
  end
  return false
end

function MS:arm_role_def_id(sub_id, role)
  local def = self:arm_role(role)
  return (sub_id and ("/subscriptions/" .. sub_id) or "") .. "/providers/Microsoft.Authorization/roleDefinitions/" .. def[2]
end

function MS:arm_assignment_json(a)
  return { id = a.scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. a.name, name = a.name,
           type = "Microsoft.Authorization/roleAssignments",
           properties = { roleDefinitionId = self:arm_role_def_id(a.sub, a.role), principalId = a.principalId,
                          principalType = a.principalType, scope = a.scope, description = jnull(), condition = jnull(),
                          conditionVersion = jnull(), createdOn = iso7(a.created), updatedOn = iso7(a.updated or a.created),
                          createdBy = a.createdBy, updatedBy = a.createdBy, delegatedManagedIdentityResourceId = jnull() } }
end

function MS:arm_role_def_json(sub_id, def)
  return { id = self:arm_role_def_id(sub_id, def[1]), name = def[2], type = "Microsoft.Authorization/roleDefinitions",
           properties = { roleName = def[1], type = def.custom and "CustomRole" or "BuiltInRole", description = def[3],
                          assignableScopes = A(T.deep(def.scopes or { "/" })),
                          permissions = A({ { actions = A(T.deep(def[4])), notActions = A(T.deep(def[5])), dataActions = A(), notDataActions = A() } }),
                          createdOn = def.created and iso7(def.created) or "2015-02-02T21:55:09.8806423Z",
                          updatedOn = def.created and iso7(def.created) or "2021-11-11T20:13:47.8628684Z",
                          createdBy = def.custom and self.admin.id or jnull(), updatedBy = def.custom and self.admin.id or jnull() } }
end

-- the caller's roles at a subscription (assignments to the calling principal or its groups)
function MS:arm_caller_roles(sub_id)
  local roles = {}
  for _, a in ipairs(self.state.arm_assignments) do
    if a.sub == sub_id and a.principalId == self.sp_client.id then roles[a.role] = true end
  end
  return roles
end

function MS:arm_authz(req, sub_id, action, write)
  local sub = self.state.arm_sub_by_id[sub_id]
  if not sub then
    return self:arm_err(404, "SubscriptionNotFound", "The subscription '" .. tostring(sub_id) .. "' could not be found.")
  end
  local roles = self:arm_caller_roles(sub_id)
  local ok = write and (roles.Owner or roles["User Access Administrator"] or roles["Role Based Access Control Administrator"])
    or (not write and next(roles) ~= nil)
  if not ok then
    return self:arm_err(403, "AuthorizationFailed", "The client '" .. self.client_id .. "' with object id '" .. self.sp_client.id
      .. "' does not have authorization to perform action '" .. action .. "' over scope '/subscriptions/" .. sub_id
      .. "' or the scope is invalid. If access was recently granted, please refresh your credentials.")
  end
  return nil, sub
end

function MS:h_arm_subscriptions(req)
  local out = {}
  for _, sub in ipairs(self.state.arm_subs) do
    if next(self:arm_caller_roles(sub.id)) then
      out[#out + 1] = { id = "/subscriptions/" .. sub.id, authorizationSource = "RoleBased", managedByTenants = A(),
        subscriptionId = sub.id, tenantId = self.tenant_id, displayName = sub.displayName, state = "Enabled",
        subscriptionPolicies = { locationPlacementId = "Public_2014-09-01", quotaId = "EnterpriseAgreement_2014-09-01", spendingLimit = "Off" } }
    end
  end
  return 200, { value = A(out), count = { type = "Total", value = #out } }
end

function MS:h_arm_subscription(req)
  local err, sub = self:arm_authz(req, req.params.sid, "Microsoft.Resources/subscriptions/read")
  if err then return err, sub end
  return 200, { id = "/subscriptions/" .. sub.id, subscriptionId = sub.id, tenantId = self.tenant_id, displayName = sub.displayName,
                state = "Enabled", authorizationSource = "RoleBased", managedByTenants = A(),
                subscriptionPolicies = { locationPlacementId = "Public_2014-09-01", quotaId = "EnterpriseAgreement_2014-09-01", spendingLimit = "Off" } }
end

function MS:arm_event(sub, e)
  local op = e.op
  local rid = "/subscriptions/" .. sub.id .. "/resourceGroups/" .. e.rg .. "/providers/" .. op[2] .. "/" .. op[3] .. "/" .. e.resname
  local ticks = 621355968000000000 + e.ms * 10000
  local caller = e.caller
  return {
    authorization = { action = op[1], scope = rid },
    caller = caller.upn or caller.appId,
    channels = "Operation",
    claims = { aud = "https://management.core.windows.net/", iss = "https://sts.windows.net/" .. self.tenant_id .. "/",
               iat = tostring(e.ms // 1000 - 300), nbf = tostring(e.ms // 1000 - 300), exp = tostring(e.ms // 1000 + 3300), ver = "1.0",
               ["http://schemas.microsoft.com/identity/claims/tenantid"] = self.tenant_id,
               ["http://schemas.microsoft.com/identity/claims/objectidentifier"] = caller.id,
               ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = caller.upn,
               ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = caller.upn or caller.displayName,
               name = caller.displayName, appid = caller.appId or "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", appidacr = "2",
               ["http://schemas.microsoft.com/identity/claims/scope"] = "user_impersonation" },
    correlationId = e.corr, description = "", eventDataId = e.id,
    eventName = { value = "EndRequest", localizedValue = "End request" },
    category = { value = "Administrative", localizedValue = "Administrative" },
    httpRequest = { clientRequestId = T.uuid(self.seed, "armcrid", e.id), clientIpAddress = e.ip, method = op[4] },
    id = rid .. "/events/" .. e.id .. "/ticks/" .. ticks,
    level = e.failed and "Error" or "Informational",
    resourceGroupName = e.rg,
    resourceProviderName = { value = op[2], localizedValue = op[2] },
    resourceId = rid,
    resourceType = { value = op[2] .. "/" .. op[3], localizedValue = op[2] .. "/" .. op[3] },
    operationId = e.corr,
    operationName = { value = op[1], localizedValue = op[1] },
    properties = { statusCode = e.failed and "Forbidden" or op[5], serviceRequestId = jnull(), eventCategory = "Administrative",
                   entity = rid, message = op[1], hierarchy = self.tenant_id .. "/" .. sub.id },
    status = { value = e.failed and "Failed" or "Succeeded", localizedValue = e.failed and "Failed" or "Succeeded" },
    subStatus = { value = e.failed and "Forbidden" or op[5],
                  localizedValue = e.failed and "Forbidden (HTTP Status Code: 403)" or (op[5] .. " (HTTP Status Code: " .. op[6] .. ")") },
    eventTimestamp = iso7(e.ms), submissionTimestamp = iso7(e.submitted),
    subscriptionId = sub.id, tenantId = self.tenant_id,
  }
end

function MS:gen_arm_event(k, i)
  local seed = self.seed
  local sub = self.state.arm_subs[k]
  local h = T.hash(seed, "armev", k, i)
  local op = ARM_OPS[T.below(h, #ARM_OPS) + 1]
  local u = self.gen_users[T.below(T.hash(h, 1), math.min(6, #self.gen_users)) + 1]
  local ms, id = spread_ms(self, "arm" .. k, self.arm_events, i), T.uuid(seed, "armevid", k, i)
  return self:arm_event(sub, { op = op, rg = RGS[T.below(T.hash(h, 2), #RGS) + 1], resname = op[3]:match("([^/]+)$") .. "-" .. (T.hash(h, 3) >> 54),
    ms = ms, caller = u, id = id, corr = T.uuid(seed, "armcorr", k, i), ip = u.ip, failed = T.unit(T.hash(h, 4)) < 0.04,
    -- readable 12 to 28 seconds later, the seeded history all by the tenant's creation
    submitted = math.min(ms + 12000 + (T.hash(seed, "sub", id) >> 50), self.t0_ms) })
end

-- An event that happened at spec.ms (default now) and becomes readable spec.delay seconds later (default 0:
-- at once).  The activity log shows an event only from its submissionTimestamp on, whatever its
-- eventTimestamp: Azure documents "usually within 3 to 20 minutes".
function MS:add_arm_event(sub, spec)
  local k = sub.index
  local seq = self:seq()
  local ms = spec.ms or self:now_ms()
  local caller = spec.caller or { id = self.sp_client.id, appId = self.client_id, displayName = self.client_name }
  local ev = self:arm_event(sub, { op = spec.op, rg = spec.rg or "rg-web", resname = spec.resname or "x", ms = ms, caller = caller,
    id = T.uuid(self.seed, "sarmev", seq), corr = T.uuid(self.seed, "sarmcorr", seq), ip = spec.ip or "127.0.0.1",
    submitted = ms + math.floor((spec.delay or 0) * 1000) })
  if spec.resource_id then
    ev.resourceId = spec.resource_id; ev.authorization.scope = spec.resource_id
    ev.id = spec.resource_id .. "/events/" .. ev.eventDataId .. "/ticks/" .. (621355968000000000 + ms * 10000)
  end
  T.insert_sorted(self.state.arm_events[k], { ms = ms, seq = seq, ev = ev })
  return ev
end

local EVENT_SELECT = { authorization = 1, claims = 1, correlationId = 1, description = 1, eventDataId = 1, eventName = 1, eventTimestamp = 1,
  httpRequest = 1, level = 1, operationId = 1, operationName = 1, properties = 1, resourceGroupName = 1, resourceProviderName = 1,
  resourceId = 1, status = 1, submissionTimestamp = 1, subStatus = 1, subscriptionId = 1, caller = 1, category = 1, id = 1,
  resourceType = 1, tenantId = 1, channels = 1 }

function MS:h_arm_activity(req)
  local err, sub = self:arm_authz(req, req.params.sid, "Microsoft.Insights/eventtypes/values/read")
  if err then return err, sub end
  local q = req.query
  local f = q["$filter"] or ""
  local ge = f:match("eventTimestamp%s+ge%s+'([^']+)'")
  local le = f:match("eventTimestamp%s+le%s+'([^']+)'")
  local lower, upper = ge and T.parse_iso(ge), le and T.parse_iso(le)
  if not lower or not upper then
    return self:arm_err(400, "BadRequest", "The $filter query parameter value is invalid: it must contain 'eventTimestamp ge' and 'eventTimestamp le' with ISO 8601 values.")
  end
  if upper < lower then
    return self:arm_err(400, "BadRequest", "The $filter query parameter value is invalid: eventTimestamp le is before eventTimestamp ge.")
  end
  lower = math.max(lower, self:now_ms() - 90 * 86400000)     -- retention: 90 days
  local extra = {}
  for _, k in ipairs({ "resourceGroupName", "resourceUri", "resourceProvider", "correlationId" }) do
    local v = f:match(k .. "%s+eq%s+'([^']*)'")
    if v then extra[k] = v:lower() end
  end
  local sel
  if q["$select"] and q["$select"] ~= "" then
    sel = {}
    for p in q["$select"]:gmatch("[^,%s]+") do
      if not EVENT_SELECT[p] then return self:arm_err(400, "BadRequest", "The $select query parameter value '" .. p .. "' is invalid.") end
      sel[#sel + 1] = p
    end
  end
  local K = { upper + 1, 0, 0 }
  if q["$skiptoken"] then
    local a, b, c = (dec_skip(q["$skiptoken"]) or ""):match("^(%-?%d+)_(%d+)_(%-?%d+)$")
    if not a then return self:arm_err(400, "BadRequest", "The $skiptoken query parameter value is invalid.") end
    K = { math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c)) }
  end
  local k = sub.index
  local size = self.opts.arm_page_size or 200
  local now = self:now_ms()
  local out, last, more = {}, nil, false
  local n = self.arm_events
  T.merged_scan(n, function(i) return spread_ms(self, "arm" .. k, n, i) end, function(i) return self:gen_arm_event(k, i) end,
    self.state.arm_events[k], K, -1, function(ms, key, get)
      if ms < lower then return true end
      if #out >= size then more = true; return true end
      local ev = get()
      local keep = T.parse_iso(ev.submissionTimestamp) <= now     -- not readable before its submission
      if extra.resourceGroupName and (ev.resourceGroupName or ""):lower() ~= extra.resourceGroupName then keep = false end
      if extra.resourceUri and ev.resourceId:lower() ~= extra.resourceUri then keep = false end
      if extra.resourceProvider and ev.resourceProviderName.value:lower() ~= extra.resourceProvider then keep = false end
      if extra.correlationId and ev.correlationId:lower() ~= extra.correlationId then keep = false end
      if keep then
        if sel then local o = {}; for _, p in ipairs(sel) do o[p] = ev[p] end; ev = o end
        out[#out + 1] = ev
      end
      last = key
      return false
    end)
  local body = { value = A(out) }
  if more and last then
    local path = select(2, self:api_of(req.path))
    local params = { { "api-version", q["api-version"] }, { "$filter", f } }
    if q["$select"] then params[#params + 1] = { "$select", q["$select"] } end
    params[#params + 1] = { "$skiptoken", enc_skip(string.format("%d_%d_%d", last[1], last[2], last[3])) }
    body.nextLink = self.base_url .. path .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:h_arm_categories(req)
  local out = {}
  for _, c in ipairs({ "Administrative", "Security", "ServiceHealth", "Alert", "Recommendation", "Policy", "Autoscale", "ResourceHealth" }) do
    out[#out + 1] = { value = c, localizedValue = c }
  end
  return 200, { value = A(out) }
end

-- scope of a request: /subscriptions/{sid}[/resourceGroups/{rg}]
local function arm_scope(req)
  local s = "/subscriptions/" .. req.params.sid
  if req.params.rg then s = s .. "/resourceGroups/" .. req.params.rg end
  return s
end

function MS:h_arm_assignments(req)
  local err, sub = self:arm_authz(req, req.params.sid, "Microsoft.Authorization/roleAssignments/read")
  if err then return err, sub end
  local scope = arm_scope(req):lower()
  local f = req.query["$filter"] or ""
  local at_scope = f:find("atScope%(%)") ~= nil
  local pid = f:match("principalId%s+eq%s+'([^']+)'")
  local assigned = f:match("assignedTo%('([^']+)'%)")
  if f ~= "" and not at_scope and not pid and not assigned then
    return self:arm_err(400, "InvalidFilter", "The filter '" .. f .. "' is not supported. Supported filters are 'atScope()', 'principalId eq {id}' and 'assignedTo('{id}')'.")
  end
  local groups_of = {}
  if assigned then
    for _, g in ipairs(self.state.groups) do if g.member_set[assigned] then groups_of[g.id] = true end end
  end
  local list = {}
  for _, a in ipairs(self.state.arm_assignments) do
    local s = a.scope:lower()
    local above_or_at = scope:sub(1, #s) == s and (#s == #scope or scope:sub(#s + 1, #s + 1) == "/")
    local below = s:sub(1, #scope) == scope and s:sub(#scope + 1, #scope + 1) == "/"
    local keep = a.sub == sub.id and (above_or_at or (not at_scope and below))
    if keep and pid and a.principalId ~= pid then keep = false end
    if keep and assigned and a.principalId ~= assigned and not groups_of[a.principalId] then keep = false end
    if keep then list[#list + 1] = a end
  end
  local size = self.opts.arm_page_size or 200
  local start = 1
  local tok = req.query["$skiptoken"] or req.query["$skipToken"]
  if tok then
    local after = dec_skip(tok)
    if not after then return self:arm_err(400, "BadRequest", "The $skipToken query parameter value is invalid.") end
    start = #list + 1
    for i, a in ipairs(list) do if a.name > after then start = i; break end end
  end
  local out = {}
  for i = start, math.min(#list, start + size - 1) do out[#out + 1] = self:arm_assignment_json(list[i]) end
  local body = { value = A(out) }
  if start + size - 1 < #list then
    local path = select(2, self:api_of(req.path))
    local params = { { "api-version", req.query["api-version"] } }
    if f ~= "" then params[#params + 1] = { "$filter", f } end
    params[#params + 1] = { "$skiptoken", enc_skip(list[start + size - 1].name) }
    body.nextLink = self.base_url .. path .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:h_arm_assignment(req)
  local write = req.method ~= "GET"
  local action = "Microsoft.Authorization/roleAssignments/" .. (req.method == "GET" and "read" or (req.method == "DELETE" and "delete" or "write"))
  local err, sub = self:arm_authz(req, req.params.sid, action, write)
  if err then return err, sub end
  local scope = arm_scope(req)
  local st = self.state
  local idx, a
  for i, x in ipairs(st.arm_assignments) do
    if x.name == req.params.name and x.scope:lower() == scope:lower() then idx, a = i, x; break end
  end
  if req.method == "GET" then
    if not a then return self:arm_err(404, "RoleAssignmentNotFound", "The role assignment '" .. req.params.name .. "' is not found.") end
    return 200, self:arm_assignment_json(a)
  elseif req.method == "DELETE" then
    if not a then return 204, "" end
    table.remove(st.arm_assignments, idx)
    local body = self:arm_assignment_json(a)
    self:add_arm_event(sub, { op = { "Microsoft.Authorization/roleAssignments/delete", "Microsoft.Authorization", "roleAssignments", "DELETE", "OK", 200 },
                              resource_id = body.id, rg = req.params.rg })
    return 200, body
  end
  -- PUT
  local b = body_json(req)
  local p = b and b.properties
  if type(p) ~= "table" or type(p.roleDefinitionId) ~= "string" or type(p.principalId) ~= "string" then
    return self:arm_err(400, "InvalidRoleAssignmentRequest", "The request body must contain properties.roleDefinitionId and properties.principalId.")
  end
  local guid = p.roleDefinitionId:match("([%x%-]+)$")
  local def = guid and self:arm_role(nil, guid)
  if not def then return self:arm_err(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID '" .. tostring(guid) .. "' does not exist.") end
  if not assignable_at(def, scope) then
    return self:arm_err(400, "InvalidRoleDefinitionScope", "The role definition '" .. def[2] .. "' is not assignable at scope '" .. scope .. "'.")
  end
  for _, x in ipairs(st.arm_assignments) do
    if x.scope:lower() == scope:lower() and x.principalId == p.principalId and x.role == def[1] and x.name ~= req.params.name then
      return self:arm_err(409, "RoleAssignmentExists", "The role assignment already exists.")
    end
  end
  local created = not a
  if not a then
    a = { name = req.params.name, scope = scope, sub = sub.id, created = self:now_ms(), createdBy = self.sp_client.id }
    st.arm_assignments[#st.arm_assignments + 1] = a
    table.sort(st.arm_assignments, function(x, y) return x.name < y.name end)
  end
  a.role, a.principalId, a.principalType, a.updated = def[1], p.principalId, p.principalType or "User", self:now_ms()
  local body = self:arm_assignment_json(a)
  self:add_arm_event(sub, { op = ARM_OPS[3], resource_id = body.id, rg = req.params.rg })
  return created and 201 or 200, body
end

function MS:h_arm_role_defs(req)
  local sid = req.params.sid
  if sid then
    local err, sub = self:arm_authz(req, sid, "Microsoft.Authorization/roleDefinitions/read")
    if err then return err, sub end
  end
  local f = req.query["$filter"] or ""
  local name = f:match("roleName%s+eq%s+'([^']+)'")
  local typ = f:match("type%s+eq%s+'([^']+)'")
  local below = f:find("atScopeAndBelow%(%)") ~= nil
  -- at a scope: the built-in roles and the custom roles assignable there; atScopeAndBelow() adds those
  -- assignable only below it (a resource group's)
  local scope = sid and ("/subscriptions/" .. sid):lower() or "/"
  local out = {}
  local function consider(def)
    local here = assignable_at(def, scope)
    if not here and below then
      for _, s in ipairs(def.scopes) do if s:lower():sub(1, #scope + 1) == scope .. "/" then here = true end end
    end
    local kind = def.custom and "CustomRole" or "BuiltInRole"
    if here and (not name or name:lower() == def[1]:lower()) and (not typ or typ == kind) then out[#out + 1] = self:arm_role_def_json(sid, def) end
  end
  for _, def in ipairs(ARM_ROLES) do consider(def) end
  for _, def in ipairs(self.state.arm_custom_roles) do consider(def) end
  return 200, { value = A(out) }
end

function MS:h_arm_role_def(req)
  local sid = req.params.sid
  if sid then
    local err, sub = self:arm_authz(req, sid, "Microsoft.Authorization/roleDefinitions/read")
    if err then return err, sub end
  end
  local def = self:arm_role(nil, req.params.rdid)
  if not def then return self:arm_err(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID '" .. req.params.rdid .. "' does not exist.") end
  return 200, self:arm_role_def_json(sid, def)
end

function MS:arm_routes()
  local R = {
    { "GET", "/subscriptions", MS.h_arm_subscriptions, {} },
    { "GET", "/subscriptions/:sid", MS.h_arm_subscription, {} },
    { "GET", "/providers/microsoft.insights/eventcategories", MS.h_arm_categories, {} },
    { "GET", "/providers/Microsoft.Insights/eventcategories", MS.h_arm_categories, {} },
    { "GET", "/providers/Microsoft.Authorization/roleDefinitions/:rdid", MS.h_arm_role_def, {} },
  }
  for _, ns in ipairs({ "microsoft.insights", "Microsoft.Insights" }) do
    R[#R + 1] = { "GET", "/subscriptions/:sid/providers/" .. ns .. "/eventtypes/management/values", MS.h_arm_activity, {} }
  end
  for _, base in ipairs({ "/subscriptions/:sid", "/subscriptions/:sid/resourceGroups/:rg" }) do
    local p = base .. "/providers/Microsoft.Authorization"
    R[#R + 1] = { "GET", p .. "/roleAssignments", MS.h_arm_assignments, {} }
    R[#R + 1] = { "GET", p .. "/roleAssignments/:name", MS.h_arm_assignment, {} }
    R[#R + 1] = { "DELETE", p .. "/roleAssignments/:name", MS.h_arm_assignment, {} }
    R[#R + 1] = { "PUT", p .. "/roleAssignments/:name", MS.h_arm_assignment, {} }
  end
  R[#R + 1] = { "GET", "/subscriptions/:sid/providers/Microsoft.Authorization/roleDefinitions", MS.h_arm_role_defs, {} }
  R[#R + 1] = { "GET", "/subscriptions/:sid/providers/Microsoft.Authorization/roleDefinitions/:rdid", MS.h_arm_role_def, {} }
  return R
end

function MS:arm_count(what, arg)
  local st = self.state
  if what == "arm_subscriptions" then return #st.arm_subs
  elseif what == "arm_role_assignments" then
    local n = 0
    for _, a in ipairs(st.arm_assignments) do if not arg or a.sub == arg or a.role == arg then n = n + 1 end end
    return n
  elseif what == "arm_events" then
    local n = 0
    -- readable now: the seeded history, and the added events past their submission
    local now = self:now_ms()
    for k, s in ipairs(st.arm_subs) do
      if not arg or s.id == arg then
        n = n + self.arm_events
        for _, x in ipairs(st.arm_events[k]) do if T.parse_iso(x.ev.submissionTimestamp) <= now then n = n + 1 end end
      end
    end
    return n
  end
end


return true
