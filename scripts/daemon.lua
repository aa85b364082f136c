-- daemon.lua — what `cachost run` does: schedule every enabled instance, serve webhooks, stop cleanly.
local runtime = require "runtime"
local instances = require "instances"
local sdk = require "sdk"
local context = require "sdk.context"

local M = {}

local FULL_EVERY = 12 * 3600     -- full scan of listings
local POLL_EVERY = 5 * 60        -- incremental streams (activities)

local function interval(inst, key, default)
  return tonumber(inst.settings[key]) or default
end

-- The streams of an instance due now: never scanned, or last scanned longer ago than their interval
-- (a worker taking an instance over goes on from what the store says was done).
local function due(inst, streams, every)
  local last = {}
  for _, s in ipairs(runtime.store():stream_states(inst.id)) do last[s.stream] = s.last_success end
  local out, now = {}, sched.time()
  for _, s in ipairs(streams) do
    local t = last[s] and require("sdk.util").parse_iso(last[s])
    if not t or t + every <= now then out[#out + 1] = s end
  end
  return out
end

-- A connector's streams by cadence: full listings (every full_scan_interval) and the streams polled
-- every poll_interval: activities, and those the connector reads incrementally between full listings of
-- its own (c.polled, e.g. Salesforce's files by SystemModstamp).  -> full, polled
function M.cadence(c)
  local full, polled, named = {}, {}, {}
  for _, s in ipairs(c.polled or {}) do named[s] = true end
  for _, s in ipairs(sdk.streams(c)) do
    if s == "activities" or named[s] then polled[#polled + 1] = s else full[#full + 1] = s end
  end
  return full, polled
end

-- One instance: its full listings and its incremental streams on their own cadence, with jitter, never
-- two scans of the same instance at once.  opts.resume: the first scan is of the streams due only.
function M.schedule(inst, tasks, opts)
  local c = assert(sdk.load(inst.app))
  local busy, skipped = false, false
  local function scan(streams, label)
    if busy then return end
    -- the row as it is now: `instance disable` / `edit` from the CLI apply from the next scan on
    local now = instances.instance(runtime.store(), inst.id)
    if not now or not now.enabled then
      if not skipped then log.info("instance disabled: not scanning", { instance = inst.name }) end
      skipped = true
      return
    end
    busy, skipped = true, false
    tasks.scanning = true          -- a worker gives up only instances it is not scanning (workers.lua)
    local ok, err = pcall(function()
      local results, _, locked = runtime.sync(now, { streams = streams })
      if locked then return log.info("scan skipped", { instance = inst.name, reason = locked }) end
      for _, r in ipairs(results) do
        if r.error then log.warn("scan failed", { instance = inst.name, stream = r.stream, error = r.error }) end
      end
      log.info("scan done", { instance = inst.name, kind = label })
    end)
    busy, tasks.scanning = false, false
    if not ok and tostring(err):match("cancelled$") then error("cancelled", 0) end
    if not ok then log.error("scan crashed", { instance = inst.name, error = err }) end
  end
  local full, incremental = M.cadence(c)
  local full_every = interval(inst, "full_scan_interval", FULL_EVERY)
  local poll_every = interval(inst, "poll_interval", POLL_EVERY)
  if opts and opts.resume then
    local first = due(inst, full, full_every)
    for _, s in ipairs(due(inst, incremental, poll_every)) do first[#first + 1] = s end
    if #first > 0 then tasks[#tasks + 1] = sched.spawn(function() scan(first, "initial") end) end
  else
    tasks[#tasks + 1] = sched.spawn(function() scan(nil, "initial") end)
  end
  tasks[#tasks + 1] = sched.every(full_every, function() scan(full, "full") end, { jitter = full_every / 20 })
  if #incremental > 0 then
    tasks[#tasks + 1] = sched.every(poll_every, function() scan(incremental, "poll") end, { jitter = poll_every / 10 })
  end
end

-- A webhook: the connector verifies it and names what changed; we re-fetch just that, REFETCHES at a
-- time in the process (a notification may name hundreds of items; a burst of them, thousands).  fetch
-- gets the record too (fetch(ctx, id, record)): what else the verified notification said (Box: the owner).
M.REFETCHES = 8
local refetch_slots
function M.webhook(req)
  local inst = instances.instance(runtime.store(), req.params.instance)
  if not inst or not inst.enabled then return 404, json.encode { error = "no such instance" } end
  local ctx = context.new(runtime.store(), inst, "webhook")
  local c = context.connector(ctx)
  if not c.webhook then return 404, json.encode { error = "this app has no webhooks" } end
  -- a string body goes out as it is, with the connector's headers (e.g. Graph's text/plain handshake)
  local status, body, refetch, headers = c.webhook(ctx, req)
  for _, r in ipairs(refetch or {}) do
    local fetch = c.fetch[r.entity]
    if fetch then
      refetch_slots = refetch_slots or sched.semaphore(M.REFETCHES)
      local slots = refetch_slots
      sched.spawn(function()
        slots:acquire()
        local ok, err = pcall(fetch, context.new(runtime.store(), inst, "webhook"), r.id, r)
        slots:release()
        if not ok then log.warn("webhook re-fetch failed", { instance = inst.name, entity = r.entity, id = r.id, error = err }) end
      end)
    end
  end
  if type(body) == "string" then return status, body, headers end
  if body == nil then return status, "", headers end
  -- an answer that is no JSON is the connector's bug: the provider is told it failed, not that all is well
  local text, err = json.encode(body)
  if not text then
    log.error("webhook answer could not be encoded", { instance = inst.name, error = err })
    return 500, '{"error":"internal error"}'
  end
  return status, text, headers
end

-- Providers that push changes only to subscribers (Graph change notifications) need a subscription to
-- our public webhook URL, created at start and renewed before it expires.
local RENEW_EVERY = 24 * 3600
function M.subscribe(inst, public_url, tasks)
  local c = assert(sdk.load(inst.app))
  if not c.subscribe or not public_url then return end
  local url = public_url:gsub("/+$", "") .. "/webhooks/" .. inst.name
  local function renew()
    local ok, err = pcall(c.subscribe, context.new(runtime.store(), inst, "subscribe"), url)
    if not ok then log.warn("webhook subscription failed", { instance = inst.name, error = err })
    else log.info("webhook subscription renewed", { instance = inst.name, url = url }) end
  end
  tasks[#tasks + 1] = sched.spawn(renew)
  tasks[#tasks + 1] = sched.every(RENEW_EVERY, renew, { jitter = 600 })
end

-- Retention over every instance (disabled ones too), in small transactions between which the scans'
-- pages go in.
function M.retention()
  local retention = require "retention"
  for _, inst in ipairs(instances.all(runtime.store())) do
    local r, err = retention.run(runtime.store(), inst)
    if not r then log.warn("retention failed", { instance = inst.name, error = err })
    else
      for _, x in ipairs(r) do
        if x.deleted > 0 then log.info("retention", { instance = inst.name, table = x.table, deleted = x.deleted }) end
      end
    end
  end
  local ok, pages = pcall(retention.release, runtime.store())
  if not ok then log.warn("retention: releasing free pages failed", { error = pages })
  elseif pages > 0 then log.info("retention: free pages released", { pages = pages }) end
end

-- The operator's endpoints, on their own listener (loopback by default, never the webhooks' public one):
-- /healthz (the loop answers), /readyz (the store answers and we are not stopping), /metrics.
function M.ops_routes(srv)
  srv:route("GET", "/healthz", function() return 200, "ok\n", { ["Content-Type"] = "text/plain" } end)
  srv:route("GET", "/readyz", function()
    if sched.stopping() then return 503, "stopping\n", { ["Content-Type"] = "text/plain" } end
    local ok, err = pcall(function() return runtime.store():ping() end)
    if not ok then return 503, "store: " .. tostring(err) .. "\n", { ["Content-Type"] = "text/plain" } end
    return 200, "ready\n", { ["Content-Type"] = "text/plain" }
  end)
  srv:route("GET", "/metrics", function()
    local text = require("metrics").render(runtime.store(), runtime.scan_slots())
    if M.worker then     -- each worker serves its own /metrics: which worker, how many leases it holds
      text = text .. ("# HELP cachost_worker_leases Instances this worker holds a lease on.\n"
        .. "# TYPE cachost_worker_leases gauge\ncachost_worker_leases{worker=%q} %d\n"):format(M.worker.id, M.worker.count())
    end
    return 200, text,
      { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" }
  end)
end

-- The webhook server: /webhooks/<instance>.  Deliveries are small (a 1 MiB cap); the server's defaults
-- bound how long a request may take to arrive and how many connections are open (server.listen).
M.MAX_BODY = 1024 * 1024
function M.listen(opts)
  local srv, err = server.listen { host = opts.host or "127.0.0.1", port = opts.port or 0, max_body = M.MAX_BODY,
                                   max_connections = opts.max_connections, request_timeout = opts.request_timeout }
  if not srv then return nil, "cannot listen: " .. tostring(err) end
  return srv:route("*", "/webhooks/:instance", M.webhook)
end

-- The web console (scripts/console/): on loopback, or anywhere with TLS (a certificate and its key).
-- opts.console: {host =, port =, cert =, key =} | false (off) | nil (the default address; when it is taken,
-- the daemon runs without a console and says so).  -> srv | nil | nil, err
function M.console(opts)
  if opts.console == false then return nil end
  local c = opts.console or { host = "127.0.0.1", port = 8788 }
  if not c.cert and not require("sdk.client").is_loopback(c.host) then
    return nil, ("the console serves %s only over TLS: give --console-cert and --console-key (or a loopback address)"):format(c.host)
  end
  local srv, err = server.listen { host = c.host, port = c.port, max_body = 64 * 1024, max_connections = 64,
                                   tls = c.cert and { cert = c.cert, key = c.key } or nil }
  if not srv then
    if opts.console then return nil, "cannot serve the console: " .. tostring(err) end
    log.error("no console: cannot listen on the default address (cachost run --console)", { error = err })
    return nil
  end
  require("console").mount(srv, { secure = c.cert ~= nil })
  log.info("console", { url = srv.url .. "/" })
  return srv
end

function M.run(opts)
  local tasks = {}
  local sinks, serr = require("sinks").load(host.home)
  if not sinks then return nil, serr end
  -- the listeners first: one that cannot be had ends the run before anything is scheduled
  local srv, err = M.listen(opts)
  if not srv then return nil, err end
  local mhost, mport = opts.metrics_host or "127.0.0.1", opts.metrics_port or 9787
  local ops, operr = server.listen { host = mhost, port = mport, max_body = 1024 }
  if ops then
    M.ops_routes(ops)
    log.info("operator endpoints", { url = ops.url .. "/metrics", health = ops.url .. "/healthz" })
  elseif opts.metrics_port then
    srv:close()
    return nil, "cannot listen for metrics: " .. tostring(operr)
  else
    log.error("no /metrics: cannot listen on the default address (cachost run --metrics-listen)", { error = operr })
  end
  local console, cerr = M.console(opts)
  if cerr then
    srv:close()
    if ops then ops:close() end
    return nil, cerr
  end
  runtime.watch(true)
  sched.on_reload(function() runtime.policies(true); log.info("policies reloaded") end)
  -- On a shared store (PostgreSQL) this process is one worker: it schedules the instances it holds a
  -- lease on (workers.lua); alone on SQLite, all of them.
  local worker
  if runtime.store().pg then
    worker = require("workers").start(runtime.store(), { metrics = ops and ops.url .. "/metrics",
      schedule = function(inst, itasks)
        M.schedule(inst, itasks, { resume = true })
        M.subscribe(inst, opts.public_url, itasks)
      end })
    M.worker = worker
  else
    for _, inst in ipairs(instances.all(runtime.store(), { enabled = true })) do
      M.schedule(inst, tasks)
      M.subscribe(inst, opts.public_url, tasks)
    end
  end
  if #sinks > 0 then tasks[#tasks + 1] = sched.spawn(function() require("sinks").run(runtime.store(), sinks) end) end
  tasks[#tasks + 1] = sched.every(require("retention").EVERY, M.retention, { jitter = 300 })
  log.info("cachost running", { instances = #tasks > 0 and #instances.all(runtime.store(), { enabled = true }) or 0,
    worker = worker and worker.id, webhooks = srv.url .. "/webhooks/<instance>" })
  sched.wait_stop()
  log.info("stopping: letting scans finish their current page")
  for _, t in ipairs(tasks) do t:cancel() end
  for _, t in ipairs(tasks) do t:join(30) end
  if worker then worker.stop() end
  require("policy").flush()
  srv:close()
  if ops then ops:close() end
  if console then console:close() end
  return true
end

return M
