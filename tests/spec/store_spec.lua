-- store_spec.lua — scripts/store.lua on a real SQLite file: migrations, idempotent upserts, the change
-- history, deletion marking after complete listings only, stream state in the rows' transaction,
-- transactions between yielding tasks, read-only access, and the bad inputs (foreign / newer / locked /
-- full databases).
local store = require "store"
local sqlite = require "sqlite"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(host.mkdir(p, 448))
  return p
end

local function new_instance(st, name, app)
  local now = store.now()
  assert(st.db:exec("INSERT INTO instances (app, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
    app or "test", name, now, now))
  return st.db:last_insert_rowid()
end

local function users(n, suffix)
  local rows = {}
  for i = 1, n do
    rows[i] = { ext_id = "u" .. i, email = "user" .. i .. "@example.com", display_name = "User " .. i .. (suffix or ""),
                status = "active", is_admin = i == 1, raw = { id = "u" .. i, profile = { login = "user" .. i } } }
  end
  return rows
end

local function count(st, sql, ...)
  return st.db:query("SELECT count(*) AS n FROM " .. sql, ...)[1].n
end

describe("store", function()
  local dir, st
  before_each(function()
    dir = tmpdir()
    st = assert(store.open(dir))
  end)
  after_each(function()
    st:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  describe("migrations", function()
    it("creates the current schema in WAL mode with foreign keys", function()
      assert.equal(store.schema.version, st:user_version())
      assert.equal("wal", st.db:query("PRAGMA journal_mode")[1].journal_mode)
      assert.equal(1, st.db:query("PRAGMA foreign_keys")[1].foreign_keys)
      for _, t in ipairs { "instances", "secrets", "users", "groups", "group_members", "privileges", "activities",
                           "files", "file_permissions", "app_grants", "alerts", "governance_actions",
                           "stream_state", "changes" } do
        assert.equal(1, count(st, "sqlite_schema WHERE type = 'table' AND name = ?", t), t)
      end
    end)

    it("makes a new database with 8 KiB pages (its WAL checkpointed every ~40 MB); one made before keeps its own", function()
      assert.equal(8192, st.db:query("PRAGMA page_size")[1].page_size)
      assert.equal(5000, st.db:query("PRAGMA wal_autocheckpoint")[1].wal_autocheckpoint)
      local d2 = tmpdir()
      local db = assert(sqlite.open(d2 .. "/cachost.db"))
      assert(db:exec("CREATE TABLE t (x)"))
      db:close()
      local old = assert(store.open(d2, { migrate_to = 1 }))
      assert.equal(4096, old.db:query("PRAGMA page_size")[1].page_size)
      assert.equal(10000, old.db:query("PRAGMA wal_autocheckpoint")[1].wal_autocheckpoint)
      old:close()
      assert.has_error(function() sqlite.open(d2 .. "/x.db", { page_size = 1000 }) end)
      os.execute("rm -rf '" .. d2 .. "'")
    end)

    it("upgrades a version 1 database in place with its data intact", function()
      local d2 = tmpdir()
      local old = assert(store.open(d2, { migrate_to = 1 }))
      assert.equal(1, old:user_version())
      local id = new_instance(old, "prod")
      -- written as version 1 knew them (today's upsert writes columns added later)
      for i = 1, 3 do
        assert(old.db:exec([[INSERT INTO users (instance_id, ext_id, email, status, raw, first_seen, last_seen)
          VALUES (?, ?, ?, 'active', '{}', ?, ?)]], id, "u" .. i, "user" .. i .. "@example.com", store.now(), store.now()))
        assert(old.db:exec("INSERT INTO changes (instance_id, entity, ext_id, op, time) VALUES (?, 'users', ?, 'added', ?)",
          id, "u" .. i, store.now()))
      end
      assert(old.db:exec([[INSERT INTO activities (instance_id, ext_id, time, action, recorded_at)
        VALUES (?, 'a1', '2024-01-01T00:00:00Z', 'login', ?)]], id, store.now()))
      old:close()

      local up = assert(store.open(d2))
      assert.equal(store.schema.version, up:user_version())
      assert.equal(3, count(up, "users WHERE instance_id = ?", id))
      assert.equal("user2@example.com", up.db:query("SELECT email FROM users WHERE ext_id = 'u2'")[1].email)
      assert.equal(1, count(up, "activities"))
      assert.equal(3, count(up, "changes WHERE op = 'added'"))
      -- migration 2 is in effect: removed_at exists and a removed instance's name is free again
      assert(up.db:exec("UPDATE instances SET removed_at = ? WHERE id = ?", store.now(), id))
      new_instance(up, "prod")
      assert.equal(1, count(up, "sqlite_schema WHERE name = 'activities_time'"))
      -- migration 3: coordinates on activities, policy state
      assert.is_nil(up.db:query("SELECT lat FROM activities")[1].lat)
      assert.equal(1, count(up, "sqlite_schema WHERE name = 'policy_state'"))
      -- migration 9: people across apps (the version 1 accounts are in the identities view)
      assert.equal(3, count(up, "identities WHERE person LIKE 'user%@example.com' AND terminated_at IS NULL"))
      up:close()
      os.execute("rm -rf '" .. d2 .. "'")
    end)

    it("upgrades a version 15 database's events to the key (instance, time, id), each row and its id kept", function()
      local d2 = tmpdir()
      local old = assert(store.open(d2, { migrate_to = 15 }))
      local id = new_instance(old, "prod")
      local rows = {}
      for i = 1, 5 do
        rows[i] = { ext_id = "e" .. i, time = ("2024-01-01T00:00:0%dZ"):format(i), action = "login", actor = "a@b",
                    lat = i / 2, raw = ('{"n":%d}'):format(i) }
        assert(old.db:exec([[INSERT INTO activities (instance_id, ext_id, time, action, actor, lat, raw, recorded_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], id, rows[i].ext_id, rows[i].time, "login", "a@b", i / 2, rows[i].raw, store.now()))
      end
      -- written before an event needed a time
      assert(old.db:exec("INSERT INTO activities (instance_id, ext_id, action, recorded_at) VALUES (?, 'e0', 'x', ?)",
        id, store.now()))
      local before = old.db:query("SELECT id, ext_id, time, action, actor, lat, unzstd(raw) AS raw FROM activities ORDER BY id")
      old:close()

      local up = assert(store.open(d2))
      assert.same(before, up.db:query("SELECT id, ext_id, time, action, actor, lat, unzstd(raw) AS raw FROM activities ORDER BY id"))
      -- the old key is gone (an index over random ids), the time index is the key
      assert.equal(0, count(up, "sqlite_schema WHERE tbl_name = 'activities' AND name LIKE 'sqlite_autoindex%'"))
      assert.matches("UNIQUE INDEX activities_time ON activities%(instance_id, time, ext_id%)",
        up.db:query("SELECT sql FROM sqlite_schema WHERE name = 'activities_time'")[1].sql)
      local r = assert(up:upsert("activities", id, { rows[2], rows[5],
        { ext_id = "e6", time = "2024-01-01T00:00:06Z", action = "logout" } }))
      assert.same({ 1, 2 }, { r.added, r.unchanged })
      assert.equal(7, count(up, "activities"))
      -- reads by time take it
      local plan = up.db:query("EXPLAIN QUERY PLAN SELECT * FROM activities WHERE instance_id = 1 AND time > '2024'")
      assert.matches("activities_time", plan[1].detail)
      up:close()
      os.execute("rm -rf '" .. d2 .. "'")
    end)


    it("refuses a database newer than this binary, without touching it", function()
      assert(st.db:exec("PRAGMA user_version = 999"))
      st:close()
      local st2, err = store.open(dir)
      assert.is_nil(st2)
      assert.matches("^schema: .*newer than this cachost", err)
      local ro = assert(require("sqlite").open(dir .. "/cachost.db", { readonly = true }))
      assert.equal(999, ro:query("PRAGMA user_version")[1].user_version)
      ro:close()
      st = assert(require("sqlite").open(dir .. "/x.db"))   -- so after_each can close something
      st = { close = function() end }
    end)

    it("refuses a file that is not a database and leaves it as it was", function()
      local path = dir .. "/foreign.db"
      local f = assert(io.open(path, "wb"))
      local junk = ("this is my thesis, not a database\n"):rep(100)
      f:write(junk); f:close()
      local st2, err = store.open(path)
      assert.is_nil(st2)
      assert.matches("^notadb:", err)
      f = assert(io.open(path, "rb"))
      assert.equal(junk, f:read("a"))
      f:close()
    end)
  end)

  describe("governance counts", function()
    -- the safety brakes count before every automatic action: the last hour's automatic actions, read
    -- from indexes of those alone (migration 14), never the instance's whole log nor the hour's held rows
    it("counts the last hour's automatic actions, each count from an index of those alone", function()
      local id, other = new_instance(st, "a"), new_instance(st, "b")
      local old, recent, since = "2026-01-01T00:00:00.000Z", "2026-01-02T10:30:00.000Z", "2026-01-02T10:00:00.000Z"
      local k = 0
      local function act(inst, policy, mode, target, at)
        k = k + 1
        st:record_action { instance_id = inst, ext_id = "c" .. k, action = "suspend_user", target_id = target,
                           policy = policy, mode = mode, result = mode == "held" and "held" or "ok", created_at = at }
      end
      for i = 1, 5 do act(id, "p", "executed", "u" .. i, old) end          -- before the hour
      act(id, "p", "executed", "u1", recent); act(id, "p", "executed", "u1", recent); act(id, "p", "executed", "u2", recent)
      act(id, "q", "executed", "u3", recent); act(other, "p", "executed", "u9", recent)
      act(id, "p", "held", "u4", recent); act(id, nil, "executed", "u5", recent)   -- held; an operator's
      local c = st:action_counts(id, "p", since, true)
      assert.same({ 4, 5, 3 }, { c.policy, c.global, c.targets })
      assert.is_nil(st:action_counts(id, "p", since).targets)           -- asked for account actions only
      -- each count's plan: a covering search of a governance_auto_* index
      local seen, db = {}, st.db
      st.db = setmetatable({ query = function(_, sql, ...) seen[#seen + 1] = table.pack(sql, ...); return db:query(sql, ...) end },
                           { __index = function(_, f) return function(_, ...) return db[f](db, ...) end end })
      st:action_counts(id, "p", since, true)
      st.db = db
      local counted = 0
      for _, q in ipairs(seen) do
        local sql = q[1]
        if sql:find("governance_actions", 1, true) then
          counted = counted + 1
          local plan = {}
          for _, r in ipairs(db:query("EXPLAIN QUERY PLAN " .. sql, table.unpack(q, 2, q.n))) do plan[#plan + 1] = r.detail end
          plan = table.concat(plan, "; ")
          assert.matches("SEARCH governance_actions USING COVERING INDEX governance_auto_%w+ %(", plan, 1, false, sql)
        end
      end
      assert.equal(3, counted)
    end)
  end)

  describe("upsert", function()
    local id
    before_each(function() id = new_instance(st, "t1") end)

    it("keeps a column the row does not mention, and clears one given as json.null", function()
      assert(st:upsert("users", id, { { ext_id = "a", email = "a@x", is_admin = true, raw = { id = "a" } } }))
      local r = assert(st:upsert("users", id, { { ext_id = "a", email = "a@x", raw = { id = "a" } } }))
      assert.equal(1, r.unchanged)
      assert.equal(1, st.db:query("SELECT is_admin FROM users WHERE ext_id = 'a'")[1].is_admin)
      r = assert(st:upsert("users", id, { { ext_id = "a", email = "a@x", is_admin = json.null, raw = { id = "a" } } }))
      assert.equal(1, r.changed)
      assert.is_nil(st.db:query("SELECT is_admin FROM users WHERE ext_id = 'a'")[1].is_admin)
    end)

    it("is idempotent: the same page twice adds and changes nothing", function()
      local r1 = assert(st:upsert("users", id, users(5), { scan_started = 1000 }))
      assert.same({ 5, 0, 0 }, { r1.added, r1.changed, r1.unchanged })
      assert.same({ "added", "added", "added", "added", "added" }, r1.status)
      local r2 = assert(st:upsert("users", id, users(5), { scan_started = 1000 }))
      assert.same({ 0, 0, 5 }, { r2.added, r2.changed, r2.unchanged })
      assert.equal(5, count(st, "users"))
      assert.equal(5, count(st, "changes"))
      -- raw JSON kept, booleans stored as 0/1
      local u = st.db:query("SELECT * FROM users WHERE ext_id = 'u1'")[1]
      assert.equal(1, u.is_admin)
      assert.same({ id = "u1", profile = { login = "user1" } }, json.decode(u.raw))
      assert.equal(u.first_seen, u.last_seen)
      assert.is_nil(u.deleted_at)
    end)

    it("reports changed rows with a diff and records them in changes", function()
      assert(st:upsert("users", id, users(3), { scan_started = 1000 }))
      local rows = users(3)
      rows[2].display_name = "Renamed"
      rows[3].status = "suspended"
      local r = assert(st:upsert("users", id, rows, { scan_started = 2000 }))
      assert.same({ 0, 2, 1 }, { r.added, r.changed, r.unchanged })
      assert.same({ "unchanged", "changed", "changed" }, r.status)
      local c = st.db:query("SELECT * FROM changes WHERE op = 'changed' AND ext_id = 'u2'")
      assert.equal(1, #c)
      assert.same({ display_name = { "User 2", "Renamed" } }, json.decode(c[1].diff))
      local u2 = st.db:query("SELECT first_seen, last_seen FROM users WHERE ext_id = 'u2'")[1]
      assert.equal(store.iso(1000), u2.first_seen)
      assert.equal(store.iso(2000), u2.last_seen)
    end)

    it("sees the same raw content with keys in any order as unchanged", function()
      local a = { ext_id = "x", email = "x@e", raw = { b = 1, a = { 2, 3 }, c = { z = 1, y = 2 } } }
      assert(st:upsert("users", id, { a }))
      local b = { ext_id = "x", email = "x@e", raw = json.decode('{"c":{"y":2,"z":1},"a":[2,3],"b":1}') }
      local r = assert(st:upsert("users", id, { b }))
      assert.equal(1, r.unchanged)
    end)

    it("marks rows missing from a complete listing as deleted, never deleting them", function()
      assert(st:upsert("users", id, users(4), { scan_started = 1000, complete = true }))
      -- an incomplete listing (say, the scan failed on page 2) marks nothing
      local partial = assert(st:upsert("users", id, { users(4)[1] }, { scan_started = 2000 }))
      assert.equal(0, partial.removed)
      assert.equal(0, count(st, "users WHERE deleted_at IS NOT NULL"))
      -- a complete listing over two pages: u3 and u4 are gone
      local all = users(4)
      assert(st:upsert("users", id, { all[1] }, { scan_started = 3000 }))
      local last = assert(st:upsert("users", id, { all[2] }, { scan_started = 3000, complete = true }))
      assert.equal(2, last.removed)
      assert.equal(4, count(st, "users"))
      assert.same({ { ext_id = "u3" }, { ext_id = "u4" } },
        st.db:query("SELECT ext_id FROM users WHERE deleted_at IS NOT NULL ORDER BY ext_id"))
      assert.equal(2, count(st, "changes WHERE op = 'removed'"))
      -- a deleted row that comes back is added again
      local back = assert(st:upsert("users", id, { all[3] }, { scan_started = 4000 }))
      assert.equal(1, back.added)
      assert.is_nil(st.db:query("SELECT deleted_at FROM users WHERE ext_id = 'u3'")[1].deleted_at)
      -- other instances are never touched
      local other = new_instance(st, "t2")
      assert(st:upsert("users", other, users(2), { scan_started = 5000 }))
      assert(st:upsert("users", id, {}, { scan_started = 6000, complete = true }))
      assert.equal(0, count(st, "users WHERE instance_id = ? AND deleted_at IS NOT NULL", other))
    end)

    it("inserts activities once, whatever the overlap between pages", function()
      local page = {}
      for i = 1, 100 do
        page[i] = { ext_id = "ev" .. i, time = ("2024-01-01T00:%02d:00Z"):format(i % 60), kind = "signin",
                    action = "login", actor = "a@b", outcome = i % 2 == 0 and "success" or "failure",
                    raw = { uuid = "ev" .. i } }
      end
      local r1 = assert(st:upsert("activities", id, page))
      assert.equal(100, r1.added)
      page[101] = { ext_id = "ev101", time = "2024-01-01T01:00:00Z", action = "logout" }
      local r2 = assert(st:upsert("activities", id, page))
      assert.same({ 1, 100 }, { r2.added, r2.unchanged })
      assert.equal("added", r2.status[101])
      assert.equal(101, count(st, "activities"))
      assert.equal(50, count(st, "activities WHERE outcome = 'failure'"))
      assert.equal(0, count(st, "changes"))
    end)

    it("rejects rows without ext_id and unknown entities, writing nothing", function()
      local rows = users(3)
      rows[3].ext_id = nil
      local r, err = st:upsert("users", id, rows)
      assert.is_nil(r)
      assert.matches("row 3 has no ext_id", err)
      assert.equal(0, count(st, "users"))
      -- an event's time is part of its key
      r, err = st:upsert("activities", id, { { ext_id = "e1", time = "2024-01-01T00:00:00Z" }, { ext_id = "e2" } })
      assert.is_nil(r)
      assert.matches("row 2 has no time", err)
      assert.equal(0, count(st, "activities"))
      assert.has_error(function() st:upsert("nope", id, {}) end)
    end)

    it("rolls back the whole page when the disk fills up", function()
      assert(st:upsert("users", id, users(10)))
      local pages = st.db:query("PRAGMA page_count")[1].page_count
      assert(st.db:exec("PRAGMA max_page_count = " .. (pages + 2)))
      local big = users(2000, (" padding"):rep(50))
      local r, err = st:upsert("users", id, big)
      assert.is_nil(r)
      assert.matches("^full:", err)
      assert.equal(10, count(st, "users"))
      assert.equal("User 5", st.db:query("SELECT display_name FROM users WHERE ext_id = 'u5'")[1].display_name)
      assert.equal(10, count(st, "changes"))
    end)
  end)

  describe("stream state", function()
    local id
    before_each(function() id = new_instance(st, "t1") end)

    it("is saved in the same transaction as the rows it covers", function()
      assert(st:transaction(function()
        assert(st:upsert("activities", id, { { ext_id = "e1", time = "2024-01-01T00:00:00Z" } }))
        assert(st:save_stream(id, "activities", { cursor = "c1", watermark = "2024-01-01T00:00:00Z" }))
      end) ~= nil)
      assert.equal("c1", st:stream(id, "activities").cursor)
      -- a failure after the rows: neither the rows nor the cursor are kept
      local ok, err = st:transaction(function()
        assert(st:upsert("activities", id, { { ext_id = "e2", time = "2024-01-01T00:00:01Z" } }))
        assert(st:save_stream(id, "activities", { cursor = "c2", counts = { seen = 2 } }))
        error("page 2 failed")
      end)
      assert.is_nil(ok)
      assert.matches("page 2 failed", err)
      assert.equal("c1", st:stream(id, "activities").cursor)
      assert.equal(1, count(st, "activities"))
      -- only the given fields change; json.null clears one
      assert(st:save_stream(id, "activities", { last_error = "timeout" }))
      local s = st:stream(id, "activities")
      assert.same({ "c1", "timeout" }, { s.cursor, s.last_error })
      assert(st:save_stream(id, "activities", { last_error = json.null, counts = { seen = 1 } }))
      s = st:stream(id, "activities")
      assert.is_nil(s.last_error)
      assert.same({ seen = 1 }, json.decode(s.counts))
      assert.has_error(function() st:save_stream(id, "x", { bogus = 1 }) end)
    end)
  end)

  describe("transactions", function()
    it("never interleaves the writes of tasks that yield inside", function()
      local id = new_instance(st, "t1")
      local log = {}
      local function writer(name)
        return sched.spawn(function()
          return st:transaction(function()
            for i = 1, 3 do
              log[#log + 1] = name .. i
              assert(st.db:exec("INSERT INTO activities (instance_id, ext_id, action, recorded_at) VALUES (?, ?, ?, ?)",
                id, name .. i, name, store.now()))
              sched.sleep(0.01)
            end
            if name == "b" then error("b fails") end
            return name
          end)
        end)
      end
      local a, b, c = writer("a"), writer("b"), writer("c")
      assert.same({ true, "a" }, { a:join() })
      local okb, rb, eb = b:join()
      assert.is_true(okb); assert.is_nil(rb); assert.matches("b fails", eb)
      assert.same({ true, "c" }, { c:join() })
      assert.same({ "a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3" }, log)
      assert.equal(6, count(st, "activities"))
      assert.equal(0, count(st, "activities WHERE action = 'b'"))
    end)

    it("releases the lock when the task is cancelled mid-transaction", function()
      local t = sched.spawn(function()
        st:transaction(function()
          assert(st.db:exec("INSERT INTO instances (app, name, created_at, updated_at) VALUES ('x', 'x', 'n', 'n')"))
          sched.sleep(10)
        end)
      end)
      sched.sleep(0.02)
      t:cancel()
      sched.sleep(0.02)
      assert.is_true(st.db:autocommit())
      assert.equal(0, count(st, "instances"))
      assert(st:transaction(function() return true end))
    end)

    it("waits for another process's lock, then fails clearly", function()
      local st2 = assert(store.open(dir, { busy_timeout = 200 }))
      assert(st.db:exec("BEGIN IMMEDIATE"))
      local t0 = sched.now()
      local ok, err = st2:transaction(function() return true end)
      assert.is_nil(ok)
      assert.matches("^busy: the database is locked", err)
      assert.is_true(sched.now() - t0 >= 0.15)
      assert(st.db:exec("ROLLBACK"))
      assert.is_true(st2:transaction(function() return true end))
      st2:close()
    end)
  end)

  describe("reading", function()
    it("queries on a read-only connection that cannot write", function()
      local id = new_instance(st, "t1")
      assert(st:upsert("users", id, users(20)))
      local rows = assert(st:query("SELECT ext_id FROM users WHERE is_admin = ? ", 1))
      assert.same({ { ext_id = "u1" } }, rows)
      local n = 0
      for r in st:rows("SELECT * FROM users ORDER BY id") do n = n + 1; assert.equal("u" .. n, r.ext_id) end
      assert.equal(20, n)
      local ok, err = st:query("DELETE FROM users")
      assert.is_nil(ok)
      assert.truthy(err)
      ok, err = st:reader().db:exec("UPDATE users SET email = 'x'")
      assert.is_nil(ok)
      assert.equal(0, count(st, "users WHERE email = 'x'"))
      assert.equal(20, count(st, "users"))
    end)

    it("bounds the work of a statement with timeout (a recursive CTE never ends)", function()
      local endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c"
      local rd = assert(store.open_readonly(dir, { timeout = 0.2 }))
      local ok, err = rd:query(endless)
      assert.is_nil(ok)
      assert.equal("timeout: the statement worked longer than 0.2 s", err)
      -- the connection serves on, and a cursor counts the work of all its steps, not the time between them
      assert.equal(3, rd:query("SELECT 1 + 2 AS n")[1].n)
      local cur = assert(rd:cursor("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"))
      local n, row, cerr = 0, nil, nil
      repeat row, cerr = cur:next(true); n = n + 1 until not row
      assert.equal("timeout: the statement worked longer than 0.2 s", cerr)
      assert.is_true(n > 1000)
      rd:close()
      local db = assert(sqlite.open(":memory:", { timeout = 0.2 }))
      ok, err = db:exec("CREATE TABLE t AS " .. endless)
      assert.matches("^timeout:", err)
      db:close()
      assert.has_error(function() sqlite.open(":memory:", { timeout = -1 }) end)
      assert.has_error(function() sqlite.open(":memory:", { timeout = "soon" }) end)
    end)

    it("starts a scan after the previous one even when the wall clock stepped back", function()
      local t = store.scan_start(nil)
      assert.is_true(math.abs(t - sched.time()) < 5)
      local future = "2999-01-01T00:00:00.000Z"
      assert.equal("2999-01-01T00:00:00.001Z", store.iso(store.scan_start(future)))
      assert.is_true(store.scan_start(store.iso(t - 3600)) >= t)     -- an older previous start: the clock
    end)

    it("store.sql reads host.home", function()
      local saved = host.home
      host.home = dir
      local id = new_instance(st, "t1")
      assert.equal(id, store.sql("SELECT id FROM instances WHERE name = ?", "t1")[1].id)
      assert.has_error(function() store.sql("DROP TABLE users") end)
      host.home = saved
    end)
  end)
end)
