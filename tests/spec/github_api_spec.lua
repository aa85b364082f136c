-- The GitHub connector held to GitHub's REST reference through its sandbox: the media type and API
-- version on every request, the scope each listing needs (a 403 is that permission missing, the other
-- streams go on).
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
end)
