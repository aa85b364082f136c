-- The Office 365 connector against what Graph really answers (the sandbox follows the reference, not the
-- connector): driveItem delta without parentReference.path (paths rebuilt from parent ids, quarantine
-- found by path), sharing read through `Prefer: hierarchicalsharing` instead of every item's
-- /permissions, non-interactive sign-ins (beta, signInEventTypes), application permissions
-- (appRoleAssignments), directory roles held through role-assignable groups, and what each capability
-- needs.
local ms = require "sandbox.microsoft"
local runtime = require "runtime"
local instances = require "instances"
local governance = require "governance"
local helpers = require "helpers"
local n_of, sync_ok = helpers.n_of, helpers.sync_ok

local TENANT = "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"
local CLIENT, SECRET = "1a2b3c4d-5555-4666-8777-988899990000", "sandbox~graph.secret"

local function file_row(inst, id)
  return runtime.store().db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, id)[1]
end

-- the item's path as Graph's non-delta answers spell it below the drive root
local function truth_path(t, it)
  local parts = {}
  local x = it
  while x and x.parent do table.insert(parts, 1, x.name); x = t.state.items[x.parent] end
  return "/" .. table.concat(parts, "/")
end

describe("office365 connector against Graph", function()
  local tenant, srv, inst
  setup(function()
    host.home = helpers.tmp_dir()
    tenant = ms.new { seed = 21, users = 12, groups = 4, days = 2, signins = 80, noninteractive_signins = 60, audits = 40,
                      mgmt_records_per_day = 50, files_per_user = 4, now = sched.time() - 8 * 3600,
                      tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET }
    tenant:advance(8 * 3600)
    srv = helpers.serve(tenant)
    assert(instances.add(runtime.store(), "office365", "o365g", { tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET,
      components = "users,audits,signins,apps,files", base_url = srv.url, insecure_loopback = "true" }))
    inst = assert(instances.instance(runtime.store(), "o365g"))
  end)
  teardown(function() srv:close() end)

  it("rebuilds file paths from parent ids (delta has none) and reads sharing only where it is rooted", function()
    local log0 = #tenant.log
    sync_ok(inst)
    local own, perm_reads = 0, 0
    for _, it in pairs(tenant.state.items) do
      if it.parent and not it.deleted then
        local row = assert(file_row(inst, it.id), it.name)
        assert.equal(truth_path(tenant, it), row.path)
        if #it.perms > 0 then own = own + 1 end
      end
    end
    for i = log0 + 1, #tenant.log do
      local l = tenant.log[i]
      if l.method == "GET" and l.path:match("/permissions$") then perm_reads = perm_reads + 1 end
    end
    -- one /permissions read per item whose sharing is its own: the others inherit (hierarchicalsharing)
    assert.is_true(own > 0)
    assert.equal(own, perm_reads)
    helpers.figure("office365 files scan: %d items, %d permission reads", tenant:count("items"), perm_reads)
    assert.equal(tenant:count("items"), n_of("files", inst, "trashed = 0"))
    assert.equal(tenant:count("shared_items"), n_of("files", inst, "access_level <> 'private'"))
    assert.equal(tenant:count("permissions"), n_of("file_permissions", inst, "json_extract(unzstd(raw), '$.inheritedFrom') IS NULL"))
    -- a file inheriting the Shared folder's anonymous link is public without a read of its own
    local kid
    for _, it in pairs(tenant.state.items) do
      local p = it.parent and tenant.state.items[it.parent]
      if p and p.name == "Shared" and not it.folder and #it.perms == 0 and (not kid or it.id < kid.id) then kid = it end
    end
    assert.equal("public", file_row(inst, kid.id).access_level)
  end)

  it("follows a sharing change and a quarantine through the delta", function()
    local kid
    for _, it in pairs(tenant.state.items) do
      local p = it.parent and tenant.state.items[it.parent]
      if p and p.name == "Documents" and not it.folder and #tenant:effective_perms(it) == 0 and (not kid or it.id < kid.id) then kid = it end
    end
    assert.equal("private", file_row(inst, kid.id).access_level)
    local perm = tenant:share(kid, { kind = "user", email = "someone@partner.example", roles = { "read" }, external = true })
    sync_ok(inst, { streams = { "files" } })
    assert.equal("external", file_row(inst, kid.id).access_level)
    assert.equal(1, n_of("file_permissions", inst, "deleted_at IS NULL AND ext_id = '" .. kid.id .. ":" .. perm.id .. "'"))
    -- unshared in OneDrive: the facet comes back empty, the permission row goes
    for i, p in ipairs(kid.perms) do if p == perm then table.remove(kid.perms, i) end end
    tenant:sharing_changed(kid)
    sync_ok(inst, { streams = { "files" } })
    assert.equal("private", file_row(inst, kid.id).access_level)
    assert.equal(0, n_of("file_permissions", inst, "deleted_at IS NULL AND file_id = '" .. kid.id .. "'"))
    -- quarantine, then the next delta: still quarantined, under the quarantine folder's path
    local rec = assert(governance.act { store = runtime.store(), instance = inst, action = "quarantine_file", target = kid.id, operator = "spec" })
    assert.equal("ok", rec.result, tostring(rec.error))
    sync_ok(inst, { streams = { "files" } })
    local row = file_row(inst, kid.id)
    assert.equal("/cachost quarantine/" .. kid.name, row.path)
    assert.equal(1, row.quarantined)
    local tomb
    for _, it in pairs(tenant.state.items) do if it.name == kid.name .. ".quarantined.txt" then tomb = it end end
    assert.equal(truth_path(tenant, tomb), file_row(inst, tomb.id).path)
    assert.equal(0, file_row(inst, tomb.id).quarantined)
  end)

  it("re-stamps what delta leaves out: a renamed folder's descendants, a folder's unshared children", function()
    -- a drive with files in Documents and files in Shared that inherit its link
    local docs, shared, inside, kids
    for _, d in ipairs(tenant.state.drives) do
      local dd, ss, ii, kk = nil, nil, nil, {}
      for _, it in ipairs(d.items) do
        if it.name == "Documents" and it.parent == d.root.id then dd = it elseif it.name == "Shared" then ss = it end
      end
      for _, it in ipairs(d.items) do
        if dd and it.parent == dd.id and not it.deleted then ii = it end
        if ss and it.parent == ss.id and not it.deleted and #it.perms == 0 then kk[#kk + 1] = it end
      end
      if ii and #kk > 0 and not docs then docs, shared, inside, kids = dd, ss, ii, kk end
    end
    assert(docs, "files in Documents and inheriting ones in Shared")
    -- renamed in OneDrive: only the folder comes back in the delta
    docs.name = "Documents 2024"
    tenant:touch(docs)
    -- the Shared folder's link removed in OneDrive: only the folder comes back (hierarchicalsharing)
    shared.perms = {}
    tenant:sharing_changed(shared)
    sync_ok(inst, { streams = { "files" } })
    assert.equal("/Documents 2024/" .. inside.name, file_row(inst, inside.id).path)
    for _, k in ipairs(kids) do assert.equal("private", file_row(inst, k.id).access_level) end
    assert.equal(tenant:count("shared_items"), n_of("files", inst, "access_level <> 'private' AND trashed = 0"))
  end)

  it("reads interactive and non-interactive sign-ins", function()
    local signins = helpers.count("SELECT count(*) n FROM activities WHERE instance_id = ? AND app = 'Microsoft Entra ID' AND kind = 'signin'", inst.id)
    assert.equal(tenant:count("signins") + tenant:count("noninteractive_signins"), signins)
    assert.equal(tenant:count("noninteractive_signins"),
      helpers.count("SELECT count(*) n FROM activities WHERE instance_id = ? AND action = 'sign-in (non-interactive)'", inst.id))
  end)

  it("lists application permissions with delegated grants, and revokes one", function()
    assert.equal(tenant:count("grants") + tenant:count("app_role_assignments"), n_of("app_grants", inst))
    local row = runtime.store().db:query("SELECT * FROM app_grants WHERE instance_id = ? AND user = 'application' ORDER BY ext_id LIMIT 1", inst.id)[1]
    assert(row, "an application permission")
    assert.is_nil(row.user_id)
    local role
    for _, a in ipairs(tenant.state.app_role_assignments) do if a.id == row.ext_id then role = a end end
    local names = {}
    for _, r in ipairs(tenant:graph_app_roles()) do names[r.id] = r.value end
    assert.equal(names[role.appRoleId], row.scopes)
    local n = tenant:count("app_role_assignments")
    local rec = assert(governance.act { store = runtime.store(), instance = inst, action = "revoke_grant", target = row.ext_id, operator = "spec" })
    assert.equal("ok", rec.result, tostring(rec.error))
    assert.equal(n - 1, tenant:count("app_role_assignments"))
    sync_ok(inst, { streams = { "app_grants" } })
    assert.equal(tenant:count("grants") + n - 1, n_of("app_grants", inst))
  end)

  it("counts members of a role-assignable group holding a directory role as admins", function()
    local grp
    for _, g in ipairs(tenant.state.groups) do if g.isAssignableToRole then grp = g end end
    assert(#grp.members > 0)
    for _, uid in ipairs(grp.members) do
      local u = runtime.store().db:query("SELECT is_admin FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, uid)[1]
      assert.equal(1, u.is_admin)
      assert.equal(1, n_of("privileges", inst, "user_id = '" .. uid .. "' AND role = 'Exchange Administrator' AND ext_id LIKE '%:" .. grp.id .. "'"))
    end
  end)

  it("names what each capability needs, expire_password's application permission among them", function()
    local c = assert(require("sdk").load("office365"))
    local function has(text, want) return type(text) == "string" and text:find(want, 1, true) ~= nil end
    assert.is_true(has(c.needs.expire_password, "User-PasswordProfile.ReadWrite.All"))
    assert.is_true(has(c.needs.activities, "Microsoft Entra ID P1 or P2"))
    assert.is_true(has(c.needs.app_grants, "Application.Read.All"))
  end)
end)
