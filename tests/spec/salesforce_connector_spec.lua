-- The Salesforce connector against the Salesforce sandbox tenant: each stream equals the tenant's ground
-- truth, incremental polls read only what is new, each action changes the tenant, the auth flows are
-- checked (JWT assertion, instance_url, PKCE web flow), the org's API allowance and permissions show as
-- the right health, and the shipped bruteforce policy freezes a user in enforce mode.
local helpers = require "helpers"
local runtime = require "runtime"
local context = require "sdk.context"
local sync = require "sync"
local sf = require "sandbox.salesforce"

local count, n_of = helpers.count, helpers.n_of

local function start(name, opts, settings)
  local t = sf.new(opts or { seed = 5, users = 30, logins_per_day = 25, days = 3, files = 10 })
  local srv = helpers.serve(t)
  local s = { my_domain = "acme.my.salesforce.com", client_id = t.app.client_id, username = t.integration.Username,
              base_url = srv.url, insecure_loopback = true }
  for k, v in pairs(settings or {}) do s[k] = v end
  local inst = helpers.instance("salesforce", name, s, { private_key = t.app.private_key })
  return t, srv, inst
end

local function ids(list) local s = {}; for _, id in ipairs(list) do s[id] = true end; return s end
local function stored(entity, inst)
  local s = {}
  for _, r in ipairs(runtime.store().db:query("SELECT ext_id FROM " .. entity .. " WHERE instance_id = ? AND deleted_at IS NULL", inst.id)) do
    s[r.ext_id] = true
  end
  return s
end

