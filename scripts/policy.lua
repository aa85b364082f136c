-- policy.lua — governance policies: loading them confined, and evaluating them on the change feed.
--
-- A policy is a Lua file returning policy{...} (see policies/*.lua).  It is loaded in its own Lua state
-- (the `vm` module: a hard memory cap and an instruction budget), so a broken, runaway or hostile policy
-- is disabled with an alert and never stops the others.  Only what is data leaves that state; a `match`
-- function is called there on batches of rows, which are copied in.  Windows (repeated, travel) are
-- kept by the engine here and saved in policy_state, so they survive a restart.
local governance = require "governance"
local dlp = require "dlp"
local store = require "store"
local util = require "sdk.util"

local M = {}

-- A store failure is the store's, not the policy's: it raises "store: ..." so that the engine tells it
-- from a failure of the policy (which disables the policy) and lets it through to the caller.
local function exec(db, sql, ...)
  local ok, err = db:exec(sql, ...)
  if not ok then error("store: " .. tostring(err), 0) end
  return ok
end
local function query(db, sql, ...)
  local rows, err = db:query(sql, ...)
  if not rows then error("store: " .. tostring(err), 0) end
  return rows
end

M.MEMORY = 16 * 1024 * 1024
M.INSTRUCTIONS = 20 * 1000 * 1000     -- per call, i.e. per batch of rows (pattern steps count too)
M.SECONDS = 10                        -- per call: what no count bounds (long string compares)
M.MAX_COUNT = 100000                  -- repeated.count: a window keeps that many times per key
M.BATCH = 1000

-- What a policy watches -> the entity of the change feed.
local ON = { activity = "activities", user = "users", file = "files", app_grant = "app_grants",
             privilege = "privileges", group_member = "group_members" }
M.ON = ON

-- Runs inside the policy's own state, before the policy file.
local PRELUDE = [[
local P
function policy(t)
  if type(t) ~= "table" then error("policy{...} expects a table", 2) end
  P = t
  return true      -- the declaration stays in here; __describe copies out what is data
end
-- What is data leaves the state; where a function stands (other than the match), its field is named so
-- that the loader says which field is not what it should be.
function __describe()
  if not P then error("the file does not return policy{...}", 0) end
  local fns, seen = {}, {}
  local function data(v, path, depth)
    if type(v) == "function" or type(v) == "thread" or type(v) == "userdata" then fns[#fns + 1] = path; return nil end
    if type(v) ~= "table" then return v end
    if seen[v] or depth > 20 then fns[#fns + 1] = path; return nil end
    seen[v] = true
    local t = {}
    for k, x in next, v do
      if type(k) == "string" or type(k) == "number" then t[k] = data(x, path .. "." .. tostring(k), depth + 1) end
    end
    seen[v] = nil
    return t
  end
  local d = {}
  for k, v in next, P do
    if k == "match" and type(v) == "function" then d.match_fn = true
    elseif type(k) == "string" then d[k] = data(v, k, 1) end
  end
  d.match_fn = d.match_fn or false
  d.functions = fns
  return d
end
function __match(rows)
  local out, match = {}, P.match
  for i = 1, #rows do out[i] = match(rows[i]) and true or false end
  return out
end
]]

local function seconds(spec)
  if type(spec) == "number" then return spec end
  local n, unit = tostring(spec):match("^(%d+)%s*([smhd]?)$")
  if not n then return nil end
  return tonumber(n) * ({ s = 1, m = 60, h = 3600, d = 86400, [""] = 1 })[unit]
end

-- travel.geoip = path of a MaxMind DB (GeoLite2-City): where a sign-in has an ip but no coordinates,
-- they come from there.  Each file is opened once (memory-mapped) and kept; loading the policies again
-- reopens it only if it changed on disk (GeoIP updates replace the file).
local geo_dbs = {}      -- path -> {db =, stamp =}
local function geo_db(path, check)
  if type(path) ~= "string" then return nil, "a path to a MaxMind DB file expected" end
  local c = geo_dbs[path]
  if c and not check then return c.db end
  local s = host.stat(path)
  local stamp = s and (s.mtime .. ":" .. s.size)
  if c and c.stamp == stamp then return c.db end
  local db, err = geoip.open(path)
  if not db then return nil, err end
  geo_dbs[path] = { db = db, stamp = stamp }
  return db
end

-- Fills row.lat/lon/accuracy_km (and row.location, unless the provider named one) from a MaxMind
-- database -> true, or false when the address is missing, malformed or not in the database.
local function geo_fill(db, row)
  if not row.ip then return false end
  local g = db:lookup(row.ip)
  if not g or not g.lat or not g.lon then return false end
  row.lat, row.lon, row.accuracy_km = g.lat, g.lon, g.accuracy_km
  if row.location == nil then row.location = g.city and g.country and g.city .. ", " .. g.country or g.city or g.country end
  return true
end

local SEVERITIES = { low = true, medium = true, high = true, critical = true }
M.ALERT_MAX = 1000       -- characters of an alert template: the text is copied into every alert row

-- What a value is, for a message: its type, and a short printable form of a string or number.
local function got(v)
  if type(v) == "string" then return ("string '%s'"):format((v:sub(1, 40):gsub("[%c']", "?")) .. (#v > 40 and "..." or "")) end
  if type(v) == "number" then return ("number %s"):format(tostring(v)) end
  return type(v)
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function scalar(v) return type(v) == "string" or type(v) == "boolean" or (type(v) == "number" and v == v) end

-- The fields a row of an entity has: its columns, and what the engine adds before policies see it.
local ROW_FIELDS = { "id", "instance_id", "ext_id", "raw", "first_seen", "last_seen", "deleted_at", "recorded_at",
                     "actor_status", "app_users", "accuracy_km" }
local function fields_of(entity)
  local schema = require "store.schema"
  local e = schema.entities[entity]
  if not e then return nil end
  local set, list = {}, {}
  for _, l in ipairs { e.columns, ROW_FIELDS } do
    for _, c in ipairs(l) do set[c] = true; list[#list + 1] = c end
  end
  return set, list
end

-- A table match: field = value, or field = {value, ...} (any of them); a field the entity's rows do not
-- have is refused (it would silently match nothing), with the likely one.
local function check_match(m, field, bad, entity)
  if type(m) ~= "table" then return bad(field, "must be a table of field = value, got %s", got(m)) end
  local known, names = fields_of(entity)
  for k, want in pairs(m) do
    local f = ("%s.%s"):format(field, tostring(k))
    if known and type(k) == "string" and not known[k] then
      bad(f, "rows of %s have no field '%s'%s", entity, k, require("format").did_you_mean(k, names))
    end
    if type(k) ~= "string" and math.type(k) ~= "integer" then bad(field, "field names are strings, got %s", got(k))
    elseif type(want) == "table" then
      if not is_list(want) or #want == 0 then bad(f, "a set of values is a non-empty list, got a table with other keys") end
      for _, w in ipairs(want) do
        if not scalar(w) then bad(f, "values are strings, numbers or booleans, got %s", got(w)) end
      end
    elseif not scalar(want) then bad(f, "must be a string, number, boolean or list of them, got %s", got(want))
    end
  end
end

local function check_fields(t, field, known, bad)
  if type(t) ~= "table" then return false end
  for k in pairs(t) do
    if not known[k] then bad(field, "unknown field '%s'", tostring(k)) end
  end
  return true
end

local function positive(v) return type(v) == "number" and v == v and v > 0 and v < math.huge end

-- Checks every field of a description and fills defaults -> the policy, or nil and every problem found
-- (each "field: what is wrong"), so that the author fixes a policy in one go.  What the engine later does
-- with these values runs in the main state: a wrong type must stop here, not at the first page.
local function validate(d, name)
  local errs = {}
  local function bad(field, fmt, ...) errs[#errs + 1] = field .. ": " .. fmt:format(...) end
  for _, k in ipairs(d.functions or {}) do
    bad(k, "must be plain data (strings, numbers, booleans, tables), not a function or a cycle")
  end
  d.functions = nil
  if type(d.name) ~= "string" or d.name == "" then bad("name", "a non-empty string is required, got %s", got(d.name)) end
  if d.description ~= nil and type(d.description) ~= "string" then bad("description", "must be a string, got %s", got(d.description)) end
  if not ON[d.on] then bad("on", "must be one of activity, user, file, app_grant, privilege, group_member, got %s", got(d.on)) end
  d.severity = d.severity or "medium"
  if not SEVERITIES[d.severity] then bad("severity", "must be low, medium, high or critical, got %s", got(d.severity)) end
  if d.match ~= nil and not d.match_fn then check_match(d.match, "match", bad, ON[d.on]) end
  d.mode = d.mode or "audit"
  if d.mode ~= "audit" and d.mode ~= "enforce" then bad("mode", "must be audit or enforce, got %s", got(d.mode)) end
  if d.alert ~= nil then
    if type(d.alert) ~= "string" then bad("alert", "must be a string (the alert's title, {field} for values), got %s", got(d.alert))
    elseif #d.alert > M.ALERT_MAX then bad("alert", "longer than %d characters (%d)", M.ALERT_MAX, #d.alert) end
  end
  if d.new_only ~= nil and type(d.new_only) ~= "boolean" then bad("new_only", "must be true or false, got %s", got(d.new_only)) end
  d.actions = d.actions or { "alert" }
  if not is_list(d.actions) then bad("actions", "must be a list of action names, got %s", got(d.actions))
  else
    for _, a in ipairs(d.actions) do
      if a ~= "alert" and not governance.ENTITY[a] then bad("actions", "unknown action '%s'", tostring(a)) end
    end
  end
  if d.ops ~= nil then
    if not is_list(d.ops) or #d.ops == 0 then bad("ops", "must be a list of 'added' and 'changed', got %s", got(d.ops))
    else
      for _, o in ipairs(d.ops) do
        if o ~= "added" and o ~= "changed" then bad("ops", "unknown op '%s' (added, changed)", tostring(o)) end
      end
    end
  end
  if d.repeated ~= nil then
    local r = d.repeated
    if check_fields(r, "repeated", { count = 1, within = 1, by = 1 }, bad) then
      local within = seconds(r.within)
      if not within or not positive(within) then bad("repeated.within", "a duration like 300, '90s', '5m', '2h' or '1d', got %s", got(r.within)) end
      r.within = within
      if math.type(r.count) ~= "integer" or r.count < 1 or r.count > M.MAX_COUNT then
        bad("repeated.count", "must be a whole number from 1 to %d, got %s", M.MAX_COUNT, got(r.count))
      end
      r.by = r.by or "actor"
      if type(r.by) ~= "string" then bad("repeated.by", "names a field of the row, got %s", got(r.by)) end
    else
      bad("repeated", "must be {count = N, within = '5m', by = 'actor'}, got %s", got(r))
    end
  end
  if d.followed_by ~= nil then
    if d.repeated == nil then bad("followed_by", "needs repeated = {...} (what the follower follows)") end
    check_match(d.followed_by, "followed_by", bad, ON[d.on])
  end
  if d.travel ~= nil then
    local t = d.travel
    if check_fields(t, "travel", { max_kmh = 1, min_km = 1, exclude = 1, geoip = 1 }, bad) then
      t.max_kmh = t.max_kmh or 900
      t.min_km = t.min_km or 100
      if not positive(t.max_kmh) then bad("travel.max_kmh", "must be a positive number, got %s", got(t.max_kmh)) end
      if not (positive(t.min_km) or t.min_km == 0) then bad("travel.min_km", "must be a number of at least 0, got %s", got(t.min_km)) end
      if t.geoip ~= nil then
        local _, gerr = geo_db(t.geoip, true)
        if gerr then bad("travel.geoip", "%s", gerr) end
      end
      t.exclude = t.exclude or {}
      if not is_list(t.exclude) then bad("travel.exclude", "must be a list of address ranges, got %s", got(t.exclude))
      else
        for _, cidr in ipairs(t.exclude) do
          if type(cidr) ~= "string" or host.ip_in("", cidr) == nil then
            bad("travel.exclude", "'%s' is not an address range (a.b.c.d/n or an IPv6 prefix)", tostring(cidr))
          end
        end
      end
    else
      bad("travel", "must be a table {max_kmh =, min_km =, exclude =, geoip =}, got %s", got(t))
    end
  end
  if d.dlp ~= nil then
    local x = d.dlp
    if check_fields(x, "dlp", { detectors = 1, custom = 1, min_counts = 1, min = 1, max_size = 1 }, bad) then
      local perr = dlp.check_options(x)
      for _, e in ipairs(perr) do bad("dlp." .. e[1], "%s", e[2]) end
      if x.min ~= nil and (math.type(x.min) ~= "integer" or x.min < 1) then bad("dlp.min", "must be a whole number of at least 1, got %s", got(x.min)) end
      if x.max_size ~= nil and (math.type(x.max_size) ~= "integer" or x.max_size < 1) then bad("dlp.max_size", "must be a positive number of bytes, got %s", got(x.max_size)) end
    else
      bad("dlp", "must be a table {detectors =, custom =, min_counts =, min =, max_size =}, got %s", got(x))
    end
  end
  local known = { name = 1, severity = 1, on = 1, match = 1, match_fn = 1, repeated = 1, followed_by = 1, travel = 1,
                  alert = 1, actions = 1, mode = 1, description = 1, ops = 1, new_only = 1, dlp = 1 }
  for k in pairs(d) do
    if not known[k] then bad(tostring(k), "unknown field '%s'", tostring(k)) end
  end
  if #errs > 0 then return nil, table.concat(errs, "; ") end
  d.id = name
  return d
end

-- One line, whatever the policy's error said (Lua's "unfinished string near ..." quotes the newline).
local function load_error(v, path, why)
  v:close()
  return nil, ("%s: %s"):format(path, (tostring(why):gsub("%s*[\r\n]+%s*", " ")))
end

-- policy.load(path) -> policy | nil, err ("<path>: field: problem; field: problem ...")
function M.load(path)
  local fh, ferr = io.open(path, "rb")
  if not fh then return nil, ferr end
  local text = fh:read("a")
  fh:close()
  local id = path:match("([^/]+)%.lua$") or path
  local v = vm.new { memory = M.MEMORY, instructions = M.INSTRUCTIONS, seconds = M.SECONDS, name = id }
  local ok, err = v:load(PRELUDE, "=prelude")
  if ok then ok, err = v:load(text, id .. ".lua") end
  if not ok then return load_error(v, path, err) end
  local okd, d = v:call("__describe")
  if not okd then return load_error(v, path, d) end
  local p, verr = validate(d, id)
  if not p then return load_error(v, path, verr) end
  p.vm, p.path = v, path
  return p
end

-- The file of a policy given by path, or by name (policies/NAME.lua, $CACHOST_HOME/policies/NAME.lua;
-- the operator's wins) -> path | nil, err
function M.find(name)
  if name:find("/", 1, true) or name:match("%.lua$") then return name end
  for _, dir in ipairs { host.home .. "/policies", host.root .. "/policies" } do
    local path = dir .. "/" .. name .. ".lua"
    if host.stat(path) then return path end
  end
  local names = {}
  for _, dir in ipairs { host.root .. "/policies", host.home .. "/policies" } do
    for _, f in ipairs(host.listdir(dir) or {}) do names[#names + 1] = f:match("^(.*)%.lua$") end
  end
  return nil, ("no policy named '%s'%s (cachost policy list)"):format(name, require("format").did_you_mean(name, names))
end

-- Every policy shipped in policies/ and the operator's in $CACHOST_HOME/policies/, with their switches.
function M.load_all(st)
  local list, errors = {}, {}
  local switches = {}
  for _, r in ipairs(query(st.db, "SELECT * FROM policies")) do switches[r.name] = r end
  for _, dir in ipairs { host.root .. "/policies", host.home .. "/policies" } do
    for _, f in ipairs(host.listdir(dir) or {}) do
      if f:match("%.lua$") then
        local p, err = M.load(dir .. "/" .. f)
        if p then
          local sw = switches[p.id]
          p.enabled = not sw or sw.enabled == 1
          if sw and sw.mode then p.mode = sw.mode end
          list[#list + 1] = p
        else
          errors[#errors + 1] = err
        end
      end
    end
  end
  return list, errors
end

---------------------------------------------------------------------------------------------- matching

-- How a policy walks a batch of rows is generated once per policy as one Lua function, its tests inline:
-- this is the hot path, and most rows match nothing.  A table match {kind = "signin", action = {"a", "b"}}
-- becomes `r["kind"] == c1 and c2[r["action"]] == true`, values and sets as upvalues; a function match
-- (run in the policy's own state beforehand) is hits[i].  scan(rows, step, hits) calls step(row, hit)
-- for each row that matches, and with followed_by also for each follower (hit false) of a key in
-- armed (see State:armed); it returns the sum of what step returned (the alerts).
local function test_of(m, consts)
  local function const(v)
    consts[#consts + 1] = v
    return #consts <= 100 and "c" .. #consts or ("C[%d]"):format(#consts)   -- past 100: Lua's limit on locals
  end
  local tests = {}
  for k, want in pairs(m) do
    local field = type(k) == "string" and ("r[%q]"):format(k) or ("r[%s]"):format(const(k))
    if type(want) == "table" then
      local set = {}
      for _, w in ipairs(want) do set[w] = true end
      tests[#tests + 1] = ("%s[%s] == true"):format(const(set), field)
    else
      tests[#tests + 1] = ("%s == %s"):format(field, const(want))
    end
  end
  return #tests > 0 and table.concat(tests, " and ") or "true"
end

local function scanner(p)
  local consts = {}
  local hit = p.match_fn and "hits[i]" or test_of(p.match or {}, consts)
  local body = ("if %s then n = n + step(r, true) end"):format(hit)
  if p.followed_by then      -- keys that are not strings are left to the step
    body = ("local hit, k = %s, r[%q]\n    if hit or (armed[k] or type(k) ~= 'string') and %s then n = n + step(r, hit) end")
      :format(hit, p.repeated.by, test_of(p.followed_by, consts))
  end
  local src = { "local C = ..." }
  for i = 1, math.min(#consts, 100) do src[#src + 1] = ("local c%d = C[%d]"):format(i, i) end
  src[#src + 1] = ("return function(rows, step, hits, armed)\n  local n = 0\n  for i = 1, #rows do\n    local r = rows[i]\n    %s\n  end\n  return n\nend"):format(body)
  return assert(load(table.concat(src, "\n"), "=" .. p.id .. " (match)", "t", { type = type }))(consts)
end

-- Function matches run in the policy's own state, a batch of rows per call -> array of booleans, or
-- nil, err (the policy failed: budget, memory, runtime error).
local function match_in_vm(p, rows)
  local out = {}
  for first = 1, #rows, M.BATCH do
    local batch = table.move(rows, first, math.min(#rows, first + M.BATCH - 1), 1, {})
    local ok, res = p.vm:call("__match", batch)
    if not ok then return nil, res end
    if type(res) ~= "table" then return nil, ("error: __match returned a %s, not a list"):format(type(res)) end
    table.move(res, 1, #res, first, out)
  end
  return out
end

---------------------------------------------------------------------------------------------- windows

local function haversine_km(lat1, lon1, lat2, lon2)
  local r = math.rad
  local dlat, dlon = r(lat2 - lat1), r(lon2 - lon1)
  local a = math.sin(dlat / 2) ^ 2 + math.cos(r(lat1)) * math.cos(r(lat2)) * math.sin(dlon / 2) ^ 2
  return 6371 * 2 * math.atan(math.sqrt(a), math.sqrt(1 - a))
end

local State = {}
State.__index = State

-- Window state per (policy, instance, key): read from policy_state once, kept in memory for the life of
-- the process, and written back after each feed for the keys it changed.
local states = setmetatable({}, { __mode = "k" })     -- store -> instance id -> State
local function state_for(st, inst)
  local per = states[st] or {}
  states[st] = per
  per[inst.id] = per[inst.id] or setmetatable({ st = st, inst = inst, cache = {}, dirty = {}, armed_keys = {}, done = {} }, State)
  return per[inst.id]
end
-- A state that reads and writes nothing (cachost policy test): windows start empty and live in memory.
function M.scratch_state(st, inst)
  return setmetatable({ st = st, inst = inst, cache = {}, dirty = {}, armed_keys = {}, done = {}, scratch = true }, State)
end
-- The windows of one policy: wins[key] is the state of that key (read from policy_state on first use);
-- a step that changes it sets dirty[key] = true.  Plain tables, because steps run once per row.
function State:windows(policy)
  local wins = self.cache[policy]
  if not wins and self.scratch then
    wins = setmetatable({}, { __index = function(t, key) local v = {}; rawset(t, key, v); return v end })
    self.cache[policy] = wins
  end
  if not wins then
    local st, inst = self.st, self.inst
    wins = setmetatable({}, { __index = function(t, key)
      local r = query(st.db, "SELECT data FROM policy_state WHERE policy = ? AND instance_id = ? AND key = ?",
        policy, inst.id, key)[1]
      local v = r and json.decode(r.data) or {}
      rawset(t, key, v)
      return v
    end })
    self.cache[policy] = wins
  end
  local dirty = self.dirty[policy]
  if not dirty then dirty = {}; self.dirty[policy] = dirty end
  return wins, dirty
end
-- The keys of a followed_by policy whose window may hold enough matches for a follower to fire: every
-- key stored before this process read them, then exactly what repeated_step leaves.  The scan skips
-- the followers of other keys without a step (most sign-ins follow no failures).
function State:armed(policy)
  local armed = self.armed_keys[policy]
  if not armed and self.scratch then armed = {}; self.armed_keys[policy] = armed end
  if not armed then
    armed = {}
    for _, r in ipairs(query(self.st.db, "SELECT key FROM policy_state WHERE policy = ? AND instance_id = ?",
        policy, self.inst.id)) do armed[r.key] = true end
    self.armed_keys[policy] = armed
  end
  return armed
end
-- Writing every window after every page would cost more than evaluating the page, so changes are
-- written at most every SAVE_EVERY seconds, and always by policy.flush() (end of a scan, stop).  The
-- notes of the pages evaluated since (self.done, see M.note) are deleted in the same transaction: after a
-- crash, the pages still noted are exactly those whose effects on the windows were not saved.
local SAVE_EVERY = 2
function State:save(force)
  if self.scratch then return end
  local pending = next(self.done) ~= nil
  for _, keys in pairs(self.dirty) do if next(keys) then pending = true; break end end
  if not pending or (not force and sched.now() - (self.saved_at or 0) < SAVE_EVERY) then return end
  local now = store.now()
  local done = {}
  for id in pairs(self.done) do done[#done + 1] = id end
  local ok, err = self.st:transaction(function()
    for _, id in ipairs(done) do exec(self.st.db, "DELETE FROM policy_pending WHERE id = ?", id) end
    for policy, keys in pairs(self.dirty) do
      local wins = self.cache[policy]
      for key in pairs(keys) do
        keys[key] = nil          -- cleared in place: a feed paused in an action still holds this table
        local v = rawget(wins, key)
        if v == nil or next(v) == nil then
          -- an empty window: no row, and no memory (a key seen once must not stay for the process's life)
          exec(self.st.db, "DELETE FROM policy_state WHERE policy = ? AND instance_id = ? AND key = ?",
            policy, self.inst.id, key)
          rawset(wins, key, nil)
        else
          exec(self.st.db, [[INSERT INTO policy_state (policy, instance_id, key, data, updated_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (policy, instance_id, key) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at]],
            policy, self.inst.id, key, json.encode(v), now)
        end
      end
    end
    return true
  end)
  if not ok then error(err, 0) end
  for _, id in ipairs(done) do self.done[id] = nil end
  self.saved_at = sched.now()
end

-- Write every pending window change now.
function M.flush()
  for _, per in pairs(states) do
    for _, state in pairs(per) do state:save(true) end
  end
end

-- Forget what is cached in memory (as a restart would).
function M.forget() states = setmetatable({}, { __mode = "k" }) end

local function row_time(row)
  local t = row._t
  if not t then t = util.parse_iso(row.time) or sched.time(); row._t = t end
  return t
end

-- repeated = {count, within, by}, optional followed_by: N matches within the window (then a follower).
-- Returns the evidence when the policy fires on this row.
-- Called for the rows that match and, with followed_by, for the followers.
local function repeated_step(p, run, row, matched)
  local r = p.repeated
  local key = row[r.by]
  if type(key) ~= "string" then key = tostring(key or "?") end
  local w = run.wins[key]
  local times = w.times
  if not matched and (not times or #times < r.count) then return nil end   -- a follower of too few
  if not times then times = json.array {} end
  local t = row._t or row_time(row)
  -- drop what fell out of the window (in place: the oldest are first)
  local drop = 0
  while times[drop + 1] and t - times[drop + 1] > r.within do drop = drop + 1 end
  if drop > 0 then table.move(times, drop + 1, #times + drop, 1) end
  local fired
  if matched then
    times[#times + 1] = t
    if not p.followed_by and #times >= r.count then fired = { count = #times, key = key } end
  elseif #times >= r.count then
    fired = { count = #times, key = key, followed_by = row.ext_id }
  end
  if fired or #times == 0 then times = nil end      -- an empty window is forgotten at the next save
  if matched or fired or drop > 0 then w.times = times; run.dirty[key] = true end
  if run.armed then run.armed[key] = times and #times >= r.count or nil end
  return fired
end

-- travel = {max_kmh, min_km, exclude = {cidr...}, geoip = path}: two sign-ins farther apart than a plane
-- can fly.  Where the location came from a database, its accuracy radii are taken off the distance (a
-- country-level record can be 1,000 km off): only travel that is impossible however wrong they are fires.
-- run.geo is the opened travel.geoip database, if any.
local function travel_step(p, run, row)
  local exclude = p.travel.exclude
  for i = 1, #exclude do if host.ip_in(row.ip, exclude[i]) then return nil end end
  if (not row.lat or not row.lon) and not (run.geo and geo_fill(run.geo, row)) then return nil end
  local key = row.actor
  if type(key) ~= "string" then key = tostring(key or "?") end
  local t = row._t or row_time(row)
  local last = run.wins[key]
  local ev
  if last.lat and (last.lat ~= row.lat or last.lon ~= row.lon) then
    local km = haversine_km(last.lat, last.lon, row.lat, row.lon)
    local least = km - (last.accuracy_km or 0) - (row.accuracy_km or 0)
    local hours = math.max(math.abs(t - last.t), 60) / 3600
    if least >= p.travel.min_km and least / hours > p.travel.max_kmh then
      ev = { km = math.floor(km), kmh = math.floor(km / hours), from = last.location, to = row.location,
             from_ip = last.ip, to_ip = row.ip }
    end
  end
  last.lat, last.lon, last.accuracy_km, last.t, last.location, last.ip = row.lat, row.lon, row.accuracy_km, t,
    row.location, row.ip
  run.dirty[key] = true
  return ev
end

---------------------------------------------------------------------------------------------- enrichment

-- What policies may look at beyond the row itself: the actor's account status for activities, and for
-- app grants how many users of the instance have granted that app anything (a rarely seen app).
local function enrich(st, inst, entity, rows)
  if entity == "app_grants" then
    local seen = {}
    for _, r in ipairs(rows) do
      if r.client_id and seen[r.client_id] == nil then
        seen[r.client_id] = query(st.db, [[SELECT count(DISTINCT user_id) n FROM app_grants WHERE instance_id = ?
          AND client_id = ? AND deleted_at IS NULL]], inst.id, r.client_id)[1].n
      end
      r.app_users = seen[r.client_id]
    end
    return
  end
  if entity ~= "activities" then return end
  -- actor_status is the account's status when the event happened, as far as cachost knows: the current
  -- status counts from when cachost saw it (its last change, else when the account was first seen), so
  -- history from before a suspension is not taken for activity after it.  Cached per instance until
  -- the users of that instance change (M.feed of "users" clears it).
  local known = state_for(st, inst).actors
  if not known then known = {}; state_for(st, inst).actors = known end
  for _, r in ipairs(rows) do
    local who = r.actor_id or r.actor
    if who and known[who] == nil then
      local u = query(st.db, [[SELECT ext_id, status, first_seen FROM users WHERE instance_id = ?
        AND (ext_id = ? OR lower(email) = lower(?)) LIMIT 1]], inst.id, who, r.actor or who)[1]
      if u then
        local ch = query(st.db, [[SELECT max(time) t FROM changes WHERE instance_id = ? AND entity = 'users'
          AND ext_id = ? AND diff LIKE '%"status"%']], inst.id, u.ext_id)[1]
        known[who] = { status = u.status, since = util.parse_iso((ch and ch.t) or u.first_seen) or 0 }
      else
        known[who] = false
      end
    end
    local k = who and known[who]
    if k then r.actor_status = (r._t or row_time(r)) >= k.since and k.status or nil end
  end
end

---------------------------------------------------------------------------------------------- content

-- dlp = {detectors = {...}, custom = {{name=, pattern=, min=}}, min_counts = {...}, min = N, max_size = bytes}:
-- download the file through its connector and scan it; the file row records the outcome (scan_status,
-- scan_reason, scan_matches with masked samples, scanned_at).  -> evidence (masked samples only) or nil
local function dlp_step(p, run, row)
  local st, inst, opts = run.st, run.inst, run.opts
  local c = opts.ctx and opts.ctx.connector
  if not c or not c.content or row.is_folder == 1 or row.is_folder == true then return nil end
  local max = p.dlp.max_size or 50 * 1024 * 1024
  local ok, body, err = pcall(c.content, opts.ctx, row, max)
  if M.on_scan then M.on_scan(ok and type(body) == "string" and #body or 0) end   -- progress (cachost sync)
  local result
  if not ok or not body then
    local why = tostring(ok and err or body)
    result = { status = why:match("too_large") and "too_large" or "failed", reason = why }
  else
    result = dlp.scan_file(body, { name = row.name, mime = row.mime, max_size = max, detectors = p.dlp.detectors,
      custom = p.dlp.custom, min_counts = p.dlp.min_counts })
  end
  local total, found = 0, {}
  for kind, m in pairs(result.status == "completed" and result.matches or {}) do
    total = total + m.count
    found[kind] = { count = m.count, samples = m.samples }
  end
  if not opts.dry then
    exec(st.db, [[UPDATE files SET scan_status = ?, scan_reason = ?, scan_matches = ?, scanned_at = ?
      WHERE instance_id = ? AND ext_id = ?]], result.status, result.reason,
      result.status == "completed" and json.encode(found) or nil, store.now(), inst.id, row.ext_id)
  end
  if total >= (p.dlp.min or 1) then return { matches = found, count = total } end
end

---------------------------------------------------------------------------------------------- outcomes

local function alert_title(p, row, ev)
  local t = p.alert or p.name
  return (t:gsub("{([%w_]+)}", function(k) return tostring(row[k] or (ev and ev[k]) or "?") end))
end

local function target_of(entity, action, row)
  local target_entity = governance.ENTITY[action]
  if target_entity == entity then return row.ext_id end
  if target_entity == "users" then return row.actor_id or row.actor or row.user_id or row.member_id end
  return nil
end

-- One hit: an alert (deduplicated per policy, entity and window), and the policy's actions through
-- the governance path (audit mode plans them as dry runs).
local function fire(st, inst, p, entity, row, evidence, opts)
  local bucket = math.floor(row_time(row) / 3600)
  local title = alert_title(p, row, evidence)
  local key = ("%s:%s:%s:%d"):format(p.id, entity, row.ext_id or "?", bucket)
  local now = store.now()
  evidence = evidence or {}
  evidence.row = { ext_id = row.ext_id, time = row.time, actor = row.actor, action = row.action, ip = row.ip,
                   location = row.location, email = row.email, name = row.name, path = row.path }
  -- An alert that exists was raised before (a page evaluated again after a crash, or the same row again
  -- within its window): nothing more.  Its actions carry correlation ids derived from the alert, which
  -- governance records (pending) before they go out; they are planned first and the alert written last,
  -- so after a crash between the two the page's second evaluation finds them and writes the alert
  -- without planning them again: alert and actions once each.
  -- opts.dry (policy test) writes nothing: alerts once per key in memory, actions only said.
  -- what the hit asks for: {action, target} of each action that has a target in this row
  local wanted = {}
  for _, action in ipairs(p.actions) do
    local target = action ~= "alert" and target_of(entity, action, row)
    if target then wanted[#wanted + 1] = { action = action, target = target } end
  end
  if opts.dry then
    if opts.seen[key] then return 0 end
    opts.seen[key] = true
    local plans = {}
    for i, w in ipairs(wanted) do plans[i] = { action = w.action, target = w.target, mode = "dry-run", result = "planned" } end
    evidence.actions = plans
    if opts.on_alert then opts.on_alert { policy = p.id, severity = p.severity, title = title, entity = entity,
                                           entity_id = row.ext_id, evidence = evidence } end
    return 1
  end
  if query(st.db, "SELECT 1 FROM alerts WHERE instance_id = ? AND ext_id = ?", inst.id, key)[1] then
    exec(st.db, "UPDATE alerts SET updated_at = ? WHERE instance_id = ? AND ext_id = ?", now, inst.id, key)
    return 0
  end
  local plans = {}
  local mode = opts.mode or p.mode
  for _, w in ipairs(wanted) do
    local action, target = w.action, w.target
    local cid = crypto.hex(crypto.sha256(key .. "\0" .. action)):sub(1, 16)
    local rec, err = query(st.db, "SELECT * FROM governance_actions WHERE instance_id = ? AND ext_id = ?", inst.id, cid)[1]
    if not rec then
      rec, err = governance.act { store = st, instance = inst, action = action, target = target, policy = p.id,
        dry_run = mode ~= "enforce", params = { reason = title }, correlation_id = cid }
    end
    plans[#plans + 1] = { action = action, target = target, mode = rec and rec.mode or "error",
                          result = rec and rec.result or err, id = rec and rec.id }
  end
  evidence.actions = plans
  exec(st.db, [[INSERT INTO alerts (instance_id, ext_id, policy, severity, title, entity, entity_id, evidence,
      status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)
    ON CONFLICT (instance_id, ext_id) DO NOTHING]],
    inst.id, key, p.id, p.severity, title, entity, row.ext_id, json.encode(evidence), now, now)
  if st.db:changes() ~= 1 then return 0 end     -- raised meanwhile by another task (an action yielded)
  if opts.on_alert then opts.on_alert { policy = p.id, severity = p.severity, title = title, entity = entity,
                                         entity_id = row.ext_id, evidence = evidence } end
  return 1
end

-- A policy failed (error, budget, memory): disable it, say so with an alert, go on with the others.
local function disable(st, inst, p, err, opts)
  p.enabled = false
  if opts.dry then opts.failed = err; return end
  log.error("policy disabled", { policy = p.id, error = err })
  exec(st.db, [[INSERT INTO policies (name, enabled, status, last_error, updated_at) VALUES (?, 0, 'failed', ?, ?)
    ON CONFLICT (name) DO UPDATE SET enabled = 0, status = 'failed', last_error = excluded.last_error,
    updated_at = excluded.updated_at]], p.id, err, store.now())
  governance.alert(st, inst, "cachost", "high", "policy " .. p.id .. " disabled: " .. err, "policy", p.id, { error = err })
end

local function always() return {} end

-- The step of one policy for its scan: what it does with a row that matches (or follows), through fire().
-- -> step(row, hit) -> 1 when it alerted, else 0 | nil, err
local function stepper(st, inst, p, entity, state, opts)
  local run = { st = st, inst = inst, opts = opts }      -- what the policy's kind of step needs
  if p.repeated or p.travel then run.wins, run.dirty = state:windows(p.id) end
  if p.followed_by then run.armed = state:armed(p.id) end
  if p.travel and p.travel.geoip then     -- opened at load; only a policy table changed since can fail here
    local err
    run.geo, err = geo_db(p.travel.geoip)
    if not run.geo then return nil, "travel.geoip: " .. err end
  end
  local kind = p.repeated and repeated_step or p.travel and travel_step or p.dlp and dlp_step or always
  return function(row, hit)
    local ev = kind(p, run, row, hit)
    if not ev then return 0 end
    return fire(st, inst, p, entity, row, ev, opts)
  end
end

-- One policy on one batch of the feed -> its alert count.  Raises when the policy fails.
local function run_policy(st, inst, p, entity, items, rows, ops_seen, state, opts)
  if not p.op_set then
    local set = {}
    for _, o in ipairs(p.ops or (entity == "activities" and { "added" } or { "added", "changed" })) do set[o] = true end
    p.scan = scanner(p)
    p.op_set = set
  end
  local mine, ops = rows, p.op_set
  for op in pairs(ops_seen) do
    if not ops[op] then       -- this policy skips some of these rows
      mine = {}
      for _, it in ipairs(items) do if ops[it.op] then mine[#mine + 1] = it.row end end
      break
    end
  end
  local hits, step, err
  if p.match_fn then hits, err = match_in_vm(p, mine) end
  if not err then step, err = stepper(st, inst, p, entity, state, opts) end
  if not step then error(err, 0) end
  return p.scan(mine, step, hits, state.armed_keys[p.id])
end

-- What a failure says, whatever was raised (an error object of the main state is ours: no __tostring
-- of a policy's runs here).
local function reason(e)
  if type(e) ~= "string" then return ("error: (error object is a %s value)"):format(type(e)) end
  if e:match("^[%w_]+: ") then return e end
  return "error: " .. e
end

-- engine.feed(st, inst, entity, items, opts) evaluates every enabled policy on the change feed:
-- items = { {op = "added"|"changed"|"removed", row = {...}}, ... }.  opts.mode overrides every
-- policy's mode; opts.dry (policy test) writes nothing (give opts.seen = {} and opts.state =
-- M.scratch_state(...); a failure is left in opts.failed); opts.on_alert sees each alert; opts.ctx is the sync
-- context (content downloads); opts.first_scan skips new_only policies; opts.mark is the note of the
-- page (M.note), done once it is evaluated.  Returns the count of alerts raised (not raised before).
-- Each policy runs protected: one that fails (its state's limits, an error in the engine on its values)
-- is disabled with an alert and the others go on.  A store failure or a cancelled task is not the
-- policy's doing: it goes up to the caller.
function M.feed(st, inst, policies, entity, items, opts)
  opts = opts or {}
  local rows, n, ops_seen = {}, 0, {}
  for i = 1, #items do
    local it = items[i]
    local op = it.op
    if op ~= "removed" then n = n + 1; rows[n] = it.row; ops_seen[op] = true end
  end
  local state = opts.state or state_for(st, inst)
  if n == 0 then
    if opts.mark then state.done[opts.mark] = true end
    return 0
  end
  if entity == "users" then state.actors = nil end   -- statuses may have changed
  enrich(st, inst, entity, rows)     -- in place: the items see it too
  local alerts = 0
  for _, p in ipairs(policies) do
    if p.enabled ~= false and ON[p.on] == entity and not (p.new_only and opts.first_scan) then
      local ok, res = pcall(run_policy, st, inst, p, entity, items, rows, ops_seen, state, opts)
      require("metrics").inc("cachost_policy_evaluations_total", { policy = p.id }, n)
      if ok then
        alerts = alerts + res
      elseif type(res) == "string" and (res:match("^store: ") or res:match("cancelled$")) then
        error(res, 0)
      else
        disable(st, inst, p, reason(res), opts)
      end
    end
  end
  if opts.mark then state.done[opts.mark] = true end
  state:save()
  return alerts
end

---------------------------------------------------------------------------------------------- resuming

local schema = require "store.schema"

-- policy.note(st, inst, entity, res, first_scan) -> note id | nil: in the transaction of a page
-- (sync's on_commit), what the policies have to evaluate of it: the rowids of its new events, or of the
-- changes its inventory rows made.  They are contiguous: the page's rows were inserted in this
-- transaction, the last ones of their table.
function M.note(st, inst, entity, res, first_scan)
  local spec = schema.entities[entity]
  if not spec then return nil end
  local source = spec.inventory and "changes" or entity
  local n = spec.inventory and #(res.changes or {}) or res.added
  if n == 0 then return nil end
  local last = query(st.db, ("SELECT max(id) m FROM %s"):format(source))[1].m
  exec(st.db, [[INSERT INTO policy_pending (instance_id, source, first_id, last_id, first_scan, created_at)
    VALUES (?, ?, ?, ?, ?, ?)]], inst.id, source, last - n + 1, last, first_scan and 1 or 0, store.now())
  return st.db:last_insert_rowid()
end

-- The feed items of one note, read back from the store -> {entity = items}.
local function noted(st, inst, note)
  if note.source ~= "changes" then
    local items = {}
    for _, r in ipairs(query(st.db, ("SELECT * FROM %s WHERE instance_id = ? AND id BETWEEN ? AND ? ORDER BY id")
        :format(note.source), inst.id, note.first_id, note.last_id)) do
      items[#items + 1] = { op = "added", row = r }
    end
    return { [note.source] = items }
  end
  local by = {}
  for _, c in ipairs(query(st.db, [[SELECT entity, ext_id, op FROM changes WHERE instance_id = ? AND id BETWEEN ? AND ?
      ORDER BY id]], inst.id, note.first_id, note.last_id)) do
    local spec = schema.entities[c.entity]
    if spec and spec.inventory and c.op ~= "removed" then
      local row = query(st.db, ("SELECT * FROM %s WHERE instance_id = ? AND ext_id = ?"):format(c.entity), inst.id, c.ext_id)[1]
      if row then
        by[c.entity] = by[c.entity] or {}
        table.insert(by[c.entity], { op = c.op, row = row })
      end
    end
  end
  return by
end

-- policy.resume(st, inst, policies, opts) -> pages evaluated: the pages of this instance committed and
-- not evaluated (a crash, a stop), evaluated now from the store, oldest first.  Their alerts that were
-- raised already are not raised again (see fire).  opts.ctx: the sync context (content downloads).
function M.resume(st, inst, policies, opts)
  local state = state_for(st, inst)
  local n = 0
  for _, note in ipairs(query(st.db, "SELECT * FROM policy_pending WHERE instance_id = ? ORDER BY id", inst.id)) do
    if not state.done[note.id] then      -- evaluated in this process, not saved yet
      local feeds = noted(st, inst, note)
      local entities = {}
      for entity in pairs(feeds) do entities[#entities + 1] = entity end
      table.sort(entities)
      for _, entity in ipairs(entities) do
        M.feed(st, inst, policies, entity, feeds[entity], { ctx = opts and opts.ctx, first_scan = note.first_scan == 1 })
      end
      state.done[note.id] = true
      n = n + 1
    end
  end
  state:save(true)
  return n
end

return M
