-- The Workday connector against the Workday sandbox tenant: workers and their accounts, security groups,
-- admins and sign-ons equal the tenant's ground truth, with OAuth (refresh token) and with the integration
-- system user (WS-Security, HTTP Basic on reports); account governance changes the tenant; SOAP faults
-- are one clear line with the right health.
local context = require "sdk.context"
local runtime = require "runtime"
local sync = require "sync"
local helpers = require "helpers"
local tenants = require "tenants"

local count, n_of = helpers.count, helpers.n_of

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end
local function stored_ids(entity, inst)
  local s = {}
  for _, r in ipairs(runtime.store().db:query("SELECT ext_id FROM " .. entity .. " WHERE instance_id = ? AND deleted_at IS NULL", inst.id)) do
    s[r.ext_id] = true
  end
  return s
end
local function user(inst, name)
  return runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, name)[1]
end
local function act(inst, action, row)
  local ctx = sync.context(runtime.store(), inst, "action")
  return context.connector(ctx).actions[action](ctx, row)
end

describe("workday connector", function()
  local r, t, inst
  setup(function()
    host.home = helpers.tmp_dir()
    r = tenants.start("workday", "wd", { size = 2, seed = 11 })
    t, inst = r.tenant, r.inst
  end)
  teardown(function() r.srv:close() end)

  it("scans accounts, groups, admins and sign-ons to the tenant's ground truth (OAuth refresh token)", function()
    helpers.sync_ok(inst)
    local truth = t:truth()
    assert.same(set_of(truth.users), stored_ids("users", inst))
    assert.same(set_of(truth.groups), stored_ids("groups", inst))
    assert.same(set_of(truth.group_members), stored_ids("group_members", inst))
    assert.same(set_of(truth.privileges), stored_ids("privileges", inst))
    assert.equal(t:count("signons"), count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin'", inst.id))
    assert.equal(t:count("audit"), count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind <> 'signin'", inst.id))
    -- Get_Workers paged: 40 workers, 200 a page is one page; the sign-ons 120 on one page too
    assert.is_true(t:count("users") > 20)
  end)

  it("gives each account its state and each leaver terminated_at; the leaver's account is still active", function()
    for _, w in ipairs(t.state.workers) do
      if w.user_name then
        local row = user(inst, w.user_name)
        local want = ({ active = "active", disabled = "disabled", expired = "deprovisioned", locked = "locked" })[t:account_status(w)]
        assert.equal(want, row.status, w.user_name)
        assert.equal(w.email, row.email)
        assert.equal(w.first .. " " .. w.last, row.display_name)
        local raw = json.decode(row.raw)
        assert.equal(w.wid, raw.Worker_Reference.WID)
        assert.equal(w.terminated_ms ~= nil, raw.Worker.Worker_Data.Employment_Data.Worker_Status_Data.Terminated == "1")
      end
    end
    assert.equal("active", user(inst, t.leaver.user_name).status)
    assert.equal("1", json.decode(user(inst, t.leaver.user_name).raw).Worker.Worker_Data.Employment_Data.Worker_Status_Data.Terminated)
    -- admins: members of the administering security groups
    assert.equal(#t:truth().privileges > 0 and true, count("SELECT count(*) n FROM users WHERE instance_id = ? AND is_admin = 1", inst.id) > 0)
    -- failed sign-ons are failures of their account's user name
    local failed = 0
    for _, s in ipairs(t.state.signons) do if not s.ok then failed = failed + 1 end end
    assert.equal(failed, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin' AND outcome = 'failure'", inst.id))
  end)

  it("disables and re-enables an account, requires a new password, expires it: the tenant changes, a re-scan sees it", function()
    local row = user(inst, t.leaver.user_name)
    act(inst, "suspend_user", row)
    assert.is_true(t.leaver.account.disabled)
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal("disabled", user(inst, row.ext_id).status)
    act(inst, "unsuspend_user", row)
    assert.is_false(t.leaver.account.disabled)
    act(inst, "expire_password", row)
    assert.is_true(t.leaver.account.require_new_password)
    act(inst, "deactivate_user", row)
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal("deprovisioned", user(inst, row.ext_id).status)
    -- each update named the account and only the fields that change
    assert.same({ user = row.ext_id, disabled = "true" }, t.updates[1])
    assert.same({ user = row.ext_id, disabled = "false" }, t.updates[2])
    assert.same({ user = row.ext_id, require_new_password = "true" }, t.updates[3])
    assert.matches("^%d%d%d%d%-", t.updates[4].expiration)
    -- the update is in the audit trail of the next activity poll
    helpers.sync_ok(inst, { streams = { "activities" } })
    assert.equal(4, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action = 'Workday Account for Worker Update'", inst.id))
  end)

  it("re-fetches one account by its worker's WID (a governance action's outcome)", function()
    local w = t.state.workers[1]
    w.account.locked = true
    local ctx = sync.context(runtime.store(), inst, "fetch")
    context.connector(ctx).fetch.users(ctx, w.user_name)
    assert.equal("locked", user(inst, w.user_name).status)
    w.account.locked = false
    local ok, err = pcall(context.connector(ctx).fetch.users, ctx, "nobody@example.com")
    assert.is_false(ok)
    assert.equal("not_found: nobody@example.com: no worker reference stored: sync the users first", tostring(err))
  end)

  it("updates a contingent worker through its Contingent_Worker_Reference", function()
    local w
    for _, x in ipairs(t.state.workers) do if x.contingent and x.user_name and x ~= t.leaver then w = x; break end end
    assert.is_not_nil(w, "the tenant has a contingent worker with an account")
    act(inst, "suspend_user", user(inst, w.user_name))
    assert.is_true(w.account.disabled)
  end)

  it("pages workers and sign-ons as of the tenant's moment of the first page: what enters meanwhile waits for the next scan", function()
    local r2 = tenants.start("workday", "wd-paging", { size = 1, seed = 12 })
    local t2, c = r2.tenant, require("sdk").load("workday")
    local saved = c.page_size
    c.page_size = 7
    -- a sign-on and a hire land just before each listing's second page is served
    local filter, landed = t2.filter, 0
    t2.filter = function(self, op)
      local f, why, xpath = filter(self, op)
      if f and f.page == 2 then
        landed = landed + 1
        sched.sleep(0.002)          -- entered after the first page's moment, not in the same millisecond
        self:add_signon(self.state.workers[1].user_name, false, self:now_ms() - 60000)
        self:hire("Nova", "Late" .. landed)
      end
      return f, why, xpath
    end
    local ok, err = pcall(function()
      local before_users = t2:count("users")
      helpers.sync_ok(r2.inst, { streams = { "users" } })
      assert.equal(before_users, n_of("users", r2.inst))
      local before_signons = t2:count("signons")
      helpers.sync_ok(r2.inst, { streams = { "activities" } })
      assert.equal(before_signons, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin'", r2.inst.id))
      assert.is_true(before_users > 14 and before_signons > 14, "several pages each")
    end)
    c.page_size = saved
    t2.filter = filter
    assert(ok, err)
    assert.equal(2, landed)
    -- the next scan and poll read them (the poll's window starts an overlap before the last one ended)
    helpers.sync_ok(r2.inst, { streams = { "users", "activities" } })
    r2.srv:close()
    assert.equal(t2:count("users"), n_of("users", r2.inst))
    assert.equal(t2:count("signons"), count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin'", r2.inst.id))
  end)

  it("reads with the integration system user: a WS-Security UsernameToken on SOAP, HTTP Basic on reports", function()
    local r3 = tenants.start("workday", "wd-isu", { size = 1, seed = 13,
      settings = { auth = "isu", isu_user = "ISU_cachost@acme" } })
    r3.inst:set_secret("isu_password", r3.tenant.isu_password)
    helpers.sync_ok(r3.inst)
    assert.same(set_of(r3.tenant:truth().users), stored_ids("users", r3.inst))
    -- a wrong password is a dead credential: reconnect needed, one line, the password nowhere
    r3.inst:set_secret("isu_password", "wrong-password-for-the-isu")
    local results, ok = runtime.sync(r3.inst, { streams = { "users" } })
    r3.srv:close()
    assert.is_false(ok)
    assert.matches("^auth: ", results[1].error)
    assert.is_nil(results[1].error:find("\n"))
    assert.is_nil(results[1].error:find("wrong-password", 1, true))
    assert.equal("reconnect_needed", sync.state(results[1].error))
  end)

  it("reports a task the integration user may not run as permission missing, the other streams going on", function()
    local r4 = tenants.start("workday", "wd-denied", { size = 1, seed = 14, tenant = { denied = { Get_Workday_Account_Signons = true } } })
    local results, ok = runtime.sync(r4.inst)
    r4.srv:close()
    assert.is_false(ok)
    for _, res in ipairs(results) do
      if res.stream == "activities" then
        assert.equal("permission_missing", sync.state(res.error))
        assert.equal("permission missing: the domain Sign-on audit: Client.validationError: Validation error occurred. "
          .. "The task submitted is not authorized.", sync.health(res.error))
        assert.is_nil(res.error:find("\n"))
      else
        assert(res.counts, res.stream .. ": " .. tostring(res.error))
      end
    end
  end)

  it("names the domain a report's data source needs when the integration user may not run it", function()
    local r6 = tenants.start("workday", "wd-denied-report", { size = 1, seed = 16,
      tenant = { denied = { cachost_Security_Group_Members = true } } })
    local results = runtime.sync(r6.inst, { streams = { "groups" } })
    r6.srv:close()
    assert.equal("permission missing: the domain Security Administration (the groups report's data source): "
      .. "Client.validationError: Validation error occurred. The task submitted is not authorized.", sync.health(results[1].error))
  end)

  it("says groups are unavailable without a groups report, and refuses a report name that is not owner/Report_Name", function()
    local r5 = tenants.start("workday", "wd-nogroups", { size = 1, seed = 15, settings = { groups_report = "" } })
    local results = runtime.sync(r5.inst, { streams = { "groups" } })
    r5.srv:close()
    assert.equal("unavailable (needs the groups_report setting (a report of security group members))", sync.health(results[1].error))
    local c = require("sdk").load("workday")
    local ok, err = c.validate { accounts_report = "just-a-name" }
    assert.is_nil(ok)
    assert.equal('setting \'accounts_report\': owner/Report_Name, not "just-a-name"', err)
  end)
end)
