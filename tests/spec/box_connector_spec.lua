-- The Box connector against the Box sandbox tenant: a full scan equals the tenant's ground truth (users,
-- admins, groups, files, folders, collaborations, shared links, trash, access levels), enterprise events are
-- read incrementally by stream position, each governance action changes the tenant, content downloads are
-- size-capped, and webhooks are accepted with either valid signature key and refused when forged, stale
-- or replayed.
local context = require "sdk.context"
local box_tenant = require "sandbox.box"
local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local count = require("helpers").count
local n_of = require("helpers").n_of

local sync_ok = require("helpers").sync_ok

local function row(inst, ext_id)
  return runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, ext_id)[1]
end

describe("box connector", function()
  local tenant, srv, hooks, inst
  local received = {}
  setup(function()
    host.home = tmp_home()
    tenant = box_tenant.new { seed = 21, users = 30, groups = 4, folders = 10, files = 45, events = 700, days = 30,
                              client_id = "box-client", client_secret = "box-secret", enterprise_id = "777001" }
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    local st = runtime.store()
    local now = store.now()
    assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('box', 'box-acme', ?, ?, ?)",
      json.encode { client_id = "box-client", enterprise_id = "777001", auth = "client_credentials",
                    base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url,
                    insecure_loopback = true, initial_days = 90 }, now, now))
    inst = assert(instances.instance(runtime.store(), "box-acme"))
    inst:set_secret("client_secret", "box-secret")
    inst:set_secret("webhook_primary_key", tenant.keys.primary)
    inst:set_secret("webhook_secondary_key", tenant.keys.secondary)
    hooks = assert(server.listen { port = 0 })
    hooks:route("POST", "/webhooks/:instance", function(req)
      local i = assert(instances.instance(runtime.store(), req.params.instance))
      local ctx = sync.context(runtime.store(), i, "webhook")
      local status, body, refetch = context.connector(ctx).webhook(ctx, req)
      received[#received + 1] = { status = status, trigger = req.headers["box-delivery-id"] and json.decode(req.body).trigger, refetch = refetch }
      for _, r in ipairs(refetch or {}) do context.connector(ctx).fetch[r.entity](ctx, r.id, r) end   -- as the daemon does
      return status, body and json.encode(body) or ""
    end)
    hooks:route("GET", "/callback", function(req) return 200, json.encode(req.query) end)
  end)
  teardown(function() srv:close(); hooks:close() end)

  it("scans users, admins, groups, files, sharing, trash and events to the tenant's ground truth", function()
    sync_ok(inst)
    -- client credentials with box_subject_type=enterprise gave a token of the tenant's own
    assert.is_string(inst:secret("access_token"))
    assert.is_not.equal(tenant.token, inst:secret("access_token"))
    assert.equal(tenant:count("users"), n_of("users", inst))
    assert.equal(tenant:count("inactive_users"), n_of("users", inst, "status = 'suspended'"))
    assert.equal(tenant:count("admins"), n_of("users", inst, "is_admin = 1"))
    assert.equal(tenant:count("admins"), n_of("privileges", inst))
    assert.equal(tenant:count("groups"), n_of("groups", inst))
    assert.equal(tenant:count("memberships"), n_of("group_members", inst))
    assert.equal(tenant:count("files"), n_of("files", inst, "is_folder = 0 AND trashed = 0"))
    assert.equal(tenant:count("folders"), n_of("files", inst, "is_folder = 1 AND trashed = 0"))
    assert.equal(tenant:count("trashed"), n_of("files", inst, "trashed = 1"))
    assert.is_true(tenant:count("trashed") > 0)
    assert.equal(tenant:count("shared_links"), n_of("file_permissions", inst, "principal_type = 'link'"))
    assert.equal(tenant:count("collaborations"), n_of("file_permissions", inst, "principal_type <> 'link'"))
    -- access levels, inherited from folders too, for every live item
    local rows = runtime.store().db:query("SELECT ext_id, access_level, path FROM files WHERE instance_id = ? AND trashed = 0", inst.id)
    local levels = {}
    for _, r in ipairs(rows) do
      assert.equal(tenant:access_level(r.ext_id), r.access_level, r.path)
      assert.equal(tenant:path_of(tenant:find_file(r.ext_id)), r.path)
      levels[r.access_level] = true
    end
    assert.is_true(levels.public and levels.external and levels.internal and levels.private)
    -- the seeded card-number file is public, the AWS-key file shared with an outsider
    local card = row(inst, tenant:sensitive_files("card")[1])
    assert.equal("public", card.access_level)
    assert.equal("external", row(inst, tenant:sensitive_files("aws")[1]).access_level)
    assert.equal(1, n_of("file_permissions", inst, "file_id = '" .. card.ext_id .. "' AND principal = 'anyone' AND external = 1"))
    -- files: every managed user's tree walked As-User, and the service account's own; a folder shared with
    -- others (it shows in each collaborator's root) is read once, in its owner's walk
    for id, n in pairs(tenant.listed) do
      if id ~= "0" then assert.equal(1, n, "folder " .. id .. " listed " .. n .. " times") end
    end
    assert.equal(tenant:count("users") + 1, tenant.listed["0"])
    -- events: the history by admin_logs in chunks shorter than the limit (Box's processing batches), read
    -- to the empty chunk; then the live stream, admin_logs_streaming
    assert.equal(tenant:count("events"), count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.is_true(tenant.event_reads.admin_logs > tenant:count("events") // 500 + 1)
    assert.is_true(tenant.event_reads.admin_logs_streaming >= 2)      -- the position "now", then the stream
    for _, k in ipairs { "signin", "admin", "user" } do
      assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = ?", inst.id, k) > 0, k)
    end
    assert.equal(0, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND (time IS NULL OR actor IS NULL)", inst.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action = 'FAILED_LOGIN' AND outcome = 'failure'", inst.id) > 0)
  end)

  it("re-scanning changes nothing; events resume from the stream position", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local by = sync_ok(inst, { streams = { "users", "groups", "files" } })
    for stream, counts in pairs(by) do
      for entity, c in pairs(counts) do
        assert.equal(0, c.added, stream .. "/" .. entity); assert.equal(0, c.changed, stream .. "/" .. entity)
        assert.equal(0, c.removed, stream .. "/" .. entity)
      end
    end
    local u = tenant.state.users[5]
    tenant:add_event("FAILED_LOGIN", u, u, { ip = "203.0.113.9" })
    tenant:add_event("LOGIN", u, u, { ip = "203.0.113.9" })
    local ev = tenant:add_event("CHANGE_ADMIN_ROLE", tenant.admin, u)
    local req0, hist0 = #tenant.log, tenant.event_reads.admin_logs
    by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(3, by.activities.activities.added)
    assert.equal(before + 3, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    -- from the stored admin_logs_streaming position: a chunk, then the empty one that says there is no more
    assert.equal(2, #tenant.log - req0)
    assert.equal(hist0, tenant.event_reads.admin_logs)
    assert.equal(1, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND ext_id = ? AND action = 'CHANGE_ADMIN_ROLE' AND kind = 'admin' AND target = ? AND actor = ?",
      inst.id, ev.event_id, u.login, tenant.admin.login))
    assert.equal(1, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action = 'FAILED_LOGIN' AND ip = '203.0.113.9' AND outcome = 'failure' AND kind = 'signin'", inst.id))
  end)

  it("connects with the authorization code flow and refreshes with single-use refresh tokens", function()
    local auth = require "sdk.auth"
    local st = runtime.store()
    local now = store.now()
    assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('box', 'box-oauth', ?, ?, ?)",
      json.encode { client_id = "box-client", auth = "oauth", base_url = srv.url .. "/2.0", oauth_base_url = srv.url,
                    insecure_loopback = true }, now, now))
    local oi = assert(instances.instance(runtime.store(), "box-oauth"))
    oi:set_secret("client_secret", "box-secret")
    local ctx = sync.context(st, oi, "connect")
    local scheme = auth.scheme(context.connector(ctx), oi)
    local url, exchange = auth.authorization_code(context.client(ctx), scheme, hooks.url .. "/callback")
    local prefix = "https://account.box.com/api/oauth2/authorize?"
    assert.equal(prefix, url:sub(1, #prefix))           -- the browser consent is on account.box.com
    assert.is_nil(url:find("code_challenge", 1, true))
    -- the browser: the sandbox plays account.box.com and consents at once
    local resp = assert(http.request { url = srv.url .. "/api/oauth2/authorize?" .. url:sub(#prefix + 1) })
    local params = json.decode(resp.body)
    assert(exchange(params))
    local rt1 = oi:secret("refresh_token")
    assert.is_string(rt1)
    sync_ok(oi, { streams = { "users" } })
    assert.equal(tenant:count("users"), n_of("users", oi))
    -- expired: the next request refreshes; the refresh token rotates and the old one is spent
    oi:set_secret("token_expires_at", tostring(sched.time() - 10))
    sync_ok(oi, { streams = { "groups" } })
    assert.is_not.equal(rt1, oi:secret("refresh_token"))
    assert.is_nil(tenant.refresh[rt1])
  end)

  it("downloads content for the scan, capped at max_size", function()
    local ctx = sync.context(runtime.store(), inst, "scan")
    local f = row(inst, tenant:sensitive_files("private_key")[1])
    local body = assert(context.connector(ctx).content(ctx, f, 1024 * 1024))
    assert.equal(tenant:file_content(f.ext_id), body)
    assert.truthy(body:find("BEGIN RSA PRIVATE KEY", 1, true))
    local none, err = context.connector(ctx).content(ctx, f, 16)
    assert.is_nil(none)
    assert.matches("too_large", err)
  end)

  it("suspends, unsuspends and signs out users", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' AND is_admin = 0 ORDER BY ext_id LIMIT 1", inst.id)[1]
    local res = context.connector(ctx).actions.suspend_user(ctx, u)
    assert.equal("inactive", tenant:find_user(u.ext_id).status)
    assert.same({ action = "unsuspend_user", params = {} }, res.undo)
    sync_ok(inst, { streams = { "users" } })
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE id = ?", u.id)[1].status)
    context.connector(ctx).actions.unsuspend_user(ctx, u)
    assert.equal("active", tenant:find_user(u.ext_id).status)
    context.connector(ctx).actions.revoke_sessions(ctx, u)
    assert.equal(1, tenant.terminated[u.ext_id])
  end)

  it("quarantines a file (tombstone with the correlation id at the original path) and restores it", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local f = row(inst, tenant:sensitive_files("card")[1])
    local it = tenant:find_file(f.ext_id)
    local origin, path = it.parent, tenant:path_of(it)
    local res = context.connector(ctx).actions.quarantine_file(ctx, f, { correlation_id = "corr-7f3a" })
    local q = tenant:find_file(it.parent)
    assert.equal("cachost quarantine", q.name)
    assert.equal("0", q.parent)
    local tomb = tenant:find_file(res.undo.params.tombstone_id)
    assert.equal(origin, tomb.parent)
    assert.equal(path .. ".quarantined.txt", tenant:path_of(tomb))
    assert.truthy(tomb.content:find("corr-7f3a", 1, true))
    assert.truthy(tomb.content:find(q.id, 1, true))
    assert.equal("unquarantine_file", res.undo.action)
    -- a second quarantine reuses the folder (409 item_name_in_use names it)
    local g = row(inst, tenant:sensitive_files("ssn")[1])
    context.connector(ctx).actions.quarantine_file(ctx, g, { correlation_id = "corr-2" })
    assert.equal(q.id, tenant:find_file(g.ext_id).parent)
    -- the re-fetch after the action finds it where it went, the service account's now (its stored owner,
    -- As-User, no longer sees it)
    context.connector(ctx).fetch.files(ctx, g.ext_id)
    assert.equal("/cachost quarantine/" .. g.name, row(inst, g.ext_id).path)
    -- undo: back where it was, tombstone gone
    context.connector(ctx).actions.unquarantine_file(ctx, f, res.undo.params)
    assert.equal(origin, it.parent)
    assert.equal(path, tenant:path_of(it))
    assert.is_true(tenant:in_trash(tomb))
    -- the next scan sees the quarantined file in the quarantine folder and its tombstone
    sync_ok(inst, { streams = { "files" } })
    assert.equal("/cachost quarantine/" .. g.name, row(inst, g.ext_id).path)
    assert.equal(tenant:count("files"), n_of("files", inst, "is_folder = 0 AND trashed = 0"))
    -- the owners may put files into the quarantine folder (uploaders), not see it: it opens no access
    assert.equal("private", row(inst, q.id).access_level)
    assert.equal(tenant:access_level(g.ext_id), row(inst, g.ext_id).access_level)
  end)

  it("quarantines a file from the trash (restored first)", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local t = runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND trashed = 1 AND is_folder = 0 AND deleted_at IS NULL LIMIT 1", inst.id)[1]
    assert.is_not_nil(t)
    local it = tenant:find_file(t.ext_id)
    local origin = it.parent
    context.connector(ctx).actions.quarantine_file(ctx, t, { correlation_id = "corr-trash" })
    assert.is_nil(it.trashed_at)
    assert.equal("cachost quarantine", tenant:find_file(it.parent).name)
    local found
    for _, c in ipairs(tenant:children(origin)) do if c.name == it.name .. ".quarantined.txt" then found = c end end
    assert.is_not_nil(found)
    assert.truthy(found.content:find("corr-trash", 1, true))
  end)

  it("removes collaborators and shared links, makes private, trashes and overwrites", function()
    local ctx = sync.context(runtime.store(), inst, "action")
    local A = context.connector(ctx).actions
    local aws = row(inst, tenant:sensitive_files("aws")[1])
    local function externals(id)
      local n = 0
      for _, c in ipairs(tenant:collabs_of(id)) do if tenant:is_external_collab(c) then n = n + 1 end end
      return n
    end
    assert.is_true(externals(aws.ext_id) > 0)
    A.remove_collaborator(ctx, aws, {})
    assert.equal(0, externals(aws.ext_id))
    -- one collaboration by id
    local p = runtime.store().db:query("SELECT * FROM file_permissions WHERE instance_id = ? AND principal_type = 'user' AND deleted_at IS NULL AND file_id <> ? LIMIT 1", inst.id, aws.ext_id)[1]
    local n0 = tenant:count("collaborations")
    A.remove_collaborator(ctx, row(inst, p.file_id), { collaboration_id = p.ext_id })
    assert.equal(n0 - 1, tenant:count("collaborations"))
    -- shared links
    local linked = runtime.store().db:query("SELECT f.* FROM files f JOIN file_permissions p ON p.file_id = f.ext_id AND p.instance_id = f.instance_id WHERE f.instance_id = ? AND p.principal_type = 'link' AND p.deleted_at IS NULL AND f.trashed = 0 AND f.is_folder = 0 ORDER BY f.ext_id", inst.id)
    assert.is_true(#linked >= 2)
    A.remove_shared_link(ctx, linked[1])
    assert.is_nil(tenant:find_file(linked[1].ext_id).link)
    tenant:add_collab(tenant:find_file(linked[2].ext_id), tenant.state.externals[2], "viewer")
    A.make_private(ctx, linked[2])
    assert.is_nil(tenant:find_file(linked[2].ext_id).link)
    assert.equal(0, externals(linked[2].ext_id))
    -- trash
    local plain = runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND trashed = 0 AND is_folder = 0 AND deleted_at IS NULL AND name LIKE '%.txt' ORDER BY ext_id DESC LIMIT 2", inst.id)
    A.trash_file(ctx, plain[1])
    assert.is_not_nil(tenant:find_file(plain[1].ext_id).trashed_at)
    -- overwrite: a new version with the notice
    local v0 = tenant:find_file(plain[2].ext_id).version_id
    A.overwrite_file(ctx, plain[2], { notice = "Removed by security: see ticket SEC-42" })
    assert.equal("Removed by security: see ticket SEC-42", tenant:file_content(plain[2].ext_id))
    assert.is_not.equal(v0, tenant:find_file(plain[2].ext_id).version_id)
    -- the next scan agrees with the tenant again
    sync_ok(inst, { streams = { "files" } })
    assert.equal(tenant:count("trashed"), n_of("files", inst, "trashed = 1"))
    assert.equal(tenant:count("shared_links"), n_of("file_permissions", inst, "principal_type = 'link'"))
    assert.equal(tenant:count("collaborations"), n_of("file_permissions", inst, "principal_type <> 'link'"))
    assert.equal("private", row(inst, linked[2].ext_id).access_level == "private" and "private" or tenant:access_level(linked[2].ext_id))
    assert.equal(tenant:access_level(aws.ext_id), row(inst, aws.ext_id).access_level)
  end)

  it("survives 429 with retry-after", function()
    local client = context.client(sync.context(runtime.store(), inst, "x"))
    local throttled = client.stats.throttled
    tenant:fault { kind = "429", count = 2, retry_after = 0 }
    sync_ok(inst, { streams = { "groups" } })
    assert.equal(2, client.stats.throttled - throttled)
    assert.equal(tenant:count("groups"), n_of("groups", inst))
  end)

  it("accepts webhooks signed with either key; refuses forged, stale and replayed ones", function()
    local url = hooks.url .. "/webhooks/box-acme"
    local f = row(inst, tenant:sensitive_files("ssn")[1])
    local it = tenant:find_file(f.ext_id)
    tenant:webhook_target(url, tenant:find_file(it.parent).id)
    local ctx = sync.context(runtime.store(), inst, "action")
    context.connector(ctx).actions.overwrite_file(ctx, f, { notice = "gone" })
    tenant:flush()
    local last = received[#received]
    assert.equal(200, last.status)
    assert.same({ { entity = "files", id = f.ext_id, owner_id = it.owner } }, last.refetch)
    assert.equal(tenant:find_file(f.ext_id).sha1, row(inst, f.ext_id).sha1)    -- re-fetched
    -- a new file a user uploads to their folder: no stored row says whose it is, the signed notification
    -- does (As-User)
    local folder
    for _, id in ipairs(tenant.state.order) do
      local x = tenant:find_file(id)
      local u = tenant:find_user(x.owner)
      if not folder and x.type == "folder" and id ~= "0" and not tenant:in_trash(x) and u and not u.service then folder = x end
    end
    tenant:webhook_target(url, folder.id, { "FILE.UPLOADED" })
    local up = assert(http.request { method = "POST", url = srv.url .. "/api/2.0/files/content",
      headers = { Authorization = "Bearer " .. tenant.token, ["As-User"] = folder.owner, ["Content-Type"] = "multipart/form-data; boundary=XyZ" },
      body = '--XyZ\r\nContent-Disposition: form-data; name="attributes"\r\n\r\n{"name":"new-notes.txt","parent":{"id":"' .. folder.id
        .. '"}}\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="new-notes.txt"\r\n\r\n' .. box_tenant.SENSITIVE.ssn
        .. '\r\n--XyZ--\r\n' })
    assert.equal(201, up.status, up.body)
    local new_id = json.decode(up.body).entries[1].id
    assert.is_nil(row(inst, new_id))
    tenant:flush()
    assert.equal("new-notes.txt", row(inst, new_id).name)
    assert.equal(tenant:path_of(tenant:find_file(new_id)), row(inst, new_id).path)

    local body = json.encode { type = "webhook_event", id = "evt-1", trigger = "FILE.UPLOADED",
                               source = { id = f.ext_id, type = "file", name = f.name } }
    local sign = box_tenant.sign
    local function post(ts, primary, secondary, delivery)
      return assert(http.request { method = "POST", url = url, body = body, headers = {
        ["Content-Type"] = "application/json", ["BOX-DELIVERY-ID"] = delivery, ["BOX-DELIVERY-TIMESTAMP"] = ts,
        ["BOX-SIGNATURE-PRIMARY"] = primary, ["BOX-SIGNATURE-SECONDARY"] = secondary } }).status
    end
    local ts = box_tenant.btime(math.floor(sched.time()) * 1000)
    local good_p, good_s = sign(tenant.keys.primary, body, ts), sign(tenant.keys.secondary, body, ts)
    local bad = sign("not-the-key", body, ts)
    assert.equal(200, post(ts, good_p, bad, "d-1"))          -- primary only (secondary being rotated)
    assert.equal(200, post(ts, bad, good_s, "d-2"))          -- secondary only
    assert.equal(401, post(ts, bad, bad, "d-3"))             -- forged
    assert.equal(401, post(ts, sign(tenant.keys.primary, body .. " ", ts), bad, "d-4"))   -- tampered body
    local old = box_tenant.btime((math.floor(sched.time()) - 1200) * 1000)
    assert.equal(401, post(old, sign(tenant.keys.primary, body, old), sign(tenant.keys.secondary, body, old), "d-5"))  -- stale
    local n = #received
    assert.equal(200, post(ts, good_p, good_s, "d-9"))       -- replayed under a new (unsigned) delivery id: acknowledged
    assert.is_nil(next(received[n + 1].refetch or {}))       -- and not handled again
  end)

  it("reads a group past Box's 10,000 offset limit through its members' memberships", function()
    -- the same refusal at a lower depth (max_offset) and small pages (page_max), so a group is deep enough
    local big = box_tenant.new { seed = 22, users = 60, groups = 2, folders = 2, files = 2, events = 5, days = 2,
                                 client_id = "big-client", client_secret = "big-secret", enterprise_id = "777002", max_offset = 6 }
    big.page_max = 4
    local s2 = assert(server.listen { port = 0 })
    big:mount(s2)
    local now = store.now()
    assert(runtime.store().db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('box', 'box-big', ?, ?, ?)",
      json.encode { client_id = "big-client", enterprise_id = "777002", auth = "client_credentials", base_url = s2.url .. "/2.0",
                    upload_base_url = s2.url .. "/api/2.0", oauth_base_url = s2.url, insecure_loopback = true }, now, now))
    local bi = assert(instances.instance(runtime.store(), "box-big"))
    bi:set_secret("client_secret", "big-secret")
    local deep = 0
    for _, g in ipairs(big.state.groups) do
      local n = 0
      for _, m in ipairs(big.state.memberships) do if m.group == g.id then n = n + 1 end end
      if n > 6 + 4 then deep = deep + 1 end
    end
    assert.is_true(deep > 0)                               -- a group the offset paging cannot finish
    sync_ok(bi, { streams = { "users", "groups" } })
    s2:close()
    assert.equal(big:count("groups"), n_of("groups", bi))
    assert.equal(big:count("memberships"), n_of("group_members", bi))
    local truth = {}
    for _, m in ipairs(big.state.memberships) do truth[m.id] = m.group end
    for _, r in ipairs(runtime.store().db:query("SELECT ext_id, group_id FROM group_members WHERE instance_id = ?", bi.id)) do
      assert.equal(truth[r.ext_id], r.group_id)
    end
  end)

  it("reads admin_logs_streaming at least once: repeats across chunks add nothing", function()
    sync_ok(inst, { streams = { "activities" } })          -- what the earlier cases' actions logged
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local u = tenant.state.users[7]
    -- three batches and a last chunk of an even length (the repeat of the batch before, and an odd rest),
    -- so with its neighbours swapped the chunk's last event is not its newest
    local n = 3 * tenant.event_batch
    if (#tenant.state.events + n) % tenant.event_batch % 2 == 0 then n = n + 1 end
    local t0 = tenant:now_ms()
    for i = 1, n do tenant:add_event(i % 2 == 0 and "LOGIN" or "PREVIEW", u, u, { ms = t0 + i * 1000 }) end
    local by = sync_ok(inst, { streams = { "activities" } })
    assert.equal(n, by.activities.activities.added)
    assert.equal(before + n, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    -- the stream is not in chronological order: the watermark is the newest event read, not the last
    local newest = runtime.store().db:query("SELECT max(time) t FROM activities WHERE instance_id = ?", inst.id)[1].t
    assert.equal(newest, runtime.store():stream(inst.id, "activities").watermark)
  end)

  it("without As-User the file scan says what the Box app lacks, and marks nothing deleted", function()
    local files = n_of("files", inst, "deleted_at IS NULL")
    tenant.as_user_disabled = true                         -- the app may no longer perform actions as users
    local results, ok = runtime.sync(inst, { streams = { "files" } })
    tenant.as_user_disabled = false
    assert.is_false(ok)
    assert.matches("Perform actions as users", results[1].error, 1, true)
    assert.equal(files, n_of("files", inst, "deleted_at IS NULL"))
  end)
end)

describe("box connector quarantine folder", function()
  it("is remembered with its uploaders (no POST /folders nor /collaborations each time), made anew when an admin deleted it", function()
    host.home = tmp_home()
    local tenant = box_tenant.new { seed = 5, users = 4, groups = 1, folders = 3, files = 30, events = 10, days = 30,
                                    client_id = "box-client", client_secret = "box-secret", enterprise_id = "777002" }
    local srv = assert(server.listen { port = 0 })
    finally(function() srv:close() end)
    tenant:mount(srv)
    local st = runtime.store()
    local now = store.now()
    assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('box', 'box-q', ?, ?, ?)",
      json.encode { client_id = "box-client", enterprise_id = "777002", auth = "client_credentials",
                    base_url = srv.url .. "/2.0", upload_base_url = srv.url .. "/api/2.0", oauth_base_url = srv.url,
                    insecure_loopback = true, initial_days = 30 }, now, now))
    local inst = assert(instances.instance(st, "box-q"))
    inst:set_secret("client_secret", "box-secret")
    sync_ok(inst, { streams = { "users", "files" } })
    local ctx = sync.context(runtime.store(), inst, "action")
    local A = context.connector(ctx).actions
    local function posts(path)
      local n = 0
      for _, r in ipairs(tenant.log) do if r.method == "POST" and r.path == path then n = n + 1 end end
      return n
    end
    -- four files of one managed user, not trashed
    local by_owner, todo = {}, nil
    for _, f in ipairs(runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND is_folder = 0 AND trashed = 0 AND deleted_at IS NULL ORDER BY ext_id", inst.id)) do
      local it = tenant:find_file(f.ext_id)
      local u = it and tenant:find_user(it.owner)
      if it and not tenant:in_trash(it) and u and not u.service then
        by_owner[u.id] = by_owner[u.id] or {}
        table.insert(by_owner[u.id], f)
        if #by_owner[u.id] == 4 then todo = todo or by_owner[u.id] end
      end
    end
    assert.is_not_nil(todo)
    local owner = tenant:find_file(todo[1].ext_id).owner
    local function parent(f) return tenant:find_file(tenant:find_file(f.ext_id).parent) end
    A.quarantine_file(ctx, todo[1], { correlation_id = "corr-r1" })
    local q1 = parent(todo[1])
    assert.equal("cachost quarantine", q1.name)
    local folders, collabs = posts("/2.0/folders"), posts("/2.0/collaborations")
    A.quarantine_file(ctx, todo[2], { correlation_id = "corr-r2" })
    assert.equal(q1.id, parent(todo[2]).id)
    assert.equal(folders, posts("/2.0/folders"))              -- remembered: not looked up again
    assert.equal(collabs, posts("/2.0/collaborations"))        -- the owner is an uploader there already
    -- an admin removes the owner's collaboration on the folder: looked up again, the owner made uploader again
    for i = #tenant.state.collabs, 1, -1 do
      local cb = tenant.state.collabs[i]
      if cb.item == q1.id and cb.who == owner then table.remove(tenant.state.collabs, i) end
    end
    A.quarantine_file(ctx, todo[3], { correlation_id = "corr-r3" })
    assert.equal(q1.id, parent(todo[3]).id)
    assert.equal(folders + 1, posts("/2.0/folders"))
    assert.equal(collabs + 1, posts("/2.0/collaborations"))
    -- an admin deletes the quarantine folder (to the trash): the next quarantine makes a new one
    q1.trashed_at = tenant:now_ms()
    A.quarantine_file(ctx, todo[4], { correlation_id = "corr-r4" })
    local q2 = parent(todo[4])
    assert.equal("cachost quarantine", q2.name)
    assert.equal("0", q2.parent)
    assert.is_not.equal(q1.id, q2.id)
    assert.is_false(tenant:in_trash(q2))
    assert.equal(folders + 2, posts("/2.0/folders"))
  end)
end)
