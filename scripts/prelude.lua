-- prelude.lua — the Lua half of the host: what tasks need beyond the C primitives.  Loaded once, first.
local sched = sched
local MARKER = sched._marker

-- A script's own coroutines keep working: when a host primitive yields inside one, the yield is passed
-- up to the scheduler, and the values the scheduler resumes us with are passed back down.
do
  local raw_resume, raw_yield, pack, unpack = coroutine.resume, coroutine.yield, table.pack, table.unpack
  local function resume(co, ...)
    local r = pack(raw_resume(co, ...))
    while r[1] and r[2] == MARKER and r.n == 2 and coroutine.status(co) == "suspended" do
      r = pack(raw_resume(co, raw_yield(MARKER)))
    end
    return unpack(r, 1, r.n)
  end
  coroutine.resume = resume
  coroutine.wrap = function(fn)
    local co = coroutine.create(fn)
    return function(...)
      local r = pack(resume(co, ...))
      if not r[1] then error(r[2], 2) end
      return unpack(r, 2, r.n)
    end
  end
end

function sched.after(seconds, fn, ...)
  return sched.spawn(function(...) sched.sleep(seconds); return fn(...) end, ...)
end

-- Runs fn every interval seconds (plus up to `jitter` seconds) until cancelled; an error in one run is
-- logged and the next run still happens.
function sched.every(interval, fn, opts)
  local jitter = opts and opts.jitter or 0
  return sched.spawn(function()
    while true do
      sched.sleep(interval + (jitter > 0 and math.random() * jitter or 0))
      local ok, err = xpcall(fn, debug.traceback)
      if not ok then log.error("periodic task failed", { error = err }) end
    end
  end)
end

-- A condition: tasks wait until signalled (with values) or until their timeout.
function sched.cond()
  local waiters = {}
  local c = {}
  function c:wait(timeout)
    local me = sched.current() or error("cond:wait: must be called inside a task", 2)
    waiters[#waiters + 1] = me
    local r = table.pack(sched.suspend(timeout))
    for i, t in ipairs(waiters) do if t == me then table.remove(waiters, i) break end end
    return table.unpack(r, 1, r.n)
  end
  function c:signal(...)        -- wakes one waiter; false if none
    while #waiters > 0 do
      local t = table.remove(waiters, 1)
      if sched.wake(t, ...) then return true end
    end
    return false
  end
  function c:broadcast(...)
    local n = 0
    while self:signal(...) do n = n + 1 end
    return n
  end
  return c
end

-- A counting semaphore: at most n holders at once; acquire() waits in turn (FIFO) for a slot, which
-- release() hands straight to the next waiter, so a newcomer never overtakes a task that was waiting.
function sched.semaphore(n)
  local free, cond = n, sched.cond()
  local s = {}
  function s:acquire(timeout)
    if free > 0 then free = free - 1; return true end
    return cond:wait(timeout)        -- true when a release handed its slot over; nil, "timeout"
  end
  function s:release() if not cond:signal(true) then free = free + 1 end end
  function s:free() return free end
  return s
end

-- A FIFO queue between tasks; get() waits (with an optional timeout) while it is empty.
function sched.queue()
  local items, head, tail, cond = {}, 1, 0, sched.cond()
  local q = {}
  function q:put(v) tail = tail + 1; items[tail] = v; cond:signal(true) end
  function q:get(timeout)
    while head > tail do
      local ok, err = cond:wait(timeout)
      if not ok then return nil, err end
    end
    local v = items[head]; items[head] = nil; head = head + 1
    return v
  end
  function q:size() return tail - head + 1 end
  return q
end

-- Graceful stop: the C loop calls the registered "stop" hook once on SIGINT/SIGTERM.
do
  local stop = sched.cond()
  local reload_handlers = {}
  sched.on("stop", function() stop:broadcast(true) end)
  sched.on("reload", function()
    for _, fn in ipairs(reload_handlers) do
      local ok, err = xpcall(fn, debug.traceback)
      if not ok then log.error("reload handler failed", { error = err }) end
    end
  end)
  function sched.wait_stop(timeout)
    if sched.stopping() then return true end
    return stop:wait(timeout)
  end
  function sched.on_reload(fn) reload_handlers[#reload_handlers + 1] = fn end
end

-- Strings share one metatable across every script: hide it so no script can change it for the others.
getmetatable("").__metatable = false
