-- store_compact_spec.lua — events' raw JSON stored zstd-compressed (scripts/store/compact.lua, host/zstd.c,
-- unzstd() in host/sqlite.c): byte for byte back through every read (store, SQL, query/REPL, export) for
-- each connector's events from its sandbox, rows written before migration 8 still read, and a missing or
-- damaged dictionary is one clear error.
local store = require "store"
local helpers = require "helpers"
local BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

local function tmpdir() return helpers.tmp_dir() end

local function new_instance(st, name, app)
  local now = store.now()
  assert(st.db:exec("INSERT INTO instances (app, name, created_at, updated_at) VALUES (?, ?, ?, ?)", app, name, now, now))
  return st.db:last_insert_rowid()
end

-- n events whose raw JSON varies like a provider's (ids, times, addresses), and exotic bytes
local function events(n, from)
  local rows = {}
  for i = from or 1, (from or 1) + n - 1 do
    rows[#rows + 1] = { ext_id = "e" .. i, time = ("2024-05-01T%02d:%02d:00.000Z"):format(i // 60 % 24, i % 60),
      action = "user.session.start", actor = "u" .. i % 7 .. "@example.com",
      raw = ('{ "uuid": "e%d", "published":"2024-05-01T00:00:%02d.000Z",  "eventType":"user.session.start",'
        .. '"actor":{"alternateId":"u%d@example.com","displayName":"Zoë \\u00e9 \\"%d\\""},"n":%d.50,'
        .. '"client":{"ipAddress":"10.0.%d.%d"},"outcome":{"result":"SUCCESS"}}\n'):format(i, i % 60, i % 7, i, i, i % 256, i % 200) }
  end
  return rows
end

