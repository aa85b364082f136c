-- sandbox/workday — a Workday tenant emulator, following shared/api/workday.md: Workday Web Services (SOAP
-- 1.1 envelopes in the urn:com.workday/bsvc namespace, WS-Security UsernameToken of an integration system
-- user or an OAuth bearer token, SOAP Faults as Workday sends them, Page/Total_Pages paging as of
-- As_Of_Entry_DateTime), the API clients' token endpoint (refresh token grant) and Reports-as-a-Service.
--
--   local t = require("sandbox.workday").new{seed=1, workers=50, tenant="acme", people={"ann@example.com"}}
--   t:mount(srv[, prefix])
--
-- One file per surface: tenant.lua (the generated tenant, faults, credentials, ground truth), wws.lua (the
-- SOAP operations), raas.lua (the token endpoint and the reports).
local W = require "sandbox.workday.tenant"

local ROUTES = {}
for _, name in ipairs { "wws", "raas" } do
  for _, r in ipairs(require("sandbox.workday." .. name)) do ROUTES[#ROUTES + 1] = r end
end

function W.Tenant:mount(srv, prefix)
  return self:mount_routes(srv, prefix, ROUTES)
end

return { new = W.new }
