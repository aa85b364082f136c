-- policy_cli_spec.lua — `cachost policy test` replays stored data and leaves no trace (no alert, action,
-- window or switch written); a policy is named by file or by name; `policy validate` and `test` refuse a
-- match on a field the rows do not have, with the likely one.
local helpers = require "helpers"
local procs = require "procs"
local slurp, bin = procs.slurp, procs.BIN

describe("cachost policy test", function()
  local home, pid
  before_each(function() home = helpers.tmp_dir() end)
  after_each(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.execute("rm -rf '" .. home .. "'")
  end)

  local function run(args)
    local out, code = procs.sh(("CACHOST_HOME='%s' %s %s"):format(home, bin, args))
    return code, out
  end

  local TABLES = { "alerts", "governance_actions", "policy_state", "policies", "deliveries" }
  local function counts()
    local c = {}
    for _, t in ipairs(TABLES) do
      local _, out = run(("query 'SELECT count(*) AS n FROM %s' -f csv"):format(t))
      c[t] = out
    end
    local _, out = run("query 'SELECT count(*) AS n FROM files WHERE scanned_at IS NOT NULL' -f csv")
    c.scans = out
    return c
  end

  it("replays a brute force without writing anything, by file or by name", function()
    pid = procs.spawn(("CACHOST_HOME='%s' %s sandbox okta --size 8 --events 20"):format(home, bin), home .. "/sandbox")
    local line = procs.wait_for(home .. "/sandbox", "CACHOST_SET_API_TOKEN=[^\n]+instance add[^\n]+\n")
    local url, token = line:match("okta\tokta\t(%S+)\t(%S+)")
    local out, code = procs.sh(("CACHOST_HOME='%s' CACHOST_SET_API_TOKEN=%s %s instance add okta --name acme "
      .. "--set domain=acme.okta.com --set base_url=%s --set insecure_loopback=true </dev/null"):format(home, token, bin, url))
    assert.equal(0, code, out)
    code, out = run("sync acme --no-policies")
    assert.equal(0, code, out)
    local _, users = run("query \"SELECT email FROM users WHERE status = 'active' ORDER BY email LIMIT 1\" -f csv")
    local victim = users:match("\n(%S+)")
    procs.sh(("curl -s -X POST %s/_sandbox/bruteforce -d 'login=%s&failures=12'"):format(url, victim))
    code, out = run("sync acme --no-policies --stream activities")
    assert.equal(0, code, out)
    local before = counts()
    for _, which in ipairs { "bruteforce", host.root .. "/policies/bruteforce.lua" } do
      code, out = run("policy test " .. which)
      assert.equal(0, code, out)
      assert.matches("suspend_user", out)
      assert.matches("nothing was written", out)
      assert.same(before, counts(), which)
    end
  end)

  it("refuses a match on a field the rows do not have, in validate and test", function()
    local f = assert(io.open(home .. "/typo.lua", "wb"))
    f:write([[return policy { name = "typo", severity = "high", on = "activity",
      match = { kind = "signin", outcom = "failure" } }]])
    f:close()
    for _, sub in ipairs { "validate", "test" } do
      local code, out = run(("policy %s '%s/typo.lua'"):format(sub, home))
      assert.equal(1, code, out)
      assert.matches("match%.outcom: rows of activities have no field 'outcom' %(did you mean 'outcome'%?%)", out)
    end
    local code, out = run("policy validate bruteforce")
    assert.equal(0, code, out)
    assert.matches("bruteforce: ok", out)
    code, out = run("policy test brutforce")
    assert.equal(1, code)
    assert.matches("did you mean 'bruteforce'", out)
  end)
end)
