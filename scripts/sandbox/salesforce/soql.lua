-- sandbox/salesforce/soql.lua — the part of SOQL (SOQL and SOSL Reference) a tenant answers, parsed
-- honestly: SELECT fields (relationship paths like Profile.Name) FROM one object, WHERE with AND / OR /
-- NOT, parentheses, = != <> < <= > >= LIKE IN and NOT IN over typed literals (strings, numbers, booleans,
-- null, dateTime and date literals, TODAY, YESTERDAY, LAST_N_DAYS:n), ORDER BY (ASC / DESC, NULLS FIRST /
-- LAST), LIMIT and OFFSET.  Names are case-insensitive.  What Salesforce refuses is refused with its
-- error codes: an object the user cannot see is INVALID_TYPE, a field that is not on it INVALID_FIELD, a
-- literal of the wrong type for its field INVALID_FIELD, anything else MALFORMED_QUERY, each message with
-- the query, a caret and "ERROR at Row:1:Column:N" as Salesforce writes them.
--
-- A schema is { Object = { fields = { Name = "string" | "id" | "boolean" | "datetime" | "date" | "int" |
-- "double" | "base64" | "picklist" ... }, rels = { Rel = { object = "Other", key = "RelId" } | { poly =
-- true, key = "..." } } } }.
local M = {}

local KEYWORDS = { SELECT = true, FROM = true, WHERE = true, AND = true, OR = true, NOT = true, IN = true, LIKE = true,
  ORDER = true, BY = true, ASC = true, DESC = true, NULLS = true, FIRST = true, LAST = true, LIMIT = true, OFFSET = true,
  TRUE = true, FALSE = true, NULL = true }

local QueryError = {}
QueryError.__index = QueryError
local function qerr(code, msg) error(setmetatable({ code = code, message = msg }, QueryError), 0) end

-- Salesforce's way of pointing at a place in the query.
local function at(q, col, what)
  return ("\n%s\n%s^\nERROR at Row:1:Column:%d\n%s"):format(q, (" "):rep(col - 1), col, what)
end

