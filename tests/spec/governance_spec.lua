-- The governance path against sandbox tenants: what the provider refuses, targets that are gone, the DLP
-- policy quarantining a shared card-number file in Box, and undo.
local runtime = require "runtime"
local governance = require "governance"
local policy = require "policy"
local sync = require "sync"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local add = require("helpers").instance

describe("governance", function()
  local okta_t, box_t, srv_o, srv_b, okta, box
  setup(function()
    host.home = tmp_home()
    package.loaded.runtime = nil
    runtime = require "runtime"
    okta_t = require("sandbox.okta").new { seed = 11, users = 20, events_per_day = 20 }
    srv_o = assert(server.listen { port = 0 }); okta_t:mount(srv_o)
    okta = add("okta", "o", { domain = "x", base_url = srv_o.url, insecure_loopback = true }, { api_token = okta_t.token })
    box_t = require("sandbox.box").new { seed = 5, client_id = "bc", client_secret = "bs", enterprise_id = "4242" }
    srv_b = assert(server.listen { port = 0 }); box_t:mount(srv_b)
    box = add("box", "b", { client_id = "bc", enterprise_id = "4242", auth = "client_credentials", base_url = srv_b.url .. "/2.0",
      upload_base_url = srv_b.url .. "/api/2.0", oauth_base_url = srv_b.url, insecure_loopback = true }, { client_secret = "bs" })
    assert(select(2, runtime.sync(okta, { streams = { "users" } })))
  end)
  teardown(function() srv_o:close(); srv_b:close(); runtime.watch(false) end)

  it("records a provider's refusal with its status and message", function()
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'deprovisioned' LIMIT 1", okta.id)[1]
    assert(u, "the tenant has deprovisioned users")
    local rec = assert(governance.act { store = runtime.store(), instance = okta, action = "suspend_user", target = u.ext_id, operator = "t" })
    assert.equal("failed", rec.result)
    assert.is_number(rec.provider_status)
    assert.matches("E0000", rec.error)
  end)

  it("records a failure when the target no longer exists at the provider", function()
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' LIMIT 1", okta.id)[1]
    for _ = 1, 2 do   -- Okta: the first DELETE deactivates, the second deletes
      local r = assert(http.request { method = "DELETE", url = srv_o.url .. "/api/v1/users/" .. u.ext_id,
        headers = { Authorization = "SSWS " .. okta_t.token } })
      assert.equal(204, r.status)
    end
    local rec = assert(governance.act { store = runtime.store(), instance = okta, action = "suspend_user", target = u.ext_id, operator = "t" })
    assert.equal("failed", rec.result)
    assert.equal(404, rec.provider_status)
  end)

  it("refuses what the app cannot do, naming what it can", function()
    local rec, err = governance.act { store = runtime.store(), instance = okta, action = "quarantine_file", target = "x" }
    assert.is_nil(rec)
    assert.matches("cannot quarantine_file; it can: .*suspend_user", err)
  end)

  it("quarantines a card-number file shared publicly (DLP policy in enforce mode) and undoes it", function()
    runtime.watch(true)
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "enforce" end end
    assert(select(2, runtime.sync(box, { streams = { "users", "files" } })))
    local db = runtime.store().db
    local q = db:query([[SELECT g.*, f.name FROM governance_actions g JOIN files f ON f.instance_id = g.instance_id
      AND f.ext_id = g.target_id WHERE g.instance_id = ? AND g.action = 'quarantine_file']], box.id)
    assert.is_true(#q >= 1)
    assert.equal("ok", q[1].result)
    local f = box_t:find_file(q[1].target_id)
    assert.equal("cachost quarantine", box_t:path_of(f):match("^/([^/]+)/"))
    local evidence = {}
    for _, a in ipairs(db:query("SELECT evidence FROM alerts WHERE policy = 'sensitive_file_shared'")) do
      evidence[#evidence + 1] = a.evidence
    end
    evidence = table.concat(evidence, "\n")
    assert.matches('"credit_card":{"count":', evidence)          -- the public card-number file was found
    assert.is_nil(evidence:find("4111111111111111", 1, true))   -- masked samples only
    assert.is_nil(evidence:find("4111 1111 1111 1111", 1, true))
    -- each quarantined file's row keeps the outcome of its scan, masked too
    for _, g in ipairs(q) do
      local f = db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", box.id, g.target_id)[1]
      assert.equal("completed", f.scan_status)
      assert.is_nil(f.scan_reason)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", f.scanned_at)
      local kinds = 0
      for _, m in pairs(json.decode(f.scan_matches)) do
        kinds = kinds + 1
        assert.is_true(m.count >= 1)
        assert.matches("%*", m.samples[1])
      end
      assert.is_true(kinds >= 1)
      for _, raw in ipairs { "4111111111111111", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "MII" } do
        assert.is_nil(f.scan_matches:find(raw, 1, true))
      end
    end
    -- undo: back where it was, tombstone gone
    local undo = assert(governance.undo(runtime.store(), function() return box end, q[1].id, "t"))
    assert.equal("ok", undo.result)
    assert.is_nil(box_t:path_of(box_t:find_file(q[1].target_id)):match("^/cachost quarantine/"))
    -- and the policy does not quarantine it again on the next scan
    assert(select(2, runtime.sync(box, { streams = { "files" } })))
    assert.is_nil(box_t:path_of(box_t:find_file(q[1].target_id)):match("^/cachost quarantine/"))
    -- nor when it asks again later: an action an operator undid is held, not repeated
    local again = assert(governance.act { store = runtime.store(), instance = box, action = "quarantine_file",
      target = q[1].target_id, policy = "sensitive_file_shared", correlation_id = "again-after-undo" })
    assert.equal("held", again.mode)
    assert.matches("an operator undid quarantine_file on this target", again.error)
  end)
end)

-- Automatic actions racing each other: the limit is checked and the action recorded (pending) in one
-- transaction before the call goes out, so concurrent scans cannot all pass the same check.
describe("governance limits and interrupted actions", function()
  local tenant, srv, inst, saved_limits
  local function writes(path)       -- what the sandbox really received (not what cachost says it sent)
    local n = 0
    for _, r in ipairs(tenant.log) do
      if r.method == "POST" and r.path:find(path, 1, true) and r.status ~= "reset" then n = n + 1 end
    end
    return n
  end
  local function active_users(n)
    return runtime.store().db:query([[SELECT * FROM users WHERE instance_id = ? AND status = 'active'
      AND deleted_at IS NULL ORDER BY ext_id LIMIT ?]], inst.id, n)
  end
  setup(function()
    host.home = tmp_home()
    package.loaded.runtime = nil
    runtime = require "runtime"
    tenant = require("sandbox.okta").new { seed = 12, users = 90, events_per_day = 5 }
    srv = require("helpers").serve(tenant)
    inst = add("okta", "burst", { domain = "x", base_url = srv.url, insecure_loopback = true }, { api_token = tenant.token })
    assert(select(2, runtime.sync(inst, { streams = { "users" } })))
    saved_limits = governance.limits
  end)
  teardown(function() governance.limits = saved_limits; srv:close() end)

  it("lets exactly the per-policy limit reach the provider when 15 actions race; the rest are held with an alert", function()
    governance.limits = { per_policy_per_hour = 10, global_per_hour = 50, max_user_share = 1 }
    local users = active_users(15)
    assert.equal(15, #users)
    local before = writes("/lifecycle/suspend")
    local tasks = {}
    for i, u in ipairs(users) do
      tasks[i] = sched.spawn(governance.act, { store = runtime.store(), instance = inst, action = "suspend_user",
        target = u.ext_id, policy = "burst_policy", params = { reason = "test" } })
    end
    local results = {}
    for i, t in ipairs(tasks) do
      local ok, rec = t:join(60)
      assert.is_true(ok, tostring(rec))
      results[rec.result] = (results[rec.result] or 0) + 1
    end
    assert.equal(10, writes("/lifecycle/suspend") - before)
    assert.equal(10, results.ok)
    assert.equal(5, results.held)
    local db = runtime.store().db
    assert.equal(5, db:query([[SELECT count(*) n FROM governance_actions WHERE policy = 'burst_policy' AND mode = 'held'
      AND error LIKE 'policy limit: 10 actions%']])[1].n)
    assert.equal(5, db:query([[SELECT count(*) n FROM alerts WHERE policy = 'burst_policy'
      AND title LIKE 'governance action held: policy limit%']])[1].n)
    -- nothing stays pending once the calls have answered
    assert.equal(0, db:query("SELECT count(*) n FROM governance_actions WHERE result IN ('pending', 'unknown')")[1].n)
  end)

  -- A task cancelled while the provider is working on its call: the action may have happened.
  local function cancel_in_flight(user, policy)
    local fault = tenant:fault { kind = "slow", path = "/users/" .. user.ext_id .. "/lifecycle/suspend$", delay = 1 }
    local t = sched.spawn(governance.act, { store = runtime.store(), instance = inst, action = "suspend_user",
      target = user.ext_id, policy = policy })
    local deadline = sched.now() + 30
    while fault.hits == 0 and sched.now() < deadline do sched.sleep(0.01) end
    assert.equal(1, fault.hits, "the call reached the provider")
    t:cancel()
    local ok, err = t:join(10)
    assert.is_false(ok)
    assert.equal("cancelled", err)
    local row = runtime.store().db:query([[SELECT * FROM governance_actions WHERE instance_id = ? AND target_id = ?
      AND action = 'suspend_user' ORDER BY id DESC LIMIT 1]], inst.id, user.ext_id)[1]
    -- the provider ends its work on the request (the sandbox's handler goes on without the client)
    deadline = sched.now() + 30
    local function answered()
      for _, r in ipairs(tenant.log) do
        if r.method == "POST" and r.path:find(user.ext_id .. "/lifecycle/suspend", 1, true) then return true end
      end
    end
    while not answered() and sched.now() < deadline do sched.sleep(0.02) end
    assert.is_truthy(answered())
    return row
  end

  it("records an action cancelled with its call in flight as unknown, then a re-fetch settles it as done", function()
    governance.limits = { per_policy_per_hour = 100, global_per_hour = 100, max_user_share = 1 }
    local u = active_users(40)[40]
    local row = cancel_in_flight(u, "cancel_policy")
    assert.equal("unknown", row.result)
    assert.equal("executed", row.mode)
    assert.matches("interrupted after it was sent: .*cancelled", row.error)
    assert.equal("SUSPENDED", tenant:find_user(u.ext_id).status)    -- it did happen
    local counts = assert(governance.reconcile(runtime.store(), inst))
    assert.equal(1, counts.ok)
    row = runtime.store().db:query("SELECT * FROM governance_actions WHERE id = ?", row.id)[1]
    assert.equal("ok", row.result)
    assert.matches("reconciled at .*took effect", row.note)
    assert.equal("suspended", runtime.store().db:query("SELECT status FROM users WHERE instance_id = ? AND ext_id = ?",
      inst.id, u.ext_id)[1].status)
    -- settled: the same action is not sent again
    local again = assert(governance.act { store = runtime.store(), instance = inst, action = "suspend_user",
      target = u.ext_id, policy = "cancel_policy" })
    assert.is_true(again.already)
  end)

  it("settles a cancelled action the provider refused as failed, once past the grace a provider may need", function()
    local u = active_users(41)[41]
    -- deactivated at the provider since the last scan: Okta refuses to suspend it
    local r = assert(http.request { method = "DELETE", url = srv.url .. "/api/v1/users/" .. u.ext_id,
      headers = { Authorization = "SSWS " .. tenant.token } })
    assert.equal(204, r.status)
    local row = cancel_in_flight(u, "cancel_policy")
    assert.equal("unknown", row.result)
    assert.equal("DEPROVISIONED", tenant:find_user(u.ext_id).status)  -- refused: it did not happen
    -- just after the call, an effect not seen yet is not a failure yet
    assert.equal(1, assert(governance.reconcile(runtime.store(), inst)).unknown)
    row = runtime.store().db:query("SELECT * FROM governance_actions WHERE id = ?", row.id)[1]
    assert.equal("unknown", row.result)
    assert.matches("not settled at .*does not show it yet", row.note)
    local grace = governance.RECONCILE_GRACE
    governance.RECONCILE_GRACE = 0
    local counts = governance.reconcile(runtime.store(), inst)
    governance.RECONCILE_GRACE = grace
    assert.equal(1, counts.failed)
    row = runtime.store().db:query("SELECT * FROM governance_actions WHERE id = ?", row.id)[1]
    assert.equal("failed", row.result)
    assert.matches("did not take effect", row.error)
    assert.matches("reconciled at .*does not show it", row.note)
  end)

  -- What a crashed process leaves: a pending row (its call may or may not have reached the provider).
  local function pending_row(user, owner)
    return runtime.store():record_action { instance_id = inst.id, ext_id = crypto.hex(crypto.random(8)),
      action = "suspend_user", target = user.email, target_id = user.ext_id, policy = "crash_policy", mode = "executed",
      result = "pending", created_at = require("store").now(), owner = owner }
  end

  it("settles a pending row whose process is gone, and leaves one whose process still runs", function()
    local users = {}
    for _, u in ipairs(active_users(90)) do
      if tenant:find_user(u.ext_id).status == "ACTIVE" then users[#users + 1] = u end
    end
    local gone, running = users[#users], users[#users - 1]
    -- a process that has ended: its pid names no process with that start time any more
    local dead = assert(tonumber(io.popen("sh -c 'echo $$'"):read("l")))
    local orphan = pending_row(gone, ("%d:1"):format(dead))                 -- and never started at tick 1
    local live = pending_row(running, governance.process(1))        -- init runs as long as the machine
    -- the crashed call had reached the provider
    local r = assert(http.request { method = "POST", url = srv.url .. "/api/v1/users/" .. gone.ext_id .. "/lifecycle/suspend",
      headers = { Authorization = "SSWS " .. tenant.token } })
    assert.equal(200, r.status)
    local counts = assert(governance.reconcile(runtime.store(), inst))
    assert.equal(1, counts.ok)
    local db = runtime.store().db
    local o = db:query("SELECT * FROM governance_actions WHERE id = ?", orphan.id)[1]
    assert.equal("ok", o.result)
    assert.matches("the process sending it ended", o.error)
    assert.matches("took effect", o.note)
    assert.equal("pending", db:query("SELECT result FROM governance_actions WHERE id = ?", live.id)[1].result)
    -- in flight elsewhere: the same action on that target is not sent again meanwhile
    local again = assert(governance.act { store = runtime.store(), instance = inst, action = "suspend_user",
      target = running.ext_id, policy = "crash_policy" })
    assert.is_true(again.already)
    assert.equal(live.id, again.id)
  end)

  it("settles a pending row whose process ended and was not reaped (a zombie)", function()
    local u
    for _, x in ipairs(active_users(90)) do
      if tenant:find_user(x.ext_id).status == "ACTIVE" then u = x end
    end
    -- a child that ends under a parent that never waits for it (sleep): a zombie until that parent ends
    local p = io.popen("exec sh -c 'sleep 0.01 & echo $!; exec sleep 5'")
    local pid = assert(math.tointeger(tonumber(p:read("l"))))
    local stat
    for _ = 1, 500 do
      local f = io.open("/proc/" .. pid .. "/stat")
      stat = f and f:read("a")
      if f then f:close() end
      if stat and stat:match("%) Z ") then break end
      sched.sleep(0.01)
    end
    assert.matches("%) Z ", stat)
    local fields = stat:match("%)%s+(.*)$")
    local parent = fields:match("^%S+%s+(%d+)")                                          -- field 4: ppid
    local start = fields:match(("%S+%s+"):rep(19) .. "(%S+)")                           -- field 22: starttime
    local row = pending_row(u, ("%d:%s"):format(pid, start))
    governance.settle_orphans(runtime.store(), inst.id)
    local r = runtime.store().db:query("SELECT result, error FROM governance_actions WHERE id = ?", row.id)[1]
    os.execute("kill " .. parent .. " 2>/dev/null")      -- the sleep that holds it
    p:close()
    assert.equal("unknown", r.result)
    assert.matches("the process sending it ended", r.error)
    local grace = governance.RECONCILE_GRACE
    governance.RECONCILE_GRACE = 0
    local settled = governance.reconcile(runtime.store(), inst)      -- never sent: settled as failed, out of the next case's way
    governance.RECONCILE_GRACE = grace
    assert.equal(1, settled.failed)
  end)

  it("holds a policy's action while the same one on that target is unknown, and sends it once that did not happen", function()
    local users = {}
    for _, u in ipairs(active_users(90)) do
      if tenant:find_user(u.ext_id).status == "ACTIVE" then users[#users + 1] = u end
    end
    local u = users[1]
    local dead = assert(tonumber(io.popen("sh -c 'echo $$'"):read("l")))
    local lost = pending_row(u, ("%d:1"):format(dead))          -- an operator's call lost with its process
    governance.settle_orphans(runtime.store(), inst.id)
    local limits = governance.limits
    governance.limits = { per_policy_per_hour = 1000, global_per_hour = 1000, max_user_share = 1 }
    local ok, err = pcall(function()
      local w = assert(governance.act { store = runtime.store(), instance = inst, action = "suspend_user",
        target = u.ext_id, policy = "waiting_policy", correlation_id = "waiting-1" })
      assert.equal("held", w.result)
      assert.matches("^waiting: #" .. lost.id .. " ", w.error)
      assert.equal("ACTIVE", tenant:find_user(u.ext_id).status)      -- nothing sent yet
      local grace = governance.RECONCILE_GRACE
      governance.RECONCILE_GRACE = 0
      local counts = governance.reconcile(runtime.store(), inst)
      governance.RECONCILE_GRACE = grace
      assert.equal(1, counts.failed)                                     -- the lost call did not happen ...
      assert.equal("SUSPENDED", tenant:find_user(u.ext_id).status)      -- ... so the policy's was sent
      local row = runtime.store():action(w.id)
      assert.equal("ok", row.result)
      assert.equal("executed", row.mode)
      assert.equal("waiting_policy", row.policy)
    end)
    governance.limits = limits
    assert(ok, err)
  end)
end)
