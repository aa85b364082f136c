-- sandbox_cli_spec.lua — `cachost sandbox` tells a newcomer the exact `cachost instance add` command of each
-- tenant: run as printed, each instance syncs every stream.
local helpers = require "helpers"
local procs = require "procs"
local slurp = procs.slurp
local bin = procs.BIN


describe("cachost sandbox", function()
  local home, pid
  before_each(function() home = helpers.tmp_dir() end)
  after_each(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.execute("rm -rf '" .. home .. "'")
  end)

  it("prints for each tenant the instance add command that connects to it", function()
    local p = assert(io.popen(("CACHOST_HOME='%s' %s sandbox okta github:acme box microsoft --size 5 --events 20 >'%s/out' 2>'%s/add' & echo $!")
      :format(home, bin, home, home)))
    pid = p:read("l"); p:close()
    for _ = 1, 200 do
      if select(2, slurp(home .. "/out"):gsub("\n", "")) >= 4 then break end
      sched.sleep(0.05)
    end
    local lines = {}
    for line in slurp(home .. "/add"):gmatch("[^\n]+") do
      if line:match("^  CACHOST_SET_") then lines[#lines + 1] = line:gsub("^  ", ""):gsub(" cachost ", " " .. bin .. " ", 1) end
    end
    assert.equal(5, #lines, slurp(home .. "/add"))
    -- --test keeps an instance only when its credentials work
    local okta = lines[1]
    local wrong = okta:gsub("^CACHOST_SET_API_TOKEN=%S+", "CACHOST_SET_API_TOKEN=wrong-token"):gsub("%-%-name %S+", "--name tried")
    local _, _, rc = os.execute(("CACHOST_HOME='%s' %s --test >'%s/o' 2>&1 </dev/null"):format(home, wrong, home))
    assert.equal(1, rc, slurp(home .. "/o"))
    assert.matches("the instance was not added", slurp(home .. "/o"))
    os.execute(("CACHOST_HOME='%s' %s instance list >'%s/o' 2>&1"):format(home, bin, home))
    assert.is_nil(slurp(home .. "/o"):find("tried", 1, true))
    _, _, rc = os.execute(("CACHOST_HOME='%s' %s --test >'%s/o' 2>&1 </dev/null"):format(home, okta:gsub("%-%-name %S+", "--name tried"), home))
    assert.equal(0, rc, slurp(home .. "/o"))
    assert.matches("credentials work", slurp(home .. "/o"))
    for _, line in ipairs(lines) do
      local _, _, rc = os.execute(("CACHOST_HOME='%s' %s >/dev/null 2>&1 </dev/null"):format(home, line))
      assert.equal(0, rc, line)
      local name = line:match("%-%-name (%S+)")
      local out = home .. "/sync"
      local tty = name == "sandbox-box"      -- on a terminal, to see the content scans' progress too
      local cmd = ("%s sync %s"):format(bin, name)
      _, _, rc = os.execute(("CACHOST_HOME='%s' %s >'%s' 2>&1"):format(home, tty and ("script -qec '" .. cmd .. "' /dev/null") or cmd, out))
      assert.equal(0, rc, name .. ": " .. slurp(out))
      assert.is_nil(slurp(out):find(" error ", 1, true), slurp(out))
      if tty then
        assert.matches("\27%[Ksandbox%-box files: %d+ pages?, %d+ rows, %d+ rows/s, %d+ files scanned %([%d.]+ MB%)", slurp(out))
      else
        assert.is_nil(slurp(out):find("rows/s", 1, true), "progress in a pipe")
      end
    end
    -- on a terminal, progress: pages, rows and rate of the stream being read
    local _, _, rc = os.execute(("CACHOST_HOME='%s' script -qec \"%s sync tried\" /dev/null >'%s/tty' 2>&1"):format(home, bin, home))
    assert.equal(0, rc, slurp(home .. "/tty"))
    assert.matches("\27%[Ktried users: %d+ pages?, %d+ rows, %d+ rows/s", slurp(home .. "/tty"))
  end)
end)
