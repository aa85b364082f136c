-- The Okta connector against the Okta sandbox tenant: full and incremental scans equal the tenant's
-- ground truth, governance changes the tenant, faults are survived.
local context = require "sdk.context"
local okta_tenant = require "sandbox.okta"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local function add_instance(name, url, token)
  return require("helpers").instance("okta", name, { domain = "acme.okta.com", base_url = url, insecure_loopback = true },
    { api_token = token })
end

local count = require("helpers").count

describe("okta connector", function()
  local tenant, srv, inst
  setup(function()
    host.home = tmp_home()
    tenant = okta_tenant.new { seed = 7, users = 40, groups = 5, events_per_day = 50, days = 8 }
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    inst = add_instance("okta-test", srv.url, tenant.token)
  end)
  teardown(function() srv:close() end)

  it("scans users, groups, privileges, grants and the System Log to the tenant's ground truth", function()
    local results, ok = runtime.sync(inst)
    for _, r in ipairs(results) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
    assert.is_true(ok)
    assert.equal(tenant:count("users"), count("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id))
    assert.equal(tenant:count("groups"), count("SELECT count(*) n FROM groups WHERE instance_id = ?", inst.id))
    assert.equal(tenant:count("roles"), count("SELECT count(*) n FROM privileges WHERE instance_id = ?", inst.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id) > 0)
    assert.equal(tenant:count("users", "SUSPENDED"),
      count("SELECT count(*) n FROM users WHERE instance_id = ? AND status = 'suspended'", inst.id))
  end)

  it("re-scanning changes nothing and incremental polling picks up only new events", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    tenant:simulate_bruteforce(tenant.state.users[3].profile.login, 5)
    local results = runtime.sync(inst)
    for _, r in ipairs(results) do
      assert(r.counts, r.stream .. ": " .. tostring(r.error))
      if r.stream == "users" then assert.equal(0, r.counts.users.added); assert.equal(0, r.counts.users.removed) end
    end
    assert.equal(before + 6, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
  end)

  it("suspends a user in the tenant, and the next scan sees it", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' LIMIT 1", inst.id)[1]
    context.connector(ctx).actions.suspend_user(ctx, u)
    assert.equal("SUSPENDED", tenant:find_user(u.ext_id).status)
    runtime.sync(inst, { streams = { "users" } })
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
  end)

  it("survives a 429 storm and 5xx bursts", function()
    tenant:fault { kind = "429", count = 3, retry_after = 0 }
    tenant:fault { kind = "500", count = 2 }
    local results, ok = runtime.sync(inst, { streams = { "users", "groups" } })
    assert(ok, tostring(results[1].error))
  end)

  it("records a clear reconnect-needed error on a bad token and keeps the data", function()
    local bad = add_instance("okta-bad", srv.url, "wrong-token")
    local results, ok = runtime.sync(bad, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: HTTP 401", results[1].error)
    assert.equal("reconnect_needed", instances.instance(runtime.store(), "okta-bad").row.status)
  end)

  it("refuses malformed pages without losing committed data", function()
    local Client = require "sdk.client"
    local base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.01
    local n = count("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id)
    -- a page that cannot be read is asked again: once is survived, every time is refused
    tenant:fault { kind = "malformed", count = 1 }
    assert.is_true(select(2, runtime.sync(inst, { streams = { "users" } })))
    tenant:fault { kind = "malformed", count = 6 }
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    Client.BACKOFF_BASE = base
    assert.is_false(ok)
    assert.matches("bad_json", results[1].error)
    assert.equal(n, count("SELECT count(*) n FROM users WHERE instance_id = ? AND deleted_at IS NULL", inst.id))
  end)
end)
