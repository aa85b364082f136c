-- sandbox/servicenow/query.lua — encoded queries (sysparm_query), as the Table API reads them:
--   conditions joined by ^ (and), ^OR (or, binding tighter than ^), ^NQ (a new query or'ed with the
--   previous ones); ORDERBY<field> / ORDERBYDESC<field>; a condition is <field><operator><value> with
--   field names lowercase (dot-walking through reference fields: role.name) and operators =, !=, >, >=,
--   <, <=, IN, NOT IN, LIKE, NOT LIKE, STARTSWITH, ENDSWITH, ISEMPTY, ISNOTEMPTY, ANYTHING.
-- A condition naming a field the table does not have is invalid: ignored (the instance's default), or,
-- with glide.invalid_query.returns_no_rows, the query returns nothing.
local M = {}

-- longest first: NOT IN before IN, >= before >, ...
local OPS = { "ISNOTEMPTY", "ISEMPTY", "ANYTHING", "STARTSWITH", "ENDSWITH", "NOT LIKE", "NOT IN", "LIKE", "IN",
  "!=", ">=", "<=", "=", ">", "<" }

local function parse_condition(term)
  local field, rest = term:match("^([%l%d_%.]+)(.*)$")
  if not field then return nil end
  for _, op in ipairs(OPS) do
    if rest:sub(1, #op) == op then return { field = field, op = op, value = rest:sub(#op + 1) } end
  end
  return nil
end

local function test(op, v, want)
  if op == "ANYTHING" then return true
  elseif op == "ISEMPTY" then return v == ""
  elseif op == "ISNOTEMPTY" then return v ~= ""
  elseif op == "=" then return v == want
  elseif op == "!=" then return v ~= want
  elseif op == ">" then return v > want
  elseif op == ">=" then return v >= want
  elseif op == "<" then return v < want
  elseif op == "<=" then return v <= want
  elseif op == "STARTSWITH" then return v:lower():sub(1, #want) == want:lower()
  elseif op == "ENDSWITH" then return #want == 0 or v:lower():sub(-#want) == want:lower()
  elseif op == "LIKE" or op == "NOT LIKE" then
    local found = v:lower():find(want:lower(), 1, true) ~= nil
    if op == "LIKE" then return found end
    return not found
  elseif op == "IN" or op == "NOT IN" then
    local found = false
    for item in (want .. ","):gmatch("([^,]*),") do if item == v then found = true end end
    if op == "IN" then return found end
    return not found
  end
  return false
end

-- M.parse(query) -> {queries = {{{cond, cond...} or'ed groups...}...}, order = {{field, desc}...}}
-- Each query is a list of and'ed clauses; a clause is a list of or'ed conditions.
function M.parse(q)
  local out = { queries = {}, order = {} }
  if q == nil or q == "" then return out end
  for part in (q .. "^NQ"):gmatch("(.-)%^NQ") do
    local clauses = {}
    for term in (part .. "^"):gmatch("(.-)%^") do
      if term == "" or term == "EQ" then
        -- the terminator some clients add
      elseif term:sub(1, 11) == "ORDERBYDESC" then
        out.order[#out.order + 1] = { term:sub(12), true }
      elseif term:sub(1, 7) == "ORDERBY" then
        out.order[#out.order + 1] = { term:sub(8), false }
      elseif term:sub(1, 2) == "OR" and #clauses > 0 then
        local c = parse_condition(term:sub(3))
        local list = clauses[#clauses]
        list[#list + 1] = c or { invalid = term }
      else
        clauses[#clauses + 1] = { parse_condition(term) or { invalid = term } }
      end
    end
    out.queries[#out.queries + 1] = clauses
  end
  return out
end

-- M.compile(parsed, resolve, strict) -> predicate(rec) | nil, why
-- resolve(rec, field) -> value | nil when the table has no such field (also through dot-walks).
-- `known(field)` says whether the table has the field; unknown conditions are dropped, or make the whole
-- query match nothing (strict).
function M.compile(parsed, resolve, known, strict)
  local invalid = false
  local queries = {}
  for _, clauses in ipairs(parsed.queries) do
    local cl = {}
    for _, ors in ipairs(clauses) do
      local keep = {}
      for _, c in ipairs(ors) do
        if c.invalid or not known(c.field) then invalid = true else keep[#keep + 1] = c end
      end
      if #keep > 0 then cl[#cl + 1] = keep end
    end
    queries[#queries + 1] = cl
  end
  if invalid and strict then return function() return false end end
  return function(rec)
    for _, clauses in ipairs(queries) do
      local all = true
      for _, ors in ipairs(clauses) do
        local any = false
        for _, c in ipairs(ors) do
          if test(c.op, resolve(rec, c.field) or "", c.value) then any = true; break end
        end
        if not any then all = false; break end
      end
      if all then return true end
    end
    return #queries == 0
  end
end

return M
