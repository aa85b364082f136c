-- server: evhttp-based HTTP server, exercised over real sockets with the host's own http client and with
-- curl / bash /dev/tcp for what a well-behaved client cannot do (truncated requests, garbage, hang-ups).

-- Run a shell command in the background (io.popen would block the loop); returns the output file, which
-- ends with "rc=N" once the command is done.
local function bg(cmd)
  local out = os.tmpname()
  os.execute(("{ ( %s ) > %s 2>&1; echo rc=$? >> %s; } &"):format(cmd, out, out))
  return out
end

-- Wait (yielding to the loop) until the background command wrote its rc= line; returns output, rc.
local function wait_bg(out, timeout)
  local deadline = sched.now() + (timeout or 10)
  while sched.now() < deadline do
    local f = io.open(out)
    local s = f and f:read("a") or ""
    if f then f:close() end
    local rc = s:match("rc=(%d+)%s*$")
    if rc then os.remove(out); return s:gsub("rc=%d+%s*$", ""), tonumber(rc) end
    sched.sleep(0.02)
  end
  error("background command did not finish: " .. out)
end

local function get(srv, path, opts)
  opts = opts or {}
  opts.url = srv.url .. path
  return http.request(opts)
end

describe("server", function()
  local srv

  before_each(function()
    srv = assert(server.listen{ host = "127.0.0.1", port = 0, max_body = 1024, timeout = 5 })
  end)

  after_each(function()
    if tostring(srv) ~= "server (closed)" then srv:close() end
  end)

  it("listens on a free port when asked for port 0 and reports it", function()
    assert.is_true(srv.port > 0 and srv.port < 65536)
    assert.equal("127.0.0.1", srv.host)
    assert.equal("http://127.0.0.1:" .. srv.port, srv.url)
    assert.matches("^server 127%.0%.0%.1:%d+$", tostring(srv))
    -- the port is really bound: a second server on it fails with a clear error
    local other, err = server.listen{ port = srv.port }
    assert.is_nil(other)
    assert.matches("^bind: Address already in use", err)
  end)

  it("serves HTTPS with a given certificate and key, and says clearly when they do not load", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(host.mkdir(dir, 448))
    local _, _, rc = os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem 2>/dev/null"):format(dir, dir))
    assert.equal(0, rc)
    local tls = assert(server.listen { port = 0, tls = { cert = dir .. "/cert.pem", key = dir .. "/key.pem" } })
    tls:route("GET", "/hello", function(req) return 200, "hi over tls" end)
    assert.matches("^https://127%.0%.0%.1:%d+$", tls.url)
    local r = assert(http.request { url = tls.url .. "/hello", ca_file = dir .. "/cert.pem" })
    assert.equal(200, r.status); assert.equal("hi over tls", r.body)
    -- a client that does not trust the certificate is refused by its own TLS check; plain HTTP gets nothing
    local none, err = http.request { url = tls.url .. "/hello" }
    assert.is_nil(none); assert.matches("^tls", err)
    local plain = http.request { url = tls.url:gsub("^https", "http") .. "/hello", timeout = 3 }
    assert.is_true(plain == nil or plain.status >= 400)
    tls:close()
    local bad, berr = server.listen { port = 0, tls = { cert = dir .. "/missing.pem", key = dir .. "/key.pem" } }
    assert.is_nil(bad); assert.matches("^tls: certificate", berr)
    bad, berr = server.listen { port = 0, tls = { cert = dir .. "/cert.pem", key = dir .. "/cert.pem" } }
    assert.is_nil(bad); assert.matches("^tls: key", berr)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("routes by method and pattern, capturing :params and a final *", function()
    srv:route("GET", "/users/:id", function(req) return 200, "user " .. req.params.id end)
    srv:route("GET", "/users/:id/repos/:repo", function(req)
      return 200, req.params.id .. "/" .. req.params.repo
    end)
    srv:route("*", "/files/*", function(req) return 200, req.method .. " rest=" .. req.params.rest end)
    srv:route("GET", "/", function() return 200, "root" end)
    assert.equal("user 42", get(srv, "/users/42").body)
    assert.equal("a%20b/x", get(srv, "/users/a%2520b/repos/x").body)   -- params are decoded once
    assert.equal("GET rest=a/b/c.txt", get(srv, "/files/a/b/c.txt").body)
    assert.equal("DELETE rest=", get(srv, "/files/", { method = "DELETE" }).body)
    assert.equal("root", get(srv, "/").body)
    -- a :param needs a non-empty segment; extra segments do not match
    assert.equal(404, get(srv, "/users/").status)
    assert.equal(404, get(srv, "/users/1/repos").status)
  end)

  it("uses the first matching route", function()
    srv:route("GET", "/a/:x", function() return 200, "first" end)
    srv:route("GET", "/a/b", function() return 200, "second" end)
    assert.equal("first", get(srv, "/a/b").body)
  end)

  it("answers 404 and 405 with small JSON bodies", function()
    srv:route("POST", "/things", function() return 201, "{}" end)
    srv:route("PUT", "/things", function() return 200, "{}" end)
    local r = assert(get(srv, "/nothing-here"))
    assert.equal(404, r.status)
    assert.equal('{"error":"not found"}', r.body)
    assert.equal("application/json", r.headers["content-type"])
    r = assert(get(srv, "/things"))
    assert.equal(405, r.status)
    assert.equal('{"error":"method not allowed"}', r.body)
    assert.equal("POST, PUT", r.headers["allow"])
  end)

  it("gives the handler method, path, query, headers, body and remote", function()
    local seen
    srv:route("POST", "/echo/:k", function(req) seen = req; return 200, "ok" end)
    local r = assert(http.request{ method = "POST", url = srv.url .. "/echo/v?a=1&b=x%20y&a=2&c=d+e&flag",
                                   headers = { ["X-Custom-Thing"] = "Value 1", ["Content-Type"] = "text/plain" },
                                   body = "hello\0world" })
    assert.equal(200, r.status)
    assert.equal("POST", seen.method)
    assert.equal("/echo/v", seen.path)
    assert.equal("a=1&b=x%20y&a=2&c=d+e&flag", seen.raw_query)
    assert.same({ a = "2", b = "x y", c = "d e", flag = "" }, seen.query)
    assert.equal("Value 1", seen.headers["x-custom-thing"])
    assert.equal("text/plain", seen.headers["content-type"])
    assert.equal("11", seen.headers["content-length"])
    assert.equal("hello\0world", seen.body)
    assert.same({ k = "v" }, seen.params)
    assert.matches("^127%.0%.0%.1:%d+$", seen.remote)
  end)

  it("sends status, headers and body, with Content-Length and a default Content-Type", function()
    srv:route("GET", "/json", function() return 200, '{"a":1}' end)
    srv:route("GET", "/text", function() return 202, "plain", { ["X-Thing"] = 7 } end)
    srv:route("GET", "/typed", function()
      return 200, "<p>hi</p>", { ["Content-Type"] = "text/html", ["Content-Length"] = "999" }
    end)
    srv:route("GET", "/empty", function() return 204 end)
    local r = assert(get(srv, "/json"))
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("7", r.headers["content-length"])
    r = assert(get(srv, "/text"))
    assert.equal(202, r.status)
    assert.equal("plain", r.body)
    assert.equal("7", r.headers["x-thing"])
    assert.matches("^text/plain", r.headers["content-type"])
    r = assert(get(srv, "/typed"))
    assert.equal("text/html", r.headers["content-type"])
    assert.equal("9", r.headers["content-length"])   -- the handler's wrong length is replaced
    assert.equal("<p>hi</p>", r.body)
    r = assert(get(srv, "/empty"))
    assert.equal(204, r.status)
    assert.equal("", r.body)
  end)

  it("runs handlers as tasks: a sleeping handler does not block another request", function()
    local order = {}
    srv:route("GET", "/slow", function() sched.sleep(0.3); order[#order + 1] = "slow"; return 200, "slow" end)
    srv:route("GET", "/fast", function() order[#order + 1] = "fast"; return 200, "fast" end)
    local t0 = sched.now()
    local slow = sched.spawn(get, srv, "/slow")
    sched.sleep(0.05)
    local r = assert(get(srv, "/fast"))
    assert.equal("fast", r.body)
    assert.is_true(sched.now() - t0 < 0.25, "the fast request waited for the slow one")
    local ok, rs = slow:join()
    assert.is_true(ok)
    assert.equal("slow", rs.body)
    assert.same({ "fast", "slow" }, order)
  end)

  it("turns a handler error into a 500 without leaking the message", function()
    srv:route("GET", "/boom", function() error("database password is hunter2") end)
    srv:route("GET", "/nothing", function() end)
    srv:route("GET", "/badstatus", function() return "yes" end)
    srv:route("GET", "/badheader", function() return 200, "x", { ["X-Evil"] = "a\r\nSet-Cookie: owned=1" } end)
    for _, path in ipairs{ "/boom", "/nothing", "/badstatus", "/badheader" } do
      local r = assert(get(srv, path))
      assert.equal(500, r.status, path)
      assert.equal('{"error":"internal error"}', r.body, path)
      assert.is_nil(r.headers["set-cookie"], path)
      assert.is_nil(r.headers["x-evil"], path)
    end
    assert.equal(4, srv:stats().failed)
    -- the server still serves afterwards
    srv:route("GET", "/ok", function() return 200, "ok" end)
    assert.equal("ok", get(srv, "/ok").body)
  end)

  it("drops the connection without an answer on server.DROP", function()
    assert.equal("server.DROP", tostring(server.DROP))
    srv:route("GET", "/drop", function() return server.DROP end)
    local out = bg(("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/drop"):format(srv.port))
    local body, rc = wait_bg(out)
    assert.equal(56, rc, "curl exit code (56 = connection reset): " .. body)   -- RST, not an empty reply
    assert.equal("000", body)
    local r, err = get(srv, "/drop")
    assert.is_nil(r)
    assert.matches("^reset", err)
    assert.is_true(srv:stats().dropped >= 2)
  end)

  it("answers 413 (from evhttp) for a body over max_body, and serves on", function()
    local called = false
    srv:route("POST", "/upload", function(req) called = true; return 200, tostring(#req.body) end)
    local r = assert(http.request{ method = "POST", url = srv.url .. "/upload", body = string.rep("x", 1024) })
    assert.equal(200, r.status)
    assert.equal("1024", r.body)
    called = false
    r = assert(http.request{ method = "POST", url = srv.url .. "/upload", body = string.rep("x", 5000) })
    assert.equal(413, r.status)
    assert.is_false(called)
    assert.equal("1024", assert(http.request{ method = "POST", url = srv.url .. "/upload", body = string.rep("y", 1024) }).body)
  end)

  it("rejects oversized headers, garbage and truncated requests without calling a handler", function()
    srv:close()
    srv = assert(server.listen{ timeout = 1 })            -- so the truncated body times out quickly
    local called = 0
    srv:route("*", "/*", function() called = called + 1; return 200, "ok" end)
    local r = assert(http.request{ url = srv.url .. "/h", headers = { ["X-Big"] = string.rep("b", 70000) } })
    assert.equal(400, r.status)                         -- evhttp's answer to headers over max_headers
    local function raw(bytes)
      return bg(("bash -c \"exec 3<>/dev/tcp/127.0.0.1/%d; printf '%s' >&3; timeout 8 cat <&3\""):format(srv.port, bytes))
    end
    local garbage = raw([[NOT HTTP AT ALL\r\n\r\n]])
    local truncated = raw([[POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc]])
    local badlen = raw([[POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n]])
    local out = wait_bg(garbage)
    assert.matches("^HTTP/1%.%d 400", out)
    out = wait_bg(badlen)
    assert.matches("^HTTP/1%.%d 400", out)
    out = wait_bg(truncated)                            -- evhttp times the body out (timeout = 1) and closes
    assert.equal("", out)
    assert.equal(0, called)
    assert.equal("ok", get(srv, "/still-alive").body)
  end)

  it("survives a client that hangs up while its handler runs", function()
    local finished = 0
    srv:route("GET", "/slow", function() sched.sleep(1); finished = finished + 1; return 200, "late" end)
    srv:route("GET", "/ok", function() return 200, "ok" end)
    local out = bg(("curl -s --max-time 0.2 http://127.0.0.1:%d/slow"):format(srv.port))
    local _, rc = wait_bg(out)
    assert.equal(28, rc)                                -- curl: operation timed out
    sched.sleep(0.1)
    local st = srv:stats()
    assert.equal(1, st.gone)                            -- noticed while the handler still sleeps
    assert.equal(0, st.inflight)
    assert.equal(0, finished)
    assert.equal("ok", get(srv, "/ok").body)
    sched.sleep(1)                                      -- the late reply is dropped safely
    assert.equal(1, finished)
    assert.equal("ok", get(srv, "/ok").body)
  end)

  it("closes with handlers in flight; their late replies go nowhere", function()
    srv:route("GET", "/slow", function() sched.sleep(0.2); return 200, "late" end)
    local t = sched.spawn(get, srv, "/slow")
    sched.sleep(0.05)
    assert.equal(1, srv:stats().inflight)
    srv:close()
    assert.equal("server (closed)", tostring(srv))
    local ok, r, err = t:join()
    assert.is_true(ok)
    assert.is_nil(r)
    assert.is_string(err)
    sched.sleep(0.3)                                    -- the handler finishes after the close
    assert.has_error(function() srv:route("GET", "/", print) end, "attempt to use a closed server")
    assert.has_error(function() srv:stats() end, "attempt to use a closed server")
  end)

  it("serves 200 concurrent requests", function()
    local active, peak = 0, 0
    srv:route("GET", "/n/:i", function(req)
      active = active + 1
      if active > peak then peak = active end
      sched.sleep(0.05)
      active = active - 1
      return 200, req.params.i
    end)
    local tasks = {}
    for i = 1, 200 do tasks[i] = sched.spawn(get, srv, "/n/" .. i, { timeout = 20 }) end
    for i = 1, 200 do
      local ok, r, err = tasks[i]:join()
      assert.is_true(ok)
      assert.is_table(r, err)
      assert.equal(200, r.status)
      assert.equal(tostring(i), r.body)
    end
    assert.is_true(peak > 20, "peak concurrency " .. peak)
    assert.equal(200, srv:stats().served)
    assert.equal(0, srv:stats().inflight)
  end)

  it("checks its arguments", function()
    assert.has_error(function() server.listen{ port = "80" } end)
    assert.has_error(function() server.listen{ port = 70000 } end)
    assert.has_error(function() server.listen{ request_timeout = 0 } end)
    assert.has_error(function() server.listen{ timeout = "soon" } end)
    assert.has_error(function() server.listen{ max_connections = 0 } end)
    assert.has_error(function() srv:route("get", "/", print) end)
    assert.has_error(function() srv:route("GET", "no-slash", print) end)
    assert.has_error(function() srv:route("GET", "/a/*/b", print) end)
    assert.has_error(function() srv:route("GET", "/a", "not a function") end)
    local s2, err = server.listen{ host = "203.0.113.1" }     -- not an address of this machine
    assert.is_nil(s2)
    assert.matches("^bind: ", err)
  end)

  it("listens on IPv6 loopback", function()
    local s6, err = server.listen{ host = "::1" }
    if not s6 then pending("no IPv6 here: " .. tostring(err)); return end
    s6:route("GET", "/", function(req) return 200, req.remote end)
    assert.equal("http://[::1]:" .. s6.port, s6.url)
    local r = assert(http.request{ url = s6.url .. "/" })
    assert.matches("^%[::1%]:%d+$", r.body)
    s6:close()
  end)

  it("closes via <close> and collects closed servers", function()
    do
      local s <close> = assert(server.listen{})
      s:route("GET", "/", function() return 200, "x" end)
    end
    collectgarbage(); collectgarbage()
    assert.has_error(function() srv:close(); srv:close() end, "attempt to use a closed server")
  end)
end)
