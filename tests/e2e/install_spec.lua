-- install_spec.lua — `make install PREFIX=...` gives a relocatable cachost: run from outside the source
-- tree it finds its scripts under PREFIX/share/cachost, answers help, runs its demo without touching the
-- user's CACHOST_HOME; `make uninstall` removes exactly what was installed.
local helpers = require "helpers"
local root = (host and host.root) or "."
local procs = require "procs"
local slurp = procs.slurp
local bin = procs.BIN
local build = bin:match("^" .. root:gsub("%p", "%%%0") .. "/([^/]+)/cachost$") or "build"


local function sh(cmd)
  local out = os.tmpname()
  local _, _, rc = os.execute(cmd .. " >'" .. out .. "' 2>&1 </dev/null")
  local s = slurp(out); os.remove(out)
  return rc, s
end

describe("make install", function()
  local tmp
  before_each(function() tmp = helpers.tmp_dir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("installs a relocatable cachost whose demo runs from outside the source tree, and uninstalls it", function()
    local prefix = tmp .. "/opt/cachost"
    local rc, out = sh(("make -s -C '%s' install PREFIX='%s' BUILD='%s'"):format(root, prefix, build))
    assert.equal(0, rc, out)
    local installed = prefix .. "/bin/cachost"
    for _, f in ipairs { "bin/cachost", "share/cachost/scripts/cli.lua", "share/cachost/connectors/okta.lua",
                         "share/cachost/policies/bruteforce.lua", "share/man/man1/cachost.1", "share/cachost/LICENSE",
                         "share/bash-completion/completions/cachost", "share/zsh/site-functions/_cachost",
                         "lib/systemd/system/cachost.service" } do
      assert.truthy(host.stat(prefix .. "/" .. f), f)
    end
    assert.matches("ExecStart=" .. prefix:gsub("%p", "%%%0") .. "/bin/cachost run", slurp(prefix .. "/lib/systemd/system/cachost.service"))
    assert.equal(0, (sh("bash -n '" .. prefix .. "/share/bash-completion/completions/cachost'")))

    -- moved elsewhere, it still finds its own scripts (not the source tree's)
    local moved = tmp .. "/elsewhere"
    assert.equal(0, (sh(("mv '%s' '%s'"):format(prefix, moved))))
    installed = moved .. "/bin/cachost"
    local f = assert(io.open(tmp .. "/root.lua", "wb")); f:write("print(host.root)"); f:close()
    rc, out = sh(("cd / && env -u CACHOST_ROOT '%s' script '%s/root.lua'"):format(installed, tmp))
    assert.equal(0, rc, out)
    assert.equal(moved .. "/share/cachost\n", out)
    rc, out = sh(("cd / && '%s' help"):format(installed))
    assert.equal(0, rc, out); assert.matches("commands:", out)

    local user_home = helpers.tmp_dir()
    f = assert(io.open(user_home .. "/cachost.db", "wb")); f:write("the user's own data"); f:close()
    rc, out = sh(("cd / && env -u CACHOST_ROOT CACHOST_HOME='%s' '%s' demo --dir '%s/demo'"):format(user_home, installed, tmp))
    assert.equal(0, rc, out)
    assert.matches("suspended", out)
    assert.equal("the user's own data", slurp(user_home .. "/cachost.db"))
    os.execute("rm -rf '" .. user_home .. "'")

    rc, out = sh(("make -s -C '%s' uninstall PREFIX='%s'"):format(root, moved))
    assert.equal(0, rc, out)
    rc, out = sh(("find '%s' -type f"):format(moved))
    assert.equal("", out)
  end)
end)
