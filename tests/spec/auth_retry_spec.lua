-- sdk/auth + sdk/client: a provider answering 401 to an OAuth access token that has not expired (revoked
-- at the provider's revoke endpoint) gets a new token from the refresh token and the request once more;
-- requests in flight together share that one refresh; a dead refresh token is "reconnect needed".
-- Against the Box sandbox, whose refresh tokens are single use (a stampede of refreshes would fail).
local helpers = require "helpers"
local runtime = require "runtime"
local context = require "sdk.context"

describe("a 401 to an unexpired OAuth token", function()
  local t, srv
  setup(function()
    host.home = helpers.tmp_dir()
    t = require("sandbox.box").new { seed = 9, users = 6, groups = 1, folders = 1, files = 1, events = 5, days = 1,
      client_id = "bx", client_secret = "bx-secret", enterprise_id = "777003" }
    srv = helpers.serve(t)
  end)
  teardown(function() srv:close() end)

  -- an instance connected as the admin: tokens as the consent flow leaves them, an hour to live
  local function connected(name)
    local _, tok = t:issue_token(t.admin.id, "oauth", true)
    local inst = helpers.instance("box", name, { client_id = "bx", enterprise_id = "777003", auth = "oauth",
      base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url,
      insecure_loopback = true }, { client_secret = "bx-secret", access_token = tok.access_token,
      refresh_token = tok.refresh_token, token_expires_at = tostring(sched.time() + 3600) })
    return inst, tok
  end

  -- what Box's revoke endpoint does when the admin revokes the token in the console or an app does
  local function revoke(token)
    local resp = assert(http.request { method = "POST", url = srv.url .. "/oauth2/revoke",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { client_id = "bx", client_secret = "bx-secret", token = token } })
    assert.equal(200, resp.status)
  end

  local function token_requests(from)
    local n = 0
    for i = from + 1, #t.log do if t.log[i].path == "/oauth2/token" then n = n + 1 end end
    return n
  end

  it("is replaced from the refresh token and the sync completes", function()
    local inst, tok = connected("revoked-at")
    revoke(tok.access_token)
    local from = #t.log
    local counts = helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal(#t.state.users, counts.users.users.added)
    assert.equal(1, token_requests(from))
    assert.is_not.equal(tok.access_token, inst:secret("access_token"))
    assert.is_not.equal(tok.refresh_token, inst:secret("refresh_token"))
    local refused = 0
    for i = from + 1, #t.log do if t.log[i].status == 401 then refused = refused + 1 end end
    assert.equal(1, refused)
  end)

  it("with its refresh token revoked too, ends in reconnect needed with Box's reason", function()
    local inst, tok = connected("revoked-both")
    revoke(tok.access_token); revoke(tok.refresh_token)
    local from = #t.log
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.equal("reconnect_needed", require("sync").state(results[1].error))
    assert.matches("reconnect needed", results[1].error, 1, true)
    assert.matches("Invalid refresh token", results[1].error, 1, true)
    assert.equal(1, token_requests(from))
  end)

  it("answered 401 again after the refresh is a dead credential: no second refresh, no secret in the error", function()
    local inst = connected("still-refused")
    -- a gateway answering 401 to the request and to its retry, echoing the Authorization header
    t:fault { kind = "echo", status = 401, path = "^/2.0/users", count = 2 }
    local from = #t.log
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    t:clear_faults()
    assert.is_false(ok)
    assert.matches("^auth: HTTP 401", results[1].error)
    assert.equal("reconnect_needed", require("sync").state(results[1].error))
    assert.equal(1, token_requests(from))
    assert.is_nil(results[1].error:find(inst:secret("access_token"), 1, true))
    assert.is_nil(results[1].error:find(inst:secret("refresh_token"), 1, true))
  end)

  it("is refreshed once for several requests in flight", function()
    local inst, tok = connected("in-flight")
    revoke(tok.access_token)
    local client = context.client(context.new(runtime.store(), inst, "users"))
    local from = #t.log
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = sched.spawn(function() return client:get("/users", { limit = 2, offset = i }) end)
    end
    for i = 1, 5 do
      local okj, resp, err = tasks[i]:join()
      assert.is_true(okj)
      assert(resp, err)
      assert.equal(200, resp.status)
    end
    assert.equal(1, token_requests(from))
    local refused = 0
    for i = from + 1, #t.log do if t.log[i].status == 401 then refused = refused + 1 end end
    assert.equal(5, refused)                  -- all five were in flight with the revoked token
  end)
end)
