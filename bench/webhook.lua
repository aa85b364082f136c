-- bench/webhook.lua SANDBOX_URL N [profile] — webhook-to-action latency, run by bench/webhook.sh (CACHOST_HOME
-- prepared there, with sensitive_file_shared in enforce mode; the Box sandbox started there, in its own
-- process: bench/webhook_sandbox.lua).  The chain: a signed Box webhook (FILE.UPLOADED) POSTed
-- to `cachost run`'s own webhook listener (daemon.listen), the connector verifies it and names the file, the
-- daemon re-fetches it, the policy's DLP finds an SSN in a publicly shared file and quarantines it: we time
-- from the POST to the first write of that quarantine reaching the sandbox (the sandbox notes when, on the
-- same monotonic clock).  Floor: the same POST answered by a no-op handler on the same server, in the same
-- run.  One notification at a time, so no queueing is counted.  The daemon and the bench's client share this
-- process; the sandbox's CPU and memory are its own process's, reported apart.
-- With `profile`, the CPU time of each SQL statement and each sandbox route, per notification.
local runtime = require "runtime"
local instances = require "instances"
local daemon = require "daemon"
local store = require "store"
local measure = dofile((arg[0]:match("^(.*)/") or ".") .. "/measure.lua")
local sandbox_url = assert(arg and arg[1], "usage: webhook.lua SANDBOX_URL [N] [profile]")
local n = tonumber(arg[2]) or 10000
local profile = arg[3] == "profile"
local clock = os.clock

-- CPU time per SQL statement, counted while the notifications are timed
local cost = measure.tally()
-- a store connection whose statements are timed (profile): query/exec/exec_many whole, rows to its end.
-- The time is read before anything is allocated (a step of the garbage collector would be counted).
local function timed(db)
  local function wrap(f)
    return function(_, sql, ...)
      local function done(c0, ...)
        local t = clock() - c0
        cost.add("sql " .. sql, t)
        return ...
      end
      return done(clock(), f(db, sql, ...))
    end
  end
  return setmetatable({
    query = wrap(db.query), exec = wrap(db.exec), exec_many = wrap(db.exec_many), cursor = wrap(db.cursor),
    rows = function(_, sql, ...)
      local c0 = clock()
      local it, a, b = db:rows(sql, ...)
      local t, c1 = clock() - c0, nil
      local function step(...)
        t = t + clock() - c1
        if (...) == nil then cost.add("sql " .. sql, t) end
        return ...
      end
      return function(...) c1 = clock(); return step(it(...)) end, a, b
    end,
  }, { __index = function(_, k) return function(_, ...) return db[k](db, ...) end end })
end

-- the sandbox (bench/webhook_sandbox.lua, its own process): its controls answer JSON
local function sandbox(method, path)
  local r = assert(http.request { method = method, url = sandbox_url .. path })
  assert(r.status == 200, ("sandbox %s %s: %s %s"):format(method, path, r.status, r.body))
  return json.decode(r.body)
end
local setup = sandbox("GET", "/_bench/setup")

local st = runtime.store()
local untimed = st.db
if profile then st.db = timed(st.db); st:reader().db = timed(st:reader().db) end
local now = store.now()
assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('box', 'box-acme', ?, ?, ?)",
  json.encode { client_id = setup.client_id, enterprise_id = setup.enterprise_id, auth = "client_credentials",
                base_url = sandbox_url .. "/2.0", upload_base_url = sandbox_url .. "/api/2.0", oauth_base_url = sandbox_url,
                insecure_loopback = true, initial_days = 30 }, now, now))
local inst = assert(instances.instance(st, "box-acme"))
inst:set_secret("client_secret", setup.client_secret)
inst:set_secret("webhook_primary_key", setup.primary)
inst:set_secret("webhook_secondary_key", setup.secondary)
runtime.watch(true)
-- the safety brakes (10 automatic actions per policy an hour, 50 in all) would stop the bench after ten:
-- lifted here only, the check itself still runs on every action
local limits = require("governance").limits
limits.per_policy_per_hour, limits.global_per_hour = math.huge, math.huge
assert(runtime.sync(inst))           -- the first scan (its own quarantines happen here, untimed)

local hooks = assert(daemon.listen {})
hooks:route("POST", "/noop/:instance", function() return 200, "" end)

local function post(path, note)
  local r = assert(http.request { method = "POST", url = hooks.url .. path, body = note.body, headers = note.headers })
  assert(r.status == 200, r.body)
end

-- the last governance action, and whether one after `after` is settled (by the primary key: the table grows
-- by one a notification); not among the profile's statements
local function last_action() return untimed:query("SELECT coalesce(max(id), 0) AS id FROM governance_actions")[1].id end
local function settled(after)
  return untimed:query("SELECT 1 AS ok FROM governance_actions WHERE id > ? AND finished_at IS NOT NULL LIMIT 1", after)[1] ~= nil
end

