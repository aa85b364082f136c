-- format.lua — the one output formatter of every command: --format table|json|csv.
--
--   format.rows(rows, columns, fmt, out)      rows keyed by column name (or arrays), all at once
--   local w = format.writer(columns, fmt, out); w:row(values_array) ...; w:finish()   streaming
--
-- columns: array of names, or of {name, title = "HEADER"}.  out(s) writes a string (default stdout).
-- table: aligned columns under a header; widths come from the first BUFFER rows, later rows stream
--        (a wider value just widens its line), so memory stays flat on any result size.
-- json:  one array of objects, keys in column order, NULL as null; streamed row by row.
-- csv:   a header line, LF line ends (what Unix tools expect), fields quoted as RFC 4180 says when they
--        hold , " CR or LF; csv-crlf: the same with RFC 4180's CRLF line ends.
local M = { FORMATS = { table = true, json = true, csv = true, ["csv-crlf"] = true }, BUFFER = 500 }

local json = rawget(_G, "json")
local null = json and json.null

local function names(columns)
  local n, titles = {}, {}
  for i, c in ipairs(columns) do
    if type(c) == "table" then n[i], titles[i] = c[1], c.title or c[1]:upper()
    else n[i], titles[i] = c, c:upper() end
  end
  return n, titles
end

local function text(v)
  if v == nil or v == null then return "" end
  local t = type(v)
  if t == "number" and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
    return tostring(math.tointeger(v))
  end
  if t == "table" then return json and json.encode(v) or tostring(v) end
  return tostring(v)
end
M.text = text

local function cell(v)   -- one line in a table
  return (text(v):gsub("[\r\n\t]", { ["\r"] = "\\r", ["\n"] = "\\n", ["\t"] = " " }))
end

local function csv_field(v)
  local s = text(v)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function width(s) return utf8.len(s) or #s end

local function default_out(s) io.stdout:write(s) end

function M.writer(columns, fmt, out)
  fmt = fmt or "table"
  if not M.FORMATS[fmt] then error("format: unknown format '" .. tostring(fmt) .. "' (table, json, csv or csv-crlf)", 2) end
  out = out or default_out
  local keys, titles = names(columns)
  local n = #keys
  local w = { count = 0 }

  if fmt == "csv" or fmt == "csv-crlf" then
    local eol = fmt == "csv" and "\n" or "\r\n"
    local h = {}
    for i = 1, n do h[i] = csv_field(keys[i]) end
    out(table.concat(h, ",") .. eol)
    function w:row(vals)
      local f = {}
      for i = 1, n do f[i] = csv_field(vals[i]) end
      out(table.concat(f, ",") .. eol)
      self.count = self.count + 1
    end
    function w:finish() end
  elseif fmt == "json" then
    local enc = json.encode
    local qkeys = {}
    for i = 1, n do qkeys[i] = enc(keys[i]) .. ":" end
    function w:row(vals)
      local f = {}
      for i = 1, n do
        local v = vals[i]
        f[i] = qkeys[i] .. ((v == nil or v == null) and "null" or enc(v))
      end
      out((self.count == 0 and "[\n" or ",\n") .. "{" .. table.concat(f, ",") .. "}")
      self.count = self.count + 1
    end
    function w:finish() out(self.count == 0 and "[]\n" or "\n]\n") end
  else
    local buf, widths, flushed = {}, {}, false
    for i = 1, n do widths[i] = width(titles[i]) end
    local function line(cells)
      local parts = {}
      for i = 1, n do
        local s = cells[i]
        parts[i] = i < n and (s .. (" "):rep(math.max(0, widths[i] - width(s)))) or s
      end
      out((table.concat(parts, "  "):gsub("%s+$", "")) .. "\n")
    end
    local function flush()
      if flushed then return end
      flushed = true
      line(titles)
      for _, cells in ipairs(buf) do line(cells) end
      buf = nil
    end
    function w:row(vals)
      local cells = {}
      for i = 1, n do cells[i] = cell(vals[i]) end
      self.count = self.count + 1
      if flushed then return line(cells) end
      for i = 1, n do local l = width(cells[i]); if l > widths[i] then widths[i] = l end end
      buf[#buf + 1] = cells
      if #buf >= M.BUFFER then flush() end
    end
    function w:finish() flush() end
  end
  return w
end

-- All rows at once; rows keyed by column name (or arrays in column order).
function M.rows(rows, columns, fmt, out)
  local w = M.writer(columns, fmt, out)
  local keys = names(columns)
  for _, r in ipairs(rows) do
    if r[1] ~= nil and r[keys[1]] == nil then w:row(r)
    else
      local vals = {}
      for i, k in ipairs(keys) do vals[i] = r[k] end
      w:row(vals)
    end
  end
  w:finish()
  return w.count
end

-- The columns of keyed rows, in first-seen order of a sorted key list (for ad-hoc tables).
-- " (did you mean 'x'?)" when one of candidates is within a small edit distance of word, else "".
function M.did_you_mean(word, candidates)
  word = tostring(word or ""):lower()
  local function distance(a, b)               -- edits, a swap of neighbours counting as one (OSA)
    local d = {}
    for i = 0, #a do d[i] = { [0] = i } end
    for j = 0, #b do d[0][j] = j end
    for i = 1, #a do
      for j = 1, #b do
        local cost = a:byte(i) == b:byte(j) and 0 or 1
        d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
        if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
          d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
        end
      end
    end
    return d[#a][#b]
  end
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = distance(word, tostring(c):lower())
    if d <= math.max(1, #word // 3) and (not best_d or d < best_d) then best, best_d = c, d end
  end
  return best and (" (did you mean '%s'?)"):format(best) or ""
end

function M.columns_of(rows)
  local seen, cols = {}, {}
  for _, r in ipairs(rows) do
    local ks = {}
    for k in pairs(r) do if not seen[k] then ks[#ks + 1] = k end end
    table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(ks) do seen[k] = true; cols[#cols + 1] = k end
  end
  return cols
end

return M
