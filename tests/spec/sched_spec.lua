describe("sched", function()
  it("runs tasks concurrently and joins their results", function()
    local order = {}
    local a = sched.spawn(function(x) sched.sleep(0.02); order[#order + 1] = "a"; return x * 2 end, 21)
    local b = sched.spawn(function() order[#order + 1] = "b"; return "b", "c" end)
    assert.same({ true, 42 }, { a:join() })
    assert.same({ true, "b", "c" }, { b:join() })
    assert.same({ "b", "a" }, order)
    assert.equal("done", a:status())
  end)

  it("reports a failed task's error with a traceback to its joiner", function()
    local t = sched.spawn(function() error("boom") end)
    local ok, err = t:join()
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.matches("stack traceback", err)
    assert.equal("failed", t:status())
  end)

  it("times out a join and cancels a sleeping task", function()
    local t = sched.spawn(function() sched.sleep(5) end)
    assert.same({ nil, "timeout" }, { t:join(0.01) })
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join() })
    assert.equal("cancelled", t:status())
  end)

  it("cancels a task that has not started yet", function()
    local ran = false
    local t = sched.spawn(function() ran = true end)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join() })
    assert.is_false(ran)
  end)

  it("lets a script's own coroutines call blocking primitives", function()
    local gen = coroutine.wrap(function()
      sched.sleep(0.001); coroutine.yield(1)
      sched.sleep(0.001); coroutine.yield(2)
    end)
    assert.equal(1, gen()); assert.equal(2, gen())
    local co = coroutine.create(function(x) sched.sleep(0.001); return x + 1 end)
    assert.same({ true, 2 }, { coroutine.resume(co, 1) })
  end)

  it("suspends and wakes with values; conditions and queues build on it", function()
    local c = sched.cond()
    sched.after(0.01, function() c:signal("hello", 7) end)
    assert.same({ "hello", 7 }, { c:wait(1) })
    assert.same({ nil, "timeout" }, { c:wait(0.01) })
    local q = sched.queue()
    sched.spawn(function() for i = 1, 3 do q:put(i); sched.sleep(0.001) end end)
    assert.same({ 1, 2, 3 }, { q:get(1), q:get(1), q:get(1) })
    assert.same({ nil, "timeout" }, { q:get(0.01) })
  end)

  it("a semaphore bounds the holders and serves waiters in turn", function()
    local sem = sched.semaphore(2)
    local running, most, order = 0, 0, {}
    local tasks = {}
    for i = 1, 6 do
      tasks[i] = sched.spawn(function()
        assert.is_true(sem:acquire())
        running = running + 1
        most = math.max(most, running)
        order[#order + 1] = i
        sched.sleep(0.005)
        running = running - 1
        sem:release()
      end)
    end
    for _, t in ipairs(tasks) do assert.is_true((t:join(2))) end
    assert.equal(2, most)
    assert.same({ 1, 2, 3, 4, 5, 6 }, order)
    assert.equal(2, sem:free())
    -- a waiter that times out does not take a slot; one released later goes to the next waiter
    local one = sched.semaphore(1)
    assert.is_true(one:acquire())
    assert.same({ nil, "timeout" }, { one:acquire(0.01) })
    local got = sched.spawn(function() return one:acquire(1) end)
    sched.sleep(0.005)
    one:release()
    assert.same({ true, true }, { got:join(1) })
    assert.equal(0, one:free())
  end)

  it("a task yielding in a loop does not starve timers", function()
    local t0 = sched.now()
    local woke
    local sleeper = sched.spawn(function() sched.sleep(0.02); woke = sched.now() - t0 end)
    local spins = 0
    local spinner = sched.spawn(function() while not woke and sched.now() - t0 < 2 do spins = spins + 1; sched.sleep(0) end end)
    spinner:join(5)
    sleeper:join(1)
    assert.is_number(woke)
    assert.is_true(woke < 0.5, "the timer fired late: " .. tostring(woke))
    assert.is_true(spins > 10)
  end)

  it("runs periodic work with sched.every until cancelled", function()
    local n = 0
    local t = sched.every(0.005, function() n = n + 1 end)
    sched.sleep(0.06)
    t:cancel()
    assert.is_true(n >= 3)
    local seen = n
    sched.sleep(0.02)
    assert.equal(seen, n)
  end)

  it("enforces an instruction budget that pcall cannot swallow", function()
    local t = sched.spawn(function()
      sched.budget(50000)
      pcall(function() while true do end end)
      return "escaped"
    end)
    local ok, err = t:join()
    assert.is_false(ok)
    assert.matches("instruction budget exceeded", err)
  end)

  it("refuses to wait outside a task or across a C call", function()
    assert.has_error(function() table.sort({ 3, 2, 1 }, function(a, b) sched.sleep(0) return a < b end) end)
  end)

  it("keeps other tasks running when one fails", function()
    local bad = sched.spawn(function() error("x") end); bad.quiet = true
    local good = sched.spawn(function() sched.sleep(0.005); return "fine" end)
    assert.same({ true, "fine" }, { good:join() })
  end)
end)
