-- help_spec.lua — the first minutes of a newcomer: every way of asking for help answers, every command's
-- --help answers, and a mistake is one line (a usage error exits 2, a failure 1), never a Lua traceback.
local helpers = require "helpers"
local procs = require "procs"
local slurp = procs.slurp
local bin = procs.BIN


local home
local function run(args)
  local out, err = home .. "/.out", home .. "/.err"
  local _, _, rc = os.execute(("CACHOST_HOME='%s' %s %s </dev/null >%s 2>%s"):format(home, bin, args, out, err))
  return rc, slurp(out), slurp(err)
end

local function no_trace(s, what)
  assert.is_nil(s:find("stack traceback", 1, true), what .. ": " .. s)
  assert.is_nil(s:find("%.lua:%d+:"), what .. ": " .. s)
end

describe("help", function()
  before_each(function() home = helpers.tmp_dir() end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)

  it("answers cachost help, --help and -h with the list of commands", function()
    for _, a in ipairs { "help", "--help", "-h" } do
      local rc, out, err = run(a)
      assert.equal(0, rc, a .. ": " .. err)
      assert.equal("", err, a)
      assert.matches("commands:", out, a)
      assert.matches("\n  alert ", out, a)
    end
  end)

  it("answers COMMAND --help, COMMAND -h and help COMMAND for every command", function()
    local _, list = run("help")
    local names = {}
    for name in list:gmatch("\n  (%l+) ") do names[#names + 1] = name end
    assert.is_true(#names >= 18, "commands listed: " .. #names)
    for _, name in ipairs(names) do
      for _, a in ipairs { name .. " --help", name .. " -h", "help " .. name } do
        local rc, out, err = run(a)
        assert.equal(0, rc, a .. ": " .. err)
        assert.equal("", err, a)
        assert.matches("usage: cachost", out, a)
        no_trace(out, a)
      end
    end
  end)

  it("says what went wrong in one line, with the promised exit status", function()
    local cases = {
      { "statsu", 2, "did you mean 'status'" },
      { "instance ad", 2, "did you mean 'add'" },
      { "instance add okat --name x", 1, "unknown app 'okat' %(did you mean 'okta'%?%)" },
      { "help statsu", 1, "did you mean 'status'" },
      { "alert show 1", 1, "no alert 1" },
      { "alert frobnicate 1", 2, "expected show ID" },
      { "alerts --format xml", 2, "unknown format 'xml'" },
      { "query 'SELECT 1' --format yaml", 2, "unknown format 'yaml'" },
      { "status no-such", 1, "no instance named 'no%-such'" },
      { "sync no-such", 1, "no instance named 'no%-such'" },
      { "query 'SELECT 1; SELECT 2'", 1, "more than one statement" },
      { "query 'SELECT ?'", 1, "" },
    }
    for _, c in ipairs(cases) do
      local rc, out, err = run(c[1])
      assert.equal(c[2], rc, c[1] .. ": " .. out .. err)
      assert.matches(c[3], err, c[1])
      assert.matches("^cachost", err, c[1])
      no_trace(out .. err, c[1])
      if c[2] == 1 then assert.equal(1, select(2, err:gsub("\n", "")), c[1] .. ": " .. err) end
    end
  end)

  it("reports an error in a user's script as one line naming its file and line; the trace with --debug", function()
    local f = home .. "/broken.lua"
    local h = assert(io.open(f, "w")); h:write("local t = nil\nreturn t.field\n"); h:close()
    local rc, out, err = run("script " .. f)
    assert.equal(1, rc, out .. err)
    assert.matches("broken%.lua:2: attempt to index a nil value", err)
    assert.is_nil(err:find("stack traceback", 1, true), err)
    assert.equal(1, select(2, err:gsub("\n", "")), err)
    rc, _, err = run("--debug script " .. f)
    assert.equal(1, rc)
    assert.matches("stack traceback", err)
  end)

  it("takes --debug before any command", function()
    local rc, out, err = run("--debug help")
    assert.equal(0, rc, err)
    assert.matches("commands:", out)
    rc, _, err = run("--debug alerts --format xml")
    assert.equal(2, rc)                     -- a usage error stays a usage error
    assert.matches("unknown format", err)
  end)
end)
