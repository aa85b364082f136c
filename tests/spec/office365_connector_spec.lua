-- The Office 365 connector against the Microsoft sandbox tenant (login, Graph, Management Activity API on
-- one server): components on and off, full and incremental scans equal to the tenant's ground truth,
-- governance changes the tenant, change notifications end to end, expired blobs, duplicate records,
-- throttling, and the single-instance rule.
local context = require "sdk.context"
local ms = require "sandbox.microsoft"
local runtime = require "runtime"
local instances = require "instances"
local governance = require "governance"
local sync = require "sync"

local TENANT = "3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a"
local CLIENT, SECRET = "9e8d7c6b-2222-4333-8444-a55566667777", "sandbox~o365.secret"
local CLIENT_STATE = "graph-client-state-0123456789"
local MGMT_TYPES = { "Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General" }
local APPS = { Exchange = 1, SharePoint = 1, OneDrive = 1, Teams = 1, ["Power BI"] = 1, ["Dynamics 365"] = 1,
  ["Power Automate"] = 1, Yammer = 1, ["Skype for Business"] = 1, Office = 1 }

local tmp_home = require("helpers").tmp_dir

local count = require("helpers").count
local n_of = require("helpers").n_of
local function n_act(inst, extra)
  return count("SELECT count(*) n FROM activities WHERE instance_id = ? AND " .. (extra or "1"), inst.id)
end

local function results_of(inst, opts)
  local results, ok = runtime.sync(inst, opts)
  local by = {}
  for _, r in ipairs(results) do by[r.stream] = r end
  return by, ok, results
end
local sync_ok = require("helpers").sync_ok

local function mgmt_truth(t)
  local n = 0
  for _, ct in ipairs(MGMT_TYPES) do n = n + t:count("mgmt_records", ct) end
  return n
end

-- The instance as the CLI would edit it, reloaded.
local function set(name, values)
  assert(instances.edit(runtime.store(), name, values))
  return assert(instances.instance(runtime.store(), name))
end

