-- machine_spec.lua — the machine misbehaves (issue 10): the disk fills up, another process locks the
-- database, two syncs of one instance start at once, SIGTERM arrives mid-sync, the wall clock jumps.
-- Each case ends with one clear line (or none needed), then a rerun completes to the sandbox's ground
-- truth: nothing lost, nothing duplicated, PRAGMA integrity_check ok.
local helpers = require "helpers"
local procs = require "procs"
local BIN, sh = procs.BIN, procs.sh

local cases, lost, duplicated = 0, 0, 0

describe("the machine misbehaves", function()
  local dir, url, sandbox_pid

  setup(function()
    dir = helpers.tmp_dir()
    url, sandbox_pid = procs.sandbox(dir, "okta --size 600 --events 5000")
  end)

  teardown(function()
    if sandbox_pid then procs.stop(sandbox_pid) end
    os.execute("rm -rf '" .. dir .. "'")
    helpers.figure("machine: %d cases, %d lost, %d duplicated", cases, lost, duplicated)
  end)

  -- a fresh CACHOST_HOME with instance o on the sandbox tenant -> home
  local n_homes = 0
  local function new_home()
    n_homes = n_homes + 1
    local home = ("%s/home%d"):format(dir, n_homes)
    local out, code = sh(("CACHOST_HOME=%s %s instance add okta --name o --set domain=x --set base_url=%s "
      .. "--set insecure_loopback=true --set api_token=00sandbox-okta-api-token --set initial_days=30 </dev/null")
      :format(home, BIN, url))
    assert(code == 0, out)
    return home
  end

  local function cachost(home, args, env)
    return sh(("%s CACHOST_HOME=%s %s %s </dev/null"):format(env or "", home, BIN, args))
  end

  local function fault(f)
    local out = sh(("curl -s -X POST %s/_sandbox/fault -d '%s'"):format(url, json.encode(f)))
    assert(out:match('"ok":true'), out)
  end

  local function truth(what)
    return tonumber(sh(("curl -s %s/_sandbox/count/%s"):format(url, what)):match('"count":(%d+)'))
  end

  -- rows stored and distinct ext_ids of a table (through cachost query: SQLite, never the file itself)
  local function stored(home, tbl)
    local out = cachost(home, ("query 'SELECT count(*) AS n, count(DISTINCT ext_id) AS d FROM %s' -f csv"):format(tbl))
    local n, d = out:match("\n(%d+),(%d+)")
    return tonumber(n), tonumber(d)
  end

  -- after the misbehaviour: a plain rerun completes; the store equals the tenant, and is sound
  local function settles(home, streams)
    local out, code = cachost(home, "sync o --no-policies " .. streams)
    assert.equal(0, code, out)
    for tbl, what in pairs { users = "users", activities = "events" } do
      if streams:find(tbl, 1, true) then
        local n, d = stored(home, tbl)
        local want = truth(what)
        lost = lost + math.max(0, want - d)
        duplicated = duplicated + (n - d)
        assert.equal(want, n, tbl)
        assert.equal(n, d, tbl)
      end
    end
    local db = assert(sqlite.open(home .. "/cachost.db", { create = false }))
    assert.same({ { integrity_check = "ok" } }, db:query("PRAGMA integrity_check"))
    db:close()
    cases = cases + 1
  end

  -- the one line of a command's output that says what went wrong (stdout and stderr interleave)
  local function says(msg, out)
    assert(("\n" .. out):find("\n" .. msg .. "\n", 1, true), "expected the line\n" .. msg .. "\nin\n" .. out)
    local _, errors = ("\n" .. out):gsub("\ncachost: ", "")
    assert.equal(1, errors, out)
  end

  it("disk full: one line, exit 1, the pages committed kept; a rerun with room completes", function()
    local home = new_home()
    -- a quota smaller than the users (600 take 1.2 MB, their raw compressed, the empty schema 0.55 MB): writes
    -- fail with SQLITE_FULL, as on a full disk
    local out, code = cachost(home, "sync o -s users --no-policies", "CACHOST_DB_MAX_MB=0.8")
    assert.equal(1, code, out)
    says("cachost: disk full: " .. home .. "/cachost.db cannot grow: free space and rerun; nothing was lost "
      .. "(every page committed is kept, the next sync goes on from there)", out)
    assert.is_nil(out:find("traceback", 1, true))
    local n, d = stored(home, "users")
    assert.is_true(n < truth("users"))
    assert.equal(0, n % 200, "whole pages only (pages of 200)")
    assert.equal(n, d)
    settles(home, "-s users")
  end)

  it("database locked by another process: waits busy_timeout, then one line; nothing lost", function()
    local home = new_home()
    assert.equal(0, select(2, cachost(home, "sync o -s users --no-policies")))
    -- sqlite3 holds the write lock until the file `release` appears
    local holder = procs.spawn(("printf 'BEGIN EXCLUSIVE;\\nDELETE FROM users WHERE 0;\\n.print locked\\n"
      .. ".shell while [ ! -e %s/release ]; do sleep 0.05; done\\nCOMMIT;\\n' | sqlite3 %s/cachost.db")
      :format(dir, home), dir .. "/holder.out")
    procs.wait_for(dir .. "/holder.out", "locked", 30)
    local out, code = cachost(home, "sync o -s users -s activities --no-policies")
    assert.equal(1, code, out)
    says(("cachost: database locked: another process holds %s/cachost.db past 5000 ms; rerun when it is "
      .. "done; nothing was lost"):format(home), out)
    assert.equal(0, select(2, cachost(home, "query 'SELECT count(*) FROM users'")), "reading goes on meanwhile")
    os.execute("touch " .. dir .. "/release")
    local deadline = sched.now() + 30
    while procs.alive(holder) and sched.now() < deadline do sched.sleep(0.05) end
    assert.is_false(procs.alive(holder), "sqlite3 did not let go")
    os.remove(dir .. "/release")
    settles(home, "-s users -s activities")
  end)

  it("two syncs of one instance: one runs, the other says so in one line", function()
    local home = new_home()
    fault { kind = "slow", delay = 8, count = 1, path = "^/api/v1/users$" }   -- the first sync holds on
    local pid, job = procs.start("sync o -s users --no-policies", "CACHOST_HOME=" .. home)
    procs.wait_for(home .. "/locks/sync-1.lock", "^" .. pid .. "\n", 30)
    local out, code = cachost(home, "sync o -s users --no-policies")
    assert.equal(1, code, out)
    says(("cachost: locked: instance 'o' is being synced by another process (pid %s); try again when it "
      .. "is done"):format(pid), out)
    local rc, both = procs.finish(job, pid, 60)
    assert.equal(0, rc, both)
    settles(home, "-s users")
  end)

  it("SIGTERM mid-sync: stops at once with one line, keeps whole pages, resumes", function()
    local home = new_home()
    -- two pages of the System Log go through, the third is throttled for a minute: the sync waits
    fault { kind = "slow", delay = 0, count = 2, path = "^/api/v1/logs$" }
    fault { kind = "429", retry_after = 60, count = 1, path = "^/api/v1/logs$" }
    local pid, job = procs.start("sync o -s activities --no-policies", "CACHOST_HOME=" .. home)
    local deadline = sched.now() + 60
    while (stored(home, "activities") or 0) < 2000 and sched.now() < deadline do sched.sleep(0.1) end
    os.execute("kill -TERM " .. pid)
    local rc, both = procs.finish(job, pid, 20)
    assert.equal(1, rc, both)
    says("cachost: sync of o stopped by a signal: every page committed is kept; the next sync goes on "
      .. "from there", both)
    local n, d = stored(home, "activities")
    assert.equal(2000, n)
    assert.equal(n, d)
    settles(home, "-s activities")
  end)

  it("the wall clock jumps back a day, then forward two: scans go on, a deletion is still seen, nothing lost", function()
    local lib = sh("ls /usr/lib/*/faketime/libfaketime.so.1"):match("^(%S+)\n")
    assert(lib, "libfaketime is missing (make deps installs faketime)")
    -- a tenant of its own, small, so the daemon's full scans (every second) are quick
    local small_dir = dir .. "/small"
    assert(host.mkdir(small_dir, 448))
    local small_url, small_pid = procs.sandbox(small_dir, "okta --size 20")
    local home = dir .. "/clock"
    local out, code = sh(("CACHOST_HOME=%s %s instance add okta --name o --set domain=x --set base_url=%s "
      .. "--set insecure_loopback=true --set api_token=00sandbox-okta-api-token --set initial_days=30 --set poll_interval=1 "
      .. "--set full_scan_interval=1 </dev/null"):format(home, BIN, small_url))
    assert(code == 0, out)
    -- the daemon's wall clock (CLOCK_REALTIME) follows the file; its monotonic clock is the real one
    local clock = dir .. "/faketime"
    local function set_clock(offset)
      local f = assert(io.open(clock, "w")); f:write(offset, "\n"); f:close()
    end
    set_clock("+0")
    local log = dir .. "/clock-daemon.log"
    -- (an ASan build wants its runtime first among the libraries: told that libfaketime comes first)
    local daemon = procs.spawn(("LD_PRELOAD=%s FAKETIME_TIMESTAMP_FILE=%s FAKETIME_NO_CACHE=1 "
      .. "FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
      .. "CACHOST_HOME=%s %s run --listen 127.0.0.1:0"):format(lib, clock, home, BIN), log)
    local function full_scans()
      return select(2, procs.slurp(log):gsub('msg="scan done" instance=o kind=full', ""))
    end
    local function more_full_scans(n)
      local want = full_scans() + n
      local deadline = sched.now() + 60
      while full_scans() < want and sched.now() < deadline do sched.sleep(0.1) end
      assert(full_scans() >= want, "the daemon stopped scanning:\n" .. procs.slurp(log):sub(-1500))
    end
    local function small_truth(what)
      return tonumber(sh(("curl -s %s/_sandbox/count/%s"):format(small_url, what)):match('"count":(%d+)'))
    end
    local ok, err = pcall(function()
      more_full_scans(1)
      set_clock("-1d")
      more_full_scans(2)
      -- a user deleted at the provider while the clock is a day behind is still marked deleted
      local auth = "-H 'Authorization: SSWS 00sandbox-okta-api-token'"
      local id = json.decode(sh(("curl -s %s '%s/api/v1/users?limit=1'"):format(auth, small_url)))[1].id
      for _ = 1, 2 do sh(("curl -s -X DELETE %s %s/api/v1/users/%s"):format(auth, small_url, id)) end
      local deadline, gone = sched.now() + 60, nil
      repeat
        sched.sleep(0.2)
        gone = cachost(home, ("query \"SELECT count(*) AS n FROM users WHERE ext_id = '%s' AND deleted_at IS NOT NULL\" -f csv")
          :format(id)):match("\n(%d+)")
      until gone == "1" or sched.now() > deadline
      assert.equal("1", gone, "the deletion was not seen after the clock stepped back")
      set_clock("+2d")
      more_full_scans(2)
      -- the System Log is polled apart from the full scans: its last events (the deletion's) arrive by
      -- the next poll, which a loaded machine may delay; wait for it rather than stop before it
      deadline = sched.now() + 60
      while stored(home, "activities") < small_truth("events") and sched.now() < deadline do sched.sleep(0.2) end
    end)
    assert.is_true(procs.stop(daemon, "TERM", 60))
    local want_users, want_events = small_truth("users"), small_truth("events")
    procs.stop(small_pid)
    assert(ok, err)
    -- the store equals the tenant: every live user, every System Log event once
    local users = cachost(home, "query 'SELECT count(*) FROM users WHERE deleted_at IS NULL' -f csv"):match("\n(%d+)")
    local n, d = stored(home, "activities")
    lost = lost + math.max(0, want_events - d)
    duplicated = duplicated + (n - d)
    assert.equal(want_users, tonumber(users))
    assert.equal(want_events, n)
    assert.equal(n, d)
    local db = assert(sqlite.open(home .. "/cachost.db", { create = false }))
    assert.same({ { integrity_check = "ok" } }, db:query("PRAGMA integrity_check"))
    db:close()
    cases = cases + 1
  end)
end)
