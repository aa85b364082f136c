-- sandbox/dropbox/common.lua — the tenant class the Dropbox emulator's surfaces (init, auth, team, files,
-- sharing) share.
local T = require "sandbox.tenant"
local D = setmetatable({}, { __index = T.Base })
D.__index = D
D.default_rate_limit = 1000
function D.json() return T.host("json") end
function D.crypto() return T.host("crypto") end
return D
