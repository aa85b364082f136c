-- bench/workers.lua MODE N BIN URL... — adds N okta instances (round robin over the sandbox tenants at
-- URL...) and times their first sync, whole: MODE sqlite, one process (runtime.sync of each, MAX_SCANS at
-- a time, as the daemon does); MODE k, k `cachost run` workers on the PostgreSQL store of CACHOST_STORE
-- (from their start until every instance has a last_scan).
local mode, n, bin = arg[1], tonumber(arg[2]), arg[3]
local urls = { table.unpack(arg, 4) }
local runtime = require "runtime"
local instances = require "instances"
local st = runtime.store()
for i = 1, n do
  assert(instances.add(st, "okta", ("okta-%03d"):format(i), { domain = "bench.okta.com", base_url = urls[(i - 1) % #urls + 1],
    insecure_loopback = "true", api_token = "00sandbox-okta-api-token" }))
end
local function scanned() return st:query("SELECT count(*) AS n FROM instances WHERE last_scan IS NOT NULL")[1].n end
local t0 = sched.now()
if mode == "sqlite" then
  local tasks = {}
  for _, inst in ipairs(instances.all(st)) do tasks[#tasks + 1] = sched.spawn(function() runtime.sync(inst) end) end
  for _, t in ipairs(tasks) do t:join() end
  print(("SQLite, one process:      %d instances synced in %5.1f s (%d scanned)"):format(n, sched.now() - t0, scanned()))
  return
end
local k = tonumber(mode)
local pids = {}
for w = 1, k do
  local p = io.popen(("%s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >/dev/null 2>&1 & echo $!"):format(bin))
  pids[w] = p:read("l")
  p:close()
end
sched.spawn(function()
  local deadline = sched.now() + 600
  while scanned() < n and sched.now() < deadline do sched.sleep(0.1) end
  local t = sched.now() - t0
  local shares = st:query("SELECT worker, count(*) AS n FROM leases GROUP BY worker ORDER BY n DESC")
  local s = {}
  for _, r in ipairs(shares) do s[#s + 1] = r.n end
  print(("PostgreSQL, %d worker%s:     %d instances synced in %5.1f s (%d scanned; leases %s)")
    :format(k, k > 1 and "s" or " ", n, t, scanned(), table.concat(s, "/")))
  for _, pid in ipairs(pids) do os.execute("kill " .. pid) end
end)
