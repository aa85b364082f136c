-- Evaluating the shipped activity policies over N stored activities, beside a bare Lua loop over the
-- same rows read the same way (the floor).  bench/policy.sh runs it in a fresh CACHOST_HOME.
local n = tonumber(arg[1] or 1000000)
local runtime = require "runtime"
local policy = require "policy"
local store = require "store"
local util = require "sdk.util"
local st = runtime.store()
local now = store.now()
assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('okta', 'bench', '{}', ?, ?)", now, now))
local inst = assert(runtime.instance("bench"))
local users = {}
for i = 1, 500 do users[i] = { ext_id = "u" .. i, email = "u" .. i .. "@example.com", status = i % 50 == 0 and "suspended" or "active" } end
assert(st:upsert("users", inst.id, users))

-- N events over a day: sign-ins (about 2% failed, scattered) and downloads, each actor signing in from
-- home; one actor in 5,000 events brute-forced.  Realistic hit rates, so what is measured is matching.
local t0 = sched.time()
local rows = {}
for i = 1, n do
  local a = i % 490 + 1
  if a % 50 == 0 then a = a + 1 end     -- the suspended accounts are quiet
  local brute = (i % 5000) < 8
  rows[i] = { ext_id = "e" .. i, time = util.iso(t0 + i * 0.05), kind = i % 3 == 0 and "user" or "signin",
    action = i % 3 == 0 and "DOWNLOAD" or "user.session.start", actor = "u" .. a .. "@example.com", actor_id = "u" .. a,
    outcome = (brute and (i % 5000) < 7 or (i % 53) == 0) and "failure" or "success", ip = "198.51.100." .. (a % 200),
    lat = 40 + a % 20, lon = -70 + a % 40, raw = '{"bench":true}' }
end
for first = 1, n, 10000 do
  local page = table.move(rows, first, math.min(n, first + 9999), 1, {})
  st:transaction(function() assert(st:upsert("activities", inst.id, page)); return true end)
end

-- the rows as they come out of the store, in memory: what both loops walk (a large old heap: the
-- generational collector keeps it from being traversed again for every batch's garbage)
collectgarbage("generational")
local stored = {}
for row in st.db:rows("SELECT * FROM activities WHERE instance_id = ? ORDER BY time", inst.id) do stored[#stored + 1] = row end
local function batches(fn)
  local c0 = os.clock()
  for first = 1, #stored, policy.BATCH do
    local items = {}
    for i = first, math.min(#stored, first + policy.BATCH - 1) do items[#items + 1] = { op = "added", row = stored[i] } end
    fn(items)
  end
  return os.clock() - c0
end

local failures = 0
local bare = batches(function(items)
  for _, it in ipairs(items) do
    local r = it.row
    if r.kind == "signin" and r.outcome == "failure" then failures = failures + 1 end
  end
end)
local list = {}
local only = os.getenv("POLICY_BENCH_ONLY")
for _, p in ipairs(assert(policy.load_all(st))) do
  if p.on == "activity" and (not only or p.id == only) then list[#list + 1] = p end
end
local alerts = 0
local with = batches(function(items) alerts = alerts + policy.feed(st, inst, list, "activities", items, { mode = "audit" }) end)
local f = io.open("/proc/self/status"); local status = f:read("a"); f:close()
print(("%d activities, %d activity policies: %.0f rows/s (%.2f s CPU, %d alerts); floor, a bare Lua loop over the same rows: %.0f rows/s (%.2f s); target 200,000 rows/s; peak memory %s")
  :format(#stored, #list, #stored / with, with, alerts, #stored / bare, bare, status:match("VmHWM:%s*(%d+ kB)")))
