-- sinks_spec.lua — alerts leave the machine: a signed webhook, Slack, syslog (local socket, TCP, TLS) and
-- email, each end to end against a local receiver; an alert is delivered once, and never lost while a
-- sink is down.
local helpers = require "helpers"
local root = (host and host.root) or "."
local procs = require "procs"
local slurp = procs.slurp
local bin = procs.BIN


local function records(path)
  local out = {}
  for rec in slurp(path):gmatch("(.-)\n\30\n") do out[#out + 1] = rec end
  return out
end

-- A receiver process (tests/e2e/sink_receivers.py) -> port, pid
local function receiver(dir, args)
  local p = assert(io.popen(("python3 '%s/tests/e2e/sink_receivers.py' %s & echo pid $!"):format(root, args)))
  local pid = p:read("l"):match("pid (%d+)")
  p:close()
  return pid
end

local function wait_ready(file)
  for _ = 1, 200 do
    local port = slurp(file):match("ready (%d+)")
    if port then return tonumber(port) end
    sched.sleep(0.05)
  end
  error("receiver did not start: " .. slurp(file))
end

describe("alert sinks", function()
  local dir, st, inst, sinks, pids, env
  before_each(function()
    dir = helpers.tmp_dir()
    host.home = dir
    package.loaded.runtime, package.loaded.sinks = nil, nil
    sinks = require "sinks"
    env = {}
    sinks.getenv = function(k) return env[k] end
    st = require("runtime").store()
    inst = helpers.instance("okta", "acme", { domain = "acme.okta.com" }, { api_token = "t" })
    pids = {}
  end)
  after_each(function()
    for _, pid in ipairs(pids) do os.execute("kill " .. pid .. " 2>/dev/null") end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local n = 0
  local function alert(severity, title)
    n = n + 1
    st:raise_alert { instance_id = inst.id, ext_id = "k" .. n, policy = "bruteforce", severity = severity,
      title = title or ("alert " .. n), entity = "users", entity_id = "u" .. n, evidence = { n = n } }
  end

  local function sink(def)
    local list = assert(sinks.load(dir) and (function()
      local f = assert(io.open(dir .. "/sinks.json", "wb")); f:write(json.encode { def }); f:close()
      return sinks.load(dir)
    end)())
    return list[1]
  end

  it("signs webhooks, retries while the receiver is down, and delivers each alert once", function()
    local got, up = {}, false
    local srv <close> = assert(server.listen { port = 0 })
    srv:route("POST", "/hook", function(req)
      if not up then return 503, "down" end
      local ts, sig = req.headers["x-cachost-timestamp"], req.headers["x-cachost-signature"]
      if sig ~= "v1=" .. crypto.hex(crypto.hmac_sha256("hmac-key", ts .. "." .. req.body)) then return 401, "bad signature" end
      got[#got + 1] = { body = json.decode(req.body), delivery = req.headers["x-cachost-delivery"] }
      return 200, "ok"
    end)
    env.HOOK_KEY = "hmac-key"
    local s = sink { name = "soc", kind = "webhook", url = srv.url .. "/hook", secret_env = "HOOK_KEY", min_severity = "medium" }
    alert("high", "before the sink existed")
    assert.same({ 0, 0 }, { sinks.deliver(st, s) })           -- a new sink starts after the newest alert
    alert("high", "one"); alert("low", "too low"); alert("critical", "two")
    assert.same({ 0, 1 }, { sinks.deliver(st, s) })           -- down: one failed attempt, nothing lost
    local h = st:sink_health()[1]
    assert.equal(2, h.waiting); assert.matches("HTTP 503", h.last_error)
    assert.same({ 0, 0 }, { sinks.deliver(st, s) })           -- the failed one waits its backoff
    assert(st.db:exec("UPDATE deliveries SET next_at = '2000-01-01T00:00:00.000Z'"))
    up = true
    assert.same({ 2, 0 }, { sinks.deliver(st, s) })
    assert.same({ 0, 0 }, { sinks.deliver(st, s) })           -- once
    assert.equal(2, #got)
    assert.same({ "one", "two" }, { got[1].body.title, got[2].body.title })
    assert.equal("acme", got[1].body.instance)
    assert.equal("soc:" .. got[1].body.id, got[1].delivery)
    assert.same({ n = n }, got[2].body.evidence)
    -- a wrong key is a failure the receiver refuses, and the secret never reaches the stored error
    env.HOOK_KEY = "another-key"
    alert("high", "three")
    assert.same({ 0, 1 }, { sinks.deliver(st, s) })
    assert.is_nil(st:sink_health()[1].last_error:find("another-key", 1, true))
  end)

  it("posts to Slack's incoming webhook", function()
    local got = {}
    local srv <close> = assert(server.listen { port = 0 })
    srv:route("POST", "/services/T0/B0/secret", function(req) got[#got + 1] = json.decode(req.body); return 200, "ok" end)
    env.SLACK_URL = srv.url .. "/services/T0/B0/secret"
    local s = sink { name = "chat", kind = "slack", url_env = "SLACK_URL" }
    sinks.deliver(st, s)
    alert("high", "Brute force on jane@acme.com")
    assert.same({ 1, 0 }, { sinks.deliver(st, s) })
    assert.equal("[HIGH] Brute force on jane@acme.com (policy bruteforce, users u" .. n .. " on acme)", got[1].text)
  end)

  it("writes RFC 5424 syslog to a local socket, over TCP and over verified TLS", function()
    local ok_certs = os.execute(("cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
      .. "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem >/dev/null 2>&1"):format(dir))
    assert.truthy(ok_certs)
    local cases = {
      { "unix", "unix '" .. dir .. "/log.sock'", function() return "unix:" .. dir .. "/log.sock" end },
      { "tcp", "tcp", function(port) return "tcp://127.0.0.1:" .. port end },
      { "tls", ("tls '%s/cert.pem' '%s/key.pem'"):format(dir, dir), function(port) return "tls://127.0.0.1:" .. port end },
    }
    local port
    for _, c in ipairs(cases) do
      local out, ready = dir .. "/" .. c[1] .. ".out", dir .. "/" .. c[1] .. ".ready"
      pids[#pids + 1] = receiver(dir, ("%s '%s' >'%s'"):format(c[2], out, ready))
      port = wait_ready(ready)
      local s = sink { name = "log-" .. c[1], kind = "syslog", address = c[3](port), facility = "authpriv",
                       ca_file = dir .. "/cert.pem" }
      sinks.deliver(st, s)
      alert("critical", 'Admin "role" granted ]')
      alert("medium", "second")
      assert.same({ 2, 0 }, { sinks.deliver(st, s) }, c[1])
      local got
      for _ = 1, 100 do got = records(out); if #got == 2 then break end; sched.sleep(0.05) end
      assert.equal(2, #got, c[1])
      -- authpriv (10) * 8 + crit (2) = 82; SD values escape " \ ]
      assert.matches('^<82>1 %d%d%d%d%-%d%d%-%d%dT[%d:.]+Z %S+ cachost %d+ alert %[cachost@32473 alert="%d+" policy="bruteforce" '
        .. 'severity="critical" instance="acme" entity="users" entity_id="u%d+"%] Admin "role" granted %]$', got[1], c[1])
      assert.matches("^<84>1 ", got[2], c[1])                    -- authpriv, warning
    end
    -- the TLS receiver (port) is refused when its certificate is not from the sink's CA, or names another
    -- host; a CA file that cannot be read is said so
    assert.truthy(os.execute(("cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other "
      .. "-addext subjectAltName=IP:127.0.0.2 -keyout other-key.pem -out other.pem >/dev/null 2>&1"):format(dir)))
    pids[#pids + 1] = receiver(dir, ("tls '%s/other.pem' '%s/other-key.pem' '%s/other.out' >'%s/other.ready'"):format(dir, dir, dir, dir))
    local other = wait_ready(dir .. "/other.ready")            -- its certificate names 127.0.0.2
    for i, c in ipairs {
      { "tls://127.0.0.1:" .. port, dir .. "/other.pem", "^tls: certificate: self%-signed certificate" },
      { "tls://127.0.0.1:" .. other, dir .. "/other.pem", "^tls: certificate: IP address mismatch" },
      { "tls://127.0.0.1:" .. port, "/nonexistent", "^tls: cannot load the CA certificates of /nonexistent" },
    } do
      local s = sink { name = "log-bad" .. i, kind = "syslog", address = c[1], ca_file = c[2] }
      sinks.deliver(st, s)
      alert("high")
      assert.same({ 0, 1 }, { sinks.deliver(st, s) }, c[1])
      local e = st.db:query("SELECT last_error FROM deliveries WHERE sink = ? AND last_error IS NOT NULL", s.name)[1]
      assert.matches(c[3], e.last_error)
    end
    assert.equal(0, #records(dir .. "/other.out"))
  end)

  it("sends email through SMTP", function()
    local out, ready = dir .. "/smtp.out", dir .. "/smtp.ready"
    pids[#pids + 1] = receiver(dir, ("smtp '%s' >'%s'"):format(out, ready))
    local port = wait_ready(ready)
    local s = sink { name = "mail", kind = "email", url = "smtp://127.0.0.1:" .. port, from = "cachost@acme.com",
                     to = { "soc@acme.com", "ciso@acme.com" } }
    sinks.deliver(st, s)
    alert("high", "Exfiltration from Box\r\nBcc: evil@example.com")
    assert.same({ 1, 0 }, { sinks.deliver(st, s) })
    local mail = records(out)[1]
    assert.matches("MAIL FROM:<cachost@acme.com>", mail)
    assert.matches("RCPT TO:<soc@acme.com>", mail)
    assert.matches("RCPT TO:<ciso@acme.com>", mail)
    assert.matches("\nSubject: %[cachost%] HIGH: Exfiltration from Box  Bcc: evil@example.com\r\n", mail)
    assert.is_nil(mail:find("\nBcc:", 1, true))                 -- no header injection
    assert.matches('"policy": "bruteforce"', mail)
  end)

  it("are served by cachost run from sinks.json, which it refuses to start with when broken", function()
        local out, ready = dir .. "/d.out", dir .. "/d.ready"
    pids[#pids + 1] = receiver(dir, ("unix '%s/d.sock' '%s' >'%s'"):format(dir, out, ready))
    wait_ready(ready)
    local f = assert(io.open(dir .. "/sinks.json", "wb"))
    f:write(json.encode { { name = "log", kind = "syslog", address = "unix:" .. dir .. "/d.sock" } }); f:close()
    local p = assert(io.popen(("CACHOST_HOME='%s' %s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 2>'%s/log' & echo $!")
      :format(dir, bin, dir)))
    local pid = p:read("l"); p:close()
    pids[#pids + 1] = pid
    for _ = 1, 200 do
      if slurp(dir .. "/log"):find('msg="alert sink"', 1, true) then break end
      sched.sleep(0.05)
    end
    alert("high", "raised while the daemon runs")
    local got
    for _ = 1, 300 do got = records(out); if #got > 0 then break end; sched.sleep(0.05) end
    os.execute("kill " .. pid)
    assert.equal(1, #got, slurp(dir .. "/log"))
    assert.matches("raised while the daemon runs$", got[1])

    f = assert(io.open(dir .. "/sinks.json", "wb")); f:write('[{"name": "x", "kind": "pager"}]'); f:close()
    local _, _, rc = os.execute(("CACHOST_HOME='%s' %s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >'%s/o' 2>&1")
      :format(dir, bin, dir))
    assert.equal(1, rc)
    assert.matches("^cachost: .*sinks%.json: sink 'x': unknown kind pager %(webhook, slack, syslog, email%)\n$", slurp(dir .. "/o"))
  end)

  it("refuses a broken configuration with one line naming the sink", function()
    local cases = {
      { '[{"name": "x", "kind": "pager"}]', "unknown kind pager" },
      { '[{"name": "x", "kind": "webhook", "url": "http://siem.example.com", "secret_env": "K"}]', "must be https://" },
      { '[{"name": "x", "kind": "slack"}]', "'url_env' is required" },
      { '[{"name": "x", "kind": "syslog", "address": "udp://h:514"}]', "'address' must be" },
      { '[{"name": "x", "kind": "email", "url": "smtp://h", "from": "a@b", "to": []}]', "'to' must list" },
      { '{"name": "x"}', "not a JSON array" },
      { '[42]', "sink #1: must be an object" },
      { "not json", "not a JSON array" },
      { '[{"name": "x", "kind": "slack", "url_env": "U"}, {"name": "x", "kind": "slack", "url_env": "U"}]', "two sinks named 'x'" },
    }
    for _, c in ipairs(cases) do
      local f = assert(io.open(dir .. "/sinks.json", "wb")); f:write(c[1]); f:close()
      local list, err = sinks.load(dir)
      assert.is_nil(list, c[1])
      assert.matches(c[2], err, 1, true)
    end
  end)
end)
