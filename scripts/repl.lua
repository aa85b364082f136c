-- repl.lua — the Lua half of `cachost repl`: printing values, completion, compiling entries, trimming
-- tracebacks.  Pure functions (no I/O, no tasks) so tests/spec/pretty_spec.lua can check them directly;
-- the read-eval-print loop itself is scripts/cli/repl.lua.
local M = {}

local concat, sort, type, tostring, pairs, next = table.concat, table.sort, type, tostring, pairs, next
local getmeta = debug and debug.getmetatable or getmetatable   -- sees the (hidden) string metatable

M.defaults = { depth = 4, max_items = 100, width = 78, indent = "  " }

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat return
  then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function is_ident(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[s]
end

local ESC = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\\"] = "\\\\", ['"'] = '\\"', ["\0"] = "\\0" }
local function quote(s)
  return '"' .. s:gsub('[%c\\"]', function(c) return ESC[c] or ("\\%d"):format(c:byte()) end) .. '"'
end
M.quote = quote

-- A value's own __tostring (or __name) wins over its structure; errors in it are shown, not raised.
local function custom(v)
  local mt = getmeta(v)
  if type(mt) ~= "table" then return nil end
  if mt.__tostring then
    local ok, s = pcall(tostring, v)
    return ok and tostring(s) or ("<__tostring error: " .. tostring(s) .. ">")
  end
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then return ("%.1f"):format(v) end
    return tostring(v)
  end
  if t == "table" or t == "userdata" then
    local s = custom(v)
    if s then return s end
  end
  if v ~= nil and _G.json and v == _G.json.null then return "json.null" end
  local ok, s = pcall(tostring, v)
  return ok and s or ("<" .. t .. ">")
end

-- Keys in a stable order: numbers first (numerically), then strings, then anything else by its text.
local TYPE_RANK = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  local ra, rb = TYPE_RANK[ta] or 4, TYPE_RANK[tb] or 4
  if ra ~= rb then return ra < rb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end
M.key_less = key_less

local function fmt_key(k)
  if is_ident(k) then return k end
  return "[" .. scalar(k) .. "]"
end

local function render(v, o, depth, path, indent)
  if type(v) ~= "table" then return scalar(v) end
  local s = custom(v)
  if s then return s end
  if path[v] then return "<cycle>" end
  if depth >= o.depth then return next(v) == nil and "{}" or "{...}" end
  path[v] = true
  local n = #v
  local keys, count = {}, 0
  for k in pairs(v) do
    count = count + 1
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  sort(keys, key_less)
  local items, shown, inner = {}, 0, indent .. o.indent
  local function add(text)
    shown = shown + 1
    items[#items + 1] = text
  end
  for i = 1, n do
    if shown >= o.max_items then break end
    add(render(v[i], o, depth + 1, path, inner))
  end
  for _, k in ipairs(keys) do
    if shown >= o.max_items then break end
    add(fmt_key(k) .. " = " .. render(v[k], o, depth + 1, path, inner))
  end
  if count > shown then items[#items + 1] = ("... (%d more)"):format(count - shown) end
  path[v] = nil
  if #items == 0 then return "{}" end
  local one = "{ " .. concat(items, ", ") .. " }"
  if #one + #indent <= o.width and not one:find("\n", 1, true) then return one end
  return "{\n" .. inner .. concat(items, ",\n" .. inner) .. "\n" .. indent .. "}"
end

-- pretty(v[, opts]) -> string.  opts: depth (levels shown), max_items (entries per table), width.
function M.pretty(v, opts)
  local o = M.defaults
  if opts then
    o = setmetatable({}, { __index = M.defaults })
    for k, x in pairs(opts) do o[k] = x end
  end
  return render(v, o, 0, {}, "")
end

-- Rows marked as a result grid (the `sql` helper, with its columns in order) print as a table in the one
-- style of every listing (format.lua): at most max_rows rows, long cells cut, and a row count.
local grids = setmetatable({}, { __mode = "k" })
function M.mark_grid(rows, columns) grids[rows] = columns or true; return rows end
function M.is_grid(v) return grids[v] ~= nil end

function M.grid(rows, opts)
  local cols = type(grids[rows]) == "table" and grids[rows] or nil
  if not cols then
    local seen = {}
    cols = {}
    for _, r in ipairs(rows) do
      for k in pairs(r) do if not seen[k] then seen[k] = true; cols[#cols + 1] = k end end
    end
    sort(cols, key_less)
  end
  local max_rows = opts and opts.max_rows or 200
  local out = {}
  local fmt = require "format"
  local w = fmt.writer(cols, "table", function(s) out[#out + 1] = s end)
  for i = 1, math.min(#rows, max_rows) do
    local vals = {}
    for j, c in ipairs(cols) do
      local s = fmt.text(rows[i][c])
      vals[j] = #s > 60 and s:sub(1, 57) .. "..." or s
    end
    w:row(vals)
  end
  w:finish()
  if #rows > max_rows then out[#out + 1] = ("... (%d more rows)\n"):format(#rows - max_rows) end
  out[#out + 1] = ("(%d row%s)"):format(#rows, #rows == 1 and "" or "s")
  return concat(out)
end

-- The text printed for an entry's results (n values in r[first..r.n]), or nil when there is nothing.
function M.format_results(r, first, last)
  if last < first then return nil end
  local out = {}
  for i = first, last do
    local v = r[i]
    out[#out + 1] = (type(v) == "table" and grids[v]) and M.grid(v) or M.pretty(v)
  end
  return concat(out, "\t")
end

-- ---- compiling (lua.c's logic) ----

M.CHUNKNAME = "=stdin"

-- compile(src, env, first) -> fn | nil, err, incomplete.  For the first line of an entry, try it as an
-- expression (`return <src>`) first, so results print without typing `return`.
function M.compile(src, env, first)
  if first then
    local fn = load("return " .. src, M.CHUNKNAME, "t", env)
    if fn then return fn end
  end
  local fn, err = load(src, M.CHUNKNAME, "t", env)
  if fn then return fn end
  return nil, err, err:sub(-5) == "<eof>"
end

-- The traceback of an entry's error, trimmed to the frames of the user's chunk (the REPL's own frames
-- below it are noise).  Without any frame of the chunk, only the message.
function M.trim_traceback(tb)
  tb = tostring(tb)
  local msg, frames = tb:match("^(.-)\nstack traceback:\n(.*)$")
  if not msg then return tb end
  local lines = {}
  for l in frames:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local last = 0
  local name = M.CHUNKNAME:sub(2)
  for i, l in ipairs(lines) do
    if l:find("^%s*" .. name .. ":") then last = i end
  end
  if last == 0 then return msg end
  -- the chunk itself is called by the REPL through an upvalue; say what lua.c says
  lines[last] = lines[last]:gsub(" in upvalue 'fn'$", " in main chunk")
  return msg .. "\nstack traceback:\n" .. concat(lines, "\n", 1, last)
end

-- ---- completion ----

-- Fields of a value for completion: its own keys, then those of __index tables up the chain (string
-- methods, handle methods).  No __index function is called: completion has no side effects.
local function fields(v, out, methods_only)
  local seen = 0
  while v ~= nil and seen < 8 do
    seen = seen + 1
    if type(v) == "table" then
      for k, x in next, v do
        if type(k) == "string" and is_ident(k) and (not methods_only or type(x) == "function") then out[k] = true end
      end
    end
    local mt = getmeta(v)
    if type(mt) ~= "table" then break end
    if type(mt.methods) == "table" then fields(mt.methods, out, methods_only) end
    local idx = rawget(mt, "__index")
    if type(idx) ~= "table" then break end
    v = idx
  end
  return out
end
M.fields = fields

-- A field as completion sees it: raw, then through __index tables (and handle `methods`), no calls.
function M.lookup(base, part)
  local v
  if type(base) == "table" then v = rawget(base, part) end
  local mt, d = getmeta(base), 0
  while v == nil and type(mt) == "table" and d < 8 do
    local idx = rawget(mt, "__index")
    if type(idx) ~= "table" then
      if type(mt.methods) == "table" then v = rawget(mt.methods, part) end
      break
    end
    v = rawget(idx, part)
    mt = getmeta(idx)
    d = d + 1
  end
  return v
end

local SQL_KEYWORDS = {}
for w in ([[SELECT FROM WHERE AND OR NOT NULL IS IN LIKE GLOB BETWEEN GROUP BY ORDER HAVING LIMIT OFFSET JOIN LEFT
  INNER ON AS DISTINCT COUNT SUM MIN MAX AVG CASE WHEN THEN ELSE END WITH UNION ALL EXISTS DESC ASC
  COALESCE LENGTH LOWER UPPER JSON_EXTRACT DATETIME STRFTIME]]):gmatch("[%w_]+") do SQL_KEYWORDS[#SQL_KEYWORDS + 1] = w end

-- Is the cursor inside SQL: the open string of a sql "..." call, or the argument of .schema?
local function in_sql(before)
  if type(before) ~= "string" then return false end
  if before:match("^%s*%.schema%s") then return true end
  local s = before:match("sql%s*%(?%s*([\"'].*)$")
  return s ~= nil and not s:find(s:sub(1, 1), 2, true)
end

-- complete(word, env[, before, sql_names]) -> sorted candidates (whole words, as typed plus the
-- completion).  word: "pre" (globals), "a.b.pre" (fields), "a.b:pre" (methods).  Inside SQL (before: the
-- line up to the word), SQL keywords and sql_names() (the store's tables and columns) instead.
function M.complete(word, env, before, sql_names)
  if in_sql(before) then
    local out, seen, low = {}, {}, word:lower()
    for _, list in ipairs { SQL_KEYWORDS, sql_names and sql_names() or {} } do
      for _, k in ipairs(list) do
        if #word > 0 and k:lower():sub(1, #low) == low and not seen[k] then
          seen[k] = true
          -- keywords follow the case typed
          out[#out + 1] = (list == SQL_KEYWORDS and word:match("^%l")) and k:lower() or k
        end
      end
    end
    sort(out)
    return out
  end
  local path, sep, prefix = word:match("^(.-)([.:])([%w_]*)$")
  local base = env
  if path then
    if path == "" then return {} end
    for part in (path .. "."):gmatch("([^.]*)%.") do
      if not is_ident(part) then return {} end
      local v = M.lookup(base, part)
      if v == nil then return {} end
      base = v
    end
  else
    prefix, path, sep = word, nil, nil
    if not prefix:match("^[%w_]*$") then return {} end
  end
  local names = {}
  for k in pairs(fields(base, {}, sep == ":")) do
    if k:sub(1, #prefix) == prefix then names[#names + 1] = k end
  end
  if not path then
    for k in pairs(KEYWORDS) do if k:sub(1, #prefix) == prefix and #prefix > 0 then names[#names + 1] = k end end
  end
  sort(names)
  local lead = path and (path .. sep) or ""
  local out, last = {}, nil
  for _, k in ipairs(names) do
    if k ~= last then out[#out + 1] = lead .. k end
    last = k
  end
  return out
end

return M
