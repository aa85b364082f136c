-- workers_spec.lua — several `cachost run` workers on one PostgreSQL store (workers.lua, store/leases.lua):
-- every instance synced by exactly one worker (told apart by the User-Agent each sends, in the sandbox
-- tenants' request logs), the totals exact; a worker killed mid-scan loses its instances to the others
-- once its leases expire, and nothing is lost or duplicated; limits and the kill switch hold across
-- workers.  The sandbox tenants are served from this process; the workers are processes of their own.
local helpers = require "helpers"
local procs = require "procs"
local pgtest = require "pgtest"
local store = require "store"
local instances = require "instances"
local okta = require "sandbox.okta"

local RUN = "run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0"

-- n okta tenants on loopback servers and their instances in a fresh store -> ctx
local function setup(n, size, ttl)
  local home = helpers.tmp_dir()
  local url = pgtest.fresh()
  local st = assert(store.open(url, { home = home }))
  local tenants = {}
  for i = 1, n do
    local t = okta.new { seed = i, users = size, org_name = "org" .. i, events = size }
    local srv = helpers.serve(t)
    tenants[i] = { t = t, srv = srv, name = "org" .. i }
    assert(instances.add(st, "okta", "org" .. i, { domain = "org" .. i .. ".okta.com", base_url = srv.url,
      insecure_loopback = "true", api_token = t.token, full_scan_interval = "86400", poll_interval = "86400",
      hook_secret = "hook-secret-" .. i }))
  end
  return { home = home, url = url, st = st, tenants = tenants,
           env = ("CACHOST_HOME='%s' CACHOST_STORE='%s' CACHOST_LEASE_TTL=%d"):format(home, url, ttl) }
end

local function teardown(c, pids)
  for _, pid in ipairs(pids) do procs.stop(pid) end
  for _, x in ipairs(c.tenants) do x.srv:close() end
  c.st:close()
  os.execute("rm -rf '" .. c.home .. "'")
end

local function count(c, sql, ...) return c.st:query("SELECT count(*) AS n FROM " .. sql, ...)[1].n end

-- waits until every instance has been scanned whole (bounded: a hung worker fails, it is not a measure)
local function wait_scanned(c, seconds)
  local deadline = sched.now() + seconds
  while count(c, "instances WHERE last_scan IS NOT NULL") < #c.tenants do
    if sched.now() > deadline then error("not every instance was scanned: " .. count(c, "instances WHERE last_scan IS NOT NULL")) end
    sched.sleep(0.1)
  end
end

-- the workers that asked a tenant, in the order of their first request: {{worker, first, last}...}
local function askers(t)
  local by, order = {}, {}
  for _, r in ipairs(t.log) do
    local w = r.agent and r.agent:match("worker/(%S+)") or "?"
    if not by[w] then by[w] = { worker = w, first = r.at }; order[#order + 1] = by[w] end
    by[w].last = r.at
  end
  return order
end

-- the store holds exactly the tenant's users, each added once
local function exact(c, x)
  local id = c.st:instance_row(x.name).id
  local truth = x.t:truth()
  assert.equal(#truth.users, count(c, "users WHERE instance_id = ? AND deleted_at IS NULL", id), x.name)
  assert.equal(#truth.users, count(c, "changes WHERE instance_id = ? AND entity = 'users' AND op = 'added'", id), x.name)
  assert.equal(#truth.groups, count(c, "groups WHERE instance_id = ? AND deleted_at IS NULL", id), x.name)
end

describe("workers sharing a PostgreSQL store", function()
  it("three workers sync 60 instances: each once, by one worker, the totals exact", function()
    local c = setup(60, 4, 3)
    local pids, jobs = {}, {}
    for w = 1, 3 do pids[w], jobs[w] = procs.start(RUN, c.env) end
    local ok, err = pcall(function()
      wait_scanned(c, 180)
      local per, per_sync = {}, nil
      for _, x in ipairs(c.tenants) do
        local a = askers(x.t)
        assert.equal(1, #a, x.name .. " was asked by " .. #a .. " workers")
        assert.not_equal("?", a[1].worker)
        per[a[1].worker] = (per[a[1].worker] or 0) + 1
        local lists = 0
        for _, r in ipairs(x.t.log) do if r.path == "/api/v1/users" then lists = lists + 1 end end
        -- the same org size, the same requests: a tenant synced twice would show twice the listings
        per_sync = per_sync or lists
        assert.equal(per_sync, lists, x.name .. " was listed more often than the others")
        exact(c, x)
      end
      local shares = {}
      for _, n in pairs(per) do shares[#shares + 1] = n end
      table.sort(shares)
      print(("# figure: workers: 60 instances shared %s"):format(table.concat(shares, "/")))
      assert.equal(3, #shares)
      -- a webhook reaches a worker that does not hold the instance: verified and re-fetched there
      local x = c.tenants[1]
      local holder = askers(x.t)[1].worker
      local w = 1
      while holder:find(":" .. pids[w] .. ":", 1, true) do w = w + 1 end
      local hooks = procs.wait_for(jobs[w] .. ".err", "webhooks=http://[%d.:]+"):match("webhooks=(http://[%d.:]+)")
      local uid = c.st:query("SELECT ext_id FROM users WHERE instance_id = 1 AND status = 'active' ORDER BY ext_id")[1].ext_id
      assert.equal(200, assert(http.request { method = "POST", url = x.srv.url .. "/api/v1/users/" .. uid .. "/lifecycle/suspend",
        headers = { Authorization = "SSWS " .. x.t.token } }).status)
      local delivery = json.encode { data = { events = { { uuid = "e-1", target = { { type = "User", id = uid } } } } } }
      local r = assert(http.request { method = "POST", url = hooks .. "/webhooks/org1", body = delivery,
        headers = { Authorization = "hook-secret-1", ["Content-Type"] = "application/json" } })
      assert.equal(200, r.status, r.body)
      local deadline = sched.now() + 30
      while c.st:query("SELECT status FROM users WHERE instance_id = 1 AND ext_id = ?", uid)[1].status ~= "suspended" do
        assert(sched.now() < deadline, "the webhook's re-fetch did not land")
        sched.sleep(0.05)
      end
      local fetched_by = {}
      for _, e in ipairs(x.t.log) do
        if e.path == "/api/v1/users/" .. uid then fetched_by[#fetched_by + 1] = e.agent:match("worker/(%S+)") end
      end
      assert.is_true(#fetched_by >= 1)
      assert.matches(":" .. pids[w] .. ":", fetched_by[#fetched_by], 1, true)
      -- an operator's sync of an instance a worker holds is refused, saying which worker
      local out1, code1 = procs.sh(c.env .. " " .. procs.BIN .. " sync org2")
      assert.equal(1, code1, out1)
      assert.matches("locked: instance 'org2' is being synced by worker ", out1)
      -- cachost workers sees them and their leases
      local out = procs.sh(c.env .. " " .. procs.BIN .. " workers --format csv")
      local running = 0
      for _ in out:gmatch(",running,") do running = running + 1 end
      assert.equal(3, running, out)
      -- shutdown gives the leases up
      for _, pid in ipairs(pids) do assert.is_true(procs.stop(pid)) end
      assert.equal(0, count(c, "leases"))
      assert.equal(3, count(c, "workers WHERE stopped_at IS NOT NULL"))
    end)
    teardown(c, pids)
    assert(ok, err)
  end)

  it("a worker that joins later gets its share from the others, without a second sync of any instance", function()
    local c = setup(6, 4, 2)
    local pids = { (procs.start(RUN, c.env)) }
    local ok, err = pcall(function()
      wait_scanned(c, 60)
      pids[2] = procs.start(RUN, c.env)
      local deadline = sched.now() + 30
      while true do
        local by = {}
        for _, l in ipairs(c.st:lease_rows()) do if l.expired == 0 then by[l.worker] = (by[l.worker] or 0) + 1 end end
        local shares = {}
        for _, n in pairs(by) do shares[#shares + 1] = n end
        if #shares == 2 and shares[1] == 3 and shares[2] == 3 then break end
        assert(sched.now() < deadline, "the newcomer did not get its share")
        sched.sleep(0.1)
      end
      for _, x in ipairs(c.tenants) do assert.equal(1, #askers(x.t), x.name .. " was synced again") end
    end)
    teardown(c, pids)
    assert(ok, err)
  end)

  it("a worker killed mid-scan loses its instances to the other once its leases expire: nothing lost or duplicated", function()
    local ttl = 2
    local c = setup(4, 30, ttl)
    -- every answer takes a while, so that a scan is under way when the worker dies
    for _, x in ipairs(c.tenants) do x.t:fault { kind = "slow", delay = 0.15, count = 100000 } end
    local pids = { (procs.start(RUN, c.env)) }
    local ok, err = pcall(function()
      local victim = "worker/%S+:" .. pids[1] .. ":"
      local function mine(x)
        local n = 0
        for _, r in ipairs(x.t.log) do if r.agent and r.agent:match(victim) then n = n + 1 end end
        return n
      end
      -- the first worker alone takes every instance; the second starts once the first is mid-scan
      local deadline = sched.now() + 60
      while true do
        local started = 0
        for _, x in ipairs(c.tenants) do if mine(x) >= 2 then started = started + 1 end end
        if started == #c.tenants then break end
        assert(sched.now() < deadline, "the first worker did not start its scans")
        sched.sleep(0.05)
      end
      pids[2] = procs.start(RUN, c.env)
      sched.sleep(0.2)
      assert.equal(0, count(c, "instances WHERE last_scan IS NOT NULL"))
      local killed = sched.now()
      procs.stop(pids[1], "KILL")
      wait_scanned(c, 120)
      local worst = 0
      for _, x in ipairs(c.tenants) do
        local a = askers(x.t)
        assert.equal(2, #a, x.name)
        assert.matches(":" .. pids[1] .. ":", a[1].worker)
        assert.matches(":" .. pids[2] .. ":", a[2].worker)
        assert.is_true(a[2].first >= a[1].last, x.name .. ": the two workers overlapped")
        worst = math.max(worst, a[2].first - killed)
        exact(c, x)
      end
      print(("# figure: workers: kill -9 mid-scan, instances taken over after %.1f s (lease %d s)"):format(worst, ttl))
      -- the lease expires at most ttl after the last renewal; the survivor looks every ttl/3 and, while the
      -- dead worker still counts as alive (its heartbeat is younger than ttl), takes half at a time
      assert.is_true(worst <= 2 * ttl + 1, "taken over after " .. worst .. " s")
    end)
    teardown(c, pids)
    assert(ok, err)
  end)

  it("holds the action limits across workers acting at once, and the kill switch stops them all", function()
    local c = setup(1, 40, 3)
    local pids = { (procs.start(RUN, c.env)) }
    local ok, err = pcall(function()
      wait_scanned(c, 60)
      procs.stop(pids[1])
      local users = c.st:query("SELECT ext_id FROM users WHERE instance_id = 1 AND status = 'active' ORDER BY ext_id")
      -- a script that suspends users as policy p would, in a process of its own
      local function actor(from, to)
        local ids = {}
        for i = from, to do ids[#ids + 1] = ("%q"):format(users[i].ext_id) end
        local file = c.home .. ("/act%d.lua"):format(from)
        local f = assert(io.open(file, "w"))
        f:write(([[
local st = require("runtime").store()
local inst = require("instances").instance(st, "org1")
sched.spawn(function()
  for _, id in ipairs { %s } do
    local rec, err = require("governance").act { store = st, instance = inst, action = "suspend_user", target = id, policy = "p" }
    print(rec and rec.mode or ("error: " .. tostring(err)))
  end
end)
]]):format(table.concat(ids, ", ")))
        f:close()
        return procs.start("script " .. file, c.env)
      end
      local a, ja = actor(1, 10)
      local b, jb = actor(11, 20)
      for _, pid in ipairs { a, b } do
        local deadline = sched.now() + 60
        while procs.alive(pid) do assert(sched.now() < deadline, "an actor hung"); sched.sleep(0.05) end
      end
      local outs = procs.slurp(ja .. ".out") .. procs.slurp(jb .. ".out")
      -- at most 10% of the 40 users in an hour: 4 executed, whichever worker asked; the others held
      local limit = math.floor(#c.tenants[1].t:truth().users * 0.10)
      assert.equal(limit, count(c, "governance_actions WHERE mode = 'executed'"), outs)
      assert.equal(20 - limit, count(c, "governance_actions WHERE mode = 'held'"))
      local sent = 0
      for _, r in ipairs(c.tenants[1].t.log) do if r.path:match("/lifecycle/suspend$") then sent = sent + 1 end end
      assert.equal(limit, sent)
      -- the kill switch, set once, holds every worker's actions
      local out, code = procs.sh(c.env .. " " .. procs.BIN .. " governance pause")
      assert.equal(0, code, out)
      local _, jc = actor(21, 21)
      procs.wait_for(jc .. ".rc", "%d", 60)
      assert.matches("held", procs.slurp(jc .. ".out"))
      assert.equal(1, count(c, "governance_actions WHERE mode = 'held' AND error LIKE '%paused%'"))
      assert.equal(limit, count(c, "governance_actions WHERE mode = 'executed'"))
    end)
    teardown(c, pids)
    assert(ok, err)
  end)
end)
