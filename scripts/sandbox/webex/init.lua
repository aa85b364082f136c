-- sandbox/webex — a Webex organization emulator following /work/shared/api/webex.md: OAuth integrations
-- (authorization code, reusable refresh tokens, scopes granted and enforced per route, compliance endpoints
-- refused without the spark-compliance:* scopes and the Compliance Officer role), Link paging with `max`,
-- 429 with Retry-After, error bodies and a Trackingid on every answer, webhooks signed with
-- X-Spark-Signature, and the shared faults of sandbox/tenant.lua.
--
--   local webex = require "sandbox.webex"
--   local t = webex.new{seed=1, users=20, groups=3, rooms=5, files=8, days=7}
--   t:mount(srv)      -- the API under /v1 (webexapis.com/v1), the browser's consent at /v1/authorize
--   t:officer_tokens() -- the tokens a connected integration holds (the Compliance Officer's)
--
-- One file per part: org (generated organization, errors, paging, ground truth), auth (OAuth, scopes,
-- rate limit, faults), api (the REST surfaces and webhook deliveries).
local O = require "sandbox.webex.org"
require "sandbox.webex.auth"
require "sandbox.webex.api"
local Webex = O.Webex

-- {method, path, handler, {scopes = any of, all = every one of, role = admin|writer|full|compliance}}
local PEOPLE_READ = { "spark-admin:people_read", "spark:people_read" }
local API = {
  { "GET", "/people", Webex.h_people, { scopes = PEOPLE_READ } },
  { "GET", "/people/:id", Webex.h_person, { scopes = PEOPLE_READ } },
  { "PUT", "/people/:id", Webex.h_put_person, { all = { "spark-admin:people_read", "spark-admin:people_write" }, role = "writer" } },
  { "GET", "/roles", Webex.h_roles, { scopes = { "spark-admin:roles_read" }, role = "admin" } },
  { "GET", "/licenses", Webex.h_licenses, { scopes = { "spark-admin:licenses_read" }, role = "admin" } },
  { "GET", "/groups", Webex.h_groups, { scopes = { "identity:groups_read", "identity:groups_rw" }, role = "admin" } },
  { "GET", "/groups/:id/members", Webex.h_group_members, { scopes = { "identity:groups_read", "identity:groups_rw" }, role = "admin" } },
  { "GET", "/adminAudit/events", Webex.h_admin_audit, { scopes = { "audit:events_read" }, role = "full" } },
  { "GET", "/adminAudit/eventCategories", Webex.h_admin_categories, { scopes = { "audit:events_read" }, role = "full" } },
  { "GET", "/admin/securityAudit/events", Webex.h_security_audit, { scopes = { "audit:events_read" }, role = "full" } },
  { "GET", "/events", Webex.h_events, { scopes = { "spark-compliance:events_read" }, role = "compliance" } },
  { "GET", "/events/:id", Webex.h_event, { scopes = { "spark-compliance:events_read" }, role = "compliance" } },
  { "GET", "/memberships", Webex.h_memberships, { scopes = { "spark-compliance:memberships_read" }, role = "compliance" } },
  { "GET", "/memberships/:id", Webex.h_membership, { scopes = { "spark-compliance:memberships_read" }, role = "compliance" } },
  { "DELETE", "/memberships/:id", Webex.h_membership, { scopes = { "spark-compliance:memberships_write" }, role = "compliance" } },
  { "GET", "/rooms/:id", Webex.h_room, { scopes = { "spark-compliance:rooms_read" }, role = "compliance" } },
  { "GET", "/messages/:id", Webex.h_message, { scopes = { "spark-compliance:messages_read" }, role = "compliance" } },
  { "DELETE", "/messages/:id", Webex.h_message, { scopes = { "spark-compliance:messages_write" }, role = "compliance" } },
  { "GET", "/contents/:id", Webex.h_content, { scopes = { "spark-compliance:messages_read" }, role = "compliance" } },
  { "GET", "/authorizations/tokenExpiry", Webex.h_token_expiry, {} },
  { "GET", "/authorizations", Webex.h_authorizations, { scopes = { "identity:tokens_read" }, role = "admin" } },
  { "DELETE", "/authorizations", Webex.h_authorizations, { scopes = { "identity:tokens_write" }, role = "writer" } },
  { "DELETE", "/authorizations/:id", Webex.h_authorization, { scopes = { "identity:tokens_write" }, role = "writer" } },
  { "GET", "/webhooks", Webex.h_webhooks, {} },
  { "POST", "/webhooks", Webex.h_webhooks, {} },
  { "GET", "/webhooks/:id", Webex.h_webhook, {} },
  { "PUT", "/webhooks/:id", Webex.h_webhook, {} },
  { "DELETE", "/webhooks/:id", Webex.h_webhook, {} },
}

function Webex:mount(srv, prefix)
  local routes = {}
  for _, r in ipairs(API) do routes[#routes + 1] = { r[1], "/v1" .. r[2], r[3], r[4] } end
  routes[#routes + 1] = { "POST", "/v1/access_token", Webex.h_access_token, { noauth = true } }
  routes[#routes + 1] = { "GET", "/v1/authorize", Webex.h_authorize, { public = true } }
  routes[#routes + 1] = { "*", "/v1/*", function(t) return t:not_found("resource") end, {} }
  self:mount_routes(srv, prefix, routes)
  self.origin = self.base_url:match("^(https?://[^/]+)")
  self.api_url = self.base_url .. "/v1"
  return self
end

return { new = O.new, ALL_SCOPES = O.ALL_SCOPES, CARD = O.CARD }
