-- workers.lua — `cachost run` on a shared store (PostgreSQL): this process is one worker among several,
-- and syncs the instances it holds a lease on (the SQL: store/leases.lua).
--
-- Every TTL/3 seconds a worker says it is alive, renews its leases, stops the scans of any it lost, and
-- claims free instances up to its fair share (the enabled instances divided by the live workers; its
-- scans wait for their scan slots as in one process).  Workers started together share the instances
-- (a worker's first claim waits a second after its first heartbeat, so that all of them count); when one
-- joins later, the others give up what they hold beyond their new share (instances they are not
-- scanning at that moment) and it takes them.  A claimed instance is scheduled from what the store says
-- was done: streams scanned recently are not scanned again at once (a takeover goes on where the last
-- worker stopped; a stream it left half-done resumes from its saved cursor).  Shutdown gives the leases up.
--
-- Webhooks: any worker may receive a provider's notification.  It is verified and processed there, by
-- whoever received it: the connector names what changed and the receiver re-fetches just that, which is
-- idempotent (an upsert of the provider's current state), so it does not matter that the instance's
-- lessee may be scanning it at the same moment.  No queue between workers: nothing to lose when one dies.
local M = {}

M.TTL = 30                 -- seconds a lease lasts unless renewed (CACHOST_LEASE_TTL)

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local h = f and f:read("l")
  if f then f:close() end
  return h or "localhost"
end

-- This process's worker id: host:pid:start.
local me
function M.id()
  if not me then me = ("%s:%s"):format(hostname(), require("governance").owner()) end
  return me
end

-- start(st, {schedule = fn(inst, tasks), metrics = url}) -> worker with :stop()
function M.start(st, opts)
  local ttl = tonumber(host.getenv("CACHOST_LEASE_TTL") or "") or M.TTL
  local instances = require "instances"
  local id = M.id()
  local w = { id = id, ttl = ttl, mine = {} }          -- mine: instance id -> its tasks
  st.lease = { id = id, ttl = ttl, held = {} }
  local Client = require "sdk.client"
  Client.USER_AGENT = Client.USER_AGENT .. " worker/" .. id     -- the providers' logs tell workers apart
  local info = { id = id, host = hostname(), pid = host.pid(), metrics = opts.metrics }

  local function cancel(tasks)
    for _, t in ipairs(tasks) do t:cancel() end
  end

  local function round(claim)
    assert(st:worker_beat(info))
    local held = st:renew_leases(id, ttl)
    for inst, tasks in pairs(w.mine) do
      if not held[inst] then
        log.warn("lease lost: not scanning", { instance_id = inst, worker = id })
        cancel(tasks)
        w.mine[inst] = nil
      end
    end
    st.lease.held = held
    if not claim then return end
    local have = 0
    for _ in pairs(w.mine) do have = have + 1 end
    local n = #st:instance_rows { enabled = true }
    local fair = math.ceil(n / math.max(1, st:live_workers(ttl)))
    -- more than its share (a worker joined): it gives up instances it is not scanning, for the newcomer
    for inst, tasks in pairs(w.mine) do
      if have <= fair then break end
      if not tasks.scanning then
        cancel(tasks)
        w.mine[inst], held[inst] = nil, nil
        st:release_leases(id, inst)
        have = have - 1
        log.info("lease given up for another worker", { instance_id = inst, worker = id })
      end
    end
    for _, inst_id in ipairs(st:claim_leases(id, ttl, fair - have)) do
      held[inst_id] = true
      local inst = instances.instance(st, inst_id)
      w.mine[inst_id] = {}
      if inst then
        log.info("lease taken", { instance = inst.name, worker = id })
        opts.schedule(inst, w.mine[inst_id])
      end
    end
  end

  w.task = sched.spawn(function()
    local first = true
    while true do
      local ok, err = pcall(round, not first)
      if not ok and tostring(err):match("cancelled$") then error(err, 0) end
      if not ok then log.error("worker round failed", { worker = id, error = err }) end
      -- the first claim a moment after the first heartbeat (workers started together all count)
      sched.sleep(first and math.min(ttl / 3, 1) or ttl / 3)
      first = false
    end
  end)

  -- The worker's leases, for /metrics.
  function w.count()
    local n = 0
    for _ in pairs(w.mine) do n = n + 1 end
    return n
  end

  function w.stop()
    w.task:cancel()
    for _, tasks in pairs(w.mine) do cancel(tasks) end
    for _, tasks in pairs(w.mine) do for _, t in ipairs(tasks) do t:join(30) end end
    local ok, err = st:release_leases(id)
    if not ok then log.warn("could not give the leases up", { worker = id, error = err }) end
    st.lease = nil
  end
  return w
end

return M
