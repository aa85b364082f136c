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

-- The privileged roles of the seeded tenant: those that may write role assignments (Owner, User Access
-- Administrator, Role Based Access Control Administrator, the custom "Contoso Access Delegator" with
-- Microsoft.Authorization/*/write) or write every resource (Contributor).  "Contoso Auditor" (reads),
-- "Contoso Reader Plus" (`*` without writes, deletes and actions) and Reader are not.
local PRIV = { Owner = true, Contributor = true, ["User Access Administrator"] = true,
               ["Role Based Access Control Administrator"] = true, ["Contoso Access Delegator"] = true,
               ["Contoso Data Access Administrator"] = true }

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
    assert.equal(0, n_of("privileges", inst, "role NOT IN ('Owner', 'Contributor', 'User Access Administrator', "
      .. "'Role Based Access Control Administrator', 'Contoso Access Delegator', 'Contoso Data Access Administrator') OR scope IS NULL"))
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

  it("re-fetches one user from Graph, keeping what the privileges stream found", function()
    local admin = tenant.admin.id                   -- Owner of every subscription
    assert.equal(1, count("SELECT is_admin n FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, admin))
    local ctx = context.new(runtime.store(), inst, "users")
    context.connector(ctx).fetch.users(ctx, admin)
    assert.equal(1, count("SELECT is_admin n FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, admin))
    assert.is_nil(context.connector(ctx).fetch.users(ctx, "00000000-0000-0000-0000-000000000000"))   -- gone: nothing
  end)

  it("`cachost connectors azure` lists what each capability needs: Reader and Graph read permissions, no directory role", function()
    local out = {}
    local code = require("cli.connectors").run({ format = "json" }, { "azure" },
      { out = function(f, ...) out[#out + 1] = f:format(...) end, err = function() end, fail = error })
    assert.equal(0, code)
    local needs = json.decode(table.concat(out)).needs
    for _, cap in ipairs { "users", "groups", "privileges", "activities" } do
      assert.equal("Azure RBAC: Reader on each subscription", needs[cap][1], cap)
    end
    assert.matches("User.Read.All", needs.users[2], 1, true)
    assert.matches("GroupMember.Read.All", needs.groups[2], 1, true)
    assert.is_nil(table.concat(out):find("Administrator", 1, true))
  end)

  it("privileges: Role Based Access Control Administrator and custom roles that may assign roles, held by users and service principals", function()
    sync_ok(inst, { streams = { "privileges" } })
    local function rows(role, ptype)
      local n = 0
      for _, a in ipairs(tenant.state.arm_assignments) do
        if a.role == role and (not ptype or a.principalType == ptype) then
          n = n + 1
          assert.equal(1, count("SELECT count(*) n FROM privileges WHERE instance_id = ? AND deleted_at IS NULL AND ext_id LIKE ? "
            .. "AND user_id = ? AND role = ?", inst.id, "%/" .. a.name, a.principalId, role), role)
        end
      end
      return n
    end
    -- every privileged role of the seed, with each of its assignments
    for role in pairs(PRIV) do assert.is_true(rows(role) > 0, role) end
    -- service principals (applications, managed identities) hold the new kinds too
    assert.is_true(rows("Role Based Access Control Administrator", "ServicePrincipal") > 0)
    assert.is_true(rows("Contoso Access Delegator", "ServicePrincipal") > 0)
    -- roles that only read are no privilege
    assert.is_true(tenant:count("arm_role_assignments", "Contoso Auditor") > 0)
    assert.is_true(tenant:count("arm_role_assignments", "Contoso Reader Plus") > 0)     -- `*` but no writes
    assert.equal(0, n_of("privileges", inst, "role IN ('Reader', 'Contoso Auditor', 'Contoso Reader Plus')"))
    assert.equal(truth(tenant).privileges, n_of("privileges", inst))
  end)
end)

-- Another Azure instance on a tenant of its own (one Azure instance per installation: the others go).
local function fresh(opts, settings)
  local st = runtime.store()
  for _, r in ipairs(instances.list(st)) do if r.app == "azure" then assert(instances.remove(st, r.name, { purge = true })) end end
  local t = ms.new(setmetatable(opts, { __index = { seed = 23, users = 12, groups = 2, days = 1, subscriptions = 2,
    tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET } }))
  local srv = assert(server.listen { port = 0 })
  t:mount(srv)
  local values = { base_url = srv.url, insecure_loopback = "true" }
  for k, v in pairs(settings or {}) do values[k] = v end
  assert(add("azure", values))
  return t, srv, assert(instances.instance(runtime.store(), "azure"))
end

local WRITE = { "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute", "virtualMachines", "PUT", "Created", 201 }

describe("azure connector: the activity log's late events", function()
  -- the tenant's clock stands still unless advanced: when each event becomes readable is exact
  local t, srv, inst
  setup(function() t, srv, inst = fresh { frozen = true, subscriptions = 1, arm_events_per_day = 40 } end)
  teardown(function() srv:close() end)

  local function stored(ev)
    return count("SELECT count(*) n FROM activities WHERE instance_id = ? AND ext_id = ?", inst.id, ev.eventDataId)
  end

  it("collects an event that became readable after the poll that covered its time, once", function()
    sync_ok(inst)
    local sub, now = t.state.arm_subs[1], t:now_ms()
    local fresh_ev = t:add_arm_event(sub, { op = WRITE, resname = "fresh", ms = now - 30000, delay = 5 })
    -- happened 17 minutes ago, readable 3 minutes from now: 20 minutes late, the longest of the documented
    -- "usually within 3 to 20 minutes"
    local late = t:add_arm_event(sub, { op = WRITE, resname = "late", ms = now - 17 * 60000, delay = 20 * 60 })
    local by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)
    assert.equal(1, stored(fresh_ev))
    assert.equal(0, stored(late))                       -- not readable yet: the sandbox withholds it
    t:advance(4 * 60)
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)
    assert.equal(1, stored(late))
    -- polled again: nothing new, nothing stored twice, nothing lost
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(0, by.activities.activities.added)
    assert.equal(t:count("arm_events"), count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
  end)

  it("a wider activity_overlap_minutes collects what becomes readable later than the default hour", function()
    assert(instances.edit(runtime.store(), "azure", { activity_overlap_minutes = "180" }))
    local i2 = assert(instances.instance(runtime.store(), "azure"))
    local sub, now = t.state.arm_subs[1], t:now_ms()
    -- happened 100 minutes ago, readable 10 minutes from now
    local later = t:add_arm_event(sub, { op = WRITE, resname = "later", ms = now - 100 * 60000, delay = 110 * 60 })
    sync_ok(i2, { streams = { "activities" } })
    assert.equal(0, stored(later))
    t:advance(11 * 60)
    local by = sync_ok(i2, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)
    assert.equal(1, stored(later))
  end)
end)

describe("azure connector: settings", function()
  it("refuses a subscription id or an overlap it cannot use, in one line", function()
    local st = runtime.store()
    for _, r in ipairs(instances.list(st)) do if r.app == "azure" then assert(instances.remove(st, r.name, { purge = true })) end end
    local row, err = add("azure", { subscription_ids = "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2, prod" })
    assert.is_nil(row)
    assert.equal("setting 'subscription_ids': 'prod' is not a subscription id (a GUID)", err)
    row, err = add("azure", { activity_overlap_minutes = "0" })
    assert.is_nil(row)
    assert.equal("setting 'activity_overlap_minutes' must be from 1 to 129600 minutes (the activity log keeps 90 days)", err)
    row, err = add("azure", { activity_overlap_minutes = "an hour" })
    assert.is_nil(row)
    assert.matches("must be an integer", err)
    assert(add("azure", { subscription_ids = "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2", activity_overlap_minutes = "240" }))
    assert(instances.remove(st, "azure", { purge = true }))
  end)
end)

describe("azure connector: the connection test", function()
  local connect = require "connect"
  local function run(inst) return connect.run(inst, { say = function() end }) end

  it("needs no directory role: Reader on the subscriptions and Graph's read permissions are enough", function()
    local _, srv, inst = fresh { client_roles = {}, arm_client_roles = { "Reader" } }
    local ok, err = run(inst)
    srv:close()
    assert.is_true(ok, err)
  end)

  it("reports Graph's refusal to list users as the application permission it lacks", function()
    local t, srv, inst = fresh {}
    t:fault { kind = "403", path = "^/v1.0/users$" }
    local ok, err = run(inst)
    srv:close()
    assert.is_nil(ok)
    assert.equal("permission missing: User.Read.All (Microsoft Graph application permission)", sync.health(err))
  end)

  it("`cachost instance test` runs the same test and names what is missing", function()
    local cli = require "cli.instance"
    local function test()
      local out, err = {}, {}
      local code = cli.run({}, { "test", "azure" }, { out = function(f, ...) out[#out + 1] = f:format(...) end,
        err = function(f, ...) err[#err + 1] = f:format(...) end,
        fail = function(f, ...) err[#err + 1] = f:format(...); return 1 end, ensure_home = function() return true end })
      return code, table.concat(out), table.concat(err)
    end
    local _, srv = fresh { client_roles = {}, arm_client_roles = { "Reader" } }
    local code, out, err = test()
    srv:close()
    assert.equal(0, code, err)
    assert.matches("azure: credentials work (azure): 2 subscription(s) readable", out, 1, true)
    local t
    t, srv = fresh { arm_client_roles = {} }
    t:fault { kind = "403", path = "^/v1.0/groups$" }
    code, out, err = test()
    srv:close()
    assert.equal(1, code)
    assert.matches("azure: permission missing: Reader on a subscription (the app sees none); GroupMember.Read.All "
      .. "(Microsoft Graph application permission)", err, 1, true)
  end)

  it("reports a subscription without Reader as a missing permission", function()
    local t, srv, inst = fresh({ arm_client_roles = {} }, {})
    local ok, err = run(inst)
    assert.is_nil(ok)
    assert.equal("permission missing: Reader on a subscription (the app sees none)", sync.health(err))
    assert.equal("permission_missing", instances.show(runtime.store(), "azure").status)
    srv:close()
    local ids = t.state.arm_subs[1].id .. "," .. t.state.arm_subs[2].id
    t, srv, inst = fresh({ arm_client_roles = {} }, { subscription_ids = ids })
    ok, err = run(inst)
    srv:close()
    assert.is_nil(ok)
    assert.equal(("permission missing: Reader on subscription %s; Reader on subscription %s")
      :format(t.state.arm_subs[1].id, t.state.arm_subs[2].id), sync.health(err))
  end)
end)

