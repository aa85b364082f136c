-- sdk/csv.lua — reading CSV (RFC 4180), for providers that hand out logs as CSV files (Salesforce's
-- EventLogFile).  Records end with CRLF (a bare LF is taken too: files written on Unix); a field that
-- holds a comma, a quote or a line break is quoted, a quote inside it doubled.  A final line break is
-- optional.  Anything else — a quote inside an unquoted field, text after a closing quote, a quote left
-- open — is refused with where it happened: a log that cannot be read must not read as fewer rows.
local M = {}

-- csv.rows(text) -> {{field, ...}, ...} | nil, "csv: <why> at line N"
function M.rows(text)
  if type(text) ~= "string" then error("csv.rows: text must be a string", 2) end
  local rows, row = {}, {}
  local i, n, line = 1, #text, 1
  if n == 0 then return rows end
  while true do
    local field
    if text:byte(i) == 34 then                          -- "quoted", "" inside
      local parts, j = {}, i + 1
      while true do
        local q = text:find('"', j, true)
        if not q then return nil, ("csv: a quoted field is not closed (it starts at line %d)"):format(line) end
        local piece = text:sub(j, q - 1)
        for _ in piece:gmatch("\n") do line = line + 1 end
        parts[#parts + 1] = piece
        if text:byte(q + 1) == 34 then parts[#parts + 1] = '"'; j = q + 2
        else i = q + 1; break end
      end
      field = table.concat(parts)
      local b = text:byte(i)
      if b and b ~= 44 and b ~= 10 and not (b == 13 and text:byte(i + 1) == 10) then
        return nil, ("csv: text after a closing quote at line %d"):format(line)
      end
    else
      local e = text:find("[,\r\n\"]", i) or n + 1
      while text:byte(e) == 13 and text:byte(e + 1) ~= 10 do e = text:find("[,\r\n\"]", e + 1) or n + 1 end
      if text:byte(e) == 34 then return nil, ("csv: a quote inside an unquoted field at line %d"):format(line) end
      field, i = text:sub(i, e - 1), e
    end
    row[#row + 1] = field
    local b = text:byte(i)
    if b == 44 then
      i = i + 1
    else                                                -- end of the record: CRLF, LF or the end
      rows[#rows + 1], row = row, {}
      if b == 13 then i = i + 2 elseif b == 10 then i = i + 1 end
      line = line + 1
      if i > n then return rows end
    end
  end
end

-- csv.records(text) -> {{name = value, ...}, ...}, header | nil, err: the first row names the fields;
-- a record with another number of fields than the header is refused.
function M.records(text)
  local rows, err = M.rows(text)
  if not rows then return nil, err end
  local header = rows[1]
  if not header then return {}, {} end
  local out = {}
  for k = 2, #rows do
    local r = rows[k]
    if #r ~= #header then
      return nil, ("csv: record %d has %d fields, the header %d"):format(k - 1, #r, #header)
    end
    local rec = {}
    for c, name in ipairs(header) do rec[name] = r[c] end
    out[#out + 1] = rec
  end
  return out, header
end

return M
