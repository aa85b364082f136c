-- tenants.lua — one small sandbox tenant per connector, each on its own loopback server with an instance
-- pointed at it (required as "tenants" by specs that exercise every connector the same way).
local helpers = require "helpers"

local M = {}

M.APPS = { "okta", "github", "box", "office365", "azure" }
local MS_TENANT = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
local MS_CLIENT, MS_SECRET = "0a1b2c3d-1111-4222-8333-944455556666", "sandbox~client.secret"

-- The path (a Lua pattern on the request path) of each connector's users listing.
M.USERS_PATH = {
  okta = "/api/v1/users$", github = "/members$", box = "/users$", office365 = "/v1.0/users$",
  azure = "/roleAssignments$",
}

-- M.start(app, name, opts) -> {tenant =, srv =, inst =}; opts.size scales the data (default small),
-- opts.seed, opts.tenant (more options of the tenant), opts.settings (extra instance settings).
function M.start(app, name, opts)
  opts = opts or {}
  local n = opts.size or 1
  local seed = opts.seed or 3
  local function with(o)
    for k, v in pairs(opts.tenant or {}) do o[k] = v end
    return o
  end
  local t, settings, secrets
  if app == "okta" then
    t = require("sandbox.okta").new(with { seed = seed, users = 25 * n, groups = 3, events_per_day = 20 * n, days = 2 })
  elseif app == "github" then
    t = require("sandbox.github").new(with { seed = seed, org = "acme", members = 25 * n, teams = 3,
      outside_collaborators = 3, audit_events = 40 * n, days = 2 })
  elseif app == "box" then
    t = require("sandbox.box").new(with { seed = seed, users = 20 * n, groups = 3, folders = 4, files = 12 * n,
      events = 60 * n, days = 2, client_id = "box-client", client_secret = "box-secret", enterprise_id = "777001" })
  else
    t = require("sandbox.microsoft").new(with { seed = seed, users = 20 * n, groups = 3, days = 1, signins = 30 * n,
      audits = 20 * n, mgmt_records_per_day = 30 * n, subscriptions = 1, arm_events_per_day = 30 * n,
      tenant_id = MS_TENANT, client_id = MS_CLIENT, client_secret = MS_SECRET })
  end
  local srv = helpers.serve(t)
  if app == "okta" then
    settings, secrets = { domain = "acme.okta.com", base_url = srv.url }, { api_token = t.token }
  elseif app == "github" then
    settings, secrets = { org = "acme", base_url = srv.url }, { token = t.token }
  elseif app == "box" then
    settings = { client_id = "box-client", enterprise_id = "777001", auth = "client_credentials",
      base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url }
    secrets = { client_secret = "box-secret" }
  else
    settings = { tenant_id = MS_TENANT, client_id = MS_CLIENT, base_url = srv.url }
    secrets = { client_secret = MS_SECRET }
    if app == "office365" then settings.components = "users,audits,signins,apps" end
  end
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
