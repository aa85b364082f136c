-- The GitHub connector against the GitHub sandbox tenant: full and incremental scans equal the tenant's
-- ground truth, two orgs stay apart, governance changes the tenant, secondary rate limits are survived,
-- and webhooks are accepted only when signed with the shared secret.
local context = require "sdk.context"
local github_tenant = require "sandbox.github"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local function add_instance(name, org, url, token, extra)
  local settings = { org = org, base_url = url, insecure_loopback = true, initial_days = 90 }
  for k, v in pairs(extra or {}) do settings[k] = v end
  return require("helpers").instance("github", name, settings, { token = token })
end

local count = require("helpers").count
local function n_of(entity, inst, extra)
  return count("SELECT count(*) n FROM " .. entity .. " WHERE instance_id = ? AND " .. (extra or "1"), inst.id)
end

-- Ground truth from the tenant's state: /members lists active members only (pending invitees are not
-- members yet); team member listings cover every team.
local function truth(t)
  local active, admins, team_members = 0, 0, 0
  for _, m in ipairs(t.state.members) do
    if m.state == "active" then
      active = active + 1
      if m.role == "admin" then admins = admins + 1 end
    end
  end
  for _, team in ipairs(t.state.teams) do
    for login in pairs(team.members) do
      local m = t:member(login)
      if m and m.state == "active" then team_members = team_members + 1 end
    end
  end
  return { members = active, admins = admins, team_members = team_members }
end

local sync_ok = require("helpers").sync_ok

