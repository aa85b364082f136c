-- offboarding_spec.lua — people across apps (the identities view, identity links) and the offboarding
-- policy: someone deactivated or deleted in the identity provider (Okta here) or terminated in an HR app
-- who still has an active account elsewhere (Box here) is alerted on, and suspended there in enforce
-- mode, as soon as the identity provider's page says so (not at Box's next scan).
local helpers = require "helpers"
local tenants = require "tenants"
local runtime = require "runtime"
local procs = require "procs"

-- cachost ARGS on this spec's home -> its output
local function cli(args)
  return (procs.sh(("CACHOST_HOME='%s' %s %s"):format(host.home, procs.BIN, args)))
end

describe("offboarding across apps", function()
  local okta, box, st, person, okta_user, box_user, offboarding

  local function okta_call(method, path)
    local resp = assert(http.request { method = method, url = okta.srv.url .. path, insecure = true,
      headers = { Authorization = "SSWS " .. okta.tenant.token, Accept = "application/json" } })
    assert(resp.status < 300, resp.body)
  end
  local function box_status(u) return u.status end
  local function actions(inst)
    return st.db:query("SELECT action, target_id, mode, result FROM governance_actions WHERE instance_id = ? AND policy = 'offboarding' ORDER BY id", inst.id)
  end

  setup(function()
    st = runtime.store()
    -- a seed of their own: other specs' tenants (same home) must not hold the same people
    okta = tenants.start("okta", "okta-offb", { seed = 41, tenant = { email_domain = "offboarding.example" } })
    box = tenants.start("box", "box-offb", { seed = 41 })
    -- one person with an account in both: a Box member whose login is an active Okta user's
    for _, u in ipairs(okta.tenant.state.users) do
      if u.status == "ACTIVE" and not okta_user then okta_user = u end
    end
    for i = 2, #box.tenant.state.users do
      local u = box.tenant.state.users[i]
      if u.status == "active" and not box_user then box_user = u end
    end
    person = okta_user.profile.login:lower()
    box_user.login = okta_user.profile.login:upper()      -- e-mails join whatever their case
    for _, p in ipairs(runtime.policies()) do if p.id == "offboarding" then offboarding = p end end
    assert(offboarding, "the offboarding policy is shipped")
    runtime.watch(true)
    helpers.sync_ok(box.inst, { streams = { "users" } })
    helpers.sync_ok(okta.inst, { streams = { "users" } })
  end)
  teardown(function()
    runtime.watch(false)
    offboarding.mode = "audit"
    okta.srv:close(); box.srv:close()
  end)

  it("joins accounts into people by e-mail: `identities` says where a person has access", function()
    local rows = st:identity(person)
    local where = {}
    for _, r in ipairs(rows) do where[#where + 1] = r.instance .. ":" .. r.status end
    table.sort(where)
    assert.same({ "box-offb:active", "okta-offb:active" }, where)
    assert.is_nil(st:departures({ "okta" }, { "deprovisioned", "deleted" })[person])
  end)

  it("a suspension in the identity provider is not a departure (a brute-force lock must not offboard)", function()
    okta_call("POST", "/api/v1/users/" .. okta_user.id .. "/lifecycle/suspend")
    helpers.sync_ok(okta.inst, { streams = { "users" } })
    assert.same({}, actions(box.inst))
    okta_call("POST", "/api/v1/users/" .. okta_user.id .. "/lifecycle/unsuspend")
    helpers.sync_ok(okta.inst, { streams = { "users" } })
  end)

  it("deactivated in Okta: the Box account is suspended at once in enforce mode, once", function()
    offboarding.mode = "enforce"
    okta_call("POST", "/api/v1/users/" .. okta_user.id .. "/lifecycle/deactivate")
    helpers.sync_ok(okta.inst, { streams = { "users" } })     -- Box is not scanned: the departure fans out
    assert.equal("inactive", box_status(box_user))
    local acts = actions(box.inst)
    assert.equal(1, #acts)
    assert.same({ "suspend_user", tostring(box_user.id), "executed", "ok" },
      { acts[1].action, acts[1].target_id, acts[1].mode, acts[1].result })
    local alert = st.db:query("SELECT title FROM alerts WHERE instance_id = ? AND policy = 'offboarding'", box.inst.id)
    assert.equal(1, #alert)
    assert.truthy(alert[1].title:find("deprovisioned in okta-offb", 1, true), alert[1].title)
    -- Box's next scan sees the suspension: no second action; Okta's next scan neither
    helpers.sync_ok(box.inst, { streams = { "users" } })
    helpers.sync_ok(okta.inst, { streams = { "users" } })
    assert.equal(1, #actions(box.inst))
    assert.equal("deprovisioned", st:departures({ "okta" }, { "deprovisioned", "deleted" })[person].how)
  end)

  it("a termination from an HR app counts from its date, not before", function()
    local other = st.db:query("SELECT ext_id, lower(email) email FROM users WHERE instance_id = ? AND status = 'active' AND ext_id <> ? LIMIT 1",
      okta.inst.id, okta_user.id)[1]
    local function terminated(at)
      st.db:exec("UPDATE users SET terminated_at = ? WHERE instance_id = ? AND ext_id = ?", at, okta.inst.id, other.ext_id)
      return st:departures({}, { "deprovisioned" })[other.email]
    end
    assert.is_nil(terminated(require("sdk.util").iso(sched.time() + 86400)))
    assert.same({ instance = "okta-offb", how = "terminated", since = "2026-01-31T00:00:00.000Z" },
      terminated("2026-01-31T00:00:00.000Z"))
    terminated(nil)
  end)

  it("`cachost identity PERSON` says where the person still has access, and that they left", function()
    local out = cli("identity " .. person:upper())
    assert.truthy(out:find(person .. ": left (deprovisioned in okta-offb", 1, true), out)
    assert.truthy(out:find("active in 0 of 2 accounts", 1, true), out)
    assert.truthy(cli("identity link someone@else.example " .. box_user.login .. " --instance box-offb")
      :find("is now someone@else.example", 1, true))
    assert.truthy(cli("identity someone@else.example"):find("box-offb", 1, true))
    assert.truthy(cli("identity unlink " .. box_user.login .. " --instance box-offb"):find("unlinked", 1, true))
    assert.truthy(cli("identity nobody@nowhere.example"):find("no account of nobody@nowhere.example", 1, true))
  end)

  it("an account that appears after the departure is caught by its own scan", function()
    local late = { id = box.tenant:new_id("user"), name = "Late Account", login = "late." .. person, role = "user",
      status = "active", created = box.tenant:now_ms() }
    table.insert(box.tenant.state.users, late)
    box.tenant.state.by_id[late.id] = late
    st:link_identity(nil, late.login, person)       -- a different e-mail, joined by hand
    helpers.sync_ok(box.inst, { streams = { "users" } })
    assert.equal("inactive", late.status)
    assert.equal(2, #actions(box.inst))
    assert.equal(1, st:unlink_identity(nil, late.login))
    assert.equal(0, st:unlink_identity(nil, late.login))
  end)
end)
