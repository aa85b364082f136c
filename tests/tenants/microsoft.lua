-- The Microsoft test tenant shared by office365 and azure: one Entra tenant and its app registration.
local TENANT = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
local CLIENT, SECRET = "0a1b2c3d-1111-4222-8333-944455556666", "sandbox~client.secret"
return {
  tenant = function(o)
    return require("sandbox.microsoft").new(o { users = 20, groups = 3, days = 1, signins = 30, audits = 20,
      mgmt_records_per_day = 30, subscriptions = 1, arm_events_per_day = 30, tenant_id = TENANT, client_id = CLIENT,
      client_secret = SECRET })
  end,
  instance = function(_, url) return { tenant_id = TENANT, client_id = CLIENT, base_url = url }, { client_secret = SECRET } end,
}
