-- sandbox/microsoft/graph/roles.lua — Entra directory roles: activated directoryRoles and their members,
-- roleManagement/directory role definitions and assignments.
local C = require "sandbox.microsoft.common"
local T, MS, jnull, A, DIR_ROLES = C.T, C.MS, C.jnull, C.A, C.DIR_ROLES
local O = require "sandbox.microsoft.graph.odata"
local odata_filter = O.odata_filter

-- activated directory roles: Global Administrator plus every role with an assignment
function MS:directory_roles()
  local by_t, out = {}, {}
  for _, r in ipairs(DIR_ROLES) do
    by_t[r[2]] = { def = r, id = T.uuid(self.seed, "dirrole", r[2]), members = {}, order = {}, active = r[1] == "Global Administrator" }
  end
  for _, a in ipairs(self.state.role_assignments) do
    local r = by_t[a.roleDefinitionId]
    if r then r.active = true; if not r.members[a.principalId] then r.members[a.principalId] = a; r.order[#r.order + 1] = a.principalId end end
  end
  for _, r in ipairs(DIR_ROLES) do if by_t[r[2]].active then out[#out + 1] = by_t[r[2]] end end
  return out
end

function MS:dirrole_json(r, typed)
  local o = { id = r.id, displayName = r.def[1], description = r.def[3], roleTemplateId = r.def[2], deletedDateTime = jnull() }
  if typed then o["@odata.type"] = "#microsoft.graph.directoryRole" end
  return o
end

function MS:h_directory_roles(req)
  local out = {}
  local pred
  if req.query["$filter"] then
    local err
    pred, err = odata_filter(req.query["$filter"])
    if not pred then return self:graph_err(400, "Request_UnsupportedQuery", "Invalid filter clause: " .. err, req) end
  end
  for _, r in ipairs(self:directory_roles()) do
    local o = self:dirrole_json(r)
    if not pred or pred(o) then out[#out + 1] = o end
  end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#directoryRoles", value = A(out) }
end

function MS:find_dirrole(id)
  for _, r in ipairs(self:directory_roles()) do
    if r.id == id or r.def[2] == id then return r end
  end
end

function MS:h_directory_role_members(req)
  local r = self:find_dirrole(req.params.rid)
  if not r then return self:graph_404(req, req.params.rid) end
  local out = {}
  for _, pid in ipairs(r.order) do
    local o = self:dirobj(pid)
    if o then out[#out + 1] = o end
  end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#directoryObjects", value = A(out) }
end

function MS:h_directory_role_member_delete(req)
  local r = self:find_dirrole(req.params.rid)
  if not r or not r.members[req.params.oid] then return self:graph_404(req, req.params.oid) end
  return self:remove_role_assignment(r.members[req.params.oid], req)
end

function MS:remove_role_assignment(a, req)
  for i, x in ipairs(self.state.role_assignments) do
    if x == a then table.remove(self.state.role_assignments, i) break end
  end
  local role = self:role_def(a.roleDefinitionId)
  local target = self.state.user_by_id[a.principalId]
  self:audit{ activity = "Remove member from role", category = "RoleManagement", operationType = "Unassign", target = target,
              role = role, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Remove member from role.", ObjectId = target and target.upn or a.principalId, RecordType = 8, target = target })
  return 204, ""
end

function MS:role_def(tid) for _, r in ipairs(DIR_ROLES) do if r[2] == tid then return r end end end

local RDEF_PROPS = { "id", "displayName", "description", "isBuiltIn", "isEnabled", "templateId", "version", "rolePermissions", "resourceScopes" }
function MS:rdef_full(r)
  return { id = r[2], displayName = r[1], description = r[3], isBuiltIn = true, isEnabled = true, templateId = r[2], version = "1",
           resourceScopes = A({ "/" }),
           rolePermissions = A({ { allowedResourceActions = A({ r[1] == "Global Administrator" and "microsoft.directory/*/allTasks" or "microsoft.directory/*/read" }), condition = jnull() } }) }
end
function MS:h_role_definitions(req)
  local list = {}
  for _, r in ipairs(DIR_ROLES) do list[#list + 1] = { id = r[2], r = r } end
  table.sort(list, function(a, b) return a.id < b.id end)
  return self:graph_collection(req, { list = list, full = function(x) return self:rdef_full(x.r) end, props = RDEF_PROPS,
    type = "unifiedRoleDefinition", context = "roleManagement/directory/roleDefinitions", top_default = 100, top_max = 999 })
end

local RA_PROPS = { "id", "principalId", "roleDefinitionId", "directoryScopeId", "appScopeId", "condition", "principal", "roleDefinition" }
function MS:h_role_assignments(req)
  local list = {}
  for _, a in ipairs(self.state.role_assignments) do list[#list + 1] = a end
  table.sort(list, function(a, b) return a.id < b.id end)
  local expand = req.query["$expand"] or ""
  return self:graph_collection(req, { list = list, props = RA_PROPS, type = "unifiedRoleAssignment",
    context = "roleManagement/directory/roleAssignments", top_default = 100, top_max = 999,
    full = function(a)
      local o = { id = a.id, principalId = a.principalId, roleDefinitionId = a.roleDefinitionId, directoryScopeId = a.directoryScopeId,
                  appScopeId = jnull(), condition = jnull() }
      if expand:find("principal", 1, true) then o.principal = (self:dirobj(a.principalId)) or jnull() end
      if expand:find("roleDefinition", 1, true) then local r = self:role_def(a.roleDefinitionId); o.roleDefinition = r and self:rdef_full(r) or jnull() end
      return o
    end })
end

function MS:h_role_assignment(req)
  for _, a in ipairs(self.state.role_assignments) do
    if a.id == req.params.aid then
      if req.method == "DELETE" then return self:remove_role_assignment(a, req) end
      return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity",
                    id = a.id, principalId = a.principalId, roleDefinitionId = a.roleDefinitionId, directoryScopeId = a.directoryScopeId,
                    appScopeId = jnull(), condition = jnull() }
    end
  end
  return self:graph_404(req, req.params.aid)
end

return true
