-- policy/match.lua — which rows of a batch a policy matches.
local L = require "policy.limits"

local M = {}

-- How a policy walks a batch of rows is generated once per policy as one Lua function, its tests inline:
-- this is the hot path, and most rows match nothing.  A table match {kind = "signin", action = {"a", "b"}}
-- becomes `r["kind"] == c1 and c2[r["action"]] == true`, values and sets as upvalues; a function match
-- (run in the policy's own state beforehand) is hits[i].
-- scan(rows, step, fire, hits, armed): for each row that matches, ev = step(row, true), and fire(row, ev)
-- when the step gives evidence; with followed_by also for each follower of a key in armed (see
-- State:armed), step(row, false).  A policy without a step (stepped false: its match is all it asks) fires
-- on each match, with no evidence.  Returns the sum of what fire returned (the alerts).
local function test_of(m, consts)
  local function const(v)
    consts[#consts + 1] = v
    return #consts <= 100 and "c" .. #consts or ("C[%d]"):format(#consts)   -- past 100: Lua's limit on locals
  end
  local tests = {}
  for k, want in pairs(m) do
    local field = type(k) == "string" and ("r[%q]"):format(k) or ("r[%s]"):format(const(k))
    if type(want) == "table" then
      local set = {}
      for _, w in ipairs(want) do set[w] = true end
      tests[#tests + 1] = ("%s[%s] == true"):format(const(set), field)
    else
      tests[#tests + 1] = ("%s == %s"):format(field, const(want))
    end
  end
  return #tests > 0 and table.concat(tests, " and ") or "true"
end

local FIRE = "do local ev = step(r, %s); if ev then n = n + fire(r, ev) end end"

function M.scanner(p, stepped)
  local consts = {}
  local hit = p.match_fn and "hits[i]" or test_of(p.match or {}, consts)
  local body = ("if %s then %s end"):format(hit, stepped and FIRE:format("true") or "n = n + fire(r)")
  if p.followed_by then
    -- A follower can only fire for a key whose window holds enough matches, and those keys are armed:
    -- while none is, followers are not even looked at (`any`, read again after each step, where armed
    -- changes).  Keys that are not strings are left to the step.
    body = ("if %s then\n      %s\n      any = next(armed) ~= nil\n    elseif any and %s then\n      local k = r[%q]\n"
      .. "      if armed[k] or type(k) ~= 'string' then\n        %s\n        any = next(armed) ~= nil\n      end\n    end")
      :format(hit, FIRE:format("true"), test_of(p.followed_by, consts), p.repeated.by, FIRE:format("false"))
  end
  local src = { "local C = ..." }
  for i = 1, math.min(#consts, 100) do src[#src + 1] = ("local c%d = C[%d]"):format(i, i) end
  src[#src + 1] = ("return function(rows, step, fire, hits, armed)\n  local n, any = 0, armed and next(armed) ~= nil\n"
    .. "  for i = 1, #rows do\n    local r = rows[i]\n    %s\n  end\n  return n\nend"):format(body)
  return assert(load(table.concat(src, "\n"), "=" .. p.id .. " (match)", "t", { type = type, next = next }))(consts)
end

-- Function matches run in the policy's own state, a batch of rows per call -> array of booleans, or
-- nil, err (the policy failed: budget, memory, runtime error).
function M.in_vm(p, rows)
  local out = {}
  for first = 1, #rows, L.BATCH do
    local batch = table.move(rows, first, math.min(#rows, first + L.BATCH - 1), 1, {})
    -- a stored row reads its raw when first asked (store.lua's LazyRaw); the copy into the policy's
    -- state takes what the row holds, so raw is read now
    for _, r in ipairs(batch) do local _ = r.raw end
    local ok, res = p.vm:call("__match", batch)
    if not ok then return nil, res end
    if type(res) ~= "table" then return nil, ("error: __match returned a %s, not a list"):format(type(res)) end
    table.move(res, 1, #res, first, out)
  end
  return out
end

return M
