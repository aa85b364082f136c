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

M.MEMORY = 16 * 1024 * 1024
M.INSTRUCTIONS = 20 * 1000 * 1000     -- per call, i.e. per batch of rows
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
function __describe()
  if not P then error("the file does not return policy{...}", 0) end
  local d = {}
  for k, v in pairs(P) do if type(v) ~= "function" then d[k] = v end end
  d.match_fn = type(P.match) == "function"
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

-- Checks a description and fills defaults; returns it or nil, err.
local function validate(d, name)
  if type(d.name) ~= "string" then return nil, "name missing" end
  if not ON[d.on] then return nil, ("'on' must be one of activity, user, file, app_grant, privilege, group_member (got %s)"):format(tostring(d.on)) end
  d.severity = d.severity or "medium"
  if not SEVERITIES[d.severity] then return nil, "severity must be low, medium, high or critical" end
  if d.match ~= nil and type(d.match) ~= "table" and not d.match_fn then return nil, "match must be a table or a function" end
  d.mode = d.mode or "audit"
  if d.mode ~= "audit" and d.mode ~= "enforce" then return nil, "mode must be audit or enforce" end
  d.actions = d.actions or { "alert" }
  for _, a in ipairs(d.actions) do
    if a ~= "alert" and not governance.ENTITY[a] then return nil, ("unknown action '%s'"):format(tostring(a)) end
  end
  if d.ops ~= nil then
    if type(d.ops) ~= "table" or #d.ops == 0 then return nil, "ops must be a list of 'added' and 'changed'" end
    for _, o in ipairs(d.ops) do
      if o ~= "added" and o ~= "changed" then return nil, ("ops: unknown op '%s' (added, changed)"):format(tostring(o)) end
    end
  end
  if d.repeated then
    local r = d.repeated
    r.within = seconds(r.within)
    if type(r.count) ~= "number" or r.count < 1 or not r.within then
      return nil, "repeated = {count = N, within = '5m', by = 'actor'}"
    end
    r.by = r.by or "actor"
  end
  if d.travel then
    d.travel.max_kmh = d.travel.max_kmh or 900
    d.travel.min_km = d.travel.min_km or 100
    if d.travel.geoip ~= nil then
      local _, gerr = geo_db(d.travel.geoip, true)
      if gerr then return nil, "travel.geoip: " .. gerr end
    end
    d.travel.exclude = d.travel.exclude or {}
  end
  local known = { name = 1, severity = 1, on = 1, match = 1, match_fn = 1, repeated = 1, followed_by = 1, travel = 1,
                  alert = 1, actions = 1, mode = 1, description = 1, ops = 1, new_only = 1, dlp = 1 }
  for k in pairs(d) do
    if not known[k] then return nil, ("unknown field '%s'"):format(tostring(k)) end
  end
  d.id = name
  return d
end

-- policy.load(path) -> policy | nil, err
function M.load(path)
  local fh, ferr = io.open(path, "rb")
  if not fh then return nil, ferr end
  local text = fh:read("a")
  fh:close()
  local id = path:match("([^/]+)%.lua$") or path
  local v = vm.new { memory = M.MEMORY, instructions = M.INSTRUCTIONS, name = id }
  local ok, err = v:load(PRELUDE, "=prelude")
  if ok then ok, err = v:load(text, id .. ".lua") end
  if not ok then v:close(); return nil, ("%s: %s"):format(id, err) end
  local okd, d = v:call("__describe")
  if not okd then v:close(); return nil, ("%s: %s"):format(id, d) end
  local p, verr = validate(d, id)
  if not p then v:close(); return nil, ("%s: %s"):format(id, verr) end
  p.vm, p.path = v, path
  return p
end

-- Every policy shipped in policies/ and the operator's in $CACHOST_HOME/policies/, with their switches.
function M.load_all(st)
  local list, errors = {}, {}
  local switches = {}
  for _, r in ipairs(st.db:query("SELECT * FROM policies")) do switches[r.name] = r end
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

