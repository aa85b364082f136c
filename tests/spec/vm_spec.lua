-- vm_spec.lua — the vm module as policies use it from the host: caps reported with stable tokens, the vm
-- usable after a kill, data in and plans out by copy, json values (null, integers) kept.
describe("vm", function()
  local policy = [[
    function evaluate(event)
      if event.kind == "signin" and event.outcome == "failure" and event.count >= LIMITS.failures then
        return {action = "suspend_user", target = event.actor, reason = ("%d failures"):format(event.count)}
      end
      return null
    end
    function bomb() local t = {} while true do t[#t + 1] = ("x"):rep(1000) end end
    function spin() while true do pcall(error, "swallowed?") end end
  ]]

  it("runs a policy over copied events and returns a plan", function()
    local v <close> = assert(vm.new { memory = 8 * 1024 * 1024, instructions = 1000000, name = "brute-force" })
    assert(v:set("LIMITS", { failures = 10 }))
    assert(v:load(policy, "policies/brute_force.lua"))
    local ok, plan = v:call("evaluate", json.decode('{"kind":"signin","outcome":"failure","count":12,"actor":"u1"}'))
    assert.is_true(ok)
    assert.same({ action = "suspend_user", target = "u1", reason = "12 failures" }, plan)
    local ok2, none = v:call("evaluate", { kind = "signin", outcome = "success", count = 0 })
    assert.is_true(ok2)
    assert.equal(json.null, none)
  end)

  it("reports a memory bomb and a runaway loop with stable tokens, then keeps working", function()
    local v <close> = assert(vm.new { memory = 8 * 1024 * 1024, instructions = 200000, name = "bad" })
    assert(v:set("LIMITS", { failures = 1 }))
    assert(v:load(policy, "bad.lua"))
    assert.same({ nil, "memory: policy bad exceeded its 8 MB cap" }, { v:call("bomb") })
    assert.same({ nil, "budget: policy bad exceeded 200000 instructions" }, { v:call("spin") })
    local ok, plan = v:call("evaluate", { kind = "signin", outcome = "failure", count = 1, actor = "u2" })
    assert.is_true(ok)
    assert.equal("u2", plan.target)
    assert.is_true(v:memory() < 1024 * 1024)
  end)

  it("reports errors with file and line, and refuses what cannot cross", function()
    local v <close> = assert(vm.new { name = "p" })
    local ok, err = v:load("x = {}\nlocal y = x.a.b", "p.lua")
    assert.is_nil(ok)
    assert.matches("^error: p%.lua:2: ", err)
    assert.same({ nil, "error: p.lua:1: undefined global 'os'" }, { v:load("os.exit(1)", "p.lua") })
    assert(v:load("function id(x) return x end"))
    assert.matches("^error: argument 1: cannot copy a function", select(2, v:call("id", function() end)))
    local _, back = v:call("id", { n = 1, f = 1.5, list = json.array { 1, 2 } })
    assert.equal("integer", math.type(back.n))
    assert.equal("float", math.type(back.f))
    assert.same({ 1, 2 }, back.list)
    v:close()
    assert.has_error(function() v:call("id", 1) end)
  end)
  it("bounds what a policy starts in C: patterns and table walks charge the budget, empty reps return", function()
    local v <close> = assert(vm.new { instructions = 1000000, name = "c" })
    assert(v:load([[
      S = ("a"):rep(4000)
      HOSTILE = ("a-"):rep(12) .. "b"
      function find() return S:find(HOSTILE) end
      function match() return string.match(S, HOSTILE) end
      function gmatch() for _ in S:gmatch(HOSTILE) do end end
      function gsub() return (S:gsub(HOSTILE, "")) end
      function callback() return (("aaa"):gsub("a", function() while true do end end)) end
      function many() local n = 0 for i = 1, 1e9 do if S:find("b", 1, true) then n = n + 1 end end return n end
      function swallow() for i = 1, 1e9 do pcall(string.find, S, HOSTILE) end end
      function move() return table.move({}, 1, 1 << 53, 1, {}) end
      function insert() table.insert(setmetatable({}, { __len = function() return 1 << 53 end }), 1, "x") end
      function remove() table.remove(setmetatable({}, { __len = function() return 1 << 53 end }), 1) end
      function sort() table.sort(setmetatable({}, { __len = function() return 1 << 30 end, __index = rawlen })) end
      function concat() return table.concat(setmetatable({}, { __index = function() return "" end }), "", 1, 1 << 53) end
      function rep() return #string.rep("", math.maxinteger) + #("").rep("", 1 << 62, "") end
      function ok() return ("key=value"):match("(%w+)=(%w+)") end
    ]], "c.lua"))
    for _, f in ipairs { "find", "match", "gmatch", "gsub", "many", "swallow" } do
      assert.same({ nil, "budget: policy c exceeded 1000000 instructions (pattern too complex)" }, { v:call(f) }, f)
    end
    assert.same({ nil, "budget: policy c exceeded 1000000 instructions" }, { v:call("callback") })
    for _, f in ipairs { "move", "insert", "remove", "sort", "concat" } do
      assert.same({ nil, "budget: policy c exceeded 1000000 instructions (table operation too long)" }, { v:call(f) }, f)
    end
    assert.same({ true, 0 }, { v:call("rep") })
    assert.same({ true, "key", "value" }, { v:call("ok") })     -- and the state goes on working
  end)

  it("ends a call that runs past its time limit, where each instruction compares megabytes", function()
    local v <close> = assert(vm.new { instructions = 1 << 50, seconds = 1, memory = 32 << 20, name = "slow" })
    assert(v:load([[
      function spin()
        local a, b, n = ("x"):rep(1 << 23), ("x"):rep((1 << 23) - 1) .. "x", 0
        while true do if a == b then n = n + 1 end end
      end
    ]]))
    assert.same({ nil, "budget: policy slow exceeded its 1 s time limit" }, { v:call("spin") })
  end)
end)