describe("github connector", function()
  local ta, tb, srv_a, srv_b, hooks, inst_a, inst_b
  local received = {}
  setup(function()
    host.home = tmp_home()
    ta = github_tenant.new { seed = 11, org = "acme", members = 45, teams = 6, outside_collaborators = 7,
                             audit_events = 450, days = 30,
                             oauth_apps = { { client_id = "Ov23liSandboxApp", client_secret = "oauth-app-secret", name = "cachost" } } }
    tb = github_tenant.new { seed = 12, org = "globex", members = 12, teams = 2, outside_collaborators = 3,
                             audit_events = 40, days = 30 }
    srv_a = assert(server.listen { port = 0 }); ta:mount(srv_a)
    srv_b = assert(server.listen { port = 0 }); tb:mount(srv_b)
    inst_a = add_instance("gh-acme", "acme", srv_a.url, ta.token)
    inst_a:set_secret("webhook_secret", "hook-secret-acme")
    inst_b = add_instance("gh-globex", "globex", srv_b.url, tb.token)
    -- the webhook endpoint as the daemon would serve it: the connector's handler decides the answer
    hooks = assert(server.listen { port = 0 })
    hooks:route("POST", "/webhooks/:instance", function(req)
      local inst = assert(instances.instance(runtime.store(), req.params.instance))
      local ctx = sync.context(runtime.store(), inst, "webhook")
      local status, body, refetch = context.connector(ctx).webhook(ctx, req)
      received[#received + 1] = { status = status, event = req.headers["x-github-event"], refetch = refetch }
      for _, r in ipairs(refetch or {}) do context.connector(ctx).fetch[r.entity](ctx, r.id) end
      return status, body and json.encode(body) or ""
    end)
    hooks:route("GET", "/callback", function(req) return 200, json.encode(req.query) end)
  end)
  teardown(function() srv_a:close(); srv_b:close(); hooks:close() end)

  it("scans members, outside collaborators, teams, owners, grants and the audit log to the ground truth", function()
    sync_ok(inst_a)
    local gt = truth(ta)
    assert.equal(gt.members + ta:count("outside_collaborators"), n_of("users", inst_a))
    assert.equal(ta:count("outside_collaborators"), n_of("users", inst_a, "external = 1"))
    assert.equal(gt.admins, n_of("users", inst_a, "is_admin = 1"))
    assert.equal(gt.admins, n_of("privileges", inst_a, "role = 'owner'"))
    assert.equal(#ta:truth().privileges, n_of("privileges", inst_a))
    assert.equal(ta:count("teams"), n_of("groups", inst_a))
    assert.equal(gt.team_members, n_of("group_members", inst_a))
    assert.equal(ta:count("credential_authorizations") + #ta.state.installations, n_of("app_grants", inst_a))
    assert.equal(ta:count("audit_events"), n_of("activities", inst_a))
    assert.equal(0, n_of("activities", inst_a, "kind IS NULL OR time IS NULL OR actor IS NULL"))
    assert.is_true(n_of("activities", inst_a, "kind = 'admin'") > 0)
    assert.is_true(n_of("activities", inst_a, "kind = 'signin'") > 0)
    -- include=all: Git events too; locations are the country codes GitHub sends (actor_location.country_code)
    assert.is_true(n_of("activities", inst_a, "action LIKE 'git.%'") > 0)
    assert.equal(0, n_of("activities", inst_a, "location IS NULL OR length(location) <> 2"))
    -- more than one page everywhere it matters (per_page is 100)
    assert.is_true(ta:count("audit_events") > 100)
  end)

  it("re-scanning changes nothing; the audit log is read incrementally", function()
    local before = n_of("activities", inst_a)
    local by = sync_ok(inst_a)
    for _, e in ipairs { "users", "groups", "group_members", "privileges", "app_grants" } do
      local stream_counts = by.users[e] or by.groups[e] or by.privileges[e] or by.app_grants[e]
      assert.equal(0, stream_counts.added, e); assert.equal(0, stream_counts.changed, e); assert.equal(0, stream_counts.removed, e)
    end
    assert.equal(before, n_of("activities", inst_a))
    ta:simulate_activity("org.update_member", 4, { user = ta.state.members[2].login, permission = "admin" })
    ta:simulate_activity("oauth_authorization.create", 2, { actor = ta.state.members[3].login })
    local req0 = #ta.log
    by = sync_ok(inst_a, { streams = { "activities" } })
    assert.equal(before + 6, n_of("activities", inst_a))
    assert.equal(6, by.activities.activities.added)
    -- resumed from the stored cursor (the last event's time): one page, not the five of the whole log
    assert.equal(1, #ta.log - req0)
    assert.equal(4, n_of("activities", inst_a, "action = 'org.update_member' AND kind = 'admin' AND time >= '" .. store.iso(sched.time() - 600) .. "'"))
  end)

  it("connects with the OAuth web flow on the web host, not the API host, and scans with the token", function()
    local auth = require "sdk.auth"
    local inst = add_instance("gh-oauth", "acme", srv_a.url, "unused", {
      auth = "oauth", client_id = "Ov23liSandboxApp", oauth_base_url = srv_a.url })
    inst:set_secret("client_secret", "oauth-app-secret")
    local ctx = sync.context(runtime.store(), inst, "connect")
    local scheme = auth.scheme(context.connector(ctx), inst)
    local url, exchange = auth.authorization_code(context.client(ctx), scheme, hooks.url .. "/callback")
    local prefix = srv_a.url .. "/login/oauth/authorize?"
    assert.equal(prefix, url:sub(1, #prefix))
    assert.is_nil(url:find("code_challenge", 1, true))       -- GitHub has no PKCE
    assert.matches("scope=read%%3Aorg%%20admin%%3Aorg%%20admin%%3Aread%%20read%%3Aaudit_log", url)
    -- the browser: consent is automatic in the sandbox, which redirects to our loopback callback
    local resp = assert(http.request { url = url })
    local params = json.decode(resp.body)
    assert.is_string(params.code)
    assert.is_nil(exchange { code = params.code, state = "forged" })
    assert(exchange(params))
    assert.matches("^gho_", inst:secret("access_token"))
    sync_ok(inst, { streams = { "users" } })
    assert.equal(truth(ta).members + ta:count("outside_collaborators"), n_of("users", inst))
    -- without oauth_base_url the web flow would go to github.com, the API to the instance's base_url
    assert.equal("https://github.com/login/oauth/access_token", auth.endpoint({ inst = { settings = {} } }, scheme, scheme.token_url))
  end)

  it("keeps two organizations apart", function()
    sync_ok(inst_b)
    local gt = truth(tb)
    assert.equal(gt.members + tb:count("outside_collaborators"), n_of("users", inst_b))
    assert.equal(tb:count("teams"), n_of("groups", inst_b))
    assert.equal(tb:count("audit_events"), n_of("activities", inst_b))
    assert.equal(truth(ta).members + ta:count("outside_collaborators"), n_of("users", inst_a))
    local mixed = runtime.store().db:query([[SELECT count(*) n FROM activities WHERE instance_id = ? AND unzstd(raw) NOT LIKE '%"org":"acme"%']], inst_a.id)
    assert.equal(0, mixed[1].n)
    mixed = runtime.store().db:query([[SELECT count(*) n FROM activities WHERE instance_id = ? AND unzstd(raw) NOT LIKE '%"org":"globex"%']], inst_b.id)
    assert.equal(0, mixed[1].n)
  end)

  it("removes a member and an outside collaborator from the org, and the next scan sees it", function()
    local st = runtime.store()
    local ctx = sync.context(st, inst_a, "action")
    local u = st.db:query("SELECT * FROM users WHERE instance_id = ? AND external = 0 AND is_admin = 0 AND deleted_at IS NULL ORDER BY ext_id LIMIT 1", inst_a.id)[1]
    local x = st.db:query("SELECT * FROM users WHERE instance_id = ? AND external = 1 AND deleted_at IS NULL ORDER BY ext_id LIMIT 1", inst_a.id)[1]
    assert.is_not_nil(ta:member(u.ext_id))
    context.connector(ctx).actions.remove_member(ctx, u)
    context.connector(ctx).actions.remove_member(ctx, x)
    assert.is_nil(ta:member(u.ext_id))
    assert.is_nil(ta:outside(x.ext_id))
    sync_ok(inst_a, { streams = { "users", "groups", "activities" } })
    assert.is_not_nil(st.db:query("SELECT deleted_at FROM users WHERE id = ?", u.id)[1].deleted_at)
    assert.is_not_nil(st.db:query("SELECT deleted_at FROM users WHERE id = ?", x.id)[1].deleted_at)
    assert.equal(0, n_of("group_members", inst_a, "member_id = '" .. u.ext_id .. "' AND deleted_at IS NULL"))
    assert.equal(truth(ta).team_members, n_of("group_members", inst_a, "deleted_at IS NULL"))
    assert.equal(1, n_of("activities", inst_a, "action = 'org.remove_member' AND target = '" .. u.ext_id .. "' AND kind = 'admin'"))
  end)

  it("revokes a SAML credential authorization", function()
    local st = runtime.store()
    local ctx = sync.context(st, inst_a, "action")
    local g = st.db:query("SELECT * FROM app_grants WHERE instance_id = ? AND ext_id LIKE 'credential:%' AND deleted_at IS NULL LIMIT 1", inst_a.id)[1]
    local n = ta:count("credential_authorizations")
    context.connector(ctx).actions.revoke_grant(ctx, g)
    assert.equal(n - 1, ta:count("credential_authorizations"))
    local inst_row = st.db:query("SELECT * FROM app_grants WHERE instance_id = ? AND ext_id LIKE 'installation:%' LIMIT 1", inst_a.id)[1]
    assert.has_error(function() context.connector(ctx).actions.revoke_grant(ctx, inst_row) end)
  end)

  it("survives GitHub's secondary rate limit (403 with retry-after) and the primary one", function()
    local client = context.client(sync.context(runtime.store(), inst_b, "x"))
    local throttled = client.stats.throttled
    tb:fault { kind = "secondary", count = 2, retry_after = 0 }
    tb:fault { kind = "primary", count = 1, retry_after = 0 }
    local by = sync_ok(inst_b, { streams = { "users", "groups" } })
    assert.equal(3, client.stats.throttled - throttled)
    assert.equal(0, by.users.users.removed)
    assert.equal(truth(tb).members + tb:count("outside_collaborators"), n_of("users", inst_b, "deleted_at IS NULL"))
  end)

  it("a 403 that is not a rate limit is an auth error, not a retry", function()
    local resp = { status = 403, headers = {}, body = '{"message":"Must have admin rights to Repository."}' }
    local c = context.connector(sync.context(runtime.store(), inst_b, "x"))
    assert.is_false(c.is_throttled(resp))
    resp.body = '{"message":"You have exceeded a secondary rate limit. Please wait a few minutes."}'
    assert.is_true(c.is_throttled(resp))
    assert.is_true(c.is_throttled { status = 403, headers = { ["x-ratelimit-remaining"] = "0" }, body = "" })
  end)

  it("accepts signed webhooks, refuses unsigned and forged ones", function()
    local url = hooks.url .. "/webhooks/gh-acme"
    ta:create_hook { url = url, secret = "hook-secret-acme", events = { "organization", "membership" } }
    ta:flush()
    assert.equal("ping", received[#received].event)
    assert.equal(200, received[#received].status)
    -- a member removed in the org: signed delivery, the connector asks for the user again
    local st = runtime.store()
    local ctx = sync.context(st, inst_a, "action")
    local u = st.db:query("SELECT * FROM users WHERE instance_id = ? AND external = 0 AND is_admin = 0 AND deleted_at IS NULL ORDER BY ext_id DESC LIMIT 1", inst_a.id)[1]
    local n0 = #received
    context.connector(ctx).actions.remove_member(ctx, u)
    ta:flush()
    local org_event
    for i = n0 + 1, #received do if received[i].event == "organization" then org_event = received[i] end end
    assert.is_not_nil(org_event)
    assert.equal(200, org_event.status)
    assert.same({ { entity = "users", id = u.ext_id } }, org_event.refetch)

    local body = '{"action":"member_added","membership":{"user":{"login":"' .. u.ext_id .. '"}}}'
    local function post(headers) return assert(http.request { method = "POST", url = url, headers = headers, body = body }) end
    local unsigned = post { ["X-GitHub-Event"] = "organization", ["Content-Type"] = "application/json" }
    assert.equal(401, unsigned.status)
    local forged = post { ["X-GitHub-Event"] = "organization", ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = "sha256=" .. crypto.hex(crypto.hmac_sha256("wrong-secret", body)) }
    assert.equal(401, forged.status)
    local tampered = post { ["X-GitHub-Event"] = "organization", ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = "sha256=" .. crypto.hex(crypto.hmac_sha256("hook-secret-acme", body .. " ")) }
    assert.equal(401, tampered.status)
    local signed = post { ["X-GitHub-Event"] = "organization", ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = "sha256=" .. crypto.hex(crypto.hmac_sha256("hook-secret-acme", body)) }
    assert.equal(200, signed.status)
    -- the re-fetch of a user who is still a member updates that row; a removed one emits nothing
    local m = st.db:query("SELECT * FROM users WHERE instance_id = ? AND external = 0 AND deleted_at IS NULL ORDER BY ext_id LIMIT 1", inst_a.id)[1]
    local fctx = sync.context(st, inst_a, "webhook")
    context.connector(fctx).fetch.users(fctx, m.ext_id)
    assert.equal(1, context.engine(fctx).counts.users.unchanged)
    context.connector(fctx).fetch.users(fctx, u.ext_id)
    assert.equal(1, context.engine(fctx).counts.users.unchanged + context.engine(fctx).counts.users.added + context.engine(fctx).counts.users.changed)
  end)
end)