describe("office365 connector", function()
  local tenant, srv, inst, hooks
  setup(function()
    host.home = tmp_home()
    -- the tenant's data ends 8 hours ago and its clock is moved to now: every content blob, even one
    -- with the documented long delay, is available
    tenant = ms.new { seed = 5, users = 40, groups = 5, days = 3, signins = 600, audits = 250, mgmt_records_per_day = 400,
                      duplicate_share = 0.05, now = sched.time() - 8 * 3600,
                      tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET }
    tenant:advance(8 * 3600)
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    assert(instances.add(runtime.store(), "office365", "o365", {
      tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET, client_state = CLIENT_STATE,
      components = "users,audits,signins,apps,activities,files", base_url = srv.url, insecure_loopback = "true" }))
    inst = assert(instances.instance(runtime.store(), "o365"))
    -- the webhook endpoint as the daemon serves it
    hooks = assert(server.listen { port = 0 })
    hooks:route("*", "/webhooks/:instance", require("daemon").webhook)
  end)
  teardown(function() srv:close(); hooks:close() end)

  it("refuses a second Office 365 instance clearly", function()
    local row, err = instances.add(runtime.store(), "office365", "o365-2",
      { tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET })
    assert.is_nil(row)
    assert.matches("Microsoft Office 365 allows a single instance, and 'o365' already is one", err, 1, true)
  end)

  it("scans users, roles, groups, apps, directory audits, sign-ins and Office 365 activities to the ground truth", function()
    sync_ok(inst)
    assert.equal(tenant:count("users"), n_of("users", inst))
    assert.equal(tenant:count("users_disabled"), n_of("users", inst, "status = 'disabled'"))
    assert.equal(tenant:count("guests"), n_of("users", inst, "external = 1"))
    -- roles held directly, and through role-assignable groups (one row per member)
    local role_users, admins = 0, {}
    for _, a in ipairs(tenant.state.role_assignments) do
      if tenant.state.user_by_id[a.principalId] then role_users = role_users + 1; admins[a.principalId] = true end
      local g = tenant.state.group_by_id[a.principalId]
      for _, uid in ipairs(g and g.members or {}) do role_users = role_users + 1; admins[uid] = true end
    end
    local n_admins = 0
    for _ in pairs(admins) do n_admins = n_admins + 1 end
    assert.equal(role_users, n_of("privileges", inst))
    assert.equal(n_admins, n_of("users", inst, "is_admin = 1"))
    assert.equal(tenant:count("groups"), n_of("groups", inst))
    assert.equal(tenant:count("members"), n_of("group_members", inst))
    assert.equal(tenant:count("grants") + tenant:count("app_role_assignments"), n_of("app_grants", inst))
    assert.equal(0, n_of("app_grants", inst, "scopes IS NULL OR app_name IS NULL"))
    assert.equal(tenant:count("audits"), n_act(inst, "app = 'Microsoft Entra ID' AND kind = 'admin'"))
    assert.equal(tenant:count("signins") + tenant:count("noninteractive_signins"), n_act(inst, "app = 'Microsoft Entra ID' AND kind = 'signin'"))
    assert.is_true(n_act(inst, "app = 'Microsoft Entra ID' AND kind = 'signin' AND location IS NOT NULL AND user_agent IS NOT NULL AND outcome = 'failure'") > 0)
    -- Management Activity records: every unique record once, though some came in two blobs
    local dups = 0
    for c = 1, #MGMT_TYPES do
      for i = 0, tenant:mgmt_n(c) - 1 do if tenant:is_dup(c, i) then dups = dups + 1 end end
    end
    assert.is_true(dups > 0)
    assert.equal(mgmt_truth(tenant), n_act(inst, "app <> 'Microsoft Entra ID'"))
    for r in runtime.store().db:rows("SELECT DISTINCT app FROM activities WHERE instance_id = ? AND app <> 'Microsoft Entra ID'", inst.id) do
      assert.truthy(APPS[r.app], r.app)
    end
    for _, app in ipairs { "Exchange", "SharePoint", "Teams", "Power BI", "Dynamics 365", "Power Automate", "Yammer", "Skype for Business" } do
      assert.is_true(n_act(inst, "app = '" .. app .. "'") > 0, app)
    end
    assert.equal(0, n_act(inst, "time IS NULL OR kind IS NULL OR action IS NULL"))
    assert.is_true(n_act(inst, "app <> 'Microsoft Entra ID' AND kind = 'signin'") > 0)
    -- OneDrive and SharePoint: every item but the roots, the item's own permissions, access levels
    assert.equal(tenant:count("items"), n_of("files", inst, "trashed = 0"))
    assert.equal(tenant:count("folders"), n_of("files", inst, "trashed = 0 AND is_folder = 1"))
    assert.equal(tenant:count("permissions"), n_of("file_permissions", inst, "json_extract(unzstd(raw), '$.inheritedFrom') IS NULL"))
    assert.equal(tenant:count("shared_items"), n_of("files", inst, "access_level <> 'private'"))
    for _, level in ipairs { "public", "external", "internal", "private" } do
      assert.is_true(n_of("files", inst, "access_level = '" .. level .. "'") > 0, level)
    end
    assert.is_true(n_of("file_permissions", inst, "external = 1 AND principal_type = 'user'") > 0)
    assert.equal(0, n_of("files", inst, "owner IS NULL OR path IS NULL OR name IS NULL"))
    -- the Management API subscriptions were started
    local list = 0
    for _, ct in ipairs(MGMT_TYPES) do if tenant.state.mgmt_subs[ct] and tenant.state.mgmt_subs[ct].status == "enabled" then list = list + 1 end end
    assert.equal(#MGMT_TYPES, list)
  end)

  it("re-scans without changes and polls only new events, resuming from the cursor", function()
    local before = n_act(inst)
    local by = sync_ok(inst)
    for stream, entities in pairs { users = { "users", "privileges" }, groups = { "groups", "group_members" }, app_grants = { "app_grants" },
                                    files = { "files", "file_permissions" } } do
      for _, e in ipairs(entities) do
        local c = by[stream][e]
        assert.equal(0, c.added + c.changed + c.removed, stream .. "/" .. e)
      end
    end
    assert.equal(before, n_act(inst))
    tenant:audit { activity = "Update user", category = "UserManagement", operationType = "Update", target = tenant.state.users[3] }
    tenant:add_signin { user = tenant.state.users[4].id, errorCode = 50126 }       -- also an AAD Management record
    tenant:add_record { workload = "Exchange", operation = "New-InboxRule", record_type = 1, content_type = "Audit.Exchange" }
    local req0 = #tenant.log
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(4, by.activities.activities.added)
    assert.equal(before + 4, n_act(inst))
    -- the sign-in logs (interactive, non-interactive) were read from the cursor: one page each, not the whole log
    local signin_pages = 0
    for i = req0 + 1, #tenant.log do
      if tenant.log[i].path:find("/auditLogs/signIns", 1, true) then signin_pages = signin_pages + 1 end
    end
    assert.equal(2, signin_pages)
  end)

  it("logs and skips an expired content blob, and moves on", function()
    local _, id = tenant:add_record { workload = "SharePoint", operation = "FileDownloaded", record_type = 6 }
    tenant:expire_blob(id)
    local before = n_act(inst)
    local by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(0, by.activities.activities.added)
    local saw404 = false
    for _, l in ipairs(tenant.log) do if l.status == 404 and l.path:find(id, 1, true) then saw404 = true end end
    assert.is_true(saw404)
    tenant:add_record { workload = "SharePoint", operation = "FileUploaded", record_type = 6 }
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)
    assert.equal(before + 1, n_act(inst))
  end)

  it("runs only the streams of enabled components, and refuses components without users", function()
    local i2 = set("o365", { components = "users" })
    local by = sync_ok(i2)
    assert.same({ "groups", "users" }, (function() local l = {}; for k in pairs(by) do l[#l + 1] = k end; table.sort(l); return l end)())
    -- a stream run by name while off is skipped cleanly, changing nothing
    local before = n_act(i2)
    tenant:add_signin { user = tenant.state.users[5].id }
    by = sync_ok(i2, { streams = { "activities", "app_grants" } })
    assert.same({}, by.activities)
    assert.equal(before, n_act(i2))
    -- sign-ins only: the new sign-in, not its Management API twin
    i2 = set("o365", { components = "users,signins" })
    by = sync_ok(i2, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)
    -- without users: refused at edit; a database that holds such settings anyway (written by hand, or
    -- by an older cachost) gets a clear error at sync, and nothing runs
    local refused, why = instances.edit(runtime.store(), "o365", { components = "signins,files" })
    assert.is_nil(refused)
    assert.matches("'users' component", why)
    local function force(components)
      local st = runtime.store()
      local row = instances.instance(runtime.store(), "o365").row
      local s2 = json.decode(row.settings); s2.components = components
      assert(st.db:exec("UPDATE instances SET settings = ? WHERE id = ?", json.encode(s2), row.id))
      return assert(instances.instance(runtime.store(), "o365"))
    end
    i2 = force("signins,files")
    local res, ok = results_of(i2)
    assert.is_false(ok)
    assert.matches("'users' component %(Entra users and groups%) is required", res.users.error)
    i2 = force("users,bogus")
    res, ok = results_of(i2, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("unknown component 'bogus'", res.users.error)
    inst = set("o365", { components = "users,audits,signins,apps,activities,files" })
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)        -- the Management record of that sign-in
  end)

  it("suspends, unsuspends, revokes sessions, expires passwords and revokes grants in the tenant", function()
    local st = runtime.store()
    local u = st.db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' AND is_admin = 0 AND external = 0 ORDER BY ext_id LIMIT 1", inst.id)[1]
    local function act(action, target, params)
      local rec, err = governance.act { store = st, instance = inst, action = action, target = target, operator = "spec", params = params }
      assert(rec, err)
      assert.equal("ok", rec.result, tostring(rec.error))
      return rec
    end
    act("suspend_user", u.ext_id)
    assert.is_false(tenant:find_user(u.ext_id).accountEnabled)
    assert.equal("disabled", st.db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)   -- re-fetched
    act("unsuspend_user", u.ext_id)
    assert.is_true(tenant:find_user(u.ext_id).accountEnabled)
    assert.equal("active", st.db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
    local valid_from = tenant:find_user(u.ext_id).sessionsValidFrom
    act("revoke_sessions", u.ext_id)
    assert.is_true(tenant:find_user(u.ext_id).sessionsValidFrom > valid_from)
    act("expire_password", u.ext_id)
    assert.is_true(tenant:find_user(u.ext_id).forceChange)
    local g = st.db:query("SELECT * FROM app_grants WHERE instance_id = ? AND deleted_at IS NULL AND coalesce(user, '') <> 'application' ORDER BY ext_id LIMIT 1", inst.id)[1]     -- a delegated grant
    local n = tenant:count("grants")
    act("revoke_grant", g.ext_id)
    assert.equal(n - 1, tenant:count("grants"))
    for _, x in ipairs(tenant.state.grants) do assert.are_not.equal(g.ext_id, x.id) end
    sync_ok(inst, { streams = { "app_grants" } })
    assert.equal(n - 1 + tenant:count("app_role_assignments"), n_of("app_grants", inst))
  end)

  -- a file of the tenant whose only sharing is one permission of its own matching pred
  local function file_with(pred)
    local best
    for _, it in pairs(tenant.state.items) do
      if not it.folder and not it.deleted and #it.perms == 1 and #tenant:effective_perms(it) == 1 and pred(it.perms[1])
        and (not best or it.id < best.id) then best = it end
    end
    return assert(best, "no such file in the tenant")
  end
  local function file_row(id) return runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, id)[1] end
  local function act(action, target, params)
    local rec, err = governance.act { store = runtime.store(), instance = inst, action = action, target = target, operator = "spec", params = params }
    assert(rec, err)
    assert.equal("ok", rec.result, tostring(rec.error))
    return rec
  end

  it("removes shared links and external collaborators, makes files private, in the tenant and the store", function()
    local it = file_with(function(p) return p.kind == "link" and p.scope == "anonymous" end)
    assert.equal("public", file_row(it.id).access_level)
    act("remove_shared_link", it.id)
    assert.equal(0, #it.perms)
    assert.equal("private", file_row(it.id).access_level)
    assert.equal(0, n_of("file_permissions", inst, "file_id = '" .. it.id .. "'"))

    it = file_with(function(p) return p.kind == "user" and p.external end)
    assert.equal("external", file_row(it.id).access_level)
    act("remove_collaborator", it.id)
    assert.equal(0, #it.perms)
    assert.equal("private", file_row(it.id).access_level)

    it = file_with(function(p) return p.kind == "link" and p.scope == "organization" end)
    assert.equal("internal", file_row(it.id).access_level)
    act("make_private", it.id)
    assert.equal(0, #it.perms)
    assert.equal("private", file_row(it.id).access_level)
    -- an inherited permission is not the file's to remove: nothing to do is not an error, the link stays
    local kid
    for _, x in pairs(tenant.state.items) do
      if not x.folder and not x.deleted and #x.perms == 0 and #tenant:effective_perms(x) > 0 and (not kid or x.id < kid.id) then kid = x end
    end
    if kid then
      act("remove_shared_link", kid.id)
      assert.is_true(#tenant:effective_perms(kid) > 0)
    end
  end)

  it("quarantines a file with a tombstone, and undoes it", function()
    local it = file_with(function(p) return p.kind == "link" end)
    local parent, name = it.parent, it.name
    local rec = act("quarantine_file", it.id)
    local folder = tenant.state.items[it.parent]
    assert.equal("cachost quarantine", folder.name)
    local tomb = tenant:child_named(tenant.state.items[parent], name .. ".quarantined.txt")
    assert(tomb, "no tombstone")
    assert.truthy(tomb.content:find(rec.ext_id, 1, true))           -- the correlation id
    assert.equal(1, file_row(it.id).quarantined)
    local undo, err = governance.undo(runtime.store(), function() return inst end, rec.id)
    assert(undo, err)
    assert.equal("ok", undo.result, tostring(undo.error))
    assert.equal(parent, it.parent)
    assert.equal(name, it.name)
    assert.is_nil(tenant:child_named(tenant.state.items[parent], name .. ".quarantined.txt"))
    assert.equal(0, file_row(it.id).quarantined)
  end)

  it("trashes a file; incremental delta sees it; a stale delta link restarts cleanly", function()
    local it = file_with(function(p) return p.kind == "link" end)
    act("trash_file", it.id)
    assert.is_true(it.deleted)
    assert.equal(1, file_row(it.id).trashed)
    sync_ok(inst, { streams = { "files" } })
    assert.equal(tenant:count("items"), n_of("files", inst, "trashed = 0"))
    -- every delta link goes stale; a file changes meanwhile
    tenant:expire_delta()
    local victim = file_with(function(p) return p.kind == "user" end)
    victim.deleted = true
    tenant:touch(victim)
    local req0 = #tenant.log
    local by = sync_ok(inst, { streams = { "files" } })
    local gone = 0
    for i = req0 + 1, #tenant.log do if tenant.log[i].status == 410 then gone = gone + 1 end end
    assert.is_true(gone > 0)
    assert.equal(tenant:count("items"), n_of("files", inst, "trashed = 0"))
    assert.equal(tenant:count("permissions"), n_of("file_permissions", inst, "json_extract(unzstd(raw), '$.inheritedFrom') IS NULL"))
    assert.equal(0, by.files.files.added)
    -- the next poll uses the fresh links: no 410
    req0 = #tenant.log
    sync_ok(inst, { streams = { "files" } })
    for i = req0 + 1, #tenant.log do assert.are_not.equal(410, tenant.log[i].status) end
  end)

  it("answers the Graph validation handshake and re-fetches a user named by a change notification", function()
    local url = hooks.url .. "/webhooks/o365"
    local resp = assert(http.request { method = "POST", url = url, query = { validationToken = "Validation: token&1" },
      headers = { ["Content-Type"] = "text/plain" }, body = "" })
    assert.equal(200, resp.status)
    assert.equal("Validation: token&1", resp.body)
    assert.matches("^text/plain", resp.headers["content-type"])

    local u = tenant.state.users[7]
    u.displayName = "Renamed By Admin"
    local function notify(state)
      return assert(http.request { method = "POST", url = url, headers = { ["Content-Type"] = "application/json" },
        body = json.encode { value = { { id = "n1", subscriptionId = "s1", clientState = state, changeType = "updated",
          resource = "Users/" .. u.id, tenantId = TENANT,
          resourceData = { ["@odata.type"] = "#Microsoft.Graph.User", ["@odata.id"] = "Users/" .. u.id, id = u.id } } } } })
    end
    assert.equal(401, notify("wrong-state").status)
    sched.sleep(0.2)
    local function name() return runtime.store().db:query("SELECT display_name FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, u.id)[1].display_name end
    assert.are_not.equal("Renamed By Admin", name())
    assert.equal(202, notify(CLIENT_STATE).status)
    for _ = 1, 50 do if name() == "Renamed By Admin" then break end; sched.sleep(0.05) end
    assert.equal("Renamed By Admin", name())
  end)

  it("subscribes to Graph change notifications, and follows the tenant's own notifications", function()
    local ctx = sync.context(runtime.store(), inst, "spec")
    local url = hooks.url .. "/webhooks/o365"
    local ids = context.connector(ctx).subscribe(ctx, url)
    assert.equal(1 + tenant:count("drives"), #ids)
    assert.equal(#ids, tenant:count("graph_subscriptions"))
    assert.same(ids, context.connector(ctx).subscribe(ctx, url))                  -- renewed, not duplicated
    assert.equal(#ids, tenant:count("graph_subscriptions"))
    -- a user changed by someone else
    local u = tenant.state.users[9]
    ctx:patch("/v1.0/users/" .. u.id, { displayName = "Changed Elsewhere" })
    -- a file uploaded by someone else
    local d = tenant.state.drives[1]
    local up = ctx:request("PUT", "/v1.0/drives/" .. http.urlencode(d.id) .. "/root:/" .. http.urlencode("from elsewhere.txt") .. ":/content",
      { body = "hello", headers = { ["Content-Type"] = "text/plain" } })
    tenant:flush(5)
    local st = runtime.store()
    local function got()
      local a = st.db:query("SELECT display_name FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, u.id)[1].display_name
      local f = st.db:query("SELECT name FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, up.id)[1]
      return a == "Changed Elsewhere" and f ~= nil
    end
    for _ = 1, 100 do if got() then break end; sched.sleep(0.05) end
    assert.is_true(got())
  end)

  it("survives Graph 429 and 503 with Retry-After, and Management API 429", function()
    local client = context.client(sync.context(runtime.store(), inst, "spec"))
    local throttled = client.stats.throttled
    tenant:fault { kind = "429", count = 2, retry_after = 0, path = "^/v1%.0/users" }
    tenant:fault { kind = "503", count = 2, retry_after = 0, path = "^/v1%.0/groups" }
    tenant:fault { kind = "429", count = 2, retry_after = 0, path = "/activity/feed/subscriptions/content" }
    local by = sync_ok(inst, { streams = { "users", "groups", "activities" } })
    assert.equal(0, by.users.users.added + by.users.users.removed)
    assert.equal(6, client.stats.throttled - throttled)
    assert.is_nil(tenant.faults[1])
  end)
end)
