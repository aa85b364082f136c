-- console/api.lua — the console's JSON API (documented in scripts/console/API.md).  Each route:
-- { method, pattern, who may call it (nil: anyone; "viewer": any signed-in account; "admin"), handler }.
-- A handler gets {st, req, session, body (a table for changes), params, query, secure} and returns
-- status, value (encoded as JSON), headers.
local auth = require "console.auth"
local instances = require "instances"
local governance = require "governance"
local sync = require "sync"
local store = require "store"

local M = {}

local function bad(why) return 400, { error = why } end
local arr = json.array          -- lists stay lists in JSON when empty

-- The health of each stream of an instance, as `cachost status` tells it.
local function streams(st, inst)
  local out = {}
  for _, s in ipairs(st:stream_states(inst.id)) do
    local err = s.last_error and sync.redact(st, inst, s.last_error) or nil
    out[#out + 1] = { stream = s.stream, status = not inst.enabled and "disabled" or sync.health(err)
      or (s.last_success and "ok") or "running", last_success = s.last_success, error = err,
      counts = json.decode(s.counts or "null") }
  end
  return arr(out)
end

-- The instance's status in words: its worst stream's (reconnect needed > permission missing > unavailable
-- > error > running > ok), or never run / disabled.
local RANK = { ["reconnect needed"] = 6, error = 5, running = 2, ok = 1 }
local function overall(inst, list)
  if not inst.enabled then return "disabled" end
  if #list == 0 then return "never run" end
  local worst, rank = "ok", 0
  for _, s in ipairs(list) do
    local r = RANK[s.status] or (s.status:match("^permission missing") and 4) or (s.status:match("^unavailable") and 3) or 5
    if r > rank then worst, rank = s.status, r end
  end
  return worst
end

local function instance_by_id(st)
  return function(id) return assert(instances.instance(st, id)) end
end

