-- sandbox/salesforce — a Salesforce org emulator following shared/api/salesforce.md: OAuth of a connected
-- app (JWT bearer checked against the app's certificate, web server flow with PKCE, revoke), the REST API's
-- SOQL query / queryAll with nextRecordsUrl paging over the objects cachost reads (users, UserLogin,
-- profiles and permission sets, groups, LoginHistory, SetupAuditTrail, EventLogFile with CSV log files,
-- OauthToken, Salesforce Files), sObject updates and deletes for governance, the daily API allowance with
-- Sforce-Limit-Info, Salesforce's error bodies, the shared faults (sandbox/tenant.lua).
--
--   local t = require("sandbox.salesforce").new{seed = 1, users = 40, org_name = "acme"}
--   t:mount(srv[, prefix])
--
-- org.lua (schema, generated org, errors, limits, truth), soql.lua (the query language), auth.lua
-- (OAuth), rest.lua (the REST resources).
local S = require "sandbox.salesforce.org"

local ROUTES = {}
for _, name in ipairs { "auth", "rest" } do
  for _, r in ipairs(require("sandbox.salesforce." .. name)) do ROUTES[#ROUTES + 1] = r end
end
ROUTES[#ROUTES + 1] = { "*", "/services/*", function(t) return t:not_found() end }

function S.Org:mount(srv, prefix)
  return self:mount_routes(srv, prefix, ROUTES)
end

return { new = S.new, id18 = S.id18 }
