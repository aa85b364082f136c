-- sdk/util.lua — small helpers every connector and the engine share: times, Link headers, URLs.
local M = {}

-- ISO 8601 UTC with milliseconds: sortable text, understood by SQLite's date functions.
function M.iso(t)
  t = t or sched.time()
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(math.floor((t - s) * 1000))
end

-- Parses "2024-05-01T12:00:00Z" / "...12:00:00.123+02:00" -> epoch seconds (float) or nil.
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac, tz = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)[T ](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then return nil end
  -- days from civil (Howard Hinnant), so no dependence on the local time zone
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) + (tonumber("0" .. frac) or 0)
  local sign, oh, om = tz:match("^([+-])(%d%d):?(%d%d)$")
  if sign then t = t - (sign == "+" and 1 or -1) * (tonumber(oh) * 3600 + tonumber(om) * 60) end
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
