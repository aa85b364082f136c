-- store_compact_spec.lua — every entity's raw JSON stored zstd-compressed (scripts/store/compact.lua,
-- host/zstd.c, unzstd() in host/sqlite.c): byte for byte back through every read (store, SQL, query/REPL,
-- export) for each connector's rows from its sandbox, rows written before migration 8 still read, a missing
-- or damaged dictionary is one clear error, and a dictionary gone stale is retrained.
local store = require "store"
local sqlite = require "sqlite"
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

-- n events of another shape (another provider's fields), as after an app's change
local function other_events(n, from)
  local rows = {}
  for i = from, from + n - 1 do
    rows[#rows + 1] = { ext_id = "x" .. i, time = "2024-06-01T00:00:00.000Z", action = "FileDownloaded",
      raw = ('{"Id":"x%d","CreationTime":"2024-06-01T00:%02d:00","Operation":"FileDownloaded","Workload":"SharePoint",'
        .. '"UserId":"person%d@contoso.example","ClientIP":"192.168.%d.%d","ObjectId":"https://contoso.sharepoint.com/sites/s%d/doc%d.docx",'
        .. '"SourceFileExtension":"docx","UserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/%d"}'):format(
        i, i % 60, i % 13, i % 256, i % 97, i % 5, i, 100 + i % 20) }
  end
  return rows
end

-- n users as a provider lists them
local function users(n, from)
  local rows = {}
  for i = from or 1, (from or 1) + n - 1 do
    rows[#rows + 1] = { ext_id = "u" .. i, email = "user" .. i .. "@example.com", status = "active",
      raw = ('{"id":"00u%d","status":"ACTIVE","created":"2024-01-%02dT10:00:00.000Z","profile":{"login":"user%d@example.com",'
        .. '"firstName":"First%d","lastName":"Last%d","email":"user%d@example.com","department":"Dept%d"},'
        .. '"credentials":{"provider":{"type":"OKTA","name":"OKTA"}}}'):format(i, i % 28 + 1, i, i, i, i, i % 9) }
  end
  return rows
end

local function dicts_of(st, entity)
  return st.db:query("SELECT id FROM zstd_dicts WHERE entity = ? ORDER BY created_at, id", entity)
end

local function dict_of(st, entity, inst, ext_id)
  return st.db:query(("SELECT zstd_dict(raw) AS d FROM %s WHERE instance_id = ? AND ext_id = ?"):format(entity), inst, ext_id)[1].d
end

describe("compact raw", function()
  local saved = {}
  setup(function() for _, k in ipairs { "TRAIN_ROWS", "MIN_TRAIN", "MAX_DICTS" } do saved[k] = store[k] end end)
  teardown(function() for k, v in pairs(saved) do store[k] = v end end)

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

  it("a connection opened with unzstd = COLUMNS reads frames as text in columns so named only", function()
    local f = zstd.compress(("{\"a\":1}"):rep(20))
    local db = assert(sqlite.open(tmpdir() .. "/x.db", { unzstd = "raw" }))
    local r = db:query("SELECT ? AS raw, ? AS nonce", sqlite.blob(f), sqlite.blob(f))[1]
    assert.equal(("{\"a\":1}"):rep(20), r.raw)
    assert.equal(f, r.nonce)              -- any other BLOB (a secret's nonce...) as it is, even if it looks like a frame
    db:close()
    db = assert(sqlite.open(tmpdir() .. "/x.db", { unzstd = "raw,User_Agent" }))
    r = db:query("SELECT ? AS raw, ? AS user_agent, ? AS agent, ? AS raw_agent", sqlite.blob(f), sqlite.blob(f), sqlite.blob(f), sqlite.blob(f))[1]
    assert.same({ ("{\"a\":1}"):rep(20), ("{\"a\":1}"):rep(20), f, f }, { r.raw, r.user_agent, r.agent, r.raw_agent })
    db:close()
    assert.has_error(function() sqlite.open(tmpdir() .. "/y.db", { unzstd = "" }) end)
    assert.has_error(function() sqlite.open(tmpdir() .. "/y.db", { unzstd = ("c"):rep(62) }) end)
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
    -- the rows policies read (each_row, noted_feed) decompress raw only when it is read
    local n = 0
    for r in st:each_row("activities", a) do
      n = n + 1
      assert.is_nil(rawget(r, "raw"))
      assert.is_nil(r.raw_frame)
      assert.equal(rows[n].ext_id, r.ext_id)
      assert.equal(rows[n].raw, r.raw)
      assert.equal(rows[n].raw, rawget(r, "raw"))
    end
    assert.equal(300, n)
    local ids = st.db:query("SELECT min(id) lo, max(id) hi FROM activities WHERE instance_id = ?", a)[1]
    local feed = st:noted_feed(a, { source = "activities", first_id = ids.lo, last_id = ids.hi }).activities
    assert.equal(300, #feed)
    assert.is_nil(rawget(feed[5].row, "raw"))
    assert.equal(rows[5].raw, feed[5].row.raw)
    -- a policy reading raw in a function match (rows are copied into its own state) sees the JSON
    local f = assert(io.open(dir .. "/raw_reader.lua", "w"))
    f:write([[return policy { name = "raw reader", on = "activity",
      match = function(r) return r.raw ~= nil and r.raw:find('"u3@example.com"', 1, true) ~= nil end }]])
    f:close()
    local pol = assert(require("policy").load(dir .. "/raw_reader.lua"))
    local list = {}
    for r in st:each_row("activities", a) do list[#list + 1] = r end
    local hits = 0
    for _, hit in ipairs(assert(require("policy.match").in_vm(pol, list))) do if hit then hits = hits + 1 end end
    assert.equal(43, hits)
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

  it("stores events' user agents compressed with their raw's dictionary, read as text everywhere, and a dictionary one still uses is kept", function()
    store.TRAIN_ROWS, store.MAX_DICTS = 100, 1
    local dir = tmpdir()
    local st = assert(store.open(dir))
    local a = new_instance(st, "a", "okta")
    local agents = { "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36",
      "okta-sdk-java/8.2.5 java/17.0.8 Linux/6.1.0" }
    local rows = events(300)
    for i, r in ipairs(rows) do   -- the agent is in the event's JSON too, as the providers send it
      r.user_agent = agents[i % 3 + 1]
      r.raw = '{"userAgent":"' .. r.user_agent .. '",' .. r.raw:sub(2)
    end
    rows[7].user_agent = json.null
    for p = 1, 300, 100 do assert(st:upsert("activities", a, table.move(rows, p, p + 99, 1, {}))) end
    local dict = dicts_of(st, "activities")[1].id
    -- (trained on the first page, which it compresses too) every user agent is a frame of the events' dictionary
    local z = st.db:query("SELECT count(*) n, sum(length(user_agent)) b FROM main.activities WHERE zstd_dict(user_agent) = ?", dict)[1]
    assert.equal(299, z.n)
    local plain = 0
    for _, r in ipairs(rows) do if r.user_agent ~= json.null then plain = plain + #r.user_agent end end
    assert.is_true(z.b < plain / 3, ("%d of %d bytes"):format(z.b, plain))
    for _, r in ipairs(rows) do
      assert.equal(r.user_agent ~= json.null and r.user_agent or nil, st:stored("activities", a, r.ext_id).user_agent)
    end
    assert.equal(100, st.db:query("SELECT count(*) n FROM activities WHERE unzstd(user_agent) LIKE '%Firefox%'")[1].n)
    -- a reader's SQL and `cachost query` see the text
    local rd = assert(store.open_readonly(dir))
    assert.equal(100, rd:query("SELECT count(*) n FROM activities WHERE user_agent LIKE '%Firefox%'")[1].n)
    assert.same({ { user_agent = agents[3] } }, rd:query("SELECT user_agent FROM activities WHERE ext_id = 'e200'"))
    rd:close()
    local p = io.popen(("CACHOST_HOME='%s' %s query \"SELECT user_agent FROM activities WHERE ext_id = 'e250'\" --format json 2>&1"):format(dir, BIN))
    local out = p:read("a"); p:close()
    assert.same({ { user_agent = agents[250 % 3 + 1] } }, json.decode(out), out)
    -- no raw uses the dictionary any more, the user agents still do: a new shape does not replace it
    local new = other_events(300, 1)
    for p = 1, 300, 100 do
      assert(st.db:exec("UPDATE main.activities SET raw = unzstd(raw)"))
      assert(st:upsert("activities", a, table.move(new, p, p + 99, 1, {})))   -- stale, then samples, then trains
    end
    assert.same({ { id = dict } }, dicts_of(st, "activities"))
    for _, r in ipairs(rows) do
      assert.equal(r.user_agent ~= json.null and r.user_agent or nil, st:stored("activities", a, r.ext_id).user_agent)
    end
    st:close()
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
    local want = {}
    for _, r in ipairs(old) do want[r.ext_id] = r.raw end
    for _, r in ipairs(new) do want[r.ext_id] = r.raw end
    local n = 0
    for r in st:each_row("activities", a) do n = n + 1; assert.equal(want[r.ext_id], r.raw) end   -- (policies' rows)
    assert.equal(120, n)
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
    assert.equal(("corrupt: unzstd: dictionary %d is missing from zstd_dicts"):format(id), e)
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

  it("stores inventory compressed too: a complete listing of few rows trains from MIN_TRAIN, and a row is unchanged when its JSON is, whatever the dictionary", function()
    store.TRAIN_ROWS, store.MIN_TRAIN = 100, 30
    local dir = tmpdir()
    local st = assert(store.open(dir))
    local a = new_instance(st, "a", "okta")
    local rows = users(40)
    assert(st:upsert("users", a, rows, { scan_started = 1000, complete = true }))
    assert.same({ { app = "okta", entity = "users", samples = 40 } }, st.db:query("SELECT app, entity, samples FROM zstd_dicts"))
    local id = dicts_of(st, "users")[1].id
    -- every row, the listing's first ones too, is compressed with it
    for _, r in ipairs(rows) do
      assert.equal(id, dict_of(st, "users", a, r.ext_id))
      assert.equal(r.raw, st:stored("users", a, r.ext_id).raw)
    end
    assert.equal(5, st.db:query("SELECT count(*) n FROM users WHERE json_extract(unzstd(raw), '$.profile.department') = 'Dept3'")[1].n)
    -- a newer dictionary for users (trained by another listing): the same rows again change nothing
    store.MIN_TRAIN = 10
    local b = new_instance(st, "b", "okta")
    st.compact = nil
    local kept = st.db:query("SELECT dict FROM zstd_dicts")[1].dict
    assert(st.db:exec("DELETE FROM zstd_dicts"))   -- as if never trained: b's listing trains its own
    assert(st:upsert("users", b, users(20, 500), { scan_started = 1000, complete = true }))
    local newer = dicts_of(st, "users")[1].id
    assert.not_equal(id, newer)
    -- (the old one back, older, as readers need it)
    assert(st.db:exec("INSERT INTO zstd_dicts (id, app, entity, samples, created_at, dict) VALUES (?, 'okta', 'users', 40, '2000-01-01', ?)",
      id, sqlite.blob(kept)))
    local res = assert(st:upsert("users", a, users(40), { scan_started = 2000, complete = true }))
    assert.same({ 0, 0, 40 }, { res.added, res.changed, res.unchanged })
    assert.equal(0, st.db:query("SELECT count(*) n FROM changes WHERE instance_id = ? AND op = 'changed'", a)[1].n)
    -- a changed row is written with the newest dictionary
    local moved = users(1, 7)
    moved[1].raw = moved[1].raw:gsub("Dept7", "Dept8")
    res = assert(st:upsert("users", a, moved, { scan_started = 3000 }))
    assert.equal(1, res.changed)
    assert.equal(newer, dict_of(st, "users", a, "u7"))
    assert.equal(moved[1].raw, st:stored("users", a, "u7").raw)
    st:close()
    -- `cachost query` prints the JSON, and json_extract(unzstd(raw)) reads it
    local p = io.popen(("CACHOST_HOME='%s' %s query \"SELECT raw, json_extract(unzstd(raw), '$.profile.login') AS login FROM users WHERE ext_id = 'u9' AND instance_id = %d\" --format json 2>&1"):format(dir, BIN, a))
    local out = p:read("a"); p:close()
    assert.same({ { raw = rows[9].raw, login = "user9@example.com" } }, json.decode(out), out)
  end)

  it("retrains when the rows change shape: old rows read back byte for byte, new rows use the new dictionary, at most MAX_DICTS kept and none still used deleted", function()
    store.TRAIN_ROWS, store.MAX_DICTS = 100, 2
    local dir = tmpdir()
    local st = assert(store.open(dir))
    local a = new_instance(st, "a", "okta")
    local function put(list)
      for p = 1, #list, 100 do assert(st:upsert("activities", a, table.move(list, p, math.min(#list, p + 99), 1, {}))) end
    end
    local old = events(300)
    put(old)
    local first = dicts_of(st, "activities")
    assert.equal(1, #first)
    local ratio = st.db:query("SELECT ratio FROM zstd_dicts")[1].ratio
    assert.is_true(ratio > 0 and ratio < 0.5, tostring(ratio))
    -- the app changes shape: its first window compresses worse, the next TRAIN_ROWS train a new dictionary
    local new = other_events(400, 1)
    put(new)
    local now = dicts_of(st, "activities")
    assert.equal(2, #now)
    assert.equal(first[1].id, now[1].id)
    for _, r in ipairs(old) do
      assert.equal(first[1].id, dict_of(st, "activities", a, r.ext_id))
      assert.equal(r.raw, st:stored("activities", a, r.ext_id).raw)
    end
    for i, r in ipairs(new) do
      if i > 200 then assert.equal(now[2].id, dict_of(st, "activities", a, r.ext_id)) end
      assert.equal(r.raw, st:stored("activities", a, r.ext_id).raw)
    end
    local z = st.db:query("SELECT sum(length(raw)) z FROM activities WHERE ext_id LIKE 'x%' AND id > (SELECT min(id) + 300 FROM activities WHERE ext_id LIKE 'x%')")[1].z
    local plain = 0
    for i = 302, 400 do plain = plain + #new[i].raw end
    assert.is_true(z < plain / 4, ("compressed %d of %d bytes"):format(z, plain))
    -- another shape: both dictionaries are still used, so none is added
    local third = users(300)
    for _, r in ipairs(third) do r.ext_id = "t" .. r.ext_id; r.time = "2024-07-01T00:00:00.000Z" end
    put(third)
    assert.same(now, dicts_of(st, "activities"))
    -- once no row uses the oldest (retention deleted the oldest rows), the next stale window replaces it
    assert(st.db:exec("DELETE FROM activities WHERE id <= (SELECT min(id) + 399 FROM activities)"))
    assert.equal(0, st.db:query("SELECT count(*) n FROM activities WHERE zstd_dict(raw) = ?", first[1].id)[1].n)
    st.compact = nil
    local more = users(400, 1000)
    for _, r in ipairs(more) do r.ext_id = "t" .. r.ext_id; r.time = "2024-07-02T00:00:00.000Z" end
    put(more)
    local last = dicts_of(st, "activities")

    assert.equal(2, #last)
    assert.equal(now[2].id, last[1].id)
    assert.not_equal(now[2].id, last[2].id)
    for _, list in ipairs { table.move(new, 101, 400, 1, {}), third, more } do
      for _, r in ipairs(list) do assert.equal(r.raw, st:stored("activities", a, r.ext_id).raw) end
    end
    assert.equal(last[2].id, dict_of(st, "activities", a, more[400].ext_id))
    st:close()
  end)

  it("retrains when a shape comes right after the rows a dictionary was trained on (its ratio is theirs)", function()
    -- as Okta's app grants: OAuth grants listed first, then app assignments; inventory rows are packed one
    -- by one, so every row of the first window after training is one the dictionary was not trained on
    store.TRAIN_ROWS = 100
    local st = assert(store.open(tmpdir()))
    local a = new_instance(st, "a", "okta")
    local function assignments(n, from)
      local rows = {}
      for i, e in ipairs(other_events(n, from)) do
        rows[i] = { ext_id = "b" .. (from + i - 1), email = "b" .. (from + i - 1) .. "@example.com", status = "active", raw = e.raw }
      end
      return rows
    end
    local first = users(75)
    for _, r in ipairs(assignments(25, 1)) do first[#first + 1] = r end
    assert(st:upsert("users", a, first))
    local trained = dicts_of(st, "users")
    assert.equal(1, #trained)
    local ratio = st.db:query("SELECT ratio FROM zstd_dicts")[1].ratio
    assert.is_true(ratio > 0 and ratio < 1, tostring(ratio))
    local later = assignments(400, 26)
    for p = 1, #later, 100 do assert(st:upsert("users", a, table.move(later, p, p + 99, 1, {}))) end
    local now = dicts_of(st, "users")
    assert.equal(2, #now)
    assert.equal(trained[1].id, now[1].id)
    -- the assignments after the new dictionary's samples are its, and compress as well as the first rows did
    local z, plain = 0, 0
    for i = 201, 400 do
      assert.equal(now[2].id, dict_of(st, "users", a, later[i].ext_id))
      z = z + st.db:query("SELECT length(raw) n FROM users WHERE instance_id = ? AND ext_id = ?", a, later[i].ext_id)[1].n
      plain = plain + #later[i].raw
    end
    assert.is_true(z / plain < ratio * 1.25, ("%.3f of the JSON, the first dictionary %.3f of its rows"):format(z / plain, ratio))
    for _, list in ipairs { first, later } do
      for _, r in ipairs(list) do assert.equal(r.raw, st:stored("users", a, r.ext_id).raw) end
    end
    st:close()
  end)

  it("the sampled rows, rewritten with the dictionary, leave their pages packed, their ids and every other column kept", function()
    -- a listing stored page by page, as a sync does: the rows of every page before the dictionary are
    -- rewritten a few times smaller with it (an update in place left their pages a third full)
    store.TRAIN_ROWS = 600
    local st = assert(store.open(tmpdir()))
    local a = new_instance(st, "a", "okta")
    local rows = users(600)
    for p = 1, 600, 50 do assert(st:upsert("users", a, table.move(rows, p, p + 49, 1, {}), { scan_started = 1000 })) end
    local id = dicts_of(st, "users")[1].id
    local before = {}
    for i, r in ipairs(rows) do
      assert.equal(id, dict_of(st, "users", a, r.ext_id))
      local got = st.db:query("SELECT id, email, status, first_seen FROM users WHERE instance_id = ? AND ext_id = ?", a, r.ext_id)[1]
      assert.same({ r.email, "active" }, { got.email, got.status })
      before[i] = got.id
      assert.equal(r.raw, st:stored("users", a, r.ext_id).raw)
    end
    for i = 2, #before do assert.equal(before[i - 1] + 1, before[i]) end   -- ids in listing order, as inserted
    local fill = st.db:query("SELECT sum(pgsize - unused) * 1.0 / sum(pgsize) AS f, count(*) AS pages FROM dbstat WHERE name = 'users'")[1]
    assert.is_true(fill.f > 0.85, ("users' pages %.2f full (%d pages)"):format(fill.f, fill.pages))
    assert.equal(0, #st.db:query("SELECT name FROM temp.sqlite_schema"))
    st:close()
  end)

  it("round-trips each connector's rows from its sandbox byte for byte", function()
    store.TRAIN_ROWS = 20
    local tenants = require "tenants"
    host.home = tmpdir()
    package.loaded.runtime = nil
    local runtime = require "runtime"
    local sent = {}
    local upsert = store.Store.upsert
    store.Store.upsert = function(self, entity, inst, rows, opts)   -- a spy: what the connector handed over
      for _, r in ipairs(rows) do
        if r.raw ~= nil then
          local text = r.raw     -- as the store makes it (store.lua: raw_of)
          if type(text) ~= "string" then
            if entity == "activities" then text = json.encode(text) else text = store.canonical_json(text) end
          end
          sent[entity .. "/" .. inst .. "/" .. tostring(r.ext_id)] = text
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
    for entity in pairs(store.schema.entities) do
      for r in st.db:rows(([[SELECT a.instance_id, a.ext_id, unzstd(a.raw) AS raw, typeof(a.raw) AS t, i.app FROM %s a
          JOIN instances i ON i.id = a.instance_id WHERE a.raw IS NOT NULL]]):format(entity)) do
        n = n + 1
        assert.equal(sent[entity .. "/" .. r.instance_id .. "/" .. r.ext_id], r.raw)
        if entity == "activities" then by_app[r.app] = (by_app[r.app] or 0) + (r.t == "blob" and 1 or 0) end
      end
    end
    for _, app in ipairs(tenants.APPS) do
      assert.is_true((by_app[app] or 0) > 0, app .. " has compressed events")
    end
    assert.is_true(n > 100)
  end)
end)
