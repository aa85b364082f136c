-- policy/load.lua — loading a policy file confined, and checking what it declares.
--
-- A policy is a Lua file returning policy{...} (see policies/*.lua).  It is loaded in its own Lua state
-- (the `vm` module: a hard memory cap and an instruction budget), so a broken, runaway or hostile policy
-- is disabled with an alert and never stops the others.  Only what is data leaves that state; a `match`
-- function is called there on batches of rows (policy.match), which are copied in.
local governance = require "governance"
local dlp = require "dlp"
local L = require "policy.limits"
local enrich = require "policy.enrich"

local M = {}

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

local SEVERITIES = { low = true, medium = true, high = true, critical = true }

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

-- The fields a row of an entity has: its columns, and what the engine adds before policies see it
-- (policy/enrich.lua, policy/people.lua).
local ROW_FIELDS = { "id", "instance_id", "ext_id", "raw", "first_seen", "last_seen", "deleted_at", "recorded_at" }
local ENRICHED = { activities = { "actor_status", "accuracy_km" }, app_grants = { "app_users" },
                   users = { "person", "departed", "departed_via" } }
local function fields_of(entity)
  local schema = require "store.schema"
  local e = schema.entities[entity]
  if not e then return nil end
  local set, list = {}, {}
  for _, l in ipairs { e.columns, ROW_FIELDS, ENRICHED[entity] or {} } do
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
    elseif #d.alert > L.ALERT_MAX then bad("alert", "longer than %d characters (%d)", L.ALERT_MAX, #d.alert) end
  end
  if d.new_only ~= nil and type(d.new_only) ~= "boolean" then bad("new_only", "must be true or false, got %s", got(d.new_only)) end
  d.actions = d.actions or { "alert" }
  if not is_list(d.actions) then bad("actions", "must be a list of action names, got %s", got(d.actions))
  else
    for _, a in ipairs(d.actions) do
      if a ~= "alert" and not governance.ENTITY[a] then bad("actions", "unknown action '%s'", tostring(a)) end
    end
  end
  if d.group_by ~= nil then
    local known = fields_of(ON[d.on] or "")
    if type(d.group_by) ~= "string" then bad("group_by", "must be the name of a row field, got %s", got(d.group_by))
    elseif known and not known[d.group_by] then bad("group_by", "rows of %s have no field '%s'", ON[d.on], d.group_by) end
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
      if math.type(r.count) ~= "integer" or r.count < 1 or r.count > L.MAX_COUNT then
        bad("repeated.count", "must be a whole number from 1 to %d, got %s", L.MAX_COUNT, got(r.count))
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
        local _, gerr = enrich.geo_db(t.geoip, true)
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
    if check_fields(x, "dlp", { detectors = 1, custom = 1, min_counts = 1, min = 1, max_size = 1, grants = 1 }, bad) then
      local perr = dlp.check_options(x)
      -- grants = DETECTOR: what it finds is looked up among the app grants cachost knows (see dlp_step)
      if x.grants ~= nil then
        local ok = false
        for _, dname in ipairs(type(x.detectors) == "table" and x.detectors or dlp.TYPES) do ok = ok or dname == x.grants end
        if not ok then bad("dlp.grants", "must name one of the policy's detectors, got %s", got(x.grants)) end
      end
      for _, e in ipairs(perr) do bad("dlp." .. e[1], "%s", e[2]) end
      if x.min ~= nil and (math.type(x.min) ~= "integer" or x.min < 1) then bad("dlp.min", "must be a whole number of at least 1, got %s", got(x.min)) end
      if x.max_size ~= nil and (math.type(x.max_size) ~= "integer" or x.max_size < 1) then bad("dlp.max_size", "must be a positive number of bytes, got %s", got(x.max_size)) end
    else
      bad("dlp", "must be a table {detectors =, custom =, min_counts =, min =, max_size =, grants =}, got %s", got(x))
    end
  end
  local known = { name = 1, severity = 1, on = 1, match = 1, match_fn = 1, repeated = 1, followed_by = 1, travel = 1,
                  alert = 1, actions = 1, mode = 1, description = 1, ops = 1, new_only = 1, dlp = 1, group_by = 1 }
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
  local v = vm.new { memory = L.MEMORY, instructions = L.INSTRUCTIONS, seconds = L.SECONDS, name = id }
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
  local switches = st:policy_switches()
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

return M
