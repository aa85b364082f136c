-- daemon_spec.lua — scripts/daemon.lua: what a webhook names is re-fetched, a bounded number at a time.
local helpers = require "helpers"

describe("daemon.cadence", function()
  it("polls activities and the streams a connector reads incrementally; lists the others in full", function()
    local daemon = require "daemon"
    local sdk = require "sdk"
    local full, polled = daemon.cadence(assert(sdk.load("okta")))
    assert.same({ "activities" }, polled)
    assert.same({ "users", "groups", "privileges", "app_grants" }, full)
    full, polled = daemon.cadence(assert(sdk.load("salesforce")))
    assert.same({ "files", "activities" }, polled)
    assert.same({ "users", "groups", "privileges", "app_grants" }, full)
  end)
end)

describe("daemon.webhook", function()
  it("re-fetches what a notification names, at most REFETCHES at once, all of it", function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    local runtime = require "runtime"
    local daemon = require "daemon"
    helpers.instance("okta", "o", { domain = "x.okta.com" }, { api_token = "t" })
    local c = assert(require("sdk").load("okta"))
    local webhook, fetch = c.webhook, c.fetch.users
    local running, most, fetched = 0, 0, {}
    c.webhook = function()
      local names = {}
      for i = 1, 30 do names[i] = { entity = "users", id = "u" .. i } end
      return 200, { ok = true }, names
    end
    c.fetch.users = function(_, id)
      running = running + 1
      most = math.max(most, running)
      sched.sleep(0.005)
      running = running - 1
      if id == "u7" then error("the provider said no") end     -- a failure frees its slot too
      fetched[#fetched + 1] = id
    end
    local ok, err = pcall(function()
      local status = daemon.webhook { params = { instance = "o" }, headers = {}, body = "" }
      assert.equal(200, status)
      local t0 = sched.now()
      while #fetched < 29 and sched.now() - t0 < 5 do sched.sleep(0.01) end
    end)
    c.webhook, c.fetch.users = webhook, fetch
    runtime.watch(false)
    assert(ok, err)
    assert.equal(29, #fetched)
    assert.equal(daemon.REFETCHES, most)
  end)

  it("answers 500, not an empty 200, when the connector's answer cannot be JSON", function()
    local daemon = require "daemon"
    local c = assert(require("sdk").load("okta"))
    local webhook = c.webhook
    c.webhook = function() return 200, { broken = function() end } end
    local ok, status, body = pcall(daemon.webhook, { params = { instance = "o" }, headers = {}, body = "" })
    c.webhook = webhook
    assert(ok, status)
    assert.equal(500, status)
    assert.matches("internal error", body)
  end)
end)

describe("daemon webhook route", function()
  it("answers 404 (not 500) for an unknown or disabled instance and for an app without webhooks", function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime, package.loaded.daemon = nil, nil
    local runtime = require "runtime"
    local daemon = require "daemon"
    helpers.instance("azure", "az", { tenant_id = "t", client_id = "c" }, {})
    local off = helpers.instance("okta", "off", { domain = "x.okta.com" }, { api_token = "t" })
    assert(runtime.store().db:exec("UPDATE instances SET enabled = 0 WHERE id = ?", off.id))
    local srv <close> = assert(server.listen { port = 0 })
    srv:route("*", "/webhooks/:instance", daemon.webhook)
    for path, want in pairs { nope = "no such instance", off = "no such instance", az = "this app has no webhooks" } do
      local r = assert(http.request { method = "POST", url = srv.url .. "/webhooks/" .. path, body = "{}" })
      assert.equal(404, r.status, path)
      assert.same({ error = want }, json.decode(r.body))
    end
    assert.equal(0, srv:stats().failed)
  end)
end)
