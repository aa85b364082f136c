-- sandbox/servicenow — a ServiceNow instance emulator (Table API, Attachment API, oauth_token.do),
-- following shared/api/servicenow.md: Basic and OAuth (password, refresh, client credentials) auth, the
-- roles each table's ACL asks for and ServiceNow's 401/403/404 bodies, encoded queries, offset paging
-- with X-Total-Count and Link, rate-limit rules, and the changes governance makes (active, locked_out,
-- role grants, tokens, attachments), audited in sys_audit.
--
--   local sn = require "sandbox.servicenow"
--   local t = sn.new{seed=1, users=50, groups=8, events_per_day=100, days=8, files=20}
--   t:mount(srv[, prefix])
--
-- One file per surface: instance.lua (tables, generated data, errors, ground truth), query.lua (encoded
-- queries), auth.lua (Basic, OAuth, ACL roles, rate limits), table.lua, attachment.lua.
local S = require "sandbox.servicenow.instance"

local ROUTES = {}
for _, name in ipairs { "auth", "table", "attachment" } do
  for _, r in ipairs(require("sandbox.servicenow." .. name)) do ROUTES[#ROUTES + 1] = r end
end
ROUTES[#ROUTES + 1] = { "*", "/api/now/*", function(t) return t:err(400, "Requested URI does not represent any resource") end, {} }

function S.Now:mount(srv, prefix)
  return self:mount_routes(srv, prefix, ROUTES)
end

return { new = S.new, TABLES = S.TABLES }
