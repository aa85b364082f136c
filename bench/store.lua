-- bench/store.lua MODE DIR N — the store's side of `make bench` (bench/store.sh runs it):
--   csv:    writes DIR/activities.csv (N rows, the same rows the upsert gets) and prepares DIR/import/cachost.db
--   upsert: upserts N activity rows through st:upsert in pages of 1000, twice; prints the seconds of each
local mode, dir, n = arg[1], arg[2], tonumber(arg[3] or "1000000")
local store = require "store"
local PAGE = 1000

local function row(i)
  return { ext_id = "evt-" .. i, time = ("2024-01-%02dT%02d:%02d:%02dZ"):format(1 + i % 28, i % 24, i % 60, i % 60),
           kind = "signin", action = i % 3 == 0 and "user.session.start" or "user.authentication.sso",
           actor = "user" .. (i % 5000) .. "@example.com", actor_id = "u" .. (i % 5000), target = "app" .. (i % 50),
           target_id = "a" .. (i % 50), ip = ("10.%d.%d.%d"):format(i % 256, (i // 256) % 256, i % 200),
           location = "Paris, FR", user_agent = "Mozilla/5.0", outcome = i % 10 == 0 and "failure" or "success",
           app = "okta", raw = ('{"uuid":"evt-%d","eventType":"user.session.start","outcome":{"result":"SUCCESS"}}'):format(i) }
end

local COLS = { "ext_id", "time", "kind", "action", "actor", "actor_id", "target", "target_id", "ip", "location",
               "user_agent", "outcome", "app", "raw" }

local function csvf(s)
  s = tostring(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

if mode == "csv" then
  local st = assert(store.open(dir .. "/import"))
  assert(st.db:exec("INSERT INTO instances (id, app, name, created_at, updated_at) VALUES (1, 'test', 'bench', 'now', 'now')"))
  st:close()
  local f = assert(io.open(dir .. "/activities.csv", "wb"))
  local now = store.now()
  local buf = {}
  for i = 1, n do
    local r = row(i)
    local line = { tostring(i), "1" }
    for _, c in ipairs(COLS) do line[#line + 1] = csvf(r[c]) end
    line[#line + 1] = now
    line[#line + 1] = ""    -- lat, lon: added by migration 3, so last in the table
    line[#line + 1] = ""
    buf[#buf + 1] = table.concat(line, ",")
    if #buf == 10000 then f:write(table.concat(buf, "\n"), "\n"); buf = {} end
  end
  if #buf > 0 then f:write(table.concat(buf, "\n"), "\n") end
  f:close()
  return 0
end

local st = assert(store.open(dir .. "/upsert"))
assert(st.db:exec("INSERT INTO instances (id, app, name, created_at, updated_at) VALUES (1, 'test', 'bench', 'now', 'now')"))
-- group pages per transaction (1 = one commit per page, as a sync task does by default)
local function pass(group)
  local spent, added = 0, 0
  for g = 0, n - 1, PAGE * group do
    local gen = 0
    local t0 = sched.now()
    assert(st:transaction(function()
      for p = g, math.min(g + PAGE * group, n) - 1, PAGE do
        local tg = sched.now()
        local rows = {}
        for i = p + 1, math.min(p + PAGE, n) do rows[#rows + 1] = row(i) end
        gen = gen + (sched.now() - tg)
        local r = assert(st:upsert("activities", 1, rows))
        added = added + r.added
      end
    end))
    spent = spent + (sched.now() - t0) - gen
  end
  return spent, added
end
local group = tonumber(os.getenv("BENCH_PAGES_PER_TX") or "1")
local t1, a1 = pass(group)
local t2, a2 = pass(group)
print(("upsert_first %.3f %d"):format(t1, a1))
print(("upsert_again %.3f %d"):format(t2, a2))
st:close()
return 0
