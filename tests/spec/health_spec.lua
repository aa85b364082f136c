-- Health per stream, told apart by what the provider answered: a dead credential (401 on every call) is
-- "reconnect needed" and stops the instance's scan; a 403 on one stream is "permission missing" and the
-- other streams go on; a feature the tenant's plan does not offer (GitHub's org audit log off Enterprise
-- Cloud, Graph's sign-in logs without Entra ID P1/P2) is "unavailable (needs ...)".  Each is checked in
-- stream_state, in the instance's status and in `cachost status` as the binary prints it.
local github_tenant = require "sandbox.github"
local box_tenant = require "sandbox.box"
local ms = require "sandbox.microsoft"
local runtime = require "runtime"
local instances = require "instances"
local helpers = require "helpers"
local procs = require "procs"

local function stream_state(inst, stream)
  return runtime.store().db:query("SELECT * FROM stream_state WHERE instance_id = ? AND stream = ?", inst.id, stream)[1]
end

-- `cachost status NAME --format json` run as a user would -> stream -> row
local function status_rows(name)
  local out, code = procs.sh(("CACHOST_HOME='%s' %s status %s --format json"):format(host.home, procs.BIN, name))
  assert(code == 0, out)
  local by = {}
  for _, r in ipairs(assert(json.decode(out), out)) do by[r.stream] = r end
  return by
end

local function by_stream(results)
  local by = {}
  for _, r in ipairs(results) do by[r.stream] = r end
  return by
end

local function github_instance(name, url, token)
  return helpers.instance("github", name, { org = "acme", base_url = url, insecure_loopback = true, initial_days = 90 },
    { token = token })
end

describe("stream health", function()
  local servers = {}
  local function serve(t)
    local srv = helpers.serve(t)
    servers[#servers + 1] = srv
    return srv
  end
  setup(function() host.home = helpers.tmp_dir() end)
  teardown(function() for _, s in ipairs(servers) do s:close() end end)

  it("a revoked token (401 on every call) is reconnect needed and stops the scan", function()
    local t = github_tenant.new { seed = 31, org = "acme", members = 6, teams = 2, audit_events = 20, days = 10 }
    local srv = serve(t)
    local inst = github_instance("gh-revoked", srv.url, t.token)
    helpers.sync_ok(inst)
    t.token = "ghp_anotherTokenTheOldOneWasRevoked000000"       -- the org revoked the instance's token
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    assert.equal(1, #results)                                    -- the first stream's 401 ends the scan
    assert.matches("^auth: HTTP 401", results[1].error)
    assert.matches("^auth: HTTP 401", stream_state(inst, results[1].stream).last_error)
    assert.equal("reconnect_needed", instances.instance(runtime.store(), "gh-revoked").row.status)
    local rows = status_rows("gh-revoked")
    assert.equal("reconnect needed", rows[results[1].stream].status)
    assert.equal("ok", rows.activities.status)                   -- not reached: its last scan stands
  end)

  it("a 403 insufficient scope on one stream is permission missing; the other streams complete", function()
    local t = box_tenant.new { seed = 32, users = 8, groups = 3, folders = 3, files = 8, events = 40, days = 10,
                               client_id = "box-client", client_secret = "box-secret", enterprise_id = "777002",
                               missing_scopes = { "manage_groups" } }
    local srv = serve(t)
    local inst = helpers.instance("box", "box-noscope", { client_id = "box-client", enterprise_id = "777002",
      auth = "client_credentials", base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0",
      oauth_base_url = srv.url, insecure_loopback = true, initial_days = 90 }, { client_secret = "box-secret" })
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    local by = by_stream(results)
    assert.matches("^permission: HTTP 403: .*insufficient_scope", by.groups.error)
    for stream, r in pairs(by) do
      if stream ~= "groups" then assert(r.counts, stream .. ": " .. tostring(r.error)) end
    end
    assert.truthy(by.users and by.files and by.activities, "every stream ran")
    assert.is_true(helpers.n_of("users", inst) > 0)
    assert.matches("^permission: HTTP 403", stream_state(inst, "groups").last_error)
    assert.equal("connected", instances.instance(runtime.store(), "box-noscope").row.status)
    local rows = status_rows("box-noscope")
    assert.equal("permission missing: The request requires higher privileges than provided by the access token. (insufficient_scope)",
      rows.groups.status)
    assert.equal("ok", rows.users.status)
    assert.equal("ok", rows.files.status)
  end)

  it("GitHub's org audit log on a Team-plan org is unavailable (needs GitHub Enterprise Cloud)", function()
    local t = github_tenant.new { seed = 33, org = "acme", members = 6, teams = 2, audit_events = 20, days = 10, plan = "team" }
    local srv = serve(t)
    local inst = github_instance("gh-team", srv.url, t.token)
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    local by = by_stream(results)
    assert.matches("^unavailable: needs GitHub Enterprise Cloud: .*acme is on the team plan", by.activities.error)
    for stream, r in pairs(by) do
      if stream ~= "activities" then assert(r.counts, stream .. ": " .. tostring(r.error)) end
    end
    assert.matches("^unavailable: ", stream_state(inst, "activities").last_error)
    assert.equal("unavailable", require("sync").state(stream_state(inst, "activities").last_error))   -- /metrics' state
    assert.equal("connected", instances.instance(runtime.store(), "gh-team").row.status)
    local rows = status_rows("gh-team")
    assert.equal("unavailable (needs GitHub Enterprise Cloud)", rows.activities.status)
    assert.equal("ok", rows.users.status)
  end)

  it("Graph's sign-in logs without Entra ID P1/P2 are unavailable; the directory audits are still read", function()
    local TENANT, CLIENT, SECRET = "4d3c2b1a-0f9e-4d8c-9b7a-6f5e4d3c2b1a", "7e6d5c4b-3333-4444-8555-a66677778888", "sandbox~free.secret"
    local t = ms.new { seed = 34, users = 8, groups = 2, days = 2, signins = 40, audits = 30, entra_premium = false,
                       tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET }
    local srv = serve(t)
    assert(instances.add(runtime.store(), "office365", "o365-free", { tenant_id = TENANT, client_id = CLIENT,
      client_secret = SECRET, components = "users,audits,signins", base_url = srv.url, insecure_loopback = "true" }))
    local inst = assert(instances.instance(runtime.store(), "o365-free"))
    local results, ok = runtime.sync(inst)
    assert.is_false(ok)
    local by = by_stream(results)
    assert.matches("^unavailable: needs Microsoft Entra ID P1 or P2: HTTP 403: .*Authentication_RequestFromNonPremiumTenantOrB2CTenant",
      by.activities.error)
    assert(by.users.counts, tostring(by.users.error))
    local n = function(extra)
      return helpers.count("SELECT count(*) n FROM activities WHERE instance_id = ? AND " .. extra, inst.id)
    end
    assert.is_true(n("kind <> 'signin'") > 0)                    -- the directory audits came in
    assert.equal(0, n("kind = 'signin'"))
    assert.matches("^unavailable: ", stream_state(inst, "activities").last_error)
    assert.equal("unavailable", require("sync").state(stream_state(inst, "activities").last_error))   -- /metrics' state
    assert.equal("connected", instances.instance(runtime.store(), "o365-free").row.status)
    local rows = status_rows("o365-free")
    assert.equal("unavailable (needs Microsoft Entra ID P1 or P2)", rows.activities.status)
    assert.equal("ok", rows.users.status)
  end)
end)
