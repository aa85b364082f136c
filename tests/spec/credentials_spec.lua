-- Issue 10, defect 5: credentials go only to the instance's own hosts, over TLS, and no error that is
-- stored or printed carries a secret.
local context = require "sdk.context"
local runtime = require "runtime"
local instances = require "instances"
local tenants = require "tenants"
local helpers = require "helpers"
local Client = require "sdk.client"

local BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

-- Every secret of an instance: its vault's values (API tokens, client secrets, tokens obtained).
local function secrets_of(inst)
  local out = {}
  for _, r in ipairs(runtime.store().db:query("SELECT name FROM secrets WHERE instance_id = ?", inst.id)) do
    out[#out + 1] = inst:secret(r.name)
  end
  return out
end

local function assert_clean(text, secrets, what)
  for _, s in ipairs(secrets) do
    assert(not text:find(s, 1, true), what .. " shows a secret: " .. text)
  end
end

-- `cachost sync NAME --stream users` in this process (the sandbox answers from it): its output.
local function cli_sync(name)
  local out = {}
  local ctx = { out = function(fmt, ...) out[#out + 1] = fmt:format(...) end, err = function() end,
                fail = function(fmt, ...) out[#out + 1] = fmt:format(...); return 1 end }
  local code = require("cli.sync").run({ stream = { "users" }, ["no-policies"] = true }, { name }, ctx)
  return table.concat(out), code
end

describe("credentials", function()
  local running = {}
  local foreign, hits
  setup(function()
    host.home = helpers.tmp_dir()
    -- another host (another loopback port): it records what reached it
    hits = {}
    foreign = assert(server.listen { port = 0 })
    foreign:route("*", "/*", function(req)
      hits[#hits + 1] = { path = req.path, authorization = req.headers["authorization"] }
      return 200, "[]"
    end)
  end)
  teardown(function()
    foreign:close()
    for _, r in pairs(running) do r.srv:close() end
  end)

  for _, app in ipairs(tenants.APPS) do
    describe(app, function()
      local r, live
      setup(function()
        r = tenants.start(app, app .. "-c")
        running[app] = r
        helpers.sync_ok(r.inst, { streams = { "users" } })
        live = helpers.n_of("users", r.inst)
      end)

      it("never follows a next link to another host", function()
        hits = {}
        r.tenant:fault { kind = "next", url = foreign.url .. "/stolen?page=2", path = tenants.USERS_PATH[app], count = 1 }
        local results, ok = runtime.sync(r.inst, { streams = { "users" } })
        assert.equal(0, #hits, "a request reached the other host")
        -- Box pages by marker, Google by page token: answers that carry no URL to follow (next_links = false)
        if require("tenants." .. app).next_links ~= false then
          assert.is_false(ok)
          assert.matches("^refused: " .. foreign.url:gsub("[%.%-]", "%%%0") .. " is not a host of this instance", results[1].error)
        end
        assert.equal(live, helpers.n_of("users", r.inst))
      end)

      it("keeps an echoed Authorization header out of sync, status and the stored error", function()
        r.tenant:fault { kind = "echo", path = tenants.USERS_PATH[app], count = 1 }
        local out, code = cli_sync(r.inst.name)
        assert.equal(1, code)
        assert.matches("FAIL", out)
        assert.matches("HTTP 400", out)
        local secrets = secrets_of(r.inst)
        assert.is_true(#secrets > 0)
        assert_clean(out, secrets, "cachost sync")
        local stored = runtime.store():stream(r.inst.id, "users").last_error
        assert.matches("HTTP 400", stored)
        assert_clean(stored, secrets, "stream_state.last_error")
        local p = io.popen(("CACHOST_HOME='%s' %s status %s --format csv 2>&1"):format(host.home, BIN, r.inst.name))
        local status = p:read("a")
        p:close()
        assert.matches("HTTP 400", status)
        assert_clean(status, secrets, "cachost status")
        assert.equal(live, helpers.n_of("users", r.inst))
      end)
    end)
  end

  it("sends no credentials along a redirect to another host (Box's content download is a 302)", function()
    hits = {}
    local redirector = assert(server.listen { port = 0 })
    redirector:route("GET", "/*", function() return 302, "", { Location = foreign.url .. "/download" } end)
    local inst = helpers.instance("okta", "o-redirect", { domain = "acme.okta.com", base_url = redirector.url,
      insecure_loopback = true }, { api_token = "00redirect-token-must-stay-home" })
    local ctx = require("sync").context(runtime.store(), inst, "test")
    local resp = context.client(ctx):request("GET", "/api/v1/users/x/content", { raw = true })
    redirector:close()
    assert.equal(200, resp.status)
    assert.equal(1, #hits)
    assert.is_nil(hits[1].authorization)
  end)

  it("refuses a base_url over plain http to another host, at add, edit and request time", function()
    local st = runtime.store()
    local row, err = instances.add(st, "okta", "o-http", { domain = "acme.okta.com", base_url = "http://10.0.0.1",
      api_token = "00secret-token-never-sent-in-clear" })
    assert.is_nil(row)
    assert.equal("setting 'base_url': insecure: http://10.0.0.1:80 is not https: credentials are only sent over TLS", err)
    -- insecure_loopback is for loopback addresses only
    row, err = instances.add(st, "okta", "o-http", { domain = "acme.okta.com", base_url = "http://10.0.0.1/",
      insecure_loopback = "true", api_token = "00secret-token-never-sent-in-clear" })
    assert.is_nil(row)
    assert.matches("not https", err)
    -- loopback http needs insecure_loopback
    row, err = instances.add(st, "okta", "o-http", { domain = "acme.okta.com", base_url = "http://127.0.0.1:9",
      api_token = "00secret-token-never-sent-in-clear" })
    assert.is_nil(row)
    assert.matches("insecure_loopback=true", err)
    assert(instances.add(st, "okta", "o-https", { domain = "acme.okta.com", api_token = "00secret-token-never-sent-in-clear" }))
    row, err = instances.edit(st, "o-https", { base_url = "http://10.0.0.1" })
    assert.is_nil(row)
    assert.matches("not https", err)
    row, err = instances.add(st, "box", "b-http", { client_id = "x", upload_base_url = "http://upload.example.com/api/2.0" })
    assert.is_nil(row)
    assert.matches("^setting 'upload_base_url': insecure: ", err)
    -- stored some other way (an older version): refused when a request would be sent
    local inst = helpers.instance("okta", "o-old", { domain = "acme.okta.com", base_url = "http://10.0.0.1" },
      { api_token = "00secret-token-never-sent-in-clear" })
    local t0 = sched.now()
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.equal("insecure: http://10.0.0.1:80 is not https: credentials are only sent over TLS", results[1].error)
    assert.is_true(sched.now() - t0 < 5, "no connection was attempted")
  end)

  it("redacts credentials, one line, bounded", function()
    local r = Client.redact
    assert.equal("auth: HTTP 401: Authorization: ******** rest", r("auth: HTTP 401: Authorization: SSWS 00abc-def_ghi\r\nrest"))
    assert.equal('{"authorization":"********"}', r('{"authorization":"Bearer abc.def"}'))
    assert.equal("sent Bearer ******** and Basic ********", r("sent Bearer abcd1234efgh and Basic dXNlcjpwYXNz"))
    assert.equal("Basic authentication failed", r("Basic authentication failed"))
    assert.equal("Authorization has been denied for this request.", r("Authorization has been denied for this request."))
    assert.equal("Invalid token provided (E0000011)", r("Invalid token provided (E0000011)"))
    assert.equal("jwt ******** gh ********", r("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln gh ghp_abcdefABCDEF0123456789"))
    assert.equal('x access_token=******** &y "client_secret": "********"', r('x access_token=abc123 &y "client_secret": "s3cr3t"'))
    assert.equal("the key ******** leaked", r("the key hunter2-is-mine leaked", { "hunter2-is-mine" }))
    local long = r(("x"):rep(5000))
    assert.is_true(#long < 450)
    assert.matches("%(cut%)$", long)
  end)
end)