describe("compact raw", function()
  local saved_train
  setup(function() saved_train = store.TRAIN_ROWS end)
  teardown(function() store.TRAIN_ROWS = saved_train end)

  it("zstd: round trip with and without a dictionary, and bad input is nil, err, token", function()
    local samples = {}
    for i, r in ipairs(events(400)) do samples[i] = r.raw end
    local bytes = assert(zstd.train(samples, 4096))
    local d = assert(zstd.dictionary(bytes))
    local f = zstd.compress(samples[7], d)
    assert.equal(zstd.dict_id(bytes), zstd.dict_id(f))
    assert.is_true(#f < #samples[7] / 3)
    assert.equal(samples[7], zstd.decompress(f, d))
    assert.equal(samples[7], zstd.decompress(zstd.compress(samples[7])))
    assert.same({ nil, "dictionary: zstd frame needs a dictionary it was not given", "dictionary" }, { zstd.decompress(f) })
    assert.same({ nil, "corrupt: not a zstd frame", "corrupt" }, { zstd.decompress("{}") })
    assert.same({ nil, "too_large: zstd frame larger than the limit", "too_large" }, { zstd.decompress(zstd.compress(("x"):rep(100)), nil, 99) })
    local _, _, token = zstd.decompress(f:sub(1, #f - 3), d)
    assert.equal("corrupt", token)
    assert.same({ nil, "dictionary: not a zstd dictionary", "dictionary" }, { zstd.dictionary("not one") })
    assert.equal("train", select(3, zstd.train({ "a", "b" }, 4096)))
    assert.has_error(function() zstd.compress({}) end)
  end)

  it("stores events compressed with a dictionary per app, and every read gives the JSON back byte for byte", function()
    store.TRAIN_ROWS = 100
    local dir = tmpdir()
    local st = assert(store.open(dir))
    local a, b = new_instance(st, "a", "okta"), new_instance(st, "b", "github")
    local rows = events(300)
    for p = 0, 2 do
      local page = {}
      for i = 1, 100 do page[i] = rows[p * 100 + i] end
      assert(st:upsert("activities", a, page))
    end
    assert(st:upsert("activities", b, events(50)))
    -- one dictionary, for okta's activities (github's 50 are fewer than the samples it needs)
    local dicts = st.db:query("SELECT app, entity, samples FROM zstd_dicts")
    assert.same({ { app = "okta", entity = "activities", samples = 100 } }, dicts)
    local blobs = st.db:query("SELECT count(*) n, sum(length(raw)) z FROM activities WHERE typeof(raw) = 'blob' AND instance_id = ?", a)[1]
    assert.equal(300, blobs.n)
    local plain = 0
    for _, r in ipairs(rows) do plain = plain + #r.raw end
    assert.is_true(blobs.z < plain / 4, ("compressed %d of %d bytes"):format(blobs.z, plain))
    for _, r in ipairs(rows) do
      assert.equal(r.raw, st:stored("activities", a, r.ext_id).raw)
      assert.equal(r.raw, st.db:query("SELECT unzstd(raw) AS j FROM activities WHERE instance_id = ? AND ext_id = ?", a, r.ext_id)[1].j)
    end
    local n = 0
    for r in st:each_row("activities", a) do n = n + 1; assert.equal(rows[n].raw, r.raw) end
    assert.equal(300, n)
    -- SQL over the JSON: json_extract(unzstd(raw), ...)
    assert.equal(43, st.db:query("SELECT count(*) n FROM activities WHERE json_extract(unzstd(raw), '$.actor.alternateId') = 'u3@example.com' AND instance_id = ?", a)[1].n)
    st:close()
    -- the read-only side: `cachost query` prints the JSON; the REPL's sql too
    local p = io.popen(("CACHOST_HOME='%s' %s query \"SELECT raw FROM activities WHERE ext_id = 'e5' AND instance_id = %d\" --format json 2>&1"):format(dir, BIN, a))
    local out = p:read("a"); p:close()
    assert.equal(rows[5].raw, json.decode(out)[1].raw)
    local saved = host.home
    host.home = dir
    local got = store.sql("SELECT raw FROM activities WHERE ext_id = 'e9' AND instance_id = ?", a)
    host.home = saved
    assert.equal(rows[9].raw, got[1].raw)
  end)

  it("rows stored before migration 8 stay readable as they were, next to compressed ones", function()
    store.TRAIN_ROWS = 50
    local dir = tmpdir()
    local st = assert(store.open(dir, { migrate_to = 7 }))
    local a = new_instance(st, "a", "okta")
    local old = events(60)
    assert(st:transaction(function()
      for _, r in ipairs(old) do
        assert(st.db:exec("INSERT INTO activities (instance_id, ext_id, time, raw, recorded_at) VALUES (?, ?, ?, ?, ?)", a, r.ext_id, r.time, r.raw, "x"))
      end
    end))
    st:close()
    st = assert(store.open(dir))
    assert.equal(store.schema.version, st:user_version())
    local new = events(60, 61)
    assert(st:upsert("activities", a, new))
    for _, r in ipairs(old) do assert.equal(r.raw, st:stored("activities", a, r.ext_id).raw) end
    for _, r in ipairs(new) do assert.equal(r.raw, st:stored("activities", a, r.ext_id).raw) end
    local types = st.db:query("SELECT typeof(raw) t, count(*) n FROM activities GROUP BY 1 ORDER BY 1")
    assert.same({ { t = "blob", n = 60 }, { t = "text", n = 60 } }, types)
    st:close()
  end)

  it("a missing or damaged dictionary is one clear error, and the writer puts its own back", function()
    store.TRAIN_ROWS = 50
    local dir = tmpdir()
    local st = assert(store.open(dir))
    local a = new_instance(st, "a", "okta")
    assert(st:upsert("activities", a, events(80)))
    local id = st.db:query("SELECT id FROM zstd_dicts")[1].id
    assert(st.db:exec("UPDATE zstd_dicts SET dict = x'37a430ec0000'"))   -- damaged
    local rd = assert(store.open_readonly(dir))      -- a reader decompresses what it reads: one error, nil
    local rows, err, token = rd:query("SELECT ext_id, raw FROM activities WHERE ext_id = 'e70'")
    assert.same({ nil, ("corrupt: unzstd: dictionary %d in zstd_dicts is damaged"):format(id), "corrupt" }, { rows, err, token })
    assert.equal(1, #rd:query("SELECT ext_id FROM activities WHERE ext_id = 'e70'"))   -- the other columns read
    local cur = rd:cursor("SELECT raw FROM activities ORDER BY id")
    local _, cerr = cur:next()
    assert.equal(("corrupt: unzstd: dictionary %d in zstd_dicts is damaged"):format(id), cerr)
    rd:close()
    assert(st.db:exec("DELETE FROM zstd_dicts"))                         -- missing
    local r, e = st:stored("activities", a, "e70")
    assert.is_nil(r)
    assert.equal(("sqlite: unzstd: dictionary %d is missing from zstd_dicts"):format(id), e)
    local p = io.popen(("CACHOST_HOME='%s' %s query \"SELECT raw FROM activities\" 2>&1; echo \"exit $?\""):format(dir, BIN))
    local out = p:read("a"); p:close()
    assert.matches(("dictionary %d is missing from zstd_dicts"):format(id), out, 1, true)
    assert.matches("exit 1", out, 1, true)
    assert.not_matches("traceback", out, 1, true)
    -- the next page written puts the dictionary it compresses with back, so those rows and the old read again
    assert(st:upsert("activities", a, events(5, 200)))
    assert.equal(events(1, 70)[1].raw, st:stored("activities", a, "e70").raw)
    st:close()
  end)

  it("round-trips each connector's events from its sandbox byte for byte", function()
    store.TRAIN_ROWS = 20
    local tenants = require "tenants"
    host.home = tmpdir()
    package.loaded.runtime = nil
    local runtime = require "runtime"
    local sent = {}
    local upsert = store.Store.upsert
    store.Store.upsert = function(self, entity, inst, rows, opts)   -- a spy: what the connector handed over
      if entity == "activities" then
        for _, r in ipairs(rows) do
          sent[inst .. "/" .. tostring(r.ext_id)] = type(r.raw) == "string" and r.raw or json.encode(r.raw)
        end
      end
      return upsert(self, entity, inst, rows, opts)
    end
    local ok, err = pcall(function()
      for _, app in ipairs(tenants.APPS) do
        local t = tenants.start(app, "rt-" .. app, { size = 2 })
        helpers.sync_ok(t.inst)
        t.srv:close()
      end
    end)
    store.Store.upsert = upsert
    assert(ok, err)
    local st = runtime.store()
    local n, by_app = 0, {}
    for r in st.db:rows([[SELECT a.instance_id, a.ext_id, unzstd(a.raw) AS raw, typeof(a.raw) AS t, i.app FROM activities a
        JOIN instances i ON i.id = a.instance_id]]) do
      n = n + 1
      assert.equal(sent[r.instance_id .. "/" .. r.ext_id], r.raw)
      by_app[r.app] = (by_app[r.app] or 0) + (r.t == "blob" and 1 or 0)
    end
    for _, app in ipairs(tenants.APPS) do
      assert.is_true((by_app[app] or 0) > 0, app .. " has compressed events")
    end
    assert.is_true(n > 100)
  end)
end)
