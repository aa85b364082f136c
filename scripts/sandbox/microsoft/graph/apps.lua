-- sandbox/microsoft/graph/apps.lua — service principals and delegated permission grants
-- (oauth2PermissionGrants).
local C = require "sandbox.microsoft.common"
local T, MS, jnull, A, nz, isoz = C.T, C.MS, C.jnull, C.A, C.nz, C.isoz
local body_json = C.body_json

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
           appRoles = A(), oauth2PermissionScopes = A(), passwordCredentials = A(), keyCredentials = A(), replyUrls = A(),
           homepage = jnull(), deletedDateTime = jnull(), createdDateTime = isoz(sp.created),
           verifiedPublisher = { displayName = verified and sp.publisherName or jnull(),
                                 verifiedPublisherId = verified and tostring(T.hash(self.seed, "mpn", sp.id) >> 44) or jnull(),
                                 addedDateTime = verified and isoz(sp.created) or jnull() } }
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

return true
