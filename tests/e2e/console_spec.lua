-- console_spec.lua — the web console end to end: the API refuses what it must (no session, no CSRF token, a
-- foreign origin, a viewer's change, too many failed sign-ins), then headless chromium drives it
-- (tests/browser/console.mjs: sign in, health, resolve the brute-force alert, undo the quarantine, switch a
-- policy to enforce, a viewer refused) on a `cachost run` whose store holds synced Okta and Box sandboxes.
-- Screenshots of each page go to build/console/.
local helpers = require "helpers"
local procs = require "procs"
local root = host.root

local ADMIN_PW, VIEWER_PW = "admin-password-for-tests", "viewer-password-for-tests"

describe("the web console", function()
  local dir, home, sandbox, daemon, url, okta_url, okta_token

  local function cli(args, env)
    local out, rc = procs.sh(("%s CACHOST_HOME='%s' %s %s </dev/null"):format(env or "", home, procs.BIN, args))
    assert(rc == 0, args .. ": " .. out)
    return out
  end
  -- -> status, decoded body, headers
  local function call(method, path, body, headers)
    local resp = assert(http.request { method = method, url = url .. path, body = body and json.encode(body),
      headers = headers or {} })
    return resp.status, json.decode(resp.body), resp.headers
  end

  setup(function()
    dir = helpers.tmp_dir()
    home = dir .. "/home"
    local tenants = dir .. "/tenants.txt"
    sandbox = procs.spawn(("%s sandbox okta box --size 20"):format(procs.BIN), tenants)
    local lines = procs.wait_for(tenants, "\nbox\t[^\n]*\n", 60)
    local function field(app, n) return lines:match("\n?" .. app .. "\t[^\t]*\t([^\t\n]*)\t?([^\n]*)") and select(n,
      lines:match("\n?" .. app .. "\t[^\t]*\t([^\t\n]*)\t?([^\n]*)")) end
    okta_url, okta_token = field("okta", 1), field("okta", 2)
    local box_url, box_cred = field("box", 1), field("box", 2)
    local function cred(k) return box_cred:match(k .. "=(%S+)") end
    cli(("instance add okta --name acme-okta --set domain=acme.okta.com --set base_url=%s --set insecure_loopback=true")
      :format(okta_url), "CACHOST_SET_API_TOKEN=" .. okta_token)
    cli(("instance add box --name acme-box --set auth=client_credentials --set client_id=%s --set enterprise_id=%s"
      .. " --set base_url=%s/2.0 --set upload_base_url=%s/api/2.0 --set oauth_base_url=%s --set insecure_loopback=true")
      :format(cred("client_id"), cred("enterprise_id"), box_url, box_url, box_url), "CACHOST_SET_CLIENT_SECRET=" .. cred("client_secret"))
    cli("policy mode bruteforce enforce")
    cli("policy mode sensitive_file_shared enforce")
    cli("sync acme-okta")
    cli("sync acme-box")
    local victim = cli([[query "SELECT email FROM users u JOIN instances i ON i.id = u.instance_id WHERE i.name = 'acme-okta'
      AND u.status = 'active' AND coalesce(u.is_admin, 0) = 0 ORDER BY u.email LIMIT 1" --format csv]]):match("\n(%S+)")
    procs.sh(("curl -s -X POST '%s/_sandbox/bruteforce' -d 'login=%s&failures=8'"):format(okta_url, victim))
    cli("sync acme-okta --stream activities --stream users")
    cli("console user add alice --role admin", "CACHOST_CONSOLE_PASSWORD=" .. ADMIN_PW)
    cli("console user add victor --role viewer", "CACHOST_CONSOLE_PASSWORD=" .. VIEWER_PW)
    daemon = procs.spawn(("CACHOST_HOME='%s' %s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --console 127.0.0.1:0")
      :format(home, procs.BIN), dir .. "/run.log")
    url = procs.wait_for(dir .. "/run.log", "msg=console url=(http://[%d%.:]+)/", 30):match("msg=console url=(http://[%d%.:]+)/")
  end)
  teardown(function()
    if daemon then procs.stop(daemon) end
    if sandbox then procs.stop(sandbox) end
    if not os.getenv("KEEP") then os.execute(("rm -rf '%s'"):format(dir)) else print(dir) end
  end)

  it("serves its page with a strict Content-Security-Policy and refuses the API without a session", function()
    local resp = assert(http.request { url = url .. "/" })
    assert.equal(200, resp.status)
    assert.matches("script%-src 'self'", resp.headers["content-security-policy"])
    assert.is_nil(resp.body:find("<script>", 1, true))                  -- no inline script anywhere
    assert.equal("DENY", resp.headers["x-frame-options"])
    local status, body = call("GET", "/api/instances")
    assert.equal(401, status); assert.equal("sign in first", body.error)
    assert.equal(401, (call("POST", "/api/governance/pause", {})))
    assert.equal(404, (assert(http.request { url = url .. "/../../etc/passwd" })).status)
  end)

  it("sets an HttpOnly SameSite=Strict cookie, and refuses a change without the CSRF token or from another origin", function()
    local status, body, headers = call("POST", "/api/login", { name = "alice", password = ADMIN_PW })
    assert.equal(200, status, json.encode(body))
    local cookie = headers["set-cookie"]
    assert.matches("HttpOnly", cookie); assert.matches("SameSite=Strict", cookie)
    local jar = { Cookie = cookie:match("^([^;]+)") }
    assert.equal(200, (call("GET", "/api/instances", nil, jar)))
    local s, b = call("POST", "/api/governance/pause", {}, jar)
    assert.equal(403, s); assert.matches("CSRF", b.error)
    jar["X-CSRF-Token"] = body.csrf
    jar.Origin = "http://evil.example"
    s, b = call("POST", "/api/governance/pause", {}, jar)
    assert.equal(403, s); assert.matches("cross%-origin", b.error)
    jar.Origin = nil
    -- the vault and the console's own accounts stay out of the SQL box
    s, b = call("POST", "/api/query", { sql = "SELECT hash FROM console_users" }, jar)
    assert.equal(400, s); assert.matches("^auth", b.error)
    assert.equal(200, (call("POST", "/api/logout", {}, jar)))
    assert.equal(401, (call("GET", "/api/instances", nil, jar)))      -- the session ended on the server
  end)

  it("connects a new instance: its secret goes to the vault and never comes back", function()
    local _, body, headers = call("POST", "/api/login", { name = "alice", password = ADMIN_PW })
    local jar = { Cookie = headers["set-cookie"]:match("^([^;]+)"), ["X-CSRF-Token"] = body.csrf }
    local s, apps = call("GET", "/api/connectors", nil, jar)
    assert.equal(200, s)
    local okta
    for _, a in ipairs(apps) do if a.app == "okta" then okta = a end end
    local secret = false
    for _, st in ipairs(okta.settings) do secret = secret or (st.name == "api_token" and st.secret) end
    assert.is_true(secret)
    local created
    s, created = call("POST", "/api/instances", { app = "okta", name = "second-okta", settings = { domain = "acme.okta.com",
      base_url = okta_url, insecure_loopback = "true", api_token = okta_token } }, jar)
    assert.equal(200, s, json.encode(created))
    assert.equal("********", created.settings.api_token)
    local r
    s, r = call("POST", "/api/instances/second-okta/connect", {}, jar)
    assert.equal(200, s, json.encode(r))
    assert.is_true(r.connected)
    local raw = assert(http.request { url = url .. "/api/instances", headers = { Cookie = jar.Cookie } }).body
    assert.is_nil(raw:find(okta_token, 1, true))
    assert.truthy(raw:find("second-okta", 1, true))
    s = call("POST", "/api/instances", { app = "okta", name = "bad name!", settings = {} }, jar)
    assert.equal(400, s)
    assert.equal(200, (call("POST", "/api/instances/second-okta/pause", {}, jar)))
  end)

  it("drives the console in headless chromium: health, alert, undo, enforce, a viewer refused", function()
    local shots = root .. "/build/console"
    os.execute(("mkdir -p '%s'"):format(shots))
    assert(host.stat("/usr/bin/chromium"), "no /usr/bin/chromium: make test installs it (make browser-deps)")
    assert(host.stat(root .. "/tests/browser/node_modules/playwright-core"), "no playwright-core: make browser-deps")
    local out, rc = procs.sh(("CONSOLE_URL='%s' ADMIN_PASSWORD='%s' VIEWER_PASSWORD='%s' SHOTS='%s' node '%s/tests/browser/console.mjs'")
      :format(url, ADMIN_PW, VIEWER_PW, shots, root))
    assert(rc == 0, out .. "\n(cachost run's log ends:\n" .. procs.slurp(dir .. "/run.log"):sub(-2000) .. ")")
    for _, page in ipairs { "sign-in", "apps", "alerts", "alert", "governance", "policies", "pictures", "person", "investigate", "viewer" } do
      assert.truthy(host.stat(shots .. "/" .. page .. ".png"), page)
    end
  end)

  it("serves over TLS with a given certificate (Secure cookie, HSTS); elsewhere than loopback only with TLS", function()
    local _, rc = procs.sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem"):format(dir, dir))
    assert.equal(0, rc)
    local out, code = procs.sh(("CACHOST_HOME='%s' %s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --console 0.0.0.0:0 </dev/null")
      :format(home, procs.BIN))
    assert.equal(1, code)
    assert.matches("only over TLS: give %-%-console%-cert and %-%-console%-key", out)
    local pid = procs.spawn(("CACHOST_HOME='%s' %s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --console 127.0.0.1:0"
      .. " --console-cert %s/cert.pem --console-key %s/key.pem"):format(home, procs.BIN, dir, dir), dir .. "/tls.log")
    local tls_url = procs.wait_for(dir .. "/tls.log", "msg=console url=(https://[%d%.:]+)/", 30):match("url=(https://[%d%.:]+)/")
    local resp = assert(http.request { method = "POST", url = tls_url .. "/api/login", ca_file = dir .. "/cert.pem",
      body = json.encode { name = "alice", password = ADMIN_PW } })
    procs.stop(pid)
    assert.equal(200, resp.status, resp.body)
    assert.matches("; Secure", resp.headers["set-cookie"])
    assert.matches("max%-age=", resp.headers["strict-transport-security"])
  end)

  it("stops answering sign-ins after ten failures from one address", function()
    local last
    for _ = 1, 11 do last = call("POST", "/api/login", { name = "mallory", password = "guess-guess-guess" }) end
    assert.equal(429, last)
    assert.equal(429, (call("POST", "/api/login", { name = "alice", password = ADMIN_PW })))
  end)
end)
