-- store_backends_spec.lua — the store's named operations, the same specs on both backends: SQLite (a
-- file in a temporary home) and PostgreSQL (a database of its own on the test server, tests/pgtest.lua).
-- Migrations, idempotent upserts with their change history and deletion marking, a page's rows and
-- cursor in one transaction (and none of it after a failure), the vault's ciphertext, alerts raised once,
-- governance records and counts, sinks' deliveries, the policies' pending pages, retention, and the
-- read-only connection `cachost query` uses.
local helpers = require "helpers"
local pgtest = require "pgtest"
local store = require "store"

local function users(n, suffix)
  local rows = {}
  for i = 1, n do
    rows[i] = { ext_id = "u" .. i, email = "user" .. i .. "@example.com", display_name = "User " .. i .. (suffix or ""),
                status = "active", is_admin = i == 1, raw = { id = "u" .. i } }
  end
  return rows
end

local function events(from, to)
  local rows = {}
  for i = from, to do
    rows[#rows + 1] = { ext_id = "e" .. i, time = ("2024-05-01T00:00:%02d.000Z"):format(i % 60), action = "login",
                        actor = "user1@example.com", lat = 48.5, raw = { id = "e" .. i, n = i } }
  end
  return rows
end

for _, backend in ipairs { "sqlite", "postgresql" } do
  describe("the store on " .. backend, function()
    local dir, where, st
    before_each(function()
      dir = helpers.tmp_dir()
      where = backend == "sqlite" and dir or pgtest.fresh()
      st = assert(store.open(where, { home = dir }))
    end)
    after_each(function()
      st:close()
      os.execute("rm -rf '" .. dir .. "'")
    end)

    local function n_rows(sql, ...) return st:query("SELECT count(*) AS n FROM " .. sql, ...)[1].n end
    local function instance(name)
      local id
      assert(st:transaction(function() id = st:add_instance("okta", name or "prod", "{}") end))
      return id
    end

    it("migrates to the current schema, and opening it again changes nothing", function()
      assert.equal(store.schema.version, st:user_version())
      local again = assert(store.open(where))
      assert.equal(store.schema.version, again:user_version())
      again:close()
      local tables = st:reader():tables()
      for _, t in ipairs { "instances", "users", "activities", "alerts", "governance_actions", "stream_state", "changes" } do
        assert.truthy(table.concat(tables, " "):find("%f[%w_]" .. t .. "%f[^%w_]"), t)
      end
      for _, t in ipairs(tables) do assert.not_equal("secrets", t) end
    end)

    it("keeps instance rows: added, found by name and id, updated, listed", function()
      local id = instance("prod")
      assert.is_true(id > 0)
      assert.equal(id, st:instance_row("prod").id)
      assert.equal("prod", st:instance_row(id).name)
      assert(st:update_instance(id, { status = "connected", enabled = false }))
      assert.equal(0, #st:instance_rows { enabled = true })
      assert.equal(1, #st:instance_rows { app = "okta" })
      assert.equal("disabled", st:instance_summaries()[1].status)
      local other = instance("test")
      assert.is_true(other > id)
    end)

    it("upserts inventory idempotently, with the change history and deletion after a complete listing only", function()
      local id = instance()
      local t1 = store.scan_start()
      local r = assert(st:upsert("users", id, users(3), { scan_started = t1 }))
      assert.same({ 3, 0, 0 }, { r.added, r.changed, r.unchanged })
      r = assert(st:upsert("users", id, users(3), { scan_started = t1 }))
      assert.same({ 0, 0, 3 }, { r.added, r.changed, r.unchanged })
      local t2 = t1 + 1
      local changed = users(2, " (renamed)")
      r = assert(st:upsert("users", id, changed, { scan_started = t2, complete = true }))
      assert.same({ 0, 2, 1 }, { r.added, r.changed, r.removed })
      assert.equal("User 1 (renamed)", r.changes[1].diff.display_name[2])
      assert.equal(2, n_rows("users WHERE instance_id = ? AND deleted_at IS NULL", id))
      assert.equal(3, n_rows("users WHERE instance_id = ?", id))           -- marked, never deleted
      assert.equal(1, st:query("SELECT is_admin FROM users WHERE ext_id = 'u1'")[1].is_admin)
      assert.equal(3, n_rows("changes WHERE op = 'added'"))
      assert.equal(2, n_rows("changes WHERE op = 'changed'"))
      assert.equal(1, n_rows("changes WHERE op = 'removed'"))
      assert.same({ "u1", "u2" }, assert(st:stored_ids("users", id, "status", "active")))
      assert.equal(2, #st:known_users(id))
      -- a page holding a row twice: the second is the first again
      local twice = { users(4)[4], users(4)[4] }
      r = assert(st:upsert("users", id, twice, { scan_started = t2 }))
      assert.same({ 1, 0, 1 }, { r.added, r.changed, r.unchanged })
    end)

    it("inserts events once, and reads their raw JSON back as it was", function()
      local id = instance()
      local r = assert(st:upsert("activities", id, events(1, 5)))
      assert.equal(5, r.added)
      r = assert(st:upsert("activities", id, events(3, 8)))
      assert.same({ 3, 3 }, { r.added, r.unchanged })
      assert.equal(8, n_rows("activities WHERE instance_id = ?", id))
      local e = assert(st:stored("activities", id, "e7"))
      assert.same({ id = "e7", n = 7 }, json.decode(e.raw))
      assert.equal(48.5, e.lat)
      local seen = 0
      for row in st:each_row("activities", id) do seen = seen + 1; assert.equal("table", type(json.decode(row.raw))) end
      assert.equal(8, seen)
    end)

    it("commits a page's rows with its cursor in one transaction, and nothing of a failed one", function()
      local id = instance()
      assert(st:transaction(function()
        assert(st:upsert("users", id, users(2), { scan_started = store.scan_start() }))
        assert(st:save_stream(id, "users", { cursor = "page2", counts = { added = 2 } }))
      end))
      assert.equal("page2", st:stream(id, "users").cursor)
      local ok, err = st:transaction(function()
        assert(st:upsert("users", id, users(5), { scan_started = store.scan_start() }))
        assert(st:save_stream(id, "users", { cursor = "page3" }))
        error("network: connection reset", 0)
      end)
      assert.is_nil(ok)
      assert.matches("connection reset", err)
      assert.equal("page2", st:stream(id, "users").cursor)
      assert.equal(2, n_rows("users WHERE instance_id = ?", id))
      -- a nested transaction rolls back alone
      assert(st:transaction(function()
        assert.is_nil(st:transaction(function()
          assert(st:save_stream(id, "users", { cursor = "inner" }))
          error("inner failed", 0)
        end))
        assert(st:save_stream(id, "groups", { cursor = "outer" }))
      end))
      assert.equal("page2", st:stream(id, "users").cursor)
      assert.equal("outer", st:stream(id, "groups").cursor)
    end)

    it("keeps the vault's secrets as ciphertext bound to their instance", function()
      local id = instance()
      local v = assert(st:vault())
      assert(v:put(id, "token", "s3cr3t-value"))
      assert.equal("s3cr3t-value", v:get(id, "token"))
      local row = st.db:query("SELECT * FROM secrets WHERE instance_id = ?", id)[1]
      assert.is_nil(row.ciphertext:find("s3cr3t", 1, true))
      assert.equal(12, #row.nonce)
      assert.same({ "token" }, st:secret_names(id))
      assert(v:put(id, "token", "rotated"))
      assert.equal("rotated", v:get(id, "token"))
      assert.equal(1, st:secret_count())
    end)

    it("raises an alert once, and keeps governance records with their counts", function()
      local id = instance()
      local a = { instance_id = id, ext_id = "k1", policy = "p", severity = "high", title = "t", evidence = { n = 1 } }
      assert.is_true(st:raise_alert(a))
      assert.is_false(st:raise_alert(a))
      assert.equal(1, n_rows("alerts"))
      assert.is_true(st:touch_alert(id, "k1"))
      assert.equal(1, #st:alert_list(10, true))
      local row = st:record_action { instance_id = id, ext_id = "c1", action = "suspend_user", target_id = "u1",
                                     policy = "p", mode = "executed", result = "pending", created_at = store.now() }
      assert.equal("pending", row.result)
      assert.equal(1, #st:unsettled_actions(id))
      assert.equal(1, #st:unsettled_actions(nil))
      row = st:settle_action(row.id, { result = "ok", provider_status = 200 })
      assert.equal(200, row.provider_status)
      local c = st:action_counts(id, "p", "2000-01-01T00:00:00.000Z", true)
      assert.same({ 1, 1, 1 }, { c.policy, c.global, c.targets })
      assert.equal(row.id, st:action_done(id, "suspend_user", "u1").id)
      assert.equal(1, #st:action_log(5))
    end)

    it("queues deliveries per sink, backs off a failing one, and reports its health", function()
      local id = instance()
      assert.equal(0, #st:sink_due("s", 1, 10))       -- first look: starts after the newest alert
      st:raise_alert { instance_id = id, ext_id = "k1", policy = "p", severity = "high", title = "t" }
      st:raise_alert { instance_id = id, ext_id = "k2", policy = "p", severity = "low", title = "t" }
      local due = st:sink_due("s", 3, 10)
      assert.equal(1, #due)
      st:delivery_failed("s", due[1].id, "HTTP 500", os.time() + 3600)
      assert.equal(0, #st:sink_due("s", 3, 10))
      local h = st:sink_health()[1]
      assert.same({ "s", 1, 0, 1, "HTTP 500" }, { h.sink, h.waiting, h.delivered, h.attempts, h.last_error })
    end)

    it("notes the pages the policies have not evaluated, and reads their feed back", function()
      local id = instance()
      local other = instance("other")
      local note
      assert(st:transaction(function()
        assert(st:upsert("activities", other, events(1, 2)))
        assert(st:upsert("activities", id, events(1, 3)))
        note = st:note_pending(id, "activities", 3, true)
      end))
      local notes = st:pending_notes(id)
      assert.equal(1, #notes)
      assert.equal(note, notes[1].id)
      local feed = st:noted_feed(id, notes[1]).activities
      assert.equal(3, #feed)
      assert.equal("e1", feed[1].row.ext_id)
      st:save_policy_state(id, { note }, { { policy = "p", key = "actor", data = { n = 3 } } })
      assert.equal(0, #st:pending_notes(id))
      assert.same({ n = 3 }, st:policy_window("p", id, "actor"))
      st:set_policy_switch("p", { enabled = 0 })
      assert.equal(0, st:policy_switches().p.enabled)
    end)

    it("joins accounts into people across instances, by e-mail or by a link", function()
      local a, b = instance("a"), instance("b")
      local seen = store.scan_start()
      assert(st:upsert("users", a, { { ext_id = "x1", email = "Ann@example.com", status = "active" } }, { scan_started = seen }))
      assert(st:upsert("users", b, { { ext_id = "y1", email = "ann@example.com", status = "suspended" },
                                     { ext_id = "y2", email = "bob@other.com", status = "active" } }, { scan_started = seen }))
      assert.equal(2, #st:identity("ann@example.com"))
      st:link_identity(b, "y2", "ann@example.com")
      st:link_identity(b, "y2", "ann@example.com")          -- again: the same link
      assert.equal(3, #st:identity("ann@example.com"))
      assert.same({ y1 = "ann@example.com", y2 = "ann@example.com" }, st:people_of(b, { "y1", "y2" }))
      assert.equal("suspended", st:departures({ "okta" }, { "suspended" })["ann@example.com"].how)
      assert.equal(1, st:unlink_identity(b, "y2"))
    end)

    it("deletes old events in batches for retention", function()
      local id = instance()
      assert(st:upsert("activities", id, events(1, 10)))
      assert.equal(10, st:retention_count("activities", id, "2030-01-01T00:00:00.000Z"))
      assert.equal(4, st:retention_batch("activities", id, "2030-01-01T00:00:00.000Z", 4))
      assert.equal(6, n_rows("activities"))
      assert.is_true(#st:table_sizes() > 0)
    end)

    it("leases each instance to one worker until it expires, then to another; a lost lease refuses the page", function()
      local a, b = instance("a"), instance("b")
      assert(st:worker_beat { id = "w1", host = "h", pid = 1 })
      assert(st:worker_beat { id = "w2", host = "h", pid = 2 })
      assert.equal(2, st:live_workers(30))
      assert.same({ a }, st:claim_leases("w1", 30, 1))
      assert.same({ b }, st:claim_leases("w2", 30, 5))            -- a is held: w2 gets only b
      assert.same({}, st:claim_leases("w2", 30, 5))
      assert.same({ [a] = true }, st:renew_leases("w1", 30))
      -- w2's lease of b lapses (a ttl in the past): w1 takes b over, and w2's next page of b is refused
      assert.same({}, st:renew_leases("w2", -1))
      assert.same({ b }, st:claim_leases("w1", 30, 5))
      assert.same({}, st:renew_leases("w2", 30))
      st.lease = { id = "w2", ttl = 30, held = { [b] = true } }
      local ok, err = st:save_stream(b, "users", { cursor = "x" })
      assert.is_nil(ok)
      assert.matches("^lease: ", err)
      st.lease = { id = "w1", ttl = 30, held = { [a] = true, [b] = true } }
      assert(st:save_stream(b, "users", { cursor = "x" }))
      st.lease = nil
      assert.equal(2, st:worker_rows()[1].leases)
      assert.equal("w1", st:lease_rows()[2].worker)
      assert(st:release_leases("w1"))
      assert.same({ a, b }, st:claim_leases("w2", 30, 5))
      assert.equal("w2", st:lease_holder(a))
      assert.equal("stopped", st:worker_rows()[1].stopped_at and "stopped")
      -- the kill switch every worker reads
      assert.is_nil(st:switch("governance_paused"))
      assert(st:set_switch("governance_paused", "ops"))
      assert.equal("ops", st:switch("governance_paused"))
    end)

    it("gives a named lock to one process at a time, until it is given up or expires", function()
      assert.is_true(st:take_lock("7:token", "p1", 30))
      assert.is_true(st:take_lock("7:token", "p1", 30))            -- its holder again: renewed
      assert.is_false(st:take_lock("7:token", "p2", 30))
      assert.is_true(st:take_lock("8:token", "p2", 30))            -- another name is free
      assert(st:drop_lock("7:token", "p2"))                         -- not p2's to give up
      assert.is_false(st:take_lock("7:token", "p2", 30))
      assert(st:drop_lock("7:token", "p1"))
      assert.is_true(st:take_lock("7:token", "p2", -1))            -- taken, already expired...
      assert.is_true(st:take_lock("7:token", "p3", 30))            -- ...so a dead holder does not keep it
    end)

    if backend == "postgresql" then
      it("lets the limit checks of two workers pass one at a time", function()
        local other = assert(store.open(where, { home = dir, busy_timeout = 200 }))
        assert(st:transaction(function()
          st:serialize_limits()
          -- the other worker's check waits for this transaction (here: past its lock timeout)
          local ok, err, token = other:transaction(function() other:serialize_limits() end)
          assert.is_nil(ok)
          assert.equal("busy", token, err)
        end))
        assert(other:transaction(function() other:serialize_limits() end))
        other:close()
      end)

      it("gives each due delivery to one worker", function()
        local id = instance()
        local other = assert(store.open(where, { home = dir }))
        assert.equal(0, #st:sink_due("s", 1, 10))
        st:raise_alert { instance_id = id, ext_id = "k1", policy = "p", severity = "high", title = "t" }
        assert.equal(1, #st:sink_due("s", 1, 10))
        assert.equal(0, #other:sink_due("s", 1, 10))        -- taken by the first
        st:delivery_done("s", st:alert_list(1)[1].id)
        assert.equal(1, st:sink_health()[1].delivered)
        other:close()
      end)
    end

    it("gives cachost query a connection that reads and cannot write", function()
      local id = instance()
      assert(st:upsert("users", id, users(2), { scan_started = store.scan_start() }))
      local rd = assert(store.open_readonly(where))
      local cur = assert(rd:cursor("SELECT ext_id, email FROM users WHERE instance_id = ? ORDER BY ext_id", id))
      assert.same({ "ext_id", "email" }, cur:columns())
      assert.same({ "u1", "user1@example.com" }, cur:next(true))
      cur:close()
      local ok, err, token = rd:query("DELETE FROM users")
      assert.is_nil(ok)
      assert.truthy(token == "readonly" or token == "auth", tostring(err))
      assert.equal(2, n_rows("users"))
      -- a long result streams (PostgreSQL: FETCH by batches), other statements running between its rows
      assert(st:upsert("activities", id, events(1, 1200)))
      local all = assert(rd:cursor("SELECT ext_id, raw FROM activities WHERE instance_id = ? ORDER BY id", id))
      local n = 0
      while true do
        local row, rerr = all:next()
        assert.is_nil(rerr)
        if not row then break end
        n = n + 1
        if n == 700 then assert.equal(1200, rd:query("SELECT count(*) AS n FROM activities")[1].n) end
      end
      assert.equal(1200, n)
      -- a parameter whose type only its value tells (PostgreSQL cannot infer it) is taken as text,
      -- in a statement and in a cursor alike
      assert.equal(1, rd:query("SELECT count(*) AS n FROM users WHERE ? IS NULL AND ext_id = 'u1'", nil)[1].n)
      local typed = assert(rd:cursor("SELECT ? AS v", "x"))
      assert.same({ "x" }, typed:next(true))
      typed:close()
      local cols = rd:columns("users")
      assert.equal("id", cols[1].name)
      assert.is_nil(rd:columns("secrets"))
      local sok, serr = rd:query("SELECT * FROM secrets")       -- the vault is not for readers
      assert.is_nil(sok)
      assert.truthy(serr)
      rd:close()
    end)
  end)
end