describe("salesforce connector", function()
  local t, srv, inst
  setup(function()
    host.home = helpers.tmp_dir()
    t, srv, inst = start("sf")
  end)
  teardown(function() srv:close() end)

  local function act(action, entity, ext_id, params)
    local ctx = sync.context(runtime.store(), inst, "action")
    local row = runtime.store().db:query("SELECT * FROM " .. entity .. " WHERE instance_id = ? AND ext_id = ?", inst.id, ext_id)[1]
    assert(row, ext_id)
    return context.connector(ctx).actions[action](ctx, row, params)
  end

  it("scans every stream to the tenant's ground truth", function()
    helpers.sync_ok(inst)
    local truth = t:truth()
    for _, entity in ipairs { "users", "groups", "group_members", "privileges", "app_grants", "files", "file_permissions" } do
      assert.same(ids(truth[entity]), stored(entity, inst), entity)
    end
    -- statuses: deactivated, frozen, password-locked
    local function n(where) local k = 0; for _, u in ipairs(t.users) do if where(u) then k = k + 1 end end; return k end
    assert.equal(n(function(u) return not u.IsActive end), n_of("users", inst, "status = 'disabled'"))
    assert.equal(n(function(u) return u.IsActive and u["@login"].IsFrozen end), n_of("users", inst, "status = 'suspended'"))
    assert.equal(n(function(u) return u.IsActive and not u["@login"].IsFrozen and u["@login"].IsPasswordLocked end),
      n_of("users", inst, "status = 'locked'"))
    assert.equal(n(function(u) return u.UserType ~= "Standard" end), n_of("users", inst, "external = 1"))
    -- admins: whoever holds an admin-granting permission set (a profile's or their own)
    local admins = {}
    for _, a in ipairs(t.db.PermissionSetAssignment) do
      for _, id in ipairs(truth.privileges) do if id == a.Id then admins[a.AssigneeId] = true end end
    end
    local na = 0
    for _ in pairs(admins) do na = na + 1 end
    assert.equal(na, n_of("users", inst, "is_admin = 1"))
    assert.equal(1, n_of("privileges", inst, ("user_id = '%s' AND role = 'profile System Administrator' AND scope = 'ModifyAllData, ViewAllData, ManageUsers'")
      :format(t.integration.Id)))
    -- the card file is shared by a public link
    local card = t.db.ContentDocument[1]
    assert.equal("public", runtime.store().db:query("SELECT access_level FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, card.Id)[1].access_level)
    assert.equal(1, n_of("file_permissions", inst, ("file_id = '%s' AND principal_type = 'link' AND link LIKE 'https://%%/sfc/p/%%'"):format(card.Id)))
    -- activities: every sign-in of the window, the Setup Audit Trail, the log files' events but Login
    local since = t:now_ms() - 7 * 86400000
    local logins, audits = 0, 0
    for _, l in ipairs(t.db.LoginHistory) do if require("sandbox.salesforce.soql").ms(l.LoginTime) >= since - 1000 then logins = logins + 1 end end
    audits = #t.db.SetupAuditTrail
    assert.equal(logins, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action LIKE 'login%'", inst.id))
    assert.equal(audits, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'admin'", inst.id))
    local events = 0
    for _, f in ipairs(t.db.EventLogFile) do
      if f.EventType ~= "Login" then events = events + #assert(require("sdk.csv").records(t:log_csv(f))) end
    end
    assert.is_true(events > 0)
    assert.equal(events, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND app = 'Event Monitoring'", inst.id))
    assert.equal(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action LIKE 'login%' AND outcome = 'failure'", inst.id),
      (function() local k = 0; for _, l in ipairs(t.db.LoginHistory) do if l.Status ~= "Success" then k = k + 1 end end; return k end)())
    -- located sign-ins carry the login geo's coordinates
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin' AND lat IS NOT NULL AND location LIKE '%, %'", inst.id) > 0)
  end)

  it("polls only what is new: sign-ins after the watermark, no log file twice", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local requests = t.requests
    helpers.sync_ok(inst, { streams = { "activities" } })
    assert.equal(before, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    -- three queries and no log file download
    assert.equal(3, t.requests - requests)
    t:simulate_bruteforce(t.users[4].Username, 6)
    helpers.sync_ok(inst, { streams = { "activities" } })
    assert.equal(before + 7, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    local r = runtime.store().db:query("SELECT outcome, actor_id FROM activities WHERE instance_id = ? AND actor_id = ? ORDER BY time DESC LIMIT 7",
      inst.id, t.users[4].Id)
    assert.equal("success", r[1].outcome)
    assert.equal("failure", r[7].outcome)
  end)

  it("reads files in between full listings by SystemModstamp, a deleted one seen going (queryAll)", function()
    local doc = t.db.ContentDocument[2]
    -- a new version, and another file deleted, after the full listing
    t:add_version(doc, "new content 4111 1111 1111 1111\n", doc.Title .. ".txt", "edit", t:now_ms() + 5000)
    local gone = t.db.ContentDocument[3]
    gone.IsDeleted, gone.SystemModstamp = true, doc.SystemModstamp
    local requests = t.requests
    helpers.sync_ok(inst, { streams = { "files" } })
    assert.is_true(t.requests - requests <= 4, "an increment, not a full listing: " .. (t.requests - requests))
    assert.equal(0, n_of("files", inst, ("ext_id = '%s'"):format(gone.Id)))
    assert.same(ids(t:truth().files), stored("files", inst))
    -- the data scan reads the latest version
    local ctx = sync.context(runtime.store(), inst, "dlp")
    local row = runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, doc.Id)[1]
    assert.equal("new content 4111 1111 1111 1111\n", ctx:content(row, 1000000))
    gone.IsDeleted = false
    helpers.sync_ok(inst, { streams = { "files" }, full = true })
    assert.same(ids(t:truth().files), stored("files", inst))
  end)

  it("freezes and unfreezes (the generic suspension), deactivates, resets a password", function()
    local u = t.users[5]
    u.IsActive, u["@login"].IsFrozen = true, false
    helpers.sync_ok(inst, { streams = { "users" } })
    local undo = act("suspend_user", "users", u.Id)
    assert.is_true(u["@login"].IsFrozen)
    assert.equal("unsuspend_user", undo.undo.action)
    assert.equal("frozeuser", t.db.SetupAuditTrail[#t.db.SetupAuditTrail].Action)
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, u.Id)[1].status)
    act("unsuspend_user", "users", u.Id)
    assert.is_false(u["@login"].IsFrozen)
    -- signed out everywhere: a new sign-in's session, then none
    t:add_login(u, t:now_ms(), "Success", t.geos[1], { "Chrome 127", "Mac OSX" }, require("sandbox.tenant").rng(1))
    local function sessions()
      local n = 0
      for _, x in ipairs(t.db.AuthSession) do if x.UsersId == u.Id then n = n + 1 end end
      return n
    end
    assert.is_true(sessions() >= 1)
    act("revoke_sessions", "users", u.Id)
    assert.equal(0, sessions())
    act("reset_password", "users", u.Id)
    assert.is_true(u["@expired"])
    act("deactivate_user", "users", u.Id)
    assert.is_false(u.IsActive)
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal("disabled", runtime.store().db:query("SELECT status FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, u.Id)[1].status)
    -- the integration user cannot deactivate itself: Salesforce's error, one line
    local ok, err = pcall(act, "deactivate_user", "users", t.integration.Id)
    assert.is_false(ok)
    assert.matches("FIELD_INTEGRITY_EXCEPTION: You cannot deactivate your own user record", tostring(err))
  end)

  it("revokes a user's OAuth token with its DeleteToken, which is never stored", function()
    local tok = t.db.OauthToken[1]
    assert.equal(0, count("SELECT count(*) n FROM app_grants WHERE instance_id = ? AND raw LIKE ?", inst.id, "%" .. tok.DeleteToken .. "%"))
    act("revoke_grant", "app_grants", tok.Id)
    for _, o in ipairs(t.db.OauthToken) do assert.is_true(o.Id ~= tok.Id) end
    helpers.sync_ok(inst, { streams = { "app_grants" } })
    assert.equal(0, n_of("app_grants", inst, ("ext_id = '%s'"):format(tok.Id)))
  end)

  it("quarantines a file into the restricted library with a tombstone version, and undoes it", function()
    local doc = t.db.ContentDocument[1]
    helpers.sync_ok(inst, { streams = { "files" }, full = true })
    local function links()
      local out = {}
      for _, l in ipairs(t.db.ContentDocumentLink) do if l.ContentDocumentId == doc.Id then out[#out + 1] = l end end
      return out
    end
    local shared = #links()
    local before = doc.LatestPublishedVersionId
    local res = act("quarantine_file", "files", doc.Id)
    for _, d in ipairs(t.db.ContentDistribution) do assert.is_true(d.ContentDocumentId ~= doc.Id) end
    local left = {}
    for _, l in ipairs(links()) do left[l.LinkedEntityId] = true end
    assert.same({ [doc.OwnerId] = true, [t.libraries[2].Id] = true }, left)
    local latest = t.byid[doc.LatestPublishedVersionId:sub(1, 15)]
    assert.is_true(latest.Id ~= before)
    assert.matches("quarantined by your administrator", latest["@data"])
    assert.equal("customer-cards.quarantined.txt", latest.PathOnClient)
    -- the next scan sees it private, its content the tombstone
    helpers.sync_ok(inst, { streams = { "files" }, full = true })
    assert.equal("internal", runtime.store().db:query("SELECT access_level FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, doc.Id)[1].access_level)
    act("unquarantine_file", "files", doc.Id, res.undo.params)
    assert.equal(shared, #links())          -- the shares back, out of the library; the public link stays gone
    latest = t.byid[doc.LatestPublishedVersionId:sub(1, 15)]
    assert.matches("4111 1111 1111 1111", latest["@data"])
    assert.equal("customer-cards.txt", latest.PathOnClient)
  end)

  it("removes public links and shares; the owner's own link cannot go", function()
    local doc
    for _, d in ipairs(t.db.ContentDistribution) do doc = doc or t.byid[d.ContentDocumentId:sub(1, 15)] end
    helpers.sync_ok(inst, { streams = { "files" }, full = true })
    act("remove_shared_link", "files", doc.Id)
    for _, d in ipairs(t.db.ContentDistribution) do assert.is_true(d.ContentDocumentId ~= doc.Id) end
    act("make_private", "files", doc.Id)
    for _, l in ipairs(t.db.ContentDocumentLink) do
      if l.ContentDocumentId == doc.Id then assert.equal(doc.OwnerId, l.LinkedEntityId) end
    end
  end)

  it("freezes the user the shipped bruteforce policy catches, in enforce mode", function()
    runtime.store():set_policy_switch("bruteforce", { mode = "enforce" })
    runtime.policies(true)
    runtime.watch(true)
    local ok, err = pcall(function()
      local victim = t.users[7]
      victim.IsActive, victim["@login"].IsFrozen = true, false
      helpers.sync_ok(inst, { streams = { "users" } })
      t:simulate_bruteforce(victim.Username, 8)
      helpers.sync_ok(inst, { streams = { "activities" } })
      assert.is_true(victim["@login"].IsFrozen, "frozen in the tenant")
      assert.equal(1, count("SELECT count(*) n FROM governance_actions WHERE instance_id = ? AND action = 'suspend_user' AND target_id = ? "
        .. "AND policy = 'bruteforce' AND mode = 'executed'", inst.id, victim.Id))
    end)
    runtime.watch(false)
    runtime.store():set_policy_switch("bruteforce", { mode = "audit" })
    assert(ok, err)
  end)
end)

describe("salesforce auth, limits and permissions", function()
  setup(function() host.home = helpers.tmp_dir() end)

  it("signs in with the JWT bearer flow every 15 minutes, not on every request", function()
    local t, srv, inst = start("sf-jwt", { seed = 8, users = 6 })
    helpers.sync_ok(inst, { streams = { "users", "groups" } })
    srv:close()
    assert.equal(1, t.assertions)
    local exp = tonumber(inst:secret("token_expires_at"))
    assert.is_true(exp > sched.time() + 800 and exp <= sched.time() + 900)
  end)

  it("is reconnect needed with a key the app does not know, or the wrong audience", function()
    local t, srv, inst = start("sf-key", { seed = 9, users = 6 })
    inst:set_secret("private_key", crypto.keygen("RSA"))
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: token exchange refused: invalid_grant: invalid assertion", results[1].error)
    assert.equal("reconnect_needed", require("instances").instance(runtime.store(), "sf-key").row.status)
    local _, _, inst2 = start("sf-aud", { seed = 9, users = 6 }, { sandbox_org = true })
    results = runtime.sync(inst2, { streams = { "users" } })
    assert.matches("invalid_grant: audience is invalid", results[1].error)
    srv:close()
    assert.is_nil(t.assertions)
  end)

  it("refuses a token whose instance_url is another org's My Domain", function()
    local t, srv, inst = start("sf-other", { seed = 10, users = 6 })
    t.base_url = "https://globex.my.salesforce.com"          -- the org answers with another instance_url
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    srv:close()
    assert.is_false(ok)
    assert.matches("the token is for https://globex.my.salesforce.com, not this instance's My Domain", results[1].error)
  end)

  it("connects with the web server flow: PKCE checked, the refresh token renews the session", function()
    local t, srv, inst = start("sf-web", { seed = 11, users = 6 }, { auth = "web" })
    inst:set_secret("client_secret", t.app.client_secret)
    local auth = require "sdk.auth"
    local ctx = sync.context(runtime.store(), inst, "connect")
    local client, scheme = context.client(ctx), auth.scheme(context.connector(ctx), inst)
    -- the browser: the org's consent page redirects to our loopback callback with the code
    local got, cb
    cb = assert(server.listen { port = 0 })
    cb:route("GET", "/callback", function(req) got = req.query; return 200, "ok" end)
    local url, exchange = auth.authorization_code(client, scheme, cb.url .. "/callback")
    assert.matches("code_challenge_method=S256", url)
    assert(http.request { url = url })
    cb:close()
    assert(exchange(got))
    assert.truthy(inst:secret("refresh_token"))
    helpers.sync_ok(inst, { streams = { "users" } })
    -- the session ends after the scheme's lifetime: refreshed, not reconnect needed
    inst:set_secret("token_expires_at", tostring(sched.time() - 1))
    helpers.sync_ok(inst, { streams = { "groups" } })
    local n = 0
    for _ in pairs(t.tokens) do n = n + 1 end
    assert.equal(2, n)
    -- a token answer for another org (its instance_url) is refused, nothing stored
    local real = t.base_url
    t.base_url = "https://globex.my.salesforce.com"
    cb = assert(server.listen { port = 0 })
    cb:route("GET", "/callback", function(req) got = req.query; return 200, "ok" end)
    url, exchange = auth.authorization_code(client, scheme, cb.url .. "/callback")
    assert(http.request { url = url })
    cb:close()
    local access = inst:secret("access_token")
    local tok, err = exchange(got)
    t.base_url = real
    srv:close()
    assert.is_nil(tok)
    assert.matches("^the token is for https://globex%.my%.salesforce%.com", err)
    assert.equal(access, inst:secret("access_token"))
  end)

  it("stops at api_usage_max of the org's daily requests, and backs off REQUEST_LIMIT_EXCEEDED", function()
    local t, srv, inst = start("sf-limit", { seed = 12, users = 6, api_limit = 1000, api_used = 949 }, { api_usage_max = 95 })
    local results, ok = runtime.sync(inst, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^throttled: the org has used 950 of its 1000 daily API requests; cachost stops at 95%%", results[1].error)
    local Client = require "sdk.client"
    local base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.01
    t.api_used, inst.settings.api_usage_max = 0, nil
    t:fault { kind = "429", count = 2 }
    local ok2, err = pcall(helpers.sync_ok, inst, { streams = { "groups" } })
    t:fault { kind = "primary", count = 10 }
    local res3, ok3 = runtime.sync(inst, { streams = { "groups" } })
    Client.BACKOFF_BASE = base
    srv:close()
    assert(ok2, err)
    assert.is_false(ok3)
    assert.matches("^throttled", res3[1].error)
  end)

  it("says which permission the integration user lacks, and which edition the org needs", function()
    local t, srv, inst = start("sf-perm", { seed = 13, users = 6 })
    -- the integration user on the Standard User profile: no Manage Users, no View Setup
    local std = t.profiles[2]
    t.integration.ProfileId = std.Id
    for _, a in ipairs(t.db.PermissionSetAssignment) do
      if a.AssigneeId == t.integration.Id then a.PermissionSetId = std["@permset"].Id end
    end
    local results = runtime.sync(inst, { streams = { "users", "groups", "privileges" } })
    assert.equal("permission: UserLogin is not visible to the integration user: it needs Manage Users", results[1].error)
    assert.is_nil(results[2].error)
    assert.equal("permission: PermissionSetAssignment is not visible to the integration user: it needs View Setup and Configuration", results[3].error)
    t.edition = "Professional Edition"
    results = runtime.sync(inst, { streams = { "groups" } })
    srv:close()
    assert.matches("^unavailable: needs Enterprise, Unlimited, Performance or Developer Edition, or the API add%-on: HTTP 403: API_DISABLED_FOR_ORG", results[1].error)
  end)
end)
