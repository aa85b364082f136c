-- sdk.lua — what a connector is, and how connectors are found and loaded.
--
-- A connector is one file connectors/<app>.lua, confined (scripts/env.lua), that declares its app and
-- returns a table made by connector(app).  It may only declare while loading; its functions run later,
-- inside tasks, with a ctx (scripts/sdk/context.lua) as their first argument.
local env = require "env"
local util = require "sdk.util"

local M = {}

local CAPABILITIES = { "users", "groups", "privileges", "activities", "files", "app_grants" }
M.CAPABILITIES = CAPABILITIES
-- The actions a connector may offer, by what they act on (an account: a users row; an app permission:
-- an app_grants row).  unlock_user: a user locked out (failed sign-ins) may sign in again;
-- deactivate_user: the account is deprovisioned (destructive: the provider may drop its app assignments
-- and data); reset_mfa: every MFA enrolment of the user is reset; remove_admin_role: the admin roles
-- assigned to the user themselves are removed (params.role: only that one); revoke_token: an API token
-- or other credential listed as an app grant is revoked.
M.ACTIONS = {
  account = { "suspend_user", "unsuspend_user", "expire_password", "reset_password", "revoke_sessions",
              "remove_member", "unlock_user", "deactivate_user", "reset_mfa", "remove_admin_role" },
  data = { "quarantine_file", "unquarantine_file", "remove_collaborator", "remove_shared_link",
           "make_private", "trash_file", "overwrite_file" },
  app_permission = { "revoke_grant", "revoke_token" },
}

local function connector(app)
  if type(app) ~= "string" or not app:match("^[%w_%-]+$") then error("connector: bad app id", 2) end
  return {
    app = app, title = app, settings = {}, capabilities = {}, streams = {}, actions = {}, fetch = {},
    single_instance = false,
    -- defaults every connector may override
    page_size = 200,
  }
end

-- The globals a connector file sees, besides the safe base (env.lua).
-- A provider spread over several hosts (Microsoft: login, Graph, manage.office.com): the real host, unless
-- the instance's base_url points at a sandbox tenant, which serves them all.
local function provider_host(settings, real)
  local b = settings.base_url
  if type(b) == "string" and b ~= "" then return util.trim_slash(b) end
  return real
end

