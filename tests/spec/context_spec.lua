-- The connector contract (scripts/sdk/context.lua): a connector reaches HTTP to its instance's hosts and
-- the store through named operations only, and operational failures travel as data (their token).
local helpers = require "helpers"
local runtime = require "runtime"
local context = require "sdk.context"
local util = require "sdk.util"

describe("the connector context", function()
  local srv, inst, st, tenant

  setup(function()
    host.home = helpers.tmp_dir()
    st = runtime.store()
    tenant = require("sandbox.okta").new { seed = 11, users = 3, groups = 1, events_per_day = 1, days = 1 }
    srv = helpers.serve(tenant)
    inst = helpers.instance("okta", "okta-ctx", { domain = "acme.okta.com", base_url = srv.url, insecure_loopback = true },
      { api_token = tenant.token })
    helpers.sync_ok(inst, { streams = { "users" } })
  end)
  teardown(function() if srv then srv:close() end end)

  it("holds no database handle, raw client or instance object a connector could reach", function()
    local ctx = context.new(st, inst, "spec")
    for _, field in ipairs { "st", "client", "inst", "connector", "counts", "emitted" } do
      assert.is_nil(ctx[field], "ctx." .. field)
    end
    assert.equal("okta-ctx", ctx.instance)
    assert.equal(srv.url, ctx.settings.base_url)
  end)

  it("ctx:try returns the failure's token and the provider's answer; ctx:get raises it as data", function()
    local ctx = context.new(st, inst, "spec")
    local resp, err, token, answer = ctx:try("GET", "/api/v1/users/nobody", { expect_json = true })
    assert.is_nil(resp)
    assert.equal("not_found", token)
    assert.matches("^not_found: HTTP 404", err)
    assert.equal(404, answer.status)
    local ok, e = pcall(ctx.get, ctx, "/api/v1/users/nobody")
    assert.is_false(ok)
    assert.equal("not_found", util.token_of(e))
    assert.matches("^not_found: HTTP 404", tostring(e))
    assert.is_nil(ctx:try_get("/api/v1/users/nobody"))
    -- a host that is not the instance's: refused before anything is sent, with its own token
    resp, err, token = ctx:try("GET", "https://attacker.example/api/v1/users")
    assert.is_nil(resp)
    assert.equal("refused", token)
  end)

  it("rejects an item whose row has no id, or an event's none of its time (its key), keeping the others", function()
    local ctx = context.new(st, inst, "spec")
    local res = ctx:emit("activities", { { id = "a1", t = "2024-01-01T00:00:00Z" }, { id = "a2" }, { t = "2024-01-01T00:00:01Z" } },
      function(x) return { ext_id = x.id, time = x.t, action = "x", raw = json.encode(x) } end)
    assert.equal(1, res.added)
    local e = context.engine(ctx)
    assert.equal(2, e.rejected)
    assert.equal("activities: no time", e.rejected_first)
    assert.equal(2, e.counts.activities.bad)
  end)

  it("the store's named operations: stored, stored_ids, known_users, retire", function()
    local ctx = context.new(st, inst, "spec")
    local users = ctx:known_users()
    assert.equal(3, #users)
    local row = ctx:stored("users", users[1].ext_id)
    assert.equal(users[1].email, row.email)
    assert.is_nil(ctx:stored("users", "no-such-user"))
    assert.equal(0, #ctx:stored_ids("users", "email", "nobody@example.com"))
    assert.same({ users[1].ext_id }, ctx:stored_ids("users", "email", users[1].email))
    assert.equal(1, ctx:retire("users", { users[1].ext_id, "no-such-user" }))
    assert.is_string(ctx:stored("users", users[1].ext_id).deleted_at)
    assert.equal(0, ctx:retire("users", { users[1].ext_id }), "retiring twice changes nothing")
    assert.equal(2, #ctx:known_users())
    assert.has_error(function() ctx:stored_ids("users", "1=1 OR email", "x") end)
  end)

  it("reads the known users once for a ctx, and again after it emitted users", function()
    local reads = 0
    local known = st.known_users
    st.known_users = function(...) reads = reads + 1; return known(...) end
    finally(function() st.known_users = nil end)
    local ctx = context.new(st, inst, "spec")
    local n = #ctx:known_users()
    assert.equal(n, #ctx:known_users())
    assert.equal(1, reads)
    ctx:emit("users", { { id = "00u-new-ctx", profile = { login = "new@acme.example", email = "new@acme.example" } } },
      function(u) return { ext_id = u.id, email = u.profile.email } end)
    assert.equal(n + 1, #ctx:known_users())
    assert.equal(2, reads)
    assert.equal(1, #context.new(st, inst, "spec"):known_users() - n)    -- a new ctx reads them afresh
  end)

  it("the C modules return the token as a third value", function()
    local _, err, token = http.parse_url("not a url at all")
    assert.equal("bad_url", token)
    assert.matches("^bad_url: ", err)
    local db = assert(sqlite.open(helpers.tmp_dir() .. "/t.db"))
    local ok
    ok, err, token = db:exec("INSERT INTO nowhere VALUES (1)")
    assert.is_nil(ok)
    assert.equal("sqlite", token)
    db:close()
  end)

  it("an action's failure is recorded without the instance's secrets", function()
    local c = assert(require("sdk").load("okta"))
    local real = c.actions.suspend_user
    local token = assert(runtime.store() and require("instances").instance(st, "okta-ctx"):secret("api_token"))
    c.actions.suspend_user = function() error("http: the provider echoed " .. token .. " back", 0) end
    local users = context.new(st, inst, "spec"):known_users()
    local rec = require("governance").act { store = st, instance = inst, action = "suspend_user",
      target = users[1].ext_id, operator = "spec" }
    c.actions.suspend_user = real
    assert.equal("failed", rec.result)
    assert.is_nil(rec.error:find(token, 1, true), rec.error)
    assert.matches("echoed", rec.error)
  end)

  it("pages by a token the body names (page_token), keeping the query, ending on none or an empty one", function()
    local srv <close> = assert(server.listen { port = 0 })
    local asked = {}
    srv:route("GET", "/items", function(req)
      asked[#asked + 1] = (req.query.marker or "-") .. "/" .. tostring(req.query.fields)
      local next_marker = ({ ["-"] = "m1", m1 = "m2" })[req.query.marker or "-"] or (req.query.marker == "m2" and "" or nil)
      return 200, json.encode { entries = { { id = req.query.marker or "first" } }, next_marker = next_marker },
        { ["Content-Type"] = "application/json" }
    end)
    local pinst = helpers.instance("okta", "okta-pages", { domain = "x.okta.com", base_url = srv.url, insecure_loopback = true },
      { api_token = "x" })
    local ctx = context.new(st, pinst, "spec")
    local ids = {}
    for items in ctx:pages("/items", { fields = "id" }, { items = "entries", page_token = { "next_marker", "marker" } }) do
      for _, it in ipairs(items) do ids[#ids + 1] = it.id end
    end
    assert.same({ "first", "m1", "m2" }, ids)
    assert.same({ "-/id", "m1/id", "m2/id" }, asked)
  end)

  it("decodes only the fields a listing declares: the raw stays whole, reading another member is a misuse raised", function()
    local srv <close> = assert(server.listen { port = 0 })
    local item1 = '{"id":"g1", "profile":{"name":"Ops","description":"on call"}, "owners":[{"id":"u1","type":"USER"}],'
      .. ' "extra":[1,{"deep":[true]}]}'
    local body = '{"entries":[' .. item1 .. ',{"id":"g2"}]}'
    srv:route("GET", "/groups", function() return 200, body, { ["Content-Type"] = "application/json" } end)
    -- an error's body is read whole (c.error_message), whatever the listing declares
    srv:route("GET", "/denied", function() return 403, '{"errors":[{"extra":"why"}]}', { ["Content-Type"] = "application/json" } end)
    local pinst = helpers.instance("okta", "okta-fields", { domain = "x.okta.com", base_url = srv.url, insecure_loopback = true },
      { api_token = "x" })
    local ctx = context.new(st, pinst, "spec")
    local FIELDS = { "id", "profile.name", "owners.id" }
    for items in ctx:pages("/groups", nil, { items = "entries", fields = FIELDS }) do
      assert.is_nil(items[2].profile)                       -- declared, absent
      assert.equal("u1", items[1].owners[1].id)             -- a path through an array: each object in it
      assert.has_error(function() return items[1].owners[1].type end)
      ctx:emit("groups", items, function(g) return { ext_id = g.id, name = g.profile and g.profile.name } end)
    end
    local row = ctx:stored("groups", "g1")
    assert.equal("Ops", row.name)
    assert.equal(item1, row.raw)                            -- byte for byte what was sent
    -- an undeclared member: the emit raises (no item rejected), naming the member and the declaring line
    local line = debug.getinfo(1, "l").currentline + 2
    local ok, err = pcall(function()
      for items in ctx:pages("/groups", nil, { items = "entries", fields = FIELDS }) do
        ctx:emit("groups", items, function(g) return { ext_id = g.id, name = g.profile.description } end)
      end
    end)
    assert.is_false(ok)
    assert.matches("json: undeclared field 'profile.description'", tostring(err), 1, true)
    assert.matches("add it to the fields of GET " .. srv.url .. "/groups (declared at " .. debug.getinfo(1, "S").short_src
      .. ":" .. line .. ")", tostring(err), 1, true)
    assert.is_nil(context.engine(ctx).rejected)
    local ok2, failure = pcall(function() for _ in ctx:pages("/denied", nil, { items = "entries", fields = FIELDS }) do end end)
    assert.is_false(ok2)
    assert.equal("permission", failure.token)
    assert.equal("why", failure.resp.data.errors[1].extra)
  end)

  it("adds a scheme's authorize_params to the consent URL, beside state and the PKCE challenge", function()
    local auth = require "sdk.auth"
    local scheme = { type = "oauth2", authorize_url = "https://accounts.example.com/auth", token_url = "/token", scopes = { "a", "b" },
                     authorize_params = { access_type = "offline", prompt = "consent" } }
    local url = auth.authorization_code(context.client(context.new(st, inst, "spec")), scheme, "http://127.0.0.1:9/callback")
    assert.matches("^https://accounts%.example%.com/auth%?", url)
    for _, p in ipairs { "access_type=offline", "prompt=consent", "code_challenge_method=S256", "scope=a%%20b", "state=" } do
      assert.matches(p, url)
    end
  end)

  it("fails a page with the provider's answer in the failure, as ctx:request does", function()
    local srv <close> = assert(server.listen { port = 0 })
    srv:route("GET", "/items", function(req)
      if req.query.marker then return 403, '{"error":"forbidden"}', { ["Content-Type"] = "application/json" } end
      return 200, json.encode { entries = { { id = "first" } }, next_marker = "m1" }, { ["Content-Type"] = "application/json" }
    end)
    local pinst = helpers.instance("okta", "okta-pages-403", { domain = "x.okta.com", base_url = srv.url, insecure_loopback = true },
      { api_token = "x" })
    local ctx = context.new(st, pinst, "spec")
    local ok, err = pcall(function()
      for _ in ctx:pages("/items", nil, { items = "entries", page_token = { "next_marker", "marker" } }) do end
    end)
    assert.is_false(ok)
    assert.equal("permission", err.token)
    assert.equal(403, err.resp.status)
  end)

  it("a scan with the wall clock stepped back a day still marks deleted exactly what it did not see", function()
    local users = context.new(st, inst, "spec"):known_users()
    local gone = users[#users].ext_id
    for _ = 1, 2 do       -- Okta: deactivate, then delete
      assert(http.request { method = "DELETE", url = srv.url .. "/api/v1/users/" .. gone,
        headers = { Authorization = "SSWS " .. tenant.token } })
    end
    local real = sched.time
    sched.time = function() return real() - 86400 end
    local ok, err = pcall(helpers.sync_ok, inst, { streams = { "users" } })
    sched.time = real
    assert(ok, err)
    assert.is_string(context.new(st, inst, "spec"):stored("users", gone).deleted_at, "the deletion was not seen")
    for i = 1, #users - 1 do         -- nothing else was marked deleted
      assert.is_nil(context.new(st, inst, "spec"):stored("users", users[i].ext_id).deleted_at, users[i].ext_id)
    end
  end)

  it("an instance whose settings give no API address fails with a line naming what is missing", function()
    local bad = helpers.instance("okta", "okta-nodomain", {}, { api_token = "x" })
    local ok, err = pcall(context.new, st, bad, "spec")
    assert.is_false(ok)
    assert.equal("settings", util.token_of(err))
    assert.equal("settings: okta-nodomain: okta has no API address: missing domain (cachost instance edit)", tostring(err))
    local counts, serr = require("sync").run(st, bad, "users")
    assert.is_nil(counts)
    assert.equal(tostring(err), serr)
  end)

  it("a stream's health comes from the failure's token, not from parsing its message", function()
    -- a connector's own failure whose message says nothing of its token still sets the health
    local c = assert(require("sdk").load("okta"))
    local real = c.streams.groups
    c.streams.groups = function() error(util.failure("the tenant's plan has no groups here", "unavailable"), 0) end
    local counts, err, status = require("sync").run(st, inst, "groups")
    c.streams.groups = real
    assert.is_nil(counts)
    assert.equal("unavailable", status)
    assert.matches("^unavailable: the tenant's plan", err)
    assert.equal("unavailable (needs the tenant's plan has no groups here)",
      require("sync").health(require("runtime").store():stream(inst.id, "groups").last_error))
  end)
end)

describe("connectors", function()
  -- No connector reaches the store or the raw client: what they may use is the ctx above (and no SQL:
  -- sql_owner_spec).
  it("reach neither the store nor the HTTP client directly", function()
    local found = {}
    for _, app in ipairs(require("sdk").apps()) do
      local path = host.root .. "/connectors/" .. app .. ".lua"
      local n = 0
      for line in io.lines(path) do
        n = n + 1
        local code = line:gsub("%-%-.*$", "")
        if code:find("ctx%.st%f[%W]") or code:find("ctx%.client%f[%W]") or code:find("ctx%.inst%f[%W]")
          or code:find("%f[%w]http%.request%f[%W]") or code:find("%f[%w]sqlite%f[%W]") then
          found[#found + 1] = ("%s:%d: %s"):format(app, n, line)
        end
      end
    end
    assert.same({}, found)
  end)

  -- `cachost connectors APP` lists what each capability needs and why one is not offered: it reads these
  it("say what each capability and action needs, and why a capability is not offered", function()
    local sdk = require "sdk"
    local missing = {}
    for _, app in ipairs(sdk.apps()) do
      local c = assert(sdk.load(app))
      local needs, not_offered = c.needs or {}, c.not_offered or {}
      for _, cap in ipairs(sdk.CAPABILITIES) do
        if c.capabilities[cap] then
          if not needs[cap] then missing[#missing + 1] = app .. ": needs." .. cap end
        elseif type(not_offered[cap]) ~= "string" or not_offered[cap] == "" then
          missing[#missing + 1] = app .. ": not_offered." .. cap
        end
      end
      for action in pairs(c.actions) do
        if not (needs[action] or needs.actions) then missing[#missing + 1] = app .. ": needs." .. action end
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)
end)
