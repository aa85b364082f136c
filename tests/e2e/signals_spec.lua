-- Stopping the binary: the first SIGTERM asks for a graceful stop (tasks finish their step); the second
-- ends the process at once, whatever it is doing, even stuck inside C.
local procs = require "procs"
local start, finish = procs.start, procs.finish

local function wait(cond, what, seconds)
  local deadline = sched.now() + (seconds or 30)
  while not cond() and sched.now() < deadline do sched.sleep(0.02) end
  assert(cond(), "timed out waiting for " .. what)
end

-- `cachost script` of `script`, signalled once it says "ready" -> exit status, output, seconds from
-- the last signal to the end (a script still running 20 s later is killed: status 137).
local function run_with_signals(script, signals)
  local path = os.tmpname()
  local f = assert(io.open(path, "w")); f:write(script); f:close()
  local pid, job = start("script " .. path)
  procs.wait_for(job .. ".out", "ready", 20)
  sched.sleep(0.2)
  for i, s in ipairs(signals) do
    if i > 1 then sched.sleep(0.3) end
    os.execute("kill -" .. s .. " " .. pid)
  end
  local t0 = sched.now()
  local rc, out = finish(job, pid, 20)
  os.remove(path)
  return rc, out, sched.now() - t0
end

describe("signals", function()
  it("SIGTERM stops gracefully: a task waiting for the stop finishes its work", function()
    local rc, out = run_with_signals([[
      print("ready"); io.stdout:flush()
      sched.wait_stop()
      print("cleaned up")
    ]], { "TERM" })
    assert.equal(0, rc, out)
    assert.matches("cleaned up", out)
  end)

  it("a second SIGTERM ends a task that never yields", function()
    local rc, out = run_with_signals([[
      print("ready"); io.stdout:flush()
      sched.spawn(function() local x = 0 while true do x = x + 1 end end)
    ]], { "TERM", "TERM" })
    assert.equal(143, rc, out)
    assert.matches("second stop signal: exiting now", out)
  end)

  -- Stuck inside C, neither the loop nor a Lua hook ever runs again: the handler itself ends it.
  it("a second SIGTERM ends a process stuck in a C pattern match, at once", function()
    local rc, out, took = run_with_signals([[
      print("ready"); io.stdout:flush()
      print(("a"):rep(4000):find(("a-"):rep(12) .. "b"))   -- backtracks for longer than anyone waits
    ]], { "TERM", "TERM" })
    assert.equal(143, rc, out)
    assert.matches("second stop signal: exiting now", out)
    assert.is_true(took < 10, ("took %.1f s"):format(took))
  end)

  it("a second SIGTERM ends a process blocked in a system call", function()
    local fifo = os.tmpname(); os.remove(fifo)
    assert(os.execute("mkfifo " .. fifo))
    local rc, out, took = run_with_signals(([[
      print("ready"); io.stdout:flush()
      io.open(%q, "r")      -- open(2) of a FIFO nobody writes to blocks (restarted after each signal)
    ]]):format(fifo), { "TERM", "TERM" })
    os.remove(fifo)
    assert.equal(143, rc, out)
    assert.is_true(took < 10, ("took %.1f s"):format(took))
  end)

  it("outside the REPL, a second SIGINT ends the process too", function()
    local rc, out = run_with_signals([[
      print("ready"); io.stdout:flush()
      print(("a"):rep(4000):find(("a-"):rep(12) .. "b"))
    ]], { "INT", "INT" })
    assert.equal(130, rc, out)
  end)
end)

-- `cachost act` stopped while the provider works on its call.  The action is recorded (pending) before
-- the call goes out: one SIGTERM lets it finish and record the answer; two end it at once, and kill -9
-- too, leaving a row the next run settles by a re-fetch — never an action sent without a row.
describe("signals during a governance action", function()
  local helpers = require "helpers"
  local runtime, governance
  local saved_home, dir, tenant, srv, inst

  local function act(args) return start(args, "CACHOST_HOME=" .. host.home) end
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
    local pid, job = act("act o suspend_user " .. user.ext_id)
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
    local _, ljob = act("governance log --format json")
    local lrc, log_out, log_json = finish(ljob)
    assert.equal(0, lrc, log_out)
    local shown = json.decode(log_json)
    assert.equal("unknown", shown[1].result)
    assert.equal(rows[1].id, shown[1].id)
    local src, status = finish(select(2, act("governance status")))
    assert.equal(0, src, status)
    assert.matches("active, 1 action%(s%) in flight or with an unknown outcome", status)
    wait(function() return posts(u) == 1 end, "the provider to finish its work")
    local _, rjob = act("governance reconcile")
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
    local _, job2 = act("act o suspend_user " .. u.ext_id)
    local rc2, out2 = finish(job2)
    assert.equal(0, rc2, out2)
    assert.matches("already done", out2)
    assert.equal(1, posts(u))
    rows = actions(u)
    assert.equal(1, #rows)
    assert.equal("ok", rows[1].result)
  end)
end)