local lat, floor, used = {}, {}, {}  -- used: each notification's CPU in this process, the bench's own apart
local own = 0                       -- the bench's own CPU: asking for notifications, the floor's POSTs, waiting
cost.on = true
local cpu0 = clock()
for i = 1, n do
  -- a new publicly shared file holding an SSN, and Box's notification of it, from the sandbox (not timed)
  local c0 = clock()
  local note = sandbox("POST", "/_bench/notification")
  local t0 = sched.now()
  post("/noop/box-acme", note)
  floor[#floor + 1] = sched.now() - t0
  -- the sandbox is asked first when the governance call arrives (answered once the quarantine is done);
  -- the request is on its way before the notification is
  local waited, done = nil, sched.semaphore(0)
  sched.spawn(function()
    waited = http.request { method = "GET", url = sandbox_url .. "/_bench/wait", timeout = 15 }
    done:release()
  end)
  sched.sleep(0.002)
  local before = last_action()
  local mine = clock() - c0
  t0 = sched.now()
  post("/webhooks/box-acme", note)
  done:acquire(15)
  assert(waited and waited.status == 200, ("notification %d: %s"):format(i, waited and waited.body or "the sandbox did not answer"))
  local hit = json.decode(waited.body).hit
  assert(hit >= t0, "a write reached the sandbox before the notification " .. i)
  -- and the quarantine is over (its writes all made) before the next notification: under load a pause
  -- longer than the sandbox's 20 ms of quiet may come between them (the bench's own CPU)
  local deadline = sched.now() + 10
  while true do
    local c1 = clock()
    local ok = settled(before)
    mine = mine + clock() - c1              -- the query's CPU, not what runs while it sleeps
    if ok then break end
    assert(sched.now() < deadline, "the quarantine of notification " .. i .. " did not finish within 10 s")
    sched.sleep(0.005)
  end
  own = own + mine
  lat[#lat + 1] = hit - t0
  used[i] = clock() - c0 - mine
end

local cpu = clock() - cpu0
cost.on = false

local function pct(t, p) table.sort(t); return t[math.max(1, math.ceil(#t * p))] * 1000 end
-- what grows with what is stored shows between the first and the last tenth of the run
local tenth = math.max(1, n // 10)
local function slice(t, from) return table.move(t, from, from + tenth - 1, 1, {}) end
local function mean(t) local sum = 0; for _, v in ipairs(t) do sum = sum + v end; return sum / #t * 1000 end
local growth = ("first and last %d notifications: p50 %.2f and %.2f ms, p99 %.2f and %.2f ms, CPU %.2f and %.2f ms a notification")
  :format(tenth, pct(slice(lat, 1), 0.5), pct(slice(lat, n - tenth + 1), 0.5), pct(slice(lat, 1), 0.99),
          pct(slice(lat, n - tenth + 1), 0.99), mean(slice(used, 1)), mean(slice(used, n - tenth + 1)))
local p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
print(("webhook to governance call (Box, sensitive_file_shared in enforce mode, %d notifications): p50 %.2f ms (floor %.2f), p99 %.2f ms (floor %.2f); target p99 <= 50 ms: %s")
  :format(n, p50, pct(floor, 0.5), p99, pct(floor, 0.99), p99 <= 50 and "met" or "NOT met"))
print("  floor: the same POST answered by a no-op handler on the same server")
print(growth)
local sb = sandbox("GET", "/_bench/report")
local sql = cost.total()
print(("CPU a notification: cachost %.2f ms (with the bench's client posting to it%s), the bench's own (asking the sandbox for a notification, the floor's POST, its wait) %.2f; the Box sandbox's process %.2f (its routes %.2f, the bench's controls %.2f, its %d collections between notifications %.2f, the rest its HTTP server)")
  :format((cpu - own) / n * 1e3, profile and (", of which SQL %.2f"):format(sql / n * 1e3) or "", own / n * 1e3,
          sb.cpu / n * 1e3, sb.routes / n * 1e3, sb.controls / n * 1e3, sb.gc_runs, sb.gc_cpu / n * 1e3))
if profile then
  local rows = cost.list()
  for _, e in ipairs(sb.per or {}) do rows[#rows + 1] = e end
  table.sort(rows, function(a, b) return a.t > b.t end)
  for i = 1, math.min(#rows, 25) do
    local e = rows[i]
    print(("  %7.3f ms a notification %6.2f calls %8.1f us a call  %s")
      :format(e.t / n * 1e3, e.n / n, e.t / e.n * 1e6, e.key:gsub("%s+", " "):sub(1, 150)))
  end
end
hooks:close()
-- memory: each process's peak, and its Lua heap at the end
local rss_peak_mb = measure.peak_rss_mb()
collectgarbage(); collectgarbage()
print(("peak RSS: cachost %.1f MB, the Box sandbox %.1f MB; Lua heap at the end: cachost %.1f MB, the Box sandbox (its files and events) %.1f MB; load average %s")
  :format(rss_peak_mb, sb.rss_peak_mb, collectgarbage("count") / 1024, sb.heap_mb, measure.load()))
