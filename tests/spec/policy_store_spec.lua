-- policy_store_spec.lua — the store's operations for the policy engine and alerts (store.lua, "policies
-- and alerts"): alerts have one writer, st:raise_alert, whose rules both its callers rely on (a policy's
-- hit keeps its first evidence, governance's held or failed action says the latest); and a failure of
-- these operations is raised as "store: ...", which the engine lets through instead of disabling a policy.
local helpers = require "helpers"
local store = require "store"

describe("the store's policies and alerts", function()
  local dir, st
  before_each(function()
    dir = helpers.tmp_dir()
    st = assert(store.open(dir))
    assert(st.db:exec("INSERT INTO instances (id, app, name, settings, created_at, updated_at) VALUES (1, 'okta', 'o', '{}', ?, ?)",
      store.now(), store.now()))
  end)
  after_each(function()
    st:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function alert(key)
    return st.db:query("SELECT * FROM alerts WHERE ext_id = ?", key)[1]
  end
  local function raise(key, evidence, keep)
    return st:raise_alert { instance_id = 1, ext_id = key, policy = "p", severity = "high", title = "t",
      entity = "activities", entity_id = "e1", evidence = evidence, keep_evidence = keep }
  end

  it("raise_alert says whether the alert is new; the same key again replaces its evidence, or with keep_evidence keeps it", function()
    assert.is_true(raise("k", { n = 1 }))
    local first = alert("k")
    assert.equal("open", first.status)
    assert.same({ n = 1 }, json.decode(first.evidence))
    assert.is_false(raise("k", { n = 2 }, true))
    assert.same({ n = 1 }, json.decode(alert("k").evidence))
    assert.is_false(raise("k", { n = 3 }))
    assert.same({ n = 3 }, json.decode(alert("k").evidence))
    assert.equal(1, st.db:query("SELECT count(*) n FROM alerts")[1].n)
    assert.equal(first.id, alert("k").id)
    -- the same hit again: the alert that exists is touched, none is made
    assert.is_true(st:touch_alert(1, "k"))
    assert.is_false(st:touch_alert(1, "other"))
    assert.is_nil(alert("other"))
  end)

  it("keeps a policy's windows and notes, and writes them in one transaction", function()
    assert.is_nil(st:policy_window("p", 1, "alice"))
    st:save_policy_state(1, {}, { { policy = "p", key = "alice", data = { times = { 1, 2 } } },
                                  { policy = "p", key = "bob", data = { times = { 3 } } } })
    assert.same({ times = { 1, 2 } }, st:policy_window("p", 1, "alice"))
    local keys = st:policy_window_keys("p", 1)
    table.sort(keys)
    assert.same({ "alice", "bob" }, keys)
    assert(st:upsert("activities", 1, { { ext_id = "a1", time = "2026-01-01T00:00:00Z" }, { ext_id = "a2", time = "2026-01-01T00:01:00Z" } }))
    local note = st:transaction(function() return st:note_pending(1, "activities", 2, true) end)
    local notes = st:pending_notes(1)
    assert.equal(1, #notes)
    assert.equal(note, notes[1].id)
    local feed = st:noted_feed(1, notes[1])
    assert.equal("a1", feed.activities[1].row.ext_id); assert.equal("a2", feed.activities[2].row.ext_id)
    -- an empty window is deleted with the note done, together
    st:save_policy_state(1, { note }, { { policy = "p", key = "alice", data = {} } })
    assert.is_nil(st:policy_window("p", 1, "alice"))
    assert.same({}, st:pending_notes(1))
    assert.has_error(function() st:note_pending(1, "secrets", 1) end)
  end)

  it("raises a failure of the store as 'store: ...'", function()
    assert(st.db:exec("DROP TABLE deliveries"))
    assert(st.db:exec("DROP TABLE alerts"))
    assert(st.db:exec("DROP TABLE policy_state"))
    for _, f in ipairs { function() return raise("k", {}) end, function() return st:touch_alert(1, "k") end,
                         function() return st:policy_window("p", 1, "k") end } do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches("^store: ", err)
    end
  end)

  it("leaves the windows of a save that failed (the disk full) to the next save: none is lost", function()
    local policy = require "policy"
    local f = assert(io.open(dir .. "/counting.lua", "w"))
    f:write([[return policy { name = "counting", on = "activity", match = { kind = "signin" },
      repeated = { count = 100000, within = "1d", by = "actor" } }]])
    f:close()
    local p = assert(policy.load(dir .. "/counting.lua"))
    local items = {}
    for i = 1, 3000 do     -- a window of 3,000 times: more than the page room a full disk leaves
      items[i] = { op = "added", row = { ext_id = "e" .. i, kind = "signin", actor = "alice", time = store.iso(1.7e9 + i) } }
    end
    local inst = { id = 1 }
    local pages = st.db:query("PRAGMA page_count")[1].page_count
    assert(st.db:exec("PRAGMA max_page_count = " .. pages))
    local ok, err = pcall(policy.feed, st, inst, { p }, "activities", items)
    assert.is_false(ok)
    assert.matches("^store: full", err)
    assert.is_nil(st:policy_window("counting", 1, "alice"))
    assert(st.db:exec("PRAGMA max_page_count = 1073741823"))      -- room again
    policy.flush()
    assert.equal(3000, #st:policy_window("counting", 1, "alice").times)
    policy.forget()
  end)
end)
