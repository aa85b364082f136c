-- The Google Workspace connector against the Workspace sandbox tenant: the service account's JWT-bearer
-- assertion (wrong key, undelegated scope and unknown subject refused), a full scan equal to the tenant's
-- ground truth (users with suspended/archived/deleted status, 2SV in raw, groups with external members,
-- role assignments direct and through a group, OAuth tokens, Drive files of every user with their
-- sharing), Reports read with an overlap so late (lagging) activities are not lost nor stored twice, the
-- DLP step's content (Docs exported as text), each governance action's effect, quota errors and faults.
local google = require "sandbox.google"
local runtime = require "runtime"
local helpers = require "helpers"
local context = require "sdk.context"
local sync = require "sync"
local count, n_of, sync_ok = helpers.count, helpers.n_of, helpers.sync_ok

local function ids(entity, inst)
  local out = {}
  for _, r in ipairs(runtime.store().db:query("SELECT ext_id FROM " .. entity .. " WHERE instance_id = ? AND deleted_at IS NULL ORDER BY ext_id", inst.id)) do
    out[#out + 1] = r.ext_id
  end
  return out
end
local function sorted(list) local c = {} for i, v in ipairs(list) do c[i] = v end table.sort(c) return c end
local function file_row(inst, id)
  return runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, id)[1]
end
local function act(inst, action, entity, ext_id, params)
  local ctx = sync.context(runtime.store(), inst, "governance")
  local row = ctx:stored(entity, ext_id)
  return context.connector(ctx).actions[action](ctx, row, params)
end

