-- Stopping the binary: SIGTERM lets tasks finish their step; a second SIGTERM stops even a task that
-- computes without ever yielding.
local BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

local function run_with_signals(script, signals)
  local dir = os.tmpname(); os.remove(dir); host.mkdir(dir, 448)
  local f = assert(io.open(dir .. "/s.lua", "w")); f:write(script); f:close()
  local pid = io.popen(("%s script %s/s.lua >%s/out 2>&1 & echo $!"):format(BIN, dir, dir)):read("l")
  -- signal only once the script runs (it says "ready"), however loaded the machine is
  local deadline = sched.now() + 20
  repeat
    sched.sleep(0.05)
    local f = io.open(dir .. "/out")
    local ready = f and f:read("a"):find("ready", 1, true)
    if f then f:close() end
  until ready or sched.now() > deadline
  sched.sleep(0.2)
  for _, s in ipairs(signals) do os.execute("kill -" .. s .. " " .. pid); sched.sleep(0.3) end
  -- wait for it to end (bounded), then read its exit status through a shell that waited on nothing:
  local deadline = sched.now() + 5
  while sched.now() < deadline and os.execute("kill -0 " .. pid .. " 2>/dev/null") do sched.sleep(0.05) end
  local alive = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  if alive then os.execute("kill -9 " .. pid) end
  local out = io.open(dir .. "/out"):read("a")
  os.execute("rm -rf '" .. dir .. "'")
  return not alive, out
end

describe("signals", function()
  it("SIGTERM stops gracefully: a task waiting for the stop finishes its work", function()
    local ended, out = run_with_signals([[
      print("ready"); io.stdout:flush()
      sched.wait_stop()
      print("cleaned up")
    ]], { "TERM" })
    assert.is_true(ended)
    assert.matches("cleaned up", out)
  end)

  it("a second SIGTERM interrupts a task that never yields", function()
    local ended, out = run_with_signals([[
      print("ready"); io.stdout:flush()
      sched.spawn(function() local x = 0 while true do x = x + 1 end end)
    ]], { "TERM", "TERM" })
    assert.is_true(ended)
    assert.matches("interrupted", out)
  end)
end)
