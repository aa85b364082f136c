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

-- `cachost act` stopped while the provider works on its call.  The action is recorded (pending) before
-- the call goes out: one SIGTERM lets it finish and record the answer; two end it at once, and kill -9
-- too, leaving a row the next run settles by a re-fetch — never an action sent without a row.
describe("signals during a governance action", function()
  local helpers = require "helpers"
  local runtime, governance
  local saved_home, dir, tenant, srv, inst

  local function slurp(path)
    local f = io.open(path)
    if not f then return nil end
    local s = f:read("a"); f:close()
    return s
  end
  local function wait(cond, what)
    local deadline = sched.now() + 30
    while not cond() and sched.now() < deadline do sched.sleep(0.02) end
    assert(cond(), "timed out waiting for " .. what)
  end
  -- The binary in the background (this process keeps serving the tenant meanwhile) -> pid, job.
  local n = 0
  local function start(args)
    n = n + 1
    local job = ("%s/job%d"):format(dir, n)
    os.execute(("(CACHOST_HOME=%s sh -c 'echo $$ >%s.pid; exec %s %s' >%s.out 2>%s.err </dev/null; echo $? >%s.rc) &")
      :format(host.home, job, BIN, args, job, job, job))
    wait(function() return (slurp(job .. ".pid") or ""):match("%d+\n") end, "the pid of " .. args)
    return slurp(job .. ".pid"):match("%d+"), job
  end
  local function finish(job)
    wait(function() return (slurp(job .. ".rc") or ""):match("%d+") end, "the end of " .. job)
    return tonumber(slurp(job .. ".rc"):match("%d+")), (slurp(job .. ".out") or "") .. (slurp(job .. ".err") or "")
  end
  local function posts(user)
    local k = 0
    for _, r in ipairs(tenant.log) do
      if r.method == "POST" and r.path:find(user.ext_id .. "/lifecycle/suspend", 1, true) then k = k + 1 end
    end
    return k
  end
  local function actions(user)
    return runtime.store().db:query("SELECT * FROM governance_actions WHERE target_id = ? ORDER BY id", user.ext_id)
  end
  local users_left
  local function next_user() return table.remove(users_left) end
  -- `cachost act` suspending user, with the provider taking `delay` seconds over it -> pid, job, fault
  local function act_in_flight(user, delay)
    local fault = tenant:fault { kind = "slow", path = "/users/" .. user.ext_id .. "/lifecycle/suspend$", delay = delay }
    local pid, job = start("act o suspend_user " .. user.ext_id)
    wait(function() return fault.hits == 1 end, "the call to reach the provider")
    return pid, job
  end

  setup(function()
    saved_home = host.home
    dir = helpers.tmp_dir()
    host.home = dir .. "/home"
    package.loaded.runtime = nil
    runtime = require "runtime"
    governance = require "governance"
    tenant = require("sandbox.okta").new { seed = 21, users = 30, events_per_day = 5 }
    srv = helpers.serve(tenant)
    inst = helpers.instance("okta", "o", { domain = "x", base_url = srv.url, insecure_loopback = true },
      { api_token = tenant.token })
    helpers.sync_ok(inst, { streams = { "users" } })
    users_left = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active'", inst.id)
  end)
  teardown(function()
    srv:close()
    os.execute("rm -rf '" .. dir .. "'")
    host.home = saved_home
    package.loaded.runtime = nil
  end)

  it("one SIGTERM: the action in flight finishes and is recorded with the provider's answer", function()
    local u = next_user()
    local pid, job = act_in_flight(u, 1)
    os.execute("kill -TERM " .. pid)
    local rc, out = finish(job)
    assert.equal(0, rc, out)
    assert.equal(1, posts(u))
    local rows = actions(u)
    assert.equal(1, #rows)
    assert.equal("ok", rows[1].result)
    assert.equal("SUSPENDED", tenant:find_user(u.ext_id).status)
  end)

  it("two SIGTERMs: it ends at once; the row is unknown, then reconciled from a re-fetch", function()
    local u = next_user()
    local pid, job = act_in_flight(u, 3)
    os.execute("kill -TERM " .. pid); sched.sleep(0.1)
    os.execute("kill -TERM " .. pid)
    local rc, out = finish(job)
    assert.equal(143, rc, out)
    assert.equal(0, posts(u), "ended before the provider answered")
    local rows = actions(u)
    assert.equal(1, #rows)                       -- recorded before it was sent
    assert.equal("pending", rows[1].result)
    local _, ljob = start("governance log --format json")
    local lrc, log_out = finish(ljob)
    assert.equal(0, lrc, log_out)
    local shown = json.decode(slurp(ljob .. ".out"))
    assert.equal("unknown", shown[1].result)
    assert.equal(rows[1].id, shown[1].id)
    wait(function() return posts(u) == 1 end, "the provider to finish its work")
    local _, rjob = start("governance reconcile")
    local rrc, rout = finish(rjob)
    assert.equal(0, rrc, rout)
    assert.matches("1 succeeded", rout)
    rows = actions(u)
    assert.equal("ok", rows[1].result)
    assert.matches("took effect", rows[1].note)
  end)

  it("kill -9: the pending row is settled on the next run, and the action is not sent twice", function()
    local u = next_user()
    local pid, job = act_in_flight(u, 1)
    os.execute("kill -9 " .. pid)
    local rc = finish(job)
    assert.equal(137, rc)
    local rows = actions(u)
    assert.equal(1, #rows)
    assert.equal("pending", rows[1].result)
    wait(function() return posts(u) == 1 end, "the provider to finish its work")
    -- the next run of the same action first settles the interrupted one, then has nothing to send
    local _, job2 = start("act o suspend_user " .. u.ext_id)
    local rc2, out2 = finish(job2)
    assert.equal(0, rc2, out2)
    assert.matches("already done", out2)
    assert.equal(1, posts(u))
    rows = actions(u)
    assert.equal(1, #rows)
    assert.equal("ok", rows[1].result)
  end)
end)
