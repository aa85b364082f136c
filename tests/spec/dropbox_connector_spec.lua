-- The Dropbox connector against the Dropbox sandbox team: a full scan equals the team's ground truth
-- (members by status, admin roles, groups, every namespace's files read once as the admin, shared links,
-- shared-folder members, linked apps, team_log events), the team_log cursor continues and restarts from
-- the watermark when refused, the OAuth consent with PKCE and offline refresh, a missing scope is a
-- permission, content through download, every action's effect inside the sandbox, the quarantine with its
-- tombstone and its undo, the shipped DLP policy in enforce mode, webhooks (challenge, signature,
-- list_folder/continue) and 429s.
local context = require "sdk.context"
local dropbox = require "sandbox.dropbox"
local runtime = require "runtime"
local sync = require "sync"
local helpers = require "helpers"
local tenants = require "tenants"

local count, n_of, sync_ok = helpers.count, helpers.n_of, helpers.sync_ok

local function row(inst, entity, ext_id)
  return runtime.store().db:query("SELECT * FROM " .. entity .. " WHERE instance_id = ? AND ext_id = ?", inst.id, ext_id)[1]
end

describe("dropbox connector", function()
  local r, t, inst, hooks
  local received = {}
  setup(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    runtime = require "runtime"
    r = tenants.start("dropbox", "dbx", { seed = 7, tenant = { users = 24, shared_folders = 3, files = 40, events = 300, days = 3 },
      settings = { initial_days = 30 } })
    t, inst = r.tenant, r.inst
    hooks = assert(server.listen { port = 0 })
    hooks:route("GET", "/callback", function(req) return 200, json.encode(req.query) end)
    hooks:route("*", "/webhooks/:instance", function(req)
      local i = assert(require("instances").instance(runtime.store(), req.params.instance))
      local ctx = sync.context(runtime.store(), i, "webhook")
      local c = context.connector(ctx)
      local status, body, refetch, headers = c.webhook(ctx, req)
      received[#received + 1] = { status = status, refetch = refetch }
      for _, x in ipairs(refetch or {}) do                      -- as the daemon does
        local ok, err = pcall(c.fetch[x.entity], sync.context(runtime.store(), i, "webhook"), x.id, x)
        if not ok then received.errors = (received.errors or 0) + 1; log.warn("re-fetch failed", { error = tostring(err) }) end
      end
      if type(body) == "table" then body = json.encode(body) end
      return status, body or "", headers
    end)
  end)
  teardown(function()
    t.webhooks = {}
    t:flush()
    r.srv:close(); hooks:close()
  end)

  local function ctx_of(stream) return sync.context(runtime.store(), inst, stream or "action") end
  local function file_row(id) return row(inst, "files", id) end

  it("scans members, roles, groups, linked apps, every namespace's files with their sharing, and the team_log", function()
    sync_ok(inst)
    -- the ids a complete sync holds, as the team has them
    for entity, ids in pairs(t:truth()) do
      local want, got = {}, {}
      for _, id in ipairs(ids) do want[id] = true end
      for _, x in ipairs(runtime.store().db:query("SELECT ext_id FROM " .. entity .. " WHERE instance_id = ? AND deleted_at IS NULL", inst.id)) do
        got[x.ext_id] = true
      end
      assert.same(want, got, entity)
    end
    assert.equal(t:count("users"), n_of("users", inst))
    assert.equal(t:count("suspended_users"), n_of("users", inst, "status = 'suspended'"))
    assert.equal(t:count("invited_users"), n_of("users", inst, "status = 'pending'"))
    assert.equal(t:count("removed_users"), n_of("users", inst, "status = 'deprovisioned'"))
    assert.is_true(t:count("removed_users") > 0 and t:count("suspended_users") > 0)
    assert.equal(t:count("admins"), n_of("privileges", inst))
    assert.equal(t:count("admins"), n_of("users", inst, "is_admin = 1"))
    assert.equal(1, n_of("privileges", inst, "role = 'Team admin' AND user_id = '" .. t.admin.id .. "'"))
    assert.equal(t:count("groups"), n_of("groups", inst))
    assert.equal(t:count("memberships"), n_of("group_members", inst))
    assert.equal(t:count("apps"), n_of("app_grants", inst))
    -- files: every live entry, and each shared or team folder as a row of its own
    assert.equal(t:count("files"), n_of("files", inst, "is_folder = 0"))
    assert.equal(t:count("folders") + t:count("shared_folders"), n_of("files", inst, "is_folder = 1"))
    assert.equal(t:count("links"), n_of("file_permissions", inst, "principal_type = 'link'"))
    local members = 0
    for _, ns in ipairs(t.namespaces) do if ns.type ~= "team_member_folder" then members = members + #ns.members end end
    assert.equal(members, n_of("file_permissions", inst, "principal_type = 'user'"))
    -- each namespace listed once, as the admin (Select-Admin, Path-Root): no member's folder twice
    for _, ns in ipairs(t.namespaces) do
      local m = ns.type == "team_member_folder" and t:member(ns.owner)
      if not (m and m.status == "removed") then assert.equal(1, t.listed[ns.id], ns.name) end
    end
    -- the seeded cases: an SSN linked publicly, a card number in a folder shared outside the team, an AWS
    -- key linked team-only, a private key nobody else sees
    assert.equal("public", file_row(t:sensitive_files("ssn")[1]).access_level)
    assert.equal("external", file_row(t:sensitive_files("card")[1]).access_level)
    assert.equal("internal", file_row(t:sensitive_files("aws")[1]).access_level)
    assert.equal("private", file_row(t:sensitive_files("private_key")[1]).access_level)
    local ssn = file_row(t:sensitive_files("ssn")[1])
    assert.equal(t:member(t.ns_by_id[t:entry(ssn.ext_id).ns].owner).email, ssn.owner)
    assert.equal(1, n_of("file_permissions", inst, "file_id = '" .. ssn.ext_id .. "' AND principal = 'anyone' AND external = 1"))
    -- team_log: every event, sign-ins with their outcome
    assert.equal(t:count("events"), count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin' AND action = 'login_fail' AND outcome = 'failure'", inst.id) > 0)
    for _, k in ipairs { "signin", "admin", "user" } do
      assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = ?", inst.id, k) > 0, k)
    end
    assert.equal(0, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND (time IS NULL OR actor IS NULL OR ip IS NULL)", inst.id))
  end)

  it("re-scanning changes nothing; the team_log continues from its cursor, or from the watermark when refused", function()
    local by = sync_ok(inst, { streams = { "users", "groups", "app_grants", "files" } })
    for stream, counts in pairs(by) do
      for entity, c in pairs(counts) do
        assert.equal(0, c.added + c.changed + c.removed, stream .. "/" .. entity)
      end
    end
    local m = t.members[5]
    t:add_event("logins", "login_fail", m, nil, { login_method = { [".tag"] = "password" } }, { ip = "203.0.113.9" })
    t:add_event("logins", "login_success", m, nil, { login_method = { [".tag"] = "password" } }, { ip = "203.0.113.9" })
    t:add_event("members", "member_change_admin_role", t.admin, m, { new_value = { [".tag"] = "team_admin" } })
    local before = #t.log
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(3, by.activities.activities.added)
    assert.equal(1, #t.log - before)                          -- one get_events/continue
    assert.equal("/2/team_log/get_events/continue", t.log[#t.log].path)
    assert.equal(1, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND ip = '203.0.113.9' AND outcome = 'failure' AND actor = ?", inst.id, m.email))
    -- a cursor Dropbox refuses (bad_cursor): read again from the watermark minus the overlap; the events
    -- read twice are the same rows
    local n = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    runtime.store():save_stream(inst.id, "activities", { cursor = "not-a-cursor" })
    t:add_event("logins", "logout", m, nil, {})
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(1, by.activities.activities.added)
    assert.equal(n + 1, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.equal("/2/team_log/get_events", t.log[#t.log].path)
  end)

  it("connects through the consent with PKCE and offline access, refreshes, and refuses a wrong verifier", function()
    local auth = require "sdk.auth"
    local oi = helpers.instance("dropbox", "dbx-oauth", { client_id = "dbx-app-key", base_url = r.srv.url, content_base_url = r.srv.url,
      oauth_base_url = r.srv.url, insecure_loopback = true }, { client_secret = "dbx-app-secret" })
    local ctx = sync.context(runtime.store(), oi, "connect")
    local scheme = auth.scheme(context.connector(ctx), oi)
    local url, exchange = auth.authorization_code(context.client(ctx), scheme, hooks.url .. "/callback")
    assert.equal(r.srv.url .. "/oauth2/authorize?", url:sub(1, #r.srv.url + 18))
    assert.matches("token_access_type=offline", url)
    assert.matches("code_challenge_method=S256", url)
    -- the browser: the sandbox consents as the team admin and redirects back with the code
    local q = json.decode(assert(http.request { url = url }).body)
    -- the code is good only with its verifier
    local stolen = assert(http.request { method = "POST", url = r.srv.url .. "/oauth2/token", headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { grant_type = "authorization_code", code = q.code, client_id = "dbx-app-key", redirect_uri = hooks.url .. "/callback", code_verifier = "wrong" } })
    assert.equal(400, stolen.status)
    assert.equal("invalid_grant", json.decode(stolen.body).error)
    -- (a code is spent once tried): a new consent, exchanged by cachost with its verifier
    url, exchange = auth.authorization_code(context.client(ctx), scheme, hooks.url .. "/callback")
    assert(exchange(json.decode(assert(http.request { url = url }).body)))
    local rt = oi:secret("refresh_token")
    assert.is_string(rt)
    sync_ok(oi, { streams = { "users" } })
    assert.equal(t:count("users"), n_of("users", oi))
    -- expired: refreshed with the same, long-lived refresh token
    local at = oi:secret("access_token")
    oi:set_secret("token_expires_at", tostring(sched.time() - 10))
    sync_ok(oi, { streams = { "groups" } })
    assert.is_not.equal(at, oi:secret("access_token"))
    assert.equal(rt, oi:secret("refresh_token"))
  end)

  it("reports a scope the token lacks as a missing permission, not a dead credential", function()
    local scopes = t:granted(nil)
    scopes["groups.read"] = nil
    local _, g = t:issue(scopes, false)
    local li = helpers.instance("dropbox", "dbx-less", inst.settings, { client_secret = "dbx-app-secret", access_token = g.access_token,
      token_expires_at = tostring(math.floor(sched.time()) + 3600) })
    local results = runtime.sync(li, { streams = { "users", "groups" } })
    assert.is_not_nil(results[1].counts)
    assert.equal("permission: HTTP 401: missing_scope/... (needs scope groups.read)", results[2].error)
    -- that stream's health says what is missing (permission missing), not "reconnect needed"
    assert.matches("^permission: ", runtime.store():stream(li.id, "groups").last_error)
  end)

  it("reads a file's content through download, capped at max_size", function()
    local ctx = ctx_of("scan")
    local f = file_row(t:sensitive_files("card")[1])
    local body = assert(context.connector(ctx).content(ctx, f, 1024 * 1024))
    assert.equal(t:entry(f.ext_id).content, body)
    assert.truthy(body:find("4111 1111 1111 1111", 1, true))
    local none, err = context.connector(ctx).content(ctx, f, 16)
    assert.is_nil(none)
    assert.matches("too_large", err)
  end)

  it("suspends (keeping the data), unsuspends, signs out of every session and revokes a linked app", function()
    local A = context.connector(ctx_of()).actions
    local ctx = ctx_of()
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' AND is_admin = 0 ORDER BY ext_id LIMIT 1", inst.id)[1]
    local res = A.suspend_user(ctx, u)
    local m = t:member(u.ext_id)
    assert.equal("suspended", m.status)
    assert.is_false(m.wiped)                                  -- Dropbox's default would wipe: never ours
    assert.same({ action = "unsuspend_user", params = {} }, res.undo)
    sync_ok(inst, { streams = { "users" } })
    assert.equal("suspended", row(inst, "users", u.ext_id).status)
    A.unsuspend_user(ctx, u)
    assert.equal("active", m.status)
    local function sessions(id)
      local n = 0
      for _, s in ipairs(t.sessions) do if s.mid == id then n = n + 1 end end
      return n
    end
    local withs = t.sessions[#t.sessions].mid
    assert.is_true(sessions(withs) > 0)
    A.revoke_sessions(ctx, row(inst, "users", withs))
    assert.equal(0, sessions(withs))
    local g = runtime.store().db:query("SELECT * FROM app_grants WHERE instance_id = ? AND deleted_at IS NULL ORDER BY ext_id LIMIT 1", inst.id)[1]
    local n0 = t:count("apps")
    A.revoke_grant(ctx, g)
    assert.equal(n0 - 1, t:count("apps"))
    sync_ok(inst, { streams = { "app_grants" } })
    assert.equal(n0 - 1, n_of("app_grants", inst))
  end)

  it("quarantines a publicly linked file: links revoked, a copy in the admin's folder, a tombstone in its place; undone", function()
    local ctx = ctx_of()
    local A = context.connector(ctx).actions
    local f = file_row(t:sensitive_files("ssn")[1])
    local e = t:entry(f.ext_id)
    local ns, path = t.ns_by_id[e.ns], e.path
    assert.is_true(#t:links_of(e.id) > 0)
    local res = A.quarantine_file(ctx, f, { correlation_id = "corr-51d" })
    assert.is_true(e.deleted)                                 -- in the owner's deleted files
    assert.equal(0, #t:links_of(e.id))
    local copy = t:entry(res.undo.params.quarantined)
    assert.equal(t.admin.ns, copy.ns)
    assert.equal("/cachost quarantine/" .. e.name, copy.path)
    assert.equal(e.content, copy.content)
    local tomb = t:entry(res.undo.params.tombstone)
    assert.equal(ns.id, tomb.ns)
    assert.equal(path .. ".quarantined.txt", tomb.path)
    assert.truthy(tomb.content:find("corr-51d", 1, true))
    assert.truthy(tomb.content:find("/cachost quarantine/", 1, true))
    -- a second quarantine of a file with the same name: the copy gets the file id in front
    local other = file_row(t:sensitive_files("private_key")[1])
    t:entry(other.ext_id).name = e.name
    local oe = t:entry(other.ext_id)
    oe.path = oe.path:gsub("[^/]+$", e.name)
    local res2 = A.quarantine_file(ctx, file_row(other.ext_id), { correlation_id = "corr-2" })
    assert.matches("^/cachost quarantine/.+ " .. e.name:gsub("%p", "%%%0") .. "$", t:entry(res2.undo.params.quarantined).path)
    -- undo: the original back with its id, the tombstone and the copy gone
    A.unquarantine_file(ctx, f, res.undo.params)
    assert.is_false(e.deleted)
    assert.equal(path, e.path)
    assert.is_true(tomb.deleted)
    assert.is_true(copy.deleted)
    -- the next scan agrees with the team again
    sync_ok(inst, { streams = { "files" } })
    assert.equal(t:count("files"), n_of("files", inst, "is_folder = 0"))
    assert.equal(1, n_of("files", inst, "path LIKE '/cachost quarantine/%' AND owner = '" .. t.admin.email .. "'"))
    assert.equal(1, n_of("files", inst, "path = '/cachost quarantine' AND is_folder = 1"))
  end)

  it("revokes shared links, removes outside members of a shared folder, trashes and overwrites", function()
    local ctx = ctx_of()
    local A = context.connector(ctx).actions
    local aws = file_row(t:sensitive_files("aws")[1])
    assert.is_true(#t:links_of(aws.ext_id) > 0)
    A.remove_shared_link(ctx, aws)
    assert.equal(0, #t:links_of(aws.ext_id))
    -- the card file sits in a shared folder with a member outside the team
    local card = file_row(t:sensitive_files("card")[1])
    local ns = t.ns_by_id[t:entry(card.ext_id).ns]
    local function outsiders()
      local n = 0
      for _, x in ipairs(ns.members) do if x.email then n = n + 1 end end
      return n
    end
    assert.equal(1, outsiders())
    A.remove_collaborator(ctx, card, {})
    assert.equal(0, outsiders())
    local plain = runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND is_folder = 0 AND deleted_at IS NULL AND name LIKE '%.txt' AND name NOT LIKE '%quarantined%' ORDER BY ext_id DESC LIMIT 2", inst.id)
    A.trash_file(ctx, plain[1])
    assert.is_true(t:entry(plain[1].ext_id).deleted)
    local rev = t:entry(plain[2].ext_id).rev
    A.overwrite_file(ctx, plain[2], { notice = "Removed by security: SEC-42" })
    assert.equal("Removed by security: SEC-42", t:entry(plain[2].ext_id).content)
    assert.is_not.equal(rev, t:entry(plain[2].ext_id).rev)
    sync_ok(inst, { streams = { "files" } })
    assert.equal(t:count("links"), n_of("file_permissions", inst, "principal_type = 'link'"))
    assert.equal("internal", file_row(card.ext_id).access_level)       -- only team members left
    assert.is_not_nil(file_row(plain[1].ext_id).deleted_at)
  end)

  it("reads a link's expiry: an expired public link opens nothing, its row stays with the date", function()
    local m
    for _, x in ipairs(t.members) do if not m and x.status == "active" and x ~= t.admin then m = x end end
    local e = t:add_entry(t.ns_by_id[m.ns], "/old-share.txt", { content = "old\n" })
    local l = t:add_link(e, m.id, "public", (math.floor(sched.time()) - 86400) * 1000)
    sync_ok(inst, { streams = { "files" } })
    assert.equal("private", file_row(e.id).access_level)
    local p = runtime.store().db:query("SELECT * FROM file_permissions WHERE instance_id = ? AND file_id = ? AND deleted_at IS NULL", inst.id, e.id)[1]
    assert.equal(l.url, p.link)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", p.expires_at)
    l.expires = nil                                           -- the expiry removed: public again
    sync_ok(inst, { streams = { "files" } })
    assert.equal("public", file_row(e.id).access_level)
    l.revoked = true
    sync_ok(inst, { streams = { "files" } })
    assert.equal("private", file_row(e.id).access_level)
  end)

  it("quarantines with the shipped sensitive_file_shared policy in enforce mode", function()
    -- a new publicly linked SSN file in a member's folder
    local m
    for _, x in ipairs(t.members) do if not m and x.status == "active" and x ~= t.admin then m = x end end
    local e = t:add_entry(t.ns_by_id[m.ns], "/payroll-2025.txt", { content = "payroll\n" .. dropbox.SENSITIVE.ssn .. "\n" })
    t:add_link(e, m.id, "public")
    runtime.watch(true)
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "enforce" end end
    local ok = select(2, runtime.sync(inst, { streams = { "users", "files" } }))
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "audit" end end
    assert.is_true(ok)
    local g = runtime.store().db:query("SELECT * FROM governance_actions WHERE instance_id = ? AND action = 'quarantine_file' AND target_id = ?", inst.id, e.id)[1]
    assert.is_not_nil(g)
    assert.equal("ok", g.result)
    assert.is_true(e.deleted)
    local found
    for _, x in ipairs(t.entries) do if not x.deleted and x.path == "/payroll-2025.txt.quarantined.txt" then found = x end end
    assert.is_not_nil(found)
    assert.equal(1, row(inst, "files", e.id).quarantined)
  end)

  it("answers the webhook challenge, verifies signatures, and reads a member's changes by list_folder/continue", function()
    local url = hooks.url .. "/webhooks/" .. inst.name
    assert(t:verify_webhook(url))                              -- GET ?challenge= echoed
    local resp = assert(http.request { url = url .. "?challenge=abc123" })
    assert.equal("abc123", resp.body)
    assert.equal("text/plain", resp.headers["content-type"])
    assert.equal("nosniff", resp.headers["x-content-type-options"])
    -- a member uploads a file (as Dropbox's own apps would): the notification names them; cachost reads it
    local m
    for _, x in ipairs(t.members) do if not m and x.status == "active" and x ~= t.admin then m = x end end
    local tok = t:grant_all().access_token
    local up = assert(http.request { method = "POST", url = r.srv.url .. "/2/files/upload", body = dropbox.SENSITIVE.card,
      headers = { Authorization = "Bearer " .. tok, ["Dropbox-API-Select-User"] = m.id, ["Content-Type"] = "application/octet-stream",
                  ["Dropbox-API-Arg"] = json.encode { path = "/Inbox/new-card.txt", mode = "add" } } })
    assert.equal(200, up.status, up.body)
    local id = json.decode(up.body).id
    t:flush()
    local last = received[#received]
    assert.equal(200, last.status)
    assert.same({ entity = "files", id = m.id, changes_of = m.id }, last.refetch[1])
    local new = file_row(id)
    assert.equal("/Inbox/new-card.txt", new.path)
    assert.equal(m.email, new.owner)
    -- a deletion reaches the store the same way
    local del = assert(http.request { method = "POST", url = r.srv.url .. "/2/files/delete_v2", body = json.encode { path = id },
      headers = { Authorization = "Bearer " .. tok, ["Dropbox-API-Select-User"] = m.id, ["Content-Type"] = "application/json" } })
    assert.equal(200, del.status, del.body)
    t:flush()
    assert.is_not_nil(file_row(id).deleted_at)
    -- forged, tampered and foreign notifications
    local body = json.encode { list_folder = { teams = { [t.team_id] = { m.id } } } }
    local function post(b, sig)
      return assert(http.request { method = "POST", url = url, body = b, headers = { ["Content-Type"] = "application/json", ["X-Dropbox-Signature"] = sig } }).status
    end
    assert.equal(401, post(body, dropbox.sign("not-the-secret", body)))
    assert.equal(401, post(body .. " ", dropbox.sign(t.client_secret, body)))
    assert.equal(401, post(body, ""))
    local foreign = json.encode { list_folder = { teams = { ["dbtid:other"] = { "dbmid:stranger" } } } }
    assert.equal(200, post(foreign, dropbox.sign(t.client_secret, foreign)))
    assert.is_nil(next(received[#received].refetch or {}))
    assert.is_nil(received.errors)
  end)

  it("waits as a 429 asks (Retry-After), and retries a write refused with too_many_write_operations", function()
    local client = context.client(ctx_of())
    local throttled = client.stats.throttled
    t:fault { kind = "429", count = 2, retry_after = 0, path = "/2/team/groups/list$" }
    sync_ok(inst, { streams = { "groups" } })
    assert.equal(2, client.stats.throttled - throttled)
    local plain = runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND is_folder = 0 AND deleted_at IS NULL AND name LIKE '%.txt' ORDER BY ext_id LIMIT 1", inst.id)[1]
    t:fault { kind = "429", count = 1, retry_after = 0, path = "/2/files/delete_v2$" }
    local before = #t.log
    context.connector(ctx_of()).actions.trash_file(ctx_of(), plain)
    assert.is_true(t:entry(plain.ext_id).deleted)
    local n = 0
    for i = before + 1, #t.log do if t.log[i].path == "/2/files/delete_v2" then n = n + 1 end end
    assert.equal(2, n)
  end)
end)
