-- policy/enrich.lua — what policies see beyond the row itself: its time, coordinates from a GeoIP
-- database (travel), the actor's account status, how many users granted an app.
local L = require "policy.limits"
local util = require "sdk.util"

local M = {}

-- travel.geoip = path of a MaxMind DB (GeoLite2-City): where a sign-in has an ip but no coordinates,
-- they come from there.  Each file is opened once (memory-mapped) and kept; loading the policies again
-- reopens it only if it changed on disk (GeoIP updates replace the file).
local geo_dbs = {}      -- path -> {db =, stamp =}
function M.geo_db(path, check)
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
function M.geo_fill(db, row)
  if not row.ip then return false end
  local g = db:lookup(row.ip)
  if not g or not g.lat or not g.lon then return false end
  row.lat, row.lon, row.accuracy_km = g.lat, g.lon, g.accuracy_km
  if row.location == nil then row.location = g.city and g.country and g.city .. ", " .. g.country or g.city or g.country end
  return true
end

-- The row's time in seconds (its time field, else now), kept in row._t.
function M.row_time(row)
  local t = row._t
  if not t then t = util.parse_iso(row.time) or sched.time(); row._t = t end
  return t
end

-- What policies may look at beyond the row itself, filled in place: the actor's account status for
-- activities, and for app grants how many users of the instance have granted that app anything (a rarely
-- seen app).  state: the instance's window state (policy.window), where the actors' statuses are cached.
function M.rows(st, inst, entity, rows, state)
  if entity == "app_grants" then
    local seen = {}
    for _, r in ipairs(rows) do
      if r.client_id and seen[r.client_id] == nil then
        seen[r.client_id] = st:app_users(inst.id, r.client_id)
      end
      r.app_users = seen[r.client_id]
    end
    return
  end
  if entity ~= "activities" then return end
  -- actor_status is the account's status when the event happened, as far as cachost knows: the current
  -- status counts from when cachost saw it (its last change, else when the account was first seen), so
  -- history from before a suspension is not taken for activity after it.  Cached per instance until
  -- the users of that instance change (policy.feed of "users" clears it).
  local known = state.actors
  if not known then known = {}; state.actors = known end
  local parse = util.parse_iso
  for i = 1, #rows do
    local r = rows[i]
    local who = r.actor_id or r.actor
    if who then
      local k = known[who]
      if k == nil then
        local a = st:actor_status(inst.id, who, r.actor or who)
        k = a and { status = a.status, since = parse(a.since) or 0 } or false
        known[who] = k
      end
      if k then
        local t = r._t          -- row_time, inline: this runs on every row of the feed
        if not t then t = parse(r.time) or sched.time(); r._t = t end
        r.actor_status = t >= k.since and k.status or nil
      end
    end
  end
end

return M
