-- The AWS connector against the AWS sandbox account: it connects through STS AssumeRole with the
-- external id, every stream equals the account's ground truth, and governance changes the account.
local context = require "sdk.context"
local sync = require "sync"
local runtime = require "runtime"
local helpers = require "helpers"
local aws_tenant = require "sandbox.aws"

local n_of, count = helpers.n_of, helpers.count

local function add_instance(name, t, srv, extra)
  local settings = { base_url = srv.url, insecure_loopback = true, role_arn = t.role.Arn, external_id = t.role.external_id }
  for k, v in pairs(extra or {}) do settings[k] = v end
  return helpers.instance("aws", name, settings, { access_key_id = t.audit_key.id, secret_access_key = t.audit_key.secret })
end

local function ids(sql, ...)
  local out = {}
  for _, r in ipairs(runtime.store().db:query(sql, ...)) do out[#out + 1] = r.ext_id end
  table.sort(out)
  return out
end

describe("aws connector", function()
  local t, srv, inst
  setup(function()
    host.home = helpers.tmp_dir()
    t = aws_tenant.new { seed = 11, users = 30 }
    srv = helpers.serve(t)
    inst = add_instance("aws-test", t, srv, { initial_days = 30 })   -- the account's whole two weeks of history
  end)
  teardown(function() srv:close() end)

  it("says who it connects as: the assumed role's session", function()
    local ctx = sync.context(runtime.store(), inst, "connect")
    local c = context.connector(ctx)
    assert.equal(("AWS account %s as arn:aws:sts::%s:assumed-role/CachostAudit/cachost-aws-test"):format(t.account, t.account),
      c.test(ctx))
  end)

  it("scans users, groups, memberships, administrators, access keys, CloudTrail and S3 to the account's truth", function()
    helpers.sync_ok(inst)
    local truth = t:truth()
    local users = T_sorted(truth.users)
    assert.same(users, ids("SELECT ext_id FROM users WHERE instance_id = ? AND deleted_at IS NULL", inst.id))
    assert.same(T_sorted(truth.groups), ids("SELECT ext_id FROM groups WHERE instance_id = ? AND deleted_at IS NULL", inst.id))
    local members = 0
    for _, g in pairs(t.groups) do members = members + #g.members end
    assert.equal(members, n_of("group_members", inst))
    assert.same(T_sorted(truth.admins), ids("SELECT ext_id FROM users WHERE instance_id = ? AND is_admin = 1", inst.id))
    local root = runtime.store().db:query("SELECT raw FROM users WHERE instance_id = ? AND ext_id = '<root_account>'", inst.id)[1]
    assert.is_false(json.decode(root.raw).MFAActive)          -- the root user without MFA, from the credential report
    assert.is_true(json.decode(root.raw).AccessKey1Active)
    -- every user's MFA from the same report, and the console users' last sign-in
    local mfa = 0
    for _, r in ipairs(runtime.store().db:query("SELECT ext_id, raw, last_login FROM users WHERE instance_id = ? AND ext_id <> '<root_account>' AND ext_id NOT LIKE 'role/%'", inst.id)) do
      local u = t.users[r.ext_id]
      assert.equal(u.mfa ~= nil, json.decode(r.raw).MFAActive, r.ext_id)
      if u.mfa then mfa = mfa + 1 end
      assert.equal(u.PasswordLastUsed, r.last_login)
    end
    assert.is_true(mfa > 0)
    assert.same(truth.active_keys, ids("SELECT ext_id FROM app_grants WHERE instance_id = ? AND deleted_at IS NULL", inst.id))
    assert.equal(t:count("events"), count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    assert.equal(t:count("signins"), count("SELECT count(*) n FROM activities WHERE instance_id = ? AND kind = 'signin'", inst.id))
    local objects = n_of("files", inst, "is_folder = 0")
    assert.equal(#truth.objects, objects)
    local public = {}
    for _, r in ipairs(runtime.store().db:query("SELECT ext_id FROM files WHERE instance_id = ? AND is_folder = 0 AND access_level = 'public'", inst.id)) do
      public[#public + 1] = r.ext_id
    end
    table.sort(public)
    assert.same(truth.public_objects, public)
  end)

  it("a failed console sign-in arrives with its outcome and source IP on the next poll", function()
    local before = count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)
    t:simulate_bruteforce("alice", 3)
    helpers.sync_ok(inst, { streams = { "activities" } })
    assert.equal(before + 4, count("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id))
    local r = runtime.store().db:query("SELECT * FROM activities WHERE instance_id = ? AND actor = 'alice' AND ip = '192.0.2.66' "
      .. "ORDER BY time", inst.id)
    assert.equal(4, #r)
    assert.same({ "failure", "failure", "failure", "success" }, { r[1].outcome, r[2].outcome, r[3].outcome, r[4].outcome })
    assert.equal("ConsoleLogin", r[1].action)
  end)

  local function act(action, entity, ext_id, params)
    local ctx = sync.context(runtime.store(), inst, "action")
    local row = runtime.store().db:query("SELECT * FROM " .. entity .. " WHERE instance_id = ? AND ext_id = ?", inst.id, ext_id)[1]
    assert(row, ext_id)
    return context.connector(ctx).actions[action](ctx, row, params)
  end

  it("suspends a user with an explicit deny-all policy, and undoes it", function()
    act("suspend_user", "users", "bob")
    assert.truthy(t.users.bob.inline["cachost-deny-all"])
    helpers.sync_ok(inst, { streams = { "users" } })
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE instance_id = ? AND ext_id = 'bob'", inst.id)[1].status)
    act("unsuspend_user", "users", "bob")
    assert.is_nil(t.users.bob.inline["cachost-deny-all"])
  end)

  it("knows roles as identities (role/<name>) with their administrators, and suspends one the same way", function()
    local r = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND ext_id = 'role/ci-deploy'", inst.id)[1]
    assert.equal(1, r.is_admin)                                  -- an inline Allow * on *
    assert.equal("token.actions.githubusercontent.com", json.decode(r.raw).TrustPolicy.Statement[1].Principal.Federated:match("[^/]+$"))
    assert.is_not.equal(1, runtime.store().db:query("SELECT is_admin FROM users WHERE instance_id = ? AND ext_id = 'role/lambda-orders'",
      inst.id)[1].is_admin)
    act("suspend_user", "users", "role/ci-deploy")
    assert.truthy(t.roles["ci-deploy"].inline["cachost-deny-all"])
    local ctx = sync.context(runtime.store(), inst, "action")
    context.connector(ctx).fetch.users(ctx, "role/ci-deploy")
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE instance_id = ? AND ext_id = 'role/ci-deploy'",
      inst.id)[1].status)
    act("unsuspend_user", "users", "role/ci-deploy")
    assert.is_nil(t.roles["ci-deploy"].inline["cachost-deny-all"])
  end)

  it("deactivates a user (console password and keys), takes one out of its groups, and an administrator's rights away", function()
    -- a console user with an active key
    local who
    for _, n in ipairs(t.user_order) do
      local u = t.users[n]
      if not who and u.login and #u.keys > 0 and t.keys[u.keys[1]].status == "Active" and #u.groups == 0 then who = n end
    end
    assert(who, "the account has a console user with a key")
    act("deactivate_user", "users", who)
    assert.is_nil(t.users[who].login)
    for _, id in ipairs(t.users[who].keys) do assert.equal("Inactive", t.keys[id].status) end
    local errors = select(2, pcall(act, "deactivate_user", "users", "role/ci-deploy"))
    assert.matches("^http: deactivate_user: role/ci%-deploy is not an IAM user", tostring(errors))
    -- a developer out of Developers
    local dev
    for _, n in ipairs(t.groups.Developers.members) do dev = dev or n end
    act("remove_member", "users", dev)
    assert.same({}, t.users[dev].groups)
    -- the administrators: by the Admins group, by an attached AdministratorAccess, by an inline *:*
    local admins = {}
    for _, n in ipairs(t:admins()) do admins[n] = true end
    for _, n in ipairs { "alice", "bob", "ops-automation" } do
      assert.is_true(admins[n], n)
      act("remove_admin_role", "users", n)
    end
    helpers.sync_ok(inst, { streams = { "privileges" } })
    for _, n in ipairs { "alice", "bob", "ops-automation" } do
      assert.is_not.equal(1, runtime.store().db:query("SELECT is_admin FROM users WHERE instance_id = ? AND ext_id = ?", inst.id, n)[1].is_admin, n)
    end
    assert.same(T_sorted(t:admins()), ids("SELECT ext_id FROM users WHERE instance_id = ? AND is_admin = 1", inst.id))
  end)

  it("deactivates a leaked access key, and the next scan no longer lists it", function()
    local key = t.users["ops-automation"].keys[1]
    act("revoke_token", "app_grants", key)
    assert.equal("Inactive", t.keys[key].status)
    helpers.sync_ok(inst, { streams = { "app_grants" } })
    assert.equal(0, n_of("app_grants", inst, "ext_id = '" .. key .. "'"))
  end)

  it("makes the public key file private, and quarantines an object behind a tombstone", function()
    act("make_private", "files", "acme-data/backup/credentials.csv")
    assert.is_false(t:is_public("acme-data", "backup/credentials.csv"))
    -- the targeted re-fetch the governance path runs after an action sees it
    local ctx = sync.context(runtime.store(), inst, "action")
    context.connector(ctx).fetch.files(ctx, "acme-data/backup/credentials.csv")
    assert.equal("private", runtime.store().db:query("SELECT access_level FROM files WHERE instance_id = ? AND ext_id = ?",
      inst.id, "acme-data/backup/credentials.csv")[1].access_level)
    local undo = act("quarantine_file", "files", "acme-data/reports/q1.csv", { correlation_id = "c-1" })
    local b = t.buckets["acme-data"]
    assert.is_nil(b.objects["reports/q1.csv"])
    assert.equal("AES256", b.objects["cachost-quarantine/reports/q1.csv"].sse)
    assert.matches("Correlation id: c%-1", b.objects["reports/q1.csv.quarantined.txt"].body)
    assert.equal("unquarantine_file", undo.undo.action)
    act("unquarantine_file", "files", "acme-data/reports/q1.csv", undo.undo.params)
    assert.truthy(b.objects["reports/q1.csv"])
    assert.is_nil(b.objects["cachost-quarantine/reports/q1.csv"])
    assert.is_nil(b.objects["reports/q1.csv.quarantined.txt"])
  end)

  it("reads a bucket in its own region (GetBucketLocation), and finds it through S3's redirect when that is refused", function()
    local raw = json.decode(runtime.store().db:query("SELECT raw FROM files WHERE instance_id = ? AND ext_id = 'acme-eu-exports'",
      inst.id)[1].raw)
    assert.equal("eu-west-1", raw.Region)
    assert.equal("public", runtime.store().db:query("SELECT access_level FROM files WHERE instance_id = ? AND ext_id = ?",
      inst.id, "acme-eu-exports/share/cards.csv")[1].access_level)
    local ctx = sync.context(runtime.store(), inst, "action")
    assert.matches("4111 1111 1111 1111", (context.connector(ctx).content(ctx, { ext_id = "acme-eu-exports/share/cards.csv", is_folder = 0 })))
    t.location_denied = true                 -- only a bucket's owner may ask GetBucketLocation
    local before = t.requests
    act("make_private", "files", "acme-eu-exports/share/cards.csv")
    t.location_denied = nil
    assert.is_false(t:is_public("acme-eu-exports", "share/cards.csv"))
    assert.equal(before + 3, t.requests)     -- refused location, 301 at home, then the bucket's region
  end)

  it("reads CloudTrail from a trail's bucket (every region's gzipped log files), then only the files delivered since", function()
    local trail = add_instance("aws-trail", t, srv, { initial_days = 30, trail_bucket = t.trail_bucket })
    helpers.sync_ok(trail, { streams = { "activities" } })
    local want = {}
    for _, ev in ipairs(t.events) do want[#want + 1] = ev.id end
    assert.same(T_sorted(want), ids("SELECT ext_id FROM activities WHERE instance_id = ?", trail.id))
    -- an event read from the trail's files and by LookupEvents has the same key, time and id (store/schema.lua)
    local lookup = add_instance("aws-lookup", t, srv, { initial_days = 30 })
    helpers.sync_ok(lookup, { streams = { "activities" } })
    local function keys(id)
      local out = {}
      for _, r in ipairs(runtime.store().db:query("SELECT time || ' ' || ext_id AS k FROM activities WHERE instance_id = ? ORDER BY k", id)) do
        out[#out + 1] = r.k
      end
      return out
    end
    assert.equal(#want, #keys(lookup.id))
    assert.same(keys(lookup.id), keys(trail.id))
    assert.is_true(count("SELECT count(*) n FROM activities WHERE instance_id = ? AND json_extract(unzstd(raw), '$.awsRegion') = 'eu-west-1'",
      trail.id) > 0)
    local from = #t.log
    t:simulate_bruteforce("alice", 2)           -- three events, three files delivered
    helpers.sync_ok(trail, { streams = { "activities" } })
    assert.equal(#want + 3, count("SELECT count(*) n FROM activities WHERE instance_id = ?", trail.id))
    local read = 0
    for i = from + 1, #t.log do
      if t.log[i].method == "GET" and t.log[i].path:find("/CloudTrail/", 1, true) then read = read + 1 end
    end
    assert.equal(3, read)                       -- the files read before are not read again
    -- a file that is not gzip: one line, nothing lost
    t:put_object(t.trail_bucket, ("AWSLogs/%s/CloudTrail/us-east-1/2099/01/01/%s_CloudTrail_us-east-1_20990101T0000Z_x.json.gz")
      :format(t.account, t.account), "not gzip")
    local results, ok = runtime.sync(trail, { streams = { "activities" } })
    assert.is_false(ok)
    assert.matches("^malformed: corrupt: gzip: incorrect header check: s3://cachost%-%d+%-logs/AWSLogs/", results[1].error)
    assert.equal(#want + 3, count("SELECT count(*) n FROM activities WHERE instance_id = ?", trail.id))
  end)

  it("takes the account's Block Public Access (S3 Control) into every bucket's access level", function()
    local function public()
      return ids("SELECT ext_id FROM files WHERE instance_id = ? AND access_level = 'public' AND deleted_at IS NULL", inst.id)
    end
    helpers.sync_ok(inst, { streams = { "files" } })
    assert.is_true(#public() > 0)
    t.account_bpa = { BlockPublicAcls = true, IgnorePublicAcls = true, BlockPublicPolicy = true, RestrictPublicBuckets = true }
    helpers.sync_ok(inst, { streams = { "files" } })
    t.account_bpa = nil
    assert.same({}, public())
    local raw = json.decode(runtime.store().db:query("SELECT raw FROM files WHERE instance_id = ? AND ext_id = 'acme-data'", inst.id)[1].raw)
    assert.is_true(raw.AccountPublicAccessBlock.IgnorePublicAcls)
    helpers.sync_ok(inst, { streams = { "files" } })
    assert.is_true(#public() > 0)
  end)

  it("overwrites an object with a long notice as S3's chunked upload, every chunk signed", function()
    local notice = ("This object's content was removed by your administrator.\n"):rep(3000)     -- about 170 KB
    act("overwrite_file", "files", "acme-data/reports/q1.csv", { notice = notice })
    assert.equal(notice, t.buckets["acme-data"].objects["reports/q1.csv"].body)
  end)

  it("blocks public access on a bucket", function()
    act("make_private", "files", "acme-public-site")
    assert.is_true(t.buckets["acme-public-site"].bpa.BlockPublicAcls)
    assert.is_false(t:is_public("acme-public-site", "index.html"))
  end)

  it("survives Throttling and 5xx bursts", function()
    local Client = require "sdk.client"
    local base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.01
    t:fault { kind = "429", count = 3 }
    t:fault { kind = "500", count = 2 }
    local ok, err = pcall(helpers.sync_ok, inst, { streams = { "users", "groups" } })
    Client.BACKOFF_BASE = base
    assert(ok, tostring(err))
  end)

  it("stops on a cut or garbled XML answer with one clear line, and keeps what it stored", function()
    local Client = require "sdk.client"
    local base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.01
    local before = n_of("groups", inst)
    for _, kind in ipairs { "truncated", "html" } do
      t:fault { kind = kind, count = 50 }      -- more than the retries of a read
      local results, ok = runtime.sync(inst, { streams = { "groups" } })
      t:clear_faults()
      assert.is_false(ok, kind)
      assert.is_string(results[1].error)
      assert.is_nil(results[1].error:find("\n"), results[1].error)
      assert.equal(before, n_of("groups", inst))
    end
    t:fault { kind = "reset", count = 1 }
    local ok, err = pcall(helpers.sync_ok, inst, { streams = { "groups" } })   -- a read is asked again
    Client.BACKOFF_BASE = base
    assert(ok, tostring(err))
  end)

  it("takes keys AWS does not know, or a wrong secret, for a dead credential (reconnect needed), not a permission", function()
    for name, secrets in pairs {
      ["aws-unknown-key"] = { access_key_id = "AKIAUNKNOWNKEY000000", secret_access_key = t.audit_key.secret },
      ["aws-wrong-secret"] = { access_key_id = t.audit_key.id, secret_access_key = "not-the-secret" },
    } do
      local bad = helpers.instance("aws", name, { base_url = srv.url, insecure_loopback = true }, secrets)
      local results, ok = runtime.sync(bad, { streams = { "users" } })
      assert.is_false(ok)
      assert.matches("^auth: HTTP 403: ", results[1].error)
      assert.equal("reconnect_needed", require("instances").instance(runtime.store(), name).row.status)
    end
  end)

  it("says the role refused when the external id is wrong", function()
    local bad = add_instance("aws-bad", t, srv, { external_id = "guess" })
    local results, ok = runtime.sync(bad, { streams = { "users" } })
    assert.is_false(ok)
    assert.matches("^auth: STS AssumeRole refused: .*AccessDenied", results[1].error)
  end)
end)

function T_sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end
