-- sandbox/okta — an Okta org emulator (Management API + org authorization server), following
-- /work/shared/api/okta.md: SSWS and private_key_jwt OAuth auth, Link/`after` pagination, System Log
-- polling, lifecycle governance, event hooks, Okta error bodies and X-Rate-Limit-* headers.
--
--   local okta = require "sandbox.okta"
--   local t = okta.new{seed=1, users=50, groups=8, events_per_day=200, days=8, token="..."}
--   t:mount(srv[, prefix])
--
-- The System Log is generated lazily: event i is a pure function of (seed, i) with timestamps
-- monotonic in i, so a 1,000,000-event log costs no memory; only events caused by state changes or
-- injected by tests are stored.
--
-- One file per API surface: org.lua (the generated org, errors, paging, ground truth), auth.lua (tokens,
-- scopes, rate limits), users.lua, groups.lua (and admin roles), apps.lua (and grants, tokens), logs.lua
-- (System Log), hooks.lua (event hooks).
local O = require "sandbox.okta.org"

local SURFACES = { "auth", "users", "groups", "apps", "logs", "hooks" }
local ROUTES = {}
for _, name in ipairs(SURFACES) do
  for _, r in ipairs(require("sandbox.okta." .. name)) do ROUTES[#ROUTES + 1] = r end
end
ROUTES[#ROUTES + 1] = { "*", "/api/v1/*", function(t, req) return t:not_found("Resource", req.path) end, {} }

function O.Okta:mount(srv, prefix)
  return self:mount_routes(srv, prefix, ROUTES)
end

return { new = O.new, SCOPES = O.SCOPES }
