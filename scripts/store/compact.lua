-- store/compact.lua — the raw JSON of every entity (events and inventory), stored compressed (zstd) and
-- read back byte for byte.
--
-- One row's JSON is small (events ~2 KB, a user or a group a few hundred bytes), so alone it compresses
-- poorly; a dictionary trained on the same app's rows of the same entity makes each one a few hundred
-- bytes or less.  The first TRAIN_ROWS rows of an app's entity (or the MIN_TRAIN.. of a complete listing
-- with fewer) are compressed without one and give the samples; the dictionary is then trained, stored in
-- zstd_dicts (in the transaction of the rows compressed with it), the sampled rows rewritten with it, and
-- used from then on.  Every frame names its dictionary by zstd's id, so a newer dictionary for the same app
-- and entity can be added at any time and old rows stay readable.  A value that compression would not
-- shrink stays as the JSON text (rows written before, or tiny ones, are plain TEXT and read as they are).
--
-- Retraining: a dictionary goes stale when the app's rows change shape (new event types, a tenant's
-- fields).  Its ratio is measured on the rows it was trained on (kept in zstd_dicts.ratio; rows it was not
-- trained on compress 4-5% worse: Okta's events and group members), then on each window of TRAIN_ROWS rows
-- compressed with it; a window DEGRADE times worse samples the next TRAIN_ROWS rows and trains a new
-- dictionary, kept only when it compresses those samples at least GAIN better.  Measured on the training
-- rows, a shape that comes right after them is caught too (Okta lists OAuth grants, then app assignments:
-- their first window under the grants' dictionary was 0.47, which as the baseline never retrained).  At most
-- MAX_DICTS are kept per app and entity: the oldest one no row uses any more makes room; while all are used
-- no new one is trained.
--
-- An entity's `packed` columns (schema.lua: activities' user_agent) are compressed with the dictionary of
-- its raw (none while it samples), and a dictionary is in use while any of them holds a frame made with it.
--
-- Reading: SQL's unzstd(raw) (host/sqlite.c) gives the text of a compressed value and any other value as
-- it is; the store's own connection reads raw and packed columns as text ({unzstd = M.PACKED_LIST}).
-- Read-only connections (`cachost query`, the REPL, policies' readers) see them as text in SQL too
-- ({text_views}: a TEMP view of the table's name reads them through unzstd()), and a compressed value of
-- any column of a result comes out as its text ({unzstd = true}).
return function(Store, M)
  local check = M.check
  local sqlite = require "sqlite"
  local schema = require "store.schema"

  M.TRAIN_ROWS = 1000   -- samples a dictionary is trained on, and the window its ratio is measured over (specs lower it)
  M.MIN_TRAIN = 100     -- a complete listing of fewer rows trains on what it has, from this many
  M.DEGRADE = 1.25      -- a window this much worse than the dictionary's first retrains (measured: Okta's events +5% after the first)
  M.GAIN = 0.9          -- a new dictionary is kept when it makes the samples at most this size of the current one's
  M.MAX_DICTS = 4       -- dictionaries kept per app and entity
  local DICT_MAX = 64 * 1024   -- a dictionary's largest size (measured: bigger ones gain little on events)
  local LEVEL = 1       -- with the dictionary 0.41x raw (bench/storage.sh); level 3: 0.40x, compressing 20% slower

  local function app_of(self, inst)
    self.apps = self.apps or {}
    local app = self.apps[inst]
    if app == nil then
      local r = check(self.db:query("SELECT app FROM instances WHERE id = ?", inst))[1]
      app = r and r.app or false
      self.apps[inst] = app
    end
    return app or "?"
  end

  -- The compression state of an app's entity: {app, entity, d = {id, bytes, dict, ratio} | false,
  -- samples = list | nil (not sampling) | false (training failed: not again in this process), win_in, win_out, win_n}
  local function state_of(self, inst, entity)
    local app = app_of(self, inst)
    local key = app .. "\0" .. entity
    self.compact = self.compact or {}
    local s = self.compact[key]
    if not s then
      s = { app = app, entity = entity, d = false, win_in = 0, win_out = 0, win_n = 0 }
      local r = check(self.db:query([[SELECT id, dict, ratio FROM zstd_dicts WHERE app = ? AND entity = ?
        ORDER BY created_at DESC, id DESC LIMIT 1]], app, entity))[1]
      -- a damaged stored dictionary is not used to write; rows compress without one until a new one is trained
      local dict = r and zstd.dictionary(r.dict, LEVEL)
      if dict then s.d = { id = r.id, bytes = r.dict, dict = dict, ratio = r.ratio } end
      if not s.d then s.samples = {} end
      self.compact[key] = s
    end
    return s
  end

  local function pack(d, r)
    local f = zstd.compress(r, d and d.dict or nil, LEVEL)
    if #f < #r then return sqlite.blob(f), #f end
    return r, #r
  end

  -- The oldest dictionary of s's app and entity that no row uses (in raw or a packed column) | nil.
  local function unused_dict(self, s)
    local uses = "zstd_dict(raw) = ?1"
    for _, c in ipairs(schema.entities[s.entity].packed or {}) do uses = uses .. (" OR zstd_dict(%s) = ?1"):format(c) end
    for _, r in ipairs(check(self.db:query("SELECT id FROM zstd_dicts WHERE app = ? AND entity = ? ORDER BY created_at, id",
        s.app, s.entity))) do
      local used = check(self.db:query(("SELECT 1 FROM %s WHERE (%s) AND instance_id IN (SELECT id FROM instances WHERE app = ?2) LIMIT 1")
        :format(s.entity, uses), r.id, s.app))[1]
      if not used then return r.id end
    end
  end

  -- SQLite merges a table's pages when a delete leaves one under a third full, never when an update shrinks
  -- its rows: the sampled rows, rewritten a few times smaller, would leave their pages half empty (users 47%
  -- full, group members 64%: bench/storage.sh at 2,000 users).  Moved out and back in by id (ids kept: policy
  -- notes and readers know rows by them), they land packed.
  -- (In the page's transaction: a failure rolls the temporary table back with the rest.)
  local function repack(self, entity, ids)
    if #ids == 0 then return end
    table.sort(ids)
    check(self.db:exec(("CREATE TEMP TABLE compact_repack AS SELECT * FROM main.%s WHERE 0"):format(entity)))
    for _, id in ipairs(ids) do
      check(self.db:exec(("INSERT INTO temp.compact_repack SELECT * FROM main.%s WHERE id = ?"):format(entity), id))
    end
    check(self.db:exec(("DELETE FROM main.%s WHERE id IN (SELECT id FROM temp.compact_repack)"):format(entity)))
    check(self.db:exec(("INSERT INTO main.%s SELECT * FROM temp.compact_repack ORDER BY id"):format(entity)))
    check(self.db:exec("DROP TABLE temp.compact_repack"))
  end

  -- Trains a dictionary on s.samples; adopted (stored, the sampled rows rewritten with it) when it pays.
  local function train(self, s)
    local samples = s.samples
    s.samples = nil
    local texts, total = {}, 0
    for i, x in ipairs(samples) do texts[i] = x.raw; total = total + #x.raw end
    local bytes = zstd.train(texts, math.max(1024, math.min(DICT_MAX, total // 20)))
    local dict = bytes and zstd.dictionary(bytes, LEVEL)
    if not dict then s.samples = false; return end   -- too uniform or too few: go on without
    local d = { id = zstd.dict_id(bytes), bytes = bytes, dict = dict }
    if s.d then
      local old, new = 0, 0
      for _, t in ipairs(texts) do
        old = old + select(2, pack(s.d, t))
        new = new + select(2, pack(d, t))
      end
      -- not worth a dictionary more: what the current one does now is its measure from here on
      if new > old * M.GAIN then
        s.d.ratio = old / total
        check(self.db:exec("UPDATE zstd_dicts SET ratio = ? WHERE id = ?", s.d.ratio, s.d.id))
        return
      end
      if check(self.db:query("SELECT count(*) AS n FROM zstd_dicts WHERE app = ? AND entity = ?", s.app, s.entity))[1].n
          >= M.MAX_DICTS then
        local id = unused_dict(self, s)
        if not id then s.samples = false; return end
        check(self.db:exec("DELETE FROM zstd_dicts WHERE id = ?", id))
      end
    end
    local other = check(self.db:query("SELECT dict FROM zstd_dicts WHERE id = ?", d.id))[1]
    if other and other.dict ~= bytes then s.samples = false; return end   -- zstd id taken (2^-31)
    -- INSERT OR IGNORE: present already unless the transaction that first wrote it rolled back
    check(self.db:exec([[INSERT OR IGNORE INTO zstd_dicts (id, app, entity, samples, created_at, dict)
      VALUES (?, ?, ?, ?, ?, ?)]], d.id, s.app, s.entity, #samples, M.now(), sqlite.blob(bytes)))
    s.d, s.win_in, s.win_out, s.win_n = d, 0, 0, 0
    -- the sampled rows, as stored then (unless rewritten since), take the new dictionary; an event is
    -- found by its key, time and id (schema.lua)
    local sql = ("UPDATE %s SET raw = ? WHERE instance_id = ? AND ext_id = ? AND raw = ?"):format(s.entity)
    local packed, rewritten = 0, {}
    for _, x in ipairs(samples) do
      local v, z = pack(d, x.raw)
      packed = packed + z
      if x.stored ~= nil and v ~= x.stored then    -- (a row of the page being stored has no value yet)
        local r = x.time ~= nil and check(self.db:query(sql .. " AND time = ? RETURNING id", v, x.inst, x.ext, x.stored, x.time))
          or check(self.db:query(sql .. " RETURNING id", v, x.inst, x.ext, x.stored))
        if r[1] then rewritten[#rewritten + 1] = r[1].id end
      end
    end
    repack(self, s.entity, rewritten)
    -- its ratio is what it makes of the rows it was trained on
    d.ratio = packed / total
    check(self.db:exec("UPDATE zstd_dicts SET ratio = ? WHERE id = ?", d.ratio, d.id))
  end

  -- raws[1..n] (JSON text or nil) of rows of entity of instance inst, ext_ids[1..n] theirs (and times[1..n],
  -- events') -> the values to store.
  function Store:pack_raws(entity, inst, raws, n, ext_ids, times)
    local s = state_of(self, inst, entity)
    local samples, mine = s.samples, nil
    if samples then   -- this page's rows are samples too, compressed with the dictionary they train if it comes now
      mine = {}
      for i = 1, n do
        if raws[i] and #samples < M.TRAIN_ROWS then
          samples[#samples + 1] = { raw = raws[i], inst = inst, ext = ext_ids[i], time = times and times[i] }
          mine[#samples] = i
        end
      end
      if #samples >= M.TRAIN_ROWS then train(self, s) end
    end
    local d, out = s.d, {}
    for i = 1, n do
      local r = raws[i]
      if r then
        local v, z = pack(d, r)
        out[i] = v
        if d then s.win_in, s.win_out, s.win_n = s.win_in + #r, s.win_out + z, s.win_n + 1 end
      end
    end
    if s.samples == samples and mine then   -- still sampling: what this page stored, for the rewrite
      for k, i in pairs(mine) do samples[k].stored = out[i] end
    end
    if d then
      -- the dictionary's row again: present unless the transaction that first wrote it rolled back
      check(self.db:exec([[INSERT OR IGNORE INTO zstd_dicts (id, app, entity, samples, created_at, dict)
        VALUES (?, ?, ?, ?, ?, ?)]], d.id, s.app, s.entity, M.TRAIN_ROWS, M.now(), sqlite.blob(d.bytes)))
      if s.win_n >= M.TRAIN_ROWS then
        local ratio = s.win_out / s.win_in
        if not d.ratio then
          d.ratio = ratio
          check(self.db:exec("UPDATE zstd_dicts SET ratio = ? WHERE id = ?", ratio, d.id))
        elseif ratio > d.ratio * M.DEGRADE and s.samples == nil then
          s.samples = {}     -- stale: the next rows are the samples of a new one
        end
        s.win_in, s.win_out, s.win_n = 0, 0, 0
      end
    end
    return out
  end

  -- values[1..n] of a packed column of rows of entity of instance inst -> the values to store: a text
  -- compressed with the dictionary raw has now (as it is while there is none, or when that is no smaller).
  function Store:pack_column(entity, inst, values, n)
    local d, out = state_of(self, inst, entity).d, {}
    for i = 1, n do
      local v = values[i]
      out[i] = (d and type(v) == "string") and (pack(d, v)) or v
    end
    return out
  end

  -- One row's raw (text or nil) -> the value to store.
  function Store:pack_raw(entity, inst, raw, ext_id)
    if raw == nil then return nil end
    return self:pack_raws(entity, inst, { raw }, 1, { ext_id })[1]
  end

  -- A complete listing of entity ended: fewer rows than TRAIN_ROWS train a dictionary from MIN_TRAIN.
  function Store:listing_done(entity, inst)
    local s = state_of(self, inst, entity)
    if s.samples and #s.samples >= M.MIN_TRAIN then train(self, s) end
  end
end
