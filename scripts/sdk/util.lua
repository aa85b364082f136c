-- sdk/util.lua — small helpers every connector and the engine share: times, Link headers, URLs.
local M = {}

-- ISO 8601 UTC with milliseconds: sortable text, understood by SQLite's date functions.
function M.iso(t) return iso8601.format(t or sched.time()) end

-- "2024-05-01T12:00:00Z" / "...12:00:00.123+02:00" -> epoch seconds (float) or nil.
M.parse_iso = iso8601.parse

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

-- A non-empty string, or nil (providers send "" and null for "none").
function M.str(v) return type(v) == "string" and v ~= "" and v or nil end

-- The components an instance has on, from a setting listing some of `known` (comma or space separated;
-- empty or "all": every one) -> a set | nil, "<app>: unknown component 'x' (components: ...)".
function M.components(value, known, app)
  local on = {}
  if value == nil or value == "" or value == "all" then
    for _, k in ipairs(known) do on[k] = true end
    return on
  end
  local valid = {}
  for _, k in ipairs(known) do valid[k] = true end
  for name in tostring(value):gmatch("[^,%s]+") do
    if not valid[name] then
      return nil, ("%s: unknown component '%s' (components: %s)"):format(app, name, table.concat(known, ", "))
    end
    on[name] = true
  end
  return on
end

-- The scopes of the components a set turns on (util.components), each once, in the order of `known`:
-- scopes[component] lists what that component needs.
function M.component_scopes(on, known, scopes)
  local list, seen = {}, {}
  for _, k in ipairs(known) do
    for _, sc in ipairs(on[k] and scopes[k] or {}) do
      if not seen[sc] then seen[sc] = true; list[#list + 1] = sc end
    end
  end
  return list
end

-- Operational failures travel as data: `nil, message, token` from the C modules and Client:request; when
-- a connector's code raises one (ctx:get, fail()), it is this object, so the engine reads the token
-- (auth, permission, unavailable, not_found, ...) instead of parsing the message.  It prints as its message.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.message end
Failure.__concat = function(a, b) return tostring(a) .. tostring(b) end
function M.failure(message, token, resp)
  return setmetatable({ message = tostring(message), token = token, resp = resp }, Failure)
end
-- The token of a raised error: a failure's, "cancelled" for a cancelled task, else nil.
function M.token_of(e)
  if getmetatable(e) == Failure then return e.token end
  if type(e) == "string" and e:match("cancelled$") then return "cancelled" end
end

-- A raised error that is json.decode's "undeclared field" (a listing decoded with only its declared fields,
-- and code reading another): a misuse to raise, never an item to reject or a provider's fault.
function M.undeclared(e)
  return type(e) == "string" and e:find("json: undeclared field", 1, true) ~= nil
end

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

-- JSON that may travel in an HTTP header (an API's argument carried as a header, e.g. Dropbox-API-Arg):
-- every character from U+007F up written as a \uXXXX escape (a surrogate pair past U+FFFF), so the
-- header is ASCII.  -> text | nil, err
function M.header_json(v)
  local text, err = json.encode(v)
  if not text then return nil, err end
  return (text:gsub("[\127\194-\244][\128-\191]*", function(ch)
    local cp = utf8.codepoint(ch)
    if cp < 0x10000 then return ("\\u%04x"):format(cp) end
    cp = cp - 0x10000
    return ("\\u%04x\\u%04x"):format(0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF))
  end))
end

return M
