-- metrics_spec.lua — the operator's endpoints of `cachost run`: /healthz, /readyz and /metrics in the
-- Prometheus text format, after a real sync of an Okta sandbox tenant.
local helpers = require "helpers"

-- The text format: "# HELP", "# TYPE", then `name{labels} value` lines -> { [name .. labels] = value }
local function parse(text)
  local series, types = {}, {}
  for line in text:gmatch("[^\n]+") do
    local name, kind = line:match("^# TYPE (%S+) (%S+)$")
    if name then types[name] = kind
    elseif not line:match("^# HELP ") then
      local key, value = line:match("^([%w_]+%b{}) (%S+)$")
      if not key then key, value = line:match("^([%w_]+) (%S+)$") end
      assert(key, "not a sample line: " .. line)
      series[key] = assert(tonumber(value), line)
    end
  end
  return series, types
end

describe("operator endpoints", function()
  it("serve health, readiness and metrics from the store and the process", function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime, package.loaded.daemon = nil, nil
    local runtime, daemon, metrics = require "runtime", require "daemon", require "metrics"
    metrics.reset()
    local tenant = require("sandbox.okta").new { seed = 3, users = 12, events_per_day = 20, days = 2 }
    local sandbox <close> = helpers.serve(tenant)
    local inst = helpers.instance("okta", "acme", { domain = "acme.okta.com", base_url = sandbox.url, insecure_loopback = true },
      { api_token = tenant.token })
    runtime.watch(true)                   -- policies see the change feed, as in the daemon
    helpers.sync_ok(inst)
    runtime.store():raise_alert { instance_id = inst.id, ext_id = "k1", policy = "bruteforce", severity = "high",
      title = "t", entity = "users", entity_id = "u1", evidence = "{}" }

    local srv <close> = assert(server.listen { port = 0 })
    daemon.ops_routes(srv)
    local r = assert(http.request { url = srv.url .. "/healthz" })
    assert.equal(200, r.status)
    r = assert(http.request { url = srv.url .. "/readyz" })
    assert.equal(200, r.status)
    r = assert(http.request { url = srv.url .. "/metrics" })
    assert.equal(200, r.status)
    assert.matches("^text/plain; version=0.0.4", r.headers["content-type"])
    local m, types = parse(r.body)
    assert.equal("counter", types.cachost_http_requests_total)
    assert.is_true(m['cachost_http_requests_total{app="okta",status="200"}'] >= 5)
    assert.is_true(m['cachost_policy_evaluations_total{policy="bruteforce"}'] > 0)
    assert.equal(0, m['cachost_stream_error{instance="acme",stream="users"}'])
    assert.equal(1, m['cachost_stream_state{instance="acme",state="ok",stream="users"}'])
    assert.equal(tenant:count("users"), m['cachost_stream_rows{instance="acme",op="added",stream="users"}'])
    assert.near(sched.time(), m['cachost_stream_last_success_timestamp_seconds{instance="acme",stream="users"}'], 120)
    assert.is_true(m['cachost_activity_lag_seconds{instance="acme"}'] >= 0)
    assert.equal(1, m['cachost_alerts{policy="bruteforce",severity="high",status="open"}'])
    assert.equal(16, m.cachost_scan_slots)
    assert.equal(0, m.cachost_scan_slots_in_use)
    assert.equal(1, m.cachost_up)
    runtime.watch(false)
  end)

  it("escapes label values and keeps one series per label set", function()
    local metrics = require "metrics"
    metrics.reset()
    metrics.inc("cachost_http_requests_total", { status = 200, app = 'a"b\\c\nd' })
    metrics.inc("cachost_http_requests_total", { app = 'a"b\\c\nd', status = 200 }, 2)
    local st = { health_snapshot = function() return { streams = {}, newest = {}, alerts = {}, actions = {}, deliveries = {} } end }
    local text = metrics.render(st)
    assert.matches('cachost_http_requests_total{app="a\\"b\\\\c\\nd",status="200"} 3\n', text, 1, true)
    metrics.reset()
  end)
end)