local function tokenize(q)
  local toks, i, n = {}, 1, #q
  while i <= n do
    local c = q:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "'" then
      local buf, j = {}, i + 1
      while true do
        local ch = q:sub(j, j)
        if ch == "" then qerr("MALFORMED_QUERY", at(q, i, "line 1:" .. (i - 1) .. " mismatched character '<EOF>' expecting '''")) end
        if ch == "\\" then
          local e = q:sub(j + 1, j + 1)
          local map = { n = "\n", r = "\r", t = "\t", b = "\b", f = "\f", ['"'] = '"', ["'"] = "'", ["\\"] = "\\", _ = "\\_", ["%"] = "\\%" }
          if not map[e] then qerr("MALFORMED_QUERY", at(q, j, "Invalid string literal '" .. q:sub(i, j + 1) .. "'. Illegal character sequence '\\" .. e .. "' in string literal.")) end
          buf[#buf + 1] = map[e]; j = j + 2
        elseif ch == "'" then
          break
        else
          buf[#buf + 1] = ch; j = j + 1
        end
      end
      toks[#toks + 1] = { t = "string", v = table.concat(buf), col = i }
      i = j + 1
    elseif q:match("^%d%d%d%d%-%d%d%-%d%dT", i) then
      local lit = q:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*[Zz]", i) or q:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*[+-]%d%d:%d%d", i)
      if not lit then qerr("MALFORMED_QUERY", at(q, i, "line 1:" .. (i - 1) .. " no viable alternative at character '" .. q:sub(i, i + 9) .. "'")) end
      toks[#toks + 1] = { t = "datetime", v = lit, col = i }
      i = i + #lit
    elseif q:match("^%d%d%d%d%-%d%d%-%d%d", i) then
      toks[#toks + 1] = { t = "date", v = q:sub(i, i + 9), col = i }
      i = i + 10
    elseif q:match("^%-?%d", i) then
      local lit = q:match("^%-?%d+%.?%d*", i)
      toks[#toks + 1] = { t = "number", v = tonumber(lit), col = i }
      i = i + #lit
    elseif q:match("^[%a_]", i) then
      local w = q:match("^[%w_%.]+", i)
      local up = w:upper()
      if KEYWORDS[up] then toks[#toks + 1] = { t = "kw", v = up, col = i, text = w }
      else toks[#toks + 1] = { t = "name", v = w, col = i } end
      i = i + #w
    else
      local op = q:match("^!=", i) or q:match("^<>", i) or q:match("^<=", i) or q:match("^>=", i) or q:match("^[=<>(),:]", i)
      if not op then qerr("MALFORMED_QUERY", at(q, i, "line 1:" .. (i - 1) .. " no viable alternative at character '" .. c .. "'")) end
      toks[#toks + 1] = { t = "op", v = op == "<>" and "!=" or op, col = i }
      i = i + #op
    end
  end
  toks[#toks + 1] = { t = "eof", v = "<EOF>", col = n + 1 }
  return toks
end

-- Canonical name of a field of an object, from any casing.
local function canon(list, name)
  local low = name:lower()
  for k in pairs(list) do if k:lower() == low then return k end end
end

-- parse(q, schema, visible) -> plan | raises a QueryError.  visible(object) -> false: the user cannot
-- see that object (Salesforce says it does not exist).
local function parse(q, schema, visible)
  local toks, pos = tokenize(q), 1
  local function peek() return toks[pos] end
  local function take() pos = pos + 1; return toks[pos - 1] end
  local function unexpected(t) qerr("MALFORMED_QUERY", at(q, t.col, "unexpected token: '" .. tostring(t.text or t.v) .. "'")) end
  local function expect_kw(kw)
    local t = take()
    if t.t ~= "kw" or t.v ~= kw then unexpected(t) end
  end
  local function is_kw(kw) local t = peek(); return t.t == "kw" and t.v == kw end

  expect_kw("SELECT")
  local raw_fields = {}
  repeat
    local t = take()
    if t.t ~= "name" then unexpected(t) end
    raw_fields[#raw_fields + 1] = t
    local more = peek().t == "op" and peek().v == ","
    if more then take() end
  until not more
  expect_kw("FROM")
  local ot = take()
  if ot.t ~= "name" then unexpected(ot) end
  local object = canon(schema, ot.v)
  if not object or ot.v:find(".", 1, true) or (visible and not visible(object)) then
    qerr("INVALID_TYPE", at(q, ot.col, ("sObject type '%s' is not supported. If you are attempting to use a custom object, be sure "
      .. "to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."):format(ot.v)))
  end
  local def = schema[object]

  -- a field path -> {path = {"Profile", "Name"}, type = ...}
  local function field(t)
    local parts = {}
    for p in t.v:gmatch("[^%.]+") do parts[#parts + 1] = p end
    local d, out, keys, rels = def, {}, {}, {}
    for k = 1, #parts - 1 do
      local rel = d.rels and canon(d.rels, parts[k])
      if not rel then
        qerr("INVALID_FIELD", at(q, t.col, ("Didn't understand relationship '%s' in field path. If you are attempting to use a custom "
          .. "relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe "
          .. "call for the appropriate names."):format(parts[k])))
      end
      out[#out + 1] = rel
      local r = d.rels[rel]
      keys[#keys + 1], rels[#rels + 1] = r.key, r.poly and "Name" or r.object
      d = r.poly and M.POLY or schema[r.object]
    end
    local name = d.fields and canon(d.fields, parts[#parts])
    if not name then
      local ent = rels[#rels] or object
      qerr("INVALID_FIELD", at(q, t.col, ("No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to "
        .. "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.")
        :format(parts[#parts], ent)))
    end
    out[#out + 1] = name
    return { path = out, keys = keys, rels = rels, type = d.fields[name], col = t.col, text = t.v }
  end

  local fields = {}
  for _, t in ipairs(raw_fields) do fields[#fields + 1] = field(t) end

  local DATEFN = { TODAY = true, YESTERDAY = true, LAST_N_DAYS = true, TOMORROW = true, NEXT_N_DAYS = true }
  local function literal(f)
    local t = take()
    local ty = f.type
    local function wrong(what)
      qerr("INVALID_FIELD", at(q, t.col, ("value of filter criterion for field '%s' must be of type %s and should not be enclosed in quotes")
        :format(f.path[#f.path], what)))
    end
    if t.t == "kw" and t.v == "NULL" then return { null = true } end
    if ty == "boolean" then
      if t.t == "kw" and (t.v == "TRUE" or t.v == "FALSE") then return { v = t.v == "TRUE" } end
      wrong("boolean")
    elseif ty == "datetime" then
      if t.t == "datetime" then return { v = M.ms(t.v) } end
      if t.t == "name" and DATEFN[t.v:upper()] then
        local fn, nd = t.v:upper(), nil
        if fn:match("_N_") then
          local c1, c2 = take(), take()
          if c1.v ~= ":" or c2.t ~= "number" then unexpected(c2) end
          nd = math.tointeger(c2.v)
        end
        return { range = { fn = fn, n = nd } }
      end
      if t.t == "date" then qerr("INVALID_FIELD", at(q, t.col, ("value of filter criterion for field '%s' must be of type dateTime and should not be enclosed in quotes"):format(f.path[#f.path]))) end
      wrong("dateTime")
    elseif ty == "date" then
      if t.t == "date" then return { v = M.ms(t.v) } end
      wrong("date")
    elseif ty == "int" or ty == "double" then
      if t.t == "number" then return { v = t.v } end
      wrong(ty == "int" and "int" or "double")
    else
      if t.t == "string" then return { v = t.v } end
      if t.t == "eof" or t.t == "op" then unexpected(t) end
      wrong("string")
    end
  end

  local parse_or
  local function primary()
    local t = peek()
    if t.t == "op" and t.v == "(" then
      take()
      local e = parse_or()
      local c = take()
      if not (c.t == "op" and c.v == ")") then unexpected(c) end
      return e
    end
    if t.t == "kw" and t.v == "NOT" then take(); return { op = "not", a = primary() } end
    local ft = take()
    if ft.t ~= "name" then unexpected(ft) end
    local f = field(ft)
    local o = take()
    if o.t == "kw" and (o.v == "IN" or o.v == "NOT") then
      local negate = o.v == "NOT"
      if negate then expect_kw("IN") end
      local p = take()
      if not (p.t == "op" and p.v == "(") then unexpected(p) end
      local list = {}
      repeat
        list[#list + 1] = literal(f)
        local c = take()
        if c.t == "op" and c.v == ")" then break end
        if not (c.t == "op" and c.v == ",") then unexpected(c) end
      until false
      return { op = negate and "notin" or "in", f = f, list = list }
    elseif o.t == "kw" and o.v == "LIKE" then
      local s = take()
      if s.t ~= "string" then unexpected(s) end
      return { op = "like", f = f, v = s.v }
    elseif o.t == "op" and (o.v == "=" or o.v == "!=" or o.v == "<" or o.v == "<=" or o.v == ">" or o.v == ">=") then
      local lit = literal(f)
      if lit.null and o.v ~= "=" and o.v ~= "!=" then unexpected(o) end
      return { op = o.v, f = f, lit = lit }
    end
    unexpected(o)
  end
  local function parse_and()
    local e = primary()
    while is_kw("AND") do take(); e = { op = "and", a = e, b = primary() } end
    return e
  end
  parse_or = function()
    local e = parse_and()
    while is_kw("OR") do take(); e = { op = "or", a = e, b = parse_and() } end
    return e
  end

  local plan = { object = object, fields = fields }
  if is_kw("WHERE") then take(); plan.where = parse_or() end
  if is_kw("ORDER") then
    take(); expect_kw("BY")
    plan.order = {}
    repeat
      local ft = take()
      if ft.t ~= "name" then unexpected(ft) end
      local o = { f = field(ft), desc = false }
      if is_kw("ASC") then take() elseif is_kw("DESC") then take(); o.desc = true end
      o.nulls_last = o.desc
      if is_kw("NULLS") then
        take()
        local w = take()
        if w.t ~= "kw" or (w.v ~= "FIRST" and w.v ~= "LAST") then unexpected(w) end
        o.nulls_last = w.v == "LAST"
      end
      plan.order[#plan.order + 1] = o
      local more = peek().t == "op" and peek().v == ","
      if more then take() end
    until not more
  end
  if is_kw("LIMIT") then
    take()
    local n = take()
    if n.t ~= "number" or not math.tointeger(n.v) or n.v < 0 then unexpected(n) end
    plan.limit = math.tointeger(n.v)
  end
  if is_kw("OFFSET") then
    take()
    local n = take()
    if n.t ~= "number" or not math.tointeger(n.v) or n.v < 0 then unexpected(n) end
    if n.v > 2000 then qerr("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000") end
    plan.offset = math.tointeger(n.v)
  end
  local rest = peek()
  if rest.t ~= "eof" then unexpected(rest) end
  return plan
end

-- Fields a polymorphic relationship (LinkedEntity, Owner of some objects) offers: the Name object's.
M.POLY = { fields = { Id = "id", Name = "string", Type = "string" } }

-- "2024-05-01T10:00:00.000+0000" | "2024-05-01T10:00:00Z" | "2024-05-01" -> ms since epoch
function M.ms(s)
  if type(s) ~= "string" then return nil end
  local T = require "sandbox.tenant"
  return T.parse_iso((s:gsub("([+-]%d%d)(%d%d)$", "%1:%2")))
end

-- M.plan(q, schema, visible) -> plan | nil, {code=, message=}
function M.plan(q, schema, visible)
  local ok, p = pcall(parse, q, schema, visible)
  if ok then return p end
  if getmetatable(p) == QueryError then return nil, p end
  error(p, 0)
end

-- The value of a plan's field (f.path, f.keys) in a row: resolve(id) -> the related row (or nil).
function M.value(row, f, resolve)
  local r = row
  for k = 1, #f.path - 1 do
    local id = r[f.keys[k]]
    r = id and resolve(id) or nil
    if not r then return nil end
  end
  return r[f.path[#f.path]]
end

local function day_start(ms) return ms - ms % 86400000 end
local function range_of(fn, n, now)
  local today = day_start(now)
  if fn == "TODAY" then return today, today + 86400000
  elseif fn == "YESTERDAY" then return today - 86400000, today
  elseif fn == "TOMORROW" then return today + 86400000, today + 2 * 86400000
  elseif fn == "LAST_N_DAYS" then return today - n * 86400000, today + 86400000
  elseif fn == "NEXT_N_DAYS" then return today + 86400000, today + (n + 1) * 86400000 end
end

local function cmp_value(v, ty)
  if v == nil then return nil end
  if ty == "datetime" or ty == "date" then return M.ms(v) end
  return v
end

-- An Id matches on its 15 case-sensitive characters (15- and 18-character forms are the same record).
local function norm(v, ty)
  if (ty == "id") and type(v) == "string" then return v:sub(1, 15) end
  if type(v) == "string" then return v:lower() end
  return v
end

local function like(s, pat)
  if type(s) ~= "string" then return false end
  -- % any run of characters, _ one character, the rest literally
  local lp = pat:lower():gsub(".", function(ch)
    if ch == "%" then return ".*" elseif ch == "_" then return "." elseif ch:match("%w") then return ch end
    return "%" .. ch
  end)
  return s:lower():match("^" .. lp .. "$") ~= nil
end

-- M.test(expr, row, resolve, now_ms) -> boolean
function M.test(e, row, resolve, now)
  if not e then return true end
  local op = e.op
  if op == "and" then return M.test(e.a, row, resolve, now) and M.test(e.b, row, resolve, now) end
  if op == "or" then return M.test(e.a, row, resolve, now) or M.test(e.b, row, resolve, now) end
  if op == "not" then return not M.test(e.a, row, resolve, now) end
  local ty = e.f.type
  local v = cmp_value(M.value(row, e.f, resolve), ty)
  if op == "like" then return like(v, e.v) end
  if op == "in" or op == "notin" then
    local hit = false
    for _, l in ipairs(e.list) do
      if not l.null and v ~= nil and norm(v, ty) == norm(l.v, ty) then hit = true end
    end
    if op == "in" then return hit end
    return v ~= nil and not hit
  end
  local lit = e.lit
  if lit.null then
    if op == "=" then return v == nil end
    return v ~= nil
  end
  if v == nil then return op == "!=" end
  if lit.range then
    local a, b = range_of(lit.range.fn, lit.range.n, now)
    if op == "=" then return v >= a and v < b
    elseif op == "!=" then return v < a or v >= b
    elseif op == "<" then return v < a
    elseif op == "<=" then return v < b
    elseif op == ">" then return v >= b
    else return v >= a end
  end
  local a, b = norm(v, ty), norm(lit.v, ty)
  if op == "=" then return a == b
  elseif op == "!=" then return a ~= b
  elseif op == "<" then return a < b
  elseif op == "<=" then return a <= b
  elseif op == ">" then return a > b
  else return a >= b end
end

-- M.sort(rows, order, resolve): ORDER BY, stable on the rows' given order.
function M.sort(rows, order, resolve)
  if not order then return rows end
  for k, r in ipairs(rows) do r["@pos"] = k end
  table.sort(rows, function(x, y)
    for _, o in ipairs(order) do
      local a = cmp_value(M.value(x, o.f, resolve), o.f.type)
      local b = cmp_value(M.value(y, o.f, resolve), o.f.type)
      if type(a) == "string" then a = a:lower() end
      if type(b) == "string" then b = b:lower() end
      if type(a) == "boolean" then a = a and 1 or 0 end
      if type(b) == "boolean" then b = b and 1 or 0 end
      if a ~= b then
        if a == nil then return not o.nulls_last end
        if b == nil then return o.nulls_last end
        if o.desc then return a > b end
        return a < b
      end
    end
    return x["@pos"] < y["@pos"]
  end)
  return rows
end

return M
