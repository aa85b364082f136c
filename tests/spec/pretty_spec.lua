-- pretty_spec.lua — scripts/repl.lua: the REPL's printer, compiler, traceback trimming and completion.
local root = (host and host.root) or "."
local R = assert(loadfile(root .. "/scripts/repl.lua", "t"))()

describe("repl.pretty", function()
  local pretty = R.pretty

  it("prints scalars like Lua source", function()
    assert.are.equal("1", pretty(1))
    assert.are.equal("1.5", pretty(1.5))
    assert.are.equal("2.0", pretty(2.0))
    assert.are.equal("nil", pretty(nil))
    assert.are.equal("true", pretty(true))
    assert.are.equal('"a\\nb\\t\\"q\\"\\\\"', pretty('a\nb\t"q"\\'))
    assert.are.equal('"\\0\\1"', pretty("\0\1"))
  end)

  it("prints arrays in order, then other keys sorted (numbers, then strings)", function()
    assert.are.equal('{ 1, 2, 3 }', pretty({ 1, 2, 3 }))
    assert.are.equal('{ "x", [5] = true, [10] = 1, a = 2, b = 3 }', pretty({ "x", b = 3, a = 2, [10] = 1, [5] = true }))
    assert.are.equal('{ ["end"] = 2, ["not ident"] = 1 }', pretty({ ["not ident"] = 1, ["end"] = 2 }))
    assert.are.equal("{}", pretty({}))
  end)

  it("nests and breaks long tables over lines", function()
    assert.are.equal("{ a = { b = { 1 } } }", pretty({ a = { b = { 1 } } }))
    local long = {}
    for i = 1, 20 do long["key" .. string.format("%02d", i)] = i end
    local s = pretty(long)
    assert.truthy(s:find("^{\n  key01 = 1,\n  key02 = 2,"))
    assert.truthy(s:find("\n  key20 = 20\n}$"))
    local nested = pretty({ list = long })
    assert.truthy(nested:find("^{ list = {\n    key01 = 1,") or nested:find("^{\n  list = {\n    key01 = 1,"))
  end)

  it("shows cycles as <cycle> but repeats shared tables", function()
    local t = { name = "t" }
    t.self = t
    assert.are.equal('{ name = "t", self = <cycle> }', pretty(t))
    local shared = { 1 }
    assert.are.equal("{ a = { 1 }, b = { 1 } }", pretty({ a = shared, b = shared }))
  end)

  it("stops at the depth limit", function()
    local deep = { a = { b = { c = { d = { e = { f = 1 } } } } } }
    assert.are.equal("{ a = { b = { c = { d = {...} } } } }", pretty(deep))
    assert.are.equal("{ a = {...} }", pretty(deep, { depth = 1 }))
  end)

  it("truncates long tables with a count", function()
    local t = {}
    for i = 1, 250 do t[i] = i end
    local s = pretty(t)
    local tail = "  100,\n  ... (150 more)\n}"
    assert.are.equal(tail, s:sub(-#tail))
    assert.are.equal("{ 1, 2, ... (3 more) }", pretty({ 1, 2, 3, 4, 5 }, { max_items = 2 }))
  end)

  it("uses __tostring, and survives one that raises", function()
    local v = setmetatable({}, { __tostring = function() return "<thing>" end })
    assert.are.equal("{ x = <thing> }", pretty({ x = v }))
    local bad = setmetatable({}, { __tostring = function() error("nope") end })
    assert.truthy(pretty(bad):find("__tostring error", 1, true))
  end)

  it("formats row grids in the style of every listing, columns in the statement's order", function()
    local rows = R.mark_grid({ { name = "ann", id = 1 }, { name = "bob\nby", id = 22 } }, { "name", "id" })
    assert.is_true(R.is_grid(rows))
    local s = R.format_results({ rows, n = 1 }, 1, 1)
    assert.are.equal("NAME     ID\nann      1\nbob\\nby  22\n(2 rows)", s)
    assert.are.equal("ID  NAME\n1   ann\n(1 row)", R.grid(R.mark_grid({ { id = 1, name = "ann" } })))
  end)

  it("joins several results with tabs and prints nothing for none", function()
    assert.are.equal('1\t"a"\tnil', R.format_results({ 1, "a", nil, n = 3 }, 1, 3))
    assert.is_nil(R.format_results({ n = 0 }, 1, 0))
  end)
end)

describe("repl.compile", function()
  it("tries an expression first", function()
    local fn = assert(R.compile("1 + 1", {}, true))
    assert.are.equal(2, fn())
  end)

  it("falls back to a statement", function()
    local env = {}
    local fn = assert(R.compile("x = 3", env, true))
    fn()
    assert.are.equal(3, env.x)
  end)

  it("says when a chunk is incomplete, and when it is just wrong", function()
    local fn, err, incomplete = R.compile("function f()", {}, true)
    assert.is_nil(fn)
    assert.is_true(incomplete)
    assert.truthy(err:find("<eof>", 1, true))
    fn, err, incomplete = R.compile("x = = 1", {}, true)
    assert.is_nil(fn)
    assert.is_false(incomplete)
    assert.truthy(err:find("^stdin:1:"))
  end)

  it("loads text only", function()
    local bytecode = string.dump(function() return 1 end)
    local fn, err = R.compile(bytecode, {}, false)
    assert.is_nil(fn)
    assert.truthy(err:find("binary", 1, true) or err:find("attempt to load", 1, true))
  end)
end)

describe("repl.trim_traceback", function()
  it("keeps the frames down to the user's chunk", function()
    local tb = table.concat({
      "stdin:1: boom", "stack traceback:", "\t[C]: in function 'error'", "\tstdin:1: in upvalue 'fn'",
      "\t/x/scripts/cli/repl.lua:75: in function </x/scripts/cli/repl.lua:74>", "\t[C]: in function 'xpcall'",
    }, "\n")
    assert.are.equal("stdin:1: boom\nstack traceback:\n\t[C]: in function 'error'\n\tstdin:1: in main chunk",
      R.trim_traceback(tb))
  end)

  it("keeps only the message without a frame of the chunk", function()
    assert.are.equal("oops", R.trim_traceback("oops\nstack traceback:\n\t[C]: in ?"))
    assert.are.equal("plain", R.trim_traceback("plain"))
  end)
end)

describe("repl.complete", function()
  local env = setmetatable({ mine = { alpha = 1, beta = { gamma = true } }, s = "text" }, { __index = _G })

  it("completes globals through the environment's __index", function()
    local c = R.complete("stri", env)
    assert.are.same({ "string" }, c)
    local m = R.complete("mi", env)
    assert.are.same({ "mine" }, m)
  end)

  it("walks fields", function()
    assert.are.same({ "mine.alpha" }, R.complete("mine.al", env))
    assert.are.same({ "mine.beta.gamma" }, R.complete("mine.beta.g", env))
    assert.are.same({ "string.find", "string.format" }, R.complete("string.f", env))
    assert.are.same({}, R.complete("nothing.here", env))
  end)

  it("completes methods through a metatable's __index (strings, handles)", function()
    assert.are.same({ "s:upper" }, R.complete("s:up", env))
    local obj = setmetatable({}, { __index = { run = function() end, size = 3 } })
    env.obj = obj
    assert.are.same({ "obj:run" }, R.complete("obj:", env))
    assert.are.same({ "obj.run", "obj.size" }, R.complete("obj.", env))
  end)

  it("never calls an __index function", function()
    local called = false
    env.trap = setmetatable({}, { __index = function() called = true end })
    assert.are.same({}, R.complete("trap.x", env))
    assert.is_false(called)
  end)
end)
