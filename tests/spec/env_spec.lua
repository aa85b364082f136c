local env = require "env"

describe("env (script confinement)", function()
  it("gives each script its own globals over read-only safe ones", function()
    local e1, e2 = env.new(), env.new()
    assert(env.load("x = 1; string_upper = string.upper('a')", "a", e1))()
    assert.equal(1, rawget(e1, "x"))
    assert.equal("A", rawget(e1, "string_upper"))
    assert.has_error(function() assert(env.load("return x", "b", e2))() end, "undefined global 'x'")
  end)

  it("hides io, os.execute, package, debug and file loaders", function()
    local e = env.new()
    for _, name in ipairs { "io", "package", "debug", "dofile", "loadfile", "require" } do
      local fn = assert(env.load("return " .. name, "t", e))
      assert.has_error(fn, "undefined global '" .. name .. "'")
    end
    assert.is_nil(assert(env.load("return os.execute", "t", e))())
  end)

  it("refuses binary chunks and bytecode through load", function()
    local bytecode = string.dump(function() return 1 end)
    local fn, err = env.load(bytecode, "bin", env.new())
    assert.is_nil(fn); assert.matches("binary", err)
    local e = env.new()
    local fn2, lerr = assert(env.load("return load(...)", "t", e))(bytecode)
    assert.is_nil(fn2); assert.matches("binary chunk", lerr)
    assert.has_error(function() assert(env.load("return load('x', 'n', 'b')", "t", e))() end)
  end)

  it("does not let one script change shared libraries for another", function()
    local e = env.new()
    assert.has_error(function() assert(env.load("string.upper = nil", "t", e))() end)
    assert.has_error(function() assert(env.load("getmetatable('').__index = {}", "t", e))() end)
    assert.equal("A", ("a"):upper())
  end)

  it("exposes extras read-only", function()
    local e = env.new { cfg = { a = 1 } }
    assert.equal(1, assert(env.load("return cfg.a", "t", e))())
    assert.has_error(function() assert(env.load("cfg.a = 2", "t", e))() end)
  end)
end)
