-- lpattern_spec.lua — host/lpattern.c: Lua's pattern matching with a bound on one call's work.  It must
-- answer exactly as string.find/match/gmatch/gsub do (compared on generated patterns and subjects), and
-- give up with "pattern too complex" where Lua's own matcher would run for hours.
describe("lpattern", function()
  local ATOMS = { "a", "b", ".", "%a", "%d", "%s", "[ab]", "[^a]", "%w", "(", ")", "()", "%b()", "%f[%w]", "%1", "x" }
  local SUFFIX = { "", "", "*", "+", "-", "?" }
  local SUBJECT = { "a", "b", "1", " ", "(", ")", "x", "ab" }

  -- a deterministic generator (the same cases on every run)
  local seed = 12345
  local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
  local function pattern()
    local p = rnd(4) == 1 and "^" or ""
    for _ = 1, rnd(5) do
      local a = ATOMS[rnd(#ATOMS)]
      p = p .. a .. ((a:match("^[%.%%%[ab]") and #a <= 4) and SUFFIX[rnd(#SUFFIX)] or "")
    end
    return p .. (rnd(5) == 1 and "$" or "")
  end
  local function subject()
    local s = {}
    for i = 1, rnd(12) - 1 do s[i] = SUBJECT[rnd(#SUBJECT)] end
    return table.concat(s)
  end
  local function both(f, g, ...)
    local r1, r2 = table.pack(pcall(f, ...)), table.pack(pcall(g, ...))
    if not r1[1] then r1[2] = tostring(r1[2]):gsub("^.-:%d+: ", "") end   -- where it was raised differs
    if not r2[1] then r2[2] = tostring(r2[2]):gsub("^.-:%d+: ", "") end
    return r1, r2
  end
  local function collect(iter_fn, s, p)
    return function()
      local out = {}
      for a, b in iter_fn(s, p) do out[#out + 1] = tostring(a) .. "|" .. tostring(b) end
      return table.concat(out, ",")
    end
  end

  it("answers as string.find, match, gmatch and gsub do (2000 generated cases each)", function()
    local compared = 0
    for _ = 1, 2000 do
      local p, s, init = pattern(), subject(), rnd(6) - 3
      for _, name in ipairs { "find", "match" } do
        local r1, r2 = both(string[name], lpattern[name], s, p, init)
        assert.same(r1, r2, ("%s(%q, %q, %d)"):format(name, s, p, init))
      end
      local r1, r2 = both(string.find, lpattern.find, s, p, init, true)
      assert.same(r1, r2, ("plain find(%q, %q)"):format(s, p))
      r1, r2 = both(collect(string.gmatch, s, p), collect(lpattern.gmatch, s, p))
      assert.same(r1, r2, ("gmatch(%q, %q)"):format(s, p))
      for _, repl in ipairs { "<%0>", { a = "A", b = false }, function(x) return x == "a" and "!" or nil end } do
        r1, r2 = both(string.gsub, lpattern.gsub, s, p, repl)
        assert.same(r1, r2, ("gsub(%q, %q)"):format(s, p))
      end
      compared = compared + 1
    end
    assert.equal(2000, compared)
  end)

  it("gives up on a backtracking pattern instead of running for hours", function()
    local subject = ("a"):rep(4000)
    local hostile = ("a-"):rep(12) .. "b"
    for _, call in ipairs {
      function() return lpattern.find(subject, hostile) end,
      function() return lpattern.match(subject, hostile) end,
      function() return lpattern.gmatch(subject, hostile)() end,
      function() return lpattern.gsub(subject, hostile, "") end,
      function() return lpattern.find(("x"):rep(20000), ".-y") end,                 -- quadratic
      function() return lpattern.find(("a"):rep(60), ("a?"):rep(30) .. ("a"):rep(30) .. "b") end,   -- exponential
    } do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches("pattern too complex", err)
    end
    -- ordinary work on a large text stays within the budget
    local text = ("word 1234 "):rep(100000)
    assert.equal(100000, select(2, lpattern.gsub(text, "%d+", "N")))
    assert.is_nil(lpattern.find(text, "%f[%w]EMP%-%d%d%d%d%d%d"))
    assert.is_nil(lpattern.find(text, "zzz", 1, true))
  end)
end)
