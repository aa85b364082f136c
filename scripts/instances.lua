-- instances.lua — app instances: one connected tenant of one app (two Salesforce orgs are two instances).
--
-- Settings are validated against what the connector declares (c.settings: {name, required=, secret=,
-- type = "string"|"integer"|"number"|"boolean", example=, help=}).  Secret settings go to the vault, the
-- rest to instances.settings (JSON).  Apps whose connector declares single_instance = true (Azure,
-- Office 365) get one.  The rows are the store's (store/instances.lua); what is valid is decided here.
--
--   local instances = require "instances"
--   instances.add(st, app, name, {key = "value"}, {ask = function(setting) -> value | nil}) -> row | nil, err
--   instances.get(st, name) ; instances.list(st) ; instances.show(st, name) ; instances.edit(st, name, values)
--   instances.rename(st, old, new) ; instances.set_enabled(st, name, bool) ; instances.remove(st, name, {purge = bool})
--   instances.settings(st, row) -> settings with secrets decrypted (for the instance's own connector only)
--
-- An instance as the runtime, the sync engine and sdk.auth see it (settings decoded, secrets through the vault):
--   instances.instance(st, name_or_id) -> inst | nil, err ; instances.all(st, {enabled = bool}) -> {inst...}
--   inst.id, inst.name, inst.app, inst.settings, inst.enabled, inst.row
--   inst:secret(name) ; inst:set_secret(name, value) ; inst:set_granted(scope) ; inst:set_status(status)
--   inst:scanned()
local store = require "store"
local vault = require "store.vault"
local Client = require "sdk.client"

local M = {}

function M.connector(app) return require("sdk").load(app) end

local function setting_names(c)
  local n = {}
  for _, s in ipairs(c.settings or {}) do n[#n + 1] = s[1] end
  return table.concat(n, ", ")
end

local function find_setting(c, key)
  for _, s in ipairs(c.settings or {}) do if s[1] == key then return s end end
end
M.find_setting = find_setting

-- A value from the command line / prompt converted to the declared type, or nil, err naming it.
function M.coerce(s, v)
  local name, ty = s[1], s.type or "string"
  if type(v) ~= "string" then v = tostring(v) end
  if ty == "integer" then
    local n = math.tointeger(tonumber(v))
    if not n or not v:match("^%s*[-+]?%d+%s*$") then return nil, ("setting '%s' must be an integer, not '%s'"):format(name, v) end
    return n
  elseif ty == "number" then
    local n = tonumber(v)
    if not n then return nil, ("setting '%s' must be a number, not '%s'"):format(name, v) end
    return n
  elseif ty == "boolean" then
    local l = v:lower()
    if l == "true" or l == "yes" or l == "1" or l == "on" then return true end
    if l == "false" or l == "no" or l == "0" or l == "off" then return false end
    return nil, ("setting '%s' must be true or false, not '%s'"):format(name, v)
  end
  if s.secret and v == "" then return nil, ("setting '%s' must not be empty"):format(name) end
  return v
end

local NAME_PAT = "^[%w][%w._-]*$"
local function check_name(name)
  if type(name) ~= "string" or #name > 64 or not name:match(NAME_PAT) then
    return nil, ("invalid instance name '%s': use letters, digits, '.', '_' and '-' (at most 64)"):format(tostring(name))
  end
  return true
end

-- The live instance row named `name` | nil.
function M.get(st, name)
  if type(name) ~= "string" then return nil end
  return st:instance_row(name)
end

local function must_get(st, name)
  local r = M.get(st, name)
  if not r then return nil, ("no instance named '%s'"):format(tostring(name)) end
  return r
end

-- Validates values (strings) against c, asking for missing required ones.  Returns settings, secrets.
local function resolve(c, values, ask, existing)
  local settings, secrets = {}, {}
  for k in pairs(values) do
    if not find_setting(c, k) then
      return nil, ("unknown setting '%s' for app %s (settings: %s)"):format(k, c.app, setting_names(c))
    end
  end
  for _, s in ipairs(c.settings or {}) do
    local k = s[1]
    local v = values[k]
    if v == nil and not existing and ask then v = ask(s) end
    if v ~= nil then
      local cv, err = M.coerce(s, v)
      if cv == nil then return nil, err end
      if s.secret then secrets[k] = cv else settings[k] = cv end
    elseif s.required and not existing then
      return nil, ("missing setting '%s' for app %s%s"):format(k, c.app, s.secret and " (secret)" or "")
    end
  end
  return settings, secrets
end

-- The last checks before settings are stored: the connector's own (what types cannot say, e.g. Office
-- 365's components), and a usable vault when there are secrets.  -> vault or nil | nil, err
local function accept(st, c, settings, secrets)
  -- the instance's URLs carry its credentials: TLS, or plain http to a loopback sandbox it names
  -- insecure_loopback for (sdk.client checks every request the same way)
  for k, v in pairs(settings) do
    if (k == "base_url" or k:match("_base_url$")) and type(v) == "string" and v ~= "" then
      local ok, err = Client.check_transport(v, settings.insecure_loopback == true)
      if not ok then return nil, ("setting '%s': %s"):format(k, err) end
    end
  end
  if c.validate then
    local ok, err = c.validate(settings)
    if not ok then return nil, err end
  end
  if next(secrets) then
    local v, err = st:vault()
    if not v then return nil, err end
    return v
  end
  return nil
end

function M.add(st, app, name, values, opts)
  opts = opts or {}
  local c, cerr = M.connector(app)
  if not c then return nil, cerr end
  local ok, nerr = check_name(name)
  if not ok then return nil, nerr end
  if M.get(st, name) then return nil, ("an instance named '%s' already exists"):format(name) end
  if c.single_instance then
    local other = st:instance_rows({ app = app })[1]
    if other then
      return nil, ("%s allows a single instance, and '%s' already is one"):format(c.title or app, other.name)
    end
  end
  local settings, secrets = resolve(c, values or {}, opts.ask)
  if not settings then return nil, secrets end
  local v, verr = accept(st, c, settings, secrets)
  if verr then return nil, verr end
  local id, err = st:transaction(function()
    local iid = st:add_instance(app, name, json.encode(settings))
    for k, sv in pairs(secrets) do assert(v:put(iid, k, sv)) end
    return iid
  end)
  if not id then return nil, err end
  return M.get(st, name)
end

-- Instances with their last scan and entity counts (no secret ever).
function M.list(st) return st:instance_summaries() end

-- One instance for display: settings, secrets as ********, streams.
function M.show(st, name)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local out = { id = r.id, name = r.name, app = r.app, status = r.enabled == 1 and r.status or "disabled",
                enabled = r.enabled == 1, created_at = r.created_at, updated_at = r.updated_at }
  out.settings = json.decode(r.settings) or {}
  for _, name in ipairs(st:secret_names(r.id)) do out.settings[name] = vault.MASK end
  out.streams = {}
  for i, s in ipairs(st:stream_states(r.id)) do
    out.streams[i] = { stream = s.stream, watermark = s.watermark, last_success = s.last_success,
                       last_error = s.last_error, counts = s.counts }
  end
  return out
end

function M.edit(st, name, values)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local c, cerr = M.connector(r.app)
  if not c then return nil, cerr end
  local settings, secrets = resolve(c, values or {}, nil, true)
  if not settings then return nil, secrets end
  local merged = json.decode(r.settings) or {}
  for k, v in pairs(settings) do merged[k] = v end
  local v, verr = accept(st, c, merged, secrets)
  if verr then return nil, verr end
  local ok, terr = st:transaction(function()
    st:update_instance(r.id, { settings = json.encode(merged), updated_at = store.now() })
    for k, sv in pairs(secrets) do assert(v:put(r.id, k, sv)) end
  end)
  if not ok then return nil, terr end
  return M.get(st, name)
end

function M.rename(st, old, new)
  local r, err = must_get(st, old)
  if not r then return nil, err end
  local ok, nerr = check_name(new)
  if not ok then return nil, nerr end
  if M.get(st, new) then return nil, ("an instance named '%s' already exists"):format(new) end
  local ok2, uerr = pcall(st.update_instance, st, r.id, { name = new, updated_at = store.now() })
  if not ok2 then return nil, uerr end
  return M.get(st, new)
end

-- Disabled instances are not scanned; their data and credentials stay.
function M.set_enabled(st, name, on)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local ok, uerr = pcall(st.update_instance, st, r.id, { enabled = on, updated_at = store.now() })
  if not ok then return nil, uerr end
  return M.get(st, name)
end

-- Removes an instance: its credentials go at once; its data stays (queryable by instance_id, the name is
-- free again) unless purge, which deletes every row it owns (foreign keys cascade).
function M.remove(st, name, opts)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local ok, terr = st:transaction(function() st:remove_instance(r.id, opts and opts.purge) end)
  if not ok then return nil, terr end
  return r
end

-- The settings of an instance for its connector, secrets decrypted (and registered with log.redact).
function M.settings(st, row)
  local s = json.decode(row.settings) or {}
  local names = st:secret_names(row.id)
  if #names > 0 then
    local v, err = st:vault()
    if not v then return nil, err end
    for _, n in ipairs(names) do
      local p, perr = v:get(row.id, n)
      if not p then return nil, perr end
      s[n] = p
    end
  end
  return s
end

---------------------------------------------------------------------------------------------- Instance

local Instance = {}
Instance.__index = Instance

-- inst:secret(name) -> plaintext | nil, err ("missing: ..." when not set; "key: ..." / "auth: ..." when it
-- is set but does not open: a wrong master key or a tampered vault, never reported as merely unset)
function Instance:secret(name)
  local v, verr = self.st:vault()
  if not v then return nil, verr end
  local plain, err = v:get(self.id, name)
  if plain then log.redact(plain) end
  return plain, err
end

function Instance:set_secret(name, value)
  log.redact(value)
  assert(assert(self.st:vault()):put(self.id, name, value))
end

-- inst:exclusive(name, fn) -> fn()'s results, fn run while this process holds the store's lock on this
-- instance's `name` (held as workers.id()): the processes sharing the store (the daemon, `cachost act`, other workers) take
-- turns.  A holder that died frees it after LOCK_TTL seconds; a wait longer than that gives up.
local LOCK_TTL = 60
function Instance:exclusive(name, fn)
  local key, holder, deadline = self.id .. ":" .. name, require("workers").id(), sched.now() + LOCK_TTL
  while not self.st:take_lock(key, holder, LOCK_TTL) do
    if sched.now() > deadline then
      return nil, ("lock: %s of %s still held by another process after %d s"):format(name, self.name, LOCK_TTL), "unavailable"
    end
    sched.sleep(0.1)
  end
  local res = table.pack(pcall(fn))
  self.st:drop_lock(key, holder)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- What the provider says it granted (OAuth scopes), kept with the instance.
function Instance:set_granted(scope)
  local comp = json.decode(self.row.components or "null")
  if type(comp) ~= "table" then comp = {} end
  comp.granted = scope
  self.row.components = json.encode(comp)
  self.st:update_instance(self.id, { components = self.row.components })
end

function Instance:set_status(status)
  self.st:update_instance(self.id, { status = status, updated_at = store.now() })
end

-- A scan of every stream went through (instances.last_scan).
function Instance:scanned()
  self.st:update_instance(self.id, { last_scan = store.now() })
end

-- instances.wrap(st, row) -> inst: the row as the runtime and connectors see it.
function M.wrap(st, row)
  local settings = json.decode(row.settings or "{}") or {}
  return setmetatable({ st = st, id = row.id, name = row.name, app = row.app, settings = settings, row = row,
                        enabled = row.enabled == 1 }, Instance)
end

-- instances.instance(st, name or id) -> inst | nil, err (naming the instances there are)
function M.instance(st, key)
  local row = st:instance_row(key)
  if row then return M.wrap(st, row) end
  if math.type(key) == "integer" then return nil, ("no instance with id %d"):format(key) end
  local names = {}
  for _, r in ipairs(st:instance_rows()) do names[#names + 1] = r.name end
  local hint = require("format").did_you_mean(tostring(key), names)
  return nil, ("no instance named '%s'%s (cachost instance list)"):format(tostring(key), hint)
end

-- instances.all(st, {enabled = true}) -> every live instance (or the enabled ones), by name
function M.all(st, opts)
  local list = {}
  for _, r in ipairs(st:instance_rows({ enabled = opts and opts.enabled })) do list[#list + 1] = M.wrap(st, r) end
  return list
end

return M
