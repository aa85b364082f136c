-- bench/webhook.lua N [profile] — webhook-to-action latency, run by bench/webhook.sh (CACHOST_HOME prepared
-- there, with sensitive_file_shared in enforce mode).  The chain: a signed Box webhook (FILE.UPLOADED) POSTed
-- to `cachost run`'s own webhook listener (daemon.listen), the connector verifies it and names the file, the
-- daemon re-fetches it, the policy's DLP finds an SSN in a publicly shared file and quarantines it: we time
-- from the POST to the first write of that quarantine reaching the sandbox.  Floor: the same POST
-- answered by a no-op handler on the same server.  One notification at a time, so no queueing is counted.
-- Everything runs in this one process (sandbox, daemon, client): the CPU time of the sandbox's routes is
-- measured apart, and so is the Lua memory its state holds at the end (Box keeps every file and event).
-- With `profile`, the CPU time of each SQL statement and each sandbox route, per notification.
local box_tenant = require "sandbox.box"
local runtime = require "runtime"
local instances = require "instances"
local daemon = require "daemon"
local store = require "store"
local n = tonumber(arg and arg[1]) or 10000
local profile = arg and arg[2] == "profile"
local clock = os.clock

-- CPU time per key (an SQL statement, a sandbox route), counted from `on` (the timed notifications)
local cost, on = {}, false
local function spent(k, t)
  if not on then return end
  local e = cost[k]
  if not e then e = { t = 0, n = 0 }; cost[k] = e end
  e.t, e.n = e.t + t, e.n + 1
end
-- a store connection whose statements are timed (profile): query/exec/exec_many whole, rows to its end.
-- The time is read before anything is allocated (a step of the garbage collector would be counted).
local function timed(db)
  local function wrap(f)
    return function(_, sql, ...)
      local function done(c0, ...)
        local t = clock() - c0
        spent("sql " .. sql, t)
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
        if (...) == nil then spent("sql " .. sql, t) end
        return ...
      end
      return function(...) c1 = clock(); return step(it(...)) end, a, b
    end,
  }, { __index = function(_, k) return function(_, ...) return db[k](db, ...) end end })
end

local tenant = box_tenant.new { seed = 7, users = 10, groups = 2, folders = 4, files = 8, events = 20, days = 30,
                                client_id = "box-client", client_secret = "box-secret", enterprise_id = "777001",
                                rate_limit = { limit = 100000000 },   -- Box's 1,000 a minute would throttle the bench
                                log_max = 1000 }                      -- the sandbox's request log, for tests only
local srv = assert(server.listen { port = 0, max_connections = 1024 })
-- the sandbox's routes, each wrapped to note when a write (the governance call) reaches it
-- the waiting main task sleeps on a semaphore (a busy sched.sleep(0) loop would steal the loop from the
-- very tasks it waits for)
-- (hit is false until a notification arms it with nil)
local hit, last, arrived = false, 0, nil
local proxy = {}
function proxy.route(_, method, pattern, handler)
  srv:route(method, pattern, function(req, ...)
    last = sched.now()
    if req.method ~= "GET" and hit == nil then hit = last; arrived:release() end
    local c0 = clock()
    local status, body, headers = handler(req, ...)
    local t = clock() - c0
    spent("box " .. method .. " " .. pattern, t)
    return status, body, headers
  end)
  return proxy
end
setmetatable(proxy, { __index = function(_, k) return srv[k] end })
tenant:mount(proxy)

local st = runtime.store()
if profile then st.db = timed(st.db); st:reader().db = timed(st:reader().db) end
local now = store.now()
assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('box', 'box-acme', ?, ?, ?)",
  json.encode { client_id = "box-client", enterprise_id = "777001", auth = "client_credentials",
                base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url,
                insecure_loopback = true, initial_days = 30 }, now, now))
local inst = assert(instances.instance(st, "box-acme"))
inst:set_secret("client_secret", "box-secret")
inst:set_secret("webhook_primary_key", tenant.keys.primary)
inst:set_secret("webhook_secondary_key", tenant.keys.secondary)
runtime.watch(true)
-- the safety brakes (10 automatic actions per policy an hour, 50 in all) would stop the bench after ten:
-- lifted here only, the check itself still runs on every action
local limits = require("governance").limits
limits.per_policy_per_hour, limits.global_per_hour = math.huge, math.huge
assert(runtime.sync(inst))           -- the first scan (its own quarantines happen here, untimed)

