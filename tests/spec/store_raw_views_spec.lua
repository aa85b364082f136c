-- store_raw_views_spec.lua — raw, stored zstd-compressed with dictionaries (store/compact.lua), reads as the
-- provider's JSON text in readers' SQL (host/sqlite.c's text_views): `cachost query`'s json_extract(raw, ...)
-- and raw LIKE give on compressed rows what they give on the same rows stored plain, indexed queries keep
-- their indexes, the vault stays unreadable and the store's own connection still writes frames.
local store = require "store"
local sqlite = require "sqlite"
local helpers = require "helpers"
local BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- `cachost query SQL --format json` on home -> rows (decoded) | nil, the output
local function query(home, sql)
  local p = io.popen(("CACHOST_HOME=%s %s query %s --format json 2>&1; echo \"exit $?\""):format(sh_quote(home), BIN, sh_quote(sql)))
  local out = p:read("a"); p:close()
  local body, code = out:match("^(.*)exit (%d+)\n$")
  if code ~= "0" then return nil, out end
  return json.decode(body), out
end

local function new_instance(st, name, app)
  local now = store.now()
  assert(st.db:exec("INSERT INTO instances (app, name, created_at, updated_at) VALUES (?, ?, ?, ?)", app, name, now, now))
  return st.db:last_insert_rowid()
end

local function users(n)
  local rows = {}
  for i = 1, n do
    rows[i] = { ext_id = "u" .. i, email = "user" .. i .. "@example.com", status = "active",
      raw = ('{"id":"00u%d","status":"%s","profile":{"login":"user%d@example.com","department":"Dept%d","title":"%s"}}')
        :format(i, i % 10 == 0 and "SUSPENDED" or "ACTIVE", i, i % 9, i % 25 == 0 and "Super Admin" or "Engineer") }
  end
  return rows
end

local function files(n)
  local rows = {}
  for i = 1, n do
    rows[i] = { ext_id = "f" .. i, name = "doc" .. i .. ".pdf", owner = "user" .. i % 7 .. "@example.com",
      raw = ('{"type":"file","id":"f%d","name":"doc%d.pdf","owned_by":{"login":"user%d@example.com"},"shared_link":%s}')
        :format(i, i, i % 7, i % 6 == 0 and '{"access":"open","url":"https://app.box.com/s/x' .. i .. '"}' or "null") }
  end
  return rows
end

local function events(n)
  local rows = {}
  for i = 1, n do
    rows[i] = { ext_id = "e" .. i, time = ("2024-05-01T%02d:%02d:00.000Z"):format(i // 60 % 24, i % 60),
      action = "user.session.start", actor = "user" .. i % 7 .. "@example.com",
      raw = ('{"uuid":"e%d","eventType":"%s","actor":{"alternateId":"user%d@example.com"},"client":{"ipAddress":"10.0.%d.%d"}}')
        :format(i, i % 4 == 0 and "user.account.privilege.grant" or "user.session.start", i % 7, i % 256, i % 200) }
  end
  return rows
end

-- A store whose users, files and events are compressed with dictionaries (z), and a copy of it with every
-- raw decompressed to its text (p: as the store was before compression).
local function stores()
  local saved = { store.TRAIN_ROWS, store.MIN_TRAIN }
  store.TRAIN_ROWS, store.MIN_TRAIN = 100, 50
  local z, p = helpers.tmp_dir(), helpers.tmp_dir()
  local st = assert(store.open(z))
  local a = new_instance(st, "a", "okta")
  assert(st:upsert("users", a, users(300), { scan_started = 1000, complete = true }))
  assert(st:upsert("files", a, files(300), { scan_started = 1000, complete = true }))
  assert(st:upsert("activities", a, events(300)))
  store.TRAIN_ROWS, store.MIN_TRAIN = saved[1], saved[2]
  -- every raw is a frame made with a dictionary
  for _, t in ipairs { "users", "files", "activities" } do
    assert.same({ n = 300 }, st.db:query(("SELECT count(*) AS n FROM %s WHERE zstd_dict(raw) > 0"):format(t))[1], t)
  end
  assert(st.db:exec(("VACUUM INTO '%s/cachost.db'"):format(p)))
  st:close()
  local db = assert(sqlite.open(p .. "/cachost.db"))
  for _, t in ipairs { "users", "files", "activities" } do
    assert(db:exec(("UPDATE %s SET raw = unzstd(raw)"):format(t)))
    assert.equal(0, db:query(("SELECT count(*) AS n FROM %s WHERE typeof(raw) <> 'text'"):format(t))[1].n)
  end
  db:close()
  return z, p, a
end

describe("raw in readers' SQL", function()
  -- PostgreSQL stores raw as its text (store/pg.lua): its readers read the JSON with no view (a guard: this
  -- held before the views too)
  it("on PostgreSQL raw is stored and read as the JSON text", function()
    local url = require("pgtest").fresh()
    local home = helpers.tmp_dir()
    local st = assert(store.open(url, { home = home }))
    local a
    assert(st:transaction(function() a = st:add_instance("okta", "prod", "{}") end))
    assert(st:upsert("users", a, users(300), { scan_started = 1000, complete = true }))
    local rd = assert(store.open_readonly(url))
    assert.same({ { n = 300 } }, rd:query("SELECT count(*) AS n FROM users WHERE raw LIKE '{\"id\":%'"))
    assert.same({ { n = 30 } }, rd:query("SELECT count(*) AS n FROM users WHERE raw::json->>'status' = 'SUSPENDED'"))
    assert.same({ { n = 12 } }, rd:query("SELECT count(*) AS n FROM users WHERE unzstd(raw) LIKE '%Super Admin%'"))
    assert.equal(users(9)[9].raw, rd:query("SELECT raw FROM users WHERE ext_id = 'u9'")[1].raw)
    rd:close()
    st:close()
  end)

  local z, p, inst
  setup(function() z, p, inst = stores() end)

  it("json_extract(raw, ...) and raw LIKE through cachost query answer on compressed rows as on plain ones", function()
    local cases = {
      { "SELECT json_extract(raw, '$.profile.department') AS d, count(*) AS n FROM users GROUP BY 1 ORDER BY 1", 9 },
      { "SELECT ext_id, json_extract(raw, '$.status') AS s FROM users WHERE raw LIKE '%Super Admin%' ORDER BY id", 12 },
      { "SELECT count(*) AS n FROM users WHERE json_extract(raw, '$.status') = 'SUSPENDED'", 1, { n = 30 } },
      { "SELECT u.email, json_extract(u.raw, '$.profile.login') AS login FROM users u JOIN files f ON f.owner = u.email "
        .. "WHERE json_extract(f.raw, '$.shared_link.access') = 'open' GROUP BY 1 ORDER BY 1", 6 },
      { "SELECT name FROM files WHERE raw LIKE '%\"access\":\"open\"%' ORDER BY id", 50 },
      { "SELECT json_extract(raw, '$.eventType') AS t, count(*) AS n FROM activities GROUP BY 1 ORDER BY 2 DESC", 2 },
      { "SELECT ext_id FROM activities WHERE raw LIKE '%privilege.grant%' AND json_extract(raw, '$.client.ipAddress') LIKE '10.0.1%' ORDER BY id", nil },
      { "SELECT raw FROM activities WHERE ext_id = 'e7'", 1, { raw = events(7)[7].raw } },
      -- a window function: the view is not flattened, it runs as a co-routine
      { "SELECT ext_id, count(*) OVER () AS n FROM users WHERE json_extract(raw, '$.profile.department') = 'Dept3' ORDER BY id LIMIT 2", 2 },
    }
    for _, c in ipairs(cases) do
      local zr, zout = query(z, c[1])
      local pr = assert(query(p, c[1]))
      assert.is_not_nil(zr, zout)
      assert.same(pr, zr, c[1])
      if c[2] then assert.equal(c[2], #zr, c[1]) else assert.is_true(#zr > 0, c[1]) end
      if c[3] then assert.same(c[3], zr[1], c[1]) end
    end
    -- the stored frames stay within reach, by the table's own name
    local r = assert(query(z, "SELECT typeof(raw) AS t, zstd_dict(raw) > 0 AS d FROM main.users WHERE ext_id = 'u1'"))
    assert.same({ { t = "blob", d = 1 } }, r)
    -- policies' and the REPL's reads: the same connection; its views made at the first statement naming raw,
    -- while a cursor that does not is being read (it reads on, every row)
    local rd = assert(store.open_readonly(z))
    local cur = assert(rd:cursor("SELECT ext_id FROM activities ORDER BY id"))
    for _ = 1, 10 do assert(cur:next()) end
    assert.equal(30, rd:query("SELECT count(*) AS n FROM users WHERE json_extract(raw, '$.status') = 'SUSPENDED'")[1].n)
    local left = 0
    while cur:next() do left = left + 1 end
    assert.equal(290, left)
    local saved = host.home
    host.home = z
    local got = store.sql("SELECT json_extract(raw, '$.profile.login') AS l FROM users WHERE ext_id = 'u9' AND instance_id = ?", inst)
    host.home = saved
    assert.same({ { l = "user9@example.com" } }, got)
    rd:close()
  end)

  it("an indexed query reads through its index, raw used or not", function()
    local plans = {
      { "SELECT json_extract(raw, '$.eventType') AS t FROM activities WHERE instance_id = %d AND time >= '2024-05-01T04:00' ORDER BY time",
        "SEARCH main.activities USING INDEX activities_time", 61 },
      { "SELECT json_extract(raw, '$.profile.login') AS l FROM users WHERE instance_id = %d AND ext_id = 'u42'",
        "SEARCH main.users USING INDEX sqlite_autoindex_users_1", 1 },
      { "SELECT email, raw FROM users WHERE lower(email) = 'user5@example.com' AND %d > 0", "SEARCH main.users USING INDEX users_email", 1 },
      { "SELECT f.name, json_extract(f.raw, '$.owned_by.login') AS o FROM users u JOIN files f ON f.instance_id = u.instance_id AND f.ext_id = 'f' || substr(u.ext_id, 2) "
        .. "WHERE u.instance_id = %d AND u.status = 'active' AND u.ext_id = 'u8'", "SEARCH main.files USING INDEX sqlite_autoindex_files_1", 1 },
    }
    for _, c in ipairs(plans) do
      local sql = c[1]:format(inst)
      local plan = assert(query(z, "EXPLAIN QUERY PLAN " .. sql))
      local text = {}
      for _, r in ipairs(plan) do text[#text + 1] = r.detail end
      text = table.concat(text, "\n")
      assert.matches(c[2], text, 1, true)
      assert.not_matches("SCAN", text, 1, true)
      local zr, zout = query(z, sql)
      assert.is_not_nil(zr, zout)
      assert.equal(c[3], #zr, sql)
      assert.same(assert(query(p, sql)), zr, sql)
    end
  end)

  it("the views shadow the tables with raw but the hidden ones, which stay unreadable, and nothing can change them", function()
    -- made for the first statement that names raw (one that does not reads none of its values in SQL)
    assert.same({}, assert(query(z, "SELECT name FROM temp.sqlite_master")))
    local views = assert(query(z, "SELECT name FROM temp.sqlite_master WHERE type = 'view' AND sql LIKE '%unzstd(\"raw\") AS \"raw\"%' ORDER BY name"))
    local names = {}
    for _, r in ipairs(views) do names[r.name] = true end
    for _, t in ipairs { "users", "groups", "files", "file_permissions", "activities", "alerts", "governance_actions" } do
      assert.is_true(names[t], t)
    end
    for t in pairs(store.HIDDEN) do assert.is_nil(names[t], t) end
    -- a view's columns are its table's, in its order, and `cachost schema` gives the table's types
    local rd = assert(store.open_readonly(z))
    local cur = assert(rd:cursor("SELECT * FROM users WHERE raw IS NOT NULL LIMIT 0"))
    local cols = cur:columns()
    cur:close()
    local main_cols = assert(query(z, "PRAGMA main.table_info(users)"))
    assert.equal(#main_cols, #cols)
    for i, c in ipairs(main_cols) do assert.equal(c.name, cols[i]) end
    assert.equal("raw", cols[11])
    for _, c in ipairs(rd:columns("users")) do
      if c.name == "raw" then assert.equal("TEXT", c.type) end
    end
    rd:close()
    -- (each statement names raw: the views are there when it runs)
    for _, sql in ipairs { "SELECT *, 'raw' FROM secrets", "SELECT 'raw', * FROM main.secrets", "SELECT count(*) AS raw FROM secrets",
        "SELECT *, 'raw' FROM console_users", "DROP VIEW users /* raw */", "DROP VIEW temp.users /* raw */",
        "CREATE TEMP VIEW secrets AS SELECT 1 AS raw", "CREATE TEMP VIEW s2 AS SELECT *, 'raw' FROM main.secrets",
        "DELETE FROM users WHERE raw IS NOT NULL", "UPDATE users SET raw = 'x'", "UPDATE main.users SET raw = 'x'" } do
      local r, out = query(z, sql)
      assert.is_nil(r, sql)
      assert.matches("read-only", out, 1, true)
      assert.not_matches("traceback", out, 1, true)
    end
    -- the option: a column name, for read-only connections (a writable one is left as it is)
    assert.has_error(function() sqlite.open(z .. "/cachost.db", { readonly = true, text_views = 1 }) end)
    local w = assert(sqlite.open(z .. "/cachost.db", { text_views = "raw" }))
    assert.same({}, w:query("SELECT name FROM temp.sqlite_master"))
    w:close()
    -- a damaged frame read through a view is one "corrupt" error, as when a result's value is decompressed
    local rd2 = assert(store.open_readonly(z))
    local st0 = assert(store.open(z))
    local kept = st0.db:query("SELECT id, dict FROM zstd_dicts WHERE entity = 'users'")[1]
    assert(st0.db:exec("UPDATE zstd_dicts SET dict = x'37a430ec0000' WHERE id = ?", kept.id))
    local r, e, tok = rd2:query("SELECT count(*) AS n FROM users WHERE json_extract(raw, '$.status') = 'ACTIVE'")
    assert.same({ nil, ("corrupt: unzstd: dictionary %d in zstd_dicts is damaged"):format(kept.id), "corrupt" }, { r, e, tok })
    assert.equal(300, rd2:query("SELECT count(*) AS n FROM users")[1].n)    -- raw unused: nothing decompressed
    assert(st0.db:exec("UPDATE zstd_dicts SET dict = ? WHERE id = ?", sqlite.blob(kept.dict), kept.id))
    st0:close()
    rd2:close()
    -- the store's own connection writes and reads frames as before, beside a reader
    local st = assert(store.open(z))
    local reader = assert(store.open_readonly(z))
    local more = users(301)
    assert(st:upsert("users", inst, { more[301] }, { scan_started = 2000 }))
    assert.same({ t = "blob" }, st.db:query("SELECT typeof(raw) AS t FROM users WHERE ext_id = 'u301'")[1])
    assert.equal(more[301].raw, st:stored("users", inst, "u301").raw)
    assert.equal("user301@example.com", reader:query("SELECT json_extract(raw, '$.profile.login') AS l FROM users WHERE ext_id = 'u301'")[1].l)
    reader:close()
    st:close()
  end)
end)
