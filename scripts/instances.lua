-- instances.lua — app instances: one connected tenant of one app (two Salesforce orgs are two instances).
--
-- Settings are validated against what the connector declares (c.settings: {name, required=, secret=,
-- type = "string"|"integer"|"number"|"boolean", example=, help=}).  Secret settings go to the vault, the
-- rest to instances.settings (JSON).  Apps declaring single_instance = true (Azure, Office 365) get one.
--
--   local inst = require "instances"
--   inst.add(st, app, name, {key = "value"}, {ask = function(setting) -> value | nil}) -> row | nil, err
--   inst.get(st, name) ; inst.list(st) ; inst.show(st, name) ; inst.edit(st, name, values)
--   inst.rename(st, old, new) ; inst.set_enabled(st, name, bool) ; inst.remove(st, name, {purge = bool})
--   inst.secret(st, instance_row, name) -> plaintext (for the instance's own connector only)
local store = require "store"
local vault = require "store.vault"
local Client = require "sdk.client"

local M = {}

-- Apps that allow one instance each even if their connector file forgets to say so.
local SINGLE = { azure = true, office365 = true }

-- Built-in connectors to exercise instances without a real app (and in tests).
M.builtin = {
  test = { app = "test", title = "Test app (built in)", settings = {
    { "domain", required = true, example = "test.example.com", help = "tenant domain" },
    { "api_token", secret = true, required = true, help = "API token" },
    { "page_size", type = "integer", help = "items per page" },
    { "verbose", type = "boolean" },
  } },
  ["test-single"] = { app = "test-single", title = "Test app, one instance only (built in)", single_instance = true,
    settings = { { "tenant_id", required = true }, { "client_secret", secret = true, required = true } } },
}

local resolver
-- instances.connectors(fn): fn(app) -> connector declaration | nil, err (default: the SDK, then built-ins).
function M.connectors(fn) resolver = fn end

function M.connector(app)
  if resolver then return resolver(app) end
  if M.builtin[app] then return M.builtin[app] end
  local ok, sdk = pcall(require, "sdk")
  if ok and type(sdk) == "table" and sdk.load then
    local c, err = sdk.load(app)
    if c then return c end
    return nil, err
  end
  return nil, "unknown app '" .. tostring(app) .. "'"
end

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

function M.get(st, name)
  return st.db:query("SELECT * FROM instances WHERE name = ? AND removed_at IS NULL", name)[1]
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

function M.vault(st)
  if not st._vault then
    local v, err = vault.open(st)
    if not v then return nil, err end
    st._vault = v
  end
  return st._vault
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
    local v, err = M.vault(st)
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
  if c.single_instance or SINGLE[app] then
    local other = st.db:query("SELECT name FROM instances WHERE app = ? AND removed_at IS NULL", app)[1]
    if other then
      return nil, ("%s allows a single instance, and '%s' already is one"):format(c.title or app, other.name)
    end
  end
  local settings, secrets = resolve(c, values or {}, opts.ask)
  if not settings then return nil, secrets end
  local v, verr = accept(st, c, settings, secrets)
  if verr then return nil, verr end
  local id, err = st:transaction(function()
    local now = store.now()
    assert(st.db:exec([[INSERT INTO instances (app, name, settings, status, enabled, created_at, updated_at)
      VALUES (?, ?, ?, 'new', 1, ?, ?)]], app, name, json.encode(settings), now, now))
    local iid = st.db:last_insert_rowid()
    for k, sv in pairs(secrets) do assert(v:put(iid, k, sv)) end
    return iid
  end)
  if not id then return nil, err end
  return M.get(st, name)
end

-- Instances with their last scan and entity counts (no secret ever).
function M.list(st)
  return st.db:query([[
    SELECT i.id, i.name, i.app, CASE WHEN i.enabled THEN i.status ELSE 'disabled' END AS status, i.enabled,
      (SELECT max(last_success) FROM stream_state s WHERE s.instance_id = i.id) AS last_scan,
      (SELECT count(*) FROM users u WHERE u.instance_id = i.id AND u.deleted_at IS NULL) AS users,
      (SELECT count(*) FROM activities a WHERE a.instance_id = i.id) AS activities,
      (SELECT count(*) FROM files f WHERE f.instance_id = i.id AND f.deleted_at IS NULL) AS files
    FROM instances i WHERE i.removed_at IS NULL ORDER BY i.name]])
end

-- One instance for display: settings, secrets as ********, streams.
function M.show(st, name)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local out = { id = r.id, name = r.name, app = r.app, status = r.enabled == 1 and r.status or "disabled",
                enabled = r.enabled == 1, created_at = r.created_at, updated_at = r.updated_at }
  out.settings = json.decode(r.settings) or {}
  for s in st.db:rows("SELECT name FROM secrets WHERE instance_id = ? ORDER BY name", r.id) do
    out.settings[s.name] = vault.MASK
  end
  out.streams = st.db:query("SELECT stream, watermark, last_success, last_error, counts FROM stream_state "
    .. "WHERE instance_id = ? ORDER BY stream", r.id)
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
    assert(st.db:exec("UPDATE instances SET settings = ?, updated_at = ? WHERE id = ?", json.encode(merged), store.now(), r.id))
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
  local ok2, uerr = st.db:exec("UPDATE instances SET name = ?, updated_at = ? WHERE id = ?", new, store.now(), r.id)
  if not ok2 then return nil, uerr end
  return M.get(st, new)
end

-- Disabled instances are not scanned; their data and credentials stay.
function M.set_enabled(st, name, on)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local ok, uerr = st.db:exec("UPDATE instances SET enabled = ?, updated_at = ? WHERE id = ?", on, store.now(), r.id)
  if not ok then return nil, uerr end
  return M.get(st, name)
end

-- Removes an instance: its credentials go at once; its data stays (queryable by instance_id, the name is
-- free again) unless purge, which deletes every row it owns (foreign keys cascade).
function M.remove(st, name, opts)
  local r, err = must_get(st, name)
  if not r then return nil, err end
  local ok, terr = st:transaction(function()
    if opts and opts.purge then
      assert(st.db:exec("DELETE FROM instances WHERE id = ?", r.id))
    else
      assert(st.db:exec("DELETE FROM secrets WHERE instance_id = ?", r.id))
      assert(st.db:exec("UPDATE instances SET removed_at = ?, enabled = 0, updated_at = ? WHERE id = ?",
        store.now(), store.now(), r.id))
    end
  end)
  if not ok then return nil, terr end
  return r
end

-- The settings of an instance for its connector, secrets decrypted (and registered with log.redact).
function M.settings(st, row)
  local s = json.decode(row.settings) or {}
  local names = st.db:query("SELECT name FROM secrets WHERE instance_id = ?", row.id)
  if #names > 0 then
    local v, err = M.vault(st)
    if not v then return nil, err end
    for _, n in ipairs(names) do
      local p, perr = v:get(row.id, n.name)
      if not p then return nil, perr end
      s[n.name] = p
    end
  end
  return s
end

return M
