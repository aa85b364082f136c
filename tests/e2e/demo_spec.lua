-- demo_spec.lua — `make demo` as a newcomer runs it: the first run on a fresh directory works, and the demo
-- never touches the user's own CACHOST_HOME nor deletes a directory it did not make.
local helpers = require "helpers"
local root = (host and host.root) or "."
local procs = require "procs"
local slurp = procs.slurp


describe("make demo", function()
  local dir, user_home
  before_each(function()
    dir, user_home = helpers.tmp_dir(), helpers.tmp_dir()
    local f = assert(io.open(user_home .. "/cachost.db", "wb")); f:write("the user's own data"); f:close()
  end)
  after_each(function() os.execute(("rm -rf '%s' '%s'"):format(dir, user_home)) end)

  local function demo()
    local out = dir .. "/.out"
    local _, _, rc = os.execute(("CACHOST_TRACE_HTTP='%s/.trace' CACHOST_HOME='%s' CACHOST_DEMO_DIR='%s' sh '%s/scripts/demo.sh' >'%s' 2>&1 </dev/null")
      :format(dir, user_home, dir, root, out))
    return rc, slurp(out)
  end

  it("works the first time in a fresh directory, and leaves the user's CACHOST_HOME alone", function()
    local rc, out = demo()
    assert.equal(0, rc, out)
    assert.matches("suspended", out)                        -- the brute force was acted on
    assert.matches("quarantine_file", out)                  -- the card-number file was quarantined
    assert.matches("suspend_user[^\n]+executed[^\n]+ok[^\n]+locked", out)    -- a ServiceNow admin locked out
    assert.is_nil(out:find("stack traceback", 1, true), out)
    assert.equal("the user's own data", slurp(user_home .. "/cachost.db"))
    assert.truthy(host.stat(dir .. "/demo-home/.cachost-demo"))
    -- every request cachost sent is one its provider documents (tests/fixtures/endpoints)
    local bad, checked = require("endpoints").undocumented(dir .. "/.trace")
    assert.is_true(checked > 1000, "requests traced: " .. checked)
    assert.same({}, bad)
    helpers.figure("demo: %d requests traced, %d to endpoints the providers do not document", checked, #bad)
  end)

  it("refuses to delete a demo-home it did not make", function()
    assert(host.mkdir(dir .. "/demo-home", 448))
    local f = assert(io.open(dir .. "/demo-home/keep", "wb")); f:write("x"); f:close()
    local rc, out = demo()
    assert.equal(1, rc, out)
    assert.matches("was not made by the demo", out)
    assert.equal("x", slurp(dir .. "/demo-home/keep"))
  end)
end)
