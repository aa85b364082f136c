-- Workday as the source of truth for offboarding: a worker who left (terminated_at) and whose Workday
-- account is still active has that account disabled, and the same person's Okta account suspended, by the
-- offboarding policy in enforce mode; nobody else is touched, and a rehire clears the termination.
local helpers = require "helpers"
local tenants = require "tenants"
local runtime = require "runtime"

describe("workday offboarding", function()
  local okta, wd, st, offboarding, people
  setup(function()
    host.home = helpers.tmp_dir()
    st = runtime.store()
    okta = tenants.start("okta", "okta-wdoff", { seed = 21 })
    people = {}
    for _, u in ipairs(okta.tenant.state.users) do
      if u.status == "ACTIVE" and #people < 5 and u ~= okta.tenant.admin then people[#people + 1] = u.profile.login end
    end
    wd = tenants.start("workday", "wd-off", { seed = 22, tenant = { people = people } })
    for _, p in ipairs(runtime.policies()) do if p.id == "offboarding" then offboarding = p end end
    runtime.watch(true)
    helpers.sync_ok(okta.inst, { streams = { "users" } })
  end)
  teardown(function()
    runtime.watch(false)
    offboarding.mode = "audit"
    okta.srv:close(); wd.srv:close()
  end)

  local function actions(inst)
    return st.db:query("SELECT action, target_id, result FROM governance_actions WHERE instance_id = ? AND policy = 'offboarding' ORDER BY id", inst.id)
  end

  it("disables the leaver's active Workday account and suspends them in Okta, and nobody else", function()
    offboarding.mode = "enforce"
    helpers.sync_ok(wd.inst, { streams = { "users" } })
    local leaver = wd.tenant.leaver
    assert.equal(people[1]:lower(), leaver.email)
    local row = st.db:query("SELECT terminated_at, status FROM users WHERE instance_id = ? AND ext_id = ?", wd.inst.id, leaver.user_name)[1]
    assert.equal(require("sdk.util").iso(leaver.terminated_ms / 1000):sub(1, 10), row.terminated_at:sub(1, 10))
    assert.is_true(leaver.account.disabled)
    assert.same({ { action = "suspend_user", target_id = leaver.user_name, result = "ok" } }, actions(wd.inst))
    local okta_acts = actions(okta.inst)
    assert.equal(1, #okta_acts)
    assert.equal("SUSPENDED", okta.tenant.state.by_login[people[1]:lower()].status)
    -- the other workers who left had their accounts disabled already: nothing to do there
    assert.equal(0, helpers.count("SELECT count(*) n FROM users WHERE instance_id = ? AND terminated_at IS NOT NULL AND status = 'active'", wd.inst.id))
  end)

  it("a rehire clears terminated_at (json.null), and is no departure", function()
    local w = wd.tenant.leaver
    w.terminated_ms = nil
    -- the page that clears it says nobody else left: no one's other accounts are re-evaluated
    local people_mod = require "policy.people"
    local leavers, said = people_mod.leavers, {}
    people_mod.leavers = function(...)
      local out = leavers(...)
      for p in pairs(out) do said[#said + 1] = p end
      return out
    end
    local ok, err = pcall(helpers.sync_ok, wd.inst, { streams = { "users" } })
    people_mod.leavers = leavers
    assert(ok, err)
    local terminated = {}
    for _, x in ipairs(wd.tenant.state.workers) do if x.terminated_ms and x.user_name then terminated[x.email] = true end end
    for _, p in ipairs(said) do assert.is_true(terminated[p], p .. " did not leave") end
    assert.is_nil(st.db:query("SELECT terminated_at FROM users WHERE instance_id = ? AND ext_id = ?", wd.inst.id, w.user_name)[1].terminated_at)
    assert.is_nil(st:departures({}, { "deprovisioned" })[w.email])
  end)
end)
