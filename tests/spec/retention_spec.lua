-- retention_spec.lua — retention (scripts/retention.lua, store/retention.lua): deletes exactly the
-- activities and changes older than each instance's retention and nothing else, keeps the rows the
-- policies have not evaluated yet, and works in small transactions that let a concurrent sync's pages in.
local store = require "store"
local retention = require "retention"
local helpers = require "helpers"

local DAY = 86400
local BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

local function run(home, args)
  local p = io.popen(("CACHOST_HOME='%s' %s %s 2>&1; echo \"exit $?\""):format(home, BIN, args))
  local out = p:read("a")
  p:close()
  return out
end

local function new_instance(st, name)
  local now = store.now()
  assert(st.db:exec("INSERT INTO instances (app, name, created_at, updated_at) VALUES ('okta', ?, ?, ?)", name, now, now))
  return st.db:last_insert_rowid()
end

-- one event every 6 hours over `days` days back from now, and one change per day
local function fill(st, inst, days)
  local rows, t0 = {}, sched.time()
  for h = 0, days * 4 - 1 do
    rows[#rows + 1] = { ext_id = "e" .. h, time = store.iso(t0 - h * 6 * 3600 - 60), action = "x", raw = '{"h":' .. h .. '}' }
  end
  assert(st:upsert("activities", inst, rows))
  assert(st:transaction(function()
    for d = 0, days - 1 do
      assert(st.db:exec("INSERT INTO changes (instance_id, entity, ext_id, op, time) VALUES (?, 'users', ?, 'changed', ?)",
        inst, "u" .. d, store.iso(t0 - d * DAY - 60)))
    end
  end))
  assert(st:upsert("users", inst, { { ext_id = "u1", email = "old@example.com" } }))
  assert(st.db:exec("UPDATE users SET first_seen = ?, last_seen = ? WHERE instance_id = ?", store.iso(t0 - 900 * DAY), store.iso(t0 - 900 * DAY), inst))
  return #rows
end

local function ids(st, tbl, inst)
  local out = {}
  for _, r in ipairs(st.db:query(("SELECT ext_id, time FROM %s WHERE instance_id = ? ORDER BY time"):format(tbl), inst)) do
    out[#out + 1] = r.time
  end
  return out
end

describe("retention", function()
  local st, a, b
  before_each(function()
    st = assert(store.open(helpers.tmp_dir()))
    a, b = new_instance(st, "a"), new_instance(st, "b")
  end)
  after_each(function() st:close() end)

  it("deletes exactly the rows older than each instance's retention, per table, and nothing else", function()
    fill(st, a, 40)
    fill(st, b, 40)
    local before_b_act, before_b_chg = ids(st, "activities", b), ids(st, "changes", b)
    local inst_a = { id = a, name = "a", settings = { retention_days = 30, retention_days_changes = 10 } }
    local inst_b = { id = b, name = "b", settings = {} }   -- the default: 365 days
    local r = assert(retention.run(st, inst_a))
    local by = {}
    for _, x in ipairs(r) do by[x.table] = x end
    assert.equal(30, by.activities.days)
    assert.equal(10, by.changes.days)
    -- what is left: exactly the rows at or after the cutoff
    for tbl, x in pairs(by) do
      local kept, old = 0, 0
      for _, t in ipairs(ids(st, tbl, a)) do
        if t < x.before then old = old + 1 else kept = kept + 1 end
      end
      assert.equal(0, old, tbl .. " rows older than the cutoff remain")
      assert.is_true(kept > 0)
    end
    assert.equal(10 * 4 , by.activities.deleted)                -- 40 days of 4 a day, 30 kept
    assert.equal(30, by.changes.deleted)
    assert.equal(30 * 4, #ids(st, "activities", a))
    assert.equal(10 + 1, #ids(st, "changes", a))               -- and the users row's own 'added'

    -- the other instance (default retention) and the inventory are untouched
    assert(retention.run(st, inst_b))
    assert.same(before_b_act, ids(st, "activities", b))
    assert.same(before_b_chg, ids(st, "changes", b))
    assert.equal(1, st.db:query("SELECT count(*) n FROM users WHERE instance_id = ?", a)[1].n)
    -- 0 keeps forever; a dry run deletes nothing
    assert.same(0, retention.run(st, { id = b, name = "b", settings = { retention_days = 0 } })[1].deleted)
    local dry = assert(retention.run(st, { id = b, name = "b", settings = { retention_days = 1 } }, { dry_run = true }))
    assert.equal(39 * 4, dry[1].deleted)
    assert.same(before_b_act, ids(st, "activities", b))
  end)

  it("keeps the rows of pages the policies have not evaluated yet", function()
    fill(st, a, 20)
    local oldest = st.db:query("SELECT id FROM activities WHERE instance_id = ? ORDER BY time LIMIT 1", a)[1].id
    -- the page holding the newest rows was inserted first: its ids are the lowest
    local first = st.db:query("SELECT min(id) m FROM activities WHERE instance_id = ?", a)[1].m
    assert(st.db:exec([[INSERT INTO policy_pending (instance_id, source, first_id, last_id, created_at)
      VALUES (?, 'activities', ?, ?, 'x')]], a, first + 10, first + 20))
    local r = assert(retention.run(st, { id = a, name = "a", settings = { retention_days = 1 } }))
    assert.equal(11, st.db:query("SELECT count(*) n FROM activities WHERE id >= ? AND id <= ?", first + 10, first + 20)[1].n)
    assert.is_true(r[1].deleted > 0)
    assert.equal(1, st.db:query("SELECT count(*) n FROM activities WHERE id = ?", oldest)[1].n)   -- after the pending page
  end)

  it("works in batches of BATCH rows, each its own transaction, letting a concurrent sync's page in", function()
    fill(st, a, 100)     -- 400 events, 360 of them older than 10 days
    local saved = retention.BATCH
    retention.BATCH = 20
    local batches, page_at = 0, nil
    local batch = st.retention_batch
    st.retention_batch = function(self, ...)       -- a spy: each call is one transaction
      assert.is_false(self:in_transaction())
      batches = batches + 1
      return batch(self, ...)
    end
    local t1 = sched.spawn(function()
      return retention.run(st, { id = a, name = "a", settings = { retention_days = 10, retention_days_changes = 0 } })
    end)
    local t2 = sched.spawn(function()
      assert(st:upsert("activities", b, { { ext_id = "new", time = store.now(), raw = "{}" } }))
      page_at = batches
    end)
    local ok, r = t1:join(30)
    t2:join(30)
    st.retention_batch = batch
    retention.BATCH = saved
    assert.is_true(ok)
    assert.equal(360, r[1].deleted)
    assert.equal(360 // 20 + 1, batches)           -- 18 full batches and the empty one that ends it
    assert.is_true(page_at ~= nil and page_at <= 1, "the sync's page went in after the first batch, not the last")
  end)

  it("gives the free pages beyond a quarter of the file back, in a database made with incremental auto-vacuum", function()
    assert.equal(2, st.db:query("PRAGMA auto_vacuum")[1].auto_vacuum)
    local rows, hex = {}, {}
    for i = 1, 3000 do
      for k = 1, 80 do hex[k] = ("%02x"):format(math.random(0, 255)) end   -- (raw is stored compressed: not a repetition)
      rows[i] = { ext_id = "x" .. i, time = store.iso(sched.time() - 50 * DAY), raw = ('{"pad":"%s"}'):format(table.concat(hex)) }
    end
    assert(st:upsert("activities", a, rows))
    fill(st, a, 5)
    local pages = st.db:query("PRAGMA page_count")[1].page_count
    assert(retention.run(st, { id = a, name = "a", settings = { retention_days = 30 } }))
    local free = st.db:query("PRAGMA freelist_count")[1].freelist_count
    assert.is_true(free > pages / 2, "most pages are free after the deletion")
    local released = retention.release(st)
    local after = st.db:query("PRAGMA page_count")[1].page_count
    assert.equal(pages - released, after)
    assert.is_true(st.db:query("PRAGMA freelist_count")[1].freelist_count <= after * retention.KEEP_FREE)
    assert.equal(0, retention.release(st))                  -- below the threshold: kept for new rows
    assert.equal(5 * 4, st.db:query("SELECT count(*) n FROM activities")[1].n)
  end)

  it("cachost retention applies it once and cachost status shows each table's size per instance", function()
    fill(st, a, 40)
    assert(st.db:exec([[UPDATE instances SET settings = '{"retention_days":"30"}' WHERE id = ?]], a))
    local home = st.path:match("^(.*)/[^/]*$")
    st:close()
    local out = run(home, "retention --dry-run -f csv")
    assert.matches("a,activities,30,[^,]+,40\n", out)
    out = run(home, "retention a -f csv")
    assert.matches("a,activities,30,[^,]+,40\n", out)
    assert.matches("exit 0", out, 1, true)
    out = run(home, "status --size -f csv")
    assert.matches("instance,table,rows,bytes\n", out, 1, true)
    assert.matches("\na,activities,120,%d+\n", out)
    out = run(home, "retention nope")
    assert.matches("no instance named 'nope'", out, 1, true)
    assert.matches("exit 1", out, 1, true)
    st = assert(store.open(home))
  end)

  it("a bad setting is one clear error", function()
    local r, err = retention.run(st, { id = a, name = "a", settings = { retention_days = -3 } })
    assert.is_nil(r)
    assert.equal("a: retention_days must be a whole number of days >= 0 (0 keeps forever), not -3", err)
  end)
end)
