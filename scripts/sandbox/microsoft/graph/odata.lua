-- sandbox/microsoft/graph/odata.lua — what every Graph collection shares: the OData $filter evaluator,
-- $select, $top, $count and @odata.nextLink paging with $skiptoken.
local C = require "sandbox.microsoft.common"
local T, MS, jnull, A, odata_qs, enc_skip = C.T, C.MS, C.jnull, C.A, C.odata_qs, C.enc_skip
local dec_skip = C.dec_skip

-- OData $filter: comparisons (eq ne gt ge lt le), and/or/not, parentheses, startswith/endswith/
-- contains, lambda any/all over collections (groupTypes/any(c:c eq 'Unified')).  Paths use `/`.
-- Returns predicate(obj) -> bool, or nil, err.
---------------------------------------------------------------------------------------------------
local function odata_tokens(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then i = i + 1
    elseif c == "(" or c == ")" or c == "," or c == ":" then toks[#toks + 1] = { t = c }; i = i + 1
    elseif c == "'" then
      local buf, j = {}, i + 1
      while true do
        if j > n then return nil, "unterminated string literal" end
        local d = s:sub(j, j)
        if d == "'" then
          if s:sub(j + 1, j + 1) == "'" then buf[#buf + 1] = "'"; j = j + 2 else break end
        else buf[#buf + 1] = d; j = j + 1 end
      end
      toks[#toks + 1] = { t = "val", v = table.concat(buf) }; i = j + 1
    else
      local dt = s:match("^%d%d%d%d%-%d%d%-%d%dT[%d:%.]+Z", i) or s:match("^%d%d%d%d%-%d%d%-%d%dT[%d:%.]+[+-]%d%d:%d%d", i)
                 or s:match("^%d%d%d%d%-%d%d%-%d%dT[%d:%.]+", i)
      if dt then toks[#toks + 1] = { t = "val", v = dt }; i = i + #dt
      elseif s:match("^%-?%d", i) then
        local num = s:match("^%-?%d+%.?%d*", i)
        toks[#toks + 1] = { t = "val", v = tonumber(num) }; i = i + #num
      else
        local w = s:match("^[%w_%./@#%$]+", i)
        if not w then return nil, "unexpected character '" .. c .. "'" end
        i = i + #w
        local lw = w:lower()
        if lw == "true" then toks[#toks + 1] = { t = "val", v = true }
        elseif lw == "false" then toks[#toks + 1] = { t = "val", v = false }
        elseif lw == "null" then toks[#toks + 1] = { t = "val", v = T.NULL }
        elseif lw == "and" or lw == "or" or lw == "not" then toks[#toks + 1] = { t = lw }
        else toks[#toks + 1] = { t = "word", v = w } end
      end
    end
  end
  return toks
end

local function isnull(v) return v == nil or v == T.NULL or v == jnull() end

local function resolve(ctx, path)
  local v, first = nil, true
  for seg in path:gmatch("[^/]+") do
    if first then
      first = false
      if ctx.vars[seg] ~= nil then v = ctx.vars[seg]
      else v = ctx.root; if type(v) ~= "table" then return nil end; v = v[seg] end
    else
      if type(v) ~= "table" then return nil end
      v = v[seg]
    end
  end
  return v
end

local function ocompare(op, a, b)
  if b == T.NULL then
    if op == "eq" then return isnull(a) elseif op == "ne" then return not isnull(a) end
    return false
  end
  if isnull(a) then return op == "ne" end
  if type(a) == "string" and type(b) == "string" then
    local ta, tb = T.parse_iso(a), T.parse_iso(b)
    if ta and tb and a:find("T") and b:find("T") then a, b = ta, tb else a, b = a:lower(), b:lower() end
  elseif type(a) ~= type(b) then
    if op == "ne" then return true end
    return false
  end
  if op == "eq" then return a == b elseif op == "ne" then return a ~= b
  elseif op == "gt" then return a > b elseif op == "ge" then return a >= b
  elseif op == "lt" then return a < b elseif op == "le" then return a <= b end
  return false
end
local CMP = { eq = true, ne = true, gt = true, ge = true, lt = true, le = true }

local function odata_filter(expr)
  local toks, terr = odata_tokens(expr or "")
  if not toks then return nil, terr end
  local pos = 1
  local function peek() return toks[pos] end
  local function take() pos = pos + 1; return toks[pos - 1] end
  local function expect(t) local x = take(); if not x or x.t ~= t then error("expected '" .. t .. "'", 0) end; return x end
  local parse_or
  local function primary()
    local t = take()
    if not t then error("unexpected end of $filter", 0) end
    if t.t == "(" then local f = parse_or(); expect(")"); return f end
    if t.t == "not" then local f = primary(); return function(c) return not f(c) end end
    if t.t ~= "word" then error("syntax error in $filter", 0) end
    local nx = peek()
    if nx and nx.t == "(" then
      local name, lname = t.v, t.v:lower()
      take()
      local quant = lname:match("/(any)$") or lname:match("/(all)$")
      if quant then
        local coll = name:sub(1, -5)
        local var = take()
        if not var or var.t ~= "word" then error("lambda variable expected", 0) end
        expect(":")
        local body = parse_or()
        expect(")")
        return function(c)
          local list = resolve(c, coll)
          if type(list) ~= "table" then return false end
          for _, el in ipairs(list) do
            local vars = setmetatable({ [var.v] = el }, { __index = c.vars })
            local ok = body({ root = c.root, vars = vars })
            if quant == "any" and ok then return true end
            if quant == "all" and not ok then return false end
          end
          return quant == "all"
        end
      elseif lname == "startswith" or lname == "endswith" or lname == "contains" then
        local p = take()
        if not p or p.t ~= "word" then error(name .. ": property expected", 0) end
        expect(",")
        local v = take()
        if not v or v.t ~= "val" or type(v.v) ~= "string" then error(name .. ": string expected", 0) end
        expect(")")
        local needle = v.v:lower()
        return function(c)
          local x = resolve(c, p.v)
          if type(x) ~= "string" then return false end
          x = x:lower()
          if lname == "startswith" then return x:sub(1, #needle) == needle
          elseif lname == "endswith" then return #needle == 0 or x:sub(-#needle) == needle end
          return x:find(needle, 1, true) ~= nil
        end
      end
      error("unsupported function '" .. name .. "'", 0)
    end
    local op = take()
    if not op or op.t ~= "word" or not CMP[op.v:lower()] then error("operator expected after '" .. t.v .. "'", 0) end
    local v = take()
    if not v or v.t ~= "val" then error("value expected after '" .. op.v .. "'", 0) end
    local path, o, val = t.v, op.v:lower(), v.v
    return function(c) return ocompare(o, resolve(c, path), val) end
  end
  local function parse_and()
    local f = primary()
    while peek() and peek().t == "and" do
      take()
      local a, g = f, primary()
      f = function(c) return a(c) and g(c) end
    end
    return f
  end
  parse_or = function()
    local f = parse_and()
    while peek() and peek().t == "or" do
      take()
      local a, g = f, parse_and()
      f = function(c) return a(c) or g(c) end
    end
    return f
  end
  local ok, f = pcall(parse_or)
  if not ok then return nil, f end
  if pos <= #toks then return nil, "syntax error near token " .. pos end
  return function(o) return f({ root = o, vars = {} }) end
end

-- `prop ge <datetime>` bound from a raw $filter (lets a log scan start/stop early)
local function time_bound(filter, prop, ops)
  if not filter then return nil end
  for _, op in ipairs(ops) do
    local v = filter:match(prop .. "%s+" .. op .. "%s+'?([%d%-T:%.Z+]+)'?")
    if v then return T.parse_iso(v) end
  end
end


function MS:graph_select(req, props, type_name)
  local sel = req.query["$select"]
  if not sel or sel == "" then return nil end
  local allowed = {}
  for _, p in ipairs(props) do allowed[p] = true end
  local list = {}
  for p in sel:gmatch("[^,%s]+") do
    if not allowed[p] then return nil, "Could not find a property named '" .. p .. "' on type 'microsoft.graph." .. type_name .. "'." end
    list[#list + 1] = p
  end
  return list
end

local function project(full, sel)
  local o = {}
  for _, k in ipairs(sel) do o[k] = full[k] end
  if full["@odata.type"] then o["@odata.type"] = full["@odata.type"] end
  return o
end

-- spec: {list (sorted by .id), full(x) -> table, props, defaults (nil = all props), type, context,
--        top_default, top_max, where(x) -> bool (pre-filter)}
function MS:graph_collection(req, spec)
  local q = req.query
  local _, path = self:api_of(req.path)
  local top = spec.top_default or 100
  if q["$top"] and q["$top"] ~= "" then
    local n = math.tointeger(tonumber(q["$top"]))
    if not n or n < 1 then
      return self:graph_err(400, "Request_BadRequest", "Invalid page size specified: '" .. q["$top"] .. "'. Must be between 1 and " .. (spec.top_max or 999) .. " inclusive.", req)
    end
    top = math.min(n, spec.top_max or 999)
  end
  local sel, serr = self:graph_select(req, spec.props, spec.type)
  if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
  local pred
  if q["$filter"] and q["$filter"] ~= "" then
    local ferr
    pred, ferr = odata_filter(q["$filter"])
    if not pred then return self:graph_err(400, "Request_UnsupportedQuery", "Invalid filter clause: " .. ferr, req) end
  end
  if q["$skip"] then return self:graph_err(400, "Request_BadRequest", "'$skip' is not supported by the service.", req) end
  local after
  if q["$skiptoken"] then
    after = dec_skip(q["$skiptoken"])
    if not after then return self:graph_err(400, "Request_BadRequest", "Invalid skip token.", req) end
  end
  local out, last, more, total = {}, nil, false, 0
  local counting = q["$count"] == "true" and not after
  for _, x in ipairs(spec.list) do
    if more and not counting then break end
    if (not spec.where or spec.where(x)) and (counting or not after or x.id > after) then
      local full = spec.full(x)
      if not pred or pred(full) then
        total = total + 1
        if not after or x.id > after then
          if #out < top then
            out[#out + 1] = sel and project(full, sel) or (spec.defaults and project(full, spec.defaults) or full)
            last = x.id
          else more = true end
        end
      end
    end
  end
  local ctx = self.base_url .. "/v1.0/$metadata#" .. spec.context .. (sel and ("(" .. table.concat(sel, ",") .. ")") or "")
  local body = { ["@odata.context"] = ctx, value = A(out) }
  if q["$count"] == "true" and not after then body["@odata.count"] = total end
  if more then
    local params = {}
    for _, k in ipairs({ "$select", "$filter", "$count", "$top" }) do
      if q[k] and q[k] ~= "" then params[#params + 1] = { k, q[k] } end
    end
    if not q["$top"] then params[#params + 1] = { "$top", tostring(top) } end
    params[#params + 1] = { "$skiptoken", enc_skip(last) }
    body["@odata.nextLink"] = self.base_url .. path:gsub("%?.*$", "") .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:graph_404(req, what)
  return self:graph_err(404, "Request_ResourceNotFound", "Resource '" .. tostring(what) .. "' does not exist or one of its queried reference-property objects are not present.", req)
end


return { odata_filter = odata_filter, time_bound = time_bound, project = project }
