-- policy/window.lua — what policies remember between rows: the windows of repeated (and followed_by)
-- and of travel, per (policy, instance, key), kept here and saved in policy_state so that they survive
-- a restart; and the steps that move them.
local enrich = require "policy.enrich"
local geo_fill, row_time = enrich.geo_fill, enrich.row_time

local M = {}
local move = table.move

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
function M.state_for(st, inst)
  local per = states[st] or {}
  states[st] = per
  per[inst.id] = per[inst.id] or setmetatable({ st = st, inst = inst, cache = {}, dirty = {}, armed_keys = {}, done = {} }, State)
  return per[inst.id]
end
-- A state that reads and writes nothing (cachost policy test): windows start empty and live in memory.
function M.scratch_state(st, inst)
  return setmetatable({ st = st, inst = inst, cache = {}, dirty = {}, armed_keys = {}, done = {}, scratch = true }, State)
end
-- The windows of one policy: wins[key] is the state of that key, a plain table, because steps run once
-- per row; a step that changes it sets dirty[key] = true.  A key that wins does not hold (not read yet,
-- or not a string) goes through open(key) -> the key as a string, its window (read from policy_state on
-- first use).
function State:windows(policy)
  local wins = self.cache[policy]
  if not wins then wins = {}; self.cache[policy] = wins end
  local st, inst, scratch = self.st, self.inst, self.scratch
  local function open(key)
    if type(key) ~= "string" then key = tostring(key or "?") end
    local w = wins[key]
    if not w then
      w = not scratch and st:policy_window(policy, inst.id, key) or {}
      wins[key] = w
    end
    return key, w
  end
  local dirty = self.dirty[policy]
  if not dirty then dirty = {}; self.dirty[policy] = dirty end
  return wins, dirty, open
end
-- The keys of a followed_by policy whose window may hold enough matches for a follower to fire: every
-- key stored before this process read them, then exactly what repeated_step leaves.  The scan skips
-- the followers of other keys without a step (most sign-ins follow no failures).
function State:armed(policy)
  local armed = self.armed_keys[policy]
  if not armed and self.scratch then armed = {}; self.armed_keys[policy] = armed end
  if not armed then
    armed = {}
    for _, key in ipairs(self.st:policy_window_keys(policy, self.inst.id)) do armed[key] = true end
    self.armed_keys[policy] = armed
  end
  return armed
