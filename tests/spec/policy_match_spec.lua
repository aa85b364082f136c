-- The scan each policy's match is compiled to (policy/match.lua) gives the verdicts of the match read
-- as written: field = value, or field = {value, ...}, every field of the table; over rows with missing
-- fields, values of other types, sets, integer and float numbers, NaN.  And with followed_by, which
-- followers reach the step.
local match = require "policy.match"

-- The match as its documentation reads, one row at a time.
local function interpreted(m, row)
  for k, want in pairs(m) do
    local v, ok = row[k], false
    if type(want) == "table" then
      for _, w in ipairs(want) do ok = ok or v == w end
    else
      ok = v == want
    end
    if not ok then return false end
  end
  return true
end

local ROWS = {
  {}, { kind = "signin" }, { kind = "signin", outcome = "failure" }, { kind = "signin", outcome = "success" },
  { kind = "SIGNIN", outcome = "failure" }, { kind = "signin ", outcome = "failure" }, { kind = 1, outcome = "failure" },
  { kind = true }, { kind = false }, { kind = {}, outcome = {} }, { kind = "signin", outcome = "failure", extra = 1 },
  { action = "DOWNLOAD" }, { action = "download" }, { action = "Download" }, { action = "git.clone" }, { action = 0 },
  { n = 1 }, { n = 1.0 }, { n = "1" }, { n = 2 }, { n = 0 / 0 }, { n = math.huge }, { n = -1 },
  { flag = true }, { flag = false }, { flag = "true" }, { flag = 1 },
  { [1] = "x" }, { [1] = "y" }, { "x", kind = "signin" },
  { actor_status = "suspended" }, { actor_status = "disabled" }, { actor_status = "active" }, { actor_status = "" },
}

local MATCHES = {
  {}, { kind = "signin" }, { kind = "signin", outcome = "failure" },
  { action = { "DOWNLOAD", "FileDownloaded", "download", "git.clone" } }, { n = 1 }, { n = { 1, 2 } }, { n = 1.5 },
  { flag = true }, { flag = false }, { flag = { true, false } }, { [1] = "x" }, { kind = "signin", [1] = "x" },
  { actor_status = { "suspended", "disabled", "deprovisioned" } }, { kind = "", outcome = "failure" },
}

local function scan(p, rows, stepped, armed, hits)
  local stepped_rows, fired = {}, {}
  local s = match.scanner(p, stepped)
  local function step(r, hit)
    stepped_rows[#stepped_rows + 1] = { r, hit }
    return { r = r }
  end
  local function fire(r, ev)
    fired[#fired + 1] = r
    if stepped then assert.equal(r, ev.r) else assert.is_nil(ev) end
    return 1
  end
  local n = s(rows, stepped and step or false, fire, hits, armed)
  return n, fired, stepped_rows
end

describe("policy match, compiled", function()
  it("gives the verdicts of the match as written, on every row, with a step or without", function()
    for mi, m in ipairs(MATCHES) do
      local want = {}
      for _, r in ipairs(ROWS) do if interpreted(m, r) then want[#want + 1] = r end end
      for _, stepped in ipairs { false, true } do
        local n, fired, stepped_rows = scan({ id = "m" .. mi, match = m }, ROWS, stepped)
        assert.equal(#want, n, "match #" .. mi)
        assert.same(want, fired, "match #" .. mi)
        for i, s in ipairs(stepped_rows) do assert.equal(want[i], s[1]); assert.is_true(s[2]) end
        if not stepped then assert.same({}, stepped_rows) end
      end
    end
  end)

  it("a step without evidence fires nothing", function()
    local s = match.scanner({ id = "q", match = { kind = "signin" } }, true)
    local n = s(ROWS, function() return nil end, function() error("fired") end)
    assert.equal(0, n)
  end)

  it("a function match is the hits of its rows", function()
    local rows, hits = { { a = 1 }, { a = 2 }, { a = 3 } }, { false, true, true }
    local n, fired = scan({ id = "f", match_fn = true }, rows, false, nil, hits)
    assert.equal(2, n)
    assert.same({ rows[2], rows[3] }, fired)
  end)

  it("followed_by: matches are stepped, and followers only for an armed key, or a key that is not a string while one is", function()
    local p = { id = "b", match = { kind = "signin", outcome = "failure" }, repeated = { by = "actor" },
                followed_by = { kind = "signin", outcome = "success" } }
    local F = function(actor) return { kind = "signin", outcome = "failure", actor = actor } end
    local S = function(actor) return { kind = "signin", outcome = "success", actor = actor } end
    local rows = { S "alice", F "bob", S "bob", S "carol", { kind = "user", outcome = "success", actor = "carol" }, S(nil), S(7) }
    -- nothing armed: only the match
    local _, _, stepped = scan(p, rows, true, {})
    assert.same({ { rows[2], true } }, stepped)
    -- carol armed: her success, and the followers whose key is not a string (the step makes it one)
    _, _, stepped = scan(p, rows, true, { carol = true })
    assert.same({ { rows[2], true }, { rows[4], false }, { rows[6], false }, { rows[7], false } }, stepped)
    -- a key armed by a step during the scan is seen by the rows after it
    local armed = {}
    local s = match.scanner(p, true)
    local seen = {}
    s(rows, function(r, hit)
      seen[#seen + 1] = r
      if hit then armed[r.actor] = true end
    end, function() return 1 end, nil, armed)
    assert.same({ rows[2], rows[3], rows[6], rows[7] }, seen)
  end)
end)