describe("google workspace connector", function()
  local tenant, srv, inst
  setup(function()
    host.home = helpers.tmp_dir()
    tenant = google.workspace { seed = 5, users = 30, groups = 4, files = 40, events = 140, days = 5 }
    srv = helpers.serve(tenant)
    inst = helpers.instance("google-workspace", "gw-acme", {
      admin_email = tenant.admin.primaryEmail, base_url = srv.url, oauth_base_url = srv.url, insecure_loopback = true, initial_days = 30,
    }, { service_account_key = tenant:key_file(tenant.sa) })
  end)
  teardown(function() srv:close() end)

  it("scans users, admins, groups, tokens and Drive to the tenant's ground truth", function()
    sync_ok(inst)
    local truth = tenant:truth()
    for _, e in ipairs { "users", "groups", "group_members", "privileges", "app_grants", "files", "file_permissions" } do
      assert.same(sorted(truth[e]), ids(e, inst), e)
    end
    assert.equal(tenant:count("suspended"), n_of("users", inst, "status = 'suspended'"))
    assert.equal(1, n_of("users", inst, "status = 'archived'"))
    assert.equal(tenant:count("deleted"), n_of("users", inst, "status = 'deleted'"))
    assert.equal(tenant:count("external_members"), n_of("group_members", inst, "member_type = 'external'"))
    -- the Help Desk role held through a group reaches its members
    assert.is_true(n_of("privileges", inst, "scope LIKE '%via group%'") > 0)
    assert.equal(1, n_of("users", inst, "is_admin = 1 AND ext_id = '" .. tenant.admin.id .. "'"))
    -- 2SV enrolment is in the raw user
    local raw = json.decode(runtime.store().db:query("SELECT raw FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, tenant.admin.id)[1].raw)
    assert.equal(true, raw.isEnrolledIn2Sv)
    -- sharing: the card-number Doc is public, the SSN file shared with an outsider
    assert.equal("public", file_row(inst, tenant:sensitive_file("card")).access_level)
    assert.equal("external", file_row(inst, tenant:sensitive_file("ssn")).access_level)
    assert.equal("private", file_row(inst, tenant:sensitive_file("aws")).access_level)
    assert.equal(tenant:count("trashed"), n_of("files", inst, "trashed = 1"))
    -- Drive was read as each owner: one token per subject in the vault
    assert.is_string(inst:secret("access_token.sub:" .. tenant.state.users[2].primaryEmail))
    -- activities: every visible event once
    assert.equal(tenant:count("activities"), count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
  end)

  it("reads activities with an overlap: a lagging login shows up later, nothing is stored twice", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    local u = tenant.state.users[4]
    -- a sign-in that happened 10 minutes ago, reported after the login application's lag (hours)
    tenant:add_activity("login", u, { name = "login_failure", time_ms = tenant:now_ms() - 600000, lag = 2 * 3600 })
    tenant:add_activity("admin", tenant.admin, { name = "CHANGE_PASSWORD", lag = 0 })
    sync_ok(inst, { streams = { "activities" } })
    assert.equal(before + 1, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    tenant:advance(3 * 3600)
    sync_ok(inst, { streams = { "activities" } })
    assert.equal(before + 2, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.equal(1, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action = 'login.login_failure' AND outcome = 'failure' AND kind = 'signin' AND actor = ?",
      inst.id, u.primaryEmail))
  end)

  it("gives the DLP step the text of Docs (exported) and the bytes of other files, as their owner", function()
    local ctx = sync.context(runtime.store(), inst, "files")
    local row = file_row(inst, tenant:sensitive_file("card"))
    local body, _, ctype = ctx:content(row, 1000000)
    assert.equal(google.SENSITIVE.card, body)
    -- the export's type, not the Doc's, is what the DLP step reads it as
    assert.equal("text/plain", ctype)
    local dlp = require "dlp"
    assert.equal("unsupported", dlp.scan_file(body, { name = row.name, mime = row.mime }).status)
    assert.equal(2, dlp.scan_file(body, { name = row.name, mime = ctype, detectors = { "credit_card" } }).matches.credit_card.count)
    assert.equal(google.SENSITIVE.aws, ctx:content(file_row(inst, tenant:sensitive_file("aws")), 1000000))
  end)

  it("suspends, unsuspends, signs out, expires passwords and revokes tokens", function()
    local u = tenant.state.users[5]
    act(inst, "suspend_user", "users", u.id)
    assert.is_true(u.suspended)
    assert.equal("ADMIN", u.suspensionReason)
    act(inst, "unsuspend_user", "users", u.id)
    assert.is_false(u.suspended)
    act(inst, "revoke_sessions", "users", u.id)
    assert.equal(1, u.signed_out)
    act(inst, "expire_password", "users", u.id)
    assert.is_true(u.changePasswordAtNextLogin)
    local holder
    for _, x in ipairs(tenant.state.users) do if #x.tokens > 0 then holder = x break end end
    local n = #holder.tokens
    act(inst, "revoke_token", "app_grants", holder.id .. ":" .. holder.tokens[1].clientId)
    assert.equal(n - 1, #holder.tokens)
  end)

  it("removes links and collaborators, makes private and trashes, as the owner", function()
    local card = tenant.state.files_by[tenant:sensitive_file("card")]
    act(inst, "remove_shared_link", "files", card.id)
    assert.equal(0, #card.perms)
    local ssn = tenant.state.files_by[tenant:sensitive_file("ssn")]
    act(inst, "remove_collaborator", "files", ssn.id)
    assert.equal(0, #ssn.perms)
    act(inst, "trash_file", "files", ssn.id)
    assert.is_true(ssn.trashed)
    sync_ok(inst, { streams = { "files" } })
    assert.equal("private", file_row(inst, card.id).access_level)
    assert.equal(1, file_row(inst, ssn.id).trashed)
  end)

  it("reads shared drives as a member of each: items without owners, their members' access, and acts there", function()
    local fin, mkt = tenant.state.drives[1], tenant.state.drives[2]
    local doc, plan
    for _, f in ipairs(tenant.state.files) do
      if f.drive == fin.id and f.name == "Vendor bank details" then doc = f end
      if f.drive == mkt.id then plan = f end
    end
    local row = file_row(inst, doc.id)
    assert.equal("/Finance/Invoices/Vendor bank details", row.path)
    assert.is_nil(row.owner)
    assert.equal("external", row.access_level)                    -- an outside auditor is a member of Finance
    assert.equal(3, n_of("file_permissions", inst, "file_id = '" .. doc.id .. "'"))
    assert.equal("public", file_row(inst, plan.id).access_level)
    -- its sharing goes as the drive's manager; the members' access stays (it comes from the drive)
    act(inst, "remove_shared_link", "files", plan.id)
    assert.equal(0, #plan.perms)
    assert.equal(1, #mkt.members)
    local ok, err = pcall(act, inst, "quarantine_file", "files", plan.id)
    assert.is_false(ok); assert.equal("unsupported", err.token)
    local req0 = #tenant.log
    local added = tenant:new_file(nil, { drive = fin.id, name = "q4-forecast.csv", content = "q4,1\n" })
    sync_ok(inst, { streams = { "files" } })                      -- the drives' changes feeds, no listing
    for i = req0 + 1, #tenant.log do assert.is_nil(tenant.log[i].path:match("/drive/v3/files$"), "no full listing") end
    assert.equal("internal", file_row(inst, plan.id).access_level)
    assert.equal("/Finance/q4-forecast.csv", file_row(inst, added.id).path)
    assert.equal("external", file_row(inst, added.id).access_level)
  end)

  it("follows each user's Drive changes from their page token: new sharing, removed sharing, new files", function()
    local u = tenant.state.users[3]
    local req0 = #tenant.log
    local by = sync_ok(inst, { streams = { "files" } })        -- nothing changed since the last files run
    assert.equal(0, by.files.files.added); assert.equal(0, by.files.files.changed)
    for i = req0 + 1, #tenant.log do assert.is_nil(tenant.log[i].path:match("/drive/v3/files$"), "no full listing") end
    local f = tenant:new_file(u, { name = "leak.txt", content = "4111 1111 1111 1111" })
    tenant:add_permission(f, { type = "anyone", role = "reader", allowFileDiscovery = false })
    local shared
    for _, x in ipairs(tenant.state.files) do
      if x.owner == u.id and x ~= f and #x.perms > 0 and not x.trashed then shared = x break end
    end
    local had = n_of("file_permissions", inst, "file_id = '" .. shared.id .. "'")
    assert.is_true(had > 0)
    shared.perms = {}
    tenant:change(shared)
    sync_ok(inst, { streams = { "files" } })
    assert.equal("public", file_row(inst, f.id).access_level)
    assert.equal(0, n_of("file_permissions", inst, "file_id = '" .. shared.id .. "'"))
    assert.same(sorted(tenant:truth().files), ids("files", inst))
    assert.same(sorted(tenant:truth().file_permissions), ids("file_permissions", inst))
  end)

  it("quarantines a public file into the admin's folder with a tombstone, and undoes it", function()
    local f
    for _, x in ipairs(tenant.state.files) do
      if x.owner ~= tenant.admin.id and not x.trashed and x.mimeType ~= "application/vnd.google-apps.folder" and #x.perms > 0 then f = x break end
    end
    local owner, origin, name = tenant.state.by_id[f.owner], f.parent, f.name
    local res = act(inst, "quarantine_file", "files", f.id, { correlation_id = "corr-7" })
    assert.equal(tenant.admin.id, f.owner)
    assert.equal(0, #f.perms)
    local folder = tenant.state.files_by[f.parent]
    assert.equal("cachost quarantine", folder.name); assert.equal(tenant.admin.id, folder.owner)
    local tomb
    for _, x in ipairs(tenant.state.files) do if x.name == name .. ".quarantined.txt" then tomb = x end end
    assert.equal(origin, tomb.parent); assert.equal(owner.id, tomb.owner)
    assert.matches("corr%-7", tomb.content); assert.matches("cachost quarantine", tomb.content)
    sync_ok(inst, { streams = { "files" } })
    assert.equal(tenant.admin.primaryEmail, file_row(inst, f.id).owner)
    assert.equal("private", file_row(inst, f.id).access_level)
    -- undo: back in its folder, its owner's again, the tombstone trashed
    local ctx = sync.context(runtime.store(), inst, "governance")
    context.connector(ctx).actions.unquarantine_file(ctx, ctx:stored("files", f.id), res.undo.params)
    assert.equal(owner.id, f.owner); assert.equal(origin, f.parent); assert.is_true(tomb.trashed)
  end)

  it("overwrites a file's content with a notice as its owner, keeping it and its sharing; a Doc is refused", function()
    local f
    for _, x in ipairs(tenant.state.files) do
      if x.mimeType == "text/plain" and not x.trashed and x.owner ~= tenant.admin.id and #x.perms > 0 then f = x break end
    end
    local perms, name, parent = #f.perms, f.name, f.parent
    act(inst, "overwrite_file", "files", f.id, { notice = "Removed: it held card numbers." })
    assert.equal("Removed: it held card numbers.", f.content)
    assert.same({ perms, name, parent }, { #f.perms, f.name, f.parent })
    local doc
    for _, x in ipairs(tenant.state.files) do if x.mimeType == "application/vnd.google-apps.document" and not x.trashed then doc = x break end end
    local before = doc.content
    local ok, err = pcall(act, inst, "overwrite_file", "files", doc.id)
    assert.is_false(ok)
    assert.equal("unsupported", err.token)
    assert.equal(before, doc.content)
  end)

  it("connects with an admin's OAuth consent (PKCE, loopback redirect, refresh token in the vault): directory yes, Drive unavailable", function()
    local client = { client_id = "1234-sandbox.apps.googleusercontent.com", client_secret = "GOCSPX-sandbox" }
    tenant:register_client(client)
    local oi = helpers.instance("google-workspace", "gw-oauth", { admin_email = tenant.admin.primaryEmail, auth = "oauth",
      client_id = client.client_id, base_url = srv.url, oauth_base_url = srv.url, insecure_loopback = true }, { client_secret = client.client_secret })
    local said = {}
    local t = sched.spawn(require("connect").run, oi, { say = function(line) said[#said + 1] = line end })
    local url
    for _ = 1, 100 do
      sched.sleep(0.05)
      for _, l in ipairs(said) do url = url or l:match("^(http%S+/o/oauth2/v2/auth%?%S+)") end
      if url then break end
    end
    assert(url, "the consent URL was shown")
    assert.matches("code_challenge_method=S256", url)
    assert.matches("access_type=offline", url)
    assert.is_nil(url:find("auth%2Fdrive", 1, true), "no Drive scope asked")
    local r = assert(http.request { url = url })                 -- the admin's browser: consent, then back to cachost
    assert.equal(200, r.status)
    assert.same({ true, true }, { t:join(30) })
    assert.is_string(oi:secret("refresh_token"))
    -- the access token expires: the refresh token gets a new one
    oi:set_secret("token_expires_at", tostring(sched.time() - 1))
    local by = sync_ok(oi, { streams = { "users", "groups" } })
    assert.is_table(by.users)
    assert.same(sorted(tenant:truth().users), ids("users", oi))
    local results = runtime.sync(oi, { streams = { "files" } })
    assert.is_nil(results[1].counts)
    assert.equal("unavailable (needs auth=service_account)", sync.health(results[1].error))
    local ok, err = pcall(act, oi, "trash_file", "files", tenant:sensitive_file("card"))
    assert.is_false(ok)
  end)

  it("removes a user's own admin role assignment, and names a group-held one", function()
    local u = tenant.state.users[2]
    local n = #tenant.state.assignments
    act(inst, "remove_admin_role", "users", u.id)
    assert.equal(n - 1, #tenant.state.assignments)
    for _, a in ipairs(tenant.state.assignments) do assert.not_equal(u.id, a.assignedTo) end
    assert.has_error(function() act(inst, "remove_admin_role", "users", u.id) end)
  end)

  it("refuses an assertion signed with another key, and an undelegated scope, with one clear line", function()
    local other = google.workspace { seed = 99, users = 3, files = 1, events = 7 }
    local forged = helpers.instance("google-workspace", "gw-forged", {
      admin_email = tenant.admin.primaryEmail, base_url = srv.url, oauth_base_url = srv.url, insecure_loopback = true,
    }, { service_account_key = (tenant:key_file(tenant.sa):gsub('"private_key":"[^"]+"', '"private_key":' .. json.encode(other.sa.private_key))) })
    local results = runtime.sync(forged, { streams = { "users" } })
    assert.is_nil(results[1].counts)
    assert.matches("Invalid JWT Signature", results[1].error)
    assert.equal(0, n_of("users", forged))

    local narrow = google.workspace { seed = 7, users = 5, files = 2, events = 7, dwd_scopes = { "admin.directory.user.readonly" } }
    local srv2 = helpers.serve(narrow)
    local inst2 = helpers.instance("google-workspace", "gw-narrow", {
      admin_email = narrow.admin.primaryEmail, base_url = srv2.url, oauth_base_url = srv2.url, insecure_loopback = true,
    }, { service_account_key = narrow:key_file(narrow.sa) })
    results = runtime.sync(inst2, { streams = { "users" } })
    assert.matches("unauthorized_client", results[1].error)
    srv2:close()
  end)

  it("reads everything with read_only when only the read scopes are delegated", function()
    local ro = google.workspace { seed = 8, users = 6, files = 6, events = 14, dwd_scopes = {
      "admin.directory.user.readonly", "admin.directory.group.readonly", "admin.directory.group.member.readonly",
      "admin.directory.rolemanagement.readonly", "admin.reports.audit.readonly", "drive.readonly", "admin.directory.user.security" } }
    local srv3 = helpers.serve(ro)
    local inst3 = helpers.instance("google-workspace", "gw-ro", {
      admin_email = ro.admin.primaryEmail, base_url = srv3.url, oauth_base_url = srv3.url, insecure_loopback = true, read_only = true,
    }, { service_account_key = ro:key_file(ro.sa) })
    sync_ok(inst3)
    assert.same(sorted(ro:truth().files), ids("files", inst3))
    assert.same(sorted(ro:truth().privileges), ids("privileges", inst3))
    srv3:close()
  end)

  it("retries Google's quota errors (429, 403 userRateLimitExceeded) and completes", function()
    tenant:fault { kind = "429", count = 1, path = "/admin/directory/v1/users$" }
    tenant:fault { kind = "403", count = 1, path = "/admin/directory/v1/groups$" }
    local by = sync_ok(inst, { streams = { "users", "groups" } })
    assert.equal(0, by.users.users.added)
    assert.same(sorted(tenant:truth().users), ids("users", inst))
  end)
end)
