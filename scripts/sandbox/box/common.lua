-- sandbox/box/common.lua — what the Box emulator's API surfaces share: the tenant class, JSON helpers,
-- Box's timestamps, error bodies and the two paginations (offset with total_count, marker).
local T = require "sandbox.tenant"

local C = {}
local Box = setmetatable({}, { __index = T.Base })
Box.__index = Box
Box.default_rate_limit = 1000          -- ~1000 requests/min per user (§9)
C.Box = Box

function C.json() return T.host("json") end
function C.crypto() return T.host("crypto") end
function C.jnull() return C.json().null end
local json, crypto, jnull = C.json, C.crypto, C.jnull
C.HELP = "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/"
C.POS_BASE = 1152922976252290000   -- stream positions look like Box's (opaque large integers)

-- Box writes times with the account's offset: "2012-12-12T10:53:43-08:00"
function C.btime(ms)
  if ms == nil then return jnull() end
  return (T.iso_s((ms - 8 * 3600000) // 1000):gsub("Z$", "-08:00"))
end

-- fields= narrows an object to its mini form plus the named fields (§11)
function C.narrow(full, mini_keys, fields)
  if not fields or fields == "" then return full end
  local out = {}
  for _, k in ipairs(mini_keys) do out[k] = full[k] end
  for f in fields:gmatch("[^,%s]+") do if full[f] ~= nil then out[f] = full[f] end end
  return out
end

-- admin powers: the primary admin, co-admins, and the app's service account (App + Enterprise access)
function C.is_admin(u) return u and (u.role == "admin" or u.role == "coadmin" or u.service == true) end
function C.body_of(req)
  local b = json().decode(req.body or "")
  return type(b) == "table" and b or nil
end

---------------------------------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------------------------------
function Box:err(status, code, message, context)
  self.nreq_err = (self.nreq_err or 0) + 1
  return status, { type = "error", status = status, code = code, message = message, context_info = context or jnull(),
                   help_url = C.HELP, request_id = T.hexs(12, self.seed, "rid", self.nreq_err) }
end
function Box:not_found(what)
  return self:err(404, "not_found", "Not Found", { errors = json().array({ { reason = "invalid_parameter", name = what or "item", message = "Invalid value '" .. tostring(what) .. "'." } }) })
end


---------------------------------------------------------------------------------------------------
-- Pagination: offset (total_count) and marker (usemarker=true)
---------------------------------------------------------------------------------------------------
-- offset_only: the endpoint documents limit/offset only (GET /groups, /groups/{id}/memberships,
-- /users/{id}/memberships): usemarker and marker are not its parameters and change nothing.
function Box:paged(req, list, render, offset_only)
  local q = req.query
  local limit = T.intparam(q.limit, 100, 1, 1000)
  if not limit then return self:err(400, "invalid_parameter", "Invalid value for 'limit'") end
  local out = {}
  if not offset_only and (q.usemarker == "true" or (q.marker and q.marker ~= "")) then
    local start = 0
    if q.marker and q.marker ~= "" then
      local raw = crypto().unb64url(q.marker)
      start = raw and math.tointeger(tonumber(raw:match("^m(%d+)$") or "")) or nil
      if not start then return self:err(400, "invalid_parameter", "Invalid value for 'marker'") end
    end
    for i = start + 1, math.min(#list, start + limit) do out[#out + 1] = render(list[i]) end
    local nxt = start + limit < #list and crypto().b64url("m" .. (start + limit)) or jnull()
    return 200, { limit = limit, next_marker = nxt, prev_marker = jnull(), entries = json().array(out) }
  end
  local offset = T.intparam(q.offset, 0, 0)
  if not offset then return self:err(400, "invalid_parameter", "Invalid value for 'offset'") end
  -- "Queries with offset parameter value exceeding 10000 will be rejected with a 400 response" (the spec)
  if offset > self.max_offset then
    return self:err(400, "invalid_parameter", "Invalid value for 'offset'", { errors = json().array({ { reason = "invalid_parameter",
      name = "offset", message = ("Invalid value '%d'. Offset must be less than or equal to %d."):format(offset, self.max_offset) } }) })
  end
  for i = offset + 1, math.min(#list, offset + limit) do out[#out + 1] = render(list[i]) end
  return 200, { total_count = #list, limit = limit, offset = offset,
                order = json().array({ { by = "type", direction = "ASC" }, { by = "name", direction = "ASC" } }),
                entries = json().array(out) }
end


return C
