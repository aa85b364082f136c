-- sandbox/microsoft/graph/apps.lua — service principals, delegated permission grants
-- (oauth2PermissionGrants) and application permissions granted (appRoleAssignments).
local C = require "sandbox.microsoft.common"
local T, MS, jnull, A, nz, isoz = C.T, C.MS, C.jnull, C.A, C.nz, C.isoz
local body_json = C.body_json

-- Microsoft Graph's application permissions (its service principal's appRoles) that apps of the tenant
-- hold: {value, id, displayName}
local GRAPH_APP_ROLES = {
  { "Mail.Read", "810c84a8-4a9e-49e6-bf7d-12d183f40d01", "Read mail in all mailboxes" },
  { "Mail.ReadWrite", "e2a3a72e-5f79-4c64-b1b1-878b674786c9", "Read and write mail in all mailboxes" },
  { "Mail.Send", "b633e1c5-b582-4048-a93e-9f11b44c7e96", "Send mail as any user" },
  { "User.Read.All", "df021288-bdef-4463-88db-98f22de89214", "Read all users' full profiles" },
  { "Directory.Read.All", "7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Read directory data" },
  { "Files.ReadWrite.All", "75359482-378d-4052-8f01-80520e7db3cd", "Read and write files in all site collections" },
}

-- Application permissions granted to the third-party apps and to the connector's own app (their own
-- random stream: the rest of the tenant does not move).
function MS:generate_app_roles(third)
  local r, st = T.rng(self.seed, "approles"), self.state
  st.app_role_assignments = {}
  local function grant(sp, role)
    st.app_role_assignments[#st.app_role_assignments + 1] = { id = T.b62(43, self.seed, "approleassign", #st.app_role_assignments + 1),
      appRoleId = role[2], principalId = sp.id, resourceId = self.sp_graph.id, created = sp.created + r:int(0, 30) * 86400000 }
  end
  for _, sp in ipairs(third) do
    local first = r:int(0, #GRAPH_APP_ROLES)
    for k = 1, r:int(0, 2) do
      if first > 0 then grant(sp, GRAPH_APP_ROLES[(first + k - 2) % #GRAPH_APP_ROLES + 1]) end
    end
  end
  grant(self.sp_client, GRAPH_APP_ROLES[4])
  grant(self.sp_client, GRAPH_APP_ROLES[6])
  table.sort(st.app_role_assignments, function(a, b) return a.id < b.id end)
end

local SP_PROPS = { "id", "appId", "displayName", "accountEnabled", "servicePrincipalType", "appOwnerOrganizationId",
  "appDisplayName", "publisherName", "signInAudience", "servicePrincipalNames", "tags", "appRoles", "oauth2PermissionScopes",
  "passwordCredentials", "keyCredentials", "replyUrls", "homepage", "verifiedPublisher", "deletedDateTime", "createdDateTime" }
function MS:sp_full(sp)
  local verified = sp.publisherName ~= jnull() and sp.publisherName ~= nil
  return { id = sp.id, appId = sp.appId, displayName = sp.displayName, appDisplayName = sp.displayName,
           accountEnabled = sp.accountEnabled, servicePrincipalType = "Application",
           appOwnerOrganizationId = sp.appOwnerOrganizationId, publisherName = nz(sp.publisherName),
           signInAudience = sp.appOwnerOrganizationId == self.tenant_id and "AzureADMyOrg" or "AzureADMultipleOrgs",
           servicePrincipalNames = A({ sp.appId }), tags = A({ "WindowsAzureActiveDirectoryIntegratedApp" }),
           appRoles = A(sp == self.sp_graph and self:graph_app_roles() or {}), oauth2PermissionScopes = A(), passwordCredentials = A(), keyCredentials = A(), replyUrls = A(),
           homepage = jnull(), deletedDateTime = jnull(), createdDateTime = isoz(sp.created),
           verifiedPublisher = { displayName = verified and sp.publisherName or jnull(),
                                 verifiedPublisherId = verified and tostring(T.hash(self.seed, "mpn", sp.id) >> 44) or jnull(),
                                 addedDateTime = verified and isoz(sp.created) or jnull() } }
end

function MS:graph_app_roles()
  local out = {}
  for _, role in ipairs(GRAPH_APP_ROLES) do
    out[#out + 1] = { id = role[2], value = role[1], displayName = role[3], description = role[3] .. " without a signed-in user.",
                      allowedMemberTypes = A({ "Application" }), isEnabled = true, origin = "Application" }
  end
  return out
end

local GRANT_PROPS = { "id", "clientId", "consentType", "principalId", "resourceId", "scope" }
function MS:grant_full(g)
  return { id = g.id, clientId = g.clientId, consentType = g.consentType, principalId = nz(g.principalId),
           resourceId = g.resourceId, scope = g.scope }
end


function MS:h_sps(req)
  return self:graph_collection(req, { list = self.state.sps, full = function(sp) return self:sp_full(sp) end,
    props = SP_PROPS, type = "servicePrincipal", context = "servicePrincipals", top_default = 100, top_max = 999 })
end

function MS:h_sp(req)
  local sp = self.state.sp_by_id[req.params.spid]
  if not sp then return self:graph_404(req, req.params.spid) end
  if req.method == "PATCH" then
    local b = body_json(req)
    if not b or type(b.accountEnabled) ~= "boolean" then return self:graph_err(400, "Request_BadRequest", "Invalid request body.", req) end
    sp.accountEnabled = b.accountEnabled
    self:audit{ activity = "Update service principal", category = "ApplicationManagement", operationType = "Update", sp = sp, req = req,
                modified = { { displayName = "AccountEnabled", oldValue = "[" .. tostring(not b.accountEnabled) .. "]", newValue = "[" .. tostring(b.accountEnabled) .. "]" } } }
    return 204, ""
  end
  local o = self:sp_full(sp)
  o["@odata.context"] = self.base_url .. "/v1.0/$metadata#servicePrincipals/$entity"
  return 200, o
end

function MS:h_grants(req)
  local where
  if req.params.id then
    local u = self:find_user(req.params.id)
    if not u then return self:graph_404(req, req.params.id) end
    where = function(g) return g.principalId == u.id end
  elseif req.params.spid then
    local sp = self.state.sp_by_id[req.params.spid]
    if not sp then return self:graph_404(req, req.params.spid) end
    where = function(g) return g.clientId == sp.id end
  end
  return self:graph_collection(req, { list = self.state.grants, full = function(g) return self:grant_full(g) end, where = where,
    props = GRANT_PROPS, type = "oAuth2PermissionGrant", context = "oauth2PermissionGrants", top_default = 100, top_max = 999 })
end

function MS:h_grant(req)
  local st = self.state
  for i, g in ipairs(st.grants) do
    if g.id == req.params.grid then
      local sp = st.sp_by_id[g.clientId]
      if req.method == "DELETE" then
        table.remove(st.grants, i)
        self:audit{ activity = "Remove delegated permission grant", category = "ApplicationManagement", operationType = "Unassign", sp = sp, req = req,
                    modified = { { displayName = "DelegatedPermissionGrant.Scope", oldValue = '"' .. g.scope .. '"', newValue = '""' } } }
        self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Remove delegated permission grant.", ObjectId = sp and sp.displayName or g.clientId, RecordType = 8 })
        return 204, ""
      elseif req.method == "PATCH" then
        local b = body_json(req)
        if not b or type(b.scope) ~= "string" then return self:graph_err(400, "Request_BadRequest", "Invalid request body.", req) end
        local old = g.scope
        g.scope = b.scope
        self:audit{ activity = "Update delegated permission grant", category = "ApplicationManagement", operationType = "Update", sp = sp, req = req,
                    modified = { { displayName = "DelegatedPermissionGrant.Scope", oldValue = '"' .. old .. '"', newValue = '"' .. b.scope .. '"' } } }
        return 204, ""
      end
      local o = self:grant_full(g)
      o["@odata.context"] = self.base_url .. "/v1.0/$metadata#oauth2PermissionGrants/$entity"
      return 200, o
    end
  end
  return self:graph_404(req, req.params.grid)
end

-- appRoleAssignments of a service principal (the permissions it holds) and appRoleAssignedTo (the
-- permissions of its API others hold); DELETE on either revokes one.
local ARA_PROPS = { "id", "appRoleId", "createdDateTime", "deletedDateTime", "principalDisplayName", "principalId", "principalType",
  "resourceDisplayName", "resourceId" }
function MS:app_role_json(a)
  local st = self.state
  local p, res = st.sp_by_id[a.principalId], st.sp_by_id[a.resourceId]
  return { id = a.id, appRoleId = a.appRoleId, createdDateTime = isoz(a.created), deletedDateTime = jnull(),
           principalDisplayName = p and p.displayName or jnull(), principalId = a.principalId, principalType = "ServicePrincipal",
           resourceDisplayName = res and res.displayName or jnull(), resourceId = a.resourceId }
end

function MS:h_app_role_assignments(req)
  local st = self.state
  local sp = st.sp_by_id[req.params.spid]
  if not sp then return self:graph_404(req, req.params.spid) end
  local to = req.path:find("/appRoleAssignedTo", 1, true) ~= nil
  local function mine(a) if to then return a.resourceId == sp.id end return a.principalId == sp.id end
  if req.params.aid then
    for i, a in ipairs(st.app_role_assignments) do
      if a.id == req.params.aid and mine(a) then
        if req.method ~= "DELETE" then return 200, self:app_role_json(a) end
        table.remove(st.app_role_assignments, i)
        self:audit{ activity = "Remove app role assignment from service principal", category = "ApplicationManagement",
                    operationType = "Unassign", sp = st.sp_by_id[a.principalId], req = req }
        return 204, ""
      end
    end
    return self:graph_404(req, req.params.aid)
  end
  return self:graph_collection(req, { list = st.app_role_assignments, full = function(a) return self:app_role_json(a) end, where = mine,
    props = ARA_PROPS, type = "appRoleAssignment", context = "servicePrincipals('" .. sp.id .. "')/" .. (to and "appRoleAssignedTo" or "appRoleAssignments"),
    top_default = 100, top_max = 999 })
end

return true
