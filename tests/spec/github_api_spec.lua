-- The GitHub connector held to GitHub's REST reference through its sandbox: the media type and API
-- version on every request, the scope each listing needs (a 403 is that permission missing, the other
-- streams go on), GitHub App auth (app JWT -> installation token), fine-grained PATs, organization roles,
-- members without two-factor authentication.
local github_tenant = require "sandbox.github"
local runtime = require "runtime"
local helpers = require "helpers"

local function by_stream(results)
  local by = {}
  for _, r in ipairs(results) do by[r.stream] = r end
  return by
end

local function instance(name, url, token, extra)
  local settings = { org = "acme", base_url = url, insecure_loopback = true, initial_days = 90 }
  for k, v in pairs(extra or {}) do settings[k] = v end
  return helpers.instance("github", name, settings, { token = token })
end

describe("github connector against GitHub's reference", function()
  local servers = {}
  local function serve(t)
    local srv = helpers.serve(t)
    servers[#servers + 1] = srv
    return srv
  end
  setup(function() host.home = helpers.tmp_dir() end)
  teardown(function() for _, s in ipairs(servers) do s:close() end end)

  it("sends Accept: application/vnd.github+json and X-GitHub-Api-Version: 2022-11-28 on every API request", function()
    local t = github_tenant.new { seed = 41, org = "acme", members = 8, teams = 2, audit_events = 30, days = 10 }
    local srv = serve(t)
    helpers.sync_ok(instance("gh-headers", srv.url, t.token))
    local n = 0
    for v, k in pairs(t.sent_versions) do assert.equal("2022-11-28", v, k .. " request(s)"); n = n + k end
    assert.is_true(n > 10)
    for a, k in pairs(t.sent_accept) do assert.equal("application/vnd.github+json", a, k .. " request(s)") end
  end)

  it("a classic token without admin:read: the installations are 'permission missing: admin:read', the rest goes on", function()
    local t = github_tenant.new { seed = 42, org = "acme", members = 8, teams = 2, audit_events = 30, days = 10,
                                  token_scopes = "admin:org, read:audit_log" }
    local srv = serve(t)
    local inst = instance("gh-noadminread", srv.url, t.token)
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    local by = by_stream(results)
    assert.equal("permission: admin:read", by.app_grants.error)
    for stream, r in pairs(by) do
      if stream ~= "app_grants" then assert(r.counts, stream .. ": " .. tostring(r.error)) end
    end
    -- the SAML credential authorizations were read before the installations were refused
    assert.equal(t:count("credential_authorizations"), helpers.n_of("app_grants", inst, "ext_id LIKE 'credential:%'"))
    assert.equal("connected", require("instances").instance(runtime.store(), "gh-noadminread").row.status)
    assert.equal("permission missing: admin:read", require("sync").health(by.app_grants.error))
  end)
  it("connects as a GitHub App: its JWT buys one installation token that every request uses, renewed before its hour is up", function()
    local priv = crypto.keygen("RSA")
    local t = github_tenant.new { seed = 43, org = "acme", members = 10, teams = 3, audit_events = 40, days = 10,
      app = { app_id = 2218, client_id = "Iv23liSandbox", public_key = assert(crypto.jwk_pem(assert(crypto.jwk(priv)))) } }
    local srv = serve(t)
    local inst = helpers.instance("github", "gh-app", { org = "acme", base_url = srv.url, insecure_loopback = true,
      initial_days = 90, auth = "app", app_id = "Iv23liSandbox" }, { private_key = priv })
    helpers.sync_ok(inst)
    assert.equal(2, t.jwts)              -- the JWT on GET /orgs/acme/installation, then on POST .../access_tokens
    assert.equal(1, t.nins)              -- one installation token for the whole sync
    helpers.figure("GitHub App sync: %d API requests on %d installation token (%d JWT uses)",
      t.token_kinds.installation, t.nins, t.jwts)
    assert.is_nil(t.token_kinds.pat)
    assert.is_true(t.token_kinds.installation > 10)
    -- every stream read to the ground truth, fine-grained PATs too (only an app may list them)
    local truth = t:truth()
    assert.equal(#truth.users, helpers.n_of("users", inst))
    assert.equal(#truth.privileges, helpers.n_of("privileges", inst))
    assert.equal(#truth.app_grants + #t.state.pats, helpers.n_of("app_grants", inst))
    assert.equal(#t.state.pats, helpers.n_of("app_grants", inst, "ext_id LIKE 'pat:%' AND user IS NOT NULL AND scopes LIKE '%organization.members:read%'"))
    assert.equal(t:count("audit_events"), helpers.count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    -- within REFRESH_MARGIN of its expiry the token is exchanged again, with a new JWT
    inst:set_secret("token_expires_at", tostring(math.floor(sched.time()) + 30))
    helpers.sync_ok(inst, { streams = { "groups" } })
    assert.equal(2, t.nins)
    -- revoke_token: the PAT's access to the org is revoked (POST {"action":"revoke"}), the grant is gone
    local ctx = require("sync").context(runtime.store(), inst, "action")
    local g = runtime.store().db:query("SELECT * FROM app_grants WHERE instance_id = ? AND ext_id LIKE 'pat:%' ORDER BY ext_id LIMIT 1", inst.id)[1]
    local n = #t.state.pats
    require("sdk.context").connector(ctx).actions.revoke_token(ctx, g)
    assert.equal(n - 1, #t.state.pats)
    for _, p in ipairs(t.state.pats) do assert.not_equal(g.ext_id, "pat:" .. p.id) end
    assert.has_error(function() require("sdk.context").connector(ctx).actions.revoke_token(ctx, { ext_id = "installation:1" }) end)
  end)

  it("a GitHub App whose key GitHub does not know is reconnect needed", function()
    local t = github_tenant.new { seed = 44, org = "acme", members = 6, teams = 2, audit_events = 20, days = 10,
      app = { app_id = 2218, client_id = "Iv23liSandbox", public_key = assert(crypto.jwk_pem(assert(crypto.jwk(crypto.keygen("RSA"))))) } }
    local srv = serve(t)
    local inst = helpers.instance("github", "gh-app-wrongkey", { org = "acme", base_url = srv.url, insecure_loopback = true,
      auth = "app", app_id = "2218" }, { private_key = crypto.keygen("RSA") })
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    assert.matches("^auth: token exchange refused: .*401", results[1].error)
    assert.equal("reconnect needed", require("sync").health(results[1].error))
    assert.is_nil(t.jwts)
  end)

  it("organization roles are privileges (held directly or through a team); users carry their 2FA state", function()
    local t = github_tenant.new { seed = 45, org = "acme", members = 30, teams = 4, outside_collaborators = 8,
                                  audit_events = 20, days = 10 }
    local srv = serve(t)
    local inst = instance("gh-roles", srv.url, t.token)
    helpers.sync_ok(inst)
    local holders, indirect = 0, 0
    for _, r in ipairs(t:org_roles()) do
      for _, h in ipairs(t:role_holders(r)) do
        holders = holders + 1
        if h.assignment == "indirect" then indirect = indirect + 1 end
        assert.equal(1, helpers.n_of("privileges", inst, ("user_id = '%s' AND role = '%s'"):format(h.user.login, r.name)))
      end
    end
    assert.is_true(indirect > 0)
    assert.equal(holders, helpers.n_of("privileges", inst, "role <> 'owner'"))
    -- two-factor authentication: GitHub's field on the stored user
    local off = 0
    for _, m in ipairs(t.state.members) do if m.state == "active" and not m.two_factor then off = off + 1 end end
    for _, m in ipairs(t.state.outside) do if not m.two_factor then off = off + 1 end end
    assert.is_true(off > 0)
    assert.equal(off, helpers.n_of("users", inst, "json_extract(unzstd(raw), '$.two_factor_authentication') = 0"))
    assert.equal(#t:truth().users - off, helpers.n_of("users", inst, "json_extract(unzstd(raw), '$.two_factor_authentication') = 1"))
  end)
  it("a classic token without admin:org: the organization roles are 'permission missing: admin:org', the owners are in", function()
    local t = github_tenant.new { seed = 46, org = "acme", members = 10, teams = 2, audit_events = 20, days = 10,
                                  token_scopes = "read:org, admin:read, read:audit_log" }
    local srv = serve(t)
    local inst = instance("gh-noadminorg", srv.url, t.token)
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    local by = by_stream(results)
    assert.equal("permission: admin:org", by.privileges.error)
    assert.equal("permission missing: admin:org", require("sync").health(by.privileges.error))
    for stream, r in pairs(by) do
      if stream ~= "privileges" then assert(r.counts, stream .. ": " .. tostring(r.error)) end
    end
    assert.equal(t:count("admins"), helpers.n_of("privileges", inst, "role = 'owner'"))
    assert.equal(t:count("admins"), helpers.n_of("users", inst, "is_admin = 1"))
  end)
  it("a GitHub App without organization_administration: the audit log and installations are permission missing, naming it", function()
    local priv = crypto.keygen("RSA")
    local t = github_tenant.new { seed = 47, org = "acme", members = 8, teams = 2, audit_events = 20, days = 10,
      app = { app_id = 2218, client_id = "Iv23liSandbox", public_key = assert(crypto.jwk_pem(assert(crypto.jwk(priv)))) },
      app_permissions = { members = "read", organization_personal_access_tokens = "read", organization_custom_org_roles = "read" } }
    local srv = serve(t)
    local inst = helpers.instance("github", "gh-app-noadmin", { org = "acme", base_url = srv.url, insecure_loopback = true,
      initial_days = 90, auth = "app", app_id = "2218" }, { private_key = priv })
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    local by = by_stream(results)
    local health = require("sync").health
    assert.equal("permission missing: Resource not accessible by integration (needs organization_administration=read)",
      health(by.activities.error))
    assert.equal("permission missing: organization_administration:read", health(by.app_grants.error))
    for _, stream in ipairs { "users", "groups", "privileges" } do assert(by[stream].counts, stream .. ": " .. tostring(by[stream].error)) end
    assert.equal(#t.state.pats, helpers.n_of("app_grants", inst, "ext_id LIKE 'pat:%'"))
  end)
end)