local hooks = assert(daemon.listen {})
hooks:route("POST", "/noop/:instance", function() return 200, "" end)

-- a folder of a real (not service) user, where the new files go
local folder
for _, id in ipairs(tenant.state.order) do
  local x = tenant:find_file(id)
  local u = tenant:find_user(x.owner)
  if not folder and x.type == "folder" and id ~= "0" and not tenant:in_trash(x) and u and not u.service then folder = x end
end

local function post(path, body)
  local ts = box_tenant.btime(math.floor(sched.time()) * 1000)
  local r = assert(http.request { method = "POST", url = hooks.url .. path, body = body, headers = {
    ["Content-Type"] = "application/json", ["BOX-DELIVERY-TIMESTAMP"] = ts,
    ["BOX-SIGNATURE-PRIMARY"] = box_tenant.sign(tenant.keys.primary, body, ts),
    ["BOX-SIGNATURE-SECONDARY"] = box_tenant.sign(tenant.keys.secondary, body, ts) } })
  assert(r.status == 200, r.body)
end

local lat, floor, used = {}, {}, {}  -- used: each notification's CPU (all of it, the sandbox's too)
local own = 0                       -- the bench's own CPU: new files in the sandbox, the floor's POSTs
on = true
local cpu0 = clock()
for i = 1, n do
  -- a new publicly shared file holding an SSN, straight into the sandbox's state (not timed)
  local c0 = clock()
  local f = tenant:add_item { type = "file", name = ("bench-%d.txt"):format(i), parent = folder.id, owner = folder.owner,
                              created = tenant:now_ms(), content = "notes\n" .. box_tenant.SENSITIVE.ssn .. "\n" }
  f.link = tenant:make_link(f, "open")
  local body = json.encode { type = "webhook_event", id = "bench-evt-" .. i, trigger = "FILE.UPLOADED",
                             source = { id = f.id, type = "file", name = f.name, owned_by = { id = f.owner } } }
  local t0 = sched.now()
  post("/noop/box-acme", body)
  floor[#floor + 1] = sched.now() - t0
  own = own + clock() - c0
  hit, arrived = nil, sched.semaphore(0)
  t0 = sched.now()
  post("/webhooks/box-acme", body)
  arrived:acquire(10)
  assert(hit, "no governance call reached the sandbox within 10 s for notification " .. i)
  lat[#lat + 1] = hit - t0
  -- let the rest of this quarantine finish (the sandbox quiet for 20 ms) before the next notification
  while sched.now() - last < 0.02 do sched.sleep(0.005) end
  used[i] = clock() - c0
end

local cpu = clock() - cpu0
on = false

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
local sections = { box = 0, sql = 0 }
for k, e in pairs(cost) do local s = k:match("^%a+"); sections[s] = sections[s] + e.t end
print(("CPU a notification: %.2f ms: the Box sandbox's routes %.2f, the bench's own (new file, floor's POST) %.2f, cachost (with the HTTP of both sides) %.2f%s")
  :format(cpu / n * 1e3, sections.box / n * 1e3, own / n * 1e3, (cpu - sections.box - own) / n * 1e3,
          profile and (" (of which SQL %.2f)"):format(sections.sql / n * 1e3) or ""))
if profile then
  local keys = {}
  for k in pairs(cost) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return cost[a].t > cost[b].t end)
  for i = 1, math.min(#keys, 25) do
    local e = cost[keys[i]]
    print(("  %7.3f ms a notification %6.2f calls %8.1f us a call  %s")
      :format(e.t / n * 1e3, e.n / n, e.t / e.n * 1e6, keys[i]:gsub("%s+", " "):sub(1, 150)))
  end
end
hooks:close(); srv:close()
-- memory: the process's peak, and what the sandbox's state holds of the Lua heap at the end
local f = io.open("/proc/self/status"); local status = f:read("a"); f:close()
local function heap() collectgarbage(); collectgarbage(); return collectgarbage("count") / 1024 end
local before = heap()
tenant.state, tenant.log = nil, nil
local after = heap()
f = io.open("/proc/loadavg"); local load = f:read("l"); f:close()
print(("peak RSS %.1f MB; Lua heap at the end %.1f MB, of which the Box sandbox's state (its files and events) %.1f MB; load average %s")
  :format(tonumber(status:match("VmHWM:%s*(%d+) kB")) / 1024, before, before - after, load:match("^(%S+ %S+ %S+)")))