local function ids_of(body)
  local ids = {}
  for _, v in ipairs(type(body.ids) == "table" and body.ids or {}) do
    local id = math.tointeger(v)
    if not id then return nil end
    ids[#ids + 1] = id
  end
  return #ids > 0 and ids or nil
end

local function policies(st)
  local list = require("runtime").policies(true)
  local hits = {}
  for _, r in ipairs(st:alerts_where { limit = 1000 }) do
    if r.policy then hits[r.policy] = (hits[r.policy] or 0) + 1 end
  end
  local out = {}
  for _, p in ipairs(list) do
    out[#out + 1] = { name = p.id, title = p.name, on = p.on, severity = p.severity, mode = p.mode,
      enabled = p.enabled ~= false, actions = p.actions, recent_hits = hits[p.id] or 0 }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

M.routes = {
  ------------------------------------------------------------------------------------ session
  { "POST", "/api/login", nil, function(x)
    local s, status, why = auth.sign_in(x.st, x.body.name, x.body.password, x.req.remote)
    if not s then return status, { error = why } end
    return 200, { user = s.user, role = s.role, csrf = s.csrf }, { ["Set-Cookie"] = auth.cookie(s.id, x.secure) }
  end },
  { "POST", "/api/logout", "viewer", function(x)
    x.st:session_end(x.session.id_hash)
    return 200, { ok = true }, { ["Set-Cookie"] = auth.cookie(nil, x.secure) }
  end },
  { "GET", "/api/session", "viewer", function(x)
    return 200, { user = x.session.user, role = x.session.role, csrf = x.session.csrf }
  end },

  ------------------------------------------------------------------------------------ connected apps
  { "GET", "/api/instances", "viewer", function(x)
    local out = {}
    for _, r in ipairs(x.st:instance_summaries()) do
      local inst = assert(instances.instance(x.st, r.id))
      local list = streams(x.st, inst)
      local last_activity = x.st:last_activity(inst.id)
      out[#out + 1] = { name = r.name, app = r.app, enabled = inst.enabled, status = overall(inst, list),
        last_scan = r.last_scan, last_activity = last_activity, users = r.users, files = r.files,
        activities = r.activities, streams = list }
    end
    return 200, arr(out)
  end },
  -- the apps there are connectors for, with the settings each needs (which are secrets)
  { "GET", "/api/connectors", "viewer", function()
    local sdk = require "sdk"
    local out = {}
    for _, app in ipairs(sdk.apps()) do
      local c = sdk.load(app)
      if c then
        local settings = {}
        for _, st in ipairs(c.settings or {}) do
          settings[#settings + 1] = { name = st[1], secret = st.secret == true, required = st.required == true,
            type = st.type or "string", help = st.help, example = st.example }
        end
        out[#out + 1] = { app = app, title = c.title or app, single_instance = c.single_instance == true, settings = arr(settings) }
      end
    end
    return 200, arr(out)
  end },
  -- {app =, name =, settings = {k = v}}: a new instance (secrets to the vault), then connect it
  { "POST", "/api/instances", "admin", function(x)
    local values = {}
    for k, v in pairs(type(x.body.settings) == "table" and x.body.settings or {}) do
      if v ~= "" then values[k] = tostring(v) end
    end
    if type(x.body.app) ~= "string" or type(x.body.name) ~= "string" then return bad("app and name") end
    local ok, err = instances.add(x.st, x.body.app, x.body.name, values)
    if not ok then return 400, { error = err } end
    log.info("instance added from the console", { instance = x.body.name, app = x.body.app, by = x.session.user })
    return 200, instances.show(x.st, x.body.name)
  end },
  -- The provider's own authorization: for a consent flow, the URL to open (the daemon waits for the
  -- redirect, 10 minutes); for a token, the test and the first fetch of users, done here.
  { "POST", "/api/instances/:name/connect", "admin", function(x)
    local inst, err = instances.instance(x.st, x.params.name)
    if not inst then return 404, { error = err } end
    local said, url, waiting = {}, nil, sched.cond()
    local task = sched.spawn(function()
      local ok, cerr = require("connect").run(inst, { say = function(line)
        said[#said + 1] = line
        if not url and line:match("^https?://") then url = line; waiting:signal() end
      end })
      if not ok then log.warn("console connect failed", { instance = inst.name, error = cerr }) end
      return ok, cerr
    end)
    sched.spawn(function() task:join(); waiting:signal() end)
    waiting:wait(60)
    if url then return 200, { url = url, said = arr(said) } end
    local joined, ok, cerr = task:join(0)
    if joined and ok then return 200, { connected = true, said = arr(said) } end
    return 400, { error = joined and tostring(cerr) or "the connection did not finish within a minute", said = arr(said) }
  end },
  { "GET", "/api/instances/:name", "viewer", function(x)
    local shown, err = instances.show(x.st, x.params.name)      -- secrets as ********, never their values
    if not shown then return 404, { error = err } end
    return 200, shown
  end },
  { "POST", "/api/instances/:name/pause", "admin", function(x)
    local ok, err = instances.set_enabled(x.st, x.params.name, false)
    if not ok then return 404, { error = err } end
    return 200, { name = x.params.name, enabled = false }
  end },
  { "POST", "/api/instances/:name/resume", "admin", function(x)
    local ok, err = instances.set_enabled(x.st, x.params.name, true)
    if not ok then return 404, { error = err } end
    return 200, { name = x.params.name, enabled = true }
  end },
  -- settings: {settings = {k = "v"}}; a secret setting is written to the vault and never read back
  { "POST", "/api/instances/:name/settings", "admin", function(x)
    local values = {}
    for k, v in pairs(type(x.body.settings) == "table" and x.body.settings or {}) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean") then
        return bad("settings: {name: value} with text, number or boolean values")
      end
      values[k] = tostring(v)
    end
    local ok, err = instances.edit(x.st, x.params.name, values)
    if not ok then return 400, { error = err } end
    return 200, instances.show(x.st, x.params.name)
  end },

  ------------------------------------------------------------------------------------ alerts
  { "GET", "/api/alerts", "viewer", function(x)
    local q = x.query
    return 200, arr(x.st:alerts_where { severity = q.severity ~= "" and q.severity or nil, policy = q.policy ~= "" and q.policy or nil,
      instance = q.instance ~= "" and q.instance or nil, status = q.status ~= "" and q.status or nil,
      q = q.q ~= "" and q.q or nil, limit = math.min(tonumber(q.limit) or 200, 1000) })
  end },
  { "GET", "/api/alerts/:id", "viewer", function(x)
    local a = x.st:alert(tonumber(x.params.id) or -1)
    if not a then return 404, { error = "no alert " .. x.params.id } end
    a.rows = arr(x.st:alert_rows(a))
    a.evidence = json.decode(a.evidence or "{}")
    a.raw = json.decode(a.raw or "null")
    return 200, a
  end },
  -- {ids = [..], status = "resolved"|"dismissed"|"open", assignee = "name"|"", note = "..."}
  { "POST", "/api/alerts/triage", "admin", function(x)
    local ids = ids_of(x.body)
    if not ids then return bad("ids: a list of alert ids") end
    local status = x.body.status
    if status ~= nil and status ~= "open" and status ~= "resolved" and status ~= "dismissed" then
      return bad("status: open, resolved or dismissed")
    end
    if x.body.assignee ~= nil and type(x.body.assignee) ~= "string" then return bad("assignee: a name") end
    local n = x.st:alerts_set(ids, { status = status, assignee = x.body.assignee,
      note = type(x.body.note) == "string" and x.body.note or nil, by = x.session.user })
    return 200, { changed = n }
  end },

  ------------------------------------------------------------------------------------ governance
  { "GET", "/api/governance", "viewer", function(x)
    governance.settle_orphans(x.st)
    return 200, { paused = governance.paused(), actions = arr(x.st:action_log(math.min(tonumber(x.query.limit) or 200, 1000))) }
  end },
  { "POST", "/api/governance/:id/undo", "admin", function(x)
    local id = math.tointeger(tonumber(x.params.id))
    if not id then return bad("an action id") end
    local ok, rec, err = pcall(governance.undo, x.st, instance_by_id(x.st), id, x.session.user)
    if not ok then return 400, { error = tostring(rec) } end
    if not rec then return 400, { error = err } end
    return 200, rec
  end },
  { "POST", "/api/governance/:id/retry", "admin", function(x)
    local id = math.tointeger(tonumber(x.params.id))
    if not id then return bad("an action id") end
    local ok, rec, err = pcall(governance.retry, x.st, instance_by_id(x.st), id)
    if not ok then return 400, { error = tostring(rec) } end
    if not rec then return 400, { error = err } end
    return 200, rec
  end },
  { "POST", "/api/governance/pause", "admin", function(x)
    local ok, err = governance.pause(x.session.user)
    if not ok then return 500, { error = err } end
    return 200, { paused = true }
  end },
  { "POST", "/api/governance/resume", "admin", function()
    governance.resume()
    return 200, { paused = false }
  end },

  ------------------------------------------------------------------------------------ policies
  { "GET", "/api/policies", "viewer", function(x) return 200, arr(policies(x.st)) end },
  { "GET", "/api/policies/:name/source", "viewer", function(x)
    local file = require("policy").find(x.params.name)
    local f = file and io.open(file, "rb")
    if not f then return 404, { error = "no policy named " .. x.params.name } end
    local src = f:read("a")
    f:close()
    return 200, { name = x.params.name, source = src }
  end },
  -- {mode = "audit"|"enforce"} or {enabled = true|false}
  { "POST", "/api/policies/:name", "admin", function(x)
    local found = false
    for _, p in ipairs(policies(x.st)) do found = found or p.name == x.params.name end
    if not found then return 404, { error = "no policy named " .. x.params.name } end
    local fields = {}
    if x.body.mode ~= nil then
      if x.body.mode ~= "audit" and x.body.mode ~= "enforce" then return bad("mode: audit or enforce") end
      fields.mode = x.body.mode
    end
    if x.body.enabled ~= nil then fields.enabled = x.body.enabled == true and 1 or 0 end
    if not next(fields) then return bad("mode or enabled") end
    x.st:set_policy_switch(x.params.name, fields)
    log.info("policy switched from the console", { policy = x.params.name, mode = fields.mode, by = x.session.user })
    for _, p in ipairs(policies(x.st)) do if p.name == x.params.name then return 200, p end end
  end },

  ------------------------------------------------------------------------------------ investigate
  { "GET", "/api/search", "viewer", function(x)
    local q = x.query.q
    if type(q) ~= "string" or #q < 2 or #q > 200 then return bad("q: 2 to 200 characters") end
    local r = x.st:search(q, 50)
    for k, v in pairs(r) do r[k] = arr(v) end
    return 200, r
  end },
  { "GET", "/api/people/:person", "viewer", function(x)
    local person = x.params.person:lower()
    local gone = require("policy.people").departures(x.st)[person]
    return 200, { person = person, left = gone and require("policy.people").how(gone) or nil,
                  accounts = arr(x.st:identity(person)) }
  end },
  -- {sql = "SELECT ..."}: read-only, as cachost query, bounded to 5 s of work and 1,000 rows
  { "POST", "/api/query", "viewer", function(x)
    if type(x.body.sql) ~= "string" or x.body.sql == "" then return bad("sql: one statement") end
    local rd, err = store.open_readonly(host.home, { timeout = 5 })
    if not rd then return 500, { error = err } end
    local ok, cur, cerr = pcall(rd.cursor, rd, x.body.sql)
    if not ok or not cur then
      rd:close()
      return 400, { error = tostring(ok and cerr or cur):gsub("^.-:%d+: ", "") }
    end
    local rows, truncated = {}, false
    while true do
      local row, rerr = cur:next(true)
      if not row then
        if rerr then cur:close(); rd:close(); return 400, { error = tostring(rerr) } end
        break
      end
      if #rows == 1000 then truncated = true; break end
      rows[#rows + 1] = row
    end
    local columns = cur:columns()
    cur:close()
    rd:close()
    return 200, { columns = arr(columns), rows = arr(rows), truncated = truncated }
  end },

  ------------------------------------------------------------------------------------ pictures
  { "GET", "/api/charts", "viewer", function(x)
    local days = math.min(tonumber(x.query.days) or 30, 365)
    return 200, { signins = arr(x.st:signins_by_day(days)), failures_by_country = arr(x.st:failures_by_country(days)),
                  alerts_by_severity = arr(x.st:alerts_by_severity()), shared_files = arr(x.st:public_files_by_app()) }
  end },
}

return M
