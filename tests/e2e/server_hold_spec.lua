-- server_hold_spec.lua — the server cannot be held (issue 10, defect 8): 300 slow clients sending a request
-- one byte at a time do not keep a normal client from being answered, are dropped once their request is
-- late, the server's open descriptors stay bounded by max_connections, and the log holds a few lines, not
-- one per failed accept().  Short deadlines are set through server.listen's options to keep it quick.
local procs = require "procs"
local root = host.root
local sh, slurp = procs.sh, procs.slurp

local function lines(s) return select(2, s:gsub("\n", "")) end

local SERVER = [[
local srv = assert(server.listen{ port = 0, request_timeout = 1, timeout = 60, %s })
srv:route("GET", "/hello/:name", function(req) return 200, '{"hello":"' .. req.params.name .. '"}' end)
local f = assert(io.open(arg[1], "w")); f:write(srv.port, "\n"); f:close()
sched.wait_stop()
srv:close()
]]

-- A server process with extra server.listen options and a descriptor limit -> {pid, port, log, dir}
local function start(options, nofile)
  local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
  local f = assert(io.open(dir .. "/srv.lua", "w")); f:write(SERVER:format(options)); f:close()
  local s = { dir = dir, log = dir .. "/log" }
  s.pid = procs.spawn(("sh -c 'ulimit -n %d; exec %s script %s/srv.lua %s/port'"):format(nofile, procs.BIN, dir, dir), s.log)
  s.port = tonumber(procs.wait_for(dir .. "/port", "%d+\n"):match("%d+"))
  return s
end

-- SIGTERM (under `make asan` the exit reports leaks), then -> the whole log
local function stop(s)
  procs.stop(s.pid, "TERM", 10)
  local log = slurp(s.log)
  os.execute("rm -rf " .. s.dir)
  return log
end

local function fds(s) return tonumber((sh("ls /proc/" .. s.pid .. "/fd | wc -l"))) end

-- 300 slow clients against s, a normal request while they hold on; -> {answer, most_fds, slow = "closed=..."}
local function siege(s)
  local ready, out = s.dir .. "/ready", s.dir .. "/slow.out"
  local base = fds(s)
  os.execute(("python3 %s/tests/e2e/slow_clients.py %d 300 0.5 60 %s > %s 2>&1 &"):format(root, s.port, ready, out))
  procs.wait_for(ready, "ready")
  local r = { base = base, most = base }
  local function sample() r.most = math.max(r.most, fds(s) or 0) end
  sample()
  -- the normal client: answered while the slow ones are still at it (curl gives up after 10 s)
  r.answer = sh(("curl -s --max-time 10 http://127.0.0.1:%d/hello/normal"):format(s.port))
  sample()
  local deadline = sched.now() + 90                        -- a bound for a hung client, not a measure
  while not slurp(out):match("open=%d+") and sched.now() < deadline do   -- until every slow client is dropped
    sample()
    sched.sleep(0.05)
  end
  r.slow = slurp(out)
  return r
end

describe("server under slow clients", function()
  it("drops late requests, caps its connections and keeps answering", function()
    local s = start("max_connections = 32", 1024)
    local ok, err = pcall(function()
      local r = siege(s)
      assert.equal('{"hello":"normal"}', r.answer)
      assert.equal("closed=300 open=0\n", r.slow)
      assert.truthy(r.most <= r.base + 32 + 2, ("%d descriptors open (%d at start)"):format(r.most, r.base))
      local log = slurp(s.log)
      assert.truthy(lines(log) <= 10, log)
      assert.truthy(log:find("server: too many connections", 1, true) or log:find("request not received in time", 1, true), log)
    end)
    local log = stop(s)
    assert(ok, err)
    assert.is_nil(log:find("Sanitizer", 1, true), log)
  end)

  it("pauses accepting when out of descriptors instead of spinning, and logs a few lines", function()
    local s = start("max_connections = 1000", 64)   -- the descriptor limit is reached before the cap
    local ok, err = pcall(function()
      local r = siege(s)
      assert.equal('{"hello":"normal"}', r.answer)
      assert.equal("closed=300 open=0\n", r.slow)
      local log = slurp(s.log)
      assert.truthy(lines(log) <= 10, ("%d lines:\n%s"):format(lines(log), log:sub(1, 2000)))
    end)
    local log = stop(s)
    assert(ok, err)
    assert.is_nil(log:find("Sanitizer", 1, true), log)
  end)
end)
