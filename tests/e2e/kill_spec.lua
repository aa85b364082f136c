-- kill -9 at random points: full and incremental syncs of every connector (okta, github, box, office365,
-- azure), the daemon, and governance actions (an operator's `act`, a policy's automatic suspension),
-- each killed at a uniform random fraction of its clean duration, then restarted to completion; the
-- store must then equal the sandbox's ground truth.  The tenants run in their own process, so they
-- survive the kills; small tenants serving pages of 10 give many commit points.
--   CACHOST_KILLS=N       kills (default 50, what `make test` runs; `make kills` runs 500)
--   CACHOST_KILL_SEED=N   the seed of the kill points (default 1)
--   CACHOST_KILL_ROUNDS=  only these kinds of round: full,incremental,daemon,act,policy (default all)
--   CACHOST_KILL_KEEP=1   keep the homes, logs and tenants' output (the directory is printed)
local helpers = require "helpers"
local T = require "sandbox.tenant"

local KILLS = math.tointeger(tonumber(os.getenv("CACHOST_KILLS") or "")) or 50
local SEED = math.tointeger(tonumber(os.getenv("CACHOST_KILL_SEED") or "")) or 1
local ENTITIES = { "users", "groups", "group_members", "privileges", "activities", "files", "file_permissions", "app_grants" }
local INVENTORY = { activities = false }      -- every other entity has deleted_at

local procs = require "procs"
local sh, BIN = procs.sh, procs.BIN

-- Start a command in the background -> its pid (the shell execs it, so $! is the command itself).
local function spawn(cmd, log, out)
  local p = io.popen(("%s >>%s 2>>%s </dev/null & echo $!"):format(cmd, out or log, log))
  local pid = math.tointeger(tonumber(p:read("l")))
  p:close()
  return assert(pid, "could not start " .. cmd)
end

-- Running (not gone, not a zombie waiting for init to reap it).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("a")
  f:close()
  local state = s:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function wait_gone(pid)
  local deadline = sched.now() + 20
  while alive(pid) do
    assert(sched.now() < deadline, "process " .. pid .. " did not end")
    sched.sleep(0.01)
  end
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

