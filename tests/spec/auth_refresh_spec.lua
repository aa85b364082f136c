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

  -- Another process sharing the store (the daemon while an operator runs `cachost act`) renewing the same
  -- single-use refresh token: this one waits on the store's lock, then uses the token that one stored.
  it("waits for another process renewing the token, and uses what it stored", function()
    t.refresh["rt-shared"] = { uid = t.admin.id, exp = t:wall_s() + 3600 }
    local inst = box("shared", { client_secret = "bx-secret", refresh_token = "rt-shared", access_token = "stale",
                                 token_expires_at = "1" })
    local st, lock, other = runtime.store(), inst.id .. ":token:access_token", "elsewhere:4242:1"
    assert.is_true(st:take_lock(lock, other, 60))
    assert.is_false(st:take_lock(lock, "third:1:1", 60))          -- held: nobody else takes it
    local done
    sched.spawn(function() done = table.pack(runtime.sync(inst, { streams = { "users" } })) end)
    sched.sleep(0.3)
    assert.is_nil(done)                                            -- waiting for the other process
    -- the other process redeems the refresh token, stores what it got, and lets go
    local r = assert(http.request { method = "POST", url = srv.url .. "/oauth2/token",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { grant_type = "refresh_token", refresh_token = "rt-shared", client_id = "bx", client_secret = "bx-secret" } })
    assert.equal(200, r.status, r.body)
    local got = json.decode(r.body)
    inst:set_secret("access_token", got.access_token)
    inst:set_secret("refresh_token", got.refresh_token)
    inst:set_secret("token_expires_at", tostring(math.floor(sched.time()) + 3600))
    st:drop_lock(lock, other)
    local deadline = sched.now() + 20
    while not done and sched.now() < deadline do sched.sleep(0.05) end
    assert.is_true(done and done[2], done and tostring(done[1][1] and done[1][1].error))
    assert.equal(got.access_token, inst:secret("access_token"))   -- no renewal of its own
    assert.equal(got.refresh_token, inst:secret("refresh_token"))
    assert.is_true(st:take_lock(lock, "third:1:1", 60))           -- given up once done
  end)

  it("without it, the instance is not connected", function()
    local inst = box("none", { client_secret = "bx-secret" })
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: not connected: run cachost instance connect none", results[1].error)
  end)
end)

describe("an OAuth token in use", function()
  it("costs a request two vault reads (the token and its expiry): its type only matters to a DPoP scheme", function()
    host.home = helpers.tmp_dir()
    local t = require("sandbox.box").new { seed = 6, users = 3, groups = 1, folders = 1, files = 1, events = 5, days = 1,
      client_id = "bx", client_secret = "bx-secret", enterprise_id = "777003" }
    local srv = helpers.serve(t)
    finally(function() srv:close() end)
    local inst = helpers.instance("box", "reads", { client_id = "bx", enterprise_id = "777003", auth = "client_credentials",
      base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url, insecure_loopback = true },
      { client_secret = "bx-secret" })
    local ctx = require("sdk.context").new(runtime.store(), inst, "spec")
    ctx:get("/users/me")                                          -- obtains the token
    local v = assert(runtime.store():vault())
    local read = {}
    v.get = function(self, id, name) read[#read + 1] = name; return getmetatable(self).__index.get(self, id, name) end
    finally(function() v.get = nil end)
    assert.is_string(ctx:get("/users/me").id)
    assert.same({ "access_token", "token_expires_at" }, read)
  end)
end)
