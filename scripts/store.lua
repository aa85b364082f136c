-- store.lua — the store: cachost's source of truth, on SQLite (the `sqlite` module of host/sqlite.c).
--
--   local store = require "store"
--   local st = assert(store.open(host.home))          -- creates / migrates $CACHOST_HOME/cachost.db
--   st:transaction(function(st) ... end)               -- serialised between tasks; yielding inside is fine
--   st:upsert("users", instance_id, rows, {complete = true, scan_started = t})
--       -> {added=, changed=, unchanged=, removed=, status = {per row}, changes = {...}} | nil, err
--   st:save_stream(instance_id, "users", {cursor =, watermark =, ...})   (same transaction as the rows)
--   st:query(sql, ...) / st:rows(sql, ...) / st:cursor(sql, ...)        read-only connection
--   store.sql(sql, ...) -> rows                          (the REPL's `sql` helper, on host.home)
--   st:vault() ; named operations here and in store/instances.lua (instance rows), store/governance.lua
--   (governance_actions), store/sinks.lua (deliveries)
--
-- Every SQL statement of cachost is here or in store/*.lua: the rest of scripts/ calls named operations
-- (tests/spec/sql_owner_spec.lua keeps it so); only `cachost query` / the REPL run the user's own, read-only.
--
-- Errors: operational failures return nil, "<token>: detail", token (token from the sqlite module: busy,
-- full, corrupt, notadb, constraint..., or schema / missing here).
local sqlite = require "sqlite"
local schema = require "store.schema"
local util = require "sdk.util"

local M = { schema = schema, DB_FILE = "cachost.db" }

local null = json.null
local unpack, concat, sort = table.unpack, table.concat, table.sort

---------------------------------------------------------------------------------------------- times

local function wall() return (sched and sched.time and sched.time()) or os.time() end

-- ISO 8601 UTC with milliseconds; strings pass through (already a time).
function M.iso(t)
  if type(t) == "string" then return t end
  t = t or wall()
  local s = math.floor(t)
  local ms = math.floor((t - s) * 1000 + 0.5)
  if ms >= 1000 then s, ms = s + 1, ms - 1000 end
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(ms)
end
function M.now() return M.iso(wall()) end

-- When a scan starts, for deletion marking (rows seen get last_seen = it; rows older were not seen):
-- the wall clock, but always after the previous scan's start (prev, ISO).  A clock stepped back would
-- otherwise leave every row "seen later than this scan started", and no deletion would be marked until
-- the clock caught up.
function M.scan_start(prev)
  local t = wall()
  local p = type(prev) == "string" and iso8601.parse(prev)
  if p and t <= p then t = p + 0.001 end
  return t
end

---------------------------------------------------------------------------------------------- values

-- JSON with sorted keys, so the same content always gives the same text (change detection on raw).
local function canon(v, out)
  local t = type(v)
  if t == "table" then
    local n = #v
    local is_array = n > 0 or (getmetatable(v) and next(v) == nil)
    if is_array then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        canon(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = json.encode(k)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        canon(val, out)
      end
      out[#out + 1] = "}"
    end
  elseif v == nil then
    out[#out + 1] = "null"
  else
    out[#out + 1] = json.encode(v)
  end
  return out
end
function M.canonical_json(v) return concat(canon(v, {})) end

-- A row value as stored: booleans 0/1, tables as canonical JSON, json.null as nil, integral floats as
-- integers (so 123.0 from a JSON decoder and 123 compare and print the same).
local function norm(v)
  local t = type(v)
  if t == "boolean" then return v and 1 or 0 end
  if t == "table" then return M.canonical_json(v) end
  if t == "number" and math.type(v) == "float" and v == math.floor(v) and v > -2^53 and v < 2^53 then
    return math.tointeger(v)
  end
  if v == null and v ~= nil then return nil end
  return v
end
M.norm = norm

local function same(a, b)
  if a == b then return true end
  if a == nil or b == nil then return false end
  return tostring(a) == tostring(b)
end

local function ext_id_of(row, i)
  local id = row.ext_id
  if id == nil or id == null then error(("row %d has no ext_id"):format(i), 0) end
  id = norm(id)
  return type(id) == "string" and id or tostring(id)
end

local function raw_of(row, canonical)
  local r = row.raw
  if r == nil or r == null then return nil end
  if type(r) == "string" then return r end
  return canonical and M.canonical_json(r) or json.encode(r)
end

---------------------------------------------------------------------------------------------- open

local Store = {}
Store.__index = Store
M.Store = Store

local function db_path(where)
  if where:match("%.db$") or where:match("%.sqlite3?$") then return where end
  return where .. "/" .. M.DB_FILE
end
M.db_path = db_path

-- A failed statement raises its message with the sqlite module's token (sdk.util.failure), so that the
-- transaction it happened in can return `nil, message, token`.
local function check(ok, err, token)
  if not ok then error(token and util.failure(err, token) or err, 0) end
  return ok
end
M.check = check

function Store:user_version()
  return self.db:query("PRAGMA user_version")[1].user_version
end

-- Applies pending migrations (each in its own transaction, with user_version) up to `target`.
function Store:migrate(target)
  target = target or schema.version
  local db = self.db
  local v = self:user_version()
  if v > schema.version then
    return nil, ("schema: %s has schema version %d, newer than this cachost understands (%d): "
      .. "upgrade cachost, or point --home elsewhere"):format(self.path, v, schema.version)
  end
  -- A new database gives the pages retention empties back to the file system when they are many
  -- (store/retention.lua: release_space).  Chosen before the first table, made so by a VACUUM of the
  -- empty file (opening it in WAL mode wrote its header); best effort: a database another process is
  -- creating at the same moment just keeps its free pages for new rows.  (Its page size: store.open.)
  if v == 0 and target > 0 and #db:query("SELECT 1 FROM sqlite_schema LIMIT 1") == 0 then
    if db:exec("PRAGMA auto_vacuum = INCREMENTAL") then db:exec("VACUUM") end
  end
  while v < target do
    local ok, err, token = db:exec("BEGIN IMMEDIATE")
    if not ok then return nil, err, token end
    v = self:user_version()          -- another process may have migrated meanwhile
    if v >= target then db:exec("ROLLBACK"); break end
    local n = v + 1
    local m = schema.migrations[n]
    ok, err = db:exec(type(m) == "table" and m.sqlite or m)
    if ok then ok, err = db:exec(("PRAGMA user_version = %d"):format(n)) end
    if ok then ok, err = db:exec("COMMIT") end
    if not ok then
      db:exec("ROLLBACK")
      return nil, ("migration %d: %s"):format(n, err)
    end
    v = n
  end
  return true
end

-- Where the store is: a postgresql:// URL given, or $CACHOST_STORE for the home (store/pg.lua), else the
-- SQLite file of the home or path given.  -> url | nil
function M.url_of(where)
  if M.is_url(where) then return where end
  local env = host.getenv("CACHOST_STORE")
  if env and env ~= "" and (where == nil or where == host.home) then return env end
end

-- The columns that may hold zstd frames (store/compact.lua): raw and the entities' packed ones, "raw,user_agent"
do
  local names, seen = { "raw" }, { raw = true }
  for _, spec in pairs(schema.entities) do
    for _, c in ipairs(spec.packed or {}) do
      if not seen[c] then seen[c] = true; names[#names + 1] = c end
    end
  end
  table.sort(names)
  M.PACKED_LIST = table.concat(names, ",")
end

-- store.open(home_or_db_path_or_url, {busy_timeout = ms, migrate_to = n}) -> st | nil, err
function M.open(where, opts)
  opts = opts or {}
  local url = M.url_of(where)
  if url then
    if not M.is_url(url) then return nil, "store: CACHOST_STORE must be a postgresql:// URL", "cantopen" end
    return M.open_pg(url, opts)
  end
  where = where or host.home
  local path = db_path(where)
  -- unzstd: a compressed raw (store/compact.lua) reads as its JSON text, in every read of the store's own
  -- (and so does a compressed user agent).
  -- page_size (a new database's), by measurement (bench/storage.sh, every stream of Okta and Box, 20,000
  -- events, all raw compressed): an activity row is ~650 bytes (its columns ~400, its raw ~200); 4, 8 and
  -- 16 KB pages gave 19.2, 18.4 and 18.5 MB with 500 users, 14.5, 14.2 MB (4, 8) with 50; 64 KB wastes more.
  local db, err, token = sqlite.open(path, { busy_timeout = opts.busy_timeout or 5000, unzstd = M.PACKED_LIST, page_size = 8192 })
  if not db then return nil, err, token end
  local st = setmetatable({ db = db, path = path, home = path:match("^(.*)/[^/]*$") or ".",
                            waiters = {}, depth = 0, busy_timeout = opts.busy_timeout or 5000 }, Store)
  local ok, merr, mtoken = st:migrate(opts.migrate_to)
  if not ok then db:close(); return nil, merr, mtoken end
  -- CACHOST_DB_MAX_MB: a quota on the database (on a shared disk); past it, writes fail as on a full disk
  local max_mb = tonumber(host.getenv("CACHOST_DB_MAX_MB") or "")
  if max_mb then
    local page = db:query("PRAGMA page_size")[1].page_size
    check(db:exec(("PRAGMA max_page_count = %d"):format(math.max(1, math.floor(max_mb * 1048576 / page)))))
  end
  return st
end

-- A read-only handle (what policies, the REPL and `cachost query` get): query / rows / cursor only.
local Reader = {}
Reader.__index = Reader

-- store.open_readonly(home_or_db_path, {busy_timeout = ms, timeout = s}) -> reader | nil, err
function M.open_readonly(where, opts)
  local url = M.url_of(where)
  if url then return M.open_readonly_pg(url, opts) end
  local path = db_path(where or host.home)
  -- SQLite alone tells whether the database exists (a read-only open never creates it): a descriptor of
  -- the file opened and closed outside SQLite would drop this process's locks on it, and the next process
  -- to close would take itself for the last one and delete the -wal/-shm the others still use.
  -- A compressed raw (store/compact.lua) reads as its JSON: in SQL (text_views: json_extract(raw, ...) as
  -- before compression, decompressed only where a query uses raw), and in every column of a result (unzstd).
  local db, err, token = sqlite.open(path, { readonly = true, busy_timeout = (opts and opts.busy_timeout) or 5000,
                                             timeout = opts and opts.timeout, unzstd = true, text_views = M.PACKED_LIST,
                                             hidden = M.HIDDEN_LIST })
  if not db then
    if token == "cantopen" and not host.stat(path) then
      return nil, "missing: no database at " .. path .. " (add an instance first)", "missing"
    end
    return nil, err, token
  end
  local v = db:query("PRAGMA user_version")[1].user_version
  if v > schema.version then
    db:close()
    return nil, ("schema: %s has schema version %d, newer than this cachost understands (%d)")
      :format(path, v, schema.version)
  end
  return setmetatable({ db = db, path = path }, Reader)
end

function Reader:query(sql, ...) return self.db:query(sql, ...) end
function Reader:rows(sql, ...) return self.db:rows(sql, ...) end
function Reader:cursor(sql, ...) return self.db:cursor(sql, ...) end
function Reader:close() self.db:close() end

-- The tables a reader may list (the vault's secrets are never readable through query), and the columns of
-- one as PRAGMA table_info gives them (nil for a table it may not see).
M.HIDDEN = { secrets = true, console_users = true, console_sessions = true }
do
  local names = {}
  for t in pairs(M.HIDDEN) do names[#names + 1] = t end
  table.sort(names)
  M.HIDDEN_LIST = table.concat(names, ",")     -- what read-only connections are opened with (sqlite.open's hidden)
end
function Reader:tables()
  local out = {}
  for _, r in ipairs(self.db:query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite%' ORDER BY name")) do
    if not M.HIDDEN[r.name] then out[#out + 1] = r.name end
  end
  return out
end
function Reader:columns(name)
  for _, t in ipairs(self:tables()) do
    -- main's: the table's declared types (its raw view has none)
    if t == name then return self.db:query(("PRAGMA main.table_info(%q)"):format(name)) end
  end
end

function Store:reader()
  if not self.ro then
    self.ro = check(M.open_readonly(self.path, { busy_timeout = self.busy_timeout }))
  end
  return self.ro
end
function Store:query(sql, ...) return self:reader():query(sql, ...) end
function Store:rows(sql, ...) return self:reader():rows(sql, ...) end
function Store:cursor(sql, ...) return self:reader():cursor(sql, ...) end

function Store:close()
  if self.ro then self.ro:close(); self.ro = nil end
  self.db:close()
end

-- Raises unless the store answers a read (/readyz).
function Store:ping()
  check(self:query("SELECT 1"))
  return true
end

-- st:vault() -> the vault of the instances' secrets (store/vault.lua), opened once | nil, err
function Store:vault()
  if not self._vault then
    local v, err = require("store.vault").open(self)
    if not v then return nil, err end
    self._vault = v
  end
  return self._vault
end

---------------------------------------------------------------------------------------------- transactions

local function me() return sched and sched.current and sched.current() or "main" end

local function release(self)
  self.owner = nil
  self.depth = 0
  while #self.waiters > 0 do
    local t = table.remove(self.waiters, 1)
    if sched.wake(t, true) then break end    -- a cancelled waiter is skipped
  end
end

-- BEGIN IMMEDIATE takes the write lock up front (no deadlock later in the transaction).  Another
-- process holding it: retry with sched.sleep, so the loop keeps running, until busy_timeout.
local function begin(self)
  local now = sched.now     -- monotonic: a wall clock jump neither cuts nor stretches the wait
  local deadline = now() + self.busy_timeout / 1000
  while true do
    local ok, err, token = self.db:exec("BEGIN IMMEDIATE")
    if ok then return true end
    if token ~= "busy" or now() >= deadline then
      if token == "busy" then
        return nil, "busy: the database is locked by another process (waited " .. self.busy_timeout .. " ms)", token
      end
      return nil, err, token
    end
    if sched and sched.current and sched.current() then sched.sleep(0.05) end
  end
end

-- st:transaction(fn, ...) -> fn's results (true if none) | nil, err.  One writer at a time among tasks (a task that
-- yields inside fn keeps the others waiting, so their writes never interleave with its own); fn raising
-- rolls everything back and returns nil, err.  Nested calls from the same task use a SAVEPOINT.
function Store:transaction(fn, ...)
  local task = me()
  if self.owner == task then
    local name = "sp" .. (self.depth + 1)
    check(self.db:exec("SAVEPOINT " .. name))
    self.depth = self.depth + 1
    local r = table.pack(pcall(fn, self, ...))
    self.depth = self.depth - 1
    if r[1] then
      check(self.db:exec("RELEASE " .. name))
      return unpack(r, 2, r.n)
    end
    self.db:exec("ROLLBACK TO " .. name)
    self.db:exec("RELEASE " .. name)
    return nil, tostring(r[2]), util.token_of(r[2])
  end
  while self.owner ~= nil do
    if task == "main" then return nil, "busy: a task holds the store's transaction", "busy" end
    self.waiters[#self.waiters + 1] = task
    sched.suspend()
  end
  self.owner = task
  self.depth = 1
  -- A task cancelled while yielding inside fn closes this, so the lock and the SQL transaction go too.
  local guard <close> = setmetatable({}, { __close = function()
    if self.owner == task then
      if not self.db:autocommit() then self.db:exec("ROLLBACK") end
      release(self)
    end
  end })
  local ok, err, token = begin(self)
  if not ok then return nil, err, token end
  local r = table.pack(pcall(fn, self, ...))
  if not r[1] then
    self.db:exec("ROLLBACK")
    return nil, tostring(r[2]), util.token_of(r[2])
  end
  local cok, cerr, ctoken = self.db:exec("COMMIT")
  if not cok then
    if not self.db:autocommit() then self.db:exec("ROLLBACK") end
    return nil, cerr, ctoken
  end
  if r.n == 1 then return true end
  return unpack(r, 2, r.n)
end

function Store:in_transaction() return self.owner ~= nil and self.owner == me() end

-- Run fn inside the caller's transaction, or in a new one.  Errors raise inside (so the transaction
-- rolls back) and come out as nil, err.
local function within(self, fn, ...)
  if self:in_transaction() then return fn(self, ...) end
  return self:transaction(fn, ...)
end
M.within = within

---------------------------------------------------------------------------------------------- upsert

local stmts = {}   -- entity -> generated SQL

local function sql_for(entity)
  if stmts[entity] then return stmts[entity] end
  local spec = schema.entities[entity]
  local cols = spec.columns
  local q = {}
  local ph = {}
  for i = 1, #cols do ph[i] = "?" end
  local quoted = {}
  for i, c in ipairs(cols) do quoted[i] = '"' .. c .. '"' end
  if spec.inventory then
    local sets = {}
    for i, c in ipairs(quoted) do sets[i] = c .. " = ?" end
    -- raw reads as its text: a row is unchanged when its JSON is, whichever dictionary compressed it
    q.select = ("SELECT * FROM %s WHERE instance_id = ? AND ext_id = ?"):format(entity)
    q.insert = ("INSERT INTO %s (instance_id, ext_id, %s, raw, first_seen, last_seen) VALUES (?, ?, %s, ?, ?, ?)")
      :format(entity, concat(quoted, ", "), concat(ph, ", "))
    q.update = ("UPDATE %s SET %s, raw = ?, last_seen = ?, deleted_at = NULL WHERE id = ?")
      :format(entity, concat(sets, ", "))
    q.touch = ("UPDATE %s SET last_seen = ? WHERE id = ? AND last_seen < ?"):format(entity)
    q.gone = ("SELECT ext_id FROM %s WHERE instance_id = ? AND deleted_at IS NULL AND last_seen < ?"):format(entity)
    q.mark = ("UPDATE %s SET deleted_at = ? WHERE instance_id = ? AND deleted_at IS NULL AND last_seen < ?")
      :format(entity)
  else
    -- Events are immutable facts: a known (instance_id, time, ext_id) is left as it is.
    q.insert = ("INSERT INTO %s (instance_id, ext_id, %s, raw, recorded_at) VALUES (?, ?, %s, ?, ?) "
      .. "ON CONFLICT (instance_id, time, ext_id) DO NOTHING"):format(entity, concat(quoted, ", "), concat(ph, ", "))
    q.spec, q.packed = { false, "ext_id" }, {}
    for i, c in ipairs(cols) do q.spec[i + 2] = c end
    for _, c in ipairs(spec.packed or {}) do
      for i, name in ipairs(cols) do if name == c then q.packed[c] = i + 2 end end
    end
  end
  q.change = "INSERT INTO changes (instance_id, entity, ext_id, op, time, diff) VALUES (?, ?, ?, ?, ?, ?)"
  stmts[entity] = q
  return q
end

local function upsert_events(self, entity, inst, rows, res)
  local q = sql_for(entity)
  local n = #rows
  local raws, ids, times = {}, {}, {}
  for i = 1, n do
    local row = rows[i]
    ids[i] = ext_id_of(row, i)
    local t = row.time
    if t == nil or t == null then error(("row %d has no time"):format(i), 0) end   -- part of an event's key
    times[i] = t
    raws[i] = raw_of(row, false)
  end
  local spec = { { value = inst }, { list = ids } }
  for i = 3, #q.spec do spec[i] = q.spec[i] end
  spec[#spec + 1] = { list = self:pack_raws(entity, inst, raws, n, ids, times) }   -- compressed (store/compact.lua)
  for c, at in pairs(q.packed) do
    local vals = {}
    for i = 1, n do vals[i] = rows[i][c] end
    spec[at] = { list = self:pack_column(entity, inst, vals, n) }
  end
  spec[#spec + 1] = { value = M.now() }
  local r, err, token, at = self.db:exec_many(q.insert, rows, spec)
  if not r then check(nil, at and (err .. " (row " .. at .. ")") or err, token) end
  local status, added = {}, 0
  for i = 1, n do
    if r[i] > 0 then added = added + 1; status[i] = "added" else status[i] = "unchanged" end
  end
  res.added, res.unchanged, res.status = added, n - added, status
end

local function record(self, q, inst, entity, ext, op, diff, now, res, row)
  check(self.db:exec(q.change, inst, entity, ext, op, now, diff and json.encode(diff) or nil))
  res.changes[#res.changes + 1] = { op = op, entity = entity, ext_id = ext, diff = diff, row = row }
end

local function upsert_inventory(self, entity, inst, rows, seen, res)
  local db, q = self.db, sql_for(entity)
  local cols = schema.entities[entity].columns
  local nc = #cols
  local now = M.now()
  local status = {}
  -- a store across the network reads the page's stored rows in one query (store/pg.lua), not row by row
  local known = self.stored_rows and self:stored_rows(entity, inst, rows, ext_id_of)
  for i, row in ipairs(rows) do
    local ext = ext_id_of(row, i)
    local vals = {}
    for j = 1, nc do vals[j] = norm(row[cols[j]]) end
    local raw = raw_of(row, true)
    local old
    if known then
      old = known[ext]
    else
      local found, err = db:query(q.select, inst, ext)
      if not found then error(err, 0) end
      old = found[1]
    end
    if not old then
      vals[nc + 1], vals[nc + 2], vals[nc + 3] = self:pack_raw(entity, inst, raw, ext), seen, seen
      check(db:exec(q.insert, inst, ext, unpack(vals, 1, nc + 3)))
      res.added = res.added + 1
      status[i] = "added"
      record(self, q, inst, entity, ext, "added", nil, now, res, row)
    else
      -- a column the row does not mention (nil) keeps its value: a connector that does not know a field
      -- (users.is_admin comes from the privileges stream) must not erase it; json.null clears it
      for j = 1, nc do
        if row[cols[j]] == nil then vals[j] = old[cols[j]] end
      end
      local diff
      for j = 1, nc do
        local c = cols[j]
        if not same(old[c], vals[j]) then
          diff = diff or {}
          diff[c] = { old[c] == nil and null or old[c], vals[j] == nil and null or vals[j] }
        end
      end
      if old.raw ~= raw then diff = diff or {}; diff.raw = true end
      if diff or old.deleted_at then
        vals[nc + 1], vals[nc + 2], vals[nc + 3] = self:pack_raw(entity, inst, raw, ext), seen, old.id
        check(db:exec(q.update, unpack(vals, 1, nc + 3)))
        local op = old.deleted_at and "added" or "changed"   -- a row that came back is added again
        if op == "added" then res.added = res.added + 1 else res.changed = res.changed + 1 end
        status[i] = op
        record(self, q, inst, entity, ext, op, diff, now, res, row)
      else
        check(db:exec(q.touch, seen, old.id, seen))
        res.unchanged = res.unchanged + 1
        status[i] = "unchanged"
      end
    end
  end
  res.status = status
end

-- Marks rows of a complete listing that were not seen since scan_started (deleted_at; never DELETE).
function Store:mark_deleted(entity, inst, scan_started)
  local q = sql_for(entity)
  assert(q.gone, "mark_deleted: " .. entity .. " is not an inventory entity")
  local started = M.iso(scan_started)
  local res = { removed = 0, changes = {} }
  local ok, err, token = within(self, function()
    local now = M.now()
    for r in self.db:rows(q.gone, inst, started) do
      record(self, q, inst, entity, r.ext_id, "removed", nil, now, res)
    end
    check(self.db:exec(q.mark, now, inst, started))
    res.removed = self.db:changes()
    return true
  end)
  if not ok then return nil, err, token end
  return res
end

-- st:upsert(entity, instance_id, rows, {complete = bool, scan_started = t})
-- Idempotent: the same rows twice add and change nothing.  Inventory entities record added / changed
-- (with a diff) / removed rows in `changes`; with complete = true (the caller's listing finished), rows
-- not seen since scan_started get deleted_at.  All of it in one transaction (the caller's, if any).
function Store:upsert(entity, inst, rows, opts)
  local spec = schema.entities[entity]
  if not spec then error("upsert: unknown entity '" .. tostring(entity) .. "'", 2) end
  if math.type(inst) ~= "integer" then error("upsert: instance_id must be an integer", 2) end
  if type(rows) ~= "table" then error("upsert: rows must be a table", 2) end
  opts = opts or {}
  local res = { added = 0, changed = 0, unchanged = 0, removed = 0, changes = {} }
  local ok, err, token = within(self, function()
    if spec.inventory then
      local seen = M.iso(opts.scan_started)
      upsert_inventory(self, entity, inst, rows, seen, res)
      if opts.complete then
        self:listing_done(entity, inst)
        local m = check(self:mark_deleted(entity, inst, seen))
        res.removed = m.removed
        for _, c in ipairs(m.changes) do res.changes[#res.changes + 1] = c end
      end
    else
      upsert_events(self, entity, inst, rows, res)
    end
    return true
  end)
  if not ok then return nil, err, token end
  return res
end

---------------------------------------------------------------------------------------------- streams

local STREAM_FIELDS = { "cursor", "watermark", "scan_started", "last_success", "last_error", "last_error_at", "counts" }
local STREAM_OK = {}
for _, f in ipairs(STREAM_FIELDS) do STREAM_OK[f] = true end

-- st:save_stream(instance_id, stream, {cursor=, watermark=, ...}): only the given fields change
-- (json.null clears one); tables are stored as JSON.  Call it in the transaction of the rows it covers.
function Store:save_stream(inst, stream, fields)
  local cols, vals = {}, {}
  for k, v in pairs(fields or {}) do
    if not STREAM_OK[k] then error("save_stream: unknown field '" .. tostring(k) .. "'", 2) end
    cols[#cols + 1] = k
  end
  sort(cols)
  local sets, ph = {}, {}
  for i, k in ipairs(cols) do
    local v = fields[k]
    if v == null then v = nil
    elseif type(v) == "table" then v = json.encode(v)
    elseif type(v) == "number" and k ~= "cursor" and k ~= "watermark" then v = M.iso(v) end
    vals[i] = v
    sets[i] = k .. " = excluded." .. k
    ph[i] = "?"
  end
  local n = #cols
  cols[n + 1] = "updated_at"; ph[n + 1] = "?"; vals[n + 1] = M.now(); sets[n + 1] = "updated_at = excluded.updated_at"
  local sql = ("INSERT INTO stream_state (instance_id, stream, %s) VALUES (?, ?, %s) "
    .. "ON CONFLICT (instance_id, stream) DO UPDATE SET %s"):format(concat(cols, ", "), concat(ph, ", "), concat(sets, ", "))
  return within(self, function()
    -- a worker's page commits only while it holds the instance's lease (store/leases.lua)
    local lease = self.lease
    if lease and lease.held[inst] then self:hold_lease(inst, lease.id, lease.ttl) end
    check(self.db:exec(sql, inst, stream, unpack(vals, 1, n + 1)))
    return true
  end)
end

function Store:stream(inst, stream)
  return self.db:query("SELECT * FROM stream_state WHERE instance_id = ? AND stream = ?", inst, stream)[1]
end

---------------------------------------------------------------------------------------------- connector context
-- What sdk/context.lua offers connectors, as named operations (connectors never see SQL).

-- The users of an instance as last stored: {ext_id, email, external}, for per-user listings.
function Store:known_users(inst)
  return self.db:query("SELECT ext_id, email, external FROM users WHERE instance_id = ? AND deleted_at IS NULL ORDER BY ext_id", inst)
end

-- One stored row of an entity by the provider's id (deleted ones too: deleted_at says so) | nil.
function Store:stored(entity, inst, ext_id)
  if not schema.entities[entity] then error("stored: unknown entity '" .. tostring(entity) .. "'", 2) end
  local rows, err = self.db:query(("SELECT * FROM %s WHERE instance_id = ? AND ext_id = ?"):format(entity), inst, ext_id)
  if not rows then return nil, err end
  return rows[1]
end

-- The ext_ids of an entity's live rows whose column `field` is `value`.
function Store:stored_ids(entity, inst, field, value)
  local spec = schema.entities[entity]
  if not spec then error("stored_ids: unknown entity '" .. tostring(entity) .. "'", 2) end
  local known = false
  for _, c in ipairs(spec.columns) do known = known or c == field end
  if not known then error(("stored_ids: %s has no column '%s'"):format(entity, tostring(field)), 2) end
  local rows, err, token = self.db:query(("SELECT ext_id FROM %s WHERE instance_id = ? AND \"%s\" = ? AND deleted_at IS NULL")
    :format(entity, field), inst, value)
  if not rows then return nil, err, token end
  local ids = {}
  for i, r in ipairs(rows) do ids[i] = r.ext_id end
  return ids
end

-- Rows the provider says are gone (a targeted re-fetch found them missing): deleted_at, a `removed`
-- change each, never DELETE.  -> {removed = n, changes = {...}} | nil, err
function Store:retire(entity, inst, ext_ids)
  local q = sql_for(entity)
  if not q.gone then error("retire: " .. tostring(entity) .. " is not an inventory entity", 2) end
  local res = { removed = 0, changes = {} }
  local ok, err, token = within(self, function()
    local now = M.now()
    for _, ext in ipairs(ext_ids) do
      check(self.db:exec(("UPDATE %s SET deleted_at = ? WHERE instance_id = ? AND ext_id = ? AND deleted_at IS NULL")
        :format(entity), now, inst, ext))
      if self.db:changes() > 0 then
        res.removed = res.removed + 1
        record(self, q, inst, entity, ext, "removed", nil, now, res)
      end
    end
    return true
  end)
  if not ok then return nil, err, token end
  return res
end

-- users.is_admin follows the privileges a connector found (a set of user ext_ids), in one transaction.
function Store:set_admins(inst, ids)
  return within(self, function()
    check(self.db:exec("UPDATE users SET is_admin = 0 WHERE instance_id = ? AND is_admin = 1", inst))
    for uid in pairs(ids) do
      check(self.db:exec("UPDATE users SET is_admin = 1 WHERE instance_id = ? AND ext_id = ?", inst, uid))
    end
    return true
  end)
end

---------------------------------------------------------------------------------------------- policies and alerts
-- What the policy engine (scripts/policy/) keeps: the operator's switches (policies), the windows
-- (policy_state) and the pages still to evaluate (policy_pending); and alerts, which have one writer
-- (raise_alert).  A failure raises "store: <token>: detail", so that the engine tells a failure of the
-- store (up to its caller) from one of the policy it was evaluating (which disables the policy).

local function must(ok, err)
  if not ok then error("store: " .. tostring(err), 0) end
  return ok
end

-- The policies table (the operator's switches and each policy's health), by policy name.
function Store:policy_switches()
  local out = {}
  for _, r in ipairs(must(self.db:query("SELECT * FROM policies"))) do out[r.name] = r end
  return out
end

-- The operator switches a policy: {enabled = 0|1} and/or {mode = "audit"|"enforce"}; its failure is
-- forgotten (status ok), so a policy disabled after it failed runs again once enabled.
function Store:set_policy_switch(name, fields)
  must(self.db:exec([[INSERT INTO policies (name, enabled, mode, status, updated_at) VALUES (?, coalesce(?, 1), ?, 'ok', ?)
    ON CONFLICT (name) DO UPDATE SET enabled = coalesce(excluded.enabled, policies.enabled),
      mode = coalesce(excluded.mode, policies.mode),
      status = 'ok', last_error = NULL, updated_at = excluded.updated_at]],
    name, fields.enabled, fields.mode, M.now()))
end

-- A policy failed (its limits, an error): switched off, with why.
function Store:policy_failed(name, err)
  must(self.db:exec([[INSERT INTO policies (name, enabled, status, last_error, updated_at) VALUES (?, 0, 'failed', ?, ?)
    ON CONFLICT (name) DO UPDATE SET enabled = 0, status = 'failed', last_error = excluded.last_error,
    updated_at = excluded.updated_at]], name, err, M.now()))
end

-- The saved window of one key of a policy -> its data (decoded) | nil.
function Store:policy_window(policy, inst, key)
  local r = must(self.db:query("SELECT data FROM policy_state WHERE policy = ? AND instance_id = ? AND key = ?",
    policy, inst, key))[1]
  return r and json.decode(r.data)
end

-- The keys of a policy that have a saved window -> {key, ...}
function Store:policy_window_keys(policy, inst)
  local out = {}
  for _, r in ipairs(must(self.db:query("SELECT key FROM policy_state WHERE policy = ? AND instance_id = ?",
      policy, inst))) do out[#out + 1] = r.key end
  return out
end

-- In one transaction: the notes `done` (ids, see note_pending) are deleted, and each window of
-- `windows` ({policy =, key =, data =}) saved, or deleted when its data is nil or empty.
function Store:save_policy_state(inst, done, windows)
  local now = M.now()
  local ok, err = self:transaction(function()
    for _, id in ipairs(done) do must(self.db:exec("DELETE FROM policy_pending WHERE id = ?", id)) end
    for _, w in ipairs(windows) do
      if w.data == nil or next(w.data) == nil then
        must(self.db:exec("DELETE FROM policy_state WHERE policy = ? AND instance_id = ? AND key = ?", w.policy, inst, w.key))
      else
        must(self.db:exec([[INSERT INTO policy_state (policy, instance_id, key, data, updated_at) VALUES (?, ?, ?, ?, ?)
          ON CONFLICT (policy, instance_id, key) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at]],
          w.policy, inst, w.key, json.encode(w.data), now))
      end
    end
    return true
  end)
  if not ok then error(err, 0) end
end

-- In the transaction of a page: its last `n` rows of `source` (an event entity, or "changes" for an
-- inventory page) are noted as still to be evaluated by the policies.  The page's rows were inserted in
-- this transaction, the last ones of their table, so they are contiguous.  -> the note's id
function Store:note_pending(inst, source, n, first_scan)
  if source ~= "changes" and not schema.entities[source] then error("note_pending: unknown source '" .. tostring(source) .. "'", 2) end
  local last = must(self.db:query(("SELECT max(id) m FROM %s"):format(source)))[1].m
  must(self.db:exec([[INSERT INTO policy_pending (instance_id, source, first_id, last_id, first_scan, created_at)
    VALUES (?, ?, ?, ?, ?, ?)]], inst, source, last - n + 1, last, first_scan and 1 or 0, M.now()))
  return self.db:last_insert_rowid()
end

-- The notes of an instance not evaluated yet, oldest first.
function Store:pending_notes(inst)
  return must(self.db:query("SELECT * FROM policy_pending WHERE instance_id = ? ORDER BY id", inst))
end

-- Rows the policies read (noted_feed, each_row) get their raw when a policy first reads row.raw: no
-- shipped policy does, and decompressing it for every row cost ~1.2 us a row (policy test bruteforce over
-- stored events: libzstd 15% of its CPU, +13% against plain raw).  Such a row is read with its raw as
-- stored (raw_frame, which no connection decompresses) and carries LazyRaw until then.
local frames = setmetatable({}, { __mode = "k" })   -- row -> {store, its raw as stored}
local LazyRaw = { __index = function(row, k)
  local f = k == "raw" and frames[row]
  if not f then return nil end
  frames[row] = nil
  local v = must(f[1].db:query("SELECT unzstd(?) AS raw", sqlite.blob(f[2])))[1].raw
  rawset(row, "raw", v)
  return v
end }

local function lazy_raw(self, row)
  local f = row and row.raw_frame
  if f == nil then return row end
  row.raw_frame = nil
  frames[row] = { self, f }
  return setmetatable(row, LazyRaw)
end

-- "SELECT <entity's columns, raw as raw_frame> FROM entity" (PostgreSQL's raw is text: store/pg.lua)
function Store:policy_select(entity)
  self.policy_selects = self.policy_selects or {}
  local sql = self.policy_selects[entity]
  if not sql then
    local cols = {}
    for _, c in ipairs(must(self.db:query(("PRAGMA table_info(%s)"):format(entity)))) do
      cols[#cols + 1] = c.name == "raw" and "raw AS raw_frame" or ('"%s"'):format(c.name)
    end
    sql = ("SELECT %s FROM %s"):format(concat(cols, ", "), entity)
    self.policy_selects[entity] = sql
  end
  return sql
end

-- The feed of one note, read back -> {entity = {{op =, row =}, ...}}: the events it covers, or the
-- current rows of the inventory changes it covers (removed rows left out).
function Store:noted_feed(inst, note)
  if note.source ~= "changes" then
    if not schema.entities[note.source] then error("noted_feed: unknown source '" .. tostring(note.source) .. "'", 2) end
    local items = {}
    for _, r in ipairs(must(self.db:query(("%s WHERE instance_id = ? AND id BETWEEN ? AND ? ORDER BY id")
        :format(self:policy_select(note.source)), inst, note.first_id, note.last_id))) do
      items[#items + 1] = { op = "added", row = lazy_raw(self, r) }
    end
    return { [note.source] = items }
  end
  local by = {}
  for _, c in ipairs(must(self.db:query([[SELECT entity, ext_id, op FROM changes WHERE instance_id = ? AND id BETWEEN ? AND ?
      ORDER BY id]], inst, note.first_id, note.last_id))) do
    local spec = schema.entities[c.entity]
    if spec and spec.inventory and c.op ~= "removed" then
      local row = lazy_raw(self, must(self.db:query(("%s WHERE instance_id = ? AND ext_id = ?"):format(self:policy_select(c.entity)),
        inst, c.ext_id))[1])
      if row then
        by[c.entity] = by[c.entity] or {}
        table.insert(by[c.entity], { op = c.op, row = row })
      end
    end
  end
  return by
end

-- How many users of the instance have granted this app anything (deleted grants do not count).
function Store:app_users(inst, client_id)
  return must(self.db:query([[SELECT count(DISTINCT user_id) n FROM app_grants WHERE instance_id = ?
    AND client_id = ? AND deleted_at IS NULL]], inst, client_id))[1].n
end

-- The live app grants, in every live instance, whose id is one of ids (access key ids found in a file) ->
-- {{instance_id =, instance = its name, ext_id =, user_id =, user =, app_name =}, ...}
function Store:grants_with_ids(ids)
  return must(self.db:query([[SELECT g.instance_id, i.name AS instance, g.ext_id, g.user_id, g.user, g.app_name
    FROM app_grants g JOIN instances i ON i.id = g.instance_id
    WHERE g.ext_id IN (SELECT value FROM json_each(?)) AND g.deleted_at IS NULL AND i.removed_at IS NULL
    ORDER BY i.name, g.ext_id]], json.encode(json.array(ids))))
end

-- An actor's account (by ext_id, or email) -> {status =, since = ISO time cachost has known that status
-- from: its last change, else when the account was first seen} | nil
function Store:actor_status(inst, who, email)
  -- each half by its own index (one OR would read every user of the instance)
  local u = must(self.db:query([[SELECT ext_id, status, first_seen FROM users WHERE instance_id = ?1 AND ext_id = ?2
    UNION ALL SELECT ext_id, status, first_seen FROM users WHERE instance_id = ?1 AND lower(email) = lower(?3)
    LIMIT 1]], inst, who, email))[1]
  if not u then return nil end
  local ch = must(self.db:query([[SELECT max(time) t FROM changes WHERE instance_id = ? AND entity = 'users'
    AND ext_id = ? AND diff LIKE '%"status"%']], inst, u.ext_id))[1]
  return { status = u.status, since = (ch and ch.t) or u.first_seen }
end

-- The outcome of a file's DLP scan: {status =, reason =, matches = table (stored as JSON) | nil}.
function Store:record_scan(inst, ext_id, r)
  must(self.db:exec([[UPDATE files SET scan_status = ?, scan_reason = ?, scan_matches = ?, scanned_at = ?
    WHERE instance_id = ? AND ext_id = ?]], r.status, r.reason, r.matches ~= nil and json.encode(r.matches) or nil,
    M.now(), inst, ext_id))
end

-- The governance action recorded under a correlation id (a policy's hit derives it from its alert).
function Store:action_of(inst, correlation_id)
  return must(self.db:query("SELECT * FROM governance_actions WHERE instance_id = ? AND ext_id = ?", inst, correlation_id))[1]
end

-- The one writer of alerts.  st:raise_alert{instance_id =, ext_id = key, policy =, severity =, title =,
-- entity =, entity_id =, evidence = table} -> true when the alert is new.  An alert of the same key
-- (instance_id, ext_id) raised before is the same alert: it stays, its updated_at moves on and its
-- evidence is replaced by this one (the latest word on a held or failed action), unless f.keep_evidence
-- (a policy's hit: the first hit's evidence and actions stand).
function Store:raise_alert(f)
  local now = M.now()
  must(self.db:exec([[INSERT INTO alerts (instance_id, ext_id, policy, severity, title, entity, entity_id, evidence,
      status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)
    ON CONFLICT (instance_id, ext_id) DO NOTHING]],
    f.instance_id, f.ext_id, f.policy, f.severity, f.title, f.entity, f.entity_id, norm(f.evidence or {}), now, now))
  if self.db:changes() == 1 then return true end
  if f.keep_evidence then
    must(self.db:exec("UPDATE alerts SET updated_at = ? WHERE instance_id = ? AND ext_id = ?", now, f.instance_id, f.ext_id))
  else
    must(self.db:exec("UPDATE alerts SET updated_at = ?, evidence = ? WHERE instance_id = ? AND ext_id = ?",
      now, norm(f.evidence or {}), f.instance_id, f.ext_id))
  end
  return false
end

-- An alert of this key raised before -> true, its updated_at moved on (the same hit again).
function Store:touch_alert(inst, ext_id)
  must(self.db:exec("UPDATE alerts SET updated_at = ? WHERE instance_id = ? AND ext_id = ?", M.now(), inst, ext_id))
  return self.db:changes() == 1
end
-- What `cachost alerts`, `alert` and `policy test` read and set.

function Store:alert(id)
  return must(self.db:query("SELECT * FROM alerts WHERE id = ?", id))[1]
end

-- The operator resolved alert `id` (raw: their note as JSON, or nil).
function Store:resolve_alert(id, raw)
  must(self.db:exec("UPDATE alerts SET status = 'resolved', updated_at = ?, raw = ? WHERE id = ?", M.now(), raw, id))
end

-- Alerts newest first (at most limit; only the open ones with open_only), with their instance's name.
function Store:alert_list(limit, open_only)
  return must(self.db:query([[SELECT a.id, a.created_at, i.name AS instance, a.policy, a.severity, a.status,
      a.title, a.entity_id FROM alerts a LEFT JOIN instances i ON i.id = a.instance_id
    WHERE (?1 IS NULL OR a.status = 'open') ORDER BY a.id DESC LIMIT ?2]], open_only or nil, limit))
end

-- The stored rows of an entity of an instance, each in turn (policy test replays them): activities in time
-- order, from `since` (ISO) if given; the others by id.
local TIME_COLUMN = { activities = "time" }
function Store:each_row(entity, inst, since)
  if not schema.entities[entity] then error("each_row: unknown entity '" .. tostring(entity) .. "'", 2) end
  local tcol, step, cursor, init, close = TIME_COLUMN[entity]
  if tcol and since then
    step, cursor, init, close = self.db:rows(("%s WHERE instance_id = ? AND %s >= ? ORDER BY %s")
      :format(self:policy_select(entity), tcol, tcol), inst, since)
  else
    step, cursor, init, close = self.db:rows(("%s WHERE instance_id = ? ORDER BY %s")
      :format(self:policy_select(entity), tcol or "id"), inst)
  end
  -- (the cursor stays the loop's to-be-closed value)
  return function(c, ctl) return lazy_raw(self, step(c, ctl)) end, cursor, init, close
end

---------------------------------------------------------------------------------------------- export

-- A cursor over alerts or activities since an ISO time, of one instance (by name) or all, each row with its
-- instance's name and app (cachost export).
function Store:export_cursor(what, since, instance)
  local sql = what == "alerts"
    and [[SELECT a.*, i.name AS instance, i.app AS app_name FROM alerts a LEFT JOIN instances i ON i.id = a.instance_id
          WHERE a.created_at >= ? AND (?2 IS NULL OR i.name = ?2) ORDER BY a.id]]
    or [[SELECT a.*, i.name AS instance, i.app AS app_name FROM activities a JOIN instances i ON i.id = a.instance_id
         WHERE a.time >= ? AND (?2 IS NULL OR i.name = ?2) ORDER BY a.time, a.id]]
  return self:cursor(sql, since, instance)
end

---------------------------------------------------------------------------------------------- metrics

-- What /metrics reads at each scrape: per instance and stream its health, the newest activity per
-- instance, alerts and governance actions by outcome.
function Store:health_snapshot()
  local q = function(sql) return check(self:query(sql)) end
  return {
    streams = q([[SELECT i.name AS instance, s.stream, s.last_success, s.last_error, s.counts FROM stream_state s
      JOIN instances i ON i.id = s.instance_id WHERE i.removed_at IS NULL]]),
    newest = q([[SELECT i.name AS instance, (SELECT max(time) FROM activities a WHERE a.instance_id = i.id) AS newest
      FROM instances i WHERE i.removed_at IS NULL]]),
    alerts = q("SELECT policy, severity, status, count(*) AS n FROM alerts GROUP BY policy, severity, status"),
    actions = q("SELECT action, mode, result, count(*) AS n FROM governance_actions GROUP BY action, mode, result"),
    deliveries = q("SELECT sink, count(*) AS n FROM deliveries WHERE delivered_at IS NULL GROUP BY sink"),
  }
end

---------------------------------------------------------------------------------------------- in store/

-- The operations of store/<name>.lua, on the same Store: instance rows, governance records, deliveries.
for _, name in ipairs { "instances", "governance", "sinks", "compact", "retention", "identities", "pg", "leases", "console" } do require("store." .. name)(Store, M, Reader) end

---------------------------------------------------------------------------------------------- REPL

-- store.sql(sql, ...) -> rows: the REPL's `sql "..."` helper, read-only, on host.home.
local default_reader
-- -> rows, columns (in the statement's order)
function M.sql(sql, ...)
  if not default_reader then default_reader = check(M.open_readonly(host.home)) end
  local cur, err = default_reader:cursor(sql, ...)
  if not cur then error(err, 2) end
  local rows, columns = {}, cur:columns()
  while true do
    local row, rerr = cur:next()
    if not row then
      if rerr then error(rerr, 2) end
      break
    end
    rows[#rows + 1] = row
  end
  return rows, columns
end

return M
