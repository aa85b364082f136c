-- The Azure connector against the Microsoft sandbox tenant (ARM + Graph on one server): role assignments
-- and their principals, the activity log across subscriptions (full, then incremental), the connection
-- test, throttling, and the single-instance rule.
local context = require "sdk.context"
local ms = require "sandbox.microsoft"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"

local TENANT = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
local CLIENT, SECRET = "0a1b2c3d-1111-4222-8333-944455556666", "sandbox~azure.secret"

local tmp_home = require("helpers").tmp_dir

local count = require("helpers").count
local n_of = require("helpers").n_of

local sync_ok = require("helpers").sync_ok

local PRIV = { Owner = true, Contributor = true, ["User Access Administrator"] = true }

-- Ground truth from the tenant's state.
local function truth(t)
  local privs, users, groups, admins = 0, {}, {}, {}
  for _, a in ipairs(t.state.arm_assignments) do
    if PRIV[a.role] then privs = privs + 1 end
    if a.principalType == "User" then
      users[a.principalId] = true
      if PRIV[a.role] then admins[a.principalId] = true end
    elseif a.principalType == "Group" then groups[a.principalId] = true end
  end
  local function n(set) local k = 0; for _ in pairs(set) do k = k + 1 end; return k end
  return { privileges = privs, users = n(users), groups = n(groups), admins = n(admins) }
end

local function add(name, extra, t_id)
  local values = { tenant_id = t_id or TENANT, client_id = CLIENT, client_secret = SECRET }
  for k, v in pairs(extra or {}) do values[k] = v end
  return instances.add(runtime.store(), "azure", name, values)
end

describe("azure connector", function()
  local tenant, srv, inst
  setup(function()
    host.home = tmp_home()
    tenant = ms.new { seed = 21, users = 60, groups = 4, days = 3, subscriptions = 2, arm_events_per_day = 150,
                      tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET }
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    assert(add("azure", { base_url = srv.url, insecure_loopback = "true" }))
    inst = assert(instances.instance(runtime.store(), "azure"))
  end)
  teardown(function() srv:close() end)

  it("refuses a second Azure instance clearly", function()
    local row, err = add("azure-2", { base_url = srv.url })
    assert.is_nil(row)
    assert.matches("allows a single instance", err)
    assert.matches("'azure'", err)
  end)

  it("scans role assignments, their principals and the activity log of every subscription", function()
    sync_ok(inst)
    local gt = truth(tenant)
    assert.is_true(gt.privileges > 2)
    assert.equal(gt.privileges, n_of("privileges", inst))
    assert.equal(gt.users, n_of("users", inst))
    assert.equal(gt.admins, n_of("users", inst, "is_admin = 1"))
    assert.equal(gt.groups, n_of("groups", inst))
    assert.equal(0, n_of("privileges", inst, "role NOT IN ('Owner', 'Contributor', 'User Access Administrator') OR scope IS NULL"))
    -- scopes below the subscription (resource groups) are kept
    assert.is_true(n_of("privileges", inst, "scope LIKE '%/resourceGroups/%'") > 0)
    assert.equal(tenant:count("arm_events"), count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.equal(0, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND (kind <> 'admin' OR time IS NULL OR action IS NULL OR app <> 'Azure')", inst.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND outcome = 'failure'", inst.id) > 0)
  end)

  it("re-scans without changes and polls only the new events of each subscription", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local by = sync_ok(inst)
    assert.equal(0, by.privileges.privileges.added + by.privileges.privileges.changed + by.privileges.privileges.removed)
    assert.equal(0, by.users.users.added + by.users.users.changed + by.users.users.removed)
    assert.equal(0, by.activities.activities.added)
    for k, sub in ipairs(tenant.state.arm_subs) do
      tenant:add_arm_event(sub, { op = { "Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization", "roleAssignments", "PUT", "Created", 201 },
                                  resname = "new-" .. k })
    end
    local req0 = #tenant.log
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(#tenant.state.arm_subs, by.activities.activities.added)
    assert.equal(before + #tenant.state.arm_subs, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    -- resumed from the cursor: one page per subscription (plus the subscription listing)
    local pages = 0
    for i = req0 + 1, #tenant.log do
      if tenant.log[i].path:find("/eventtypes/management/values", 1, true) then pages = pages + 1 end
    end
    assert.equal(#tenant.state.arm_subs, pages)
  end)

  it("reads only the subscriptions named in the settings", function()
    local st = runtime.store()
    local one = tenant.state.arm_subs[1].id
    assert(instances.edit(st, "azure", { subscription_ids = one }))
    local i2 = assert(instances.instance(runtime.store(), "azure"))
    local req0 = #tenant.log
    sync_ok(i2, { streams = { "privileges" } })
    for i = req0 + 1, #tenant.log do
      local p = tenant.log[i].path
      assert.is_nil(p:find(tenant.state.arm_subs[2].id, 1, true), p)
    end
    local gt = 0
    for _, a in ipairs(tenant.state.arm_assignments) do if a.sub == one and PRIV[a.role] then gt = gt + 1 end end
    assert.equal(gt, n_of("privileges", i2))
    assert(instances.edit(st, "azure", { subscription_ids = "" }))
  end)

  it("survives 429 with Retry-After from ARM", function()
    tenant:fault { kind = "429", count = 3, retry_after = 0, path = "/roleAssignments" }
    local req0 = #tenant.log
    sync_ok(inst, { streams = { "privileges" } })
    assert.is_nil(tenant.faults[1])
    local throttled = 0
    for i = req0 + 1, #tenant.log do if tenant.log[i].status == 429 then throttled = throttled + 1 end end
    assert.equal(3, throttled)
    assert.equal(truth(tenant).privileges, n_of("privileges", inst))
  end)

  it("connection test: passes with Security Administrator, refuses clearly without an admin role", function()
    local ctx = sync.context(runtime.store(), inst, "connect")
    local msg = context.connector(ctx).test(ctx)
    assert.matches("Security Administrator", msg)

    local other = ms.new { seed = 22, users = 5, groups = 1, subscriptions = 1, tenant_id = TENANT, client_id = CLIENT,
                           client_secret = SECRET, client_roles = { "Security Reader" } }
    local srv2 = assert(server.listen { port = 0 })
    other:mount(srv2)
    local st = runtime.store()
    assert(st.db:exec("UPDATE instances SET removed_at = ? WHERE name = 'azure'", "2026-01-01T00:00:00.000Z"))
    local row = assert(add("azure-reader", { base_url = srv2.url, insecure_loopback = "true" }))
    local i2 = assert(instances.instance(runtime.store(), row.name))
    local ctx2 = sync.context(st, i2, "connect")
    local ok, err = pcall(context.connector(ctx2).test, ctx2)
    assert.is_false(ok)
    assert.matches("^auth: .*neither the Security Administrator nor the Global Administrator", tostring(err))
    assert(st.db:exec("UPDATE instances SET removed_at = ? WHERE name = 'azure-reader'", "2026-01-01T00:00:00.000Z"))
    assert(st.db:exec("UPDATE instances SET removed_at = NULL WHERE name = 'azure'"))
    srv2:close()
  end)
end)
