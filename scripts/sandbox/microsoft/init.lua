-- sandbox/microsoft/init.lua — a Microsoft cloud tenant emulator: the identity platform token endpoint,
-- Microsoft Graph v1.0 (directory, audit logs, sign-ins, OAuth grants, OneDrive/SharePoint files,
-- change notifications), the Office 365 Management Activity API and Azure Resource Manager
-- (activity log, RBAC), following /work/shared/api/{microsoft-graph,office365-management,azure}.md.
-- This file builds the tenant, checks tokens and rate budgets, and mounts the routes; each API surface
-- lives in its own file (identity, graph/*, management, arm) and adds its methods to the class in common.lua.
--
--   local ms = require "sandbox.microsoft"
--   local t = ms.new{seed=1, users=50, groups=8, domain="contoso.com", signins=2000, audits=500,
--                    mgmt_records_per_day=2000, days=7, files_per_user=5, subscriptions=2,
--                    client_id=..., client_secret=...}
--   t:mount(srv[, prefix])      -- every host on one server: login, graph (/v1.0), manage (/api/v1.0), ARM
--
-- t.urls = {login=, graph=, mgmt=, arm=} after mount (all on srv.url); t.tenant_id, t.client_id, t.admin.
-- Test helpers: t:count(what[, arg]) ground truth ("users", "users_enabled", "users_disabled", "guests",
-- "groups", "members"[, group id], "directory_roles", "role_assignments", "service_principals", "grants",
-- "app_role_assignments",
-- "audits", "signins", "noninteractive_signins", "drives", "sites", "items"/"files"/"folders"/"permissions"/"shared_items"/
-- "deleted_items"[, drive id], "graph_subscriptions", "mgmt_records"[, content type], "mgmt_available"
-- [, content type], "mgmt_stored", "arm_subscriptions", "arm_role_assignments"[, sub id or role name],
-- "arm_events"[, sub id]); t:add_signin{user=, errorCode=, city=, countryOrRegion=, latitude=, longitude=,
-- ip=, clientAppUsed=, app=, ms=}; t:add_record{workload=, operation=, record_type=, user=, ms=, <Field>=};
-- t:expire_delta() (drive and user delta tokens go stale: 410); t:expire_blob(contentId) (AF20051);
-- t:expire_tokens(); t:fault{...}, t:set_rate_limit(n, window), t:advance(s) (also notifies Management
-- webhooks of the blobs that became available: t:mgmt_pump()), t:flush() from the base.
--
-- Tokens are opaque strings bound to one resource (Graph, Management, ARM).  Large logs (sign-ins,
-- directory audits, Management Activity records, ARM activity log) are generated lazily: record i
-- of a stream is a pure function of (seed, stream, i) with timestamps monotonic in i; only records
-- caused by state changes or added by tests are stored.
local T = require "sandbox.tenant"
local C = require "sandbox.microsoft.common"
local MS, A, isoz, json = C.MS, C.A, C.isoz, C.json

-- the pieces add their methods to MS
require "sandbox.microsoft.identity"
local O = require "sandbox.microsoft.graph.odata"
require "sandbox.microsoft.graph.directory"
require "sandbox.microsoft.graph.roles"
require "sandbox.microsoft.graph.apps"
require "sandbox.microsoft.graph.logs"
require "sandbox.microsoft.graph.drives"
require "sandbox.microsoft.graph.subscriptions"
local mgmt = require "sandbox.microsoft.management"
require "sandbox.microsoft.arm"

local M = {}
M.RESOURCES, M.DIR_ROLES, M.ARM_ROLES = C.RESOURCES, C.DIR_ROLES, C.ARM_ROLES
M.iso7, M.iso_mgmt = C.iso7, C.iso_mgmt
M.odata_filter, M.CONTENT_TYPES = O.odata_filter, mgmt.CONTENT_TYPES


---------------------------------------------------------------------------------------------------
-- Construction
---------------------------------------------------------------------------------------------------
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, MS)
  T.Base.init(self, opts)
  local seed = self.seed
  self.tenant_id = opts.tenant_id or T.uuid(seed, "tenant")
  self.domain = opts.domain or "contoso.com"
  local short = (self.domain:match("^([^%.]+)") or "contoso"):lower()
  self.initial_domain = short .. ".onmicrosoft.com"
  self.sp_host = "https://" .. short .. ".sharepoint.com"            -- SharePoint/OneDrive web URLs (not served)
  self.my_host = "https://" .. short .. "-my.sharepoint.com"
  self.nusers = opts.users or 50
  self.ngroups = opts.groups or 8
  self.days = opts.days or 7
  self.nsignins = opts.signins or 2000
  self.nsignins_ni = opts.noninteractive_signins or self.nsignins // 2
  -- Microsoft Entra ID P1 or P2 in the tenant (false: the free edition, whose sign-in logs Graph refuses)
  self.entra_premium = opts.entra_premium ~= false
  self.naudits = opts.audits or 500
  self.files_per_user = opts.files_per_user or 5
  self.nsubs = opts.subscriptions or 2
  self.client_id = opts.client_id or T.uuid(seed, "client")
  self.client_secret = opts.client_secret or "sandbox~secret.value"
  self.client_cert = opts.client_certificate           -- PEM public key/cert for client_assertion
  self.client_name = opts.client_name or "cachost connector"
  self.client_roles = opts.client_roles or { "Security Administrator" }
  self.arm_client_roles = opts.arm_client_roles or { "Reader", "User Access Administrator" }
  local per_day = opts.mgmt_records_per_day or 2000
  self.nmgmt = opts.mgmt_records or math.floor(per_day * self.days)
  self.arm_events = opts.arm_events or math.floor((opts.arm_events_per_day or 40) * self.days)
  self.blob_ms = math.floor((opts.blob_minutes or 15) * 60000)
  self.dup_share = opts.duplicate_share or 0.01
  self.tokens, self.codes, self.refresh = {}, {}, {}
  self.nseq = 0
  self.delta_epoch = 1
  self:generate()
  return self
end

function MS:seq() self.nseq = self.nseq + 1; return self.nseq end

-- stable per-tenant identifiers, computed once
function MS:const(name, k)
  local c = self._const
  if not c then c = {}; self._const = c end
  local key = name .. ":" .. k
  local v = c[key]
  if not v then v = T.uuid(self.seed, name, k); c[key] = v end
  return v
end


---------------------------------------------------------------------------------------------------
-- Which API a path belongs to (routes share one server)
---------------------------------------------------------------------------------------------------
function MS:api_of(path)
  if self.prefix and self.prefix ~= "" and path:sub(1, #self.prefix) == self.prefix then path = path:sub(#self.prefix + 1) end
  if path:find("^/v1%.0/") or path:find("^/beta/") then return "graph", path end
  if path:find("^/api/v1") then return "mgmt", path end
  if path:find("^/subscriptions") or path:find("^/providers") then return "arm", path end
  return "login", path
end

---------------------------------------------------------------------------------------------------
-- Error bodies
---------------------------------------------------------------------------------------------------
function MS:request_id() return T.uuid(self.seed, "request", self:seq()) end

function MS:graph_err(status, code, message, req)
  local inner = { date = isoz(self:now_ms()), ["request-id"] = self:request_id() }
  local crid = req and req.headers and req.headers["client-request-id"]
  inner["client-request-id"] = crid or inner["request-id"]
  return status, { error = { code = code, message = message, innerError = inner } }, { ["Content-Type"] = "application/json" }
end
function MS:mgmt_err(status, code, message)
  return status, { error = { code = code, message = message } }, { ["Content-Type"] = "application/json; charset=utf-8" }
end
function MS:arm_err(status, code, message)
  return status, { error = { code = code, message = message } }, { ["Content-Type"] = "application/json; charset=utf-8" }
end
-- identity platform (token endpoint) errors
function MS:aad_err(status, err, aadsts, desc)
  local trace, corr = self:request_id(), self:request_id()
  local d = string.format("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, corr,
                          (T.iso_s(self:wall_s()):gsub("T", " "):gsub("Z", "Z")))
  return status, { error = err, error_description = d, error_codes = A({ aadsts }), timestamp = (T.iso_s(self:wall_s()):gsub("T", " ")),
                   trace_id = trace, correlation_id = corr, error_uri = "https://login.microsoftonline.com/error?code=" .. aadsts },
         { ["Content-Type"] = "application/json; charset=utf-8", ["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache" }
end

---------------------------------------------------------------------------------------------------
-- Auth, rate budget, headers
---------------------------------------------------------------------------------------------------
local ARM_AUDIENCES = "'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'"

function MS:precheck(req, ropts)
  local api, path = self:api_of(req.path)
  req._api = api
  if api == "login" then return nil end
  local limit, remaining, reset, exceeded = self:rate_take(api)
  req._rl = { limit, remaining, reset }
  if exceeded then return self:throttled(api, req, math.max(1, reset - self:wall_s())) end
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local tok = auth:match("^[Bb]earer%s+(%S+)$")
  local rec = tok and self.tokens[tok]
  if api == "graph" then
    if not tok then return self:graph_err(401, "InvalidAuthenticationToken", "Access token is empty.", req) end
    if not rec then return self:graph_err(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).", req) end
    if rec.res ~= "graph" then return self:graph_err(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", req) end
    if rec.exp <= self:wall_s() then return self:graph_err(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", req) end
  elseif api == "mgmt" then
    if not rec then return self:mgmt_err(401, "AF10001", "Authorization has been denied for this request.") end
    if rec.res ~= "mgmt" then
      return self:mgmt_err(401, "AF10001", "The permission set () sent in the request does not include the expected permission.")
    end
    if rec.exp <= self:wall_s() then return self:mgmt_err(401, "AF10001", "Authorization has been denied for this request.") end
  else
    if not tok then return self:arm_err(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.") end
    if not rec then return self:arm_err(401, "InvalidAuthenticationToken", "The access token is invalid.") end
    if rec.res ~= "arm" then
      return self:arm_err(401, "InvalidAuthenticationToken", "The access token has been obtained for wrong audience or resource '"
        .. C.RESOURCES[rec.res] .. "'. It should exactly match with one of the allowed audiences " .. ARM_AUDIENCES .. ".")
    end
    if rec.exp <= self:wall_s() then
      return self:arm_err(401, "ExpiredAuthenticationToken", "The access token expiry UTC time '" .. T.iso_s(rec.exp)
        .. "' is earlier than current UTC time '" .. T.iso_s(self:wall_s()) .. "'.")
    end
    if not req.query["api-version"] or req.query["api-version"] == "" then
      return self:arm_err(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
    end
  end
  req.token = rec
  return nil
end

function MS:throttled(api, req, retry_after)
  local st, body, hdr
  if api == "graph" then
    st, body, hdr = self:graph_err(429, "activityLimitReached", "The request has been throttled", req)
  elseif api == "mgmt" then
    st, body, hdr = self:mgmt_err(429, "AF429", "Too many requests. Method=" .. (req.path:match("feed/(%a+)") or "List")
      .. ", PublisherId=" .. (req.query.PublisherIdentifier or "00000000-0000-0000-0000-000000000000"))
  else
    st, body, hdr = self:arm_err(429, "SubscriptionRequestsThrottled", "Number of 'read' requests for subscription '"
      .. (req.path:match("^/subscriptions/([^/]+)") or "") .. "' actor '" .. self.sp_client.id
      .. "' exceeded. Please try again after '" .. retry_after .. "' seconds after additional tokens are available.")
  end
  hdr["Retry-After"] = tostring(retry_after)
  return st, body, hdr
end

function MS:fault_response(f, req)
  local api = self:api_of(req.path)
  local st, body, hdr
  if f.kind == "429" then
    st, body, hdr = self:throttled(api, req, f.retry_after or 1)
  else
    local code = tonumber(f.kind) or 500
    if api == "graph" then st, body, hdr = self:graph_err(code, code == 503 and "serviceNotAvailable" or "generalException",
        code == 503 and "The service is temporarily unavailable." or "An unspecified error has occurred.", req)
      if code == 503 then hdr["Retry-After"] = tostring(f.retry_after or 1) end
    elseif api == "mgmt" then st, body, hdr = self:mgmt_err(code, "AF50000", "An internal server error occurred. Retry the request.")
    else st, body, hdr = self:arm_err(code, code == 503 and "ServiceUnavailable" or "InternalServerError", "The server encountered an internal error.") end
  end
  return st, json().encode(body), hdr
end

function MS:decorate(req, status, hdr)
  local api = req._api or self:api_of(req.path)
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json"
  local rid = self:request_id()
  if api == "graph" then
    hdr["request-id"] = rid
    hdr["client-request-id"] = req.headers["client-request-id"] or rid
    hdr["x-ms-ags-diagnostic"] = '{"ServerInfo":{"DataCenter":"West US","Slice":"E","Ring":"5","ScaleUnit":"001","RoleInstance":"sandbox"}}'
  elseif api == "arm" then
    hdr["x-ms-request-id"] = rid
    hdr["x-ms-correlation-request-id"] = req.headers["x-ms-correlation-request-id"] or rid
    local rl = req._rl
    if rl then
      local kind = (req.method == "GET" or req.method == "HEAD") and "reads" or (req.method == "DELETE" and "deletes" or "writes")
      hdr["x-ms-ratelimit-remaining-subscription-" .. kind] = tostring(rl[2])
      hdr["x-ms-ratelimit-remaining-tenant-" .. kind] = tostring(rl[2])
    end
  end
end

---------------------------------------------------------------------------------------------------

---------------------------------------------------------------------------------------------------
-- Route assembly and ground truth for the other surfaces
---------------------------------------------------------------------------------------------------
function MS:more_routes()
  local R = {}
  for _, part in ipairs({ self:file_routes(), self:sub_routes(), self:mgmt_routes(), self:arm_routes() }) do
    for _, r in ipairs(part) do R[#R + 1] = r end
  end
  return R
end

function MS:count_more(what, arg)
  if what == "mgmt_records" then return self:mgmt_count(arg) end
  if what == "mgmt_stored" then return #self.state.mgmt_stored end
  if what == "mgmt_available" then return self:mgmt_available(arg) end
  local n = self:arm_count(what, arg)
  if n then return n end
  n = self:files_count(what, arg)
  if n then return n end
  if what == "graph_subscriptions" then return #self.state.subscriptions end
  error("count: unknown " .. tostring(what))
end

---------------------------------------------------------------------------------------------------
-- Ground truth
---------------------------------------------------------------------------------------------------
function MS:count(what, arg)
  local st = self.state
  local function n_if(list, f) local n = 0; for _, x in ipairs(list) do if f(x) then n = n + 1 end end; return n end
  if what == "users" then return n_if(st.users, function(u) return not u.deleted end)
  elseif what == "users_enabled" then return n_if(st.users, function(u) return not u.deleted and u.accountEnabled end)
  elseif what == "users_disabled" then return n_if(st.users, function(u) return not u.deleted and not u.accountEnabled end)
  elseif what == "guests" then return n_if(st.users, function(u) return not u.deleted and u.userType == "Guest" end)
  elseif what == "groups" then return #st.groups
  elseif what == "members" then
    local n = 0
    for _, g in ipairs(st.groups) do if not arg or g.id == arg then n = n + #g.members end end
    return n
  elseif what == "directory_roles" then return #self:directory_roles()
  elseif what == "role_assignments" then return #st.role_assignments
  elseif what == "service_principals" then return #st.sps
  elseif what == "grants" then return #st.grants
  elseif what == "app_role_assignments" then return #st.app_role_assignments
  elseif what == "audits" then return self.naudits + #st.audits
  elseif what == "signins" then return self.nsignins + #st.signins
  elseif what == "noninteractive_signins" then return self.nsignins_ni
  elseif self.count_more then return self:count_more(what, arg) end
  error("count: unknown " .. tostring(what))
end

---------------------------------------------------------------------------------------------------
-- Mount
---------------------------------------------------------------------------------------------------
function MS:routes()
  local G = {}
  local V = "/v1.0"
  local routes = {
    { "POST", "/:tenant/oauth2/v2.0/token", MS.h_token, { public = true } },
    { "POST", "/:tenant/oauth2/token", MS.h_token, { public = true } },
    { "GET", "/:tenant/oauth2/v2.0/authorize", MS.h_authorize, { public = true } },
    { "GET", "/:tenant/oauth2/authorize", MS.h_authorize, { public = true } },
    { "GET", "/:tenant/adminconsent", MS.h_adminconsent, { public = true } },
    { "GET", "/:tenant/v2.0/adminconsent", MS.h_adminconsent, { public = true } },
    { "GET", V .. "/users", MS.h_users, G },
    { "GET", V .. "/users/delta()", MS.h_users_delta, G },
    { "GET", V .. "/users/delta", MS.h_users_delta, G },
    { "GET", V .. "/users/:id", MS.h_user, G },
    { "PATCH", V .. "/users/:id", MS.h_user, G },
    { "DELETE", V .. "/users/:id", MS.h_user, G },
    { "POST", V .. "/users/:id/revokeSignInSessions", MS.h_revoke_sessions, G },
    { "POST", V .. "/users/:id/authentication/methods/:mid/resetPassword", MS.h_reset_password, G },
    { "GET", V .. "/users/:id/memberOf", MS.h_member_of, G },
    { "GET", V .. "/users/:id/oauth2PermissionGrants", MS.h_grants, G },
    { "GET", V .. "/groups", MS.h_groups, G },
    { "GET", V .. "/groups/:gid", MS.h_group, G },
    { "GET", V .. "/groups/:gid/members", MS.h_group_members, G },
    { "GET", V .. "/groups/:gid/transitiveMembers", MS.h_group_members, G },
    { "GET", V .. "/groups/:gid/owners", MS.h_group_members, G },
    { "POST", V .. "/groups/:gid/members/$ref", MS.h_group_member_ref, G },
    { "DELETE", V .. "/groups/:gid/members/:oid/$ref", MS.h_group_member_ref, G },
    { "GET", V .. "/directoryRoles", MS.h_directory_roles, G },
    { "GET", V .. "/directoryRoles/:rid/members", MS.h_directory_role_members, G },
    { "DELETE", V .. "/directoryRoles/:rid/members/:oid/$ref", MS.h_directory_role_member_delete, G },
    { "GET", V .. "/roleManagement/directory/roleDefinitions", MS.h_role_definitions, G },
    { "GET", V .. "/roleManagement/directory/roleAssignments", MS.h_role_assignments, G },
    { "GET", V .. "/roleManagement/directory/roleAssignments/:aid", MS.h_role_assignment, G },
    { "DELETE", V .. "/roleManagement/directory/roleAssignments/:aid", MS.h_role_assignment, G },
    { "GET", V .. "/servicePrincipals", MS.h_sps, G },
    { "GET", V .. "/servicePrincipals/:spid", MS.h_sp, G },
    { "PATCH", V .. "/servicePrincipals/:spid", MS.h_sp, G },
    { "GET", V .. "/servicePrincipals/:spid/oauth2PermissionGrants", MS.h_grants, G },
    { "GET", V .. "/servicePrincipals/:spid/appRoleAssignments", MS.h_app_role_assignments, G },
    { "GET", V .. "/servicePrincipals/:spid/appRoleAssignments/:aid", MS.h_app_role_assignments, G },
    { "DELETE", V .. "/servicePrincipals/:spid/appRoleAssignments/:aid", MS.h_app_role_assignments, G },
    { "GET", V .. "/servicePrincipals/:spid/appRoleAssignedTo", MS.h_app_role_assignments, G },
    { "GET", V .. "/servicePrincipals/:spid/appRoleAssignedTo/:aid", MS.h_app_role_assignments, G },
    { "DELETE", V .. "/servicePrincipals/:spid/appRoleAssignedTo/:aid", MS.h_app_role_assignments, G },
    { "GET", V .. "/oauth2PermissionGrants", MS.h_grants, G },
    { "GET", V .. "/oauth2PermissionGrants/:grid", MS.h_grant, G },
    { "PATCH", V .. "/oauth2PermissionGrants/:grid", MS.h_grant, G },
    { "DELETE", V .. "/oauth2PermissionGrants/:grid", MS.h_grant, G },
    { "GET", V .. "/auditLogs/directoryAudits", MS.h_audits, G },
    { "GET", V .. "/auditLogs/directoryAudits/:lid", MS.h_log_item, G },
    { "GET", V .. "/auditLogs/signIns", MS.h_signins, G },
    { "GET", V .. "/auditLogs/signIns/:lid", MS.h_log_item, G },
    { "GET", "/beta/auditLogs/signIns", MS.h_beta_signins, G },
  }
  for _, r in ipairs(self.more_routes and self:more_routes() or {}) do routes[#routes + 1] = r end
  routes[#routes + 1] = { "*", V .. "/*", function(t, req)
    return t:graph_err(400, "BadRequest", "Resource not found for the segment '" .. (req.params.rest:match("^([^/]+)") or "") .. "'.", req) end, G }
  return routes
end

function MS:mount(srv, prefix)
  self:mount_routes(srv, prefix, self:routes())
  self.urls = { login = self.base_url, graph = self.base_url .. "/v1.0",
                mgmt = self.base_url .. "/api/v1.0/" .. self.tenant_id .. "/activity/feed", arm = self.base_url }
  return self
end

return M