end
-- Writing every window after every page would cost more than evaluating the page, so changes are
-- written at most every SAVE_EVERY seconds, and always by policy.flush() (end of a scan, stop).  The
-- notes of the pages evaluated since (self.done, see policy.note) are deleted in the same transaction: after a
-- crash, the pages still noted are exactly those whose effects on the windows were not saved.
local SAVE_EVERY = 2
function State:save(force)
  if self.scratch then return end
  local pending = next(self.done) ~= nil
  for _, keys in pairs(self.dirty) do if next(keys) then pending = true; break end end
  if not pending or (not force and sched.now() - (self.saved_at or 0) < SAVE_EVERY) then return end
  local done, windows = {}, {}
  for id in pairs(self.done) do done[#done + 1] = id end
  for policy, keys in pairs(self.dirty) do
    local wins = self.cache[policy]
    for key in pairs(keys) do
      keys[key] = nil          -- cleared in place: a feed paused in an action still holds this table
      windows[#windows + 1] = { policy = policy, key = key, data = wins[key] }
    end
  end
  -- The write may wait for another task's transaction, and a feed may move these windows meanwhile: it
  -- marks them dirty again.  A failed write (a full disk) leaves them all to the next save.
  local ok, err = pcall(self.st.save_policy_state, self.st, self.inst.id, done, windows)
  for _, w in ipairs(windows) do
    local wins = self.cache[w.policy]
    local v = wins[w.key]
    if not ok then self.dirty[w.policy][w.key] = true
    elseif v == nil or next(v) == nil then
      wins[w.key] = nil    -- an empty window: no row, and no memory (a key seen once must not stay)
    end
  end
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

-- The steps below are made once per policy and batch (policy.feed's stepper), with what they read on
-- every row (the policy's parameters, its windows) in upvalues: they run once per matching row.

-- repeated = {count, within, by}, optional followed_by: N matches within the window (then a follower).
-- -> step(row, matched) -> the evidence when the policy fires on this row, else nil.
-- Called for the rows that match and, with followed_by, for the followers.
function M.repeated_step(p, run)
  local r = p.repeated
  local by, count, within, follows = r.by, r.count, r.within, p.followed_by ~= nil
  local wins, dirty, open, armed = run.wins, run.dirty, run.open, run.armed
  return function(row, matched)
    local key = row[by]
    local w = wins[key]
    if not w then key, w = open(key) end
    local times = w.times
    if not matched and (not times or #times < count) then return nil end   -- a follower of too few
    if not times then times = json.array {} end
    local t = row._t or row_time(row)
    -- drop what fell out of the window (in place: the oldest are first)
    local n, drop = #times, 0
    while drop < n and t - times[drop + 1] > within do drop = drop + 1 end
    if drop > 0 then move(times, drop + 1, n + drop, 1); n = n - drop end
    local fired
    if matched then
      n = n + 1
      times[n] = t
      if not follows and n >= count then fired = { count = n, key = key } end
    elseif n >= count then
      fired = { count = n, key = key, followed_by = row.ext_id }
    end
    if fired or n == 0 then times = nil end      -- an empty window is forgotten at the next save
    if matched or fired or drop > 0 then w.times = times; dirty[key] = true end
    if armed then armed[key] = times and n >= count or nil end
    return fired
  end
end

-- travel = {max_kmh, min_km, exclude = {cidr...}, geoip = path}: two sign-ins farther apart than a plane
-- can fly.  Where the location came from a database, its accuracy radii are taken off the distance (a
-- country-level record can be 1,000 km off): only travel that is impossible however wrong they are fires.
-- run.geo is the opened travel.geoip database, if any.  -> step(row) -> the evidence, or nil.
function M.travel_step(p, run)
  local exclude, min_km, max_kmh = p.travel.exclude, p.travel.min_km, p.travel.max_kmh
  local geo, wins, dirty, open = run.geo, run.wins, run.dirty, run.open
  local ip_in = host.ip_in
  return function(row)
    for i = 1, #exclude do if ip_in(row.ip, exclude[i]) then return nil end end
    local lat, lon = row.lat, row.lon
    if not lat or not lon then
      if not (geo and geo_fill(geo, row)) then return nil end
      lat, lon = row.lat, row.lon
    end
    local key = row.actor
    local last = wins[key]
    if not last then key, last = open(key) end
    local t = row._t or row_time(row)
    local accuracy, location, ip = row.accuracy_km, row.location, row.ip
    local ev
    local llat, llon = last.lat, last.lon
    if llat ~= lat or llon ~= lon then        -- moved, or the first sign-in of its key
      if llat then
        local km = haversine_km(llat, llon, lat, lon)
        local least = km - (last.accuracy_km or 0) - (accuracy or 0)
        local hours = math.max(math.abs(t - last.t), 60) / 3600
        if least >= min_km and least / hours > max_kmh then
          ev = { km = math.floor(km), kmh = math.floor(km / hours), from = last.location, to = location,
                 from_ip = last.ip, to_ip = ip }
        end
      end
      last.lat, last.lon = lat, lon
    end
    -- the others written where they differ (setting a field that is absent to nil is a slow path)
    last.t = t
    if last.accuracy_km ~= accuracy then last.accuracy_km = accuracy end
    if last.location ~= location then last.location = location end
    if last.ip ~= ip then last.ip = ip end
    dirty[key] = true
    return ev
  end
end

return M
