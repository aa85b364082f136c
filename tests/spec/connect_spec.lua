-- Connecting instances through the providers' own flows, against sandbox tenants.
local runtime = require "runtime"
local instances = require "instances"
local connect = require "connect"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local add = require("helpers").instance

describe("connect", function()
  local gh, srv
  setup(function()
    host.home = tmp_home()
    package.loaded.runtime = nil
    runtime = require "runtime"
    gh = require("sandbox.github").new { seed = 3, org = "acme", members = 12,
      oauth_app = { client_id = "Iv1.dev", client_secret = "s3cret", name = "cachost" } }
    gh.device_interval = 1
    srv = assert(server.listen { port = 0 }); gh:mount(srv)
  end)
  teardown(function() srv:close() end)

  it("runs GitHub's device flow: shows a code, waits for the user, then fetches the users", function()
    local inst = add("github", "dev", { org = "acme", auth = "device", client_id = "Iv1.dev", base_url = srv.url,
      oauth_base_url = srv.url, insecure_loopback = true })
    local said = {}
    local t = sched.spawn(connect.run, inst, { say = function(line) said[#said + 1] = line end })
    local code
    for _ = 1, 50 do
      sched.sleep(0.05)
      code = said[1] and said[1]:match("enter the code (%S+)")
      if code then break end
    end
    assert(code, "a user code was shown")
    sched.sleep(1.2)                   -- a poll or two stay pending before the user acts
    local r = assert(http.request { method = "POST", url = srv.url .. "/login/device", body = "user_code=" .. code })
    assert.equal(200, r.status)
    assert.same({ true, true }, { t:join(30) })
    assert.matches("^gho_", instances.instance(runtime.store(), "dev"):secret("access_token"))
    assert.equal("connected", instances.instance(runtime.store(), "dev").row.status)
    assert.is_true(runtime.store().db:query("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id)[1].n >= 12)
  end)

  it("fails clearly when the device code is refused", function()
    local inst = add("github", "dev2", { org = "acme", auth = "device", client_id = "unknown-client", base_url = srv.url,
      oauth_base_url = srv.url, insecure_loopback = true })
    local ok, err = connect.run(inst)
    assert.is_nil(ok)
    assert.matches("^auth: device code endpoint answered without device_code: incorrect_client_credentials", err)
  end)

  it("refuses Office 365 components that cannot work, at add and at edit", function()
    local instances = require "instances"
    local st = runtime.store()
    local r, err = instances.add(st, "office365", "bad365", { tenant_id = "t", client_id = "c", components = "files" })
    assert.is_nil(r)
    assert.matches("'users' component .* is required", err)
    r, err = instances.add(st, "office365", "bad365", { tenant_id = "t", client_id = "c", components = "users,mail" })
    assert.is_nil(r)
    assert.matches("unknown component 'mail'", err)
    assert(instances.add(st, "office365", "ok365", { tenant_id = "t", client_id = "c", components = "users,files" }))
    r, err = instances.edit(st, "ok365", { components = "signins" })
    assert.is_nil(r)
    assert.matches("'users' component", err)
    assert(instances.remove(st, "ok365", { purge = true }))   -- one Office 365 instance at a time
  end)

  it("asks a Microsoft administrator's consent, then connects with app-only tokens", function()
    local ms = require("sandbox.microsoft").new { seed = 4, users = 10 }
    local msrv = assert(server.listen { port = 0 }); ms:mount(msrv)
    local inst = add("office365", "m365", { tenant_id = ms.tenant_id, client_id = ms.client_id, base_url = msrv.url,
      insecure_loopback = true, components = "users" }, { client_secret = ms.client_secret })
    local said = {}
    local t = sched.spawn(connect.run, inst, { say = function(line) said[#said + 1] = line end })
    local url
    for _ = 1, 50 do
      sched.sleep(0.05)
      for _, l in ipairs(said) do url = url or l:match("^(http%S+/adminconsent%?%S+)") end
      if url then break end
    end
    assert(url, "the consent URL was shown")
    -- the administrator's browser: the consent page redirects back to cachost's loopback server
    local r = assert(http.request { url = url })
    assert.equal(200, r.status)
    assert.matches("consent", r.body)
    assert.same({ true, true }, { t:join(30) })
    assert.equal(10, runtime.store().db:query("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id)[1].n)
    msrv:close()
  end)

  it("tests a token scheme with a real call and reports a bad token", function()
    local inst = add("github", "tok", { org = "acme", base_url = srv.url, insecure_loopback = true }, { token = "wrong" })
    local ok, err = connect.run(inst)
    assert.is_nil(ok)
    assert.matches("^auth: HTTP 401", err)
    assert.equal("reconnect_needed", instances.instance(runtime.store(), "tok").row.status)
  end)
end)
