-- The GCP connector against the GCP sandbox tenant (an organization with folders and projects): the
-- service account's JWT-bearer assertion (a wrong key refused), role bindings of every policy equal to
-- the tenant's ground truth (public bindings flagged), service accounts and their user-managed keys,
-- Cloud Audit Logs through entries:list (empty pages with a next token followed, ascending from a
-- watermark with an overlap, nothing stored twice), each action's effect, setIamPolicy's etag conflict
-- retried, and faults.
local google = require "sandbox.google"
local runtime = require "runtime"
local helpers = require "helpers"
local context = require "sdk.context"
local sync = require "sync"
local count, n_of, sync_ok = helpers.count, helpers.n_of, helpers.sync_ok

local function ids(entity, inst)
  local out = {}
  local live = entity == "activities" and "" or " AND deleted_at IS NULL"
  for _, r in ipairs(runtime.store().db:query("SELECT ext_id FROM " .. entity .. " WHERE instance_id = ?" .. live .. " ORDER BY ext_id", inst.id)) do
    out[#out + 1] = r.ext_id
  end
  return out
end
local function sorted(list) local c = {} for i, v in ipairs(list) do c[i] = v end table.sort(c) return c end
local function act(inst, action, entity, ext_id, params)
  local ctx = sync.context(runtime.store(), inst, "governance")
  local row = assert(ctx:stored(entity, ext_id), ext_id)
  return context.connector(ctx).actions[action](ctx, row, params)
end
local function n_activities(inst) return count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id) end