-- A table match as a function of the row, generated once per policy as one Lua function (this is the
-- hot path of evaluation): `{kind = "signin", action = {"a", "b"}}` becomes
-- `function(r) return r["kind"] == v1 and v2[r["action"]] == true end`, values and sets as upvalues.
local function compile(m)
  local args, tests = {}, {}
  for k, want in pairs(m or {}) do
    local i = #tests + 1
    if type(want) == "table" then
      local set = {}
      for _, w in ipairs(want) do set[w] = true end
      want = set
    end
    args[2 * i - 1], args[2 * i] = want, k
    local field = type(k) == "string" and ("r[%q]"):format(k) or ("r[k%d]"):format(i)
    tests[i] = type(want) == "table" and ("v%d[%s] == true"):format(i, field) or ("%s == v%d"):format(field, i)
  end
  if #tests == 0 then return function() return true end end
  if #tests > 50 then      -- past Lua's limits on locals: a loop over the tests
    return function(r)
      for i = 1, #tests do
        local want, v = args[2 * i - 1], r[args[2 * i]]
        if type(want) == "table" then if want[v] ~= true then return false end elseif v ~= want then return false end
      end
      return true
    end
  end
  local src = { "local a = ..." }
  for i = 1, #tests do src[#src + 1] = ("local v%d, k%d = a[%d], a[%d]"):format(i, i, 2 * i - 1, 2 * i) end
  src[#src + 1] = "return function(r) return " .. table.concat(tests, " and ") .. " end"
  return assert(load(table.concat(src, "\n"), "=match", "t", {}))(args)
end
M.compile = compile

-- Function matches run in the policy's own state, a batch of rows per call -> array of booleans, or
-- nil, err (the policy failed: budget, memory, runtime error).
local function match_in_vm(p, rows)
  local out = {}
  for first = 1, #rows, M.BATCH do
    local batch = table.move(rows, first, math.min(#rows, first + M.BATCH - 1), 1, {})
    local ok, res = p.vm:call("__match", batch)
    if not ok then return nil, res end
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
M.haversine_km = haversine_km

local function ipv4(s)
  local a, b, c, d = tostring(s or ""):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end
local function in_cidr(ip, cidr)
  local net, bits = cidr:match("^([%d%.]+)/(%d+)$")
  local a, n = ipv4(ip), ipv4(net or cidr)
  if not a or not n then return false end
  local shift = 32 - tonumber(bits or 32)
  return a >> shift == n >> shift
end
M.in_cidr = in_cidr

local State = {}
State.__index = State

-- Window state per (policy, instance, key): read from policy_state once, kept in memory for the life of
-- the process, and written back after each feed for the keys it changed.
local states = setmetatable({}, { __mode = "k" })     -- store -> instance id -> State
local function state_for(st, inst)
  local per = states[st] or {}
  states[st] = per
  per[inst.id] = per[inst.id] or setmetatable({ st = st, inst = inst, cache = {}, dirty = {} }, State)
  return per[inst.id]
end
-- The windows of one policy: wins[key] is the state of that key (read from policy_state on first use);
-- a step that changes it sets dirty[key] = true.  Plain tables, because steps run once per row.
function State:windows(policy)
  local wins = self.cache[policy]
  if not wins then
    local st, inst = self.st, self.inst
    wins = setmetatable({}, { __index = function(t, key)
      local r = st.db:query("SELECT data FROM policy_state WHERE policy = ? AND instance_id = ? AND key = ?",
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
-- Writing every window after every page would cost more than evaluating the page, so changes are
-- written at most every SAVE_EVERY seconds, and always by policy.flush() (end of a scan, stop).
local SAVE_EVERY = 2
function State:save(force)
  local pending = false
  for _, keys in pairs(self.dirty) do if next(keys) then pending = true; break end end
  if not pending or (not force and sched.now() - (self.saved_at or 0) < SAVE_EVERY) then return end
  local now = store.now()
  local ok, err = self.st:transaction(function()
    for policy, keys in pairs(self.dirty) do
      for key in pairs(keys) do
        keys[key] = nil          -- cleared in place: a feed paused in an action still holds this table
        assert(self.st.db:exec([[INSERT INTO policy_state (policy, instance_id, key, data, updated_at) VALUES (?, ?, ?, ?, ?)
          ON CONFLICT (policy, instance_id, key) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at]],
          policy, self.inst.id, key, json.encode(self.cache[policy][key]), now))
      end
    end
    return true
  end)
  if not ok then error(err, 0) end
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
local function repeated_step(p, wins, dirty, row, matched)
  local r = p.repeated
  local key = row[r.by]
  if type(key) ~= "string" then key = tostring(key or "?") end
  local w = wins[key]
  local times = w.times
  if not matched and (not times or #times < r.count) then return nil end   -- a follower of too few
  if not times then times = json.array {} end
  local t = row_time(row)
  -- drop what fell out of the window (in place: the oldest are first)
  local drop = 0
  while times[drop + 1] and t - times[drop + 1] > r.within do drop = drop + 1 end
  if drop > 0 then table.move(times, drop + 1, #times + drop, 1) end
  local fired
  if matched then
    times[#times + 1] = t
    if not p.follower and #times >= r.count then fired = { count = #times, key = key } end
  elseif #times >= r.count then
    fired = { count = #times, key = key, followed_by = row.ext_id }
  end
  if fired then times = json.array {} end
  if matched or fired or drop > 0 then w.times = times; dirty[key] = true end
  return fired
end

-- travel = {max_kmh, min_km, exclude = {cidr...}, geoip = path}: two sign-ins farther apart than a plane
-- can fly.  Where the location came from a database, its accuracy radii are taken off the distance (a
-- country-level record can be 1,000 km off): only travel that is impossible however wrong they are fires.
-- geo is the opened travel.geoip database, if any.
local function travel_step(p, wins, dirty, row, geo)
  local exclude = p.travel.exclude
  for i = 1, #exclude do if in_cidr(row.ip, exclude[i]) then return nil end end
  if (not row.lat or not row.lon) and not (geo and geo_fill(geo, row)) then return nil end
  local key = row.actor
  if type(key) ~= "string" then key = tostring(key or "?") end
  local t = row_time(row)
  local last = wins[key]
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
  dirty[key] = true
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
        seen[r.client_id] = st.db:query([[SELECT count(DISTINCT user_id) n FROM app_grants WHERE instance_id = ?
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
      local u = st.db:query([[SELECT ext_id, status, first_seen FROM users WHERE instance_id = ?
        AND (ext_id = ? OR lower(email) = lower(?)) LIMIT 1]], inst.id, who, r.actor or who)[1]
      if u then
        local ch = st.db:query([[SELECT max(time) t FROM changes WHERE instance_id = ? AND entity = 'users'
          AND ext_id = ? AND diff LIKE '%"status"%']], inst.id, u.ext_id)[1]
        known[who] = { status = u.status, since = util.parse_iso((ch and ch.t) or u.first_seen) or 0 }
      else
        known[who] = false
      end
    end
    local k = who and known[who]
    if k then r.actor_status = row_time(r) >= k.since and k.status or nil end
  end
end

---------------------------------------------------------------------------------------------- content

-- dlp = {detectors = {...}, custom = {{name=, pattern=, min=}}, min_counts = {...}, min = N, max_size = bytes}:
-- download the file through its connector and
-- scan it; the file row records the scan status.  -> evidence (masked samples only) or nil
local function dlp_step(st, inst, p, row, opts)
  local c = opts.ctx and opts.ctx.connector
  if not c or not c.content or row.is_folder == 1 or row.is_folder == true then return nil end
  local max = p.dlp.max_size or 50 * 1024 * 1024
  local ok, body, err = pcall(c.content, opts.ctx, row, max)
  local result
  if not ok or not body then
    local why = tostring(ok and err or body)
    result = { status = why:match("too_large") and "too_large" or "failed", reason = why }
  else
    result = dlp.scan_file(body, { name = row.name, mime = row.mime, max_size = max, detectors = p.dlp.detectors,
      custom = p.dlp.custom, min_counts = p.dlp.min_counts })
  end
  assert(st.db:exec("UPDATE files SET scan_status = ? WHERE instance_id = ? AND ext_id = ?", result.status, inst.id, row.ext_id))
  if result.status ~= "completed" then return nil end
  local total, found = 0, {}
  for kind, m in pairs(result.matches or {}) do
    total = total + m.count
    found[kind] = { count = m.count, samples = m.samples }
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
  local plans = {}
  local mode = opts.mode or p.mode
  for _, action in ipairs(p.actions) do
    if action ~= "alert" then
      local target = target_of(entity, action, row)
      if target then
        local rec, err = governance.act { store = st, instance = inst, action = action, target = target,
          policy = p.id, dry_run = mode ~= "enforce", params = { reason = title } }
        plans[#plans + 1] = { action = action, target = target, mode = rec and rec.mode or "error",
                              result = rec and rec.result or err, id = rec and rec.id }
      end
    end
  end
  evidence.actions = plans
  assert(st.db:exec([[INSERT INTO alerts (instance_id, ext_id, policy, severity, title, entity, entity_id, evidence,
      status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)
    ON CONFLICT (instance_id, ext_id) DO UPDATE SET updated_at = excluded.updated_at]],
    inst.id, key, p.id, p.severity, title, entity, row.ext_id, json.encode(evidence), now, now))
  if opts.on_alert then opts.on_alert { policy = p.id, severity = p.severity, title = title, entity = entity,
                                         entity_id = row.ext_id, evidence = evidence } end
end

-- A policy failed (error, budget, memory): disable it, say so with an alert, go on with the others.
local function disable(st, inst, p, err)
  p.enabled = false
  log.error("policy disabled", { policy = p.id, error = err })
  assert(st.db:exec([[INSERT INTO policies (name, enabled, status, last_error, updated_at) VALUES (?, 0, 'failed', ?, ?)
    ON CONFLICT (name) DO UPDATE SET enabled = 0, status = 'failed', last_error = excluded.last_error,
    updated_at = excluded.updated_at]], p.id, err, store.now()))
  governance.alert(st, inst, "cachost", "high", "policy " .. p.id .. " disabled: " .. err, "policy", p.id, { error = err })
end

-- One policy over rows of the feed; match(row, i) -> whether row i matches.  Returns the alert count.
-- The loops are apart per kind of policy: most rows match nothing, and that path must stay short.
function M.evaluate(st, inst, p, entity, rows, match, state, opts)
  local alerts = 0
  if p.repeated then
    local wins, dirty = state:windows(p.id)
    local follower = p.follower
    for i = 1, #rows do
      local row = rows[i]
      local hit = match(row, i)
      if hit or follower and follower(row) then
        local ev = repeated_step(p, wins, dirty, row, hit)
        if ev then fire(st, inst, p, entity, row, ev, opts); alerts = alerts + 1 end
      end
    end
  elseif p.travel then
    local wins, dirty = state:windows(p.id)
    local geo
    if p.travel.geoip then      -- opened at load; only a policy table changed since can fail here
      local err
      geo, err = geo_db(p.travel.geoip)
      if not geo then disable(st, inst, p, "travel.geoip: " .. err); return 0 end
    end
    for i = 1, #rows do
      local row = rows[i]
      if match(row, i) then
        local ev = travel_step(p, wins, dirty, row, geo)
        if ev then fire(st, inst, p, entity, row, ev, opts); alerts = alerts + 1 end
      end
    end
  else
    for i = 1, #rows do
      local row = rows[i]
      if match(row, i) then
        local ev = {}
        if p.dlp then ev = dlp_step(st, inst, p, row, opts) end
        if ev then fire(st, inst, p, entity, row, ev, opts); alerts = alerts + 1 end
      end
    end
  end
  return alerts
end

-- engine.feed(st, inst, entity, items, opts) evaluates every enabled policy on the change feed:
-- items = { {op = "added"|"changed"|"removed", row = {...}}, ... }.  opts.mode overrides every
-- policy's mode (policy test runs "audit"); opts.on_alert sees each alert; opts.ctx is the sync
-- context (content downloads); opts.first_scan skips new_only policies.  Returns the alert count.
function M.feed(st, inst, policies, entity, items, opts)
  opts = opts or {}
  local rows, ops_seen = {}, {}
  for _, it in ipairs(items) do
    local op = it.op
    if op ~= "removed" then rows[#rows + 1] = it.row; ops_seen[op] = true end
  end
  if #rows == 0 then return 0 end
  local state = state_for(st, inst)
  if entity == "users" then state.actors = nil end   -- statuses may have changed
  enrich(st, inst, entity, rows)     -- in place: the items see it too
  local alerts = 0
  for _, p in ipairs(policies) do
    if p.enabled ~= false and ON[p.on] == entity and not (p.new_only and opts.first_scan) then
      if not p.op_set then
        p.op_set = {}
        for _, o in ipairs(p.ops or (entity == "activities" and { "added" } or { "added", "changed" })) do p.op_set[o] = true end
        if not p.match_fn then p.matcher = compile(p.match) end
        if p.followed_by then p.follower = compile(p.followed_by) end
      end
      local mine, ops = rows, p.op_set
      for op in pairs(ops_seen) do
        if not ops[op] then       -- this policy skips some of these rows
          mine = {}
          for _, it in ipairs(items) do if ops[it.op] then mine[#mine + 1] = it.row end end
          break
        end
      end
      local match = p.matcher
      if p.match_fn then
        local hits, err = match_in_vm(p, mine)
        if hits then match = function(_, i) return hits[i] end else disable(st, inst, p, tostring(err)) end
      end
      if match then alerts = alerts + M.evaluate(st, inst, p, entity, mine, match, state, opts) end
    end
  end
  state:save()
  return alerts
end

return M
