-- http_cli_spec.lua — the binary end to end: --trace-http FILE and CACHOST_TRACE_HTTP write the trace, a
-- script's failing requests are values (not crashes), and the process exits cleanly with transfers in flight.
local root = (host and host.root) or "."
local bin = os.getenv("CACHOST_BIN") or (root .. "/cachost")

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a"); p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out:gsub("rc=%d+%s*$", "")
end

local function slurp(path)
  local f = io.open(path); if not f then return "" end
  local s = f:read("a"); f:close(); return s
end

describe("http from the command line", function()
  local srv, dir
  setup(function()
    local p = assert(io.popen("exec sh -c 'echo $$; exec python3 " .. root .. "/tests/e2e/http_server.py'", "r"))
    srv = { pipe = p, pid = tonumber(p:read("l")), port = tonumber(p:read("l")) }
    dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
  end)
  teardown(function()
    os.execute("kill " .. srv.pid .. " 2>/dev/null"); srv.pipe:close()
    os.execute("rm -rf " .. dir)
  end)

  local function script(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w")); f:write(text); f:close()
    return path
  end

  it("--trace-http FILE traces every request of a script", function()
    local s = script("t1.lua", ([[
      local r = assert(http.request{ url = "http://127.0.0.1:%d/echo", query = { password = "PW1" },
                                     headers = { authorization = "Bearer AUTH1" }, app = "okta" })
      print("status", r.status)
      print(http.request{ url = "http://127.0.0.1:1/" })
    ]]):format(srv.port))
    local trace = dir .. "/trace1.jsonl"
    local rc, out = sh(bin .. " --trace-http " .. trace .. " script " .. s)
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("status\t200", 1, true), out)
    assert.truthy(out:find("nil\tconnect: ", 1, true), out)
    local t = slurp(trace)
    local n = select(2, t:gsub("\n", ""))
    assert.are.equal(2, n)
    assert.truthy(t:find('"app":"okta"', 1, true))
    assert.truthy(t:find("password=***", 1, true))
    assert.is_nil(t:find("PW1", 1, true))
    assert.is_nil(t:find("AUTH1", 1, true))
  end)

  it("CACHOST_TRACE_HTTP=FILE does the same", function()
    local s = script("t2.lua", ("assert(http.request{ url = 'http://127.0.0.1:%d/echo' })"):format(srv.port))
    local trace = dir .. "/trace2.jsonl"
    local rc, out = sh("CACHOST_TRACE_HTTP=" .. trace .. " " .. bin .. " script " .. s)
    assert.are.equal(0, rc, out)
    assert.truthy(slurp(trace):find('"url":"http://127.0.0.1:' .. srv.port .. '/echo"', 1, true))
  end)

  it("honours the proxy environment (http_proxy)", function()
    local s = script("t4.lua", [[
      local r, err = http.request{ url = "http://upstream.invalid/echo?via=env" }
      print(r and r.status, err, r and r.body:match('"host": "([^"]+)"'))
    ]])
    local rc, out = sh("http_proxy=http://127.0.0.1:" .. srv.port .. " " .. bin .. " script " .. s)
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("200\tnil\tupstream.invalid", 1, true), out)
  end)

  it("exits cleanly while requests are still in flight", function()
    local s = script("t3.lua", ([[
      for i = 1, 5 do sched.spawn(function() http.request{ url = "http://127.0.0.1:%d/slow?s=5" } end) end
      sched.sleep(0.2)
      os.execute("kill -TERM " .. host.pid()); sched.sleep(0.1)
      os.execute("kill -TERM " .. host.pid())   -- the second request stops now
      sched.sleep(10)
    ]]):format(srv.port))
    local t0 = sched.now()
    local rc, out = sh(bin .. " script " .. s)
    assert.are.equal(143, rc, out)
    assert.is_true(sched.now() - t0 < 4, "waited for the transfers")
    assert.is_nil(out:find("AddressSanitizer", 1, true), out)
  end)
end)
