-- store_modes_spec.lua — the database and its -wal and -shm are private (0600) whatever the umask and
-- however CACHOST_HOME came to exist (issue 10, defect 9: created 0644 under a 0755 home).
local helpers = require "helpers"
local procs = require "procs"
local BIN, sh = procs.BIN, procs.sh

describe("the store's files", function()
  local dir, home
  before_each(function()
    dir = helpers.tmp_dir()
    home = dir .. "/home"
    assert(host.mkdir(home, 493))          -- 0755, made by the operator before the first run
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  -- the modes of the three files while a process has the store open (the last close removes -wal/-shm)
  local function modes_while_open()
    local f = assert(io.open(dir .. "/modes.lua", "w"))
    f:write([[
      local st = require("runtime").store()
      assert(st.db:exec("UPDATE instances SET updated_at = updated_at"))
      for _, ext in ipairs { "", "-wal", "-shm" } do
        local s = host.stat(st.path .. ext)
        print(ext, s and ("%o"):format(s.mode) or "missing")
      end
    ]])
    f:close()
    local out, code = sh(("umask 022; CACHOST_HOME=%s %s script %s/modes.lua"):format(home, BIN, dir))
    assert(code == 0, out)
    return out
  end

  it("are created 0600 under umask 022 in a 0755 home", function()
    local out, code = sh(("umask 022; CACHOST_HOME=%s %s %s instance add test --name a --set domain=x --set api_token=y")
      :format(home, helpers.FIXTURE_APPS, BIN))
    assert(code == 0, out)
    assert.equal(384, host.stat(home .. "/cachost.db").mode)
    assert.equal("\t600\n-wal\t600\n-shm\t600\n", modes_while_open())
  end)

  it("are made private when an older version left them readable by others", function()
    assert.equal(0, select(2, sh(("CACHOST_HOME=%s %s instance list"):format(home, BIN))))
    os.execute(("chmod 644 %s/cachost.db"):format(home))
    assert.equal("\t600\n-wal\t600\n-shm\t600\n", modes_while_open())
    assert.equal(384, host.stat(home .. "/cachost.db").mode)
  end)
end)
