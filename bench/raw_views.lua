-- bench/raw_views.lua DB [REPS] — for bench/storage.sh: what a reader's views of raw (host/sqlite.c's
-- text_views: raw reads as its JSON text in SQL) cost, in one process on the compressed store DB: making
-- them (at a connection's first statement naming raw), and each query on a reader (store.open_readonly)
-- whose views are made beside the same query on a connection without them (writing unzstd(raw) where raw
-- is used), alternated, CPU time per run; answers compared.
local store = require "store"
local sqlite = require "sqlite"
local path, reps = arg[1], tonumber(arg[2] or "20")

-- a connection as store.open_readonly opens it, with or without the views
local function open(views)
  return assert(sqlite.open(path, { readonly = true, unzstd = true, hidden = store.HIDDEN_LIST, text_views = views and "raw" or nil }))
end
-- the views are made for a connection's first statement naming raw: open, one statement, close
local function first(views, sql)
  local c = os.clock()
  local db = open(views)
  assert(db:query(sql))
  db:close()
  return os.clock() - c
end
local n, tr, tp, tn = 100, 0, 0, 0
for _ = 1, n do
  tr = tr + first(true, "SELECT count(*) AS n FROM users WHERE id = 1 AND raw IS NULL")
  tp = tp + first(true, "SELECT count(*) AS n FROM users WHERE id = 1 AND status IS NULL")
  tn = tn + first(false, "SELECT count(*) AS n FROM users WHERE id = 1 AND unzstd(raw) IS NULL")
end
print(("raw views: open, a first statement, close, %d times, CPU per run: naming raw (views made) %.3f ms, not naming it %.3f ms   floor: no views %.3f ms")
  :format(n, tr * 1000 / n, tp * 1000 / n, tn * 1000 / n))

local V, N = store.open_readonly(path), open(false)
assert(V:query("SELECT raw FROM users LIMIT 0"))   -- its views made: every query below reads through them
local queries = {
  { "users by status", "SELECT status, count(*) AS n FROM users GROUP BY 1" },
  { "a day of events (index)", "SELECT count(*) AS n, count(DISTINCT actor) AS a FROM activities WHERE instance_id = 1 AND time >= date('now', '-1 day')" },
  { "users with privileges (join)", "SELECT u.email, p.role FROM users u JOIN privileges p ON p.instance_id = u.instance_id AND p.user_id = u.ext_id" },
  { "events per actor (window)", "SELECT actor, count(*) OVER (PARTITION BY actor) AS n FROM activities WHERE instance_id = 1" },
  { "failed events (scan)", "SELECT count(*) AS n FROM activities WHERE outcome = 'FAILURE'" },
  { "json_extract(raw) events", "SELECT json_extract(%s, '$.eventType') AS t, count(*) AS n FROM activities GROUP BY 1 ORDER BY 2 DESC LIMIT 3" },
  { "json_extract(raw) users", "SELECT count(*) AS n FROM users WHERE json_extract(%s, '$.status') = 'ACTIVE'" },
  { "raw LIKE events", "SELECT count(*) AS n FROM activities WHERE %s LIKE '%%FAILURE%%'" },
}
for _, q in ipairs(queries) do
  local sv, sn = q[2]:format("raw"), q[2]:format("unzstd(raw)")
  local a, b = assert(V:query(sv)), assert(N:query(sn))
  assert(json.encode(a) == json.encode(b), "raw views: answers differ: " .. q[1])
  local cv, cn = 0, 0
  for _ = 1, reps do
    local c = os.clock(); V:query(sv); cv = cv + os.clock() - c
    c = os.clock(); N:query(sn); cn = cn + os.clock() - c
  end
  print(("raw views: %-30s %d runs, CPU per run: views (raw) %8.3f ms   floor: no views (unzstd(raw)) %8.3f ms   ratio %.2f")
    :format(q[1], reps, cv * 1000 / reps, cn * 1000 / reps, cv / cn))
end
V:close()
N:close()
