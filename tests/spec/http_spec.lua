-- http_spec.lua — the http client (host/http.c) against an independent HTTP/1.1 server
-- (tests/e2e/http_server.py, started in a child process).  Runs inside the host: `cachost test`.

local root = (host and host.root) or "."

local function start_server(tls_args)
  local p = assert(io.popen("exec sh -c 'echo $$; exec python3 " .. root .. "/tests/e2e/http_server.py "
                            .. (tls_args or "") .. "'", "r"))
  local pid = assert(tonumber(p:read("l")), "server pid")
  local port = assert(tonumber(p:read("l")), "server port")
  local scheme = tls_args and "https" or "http"
  return { pipe = p, pid = pid, port = port, url = scheme .. "://127.0.0.1:" .. port }
end

local function stop_server(s)
  os.execute("kill " .. s.pid .. " 2>/dev/null")
  s.pipe:close()
end

-- a port nothing listens on: bind, note, close (racy only against other processes grabbing it)
local function dead_port() return 1 end

local function read_file(path)
  local f = io.open(path, "r"); if not f then return "" end
  local s = f:read("a"); f:close(); return s
end

describe("http", function()
  local srv
  setup(function() srv = start_server() end)
  teardown(function() stop_server(srv) end)

  describe("helpers", function()
    it("urlencode keeps only unreserved characters", function()
      assert.are.equal("a%20b%26c%2Fd-_.~%C3%A9", http.urlencode("a b&c/d-_.~é"))
      assert.are.equal("", http.urlencode(""))
    end)

    it("form sorts keys, escapes both sides, repeats array values", function()
      assert.are.equal("a=x%20y&b=1&b=2&c=true&d=3", http.form{ d = 3, c = true, b = { "1", "2" }, a = "x y" })
      assert.are.equal("", http.form{})
      assert.has_error(function() http.form{ [1] = "x" } end)
      assert.has_error(function() http.form{ a = {} , b = function() end } end)
    end)

    it("parse_url splits a URL with curl's parser", function()
      local u = http.parse_url("https://user:pw@Example.com/a/b?x=1&y=2#frag")
      assert.are.equal("https", u.scheme)
      assert.are.equal("Example.com", u.host)
      assert.are.equal(443, u.port)
      assert.are.equal("/a/b", u.path)
      assert.are.equal("x=1&y=2", u.query)
      assert.are.equal(8080, http.parse_url("http://h:8080").port)
      local bad, err = http.parse_url("http://exa mple.com/")
      assert.is_nil(bad)
      assert.matches("^bad_url", err)
    end)
  end)

  describe("request", function()
    it("GET with query and headers, all echoed", function()
      local r, err = http.request{ url = srv.url .. "/echo?z=0", query = { b = "2", a = "x y&z" },
                                   headers = { ["X-Custom"] = "one", ["x-num"] = 42 } }
      assert.is_nil(err)
      assert.are.equal(200, r.status)
      assert.are.equal("application/json", r.headers["content-type"])
      local e = json and json.decode(r.body)
      if e then
        assert.are.equal("GET", e.method)
        assert.are.equal("z=0&a=x%20y%26z&b=2", e.query)
        assert.are.equal("one", e.headers["x-custom"])
        assert.are.equal("42", e.headers["x-num"])
        assert.matches("^cachost/", e.headers["user-agent"])
      else
        assert.truthy(r.body:find('"query": "z=0&a=x%20y%26z&b=2"', 1, true))
        assert.truthy(r.body:find('"x-custom": "one"', 1, true))
        assert.truthy(r.body:find('"x-num": "42"', 1, true))
      end
    end)

    it("POST, PUT, PATCH, DELETE send their body", function()
      for _, m in ipairs{ "POST", "PUT", "PATCH", "DELETE" } do
        local r = assert(http.request{ method = m, url = srv.url .. "/echo", body = "payload-" .. m,
                                       headers = { ["content-type"] = "text/plain" } })
        assert.are.equal(200, r.status)
        assert.truthy(r.body:find('"method": "' .. m .. '"', 1, true), m)
        assert.truthy(r.body:find('"body": "payload-' .. m .. '"', 1, true), m)
        assert.truthy(r.body:find('"content-type": "text/plain"', 1, true), m)
      end
      local r = assert(http.request{ method = "post", url = srv.url .. "/echo" })   -- no body, lowercase
      assert.truthy(r.body:find('"method": "POST"', 1, true))
      assert.truthy(r.body:find('"content-length": "0"', 1, true))
    end)

    it("HEAD returns headers and no body", function()
      local r = assert(http.request{ method = "HEAD", url = srv.url .. "/big?n=500" })
      assert.are.equal(200, r.status)
      assert.are.equal("", r.body)
      assert.are.equal("500", r.headers["content-length"])
    end)

    it("response header names are lowercase; repeats are joined", function()
      local r = assert(http.request{ url = srv.url .. "/headers" })
      assert.are.equal("v", r.headers["x-mixed-case"])
      assert.is_nil(r.headers["X-Mixed-Case"])
      assert.are.equal("a, b", r.headers["x-multi"])
      assert.are.equal("a=1; Path=/\nb=2", r.headers["set-cookie"])
      assert.are.equal('<http://x/?page=2>; rel="next", <http://x/?page=9>; rel="last"', r.headers["link"])
    end)

    it("decodes gzip", function()
      local r = assert(http.request{ url = srv.url .. "/gzip" })
      assert.are.equal(("hello gzip "):rep(100), r.body)
      local e = assert(http.request{ url = srv.url .. "/echo" })
      assert.truthy(e.body:find('"accept%-encoding": "[^"]*gzip'))
    end)

    it("non-2xx statuses are responses, not errors", function()
      local r = assert(http.request{ url = srv.url .. "/status?code=503" })
      assert.are.equal(503, r.status)
      assert.are.equal(404, assert(http.request{ url = srv.url .. "/nowhere" }).status)
    end)

    it("follows up to 5 redirects", function()
      local r = assert(http.request{ url = srv.url .. "/redirect?n=5" })
      assert.are.equal(200, r.status)
      assert.matches("/echo$", r.url)
      local bad, err = http.request{ url = srv.url .. "/redirect?n=7" }
      assert.is_nil(bad)
      assert.matches("^error: .*[Rr]edirect", err)
    end)

    it("100 requests in flight from 100 tasks all complete", function()
      local tasks = {}
      for i = 1, 100 do
        tasks[i] = sched.spawn(function()
          local r, err = http.request{ url = srv.url .. "/echo", query = { i = i } }
          if not r then return nil, err end
          return r.status, r.body:match('"query": "i=(%d+)"')
        end)
      end
      for i = 1, 100 do
        local ok, status, got = tasks[i]:join(30)
        assert.is_true(ok)
        assert.are.equal(200, status)
        assert.are.equal(tostring(i), got)
      end
    end)

    it("a big body within max_size arrives whole", function()
      local r = assert(http.request{ url = srv.url .. "/big?n=3000000" })
      assert.are.equal(3000000, #r.body)
    end)
  end)

  describe("errors", function()
    it("timeout", function()
      local t0 = sched.now()
      local r, err = http.request{ url = srv.url .. "/slow?s=2", timeout = 0.3 }
      assert.is_nil(r)
      assert.matches("^timeout: ", err)
      assert.is_true(sched.now() - t0 < 1.5)
    end)

    it("connect refused", function()
      local r, err = http.request{ url = "http://127.0.0.1:" .. dead_port() .. "/" }
      assert.is_nil(r)
      assert.matches("^connect: ", err)
    end)

    it("resolve", function()
      local r, err = http.request{ url = "http://no-such-host.invalid/", timeout = 10 }
      assert.is_nil(r)
      assert.matches("^resolve: ", err)
    end)

    it("reset: the server closes without answering", function()
      local r, err = http.request{ url = srv.url .. "/drop" }
      assert.is_nil(r)
      assert.matches("^reset: ", err)
    end)

    it("bad_url", function()
      for _, u in ipairs{ "not a url", "ftp://127.0.0.1/x", "file:///etc/passwd", "http://exa mple/" } do
        local r, err = http.request{ url = u }
        assert.is_nil(r, u)
        assert.matches("^bad_url", err, 1, u)
      end
    end)

    it("too_large, from Content-Length and while receiving", function()
      local r, err = http.request{ url = srv.url .. "/big?n=100000", max_size = 1000 }
      assert.is_nil(r)
      assert.matches("^too_large", err)
      -- gzip: 1100 decoded bytes from a short compressed body: caught in the write callback
      r, err = http.request{ url = srv.url .. "/gzip", max_size = 200 }
      assert.is_nil(r)
      assert.matches("^too_large", err)
    end)

    it("a cancelled request wakes nobody and frees its transfer", function()
      local t = sched.spawn(function() return http.request{ url = srv.url .. "/slow?s=1" } end)
      sched.sleep(0.1)
      t:cancel()
      local ok, a, b = t:join(5)
      -- the task either ended as cancelled, or saw its request return nil, "cancelled"
      if ok then
        assert.is_nil(a)
        assert.are.equal("cancelled", b)
      else
        assert.are.equal("cancelled", a)
      end
      -- the client still works afterwards
      assert.are.equal(200, assert(http.request{ url = srv.url .. "/echo" }).status)
    end)
  end)

  describe("misuse raises", function()
    it("bad option types", function()
      assert.has_error(function() http.request("http://x/") end)
      assert.has_error(function() http.request{} end)
      assert.has_error(function() http.request{ url = srv.url, method = 5 } end)
      assert.has_error(function() http.request{ url = srv.url, method = "GE T" } end)
      assert.has_error(function() http.request{ url = srv.url, headers = "x" } end)
      assert.has_error(function() http.request{ url = srv.url, headers = { x = {} } } end)
      assert.has_error(function() http.request{ url = srv.url, headers = { ["a\nb"] = "1" } } end)
      assert.has_error(function() http.request{ url = srv.url, headers = { a = "1\r\nInjected: 1" } } end)
      assert.has_error(function() http.request{ url = srv.url, query = "a=1" } end)
      assert.has_error(function() http.request{ url = srv.url, body = "x" } end)   -- GET with a body
      assert.has_error(function() http.request{ url = srv.url, timeout = -1 } end)
      assert.has_error(function() http.request{ url = srv.url, insecure = "yes" } end)
    end)

    it("insecure is refused for a non-loopback host, allowed for loopback", function()
      local ok, err = pcall(http.request, { url = "https://example.com/", insecure = true })
      assert.is_false(ok)
      assert.matches("loopback", err)
      ok = pcall(http.request, { url = "https://127.0.0.2.example.com/", insecure = true })
      assert.is_false(ok)
      local r = assert(http.request{ url = srv.url .. "/echo", insecure = true })
      assert.are.equal(200, r.status)
      r = assert(http.request{ url = "http://localhost:" .. srv.port .. "/echo", insecure = true })
      assert.are.equal(200, r.status)
    end)
  end)

  describe("proxy", function()
    it("proxy= sends the request through that proxy", function()
      -- the test server answers absolute-URI requests too: it stands in for a forward proxy
      local r, err = http.request{ url = "http://upstream.invalid/echo?via=proxy", proxy = srv.url }
      assert.is_nil(err)
      assert.are.equal(200, r.status)
      assert.truthy(r.body:find('"query": "via=proxy"', 1, true))
      assert.truthy(r.body:find('"host": "upstream.invalid"', 1, true))
    end)
  end)

  describe("tls", function()
    local tls, dir
    setup(function()
      dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
      assert(os.execute("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. dir .. "/key.pem -out "
        .. dir .. "/cert.pem -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
        .. " >/dev/null 2>&1"))
      tls = start_server("--tls " .. dir .. "/cert.pem " .. dir .. "/key.pem")
    end)
    teardown(function() stop_server(tls); os.execute("rm -rf " .. dir) end)

    it("verifies certificates: an unknown issuer is a tls error", function()
      local r, err = http.request{ url = tls.url .. "/echo" }
      assert.is_nil(r)
      assert.matches("^tls: ", err)
    end)

    it("ca_file makes a private CA trusted", function()
      local r, err = http.request{ url = tls.url .. "/echo", ca_file = dir .. "/cert.pem" }
      assert.is_nil(err)
      assert.are.equal(200, r.status)
    end)

    it("the certificate must match the host even with ca_file", function()
      -- "localhost" reaches the same server, but the certificate names only 127.0.0.1
      local r, err = http.request{ url = "https://localhost:" .. tls.port .. "/echo", ca_file = dir .. "/cert.pem" }
      assert.is_nil(r)
      assert.matches("^tls: ", err)
    end)

    it("insecure=true skips verification for loopback only", function()
      local r = assert(http.request{ url = tls.url .. "/echo", insecure = true })
      assert.are.equal(200, r.status)
    end)
  end)

  describe("trace", function()
    it("writes one JSON line per request, without secrets", function()
      local path = os.tmpname()
      assert.is_true(http.trace(path))
      assert(http.request{ url = srv.url .. "/echo", query = { access_token = "TOKVAL", page = "2", api_key = "KEYVAL" },
                           headers = { Authorization = "Bearer SECRETHEADER" }, instance = "eng", app = "github" })
      http.request{ url = "http://127.0.0.1:" .. dead_port() .. "/x" }
      assert(http.request{ method = "POST", url = "http://u:PWVAL@127.0.0.1:" .. srv.port .. "/echo", body = "BODYVAL" })
      assert.is_true(http.trace(nil))
      http.request{ url = srv.url .. "/echo?after=1" }   -- not traced
      local text = read_file(path)
      os.remove(path)
      local lines = {}
      for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal(3, #lines)
      for _, s in ipairs{ "SECRETHEADER", "TOKVAL", "KEYVAL", "PWVAL", "BODYVAL", "Authorization" } do
        assert.is_nil(text:find(s, 1, true), s .. " leaked into the trace")
      end
      local l1 = lines[1]
      assert.matches('^{"time":"%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z"', l1)
      assert.truthy(l1:find('"method":"GET"', 1, true))
      assert.truthy(l1:find('"url":"' .. srv.url .. '/echo?access_token=***&api_key=***&page=2"', 1, true))
      assert.truthy(l1:find('"status":200', 1, true))
      assert.truthy(l1:find('"error":null', 1, true))
      assert.truthy(l1:find('"instance":"eng"', 1, true))
      assert.truthy(l1:find('"app":"github"', 1, true))
      assert.matches('"bytes":%d+', l1)
      assert.matches('"duration_ms":[%d.]+', l1)
      assert.truthy(lines[2]:find('"status":0', 1, true))
      assert.truthy(lines[2]:find('"error":"connect: ', 1, true))
      assert.truthy(lines[3]:find('"method":"POST"', 1, true))
      if json then
        for _, l in ipairs(lines) do assert.is_table(json.decode(l)) end
      end
    end)

    it("registered secrets are masked by log_redact", function()
      if not (log and log.redact) then return end
      local path = os.tmpname()
      log.redact("REDACTME42")
      http.trace(path)
      http.request{ url = srv.url .. "/echo", query = { q = "REDACTME42" } }
      http.trace(nil)
      local text = read_file(path)
      os.remove(path)
      assert.is_nil(text:find("REDACTME42", 1, true))
      assert.truthy(text:find('"status":200', 1, true))
    end)

    it("an unwritable trace path is an error, not a raise", function()
      local ok, err = http.trace("/nonexistent-dir/x/trace.jsonl")
      assert.is_nil(ok)
      assert.matches("^error", err)
    end)
  end)
end)
