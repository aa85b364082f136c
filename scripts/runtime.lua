-- runtime.lua — the live objects of this process, which the daemon, the CLI and the REPL share: the store
-- (its vault with it), the policies as loaded, the policy watch on the sync's pages, and the scheduling of
-- syncs (one per instance across processes, MAX_SCANS at once here).  Instances are instances.lua's.
local store = require "store"
local sdk = require "sdk"

local M = {}
local st_cache

function M.store()
  if st_cache then return st_cache end
  local home = host.home
  host.mkdir(home, 448)
  local st = assert(store.open(home))
  st_cache = st
  return st
end

-- The policies, loaded once per process (cachost policy reload / SIGHUP load them again).
local policies_cache
function M.policies(reload)
  if policies_cache and not reload then return policies_cache end
  local policy = require "policy"
  local list, errors = policy.load_all(M.store())
  for _, e in ipairs(errors) do log.error("policy not loaded", { error = e }) end
  policies_cache = list
  return list
end

-- Policies watch the change feed of every committed page.
function M.watch(enabled)
  local context = require "sdk.context"
  if not enabled then context.on_feed = nil; return end
  local policy = require "policy"
  -- in the page's transaction: the page is noted, so that a crash before its evaluation loses nothing
  context.on_commit = function(ctx, entity, res)
    local e = context.engine(ctx)
    return policy.note(e.st, e.inst, entity, res, ctx.first_scan)
  end
  context.on_feed = function(ctx, entity, feed, mark)
    local e = context.engine(ctx)
    local ok, err = pcall(policy.feed, e.st, e.inst, M.policies(), entity, feed,
      { ctx = ctx, first_scan = ctx.first_scan, mark = mark })
    if not ok then log.error("policy evaluation failed", { instance = ctx.instance, entity = entity, error = err }) end
  end
end

-- Sync every stream of an instance (or the ones named), full listings first.  -> results, ok
local function sync_now(inst, opts)
  opts = opts or {}
  local sync = require "sync"
  local context = require "sdk.context"
  local c = assert(sdk.load(inst.app))
  local results, all_ok, instance_ok = {}, true, true
  if context.on_feed then
    -- pages committed and never evaluated (the process died, or was stopped, between the two) go first
    local policy = require "policy"
    local ok, err = pcall(policy.resume, M.store(), inst, M.policies(), { ctx = context.new(M.store(), inst, "policies") })
    if not ok and tostring(err):match("cancelled$") then error(err, 0) end
    if not ok then log.error("policy evaluation failed", { instance = inst.name, error = err }) end
  end
  for _, stream in ipairs(opts.streams or sdk.streams(c, inst.settings)) do
    local t0 = sched.now()
    local counts, err, status, token = sync.run(M.store(), inst, stream, opts)
    results[#results + 1] = { stream = stream, counts = counts, error = err, seconds = sched.now() - t0 }
    if not counts then
      all_ok = false
      -- a full disk or a database locked by another process stops the scan: every later stream would
      -- fail alike (each committed page stays)
      results.store_error = M.store_unavailable(token)
      if results.store_error then instance_ok = false; break end
      -- a stream this credential may not read, or the tenant's plan does not offer, is that stream's
      -- health (stream_state): the instance stays connected and its other streams go on
      if status ~= "permission_missing" and status ~= "unavailable" then
        instance_ok = false
        inst:set_status(status or "error")
      end
      if status == "reconnect_needed" then break end
    end
    if opts.progress then opts.progress(stream, counts, err) end
  end
  if context.on_feed then require("policy").flush() end      -- windows the scan moved, on disk now
  -- actions of this instance interrupted after they were sent (a crash, a stop): the provider is
  -- reachable again, so settle them by a re-fetch
  local rok, rerr = pcall(require("governance").reconcile, M.store(), inst)
  if not rok and tostring(rerr):match("cancelled$") then error(rerr, 0) end
  if not rok then log.warn("reconcile failed", { instance = inst.name, error = rerr }) end
  if instance_ok then
    inst:set_status("connected")
    inst:scanned()
  end
  return results, all_ok
end

-- "full" when a failure's token says the store could not grow (SQLITE_FULL: the disk, or
-- CACHOST_DB_MAX_MB), "busy" when another process holds its lock past busy_timeout, "lease" when this
-- worker lost the instance to another (store/leases.lua: the scan stops, the instance is the other's),
-- else nil.
function M.store_unavailable(token)
  return (token == "full" or token == "busy" or token == "lease") and token or nil
end

-- Scans at once in this process: each holds a page in flight per stream, so many instances scanning
-- together would take memory in proportion; the others wait their turn.  `cachost run --max-scans N`.
M.MAX_SCANS = 16
local scan_slots
local scan_size = M.MAX_SCANS
function M.set_max_scans(n) scan_slots, scan_size = sched.semaphore(n), n end
-- {in_use, size} of the scan slots, for /metrics
function M.scan_slots() return { size = scan_size, in_use = scan_slots and scan_size - scan_slots:free() or 0 } end

-- One sync of an instance at a time, across processes (the daemon, `cachost sync`): a flock on
-- $CACHOST_HOME/locks/sync-<id>.lock (never on the database), released by the kernel however we end;
-- across machines sharing a store, the workers' leases (workers.lua).
local function sync_lock(inst)
  -- on a shared store, an instance another worker holds a lease on is that worker's to sync
  local st = M.store()
  if st.pg and not (st.lease and st.lease.held[inst.id]) then
    local holder = st:lease_holder(inst.id)
    if holder and holder ~= (st.lease and st.lease.id) then
      return nil, ("locked: instance '%s' is being synced by worker %s; try again when it gives it up")
        :format(inst.name, holder)
    end
  end
  local dir = M.store().home .. "/locks"
  host.mkdir(dir, 448)
  local lock, err, pid = host.lock(("%s/sync-%d.lock"):format(dir, inst.id))
  if lock then return lock end
  if err == "busy" then
    return nil, ("locked: instance '%s' is being synced by another process%s; try again when it is done")
      :format(inst.name, (pid and pid > 0) and (" (pid " .. pid .. ")") or "")
  end
  return nil, "lock: " .. tostring(err)
end

-- runtime.sync(inst, opts) -> results, all_ok | {}, false, err (another process syncs this instance)
function M.sync(inst, opts)
  local lock <close>, lerr = sync_lock(inst)
  if not lock then return {}, false, lerr end
  scan_slots = scan_slots or sched.semaphore(M.MAX_SCANS)
  local slots = scan_slots     -- the one this scan releases to, should the limit change meanwhile
  slots:acquire()
  local ok, results, all_ok = pcall(sync_now, inst, opts)
  slots:release()
  if not ok then error(results, 0) end
  return results, all_ok
end

return M
