-- tenants.lua — one small sandbox tenant per connector, each on its own loopback server with an instance
-- pointed at it (required as "tenants" by specs that exercise every connector the same way: faults,
-- credentials, malformed listings, compaction).
--
-- tests/tenants/<app>.lua returns { users_path = a Lua pattern on the path of its users listing,
-- tenant = function(o) -> the emulator (o(defaults) scales counts by opts.size and adds seed and
-- opts.tenant), instance = function(tenant, url) -> settings, secrets }; optionally users = function(tenant)
-- -> {user ext_id = true} a complete sync holds (faults_spec), retry_header = false when the provider's
-- 429 names no wait, next_links = false when its listings carry no URL of the next page.
local helpers = require "helpers"

local M = {}

-- Every app with a file there that names its users listing (microsoft.lua is shared by two apps).
M.APPS, M.USERS_PATH = {}, {}
for _, file in ipairs(host.listdir(host.root .. "/tests/tenants") or {}) do
  local app = file:match("^(.+)%.lua$")
  local path = app and require("tenants." .. app).users_path
  if path then M.APPS[#M.APPS + 1], M.USERS_PATH[app] = app, path end
end

-- Settings that count things (scaled by opts.size); the others are taken as they are.
local COUNTS = { users = true, members = true, events_per_day = true, audit_events = true, files = true, events = true,
  signins = true, audits = true, mgmt_records_per_day = true, arm_events_per_day = true }

-- M.start(app, name, opts) -> {tenant =, srv =, inst =}; opts.size scales the data (default small),
-- opts.seed, opts.tenant (more options of the tenant), opts.settings (extra instance settings).
function M.start(app, name, opts)
  opts = opts or {}
  local def = require("tenants." .. app)
  local t = def.tenant(function(o)
    for k, v in pairs(o) do
      if COUNTS[k] then o[k] = v * (opts.size or 1) end
    end
    o.seed = opts.seed or 3
    for k, v in pairs(opts.tenant or {}) do o[k] = v end
    return o
  end)
  local srv = helpers.serve(t)
  local settings, secrets = def.instance(t, srv.url)
  settings.insecure_loopback = true
  for k, v in pairs(opts.settings or {}) do settings[k] = v end
  local inst = helpers.instance(app, name, settings, secrets)
  return { app = app, tenant = t, srv = srv, inst = inst, settings = settings, secrets = secrets }
end

-- Another instance of the same app on the same tenant (the single-instance rule is the CLI's).
function M.twin(r, name)
  return helpers.instance(r.app, name, r.settings, r.secrets)
end

return M
