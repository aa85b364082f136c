-- policies/leaked_access_key.lua against AWS sandbox accounts: an access key id found in a shared file that
-- is the live app grant of a connected instance is deactivated in that instance (the file's own, or another
-- one), in enforce mode only; a key cachost does not know is not this policy's business.
local runtime = require "runtime"
local helpers = require "helpers"
local aws_tenant = require "sandbox.aws"

local function add(name, t, srv)
  return helpers.instance("aws", name, { base_url = srv.url, insecure_loopback = true, role_arn = t.role.Arn,
    external_id = t.role.external_id }, { access_key_id = t.audit_key.id, secret_access_key = t.audit_key.secret })
end

local function set_mode(mode)
  for _, p in ipairs(runtime.policies()) do
    if p.id == "leaked_access_key" then p.mode = mode end
    if p.id ~= "leaked_access_key" then p.enabled = false end       -- this policy alone
  end
end

local function alerts(inst)
  return runtime.store().db:query("SELECT * FROM alerts WHERE policy = 'leaked_access_key' AND instance_id = ?", inst.id)
end

describe("leaked_access_key", function()
  local t1, t2, srv1, srv2, a1, a2, leaked
  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    runtime = require "runtime"
    t1, t2 = aws_tenant.new { seed = 21, users = 6 }, aws_tenant.new { seed = 22, users = 6 }
    srv1, srv2 = helpers.serve(t1), helpers.serve(t2)
    a1, a2 = add("aws-one", t1, srv1), add("aws-two", t2, srv2)
    -- the account's own seeded leak: ops-automation's key in a public object (backup/credentials.csv)
    leaked = t1.users["ops-automation"].keys[1]
    runtime.watch(true)
  end)
  after_each(function() runtime.watch(false); srv1:close(); srv2:close() end)

  it("deactivates the key of a connected account found in its public object (enforce)", function()
    set_mode("enforce")
    helpers.sync_ok(a1)
    assert.equal("Inactive", t1.keys[leaked].status)
    local g = runtime.store().db:query("SELECT * FROM governance_actions WHERE policy = 'leaked_access_key'")
    assert.equal(1, #g)
    assert.same({ "revoke_token", leaked, "executed", "ok", a1.id }, { g[1].action, g[1].target_id, g[1].mode, g[1].result, g[1].instance_id })
    local a = alerts(a1)
    assert.equal(1, #a)
    assert.matches("/acme%-data/backup/credentials.csv is shared %(public%) and holds the access key of ops%-automation %(aws%-one%)", a[1].title)
    local ev = json.decode(a[1].evidence)
    assert.equal(leaked:sub(1, 4) .. ("*"):rep(12) .. leaked:sub(-4), ev.grants[1].masked)
    assert.is_nil(ev.grants[1].ext_id)
    -- the grant is gone from what cachost holds (only active keys are grants), and the other keys stay
    assert.equal(0, helpers.count("SELECT count(*) n FROM app_grants WHERE ext_id = ? AND deleted_at IS NULL", leaked))
    assert.equal(#t1:active_keys(), helpers.n_of("app_grants", a1))
  end)

  it("deactivates it in its own instance when the file is another account's, once", function()
    set_mode("enforce")
    t2:put_object("acme-public-site", "deploy/env.txt", "AWS_ACCESS_KEY_ID=" .. leaked .. "\n", { acl = "public-read" })
    for _, p in ipairs(runtime.policies()) do if p.id == "leaked_access_key" then p.enabled = false end end
    helpers.sync_ok(a1)                                -- a1's grants known; its own leak left alone here
    assert.equal("Active", t1.keys[leaked].status)
    for _, p in ipairs(runtime.policies()) do if p.id == "leaked_access_key" then p.enabled = true end end
    helpers.sync_ok(a2, { streams = { "files" } })
    assert.equal("Inactive", t1.keys[leaked].status)
    local g = runtime.store().db:query("SELECT * FROM governance_actions WHERE policy = 'leaked_access_key'")
    assert.equal(1, #g)
    assert.same({ leaked, a1.id, "ok" }, { g[1].target_id, g[1].instance_id, g[1].result })
    assert.equal(1, #alerts(a2))                       -- the alert is the file's
    helpers.sync_ok(a2, { streams = { "files" } })
    assert.equal(1, #runtime.store().db:query("SELECT * FROM governance_actions WHERE policy = 'leaked_access_key'"))
  end)

  it("only plans it in audit mode, and leaves a key no instance holds alone", function()
    set_mode("audit")
    t1:put_object("acme-public-site", "docs/example.txt", "AKIAIOSFODNN7EXAMPLE", { acl = "public-read" })
    helpers.sync_ok(a1)
    assert.equal("Active", t1.keys[leaked].status)
    local g = runtime.store().db:query("SELECT * FROM governance_actions WHERE policy = 'leaked_access_key'")
    assert.equal(1, #g)
    assert.same({ leaked, "dry-run", "planned" }, { g[1].target_id, g[1].mode, g[1].result })
    assert.equal(1, #alerts(a1))                       -- AWS's documented example key is nobody's
  end)
end)

describe("leaked_access_key's dlp.grants", function()
  it("must name one of the policy's detectors", function()
    local dir = helpers.tmp_dir()
    local f = assert(io.open(dir .. "/p.lua", "w"))
    f:write('return policy { name = "x", on = "file", dlp = { detectors = { "ssn" }, grants = "aws_access_key" }, actions = { "alert" } }')
    f:close()
    local p, err = require("policy").load(dir .. "/p.lua")
    assert.is_nil(p)
    assert.matches("dlp.grants: must name one of the policy's detectors, got string 'aws_access_key'", err, 1, true)
  end)
end)
