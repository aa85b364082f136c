-- The Okta connector against the Okta sandbox tenant: full and incremental scans equal the tenant's
-- ground truth, governance changes the tenant, faults are survived.
local context = require "sdk.context"
local okta_tenant = require "sandbox.okta"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local function add_instance(name, url, token)
  return require("helpers").instance("okta", name, { domain = "acme.okta.com", base_url = url, insecure_loopback = true },
    { api_token = token })
end

local count = require("helpers").count

describe("okta connector", function()
  local tenant, srv, inst
  setup(function()
    host.home = tmp_home()
    tenant = okta_tenant.new { seed = 7, users = 40, groups = 5, events_per_day = 50, days = 8 }
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    inst = add_instance("okta-test", srv.url, tenant.token)
  end)
  teardown(function() srv:close() end)

  it("scans users, groups, privileges, grants and the System Log to the tenant's ground truth", function()
    local results, ok = runtime.sync(inst)
    for _, r in ipairs(results) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
    assert.is_true(ok)
    assert.equal(tenant:count("users"), count("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id))
    assert.equal(tenant:count("groups"), count("SELECT count(*) n FROM groups WHERE instance_id = ?", inst.id))
    assert.equal(tenant:count("roles"), count("SELECT count(*) n FROM privileges WHERE instance_id = ?", inst.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id) > 0)
    assert.equal(tenant:count("users", "SUSPENDED"),
      count("SELECT count(*) n FROM users WHERE instance_id = ? AND status = 'suspended'", inst.id))
  end)

  it("maps each System Log event from its whole text (the sync decodes only what the mapping reads)", function()
    local rows = runtime.store().db:query("SELECT * FROM activities WHERE instance_id = ?", inst.id)
    assert.is_true(#rows > 0)
    local two = 0
    for _, r in ipairs(rows) do
      local e = assert(json.decode(r.raw))
      local t, cl = e.target[1], e.client
      local g = cl.geographicalContext
      two = two + (#e.target > 1 and 1 or 0)
      assert.same({ e.uuid, e.eventType, e.actor.alternateId, e.actor.id, t and t.alternateId, t and t.id, cl.ipAddress,
                    g.city .. ", " .. g.state .. ", " .. g.country, g.geolocation.lat, g.geolocation.lon,
                    cl.userAgent.rawUserAgent, e.outcome.result:lower() },
        { r.ext_id, r.action, r.actor, r.actor_id, r.target, r.target_id, r.ip, r.location, r.lat, r.lon, r.user_agent, r.outcome })
    end
    assert.is_true(two > 0)   -- events with more than one target: the first one is the row's
  end)

  it("re-scanning changes nothing and incremental polling picks up only new events", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    tenant:simulate_bruteforce(tenant.state.users[3].profile.login, 5)
    local results = runtime.sync(inst)
    for _, r in ipairs(results) do
      assert(r.counts, r.stream .. ": " .. tostring(r.error))
      if r.stream == "users" then assert.equal(0, r.counts.users.added); assert.equal(0, r.counts.users.removed) end
    end
    assert.equal(before + 6, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
  end)

  it("suspends a user in the tenant, and the next scan sees it", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' LIMIT 1", inst.id)[1]
    context.connector(ctx).actions.suspend_user(ctx, u)
    assert.equal("SUSPENDED", tenant:find_user(u.ext_id).status)
    runtime.sync(inst, { streams = { "users" } })
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
  end)

  it("survives a 429 storm and 5xx bursts", function()
    tenant:fault { kind = "429", count = 3, retry_after = 0 }
    tenant:fault { kind = "500", count = 2 }
    local results, ok = runtime.sync(inst, { streams = { "users", "groups" } })
    assert(ok, tostring(results[1].error))
  end)

  it("records a clear reconnect-needed error on a bad token and keeps the data", function()
    local bad = add_instance("okta-bad", srv.url, "wrong-token")
    local results, ok = runtime.sync(bad, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: HTTP 401", results[1].error)
    assert.equal("reconnect_needed", instances.instance(runtime.store(), "okta-bad").row.status)
  end)

  it("refuses malformed pages without losing committed data", function()
    local Client = require "sdk.client"
    local base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.01
    local n = count("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id)
    -- a page that cannot be read is asked again: once is survived, every time is refused
    tenant:fault { kind = "malformed", count = 1 }
    assert.is_true(select(2, runtime.sync(inst, { streams = { "users" } })))
    tenant:fault { kind = "malformed", count = 6 }
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    Client.BACKOFF_BASE = base
    assert.is_false(ok)
    assert.matches("bad_json", results[1].error)
    assert.equal(n, count("SELECT count(*) n FROM users WHERE instance_id = ? AND deleted_at IS NULL", inst.id))
  end)
end)

-- Okta's documented behaviour the sandbox enforces, each a way the connector could go wrong.
describe("okta connector, held to Okta's reference", function()
  local tenant, srv, inst
  local function truth_of(entity)
    local set = {}
    for _, id in ipairs(tenant:truth()[entity]) do set[id] = true end
    return set
  end
  local function stored(entity)
    local set = {}
    for _, r in ipairs(runtime.store().db:query("SELECT ext_id FROM " .. entity .. " WHERE instance_id = ? AND deleted_at IS NULL", inst.id)) do
      set[r.ext_id] = true
    end
    return set
  end
  setup(function()
    host.home = tmp_home()
    -- pages of 2: the IAM assignees listing needs several, through `_links.next` in its body
    tenant = okta_tenant.new { seed = 11, users = 60, groups = 4, events_per_day = 10, days = 2 }
    tenant.page_max = 2
    srv = require("helpers").serve(tenant)
    inst = add_instance("okta-ref", srv.url, tenant.token)
  end)
  teardown(function() srv:close() end)

  it("reads every admin role: the IAM listing's _links.next pages, and roles held through groups", function()
    local results, ok = runtime.sync(inst, { streams = { "users", "groups", "privileges" } })
    assert(ok, tostring(results[#results].error))
    assert.are.same(truth_of("privileges"), stored("privileges"))
    -- the Help Desk group's members are admins through it
    local gid = next(tenant.state.group_roles)
    for uid in pairs(tenant.state.group_by_id[gid].members) do
      assert.equal(1, count("SELECT is_admin n FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, uid))
    end
  end)

  it("lists app assignments and API tokens with the consent grants", function()
    local results, ok = runtime.sync(inst, { streams = { "app_grants" } })
    assert(ok, tostring(results[1].error))
    assert.are.same(truth_of("app_grants"), stored("app_grants"))
    assert.equal(tenant:count("api_tokens"),
      count("SELECT count(*) n FROM app_grants WHERE instance_id = ? AND client_id = 'okta.api_token'", inst.id))
  end)

  it("unlocks, deactivates, resets factors, removes an admin role, revokes an API token and an assignment", function()
    local st = runtime.store()
    local function act(action, target, params)
      local ctx = sync.context(st, inst, "action")
      return context.connector(ctx).actions[action](ctx, target, params)
    end
    local function user_with(pred)
      for _, u in ipairs(tenant.state.users) do
        if pred(u) then return st.db:query("SELECT * FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, u.id)[1] end
      end
    end
    local locked = assert(user_with(function(u) return u.status == "LOCKED_OUT" end))
    act("unlock_user", locked)
    assert.equal("ACTIVE", tenant:find_user(locked.ext_id).status)
    local enrolled = assert(user_with(function(u) return u.status == "ACTIVE" and u.factors > 0 end))
    act("reset_mfa", enrolled)
    assert.equal(0, tenant:find_user(enrolled.ext_id).factors)
    local leaver = assert(user_with(function(u)
      if u.status ~= "ACTIVE" then return false end
      for _, a in ipairs(tenant.state.apps) do if a.users[u.id] then return true end end
    end))
    act("deactivate_user", leaver)
    assert.equal("DEPROVISIONED", tenant:find_user(leaver.ext_id).status)
    for _, a in ipairs(tenant.state.apps) do assert.is_nil(a.users[leaver.ext_id], "still assigned to " .. a.label) end
    -- admin roles: the direct ones go; one held only through a group is refused with a clear line
    local admin = assert(user_with(function(u) return u ~= tenant.admin and tenant.state.roles[u.id] and #tenant.state.roles[u.id] > 0 end))
    act("remove_admin_role", admin)
    assert.equal(0, #tenant.state.roles[admin.ext_id])
    local gid = next(tenant.state.group_roles)
    local through = assert(user_with(function(u) return tenant.state.group_by_id[gid].members[u.id] and not (tenant.state.roles[u.id] and #tenant.state.roles[u.id] > 0) end))
    local okr, err = pcall(act, "remove_admin_role", through)
    assert.is_false(okr)
    assert.matches("only through a group", err)
    -- app permissions: an API token, an app assignment
    local tok = st.db:query("SELECT * FROM app_grants WHERE instance_id = ? AND client_id = 'okta.api_token' AND ext_id <> ?", inst.id,
      tenant.state.api_tokens[1].secret == tenant.token and tenant.state.api_tokens[1].id or "")[1]
    local before = tenant:count("api_tokens")
    act("revoke_token", assert(tok))
    assert.equal(before - 1, tenant:count("api_tokens"))
    local asg
    for _, g in ipairs(st.db:query("SELECT * FROM app_grants WHERE instance_id = ? AND scopes LIKE 'assigned%'", inst.id)) do
      if tenant.state.app_by_id[g.client_id].users[g.user_id] then asg = g; break end
    end
    act("revoke_grant", assert(asg))
    assert.is_nil(tenant.state.app_by_id[asg.client_id].users[asg.user_id])
    -- through governance, as a policy or an operator asks: recorded, and the user re-fetched
    local g = require "governance"
    local locked2 = assert(user_with(function(u) return u.status == "LOCKED_OUT" end))
    local rec = assert(g.act { store = st, instance = inst, action = "unlock_user", target = locked2.ext_id, operator = "t" })
    assert.equal("ok", rec.result, rec.error)
    assert.equal("active", st.db:query("SELECT status FROM users WHERE id = ?", locked2.id)[1].status)
    -- a deactivation interrupted after it was sent: settled by the re-fetch, which shows the user deprovisioned
    local victim = assert(user_with(function(u) return u.status == "ACTIVE" and u ~= tenant.admin end))
    local fault = tenant:fault { kind = "slow", path = "/users/" .. victim.ext_id .. "/lifecycle/deactivate$", delay = 1 }
    local task = sched.spawn(g.act, { store = st, instance = inst, action = "deactivate_user", target = victim.ext_id, operator = "t" })
    while fault.hits == 0 do sched.sleep(0.01) end
    task:cancel()
    task:join(10)
    while tenant:find_user(victim.ext_id).status ~= "DEPROVISIONED" do sched.sleep(0.02) end
    assert.equal(1, assert(g.reconcile(st, inst)).ok)
    local row = st.db:query("SELECT * FROM governance_actions WHERE instance_id = ? AND action = 'deactivate_user'", inst.id)[1]
    assert.equal("ok", row.result)
    assert.matches("took effect", row.note)
    -- the next scan agrees with the tenant
    assert(select(2, runtime.sync(inst, { streams = { "users", "groups", "privileges", "app_grants" } })))
    assert.are.same(truth_of("app_grants"), stored("app_grants"))
    assert.are.same(truth_of("privileges"), stored("privileges"))
  end)
end)

-- A service app (private_key_jwt) is granted some scopes; the instance asks only for those its components need.
describe("okta connector with an OAuth service app", function()
  local key = crypto.keygen("RSA")
  local function oauth_instance(name, url, components)
    return require("helpers").instance("okta", name, { domain = "acme.okta.com", base_url = url, insecure_loopback = true,
      auth = "oauth", client_id = "0oaservice", components = components }, { private_key = key })
  end
  setup(function() host.home = tmp_home() end)

  it("asks only for the scopes of its components, so an app granted just those connects", function()
    local tenant = okta_tenant.new { seed = 12, users = 15, groups = 3, events_per_day = 10, days = 2,
      oauth_client = { client_id = "0oaservice", public_key = crypto.jwk_pem(crypto.jwk(key)),
                       scopes = { "okta.users.read", "okta.groups.read", "okta.logs.read" } } }
    local srv = require("helpers").serve(tenant)
    local inst = oauth_instance("okta-scoped", srv.url, "users,groups,activities")
    local results, ok = runtime.sync(inst)
    srv:close()
    for _, r in ipairs(results) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
    assert.is_true(ok)
    local streams = {}
    for _, r in ipairs(results) do streams[#streams + 1] = r.stream end
    assert.are.same({ "users", "groups", "activities" }, streams)
    assert.equal(tenant:count("users"), count("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id))
  end)

  it("reads app grants without API tokens when the app has no okta.apiTokens.read", function()
    local tenant = okta_tenant.new { seed = 16, users = 8, groups = 2, events_per_day = 5, days = 1,
      oauth_client = { client_id = "0oaservice", public_key = crypto.jwk_pem(crypto.jwk(key)),
                       scopes = { "okta.users.read", "okta.apps.read" } } }
    local srv = require("helpers").serve(tenant)
    local inst = oauth_instance("okta-grants-only", srv.url, "app_grants")
    local results, ok = runtime.sync(inst)
    srv:close()
    assert(ok, tostring(results[1] and results[1].error))
    assert.is_true(count("SELECT count(*) n FROM app_grants WHERE instance_id = ?", inst.id) > 0)
    assert.equal(0, count("SELECT count(*) n FROM app_grants WHERE instance_id = ? AND client_id = 'okta.api_token'", inst.id))
  end)

  it("refuses an unknown component with one line naming the known ones", function()
    local c = require("sdk").load("okta")
    local ok, err = c.validate { components = "users,grups" }
    assert.is_nil(ok)
    assert.equal("okta: unknown component 'grups' (components: users, groups, privileges, app_grants, api_tokens, activities, actions)", err)
    assert.is_true(c.enabled("users", { components = "users" }))
    assert.is_false(c.enabled("groups", { components = "users" }))
    assert.is_true(c.enabled("groups", {}))
  end)

  -- what `cachost connectors okta` lists per capability is enough: a service app granted exactly those
  -- scopes reads that stream (the sandbox checks each route's scope)
  it("needs for each stream exactly the scopes it lists", function()
    local c = require("sdk").load("okta")
    -- each stream, the components it is read with
    for stream, comps in pairs { users = { "users" }, groups = { "groups" }, privileges = { "privileges" },
                                 app_grants = { "app_grants", "api_tokens" }, activities = { "activities" } } do
      local scopes = {}
      for _, comp in ipairs(comps) do
        for sc in c.needs[comp]:gmatch("okta%.[%w]+%.%w+") do scopes[#scopes + 1] = sc end
      end
      assert(#scopes > 0, stream)
      local tenant = okta_tenant.new { seed = 15, users = 8, groups = 2, events_per_day = 5, days = 1,
        oauth_client = { client_id = "0oaservice", public_key = crypto.jwk_pem(crypto.jwk(key)), scopes = scopes } }
      local srv = require("helpers").serve(tenant)
      local inst = oauth_instance("okta-needs-" .. stream, srv.url, table.concat(comps, ","))
      local results, ok = runtime.sync(inst)
      srv:close()
      assert(ok, stream .. ": " .. tostring(results[1] and results[1].error))
      assert.equal(1, #results)
      assert.equal(stream, results[1].stream)
      if stream == "app_grants" then
        assert.equal(tenant:count("api_tokens"),
          count("SELECT count(*) n FROM app_grants WHERE instance_id = ? AND client_id = 'okta.api_token'", inst.id))
      end
    end
  end)
end)

-- Okta's service apps require DPoP by default: the token is bound to a key the instance holds.
describe("okta connector with a DPoP service app", function()
  setup(function() host.home = tmp_home() end)

  it("gets a DPoP-bound token (nonce first), proves each request, retries with a fresh proof", function()
    local key = crypto.keygen("RSA")
    local tenant = okta_tenant.new { seed = 13, users = 15, groups = 3, events_per_day = 10, days = 2,
      oauth_client = { client_id = "0oadpop", public_key = crypto.jwk_pem(crypto.jwk(key)), dpop = true,
                       scopes = { "okta.users.read", "okta.groups.read" } } }
    local srv = require("helpers").serve(tenant)
    local inst = require("helpers").instance("okta", "okta-dpop", { domain = "acme.okta.com", base_url = srv.url,
      insecure_loopback = true, auth = "oauth", client_id = "0oadpop", components = "users,groups" }, { private_key = key })
    -- an answer cut short is asked again, after the proof was used: the retry needs a proof of its own
    tenant:fault { kind = "truncated", count = 1, path = "/api/v1/groups" }
    local results, ok = runtime.sync(inst)
    for _, r in ipairs(results) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
    assert.is_true(ok)
    assert.equal(tenant:count("users"), count("SELECT count(*) n FROM users WHERE instance_id = ?", inst.id))
    assert.equal(tenant:count("groups"), count("SELECT count(*) n FROM groups WHERE instance_id = ?", inst.id))
    -- the token is DPoP-bound, to the key kept in the vault
    local tok
    for t, at in pairs(tenant.access_tokens) do tok = at end
    assert.is_string(tok.jkt)
    assert.is_string(instances.instance(runtime.store(), "okta-dpop"):secret("dpop_key"))
    -- an expired token: a new one, with the nonce already known (one token request)
    local n_before = #tenant.log
    inst:set_secret("token_expires_at", tostring(sched.time() - 1))
    assert.is_true(select(2, runtime.sync(inst, { streams = { "users" } })))
    local token_calls = 0
    for i = n_before + 1, #tenant.log do if tenant.log[i].path:match("/oauth2/v1/token$") then token_calls = token_calls + 1 end end
    assert.equal(1, token_calls)
    srv:close()
  end)

  it("says clearly when the app requires DPoP and the instance was told it does not", function()
    local key = crypto.keygen("RSA")
    local tenant = okta_tenant.new { seed = 14, users = 5, groups = 2, events_per_day = 5, days = 1,
      oauth_client = { client_id = "0oadpop", public_key = crypto.jwk_pem(crypto.jwk(key)), dpop = true } }
    local srv = require("helpers").serve(tenant)
    local inst = require("helpers").instance("okta", "okta-nodpop", { domain = "acme.okta.com", base_url = srv.url,
      insecure_loopback = true, auth = "oauth", client_id = "0oadpop", dpop = false }, { private_key = key })
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    srv:close()
    assert.is_false(ok)
    assert.matches("DPoP proof JWT header is missing", results[1].error, 1, true)
  end)
end)
