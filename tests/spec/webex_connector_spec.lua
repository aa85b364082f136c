-- The Webex connector against the Webex sandbox tenant: a scan equals the tenant's ground truth (people
-- and their state, admin roles, groups, authorizations, files posted in spaces with the spaces' external
-- participants, admin audit, sign-ins and compliance events), the logs and files are read incrementally,
-- each governance action changes the tenant, the OAuth flows (authorization code, refresh, a service app's
-- refresh token) work and fail as Webex's do, a token without the compliance scopes loses only the streams
-- that need them, and webhooks are created with a secret from the vault and verified.
local context = require "sdk.context"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local connect = require "connect"
local tenants = require "tenants"
local helpers = require "helpers"
local governance = require "governance"

local n_of, count, sync_ok = helpers.n_of, helpers.count, helpers.sync_ok

local function connector(ctx) return context.connector(ctx) end
local function db() return runtime.store().db end
local function file_row(inst, ext_id)
  return db():query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, ext_id)[1]
end

describe("webex connector", function()
  local r, t, inst
  setup(function()
    host.home = helpers.tmp_dir()
    r = tenants.start("webex", "wx", { seed = 7, tenant = { users = 24, rooms = 5, files = 9 } })
    t, inst = r.tenant, r.inst
  end)
  teardown(function() r.srv:close() end)

  it("scans people, roles, groups, grants, files and the three logs to the tenant's ground truth", function()
    sync_ok(inst)
    local truth = t:truth()
    assert.equal(#truth.users, n_of("users", inst))
    local off, pending = 0, 0
    for _, p in ipairs(t.people) do
      if p.loginEnabled == "false" then off = off + 1 elseif p.invitePending == "true" then pending = pending + 1 end
    end
    assert.is_true(off > 0 and pending > 0)
    assert.equal(off, n_of("users", inst, "status = 'suspended'"))
    assert.equal(pending, n_of("users", inst, "status = 'pending'"))
    assert.equal(#truth.admins, n_of("users", inst, "is_admin = 1"))
    local roles = 0
    for _, p in ipairs(t.people) do roles = roles + #p.roles end
    assert.equal(roles, n_of("privileges", inst))
    assert.equal(1, n_of("privileges", inst, "role = 'Compliance Officer'"))
    assert.equal(1, n_of("privileges", inst, "role = 'Full Administrator'"))
    assert.equal(#truth.groups, n_of("groups", inst))
    local members = 0
    for _, g in ipairs(t.groups) do members = members + #g.members end
    assert.equal(members, n_of("group_members", inst))
    assert.equal(#truth.app_grants, n_of("app_grants", inst))
    assert.equal(0, n_of("app_grants", inst, "user IS NULL OR app_name IS NULL"))
    -- files: one row per file of a live message, with its space's access and members
    assert.equal(#truth.files, n_of("files", inst))
    local ext = t:external_rooms()
    local perms = 0
    for _, id in ipairs(truth.files) do
      local f = assert(file_row(inst, id))
      local msg = t.message_by[id:match("^(.-)/")]
      assert.equal(ext[msg.roomId] and "external" or "internal", f.access_level)
      assert.equal(t.room_by[msg.roomId].title, f.path:match("^/([^/]+)/"))
      assert.equal(t.contents[msg.files[1]].name, f.name)
      assert.equal(#t.contents[msg.files[1]].data, f.size)
      assert.equal("text/plain", f.mime)
      assert.equal(msg.personEmail, f.owner)
      local in_room = 0
      for _, m in ipairs(t.memberships) do if m.roomId == msg.roomId then in_room = in_room + 1 end end
      perms = perms + in_room
    end
    assert.equal(perms, n_of("file_permissions", inst))
    assert.is_true(n_of("file_permissions", inst, "external = 1") > 0)
    -- activities: admin audit, sign-ins, compliance events, each once
    assert.equal(truth.activities, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.equal(#t.signins, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND app = 'Webex' AND kind = 'signin'", inst.id))
    assert.equal(#t.events, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'user'", inst.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'admin' AND ip IS NOT NULL", inst.id) > 0)
  end)

  it("reads what happened since, and follows files posted, deleted and spaces opened to outsiders", function()
    sync_ok(inst)
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local by = sync_ok(inst, { streams = { "activities", "files" } })
    assert.equal(0, by.activities.activities.added)
    -- a new file in an internal space, then an outsider joins it
    local room
    for _, rm in ipairs(t.rooms) do if not t:external_rooms()[rm.id] then room = rm; break end end
    local msg = t:share_file(room, nil, "q3-cards.txt", "card " .. require("sandbox.webex").CARD)
    t:flush()
    by = sync_ok(inst, { streams = { "files", "activities" } })
    assert.equal(1, by.files.files.added)
    assert.equal("internal", file_row(inst, msg.id .. "/1").access_level)
    assert.equal(before + 1, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))  -- its event
    t:add_membership(room, t.externals[1])
    sync_ok(inst, { streams = { "files" } })
    assert.equal("external", file_row(inst, msg.id .. "/1").access_level)
    assert.equal(1, n_of("file_permissions", inst, ("file_id = '%s' AND external = 1"):format(msg.id .. "/1")))
    -- the author deletes the message: the file is gone
    t.deleted_messages[msg.id] = true
    t:event("messages", "deleted", msg.personId, { id = msg.id, roomId = msg.roomId })
    sync_ok(inst, { streams = { "files" } })
    assert.is_not_nil(file_row(inst, msg.id .. "/1").deleted_at)
    assert.equal(0, n_of("file_permissions", inst, ("file_id = '%s'"):format(msg.id .. "/1")))
  end)

  it("disables and re-enables sign-in with the whole person sent back, and removes admin roles", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local p = t.people[5]
    local before = require("sandbox.tenant").deep(p)
    local u = db():query("SELECT * FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, p.id)[1]
    local res = connector(ctx).actions.suspend_user(ctx, u)
    assert.equal("false", p.loginEnabled)
    assert.same({ action = "unsuspend_user", params = {} }, res.undo)
    -- PUT replaces the person: nothing else was lost
    for _, k in ipairs { "displayName", "firstName", "lastName", "emails", "roles", "licenses" } do assert.same(before[k], p[k], k) end
    sync_ok(inst, { streams = { "users" } })
    assert.equal("suspended", db():query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
    connector(ctx).actions.unsuspend_user(ctx, u)
    assert.equal("true", p.loginEnabled)
    -- the User Administrator loses the role
    local admin = db():query("SELECT * FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, t.people[2].id)[1]
    connector(ctx).actions.remove_admin_role(ctx, admin, { role = "User Administrator" })
    assert.same({}, t.people[2].roles)
    sync_ok(inst, { streams = { "users" } })
    assert.equal(0, n_of("privileges", inst, ("user_id = '%s'"):format(t.people[2].id)))
    assert.equal(0, db():query("SELECT is_admin FROM users WHERE id = ?", admin.id)[1].is_admin)
  end)

  it("a role given in Control Hub raises the shipped new-admin alert at the next scan", function()
    sync_ok(inst, { streams = { "users" } })
    local p = t.people[12]
    table.insert(p.roles, t.role_by.full.id)
    runtime.watch(true)
    sync_ok(inst, { streams = { "users" } })
    runtime.watch(false)
    local a = db():query("SELECT * FROM alerts WHERE instance_id = ? AND policy = 'new_admin'", inst.id)
    assert.equal(1, #a)
    assert.matches(p.id .. " was granted Full Administrator", a[1].title, 1, true)
    assert.equal(1, db():query("SELECT is_admin FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, p.id)[1].is_admin)
  end)

  it("revokes an integration's grant (its refresh and access token) and every token of a user", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    sync_ok(inst, { streams = { "users", "app_grants" } })
    local g = db():query("SELECT * FROM app_grants WHERE instance_id = ? AND deleted_at IS NULL ORDER BY ext_id LIMIT 1", inst.id)[1]
    local function held(person, client)
      local n = 0
      for _, a in ipairs(t.authorizations) do if a.personId == person and (not client or a.clientId == client) then n = n + 1 end end
      return n
    end
    assert.equal(2, held(g.user_id, g.client_id))
    connector(ctx).actions.revoke_grant(ctx, g)
    assert.equal(0, held(g.user_id, g.client_id))
    local u = db():query("SELECT * FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, t.people[4].id)[1]
    assert.is_true(held(u.ext_id) > 0)
    connector(ctx).actions.revoke_sessions(ctx, u)
    assert.equal(0, held(u.ext_id))
    -- an integration revoked for the whole organization
    local other = db():query("SELECT * FROM app_grants WHERE instance_id = ? AND deleted_at IS NULL AND client_id <> ? LIMIT 1",
      inst.id, g.client_id)[1]
    connector(ctx).actions.revoke_grant(ctx, other, { org_wide = true })
    for _, a in ipairs(t.authorizations) do assert.is_not.equal(other.client_id, a.clientId) end
    sync_ok(inst, { streams = { "app_grants" } })
    assert.equal(#t.authorizations, n_of("app_grants", inst))
    assert.equal(0, n_of("app_grants", inst, ("client_id = '%s'"):format(other.client_id)))
  end)

  it("removes an external participant from a file's space", function()
    sync_ok(inst, { streams = { "files" } })
    local ctx = sync.context(runtime.store(), inst, "action")
    local f = db():query("SELECT * FROM files WHERE instance_id = ? AND deleted_at IS NULL AND access_level = 'external' LIMIT 1", inst.id)[1]
    connector(ctx).actions.remove_collaborator(ctx, f)
    assert.is_nil(t:external_rooms()[f.parent_id])
    connector(ctx).fetch.files(ctx, "room:" .. f.parent_id)
    assert.equal("internal", file_row(inst, f.ext_id).access_level)
    assert.equal(0, n_of("file_permissions", inst, ("file_id = '%s' AND external = 1"):format(f.ext_id)))
  end)

  it("quarantines (deletes the message of) a card-number file shared with outsiders, by the shipped policy", function()
    local room = t.rooms[1]
    assert.is_true(t:external_rooms()[room.id] == true)
    local msg = t:share_file(room, nil, "cards.txt", "Visa " .. require("sandbox.webex").CARD .. " exp 01/30\n")
    local inside
    for _, rm in ipairs(t.rooms) do if not t:external_rooms()[rm.id] then inside = rm; break end end
    local kept = t:share_file(inside, nil, "cards-internal.txt", "Visa " .. require("sandbox.webex").CARD .. "\n")
    runtime.watch(true)
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "enforce" end end
    local ok = select(2, runtime.sync(inst, { streams = { "files" } }))
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "audit" end end
    assert.is_true(ok)
    local g = db():query("SELECT * FROM governance_actions WHERE instance_id = ? AND action = 'quarantine_file' AND target_id = ?",
      inst.id, msg.id .. "/1")
    assert.equal(1, #g)
    assert.equal("ok", g[1].result)
    assert.is_true(t.deleted_messages[msg.id])                -- gone from the space, for everyone
    assert.is_not_nil(file_row(inst, msg.id .. "/1").deleted_at)
    assert.is_nil(t.deleted_messages[kept.id])               -- the internal one stays
    assert.equal(0, count("SELECT count(*) n FROM governance_actions WHERE instance_id = ? AND target_id = ?", inst.id, kept.id .. "/1"))
    local evidence = db():query("SELECT evidence FROM alerts WHERE policy = 'sensitive_file_shared' AND entity_id = ?", msg.id .. "/1")
    assert.equal(1, #evidence)
    assert.matches('"credit_card":{"count":', evidence[1].evidence)
    assert.is_nil(evidence[1].evidence:find("4111 1111 1111 1111", 1, true))
  end)

  it("settles a quarantine whose answer was lost by the message being gone", function()
    local msg = t:share_file(t.rooms[2], nil, "cut-off.txt", "x")
    sync_ok(inst, { streams = { "files" } })
    -- Webex deletes the message after cachost stopped waiting for the answer
    local Client = require "sdk.client"
    local saved = Client.TIMEOUT
    Client.TIMEOUT = 0.5
    t:fault { kind = "slow", delay = 1, method = "DELETE", path = "/messages/", count = 1 }
    local ok, rec = pcall(governance.act, { store = runtime.store(), instance = inst, action = "quarantine_file",
      target = msg.id .. "/1", operator = "spec" })
    Client.TIMEOUT = saved
    assert(ok, rec)
    assert.equal("unknown", rec.result)
    local deadline = sched.now() + 10
    while not t.deleted_messages[msg.id] and sched.now() < deadline do sched.sleep(0.05) end
    assert.is_true(t.deleted_messages[msg.id])
    local counts = assert(governance.reconcile(runtime.store(), inst))
    assert.equal(1, counts.ok)
    local row = db():query("SELECT * FROM governance_actions WHERE id = ?", rec.id)[1]
    assert.equal("ok", row.result)
    assert.matches("took effect %(the target is gone at the provider%)", row.note)
    assert.is_not_nil(file_row(inst, msg.id .. "/1").deleted_at)
  end)

  it("downloads a file's content for the data scan, capped", function()
    sync_ok(inst, { streams = { "files" } })
    local ctx = sync.context(runtime.store(), inst, "dlp")
    local f = db():query("SELECT * FROM files WHERE instance_id = ? AND deleted_at IS NULL AND name LIKE 'payments-%' LIMIT 1", inst.id)[1]
    local body = assert(ctx:content(f, 1024))
    assert.matches("4111 1111 1111 1111", body, 1, true)
    local none, err = ctx:content(f, 10)
    assert.is_nil(none)
    assert.matches("too_large", err)
    -- still being scanned: 423 Locked with Retry-After, asked again after it
    local c = t.contents[json.decode(f.raw).url:match("/contents/(.+)$")]
    c.scanning = 1
    local n = #t.log
    assert.matches("4111 1111 1111 1111", assert(ctx:content(f, 1024)), 1, true)
    assert.equal(423, t.log[n + 1].status)
    assert.equal(200, t.log[n + 2].status)
  end)

  it("says which request failed with Webex's trackingId", function()
    local ctx = sync.context(runtime.store(), inst, "test")
    local resp, err, token = ctx:try("GET", "/people/nobody")
    assert.is_nil(resp)
    assert.equal("not_found", token)
    assert.matches("^not_found: HTTP 404: The requested person could not be found%. %(trackingId ROUTER_", err)
  end)
end)

describe("webex auth", function()
  local t, srv
  setup(function()
    host.home = helpers.tmp_dir()
    t = require("sandbox.webex").new { seed = 9, users = 10, rooms = 3, files = 3, days = 2, client_id = "wx-client",
                                       client_secret = "wx-secret" }
    srv = helpers.serve(t)
  end)
  teardown(function() srv:close() end)

  local function add(name, settings, secrets)
    settings.client_id, settings.base_url, settings.insecure_loopback = "wx-client", srv.url .. "/v1", true
    return helpers.instance("webex", name, settings, secrets)
  end

  -- connect.run as `cachost instance connect`, the browser played by http.request -> ok, err, the URL shown
  local function consent(inst)
    local said = {}
    local task = sched.spawn(connect.run, inst, { say = function(line) said[#said + 1] = line end })
    local url
    for _ = 1, 100 do
      sched.sleep(0.02)
      for _, l in ipairs(said) do url = url or l:match("^(http%S+/v1/authorize%?%S+)") end
      if url then break end
    end
    assert(url, "the consent URL was shown")
    local resp = assert(http.request { url = url })
    assert.equal(200, resp.status)
    local _, ok, err = task:join(30)
    return ok, err, url
  end

  it("connects an integration by authorization code, asking only for the components' scopes", function()
    local inst = add("wx-code", { components = "users,groups" }, { client_secret = "wx-secret" })
    local ok, err, url = consent(inst)
    assert(ok, err)
    local q = {}
    for k, v in url:match("%?(.*)$"):gmatch("([^&=]+)=([^&]*)") do q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end) end
    assert.equal("spark-admin:people_read spark-admin:roles_read identity:groups_read", q.scope)
    assert.is_nil(q.code_challenge)
    local at = assert(inst:secret("access_token"))
    assert.is_string(inst:secret("refresh_token"))
    assert.same({ ["spark-admin:people_read"] = true, ["spark-admin:roles_read"] = true, ["identity:groups_read"] = true },
      t.tokens[at].scopes)
    assert.equal(#t.people, n_of("users", inst))
    assert.equal("connected", instances.instance(runtime.store(), "wx-code").row.status)
  end)

  it("refreshes an expired access token with the client secret; a refused refresh is 'reconnect needed'", function()
    local tok = t:officer_tokens()
    local inst = add("wx-refresh", {}, { client_secret = "wx-secret", access_token = tok.access_token,
      refresh_token = tok.refresh_token, token_expires_at = tostring(sched.time() - 10) })
    sync_ok(inst, { streams = { "users" } })
    assert.is_not.equal(tok.access_token, inst:secret("access_token"))
    assert.equal(tok.refresh_token, inst:secret("refresh_token"))
    -- the refresh token is revoked at Webex: the next refresh is refused
    t.refresh[tok.refresh_token] = nil
    inst:set_secret("token_expires_at", tostring(sched.time() - 10))
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: token refresh refused, reconnect needed", results[1].error)
    assert.equal("reconnect_needed", instances.instance(runtime.store(), "wx-refresh").row.status)
  end)

  it("a service app: its refresh token alone is redeemed, then refreshed", function()
    local tok = t:officer_tokens()
    local inst = add("wx-svc", { auth = "service_app" }, { client_secret = "wx-secret", refresh_token = tok.refresh_token })
    sync_ok(inst, { streams = { "users" } })
    assert.is_string(inst:secret("access_token"))
    assert.equal(#t.people, n_of("users", inst))
    -- a wrong client secret: refused
    local bad = add("wx-svc-bad", { auth = "service_app" }, { client_secret = "nope", refresh_token = tok.refresh_token })
    local results, ok = runtime.sync(bad, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: ", results[1].error)
  end)

  it("an admin's token without the compliance scopes: files and events are 'permission missing', the rest goes on", function()
    local tok = t:issue(t.officer.id, { "spark-admin:people_read", "spark-admin:roles_read", "identity:groups_read",
      "audit:events_read", "identity:tokens_read" })
    local inst = add("wx-admin", {}, { client_secret = "wx-secret", access_token = tok.access_token,
      refresh_token = tok.refresh_token, token_expires_at = tostring(sched.time() + 3600) })
    local results = runtime.sync(inst)
    local by = {}
    for _, res in ipairs(results) do by[res.stream] = res end
    assert.is_table(by.users.counts)
    assert.is_table(by.groups.counts)
    assert.is_table(by.app_grants.counts)
    assert.matches("^permission: HTTP 403: .*spark%-compliance:events_read", by.files.error)
    assert.matches("^permission: HTTP 403: .*spark%-compliance:events_read", by.activities.error)
    assert.equal("permission_missing", context.status_of("permission"))
    -- the admin audit and sign-ins were read all the same
    assert.equal(#t.admin_events + #t.signins, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    -- a Compliance Officer who is no Full Administrator: the compliance events, and the audit logs refused
    local co = t.people[7]
    co.roles = { t.role_by.compliance.id }
    local cotok = t:officer_tokens()
    t.tokens[cotok.access_token].uid = co.id
    local officer = add("wx-co", { components = "activities" }, { client_secret = "wx-secret", access_token = cotok.access_token,
      refresh_token = cotok.refresh_token, token_expires_at = tostring(sched.time() + 3600) })
    local res = runtime.sync(officer)
    assert.matches("^permission: HTTP 403: .*Full Administrator", res[1].error)
    assert.equal(#t.events, count("SELECT count(*) n FROM activities WHERE instance_id = ?", officer.id))
  end)
end)

describe("webex webhooks", function()
  local r, t, inst, hooks
  setup(function()
    host.home = helpers.tmp_dir()
    r = tenants.start("webex", "wxh", { seed = 11 })
    t, inst = r.tenant, r.inst
    -- the webhook endpoint as `cachost run` serves it (re-fetches run as their own tasks)
    hooks = assert(server.listen { port = 0 })
    hooks:route("*", "/webhooks/:instance", require("daemon").webhook)
    sync_ok(inst)
  end)
  teardown(function() r.srv:close(); hooks:close() end)

  local function url() return hooks.url .. "/webhooks/" .. inst.name end
  local function eventually(what, fn)
    local deadline = sched.now() + 10
    while not fn() and sched.now() < deadline do sched.sleep(0.02) end
    assert(fn(), what)
  end

  it("creates its webhooks once, with a secret kept in the vault, and turns back on one Webex disabled", function()
    local ctx = sync.context(runtime.store(), inst, "subscribe")
    assert.is_nil(inst:secret("webhook_secret"))
    local ids = connector(ctx).subscribe(ctx, url())
    assert.equal(4, #ids)
    local secret = assert(inst:secret("webhook_secret"))
    local seen = {}
    for _, w in ipairs(t.webhooks) do
      assert.equal(url(), w.targetUrl)
      assert.equal(secret, w.secret)
      seen[w.resource .. "." .. w.event .. "." .. w.ownedBy] = true
    end
    assert.same({ ["messages.created.org"] = true, ["messages.deleted.org"] = true, ["memberships.created.creator"] = true,
                  ["memberships.deleted.creator"] = true }, seen)
    t.webhooks[1].status = "inactive"
    assert.same(ids, connector(ctx).subscribe(ctx, url()))
    assert.equal(4, #t.webhooks)
    assert.equal("active", t.webhooks[1].status)
  end)

  it("takes a signed notification of a new file to a re-fetch of it; refuses forged and unsigned ones; ignores replays", function()
    local msg = t:share_file(t.rooms[2], nil, "leak.txt", "nothing")
    t:flush()
    local d = t.deliveries[#t.deliveries]
    assert.equal(200, d.status)
    eventually("the file was re-fetched", function() return file_row(inst, msg.id .. "/1") ~= nil end)
    local f = file_row(inst, msg.id .. "/1")
    assert.equal("leak.txt", f.name)
    assert.equal(t:external_rooms()[t.rooms[2].id] and "external" or "internal", f.access_level)
    -- what Webex sent, replayed, forged and unsigned
    local function post(headers, body)
      return assert(http.request { method = "POST", url = url(), headers = headers, body = body or d.body })
    end
    local replay = post(d.headers)
    assert.equal(200, replay.status)
    assert.is_true(json.decode(replay.body).duplicate)
    local forged = d.body:gsub('"event":"created"', '"event":"deleted"')
    assert.is_not.equal(d.body, forged)
    assert.equal(401, post(d.headers, forged).status)
    assert.equal(401, post({ ["Content-Type"] = "application/json" }).status)
    assert.equal(401, post({ ["Content-Type"] = "application/json", ["X-Spark-Signature"] = crypto.hex(crypto.hmac_sha1("guess", d.body)) }).status)
    -- a signed body that is not a notification
    local odd = '{"resource":"rooms","data":{"id":"x"}}'
    assert.equal(400, post({ ["Content-Type"] = "application/json",
      ["X-Spark-Signature"] = crypto.hex(crypto.hmac_sha1(inst:secret("webhook_secret"), odd)) }, odd).status)
  end)

  it("a participant removed and a message deleted reach the store through their notifications", function()
    sync_ok(inst, { streams = { "files" } })
    local f = db():query("SELECT * FROM files WHERE instance_id = ? AND deleted_at IS NULL AND access_level = 'external' LIMIT 1", inst.id)[1]
    for _, m in ipairs(t.memberships) do
      if m.roomId == f.parent_id and m.personOrgId ~= t.org_id then
        local ctx = sync.context(runtime.store(), inst, "action")
        connector(ctx).actions.remove_collaborator(ctx, f, { membership_id = m.id })
      end
    end
    t:flush()
    eventually("the space is internal", function() return file_row(inst, f.ext_id).access_level == "internal" end)
    t.deleted_messages[f.ext_id:match("^(.-)/")] = true
    t:notify("messages", "deleted", { id = f.ext_id:match("^(.-)/"), roomId = f.parent_id }, t.people[1].id)
    t:flush()
    eventually("the file is gone", function() return file_row(inst, f.ext_id).deleted_at ~= nil end)
  end)

  it("in real time: a card-number file posted where outsiders are is removed by the shipped policy", function()
    local room
    for _, rm in ipairs(t.rooms) do if t:external_rooms()[rm.id] then room = rm; break end end
    runtime.watch(true)
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "enforce" end end
    local msg = t:share_file(room, nil, "card.txt", "pay with " .. require("sandbox.webex").CARD)
    t:flush()
    eventually("the message was deleted", function() return t.deleted_messages[msg.id] == true end)
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "audit" end end
    runtime.watch(false)
    eventually("the file is gone", function() return (file_row(inst, msg.id .. "/1") or {}).deleted_at ~= nil end)
    assert.equal(1, count("SELECT count(*) n FROM governance_actions WHERE instance_id = ? AND target_id = ? AND result = 'ok'",
      inst.id, msg.id .. "/1"))
  end)
end)
