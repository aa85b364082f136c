-- store/compact.lua — the raw JSON of events, stored compressed (zstd) and read back byte for byte.
--
-- Events are most of the database (millions of rows, never updated), and one event's JSON is small
-- (~2 KB), so alone it compresses poorly; a dictionary trained on the same app's events of the same entity
-- makes each one a few hundred bytes.  The first TRAIN_ROWS events of an app's entity are compressed without
-- one and give the samples; the dictionary is then trained, stored in zstd_dicts (in the transaction of
-- the rows compressed with it) and used from then on.  Every frame names its dictionary by zstd's id, so
-- a newer dictionary for the same app and entity can be added at any time and old rows stay readable.
-- A value that compression would not shrink stays as the JSON text (so rows written before migration 8,
-- or tiny ones, are plain TEXT and read as they are).
--
-- Reading: SQL's unzstd(raw) (host/sqlite.c) gives the text of a compressed value and any other value as
-- it is; the store's own reads select it.  Read-only connections (`cachost query`, the REPL, policies'
-- readers) are opened with {unzstd = true}: a compressed value comes out as its text.
return function(Store, M)
  local check = M.check
  local sqlite = require "sqlite"

  M.COMPRESSED = { activities = true }    -- entities whose raw is stored compressed
  M.TRAIN_ROWS = 1000                     -- samples a dictionary is trained on (a spec lowers it)
  local DICT_MAX = 64 * 1024              -- its largest size (measured: bigger ones gain little on events)
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

  -- The dictionary to compress an app's entity with: {id, bytes, dict} | nil (none yet).
  local function dictionary(self, key, app, entity)
    self.dicts = self.dicts or {}
    local d = self.dicts[key]
    if d == nil then
      local r = check(self.db:query("SELECT id, dict FROM zstd_dicts WHERE app = ? AND entity = ? ORDER BY created_at DESC, id DESC LIMIT 1",
        app, entity))[1]
      d = false
      if r then
        local dict = zstd.dictionary(r.dict, LEVEL)
        -- a damaged stored dictionary is not used to write; rows compress without one until a new one is trained
        if dict then d = { id = r.id, bytes = r.dict, dict = dict } end
      end
      self.dicts[key] = d
    end
    return d or nil
  end

  local function store_dict(self, d, app, entity, samples)
    -- INSERT OR IGNORE: present already unless the transaction that first wrote it rolled back
    check(self.db:exec([[INSERT OR IGNORE INTO zstd_dicts (id, app, entity, samples, created_at, dict)
      VALUES (?, ?, ?, ?, ?, ?)]], d.id, app, entity, samples, M.now(), sqlite.blob(d.bytes)))
  end

  local function train(self, key, app, entity)
    local samples = self.samples[key]
    local total = 0
    for _, s in ipairs(samples) do total = total + #s end
    self.samples[key] = nil
    local bytes = zstd.train(samples, math.max(1024, math.min(DICT_MAX, total // 20)))
    local dict = bytes and zstd.dictionary(bytes, LEVEL)
    if not dict then self.samples[key] = false; return nil end   -- too uniform or too few: go on without
    local d = { id = zstd.dict_id(bytes), bytes = bytes, dict = dict, samples = #samples }
    local other = check(self.db:query("SELECT dict FROM zstd_dicts WHERE id = ?", d.id))[1]
    if other and other.dict ~= bytes then self.samples[key] = false; return nil end   -- zstd id taken (2^-31)
    self.dicts[key] = d
    return d
  end

  -- raws (a list of JSON text or nil, for one page of entity rows of instance inst) -> the values to store.
  function Store:pack_raws(entity, inst, raws, n)
    if not M.COMPRESSED[entity] then return raws end
    local app = app_of(self, inst)
    local key = app .. "\0" .. entity
    local d = dictionary(self, key, app, entity)
    if not d then
      self.samples = self.samples or {}
      local s = self.samples[key]
      if s == nil then s = {}; self.samples[key] = s end
      if s then
        for i = 1, n do
          if raws[i] and #s < M.TRAIN_ROWS then s[#s + 1] = raws[i] end
        end
        if #s >= M.TRAIN_ROWS then d = train(self, key, app, entity) end
      end
    end
    if d then store_dict(self, d, app, entity, d.samples or M.TRAIN_ROWS) end
    local out, dict = {}, d and d.dict
    for i = 1, n do
      local r = raws[i]
      if r then
        local f = zstd.compress(r, dict, LEVEL)
        out[i] = #f < #r and sqlite.blob(f) or r
      end
    end
    return out
  end
end
