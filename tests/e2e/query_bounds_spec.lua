-- query_bounds_spec.lua — `cachost query` cannot run forever (issue 10, defect 2, SQLite part): the work
-- SQLite does is bounded by --timeout, and SIGTERM stops a statement the event loop cannot interrupt.
local helpers = require "helpers"
local procs = require "procs"
local BIN, sh = procs.BIN, procs.sh

local ENDLESS = "'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c'"

describe("cachost query bounds its work", function()
  local dir, home
  setup(function()
    dir = helpers.tmp_dir()
    home = dir .. "/home"
    local out, code = sh(("CACHOST_HOME=%s %s %s instance add test --name a --set domain=x --set api_token=y")
      :format(home, helpers.FIXTURE_APPS, BIN))
    assert(code == 0, out)
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  -- `timeout 60` only keeps a broken build from hanging the suite
  local function query(args)
    return sh(("CACHOST_HOME=%s timeout -s KILL 60 %s query %s"):format(home, BIN, args))
  end

  it("stops an endless recursive CTE after --timeout seconds, in one line", function()
    local out, code = query(ENDLESS .. " --timeout 1")
    assert.equal(1, code)
    assert.equal("cachost: query stopped: it worked longer than 1 s (--timeout SECONDS, 0 for no bound)\n", out)
    -- the bound is on work, a long result that streams is not cut short by a generous one
    out, code = query("'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) "
      .. "SELECT count(*) AS n FROM c' -f csv -t 30")
    assert.equal(0, code, out)
    assert.equal("n\n100000\n", out)
  end)

  it("refuses a --timeout that is not seconds", function()
    local out, code = query("'SELECT 1' --timeout soon")
    assert.equal(2, code)
    assert.matches("^cachost query: %-%-timeout wants seconds", out)
  end)

  it("stops at the first SIGTERM, even inside SQLite", function()
    local pid = procs.spawn(("CACHOST_HOME=%s %s query %s"):format(home, BIN, ENDLESS), dir .. "/q.out")
    -- once it has computed for a while it is inside the statement (starting takes far less CPU)
    local deadline = sched.now() + 30
    while (procs.cpu(pid) or 0) < 0.5 and sched.now() < deadline do sched.sleep(0.05) end
    assert.is_true(procs.stop(pid, "TERM", 10), "one SIGTERM did not stop the query")
    assert.equal("cachost: query stopped by a signal\n", procs.slurp(dir .. "/q.out"))
  end)
end)
