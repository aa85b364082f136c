-- store_shared_spec.lua — the daemon and the CLI on one database at once (issue 10, defect 1).  Any
-- descriptor of the database file opened and closed outside SQLite drops the process's POSIX locks; the
-- next process to close then believes it is the last one and checkpoints and deletes the -wal/-shm the
-- others still use: writes vanish, the daemon misses the CLI's changes, indexes go wrong.
local helpers = require "helpers"
local procs = require "procs"
local BIN, sh = procs.BIN, procs.sh

describe("the daemon and the CLI on one store", function()
  local dir, home, url, sandbox_pid, daemon_pid

  local function cli(args)     -- the fixture app "test" known too
    local out, code = sh(("CACHOST_HOME=%s %s %s %s </dev/null"):format(home, helpers.FIXTURE_APPS, BIN, args))
    assert(code == 0, args .. ": " .. out)
    return out
  end

  setup(function()
    dir = helpers.tmp_dir()
    home = dir .. "/home"
    url, sandbox_pid = procs.sandbox(dir, "okta --size 60")
    -- scanned every second, so the daemon writes (and reads through its read-only handle) all along
    cli(("instance add okta --name o --set domain=x --set base_url=%s --set insecure_loopback=true "
      .. "--set api_token=00sandbox-okta-api-token --set poll_interval=1 --set full_scan_interval=1"):format(url))
    daemon_pid = procs.spawn(("CACHOST_HOME=%s %s run --listen 127.0.0.1:0"):format(home, BIN), dir .. "/daemon.log")
    procs.wait_for(dir .. "/daemon.log", 'msg="scan done" instance=o kind=initial', 60)
  end)

  teardown(function()
    if daemon_pid then procs.stop(daemon_pid, "KILL") end
    if sandbox_pid then procs.stop(sandbox_pid) end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("keeps every write of both, the daemon sees the CLI's, and the database stays sound", function()
    local N = 8
    for i = 1, N do
      cli(("instance add test --name t%d --set domain=d%d.test --set api_token=x"):format(i, i))
      cli(("instance edit t%d --set domain=e%d.test"):format(i, i))
      if i % 2 == 0 then cli("instance disable t" .. i) end
      if i % 4 == 0 then cli("instance enable t" .. i) end
      cli("query 'SELECT count(*) FROM users'")
    end
    cli("policy mode new_admin enforce")
    cli("policy disable mass_download")
    cli("governance pause")
    cli("governance resume")
    cli("instance disable o")
    -- the daemon honours the disable: its next scheduled scan of o is skipped
    procs.wait_for(dir .. "/daemon.log", 'msg="instance disabled: not scanning" instance=o', 30)
    assert.is_true(procs.stop(daemon_pid, "TERM", 60), "the daemon did not stop")
    daemon_pid = nil

    local db = assert(sqlite.open(home .. "/cachost.db", { create = false }))
    assert.same({ { integrity_check = "ok" } }, db:query("PRAGMA integrity_check"))
    local got = {}
    for r in db:rows("SELECT name, enabled, settings FROM instances WHERE removed_at IS NULL ORDER BY id") do
      got[#got + 1] = { r.name, r.enabled, json.decode(r.settings).domain }
    end
    local want = { { "o", 0, "x" } }
    for i = 1, N do want[#want + 1] = { "t" .. i, (i % 2 == 1 or i % 4 == 0) and 1 or 0, "e" .. i .. ".test" } end
    assert.same(want, got)
    local pol = {}
    for r in db:rows("SELECT name, enabled, mode FROM policies") do pol[r.name] = { r.enabled, r.mode } end
    assert.equal("enforce", pol.new_admin[2])
    assert.equal(0, pol.mass_download[1])
    -- and the daemon's own writes: every user of the tenant, scanned
    local truth = tonumber(sh(("curl -s %s/_sandbox/count/users"):format(url)):match('"count":(%d+)'))
    assert.equal(truth, db:query("SELECT count(*) n FROM users WHERE deleted_at IS NULL")[1].n)
    db:close()
  end)
end)
