-- sdk/util.lua — small helpers every connector and the engine share: times, Link headers, URLs.
local M = {}

-- ISO 8601 UTC with milliseconds: sortable text, understood by SQLite's date functions.
function M.iso(t)
  t = t or sched.time()
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(math.min(999, math.floor((t - s) * 1000 + 0.5)))
end

-- days since 1970-01-01 of a civil date (Howard Hinnant), so no dependence on the local time zone
local function days_from_civil(y, mo, d)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
end

-- Parses "2024-05-01T12:00:00Z" / "...12:00:00.123+02:00" -> epoch seconds (float) or nil.  Event times
-- of a page share their date: the date part is remembered.
local day_cache, day_cache_n = {}, 0
local function digit2(a, b) return (a - 48) * 10 + b - 48 end
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  -- fast path for what providers send most: YYYY-MM-DDTHH:MM:SS[.fff]Z
  local n = #s
  if n >= 20 and s:byte(n) == 90 and s:byte(11) == 84 and s:byte(14) == 58 and s:byte(17) == 58 then
    local days = day_cache[s:sub(1, 10)]
    local h1, h2, _, m1, m2, _, s1, s2, dot = s:byte(12, 20)
    if days and (n == 20 or dot == 46) then
      local t = days * 86400 + digit2(h1, h2) * 3600 + digit2(m1, m2) * 60 + digit2(s1, s2)
      if n > 21 then t = t + (tonumber(s:sub(21, n - 1)) or 0) / 10 ^ (n - 21) end
      return t
    end
  end
  local date, h, mi, sec, frac, tz = s:match("^(%d%d%d%d%-%d%d%-%d%d)[T ](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not date then return nil end
  local days = day_cache[date]
  if not days then
    days = days_from_civil(tonumber(date:sub(1, 4)), tonumber(date:sub(6, 7)), tonumber(date:sub(9, 10)))
    if day_cache_n > 4096 then day_cache, day_cache_n = {}, 0 end
    day_cache[date], day_cache_n = days, day_cache_n + 1
  end
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) + (frac ~= "" and tonumber("0" .. frac) or 0)
  if tz ~= "" and tz ~= "Z" then
    local sign, oh, om = tz:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    t = t - (sign == "+" and 1 or -1) * (tonumber(oh) * 3600 + tonumber(om) * 60)
  end
  return t
end

-- RFC 8288 Link header(s) -> { next = url, prev = url, ... }
function M.links(header)
  local out = {}
  if type(header) ~= "string" then return out end
  for url, params in header:gmatch("<([^>]*)>([^,<]*)") do
    for rel in (params:match('rel="([^"]*)"') or params:match("rel=([%w%-]+)") or ""):gmatch("%S+") do
      out[rel] = url
    end
  end
  return out
end

function M.trim_slash(s) return (s:gsub("/+$", "")) end

-- multipart/form-data body (RFC 7578) from an ordered list of parts {name=, data=, filename=, content_type=};
-- order matters to some APIs (Box wants `attributes` before `file`).  -> body, content_type
function M.multipart(parts)
  local boundary = "cachost-" .. crypto.hex(crypto.random(12))
  local out = {}
  for _, p in ipairs(parts) do
    local disp = ('form-data; name="%s"'):format(p.name)
    if p.filename then disp = disp .. ('; filename="%s"'):format((p.filename:gsub('[\r\n"]', "_"))) end
    out[#out + 1] = "--" .. boundary .. "\r\nContent-Disposition: " .. disp .. "\r\n"
    if p.content_type then out[#out + 1] = "Content-Type: " .. p.content_type .. "\r\n" end
    out[#out + 1] = "\r\n" .. p.data .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

return M
