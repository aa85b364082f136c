-- The ServiceNow connector against the ServiceNow sandbox instance: scans equal the instance's ground
-- truth, every auth flow works (and a wrong credential is refused), polling picks up only new events,
-- governance changes the instance, a least-privilege user gets "permission missing" where its roles end.
local context = require "sdk.context"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local helpers = require "helpers"
local sn = require "sandbox.servicenow"

local count = helpers.count

local function ids(sql, ...)
  local set = {}
  for _, r in ipairs(runtime.store().db:query(sql, ...)) do set[#set + 1] = r.ext_id end
  table.sort(set)
  return set
end
local function sorted(list)
  local c = {}
  for i, v in ipairs(list) do c[i] = v end
  table.sort(c)
  return c
end

describe("servicenow connector", function()
  local tenant, srv, inst
  local function add(name, settings, secrets)
    settings.instance = settings.instance or "acme.service-now.com"
    settings.base_url, settings.insecure_loopback = srv.url, true
    return helpers.instance("servicenow", name, settings, secrets)
  end
  setup(function()
    host.home = helpers.tmp_dir()
    tenant = sn.new { seed = 5, users = 40, groups = 5, events_per_day = 60, days = 3, files = 8 }
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    inst = add("sn", { username = tenant.integration.user_name, client_id = tenant.client.id },
      { password = tenant.integration.password, client_secret = tenant.client.secret })
  end)
  teardown(function() srv:close() end)

  it("scans every stream to the instance's ground truth (OAuth password grant)", function()
    local results, ok = runtime.sync(inst)
    for _, r in ipairs(results) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
    assert.is_true(ok)
    local truth = tenant:truth()
    for _, e in ipairs { "users", "groups", "group_members", "privileges", "app_grants", "files" } do
      assert.same(sorted(truth[e]), ids(("SELECT ext_id FROM %s WHERE instance_id = ? AND deleted_at IS NULL"):format(e), inst.id), e)
    end
    assert.same(sorted(truth.activities), ids("SELECT ext_id FROM activities WHERE instance_id = ?", inst.id))
    -- statuses as the instance has them
    local want = { active = 0, disabled = 0, locked = 0 }
    for _, u in ipairs(tenant.tables.sys_user.rows) do
      local s = u.active ~= "true" and "disabled" or u.locked_out == "true" and "locked" or "active"
      want[s] = want[s] + 1
    end
    for s, n in pairs(want) do
      assert.equal(n, count("SELECT count(*) n FROM users WHERE instance_id = ? AND status = ?", inst.id, s), s)
    end
    -- admins: the holders of admin or an elevated role, directly or through a group
    local admins = 0
    for _, u in ipairs(tenant.tables.sys_user.rows) do
      local r = tenant:roles_of(u)
      if r.admin or r.security_admin then admins = admins + 1 end
    end
    assert.equal(admins, count("SELECT count(*) n FROM users WHERE instance_id = ? AND is_admin = 1", inst.id))
    assert.is_true(count("SELECT count(*) n FROM privileges WHERE instance_id = ? AND scope LIKE 'group %'", inst.id) > 0)
    -- sign-ins name the user by sys_id
    local s = runtime.store().db:query([[SELECT a.actor, a.actor_id, u.ext_id FROM activities a LEFT JOIN users u
      ON u.instance_id = a.instance_id AND u.ext_id = a.actor_id WHERE a.instance_id = ? AND a.kind = 'signin' LIMIT 5]], inst.id)
    assert.is_true(#s > 0)
    for _, r in ipairs(s) do assert.equal(r.actor_id, r.ext_id) end
    -- the token came from the password grant: its oauth_credential rows are the integration user's
    local mine = 0
    for _, t in ipairs(tenant.tables.oauth_credential.rows) do if t.user == tenant.integration.rec.sys_id then mine = mine + 1 end end
    assert.equal(2, mine)
  end)

  it("polls only new events, reads each once, and a re-scan changes nothing", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local victim = tenant.users[10]
    tenant:simulate_bruteforce(victim.user_name, 6)
    local ctx = sync.context(runtime.store(), inst, "test")
    local results, ok = runtime.sync(inst, { streams = { "activities", "users" } })
    assert(ok, tostring(results[1].error))
    assert.equal(before + 7, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.equal(6, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND actor_id = ? AND outcome = 'failure' AND ip = '203.0.113.66'",
      inst.id, victim.sys_id))
    assert.equal(0, results[2].counts.users.added)
    assert.is_table(context.connector(ctx))
  end)

  it("locks out a user and unlocks them; the audit trail shows it; deactivates", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local c = context.connector(ctx)
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' AND email LIKE '%@example.com' LIMIT 1 OFFSET 3", inst.id)[1]
    c.actions.suspend_user(ctx, u)
    assert.equal("true", tenant:get("sys_user", u.ext_id).locked_out)
    c.fetch.users(ctx, u.ext_id)
    assert.equal("locked", runtime.store().db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
    runtime.sync(inst, { streams = { "activities" } })
    assert.equal(1, count([[SELECT count(*) n FROM activities WHERE instance_id = ? AND action = 'sys_user.locked_out'
      AND target_id = ? AND actor = ?]], inst.id, u.ext_id, tenant.integration.user_name))
    c.actions.unsuspend_user(ctx, u)
    assert.equal("false", tenant:get("sys_user", u.ext_id).locked_out)
    c.actions.deactivate_user(ctx, u)
    assert.equal("false", tenant:get("sys_user", u.ext_id).active)
    -- a locked-out user can no longer get a token
    local victim = tenant.users[12]
    tenant.passwords[victim.sys_id] = "victim-pw"
    c.actions.suspend_user(ctx, { ext_id = victim.sys_id })
    local locked = add("sn-locked", { username = victim.user_name, auth = "basic" }, { password = "victim-pw" })
    local res, ok = runtime.sync(locked, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: HTTP 401: User Not Authenticated", res[1].error)
  end)

  it("removes a direct admin role, refuses one held through a group", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local c = context.connector(ctx)
    local direct, inherited
    for _, hr in ipairs(tenant.tables.sys_user_has_role.rows) do
      local role = tenant:get("sys_user_role", hr.role).name
      if role == "admin" and hr.inherited == "false" and hr.user ~= tenant.integration.rec.sys_id and hr.user ~= tenant.admin.sys_id then direct = hr end
      if role == "admin" and hr.inherited == "true" then inherited = hr end
    end
    assert.is_table(direct); assert.is_table(inherited)
    c.actions.remove_admin_role(ctx, { ext_id = direct.user }, { role = "admin" })
    assert.is_nil(tenant:get("sys_user_has_role", direct.sys_id))
    -- a group member without a direct admin grant of their own
    for _, hr in ipairs(tenant.tables.sys_user_has_role.rows) do
      if hr.user == inherited.user and hr.inherited == "false" and tenant:get("sys_user_role", hr.role).name == "admin" then
        tenant:remove("sys_user_has_role", hr)
      end
    end
    local ok, err = pcall(c.actions.remove_admin_role, ctx, { ext_id = inherited.user }, { role = "admin" })
    assert.is_false(ok)
    assert.matches("only through a group", tostring(err))
    assert.is_table(tenant:get("sys_user_has_role", inherited.sys_id))
    -- leaving the group (by its name) takes the inherited role away
    local group = tenant:get("sys_user_group", inherited.granted_by)
    c.actions.remove_member(ctx, { ext_id = inherited.user }, { group = group.name })
    assert.is_nil(tenant:get("sys_user_has_role", inherited.sys_id))
    for _, m in ipairs(tenant.tables.sys_user_grmember.rows) do
      assert.is_false(m.user == inherited.user and m.group == group.sys_id)
    end
    ok, err = pcall(c.actions.remove_member, ctx, { ext_id = inherited.user }, { group = group.sys_id })
    assert.is_false(ok)
    assert.matches("^http: %x+ is not a member of group", tostring(err))
  end)

  it("revokes a user's token and deletes an attachment", function()
    helpers.sync_ok(inst, { streams = { "app_grants", "files" } })
    local ctx = sync.context(runtime.store(), inst, "action")
    local c = context.connector(ctx)
    local g = runtime.store().db:query("SELECT * FROM app_grants WHERE instance_id = ? AND user_id IS NOT NULL AND user_id <> ? LIMIT 1",
      inst.id, tenant.integration.rec.sys_id)[1]
    c.actions.revoke_token(ctx, g)
    assert.is_nil(tenant:get("oauth_credential", g.ext_id))
    local f = runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? LIMIT 1", inst.id)[1]
    assert.equal(tenant.contents[f.ext_id], (ctx:content(f, 1000000)))
    c.actions.trash_file(ctx, f)
    assert.is_nil(tenant:get("sys_attachment", f.ext_id))
    helpers.sync_ok(inst, { streams = { "files" } })
    assert.is_not_nil(runtime.store().db:query("SELECT deleted_at FROM files WHERE id = ?", f.id)[1].deleted_at)
  end)

  it("quarantines an attachment onto the quarantine record with a tombstone, and overwrites one", function()
    local governance = require "governance"
    local q = tenant.groups[2]            -- the quarantine record
    local qi = add("sn-q", { username = tenant.integration.user_name, auth = "basic", quarantine_table = "sys_user_group",
      quarantine_sys_id = q.sys_id }, { password = tenant.integration.password })
    helpers.sync_ok(qi, { streams = { "users", "files" } })
    local card
    for _, a in ipairs(tenant.tables.sys_attachment.rows) do
      if (tenant.contents[a.sys_id] or ""):find("4111", 1, true) then card = a end
    end
    local body, record = tenant.contents[card.sys_id], card.table_sys_id
    local rec = assert(governance.act { store = runtime.store(), instance = qi, action = "quarantine_file", target = card.sys_id,
      operator = "spec" })
    assert.equal("ok", rec.result, rec.error)
    assert.is_nil(tenant:get("sys_attachment", card.sys_id))
    local moved, tomb
    for _, a in ipairs(tenant.tables.sys_attachment.rows) do
      if a.table_sys_id == q.sys_id and a.file_name == ("incident_%s_%s"):format(record, card.file_name) then moved = a end
      if a.table_sys_id == record and a.file_name == card.file_name .. ".quarantined.txt" then tomb = a end
    end
    assert.equal(body, tenant.contents[moved.sys_id])
    assert.equal("text/plain", tomb.content_type)
    assert.matches("removed by your security team", tenant.contents[tomb.sys_id])
    assert.is_not_nil(runtime.store().db:query("SELECT deleted_at FROM files WHERE instance_id = ? AND ext_id = ?", qi.id, card.sys_id)[1].deleted_at)
    -- overwrite: the same name on the same record, holding the notice
    local other = tenant.tables.sys_attachment.rows[1]
    local name, on = other.file_name, other.table_sys_id
    rec = assert(governance.act { store = runtime.store(), instance = qi, action = "overwrite_file", target = other.sys_id,
      operator = "spec", params = { notice = "gone" } })
    assert.equal("ok", rec.result, rec.error)
    assert.is_nil(tenant:get("sys_attachment", other.sys_id))
    local now = tenant.tables.sys_attachment.rows[#tenant.tables.sys_attachment.rows]
    assert.same({ name, on, "gone" }, { now.file_name, now.table_sys_id, tenant.contents[now.sys_id] })
    -- without a quarantine record: one clear line, nothing touched
    local n = #tenant.tables.sys_attachment.rows
    helpers.sync_ok(inst, { streams = { "files" } })
    rec = governance.act { store = runtime.store(), instance = inst, action = "quarantine_file",
      target = tenant.tables.sys_attachment.rows[1].sys_id, operator = "spec" }
    assert.equal("failed", rec.result)
    assert.matches("^http: quarantine needs the settings quarantine_table and quarantine_sys_id", rec.error)
    assert.equal(n, #tenant.tables.sys_attachment.rows)
  end)

  it("connects with Basic auth and with client credentials; refuses wrong credentials", function()
    local basic = add("sn-basic", { username = tenant.integration.user_name, auth = "basic" }, { password = tenant.integration.password })
    helpers.sync_ok(basic, { streams = { "users" } })
    local cc = add("sn-cc", { client_id = tenant.client.id .. "-cc", auth = "client_credentials" }, { client_secret = tenant.client.secret })
    helpers.sync_ok(cc, { streams = { "users" } })
    local bad = add("sn-bad", { username = tenant.integration.user_name, auth = "basic" }, { password = "wrong" })
    local res, ok = runtime.sync(bad, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: HTTP 401: User Not Authenticated", res[1].error)
    assert.equal("reconnect_needed", instances.instance(runtime.store(), "sn-bad").row.status)
    local badoauth = add("sn-bad-oauth", { username = tenant.integration.user_name, client_id = tenant.client.id },
      { password = tenant.integration.password, client_secret = "wrong" })
    res, ok = runtime.sync(badoauth, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: token request refused", res[1].error)
  end)

  it("a user_admin reader: users and privileges, permission missing for the logs and OAuth tables", function()
    tenant.passwords[tenant.reader.sys_id] = "reader-pw"
    local r = add("sn-reader", { username = tenant.reader.user_name, auth = "basic" }, { password = "reader-pw" })
    local results = runtime.sync(r, { streams = { "users", "privileges", "activities", "app_grants" } })
    local by = {}
    for _, x in ipairs(results) do by[x.stream] = x end
    assert.is_table(by.users.counts); assert.is_table(by.privileges.counts)
    assert.matches("^permission: HTTP 403: Insufficient rights to query records", by.activities.error)
    assert.matches("^permission: HTTP 403", by.app_grants.error)
    assert.equal("permission missing: Insufficient rights to query records: Field(s) present in the query do not have permission to be read",
      sync.health(runtime.store():stream(r.id, "activities").last_error))
    -- attachments follow their record's ACL, applied after the limit: short and empty pages, then more
    tenant.page_max = 3
    local ok, err = pcall(helpers.sync_ok, r, { streams = { "files" } })
    tenant.page_max = nil
    assert(ok, err)
    local want = {}
    for _, a in ipairs(tenant.tables.sys_attachment.rows) do
      if a.table_name == "sys_user_group" then want[#want + 1] = a.sys_id end
    end
    assert.is_true(#want > 0 and #want < #tenant.tables.sys_attachment.rows)
    assert.same(sorted(want), ids("SELECT ext_id FROM files WHERE instance_id = ? AND deleted_at IS NULL", r.id))
  end)

  it("OAuth: refreshes an expiring token; when the refresh token is refused, asks again with the password", function()
    local function grants(status)
      local n = 0
      for _, r in ipairs(tenant.log) do if r.path == "/oauth_token.do" and r.status == (status or 200) then n = n + 1 end end
      return n
    end
    local before, refused = grants(), grants(401)
    local old_refresh = inst:secret("refresh_token")
    inst:set_secret("token_expires_at", tostring(sched.time() + 10))       -- inside the refresh margin
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal(before + 1, grants())
    assert.equal(old_refresh, inst:secret("refresh_token"))                  -- returned unchanged
    -- the refresh token revoked (its oauth_credential row deleted): the password grant again
    for _, t in ipairs(tenant.tables.oauth_credential.rows) do
      if t.user == tenant.integration.rec.sys_id and t.type == "refresh_token" then tenant:remove("oauth_credential", t) end
    end
    inst:set_secret("token_expires_at", tostring(sched.time() + 10))
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal(before + 2, grants())
    assert.equal(refused + 1, grants(401))
    assert.not_equal(old_refresh, inst:secret("refresh_token"))
  end)

  it("an interrupted lock-out is settled by a re-fetch: the user is locked", function()
    local governance = require "governance"
    governance.limits = { per_policy_per_hour = 100, global_per_hour = 100, max_user_share = 1 }
    local u = runtime.store().db:query([[SELECT * FROM users WHERE instance_id = ? AND status = 'active'
      AND email LIKE '%@example.com' ORDER BY ext_id DESC LIMIT 1]], inst.id)[1]
    local fault = tenant:fault { kind = "slow", path = "/sys_user/" .. u.ext_id .. "$", method = "PATCH", delay = 1 }
    local t = sched.spawn(governance.act, { store = runtime.store(), instance = inst, action = "suspend_user",
      target = u.ext_id, policy = "bruteforce" })
    while fault.hits == 0 do sched.sleep(0.01) end
    t:cancel()
    t:join(10)
    while tenant:get("sys_user", u.ext_id).locked_out ~= "true" do sched.sleep(0.02) end
    local counts = assert(governance.reconcile(runtime.store(), inst))
    assert.equal(1, counts.ok)
    local row = runtime.store().db:query([[SELECT * FROM governance_actions WHERE instance_id = ? AND target_id = ?
      AND action = 'suspend_user' ORDER BY id DESC LIMIT 1]], inst.id, u.ext_id)[1]
    assert.equal("ok", row.result)
    assert.matches("took effect", row.note)
    assert.equal("locked", runtime.store().db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
  end)

  it("the bruteforce policy in enforce mode locks out an admin after failed sign-ins then a success", function()
    local governance = require "governance"
    governance.limits = { per_policy_per_hour = 100, global_per_hour = 100, max_user_share = 1 }
    runtime.watch(true)
    local saved = {}
    for _, p in ipairs(runtime.policies()) do saved[p] = p.mode; if p.id == "bruteforce" then p.mode = "enforce" end end
    local ok, err = pcall(function()
      helpers.sync_ok(inst, { streams = { "users", "privileges", "activities" } })
      local admin = runtime.store().db:query([[SELECT * FROM users WHERE instance_id = ? AND is_admin = 1 AND status = 'active'
        AND email LIKE '%@example.com' AND email <> 'admin@example.com' ORDER BY email LIMIT 1]], inst.id)[1]
      local u = tenant:get("sys_user", admin.ext_id)
      tenant:simulate_bruteforce(u.user_name, 6)
      helpers.sync_ok(inst, { streams = { "activities" } })
      assert.equal("true", u.locked_out)
      local g = runtime.store().db:query([[SELECT * FROM governance_actions WHERE instance_id = ? AND target_id = ?
        AND policy = 'bruteforce']], inst.id, admin.ext_id)
      assert.equal(1, #g)
      assert.same({ "suspend_user", "executed", "ok" }, { g[1].action, g[1].mode, g[1].result })
      assert.equal("locked", runtime.store().db:query("SELECT status FROM users WHERE id = ?", admin.id)[1].status)
    end)
    for p, m in pairs(saved) do p.mode = m end
    runtime.watch(false)
    assert(ok, err)
  end)

  it("OAuth under injected faults (the token endpoint too): each sync completes or fails in one line; then exact", function()
    local Client = require "sdk.client"
    local saved = { Client.TIMEOUT, Client.BACKOFF_BASE }
    Client.TIMEOUT, Client.BACKOFF_BASE = 1.5, 0.02
    local t2 = sn.new { seed = 21, users = 20, groups = 3, events_per_day = 30, days = 2, files = 5, frozen = true }
    local s2 = helpers.serve(t2)
    local o = helpers.instance("servicenow", "sn-chaos", { instance = "acme.service-now.com", username = t2.integration.user_name,
      client_id = t2.client.id, base_url = s2.url, insecure_loopback = true },
      { password = t2.integration.password, client_secret = t2.client.secret })
    local ok, err = pcall(function()
      t2:chaos { rate = 0.15, seed = 77, retry_after = 0 }
      for round = 1, 4 do
        if round == 3 then o:set_secret("token_expires_at", "0") end   -- a token request under faults
        local results, done = runtime.sync(o, { full = round % 2 == 1 })
        if not done then
          for _, r in ipairs(results) do
            if not r.counts then assert.is_nil(r.error:find("\n"), r.error); assert.matches("^[%w_ ]+: ", r.error) end
          end
        end
      end
      t2:chaos(nil)
      helpers.sync_ok(o)
      local truth = t2:truth()
      for _, e in ipairs { "users", "groups", "group_members", "privileges", "app_grants", "files" } do
        assert.same(sorted(truth[e]), ids(("SELECT ext_id FROM %s WHERE instance_id = ? AND deleted_at IS NULL"):format(e), o.id), e)
      end
      assert.same(sorted(truth.activities), ids("SELECT ext_id FROM activities WHERE instance_id = ?", o.id))
    end)
    Client.TIMEOUT, Client.BACKOFF_BASE = saved[1], saved[2]
    s2:close()
    assert(ok, err)
  end)

  it("waits as a 429 asks (Retry-After) and survives 5xx", function()
    tenant:fault { kind = "429", count = 1, retry_after = 1, path = "/sys_user$" }
    tenant:fault { kind = "500", count = 2 }
    local t0 = sched.now()
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.is_true(sched.now() - t0 >= 0.9)
  end)
end)