describe("kill -9 at random points", function()
  local dir, sandboxes, tenants = nil, {}, {}
  local K, R            -- the killed home and a reference home (one clean sync: truth for Microsoft)
  local rng = T.rng(SEED, "kills")
  local stats = { kills = 0, syncs = 0, actions = 0, missed = 0, lost = 0, duplicated = 0, extra = 0,
                  problems = {}, alert_problems = {}, action_problems = {}, alerts_checked = 0, actions_checked = 0, executed = 0 }

  local function cachost(home, args) return sh(("CACHOST_HOME=%s %s %s"):format(home, BIN, args)) end
  local function must(home, args)
    local out, code = cachost(home, args)
    assert(code == 0, args .. ": " .. out)
    return out
  end

  local function get_json(url, method, body)
    local res = assert(http.request { method = method or "GET", url = url, body = body, timeout = 30,
      headers = body and { ["content-type"] = "application/x-www-form-urlencoded" } or nil })
    assert(res.status == 200, url .. ": " .. res.status .. " " .. res.body)
    return json.decode(res.body)
  end

  -- Rows of an instance in a home, by entity: {live = {ext_id = true}, deleted = {...}, rows = n, distinct = n}.
  local function stored(home, name)
    local db = assert(sqlite.open(home .. "/cachost.db", { readonly = true, busy_timeout = 10000 }))
    local out = {}
    for _, e in ipairs(ENTITIES) do
      local del = INVENTORY[e] == false and "NULL" or "e.deleted_at"
      local rows = db:query(("SELECT e.ext_id, %s AS deleted_at FROM %s e JOIN instances i ON i.id = e.instance_id WHERE i.name = ?")
        :format(del, e), name)
      local r = { live = {}, deleted = {}, rows = #rows, distinct = 0 }
      for _, row in ipairs(rows) do
        if r.live[row.ext_id] == nil and r.deleted[row.ext_id] == nil then r.distinct = r.distinct + 1 end
        if row.deleted_at ~= nil and row.deleted_at ~= sqlite.null then r.deleted[row.ext_id] = true else r.live[row.ext_id] = true end
      end
      out[e] = r
    end
    db:close()
    return out
  end

  -- Ground truth of an instance: its tenant's /_sandbox/truth, or (the Microsoft tenant, which has none)
  -- the live rows of the reference home, never killed, synced again now: the tenant records a sign-in
  -- for every token it issues, so its logs grow with every instance that connects.
  local function truth(inst)
    if inst.tenant.truth_url then
      local t = get_json(inst.tenant.truth_url)
      local out = {}
      for _, e in ipairs(ENTITIES) do out[e] = set_of(t[e]) end
      return out, t
    end
    must(R, "sync " .. inst.name)
    inst.reference = stored(R, inst.name)
    local out = {}
    for e, r in pairs(inst.reference) do out[e] = r.live end
    return out
  end

  -- Compare one instance's rows in the killed home with its truth; count and describe what differs.
  local function check(inst, what)
    local want = truth(inst)
    local have = stored(K, inst.name)
    for _, e in ipairs(ENTITIES) do
      local h, w = have[e], want[e]
      local lost, extra, revived = {}, {}, {}
      for id in pairs(w) do
        if not h.live[id] then lost[#lost + 1] = id end
        if h.deleted[id] then revived[#revived + 1] = id end
      end
      for id in pairs(h.live) do if not w[id] then extra[#extra + 1] = id end end
      local dup = h.rows - h.distinct
      stats.lost, stats.duplicated, stats.extra = stats.lost + #lost, stats.duplicated + dup, stats.extra + #extra
      if #lost + #extra + dup > 0 then
        stats.problems[#stats.problems + 1] = ("%s, %s.%s: %d lost (%d marked deleted) %s, %d not in the tenant %s, %d duplicated")
          :format(what, inst.name, e, #lost, #revived, table.concat(lost, " ", 1, math.min(3, #lost)), #extra,
            table.concat(extra, " ", 1, math.min(3, #extra)), dup)
      end
    end
  end

  local INSTANCES = {}

  setup(function()
    dir = helpers.tmp_dir()
    K, R = dir .. "/killed", dir .. "/reference"
    if os.getenv("CACHOST_KILL_KEEP") then print("# kill suite directory: " .. dir) end
    -- Okta, GitHub and Box keep real time (governance adds events as it happens); the Microsoft tenant's
    -- Management Activity content appears as time passes, so its clock is frozen for a fixed truth.
    -- Okta has more users: each governance round takes a fresh victim (50 kills never run out of them).
    local common = "--events 600 --page-max 10 --rate-limit 1000000"
    local sandbox_procs = { { "okta --size 45", 1 }, { "github:acme box --size 30", 2 }, { "microsoft --frozen --size 30", 1 } }
    for i, p in ipairs(sandbox_procs) do
      local out = ("%s/tenants%d.txt"):format(dir, i)
      sandboxes[#sandboxes + 1] = spawn(("exec %s sandbox %s %s --seed %d"):format(BIN, p[1], common, SEED + i), dir .. "/sandbox.log", out)
      for line in procs.wait_for(out, ("[^\n]*\n"):rep(p[2]), 20):gmatch("[^\n]+") do
        local app, name, url, cred = line:match("^(%S+)\t(%S+)\t(%S+)\t(.*)$")
        local t = { app = app, url = url, cred = cred }
        for k, v in cred:gmatch("([%w_]+)=(%S+)") do t[k] = v end
        if app ~= "microsoft" then t.truth_url = url .. "/_sandbox/truth" end
        tenants[app] = t
      end
    end
    local o, g, b, m = tenants.okta, tenants.github, tenants.box, tenants.microsoft
    -- initial_days past the tenants' history: a complete sync holds every event the tenant has
    INSTANCES = {
      { name = "o", tenant = o, env = "CACHOST_SET_API_TOKEN=" .. o.cred,
        add = "okta --set domain=x --set base_url=" .. o.url },
      { name = "g", tenant = g, env = "CACHOST_SET_TOKEN=" .. g.cred,
        add = "github --set org=acme --set base_url=" .. g.url },
      { name = "b", tenant = b, env = "CACHOST_SET_CLIENT_SECRET=" .. b.client_secret,
        add = ("box --set auth=client_credentials --set client_id=%s --set enterprise_id=%s --set base_url=%s/2.0 "
          .. "--set upload_base_url=%s/api/2.0 --set oauth_base_url=%s"):format(b.client_id, b.enterprise_id, b.url, b.url, b.url) },
      { name = "m", tenant = m, env = "CACHOST_SET_CLIENT_SECRET=" .. m.client_secret,
        add = ("office365 --set tenant_id=%s --set client_id=%s --set base_url=%s"):format(m.tenant_id, m.client_id, m.url) },
      { name = "a", tenant = m, env = "CACHOST_SET_CLIENT_SECRET=" .. m.client_secret,
        add = ("azure --set tenant_id=%s --set client_id=%s --set base_url=%s"):format(m.tenant_id, m.client_id, m.url) },
    }
    for _, home in ipairs { K, R } do
      for _, inst in ipairs(INSTANCES) do
        local out, code = sh(("%s CACHOST_HOME=%s %s instance add %s --name %s --set insecure_loopback=true --set initial_days=400 "
          .. "--set full_scan_interval=1 --set poll_interval=1 </dev/null"):format(inst.env, home, BIN, inst.add, inst.name))
        assert(code == 0, out)
      end
    end
    -- the shipped bruteforce policy, for Okta only (the Microsoft tenant's sign-ins would spend its
    -- limits), in enforce mode
    assert(host.mkdir(K .. "/policies", 448))
    local f = assert(io.open(K .. "/policies/kill_bruteforce.lua", "w"))
    f:write([[return policy {
  name = "Repeated failed Okta sign-ins followed by a success", severity = "high", on = "activity",
  match = { kind = "signin", outcome = "failure", app = "Okta" },
  repeated = { count = 5, within = "10m", by = "actor" },
  followed_by = { kind = "signin", outcome = "success", app = "Okta" },
  alert = "{actor} signed in after {count} failed attempts", actions = { "alert", "suspend_user" }, mode = "enforce",
}
]])
    f:close()
    -- Clean durations: a first (full) sync and a second (incremental) one of each instance, in the
    -- reference home; its rows are the truth of the Microsoft instances.
    for _, inst in ipairs(INSTANCES) do
      local t0 = sched.now()
      must(R, "sync " .. inst.name)
      inst.full = sched.now() - t0
      t0 = sched.now()
      must(R, "sync " .. inst.name)
      inst.incremental = sched.now() - t0
      inst.reference = stored(R, inst.name)
    end
  end)

  teardown(function()
    for _, pid in ipairs(sandboxes) do os.execute("kill " .. pid) end
    if dir and not os.getenv("CACHOST_KILL_KEEP") then os.execute("rm -rf '" .. dir .. "'") end   -- kept: to look at
  end)

  it("a clean sync of each tenant equals its ground truth (the suite's yardstick)", function()
    for _, inst in ipairs(INSTANCES) do
      if inst.tenant.truth_url then
        local want = truth(inst)
        for _, e in ipairs(ENTITIES) do
          local have = inst.reference[e].live
          for id in pairs(want[e]) do assert(have[id], ("%s.%s: %s missing from a clean sync"):format(inst.name, e, id)) end
          for id in pairs(have) do assert(want[e][id], ("%s.%s: %s not in the tenant"):format(inst.name, e, id)) end
        end
      end
    end
  end)

  -- Kill `cmd` (in home K) at a uniform random fraction of `duration` -> true if it was still running.
  local function kill_during(cmd, duration)
    local pid = spawn(("CACHOST_HOME=%s exec %s %s"):format(K, BIN, cmd), dir .. "/killed.log")
    local at = rng:float() * duration
    sched.sleep(at)
    local hit = alive(pid)
    stats.last = hit and ("killed %.3f s in"):format(at) or "ran to its end"
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    wait_gone(pid)
    if hit then stats.kills = stats.kills + 1 else stats.missed = stats.missed + 1 end
    return hit
  end

  local function actions_taken()
    local db = assert(sqlite.open(K .. "/cachost.db", { readonly = true, busy_timeout = 10000 }))
    local n = db:query("SELECT count(*) n FROM governance_actions")[1].n
    db:close()
    return n
  end

  -- Sync each instance to completion; again while the sync's policies acted (in enforce mode the
  -- bruteforce policy suspends users, which adds events to logs that sync had already read).
  local function resync(names)
    for _, n in ipairs(names) do
      for _ = 1, 5 do
        local before = actions_taken()
        must(K, "sync " .. n)
        if actions_taken() == before then break end
      end
    end
  end

  -- Okta users fit for governance: active, not admins, not used since the pool was last refilled.  When
  -- none is left, the operator lifts the suspensions and every user serves again (counts are deltas).
  local used = {}
  local function next_victim()
    for _ = 1, 2 do
      local db = assert(sqlite.open(K .. "/cachost.db", { readonly = true, busy_timeout = 10000 }))
      -- Okta suspends ACTIVE users only (not PASSWORD_EXPIRED or RECOVERY, which cachost calls active)
      local rows = db:query([[SELECT u.ext_id, u.email, json_extract(unzstd(u.raw), '$.status') AS status FROM users u
        JOIN instances i ON i.id = u.instance_id
        WHERE i.name = 'o' AND coalesce(u.is_admin, 0) = 0 AND u.deleted_at IS NULL ORDER BY u.ext_id]])
      db:close()
      for _, r in ipairs(rows) do
        if r.status == "ACTIVE" and not used[r.ext_id] then used[r.ext_id] = true; return r end
      end
      for id in pairs(used) do cachost(K, "act o unsuspend_user " .. id) end
      used = {}
      resync { "o" }
    end
  end

  -- What the killed home recorded about a user (alerts of the Okta bruteforce policy, suspend_user
  -- actions) and how often the tenant really suspended them.
  local function governance_of(user)
    local db = assert(sqlite.open(K .. "/cachost.db", { readonly = true, busy_timeout = 10000 }))
    local g = { alerts = db:query([[SELECT count(*) n FROM alerts a JOIN instances i ON i.id = a.instance_id
      WHERE i.name = 'o' AND a.policy = 'kill_bruteforce' AND json_extract(a.evidence, '$.row.actor') = ?]], user.email)[1].n,
      actions = db:query([[SELECT g.mode, g.result, g.error FROM governance_actions g JOIN instances i ON i.id = g.instance_id
      WHERE i.name = 'o' AND g.action = 'suspend_user' AND g.target_id = ? AND g.mode <> 'dry-run' ORDER BY g.id]], user.ext_id) }
    db:close()
    local _, t = truth(INSTANCES[1])
    g.calls = t.lifecycle and t.lifecycle[user.ext_id .. ":suspend"] or 0
    return g
  end

  -- The round's changes to a user's governance record -> alerts, action rows (new ones), provider calls.
  local function since(before, after)
    local rows = {}
    for k = #before.actions + 1, #after.actions do rows[#rows + 1] = after.actions[k] end
    return after.alerts - before.alerts, rows, after.calls - before.calls
  end
  local function describe_rows(rows)
    local d = {}
    for _, a in ipairs(rows) do d[#d + 1] = ("%s/%s%s"):format(a.mode, tostring(a.result), a.error and (" (" .. a.error .. ")") or "") end
    return table.concat(d, ", ")
  end

  -- One kill of each kind, in turn; the kill points are random.
  local ROUNDS = {}
  for i, inst in ipairs({ "o", "g", "b", "m", "a" }) do
    ROUNDS[#ROUNDS + 1] = { kind = "full", inst = i, name = inst }
    ROUNDS[#ROUNDS + 1] = { kind = "incremental", inst = i, name = inst }
  end
  ROUNDS[#ROUNDS + 1] = { kind = "daemon" }
  -- governance thrice a cycle: its windows (the provider's answer -> the record; the commit of a page ->
  -- its evaluation) are a few milliseconds of a short process, so they need more kills to be hit
  local act, pol = { kind = "act" }, { kind = "policy" }   -- one each: the first round measures
  for _ = 1, 3 do ROUNDS[#ROUNDS + 1] = act; ROUNDS[#ROUNDS + 1] = pol end
  local only = os.getenv("CACHOST_KILL_ROUNDS")          -- e.g. "act,policy": a campaign of those kinds
  if only then
    local keep = {}
    for _, r in ipairs(ROUNDS) do if ("," .. only .. ","):find("," .. r.kind .. ",", 1, true) then keep[#keep + 1] = r end end
    ROUNDS = keep
  end

  local function round(r)
    if r.kind == "full" or r.kind == "incremental" then
      local inst = INSTANCES[r.inst]
      local full = r.kind == "full"
      stats.syncs = stats.syncs + 1
      kill_during("sync " .. inst.name .. (full and " --full" or ""), full and inst.full or inst.incremental)
      resync { inst.name }
      check(inst, ("kill %d (%s sync of %s)"):format(stats.kills + stats.missed, r.kind, inst.name))
    elseif r.kind == "daemon" then
      local longest = 0
      for _, inst in ipairs(INSTANCES) do longest = math.max(longest, inst.full) end
      stats.syncs = stats.syncs + 1
      kill_during("run --listen 127.0.0.1:0", longest + 0.5)
      local names = {}
      for _, inst in ipairs(INSTANCES) do names[#names + 1] = inst.name end
      resync(names)
      for _, inst in ipairs(INSTANCES) do check(inst, ("kill %d (daemon)"):format(stats.kills + stats.missed)) end
    elseif r.kind == "act" then
      -- an operator suspends a user; killed, the action is either not sent, or sent and recorded
      local v = next_victim()
      local before = governance_of(v)
      stats.actions, stats.last = stats.actions + 1, "not killed"
      if r.duration then
        kill_during("act o suspend_user " .. v.ext_id, r.duration)
      else                                   -- the first round measures a clean action
        local t0 = sched.now()
        must(K, "act o suspend_user " .. v.ext_id)
        r.duration = sched.now() - t0
      end
      resync { "o" }
      local _, rows, calls = since(before, governance_of(v))
      stats.actions_checked = stats.actions_checked + 1
      if #rows > 1 or calls > 1 or calls > #rows then
        stats.action_problems[#stats.action_problems + 1] = ("act on %s (%s): %d provider calls, %d recorded: %s")
          :format(v.ext_id, stats.last, calls, #rows, describe_rows(rows))
      end
      check(INSTANCES[1], "kill during act")
    elseif r.kind == "policy" then
      -- failed sign-ins then a success: the policy (enforce) alerts once and suspends once, or holds the
      -- suspension at its limits (10 an hour, a tenth of the users), or fails, and records that once
      -- (the shipped bruteforce policy, in audit mode, plans it too: dry-runs are not counted)
      local v = next_victim()
      local before = governance_of(v)
      stats.actions, stats.last = stats.actions + 1, "not killed"
      get_json(INSTANCES[1].tenant.url .. "/_sandbox/bruteforce", "POST", "login=" .. v.email .. "&failures=6")
      if r.duration then
        kill_during("sync o --stream activities", r.duration)
      else
        local t0 = sched.now()
        must(K, "sync o --stream activities")
        r.duration = sched.now() - t0
      end
      resync { "o" }
      local alerts, rows, calls = since(before, governance_of(v))
      stats.alerts_checked, stats.actions_checked = stats.alerts_checked + 1, stats.actions_checked + 1
      if alerts ~= 1 then
        stats.alert_problems[#stats.alert_problems + 1] = ("bruteforce on %s (%s): %d alerts"):format(v.email, stats.last, alerts)
      end
      local row = rows[1]
      local agrees = #rows == 1 and ((row.result == "ok" and calls == 1) or ((row.mode == "held" or row.result == "failed") and calls == 0))
      if row and row.result == "ok" then stats.executed = stats.executed + 1 end
      if not agrees then
        stats.action_problems[#stats.action_problems + 1] = ("suspension of %s (%s): %d recorded (%s), %d provider calls")
          :format(v.email, stats.last, #rows, describe_rows(rows), calls)
      end
      check(INSTANCES[1], "kill during a policy's action")
    end
  end

  it("kills at random points lose nothing and duplicate nothing", function()
    local i = 0
    while stats.kills < KILLS do
      i = i + 1
      round(ROUNDS[(i - 1) % #ROUNDS + 1])
      assert(i < KILLS * 3, "too many kills missed their process")
    end
    helpers.figure("kills: %d kills over %d syncs and %d actions; %d lost, %d duplicated, alerts once: %s, actions once: %s",
      stats.kills, stats.syncs, stats.actions, stats.lost, stats.duplicated,
      #stats.alert_problems == 0 and "yes" or ("no (" .. #stats.alert_problems .. " of " .. stats.alerts_checked .. ")"),
      #stats.action_problems == 0 and "yes" or ("no (" .. #stats.action_problems .. " of " .. stats.actions_checked .. ")"))
    helpers.figure("kills: governance rounds: %d policy suspensions executed, the others held at the limits and recorded so",
      stats.executed)
    assert(#stats.problems == 0, table.concat(stats.problems, "\n"))
  end)

  it("raises every alert once", function()
    assert(stats.alerts_checked > 0)
    assert(#stats.alert_problems == 0, table.concat(stats.alert_problems, "\n"))
  end)

  -- Both ways an action used to be lost are closed: killed between the alert and the action's pending
  -- row (actions are now planned before the alert is written), and a policy's request on a target whose
  -- same action is unknown (recorded held, waiting, and sent when that one settles as not done).
  -- The second needs a kill at one precise moment (CACHOST_KILLS=100 CACHOST_KILL_SEED=2
  -- CACHOST_KILL_ROUNDS=act,policy found it once): governance_spec holds it deterministically.
  it("records every action once, and the provider agrees", function()
    assert(stats.actions_checked > 0)
    assert(#stats.action_problems == 0, table.concat(stats.action_problems, "\n"))
  end)
end)