describe("gcp connector", function()
  local tenant, srv, inst
  setup(function()
    host.home = helpers.tmp_dir()
    tenant = google.gcp { seed = 7, projects = 3, entries = 120, days = 5 }
    srv = helpers.serve(tenant)
    inst = helpers.instance("gcp", "gcp-acme", {
      organization_id = tenant.org_number, base_url = srv.url, oauth_base_url = srv.url, insecure_loopback = true, initial_days = 30,
    }, { service_account_key = tenant:key_file(tenant.sa) })
  end)
  teardown(function() srv:close() end)

  it("reads every binding of the organization, its folders and projects, service accounts and their keys", function()
    sync_ok(inst)
    local truth = tenant:truth()
    for _, e in ipairs { "users", "groups", "privileges", "app_grants" } do
      assert.same(sorted(truth[e]), ids(e, inst), e)
    end
    -- public bindings are flagged
    assert.equal(1, n_of("privileges", inst, "scope LIKE '%(public: allUsers)%'"))
    assert.equal(1, n_of("privileges", inst, "scope LIKE '%(public: allAuthenticatedUsers)%'"))
    -- owners are admins; a disabled key is kept with its state, its age from validAfterTime
    local p1 = tenant.state.projects[1]
    assert.equal(1, n_of("users", inst, ("is_admin = 1 AND ext_id = 'owner1@%s'"):format(tenant.domain)))
    local key = p1.sas[1].keys[3]
    local row = runtime.store().db:query("SELECT created_at, raw FROM app_grants WHERE instance_id = ? AND ext_id = ?", inst.id, key.name)[1]
    assert.equal(key.validAfterTime, row.created_at)
    assert.equal(true, json.decode(row.raw).disabled)
    -- every audit entry of the organization, its folders and its projects, no other log, each once
    local want = tenant:audit_ids(tenant.state.resources)
    assert.same(sorted(want), ids("activities", inst))
    assert.is_true(tenant.state.empty_pages > 0)
  end)

  it("reads one project when the instance names a project, not an organization", function()
    local p = tenant.state.projects[3]
    local one = helpers.instance("gcp", "gcp-project", { project_id = p.projectId, base_url = srv.url, oauth_base_url = srv.url,
      insecure_loopback = true, initial_days = 30 }, { service_account_key = tenant:key_file(tenant.sa) })
    sync_ok(one)
    local want = {}
    for _, b in ipairs(p.policy.bindings) do for _, m in ipairs(b.members) do want[#want + 1] = p.name .. "|" .. b.role .. "|" .. m end end
    assert.same(sorted(want), ids("privileges", one))
    assert.same(sorted(tenant:audit_ids({ p })), ids("activities", one))
    assert.equal(2, n_of("app_grants", one))
  end)

  it("reads the audit logs again from its watermark with an overlap: a late entry comes in, nothing twice", function()
    local before = n_activities(inst)
    sync_ok(inst, { streams = { "activities" } })
    assert.equal(before, n_activities(inst))
    -- ingested late: timestamped 5 minutes before the newest entry already read
    local newest = 0
    for _, e in ipairs(tenant.state.entries) do newest = math.max(newest, e.ms) end
    local late = tenant:add_entry { log = "policy", res = tenant.state.projects[2], ms = newest - 300000, denied = true }
    tenant:add_entry { log = "syslog", res = tenant.state.projects[2] }
    sync_ok(inst, { streams = { "activities" } })
    assert.equal(before + 1, n_activities(inst))
    assert.equal(1, count("SELECT count(*) n FROM activities WHERE instance_id = ? AND ext_id = ? AND outcome = 'failure'", inst.id, late.insertId))
  end)

  it("disables a key, suspends a service account, refuses to suspend a person", function()
    local sa = tenant.state.projects[2].sas[1]
    local key = sa.keys[2]
    act(inst, "revoke_token", "app_grants", key.name)
    assert.is_true(key.disabled)
    act(inst, "suspend_user", "users", sa.email)
    assert.is_true(sa.disabled)
    act(inst, "unsuspend_user", "users", sa.email)
    assert.is_false(sa.disabled)
    local ok, err = pcall(act, inst, "suspend_user", "users", "owner1@" .. tenant.domain)
    assert.is_false(ok)
    assert.matches("Google Workspace", tostring(err))
  end)

  it("removes a principal from a role binding, read-modify-write retried on a stale etag", function()
    local p = tenant.state.projects[1]
    local member = "user:contractor@outside.example.net"
    -- someone else changes the policy between our read and our write: the first setIamPolicy gets 409
    local orig = tenant.h_policy
    local raced = false
    tenant.h_policy = function(self, req)
      if not raced and req.params.rid:find(":setIamPolicy$") then
        raced = true
        self:bind(p, "roles/viewer", "user:newcomer@" .. self.domain)
        p.policy.etag = "BwYchanged"
      end
      return orig(self, req)
    end
    local sets = tenant.state.sets or 0
    act(inst, "remove_admin_role", "users", "contractor@outside.example.net", { role = "roles/editor", resource = p.name })
    tenant.h_policy = nil
    assert.is_true(raced)
    assert.equal(sets + 1, tenant.state.sets)
    local members = {}
    for _, b in ipairs(p.policy.bindings) do for _, m in ipairs(b.members) do members[b.role .. " " .. m] = true end end
    assert.is_nil(members["roles/editor " .. member])
    assert.is_true(members["roles/viewer user:newcomer@" .. tenant.domain])      -- the other change is kept
    -- the contractor's editor role on the other projects is untouched; the public binding goes by its principal
    assert.is_true(tenant.state.projects[2].policy.bindings[1] ~= nil)
    act(inst, "remove_admin_role", "users", "allUsers")
    for _, b in ipairs(p.policy.bindings) do for _, m in ipairs(b.members) do assert.not_equal("allUsers", m) end end
  end)

  it("never writes a policy back from a malformed read: the bindings stay as they were", function()
    local p = tenant.state.projects[3]
    local before = json.encode(p.policy.bindings)
    local sets = tenant.state.sets or 0
    tenant:fault { path = ":getIamPolicy$", kind = "shape", count = 1 }
    local ok, err = pcall(act, inst, "remove_admin_role", "users", "contractor@outside.example.net", { resource = p.name })
    assert.is_false(ok)
    assert.matches("malformed listing: expected 'bindings' to be a JSON array", tostring(err.message or err))
    assert.equal(sets, tenant.state.sets or 0)
    assert.equal(before, json.encode(p.policy.bindings))
  end)

  it("names the least-privileged role its service account lacks: permission missing, the other streams go on", function()
    local narrow = google.gcp { seed = 7, projects = 2, entries = 20, days = 5, roles = { "roles/logging.viewer", "roles/browser" } }
    local nsrv <close> = helpers.serve(narrow)
    local ni = helpers.instance("gcp", "gcp-narrow", { organization_id = narrow.org_number, base_url = nsrv.url, oauth_base_url = nsrv.url,
      insecure_loopback = true, initial_days = 30 }, { service_account_key = narrow:key_file(narrow.sa) })
    local by = {}
    for _, r in ipairs(runtime.sync(ni)) do by[r.stream] = r end
    assert.is_table(by.activities.counts)                    -- Logs Viewer (and Browser to find the projects) read the audit logs
    assert.is_true(n_activities(ni) > 0)
    local health = sync.health(runtime.store():stream(ni.id, "users").last_error)
    assert.equal(("permission missing: roles/iam.securityReviewer (resourcemanager.organizations.getIamPolicy on organizations/%s): "
      .. "The caller does not have permission (PERMISSION_DENIED)"):format(narrow.org_number), health)
    -- without Browser the folders cannot be listed: Google's ErrorInfo names the permission
    narrow.org.policy.bindings = {}
    narrow:bind(narrow.org, "roles/logging.viewer", "serviceAccount:" .. narrow.sa.email)
    local res = runtime.sync(ni, { streams = { "activities" } })
    assert.equal(("permission: roles/iam.securityReviewer (resourcemanager.folders.list on organizations/%s): "
      .. "Permission 'resourcemanager.folders.list' denied on resource '//cloudresourcemanager.googleapis.com/organizations/%s' "
      .. "(or it may not exist). (PERMISSION_DENIED, IAM_PERMISSION_DENIED)"):format(narrow.org_number, narrow.org_number), res[1].error)
    -- with Security Reviewer the inventory reads, and an action it does not grant names its own role
    narrow:bind(narrow.org, "roles/iam.securityReviewer", "serviceAccount:" .. narrow.sa.email)
    sync_ok(ni, { streams = { "users", "app_grants" } })
    local key = narrow.state.projects[2].sas[1].keys[2]
    local ok, err = pcall(act, ni, "revoke_token", "app_grants", key.name)
    assert.is_false(ok)
    assert.equal("permission", err.token)
    assert.matches("^permission: roles/iam.serviceAccountKeyAdmin %(iam.serviceAccountKeys.disable on " .. key.name:gsub("[%-%.]", "%%%0") .. "%)", err.message)
    assert.is_false(key.disabled)
    ok, err = pcall(act, ni, "remove_admin_role", "users", "allUsers")
    assert.is_false(ok)
    assert.matches("^permission: roles/resourcemanager.projectIamAdmin %(resourcemanager.projects.setIamPolicy on projects/%d+%): The caller does not have permission", err.message)
  end)

  it("is refused with a key that is not the service account's, and says so in one line", function()
    local other = tenant:new_service_account("stranger", "elsewhere")
    local kf = json.decode(tenant:key_file(tenant.sa))
    kf.private_key = other.private_key
    local bad = helpers.instance("gcp", "gcp-badkey", { organization_id = tenant.org_number, base_url = srv.url, oauth_base_url = srv.url,
      insecure_loopback = true }, { service_account_key = json.encode(kf) })
    local results = runtime.sync(bad, { streams = { "users" } })
    assert.is_nil(results[1].counts)
    assert.matches("Invalid JWT Signature", results[1].error)
    assert.equal(0, n_of("users", bad))
  end)

  it("stops an endless entries:list (the same next token again) with one line, keeping what was stored", function()
    local before = n_activities(inst)
    tenant.h_entries = function() return 200, { entries = json.array({}), nextPageToken = "c2FtZQ" } end
    local results = runtime.sync(inst, { streams = { "activities" } })
    tenant.h_entries = nil
    assert.is_nil(results[1].counts)
    assert.matches("endless", results[1].error)
    assert.equal(before, n_activities(inst))
  end)

  it("retries Google's quota errors and keeps what was stored on a server failure", function()
    tenant:fault { path = "getIamPolicy", kind = "429", count = 1, retry_after = 0 }
    tenant:fault { path = "/v2/entries:list", kind = "403", count = 1, retry_after = 0 }
    sync_ok(inst, { streams = { "users", "activities" } })
    assert.same(sorted(tenant:truth().privileges), ids("privileges", inst))
    local before = #ids("privileges", inst)
    tenant:fault { path = "serviceAccounts", kind = "500", count = 100 }
    local results = runtime.sync(inst, { streams = { "users" } })
    assert.is_nil(results[1].counts)
    assert.matches("server", results[1].error)
    tenant:clear_faults()
    assert.equal(before, #ids("privileges", inst))
  end)
end)
