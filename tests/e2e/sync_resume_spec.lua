-- kill -9 in the middle of a sync, then start again: nothing lost, nothing duplicated.  Runs the real
-- binary against a sandbox tenant in another process.
local BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

local procs = require "procs"
local sh, wait_for = procs.sh, procs.wait_for

describe("sync resumes after kill -9", function()
  local home, dir, sandbox_pid, url

  setup(function()
    dir = os.tmpname(); os.remove(dir); host.mkdir(dir, 448)
    home = dir .. "/home"
    sandbox_pid = sh(("%s sandbox okta --events 60000 > %s/tenants.txt 2>%s/sandbox.log & echo $!"):format(BIN, dir, dir)):match("%d+")
    url = wait_for(dir .. "/tenants.txt", "http://[%d%.:]+", 10):match("(http://[%d%.:]+)")
    local out, code = sh(("CACHOST_HOME=%s CACHOST_SET_API_TOKEN=00sandbox-okta-api-token %s instance add okta --name o "
      .. "--set domain=x --set base_url=%s --set insecure_loopback=true --set initial_days=9 </dev/null"):format(home, BIN, url))
    assert(code == 0, out)
  end)

  teardown(function()
    if sandbox_pid then os.execute("kill " .. sandbox_pid) end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function stored()
    local out = sh(("CACHOST_HOME=%s %s query 'SELECT count(*) AS n, count(DISTINCT ext_id) AS d FROM activities' --format csv")
      :format(home, BIN))
    local n, d = out:match("\n(%d+),(%d+)")
    return tonumber(n), tonumber(d)
  end

  it("keeps every committed page and its cursor, then completes to the tenant's count", function()
    local pid = sh(("CACHOST_HOME=%s %s sync o --stream activities --no-policies >%s/sync1.log 2>&1 & echo $!")
      :format(home, BIN, dir)):match("%d+")
    -- let it commit some pages, then kill it hard
    local deadline = sched.now() + 20
    local n = 0
    while sched.now() < deadline do
      sched.sleep(0.2)
      n = stored() or 0
      if n >= 5000 then break end
    end
    os.execute("kill -9 " .. pid)
    sched.sleep(0.2)
    local partial, distinct = stored()
    assert.is_true(partial >= 5000, "the first sync should have committed pages before the kill")
    assert.equal(partial, distinct)
    assert.equal(0, partial % 1000, "only whole pages are committed (pages of 1000)")

    local out, code = sh(("CACHOST_HOME=%s %s sync o --stream activities --no-policies"):format(home, BIN))
    assert.equal(0, code, out)
    local total, d2 = stored()
    local truth = tonumber(sh(("curl -s %s/_sandbox/count/events"):format(url)):match('"count":(%d+)'))
    assert.equal(truth, total)
    assert.equal(total, d2)
  end)
end)
