-- sdk/auth: an OAuth instance holding a refresh token and no access token (a service app's, handed over by
-- its provider's portal) redeems it on its first request; with neither, it is not connected.
local helpers = require "helpers"
local runtime = require "runtime"

describe("a refresh token alone", function()
  local t, srv
  setup(function()
    host.home = helpers.tmp_dir()
    t = require("sandbox.box").new { seed = 4, users = 5, groups = 1, folders = 1, files = 1, events = 5, days = 1,
      client_id = "bx", client_secret = "bx-secret", enterprise_id = "777002" }
    srv = helpers.serve(t)
  end)
  teardown(function() srv:close() end)

  local function box(name, secrets)
    return helpers.instance("box", name, { client_id = "bx", enterprise_id = "777002", auth = "oauth", base_url = srv.url .. "/2.0",
      upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url, insecure_loopback = true }, secrets)
  end

  it("is redeemed at the token endpoint on the first request", function()
    t.refresh["handed-over-refresh-token"] = { uid = t.admin.id, exp = t:wall_s() + 3600 }
    local inst = box("rt-only", { client_secret = "bx-secret", refresh_token = "handed-over-refresh-token" })
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.is_string(inst:secret("access_token"))
    assert.is_nil(t.refresh["handed-over-refresh-token"])          -- Box's refresh tokens are single use
    assert.is_string(inst:secret("refresh_token"))
    assert.is_not.equal("handed-over-refresh-token", inst:secret("refresh_token"))
  end)

  it("without it, the instance is not connected", function()
    local inst = box("none", { client_secret = "bx-secret" })
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: not connected: run cachost instance connect none", results[1].error)
  end)
end)
