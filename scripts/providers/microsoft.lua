-- providers/microsoft.lua — what the Microsoft connectors (office365, azure) share: the identity
-- platform (client credentials against login.microsoftonline.com, one token per resource), Microsoft
-- Graph's paging, error bodies and licence-gated answers, and users as Graph describes them.
-- References: shared/api/microsoft-graph.md, shared/api/azure.md §1.  Loaded with provider("microsoft")
-- in a connector's confined env.
local M = {}

M.LOGIN, M.GRAPH = "https://login.microsoftonline.com", "https://graph.microsoft.com"
M.MANAGE, M.ARM = "https://manage.office.com", "https://management.azure.com"

---------------------------------------------------------------------------------------------- identity platform
-- The tenant's v2.0 token endpoint (a sandbox tenant's base_url serves login too).
function M.token_url(settings)
  return provider_host(settings, M.LOGIN) .. "/" .. urlencode(settings.tenant_id) .. "/oauth2/v2.0/token"
end

-- An app-only auth scheme for one resource ("https://graph.microsoft.com", ...): client credentials
-- with the resource's `/.default` scope (the application permissions an admin consented to).  extra:
-- more fields of the scheme (admin_consent, ...).
function M.client_credentials(resource, extra)
  local s = { type = "oauth2", grant = "client_credentials", token_url = M.token_url, scopes = { resource .. "/.default" } }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

-- Where an administrator grants the app's permissions for the whole tenant.
function M.admin_consent(settings)
  return provider_host(settings, M.LOGIN) .. "/" .. urlencode(settings.tenant_id) .. "/adminconsent"
end

-- A connector's settings: what every Microsoft app registration needs, then the connector's own.
local SETTINGS = {
  { "tenant_id", required = true, example = "84bd8158-6d4d-4958-8b9f-9d6445542f95", help = "the Entra tenant id (GUID)" },
  { "client_id", required = true, help = "application (client) id of the app registration" },
  { "client_secret", secret = true, help = "a client secret of the app registration" },
}
function M.settings(own)
  local list = {}
  for _, s in ipairs(SETTINGS) do list[#list + 1] = s end
  for _, s in ipairs(own) do list[#list + 1] = s end
  return list
end

---------------------------------------------------------------------------------------------- answers
-- Graph, ARM and the Management API: {"error":{"code","message"}}; the activity log's flat
-- {"code","message"}; the token endpoint's {"error","error_description"}.
function M.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return (resp.body or ""):sub(1, 200) end
  local e = type(d.error) == "table" and d.error or d
  if e.message or e.code then return ("%s (%s)"):format(tostring(e.message or "?"), tostring(e.code or "?")) end
  return tostring(d.error_description or d.error or (resp.body or ""):sub(1, 200))
end

-- Answers of a tenant whose licences do not offer the endpoint: sign-in logs (and signInActivity) need
-- Microsoft Entra ID P1 or P2, and Graph answers a tenant without them 403 with this code.
local LICENCE = { Authentication_RequestFromNonPremiumTenantOrB2CTenant = "Microsoft Entra ID P1 or P2" }
function M.unavailable(resp)
  local e = resp.status == 403 and type(resp.data) == "table" and resp.data.error
  return type(e) == "table" and LICENCE[e.code] or nil
end

-- 429 always; 503 (and 504) when they carry Retry-After.
function M.is_throttled(resp)
  return resp.status == 429 or ((resp.status == 503 or resp.status == 504) and resp.headers["retry-after"] ~= nil)
end

---------------------------------------------------------------------------------------------- Graph
-- Graph collections page through @odata.nextLink.  auth: the scheme of Graph's token where Graph is
-- not the connector's default resource.
function M.graph_pages(auth)
  return { items = "value", next = function(resp) return resp.data["@odata.nextLink"] end, auth = auth }
end

-- "#microsoft.graph.user" -> "user"
function M.odata_type(o)
  return (type(o["@odata.type"]) == "string" and o["@odata.type"] or ""):match("([^%.]+)$")
end

M.USER_SELECT = "id,displayName,mail,userPrincipalName,accountEnabled,userType,createdDateTime"

-- A Graph user -> a users row.  is_admin: true/false, or nil to leave the stored value.
function M.user_row(u, is_admin)
  local admin
  if is_admin ~= nil then admin = is_admin and 1 or 0 end
  return {
    ext_id = u.id, email = str(u.mail) or str(u.userPrincipalName), display_name = str(u.displayName),
    status = u.accountEnabled == false and "disabled" or "active", is_admin = admin,
    external = u.userType == "Guest" and 1 or 0, created_at = str(u.createdDateTime),
  }
end

-- A Graph group -> a groups row.
function M.group_row(g)
  return { ext_id = g.id, name = g.displayName, email = str(g.mail), description = str(g.description) }
end

return M