-- fail(message, token): raises a connector's operational failure, e.g. fail("needs GitHub Enterprise
-- Cloud", "unavailable"), or one ctx:try returned (fail(err, token)); the engine reads the token (the
-- stream's health), the message ("token: ..." as shown) is the user's.
local function fail(message, token)
  if type(token) ~= "string" then error("fail: token must be a string", 2) end
  message = tostring(message)
  if message:sub(1, #token + 1) ~= token .. ":" then message = token .. ": " .. message end
  error(util.failure(message, token), 0)
end

local provider
local function connector_env()
  return env.new {
    connector = connector, json = json, crypto = crypto, log = log, sched = sched,
    iso = util.iso, parse_iso = util.parse_iso, links = util.links, urlencode = http.urlencode, str = util.str, components = util.components, component_scopes = util.component_scopes,
    provider_host = provider_host, webhook = require "sdk.webhook", fail = fail, token_of = util.token_of,
    provider = provider, xml = require "sdk.xml",     -- xml: replies in XML (AWS), see docs/PRIMITIVES.md
    soap = require "sdk.soap",                        -- SOAP 1.1 envelopes and faults (Workday)
    csv = require "sdk.csv",                          -- csv: logs handed out as CSV (Salesforce's EventLogFile)
    gunzip = zip.gunzip,                              -- what providers hand over gzipped (CloudTrail's log files)
  }
end

-- provider(name): what a family of apps shares (Microsoft's identity platform and Graph, Google's
-- service-account JWT), scripts/providers/<name>.lua, loaded once in a connector's confined env.
local providers = {}
function provider(name)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then error("provider: bad name", 2) end
  if providers[name] == nil then
    local fn, err = env.loadfile(host.root .. "/scripts/providers/" .. name .. ".lua", connector_env())
    if not fn then error("provider: " .. tostring(err), 2) end
    providers[name] = fn()
  end
  return providers[name]
end

local function check(c, path)
  local function bad(msg) error(("%s: %s"):format(path, msg), 0) end
  if type(c) ~= "table" or type(c.streams) ~= "table" then bad("must return connector(app)") end
  if type(c.base_url) ~= "function" and type(c.base_url) ~= "string" then bad("base_url missing") end
  for i, s in ipairs(c.settings) do
    if type(s[1]) ~= "string" then bad("setting #" .. i .. " has no name") end
  end
  for name in pairs(c.actions) do
    local known = false
    for _, list in pairs(M.ACTIONS) do for _, a in ipairs(list) do known = known or a == name end end
    if not known then bad("unknown action '" .. name .. "'") end
  end
  return c
end

-- Settings every instance has, whatever its app.
local COMMON_SETTINGS = {
  { "base_url", help = "API base URL override, e.g. a sandbox tenant (default: the real provider)" },
  { "insecure_loopback", type = "boolean", help = "skip TLS verification; refused unless base_url is loopback" },
  { "proxy", help = "outbound proxy for providers that allow-list addresses" },
  { "full_scan_interval", type = "integer", help = "seconds between full scans (default 43200)" },
  { "poll_interval", type = "integer", help = "seconds between activity polls (default 300)" },
  { "initial_days", type = "integer", help = "days of activity pulled on the first scan (default 7)" },
  { "retention_days", type = "integer", help = "days of activities and change history kept (default 365; 0: forever)" },
  { "retention_days_activities", type = "integer", help = "days of activities kept (default: retention_days)" },
  { "retention_days_changes", type = "integer", help = "days of change history kept (default: retention_days)" },
  { "auth", help = "auth scheme when the app offers several" },
}

local cache = {}
-- Where connector files are looked for: the directories in CACHOST_CONNECTORS (colon-separated: an
-- operator's own connectors, the specs' fixture apps in tests/fixtures/connectors), then connectors/.
function M.dirs()
  local list = {}
  for d in (host.getenv("CACHOST_CONNECTORS") or ""):gmatch("[^:]+") do list[#list + 1] = d end
  list[#list + 1] = host.root .. "/connectors"
  return list
end

local function find(app)
  for _, dir in ipairs(M.dirs()) do
    local path = dir .. "/" .. app .. ".lua"
    if host.stat(path) then return path end
  end
end

-- sdk.load(app) -> connector | nil, err
function M.load(app)
  if cache[app] then return cache[app] end
  local function unknown()
    return nil, ("unknown app '%s'%s (cachost connectors lists them)"):format(tostring(app),
      require("format").did_you_mean(tostring(app), M.apps()))
  end
  if type(app) ~= "string" or not app:match("^[%w_%-]+$") then return unknown() end
  local path = find(app)
  if not path then return unknown() end
  local fn, err = env.loadfile(path, connector_env())
  if not fn then return nil, err end
  local ok, c = pcall(fn)
  if not ok then return nil, tostring(c) end
  ok, err = pcall(check, c, path)
  if not ok then return nil, err end
  local have = {}
  for _, s in ipairs(c.settings) do have[s[1]] = true end
  for _, s in ipairs(COMMON_SETTINGS) do
    if not have[s[1]] then c.settings[#c.settings + 1] = s end
  end
  cache[app] = c
  return c
end

-- Every app with a connector file, sorted.
function M.apps()
  local list, seen = {}, {}
  for _, dir in ipairs(M.dirs()) do
    for _, name in ipairs(host.listdir(dir) or {}) do
      local app = name:match("^([%w_%-]+)%.lua$")
      if app and not seen[app] then list[#list + 1], seen[app] = app, true end
    end
  end
  table.sort(list)
  return list
end

-- Streams of a connector, full listings first (activities need users to resolve actors).  With the
-- instance's settings, only the streams c.enabled leaves on (an error from it keeps the stream listed:
-- running it reports the error).
function M.streams(c, settings)
  local list = {}
  for name in pairs(c.streams) do
    if not (settings and c.enabled and c.enabled(name, settings) == false) then list[#list + 1] = name end
  end
  table.sort(list, function(a, b)
    local oa, ob = (c.stream_order or {})[a] or 50, (c.stream_order or {})[b] or 50
    if oa ~= ob then return oa < ob end
    return a < b
  end)
  return list
end

-- The base URL of an instance: the `base_url` setting (a sandbox tenant) wins over the real provider's.
-- -> url | nil, err (the connector could not make one of these settings: a required one is missing)
function M.base_url(c, settings)
  local url = settings.base_url
  if not url or url == "" then
    if type(c.base_url) == "function" then
      local ok, u = pcall(c.base_url, settings)
      url = ok and u or nil
    else
      url = c.base_url
    end
  end
  if type(url) ~= "string" or url == "" then
    local missing = {}
    for _, s in ipairs(c.settings) do
      if s.required and (settings[s[1]] == nil or settings[s[1]] == "") then missing[#missing + 1] = s[1] end
    end
    return nil, ("settings: %s has no API address%s"):format(c.app,
      #missing > 0 and (": missing " .. table.concat(missing, ", ") .. " (cachost instance edit)") or "")
  end
  return util.trim_slash(url)
end

return M
