-- sandbox/microsoft/graph/subscriptions.lua — Graph change notifications: subscriptions with the
-- validation handshake, notifications carrying clientState.
local C = require "sandbox.microsoft.common"
local T, MS, json, jnull, A, nz = C.T, C.MS, C.json, C.jnull, C.A, C.nz
local iso7, body_json = C.iso7, C.body_json

local SUB_MAX_MIN = { users = 41760, groups = 41760, drive = 42300 }

-- normalise a subscription resource: "users", "groups", or {drive=id}
function MS:sub_resource(res)
  local r = (res or ""):gsub("^/", "")
  if r == "users" or r == "groups" then return r end
  local did = r:match("^drives/([^/]+)/root$")
  if did and self.state.drive_by_id[did] then return "drive", did end
  local uid = r:match("^users/([^/]+)/drive/root$")
  local u = uid and self:find_user(uid)
  local d = u and self:user_drive(u)
  if d then return "drive", d.id end
  return nil
end

function MS:gsub_json(s)
  return { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#subscriptions/$entity", id = s.id, resource = s.resource,
           applicationId = self.client_id, changeType = s.changeType, clientState = nz(s.clientState),
           notificationUrl = s.notificationUrl, notificationQueryOptions = jnull(), lifecycleNotificationUrl = nz(s.lifecycleNotificationUrl),
           expirationDateTime = iso7(s.exp), creatorId = self.sp_client.id, includeResourceData = false,
           latestSupportedTlsVersion = s.tls or "v1_2", encryptionCertificate = jnull(), encryptionCertificateId = jnull(),
           notificationUrlAppId = jnull() }
end

-- POST {notificationUrl}?validationToken=...; the endpoint must echo the token as text/plain within 10 s
function MS:validate_endpoint(url)
  local token = "Validation: Testing client application reachability for subscription Request-Id: " .. self:request_id()
  local sep = url:find("?", 1, true) and "&" or "?"
  local res, err = T.host("http").request{ method = "POST", url = url .. sep .. "validationToken=" .. T.urlencode(token),
    headers = { ["Content-Type"] = "text/plain; charset=utf-8" }, body = "", timeout = 10 }
  if not res then return nil, "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. (" .. tostring(err) .. ")" end
  if res.status ~= 200 then return nil, "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request." end
  local ct = (res.headers["content-type"] or ""):lower()
  if not ct:find("text/plain", 1, true) then return nil, "Subscription validation request failed. Must respond with 200 OK and a text/plain content type." end
  if res.body ~= token then return nil, "Subscription validation request failed. Response must exactly match validationToken query parameter." end
  return true
end

function MS:check_expiration(req, kind, v)
  local ex = type(v) == "string" and T.parse_iso(v)
  if not ex then return nil, { self:graph_err(400, "ValidationError", "expirationDateTime is required and must be a valid DateTimeOffset.", req) } end
  local now = self:now_ms()
  if ex <= now then return nil, { self:graph_err(400, "ValidationError", "Subscription expiration can only be in the future.", req) } end
  local max = SUB_MAX_MIN[kind] * 60000
  if ex > now + max then
    return nil, { self:graph_err(400, "ValidationError", "Subscription expiration can only be " .. SUB_MAX_MIN[kind] .. " minutes in the future.", req) }
  end
  return ex
end

function MS:h_subscriptions(req)
  local st = self.state
  if req.method == "GET" then
    local out = {}
    for _, s in ipairs(st.subscriptions) do local o = self:gsub_json(s); o["@odata.context"] = nil; out[#out + 1] = o end
    return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#subscriptions", value = A(out) }
  end
  local b = body_json(req)
  if not b then return self:graph_err(400, "InvalidRequest", "Invalid request body.", req) end
  local kind, did = self:sub_resource(b.resource)
  if not kind then return self:graph_err(400, "InvalidRequest", "Resource '" .. tostring(b.resource) .. "' is not supported.", req) end
  if type(b.changeType) ~= "string" or b.changeType == "" then return self:graph_err(400, "ValidationError", "changeType is required.", req) end
  for ct in b.changeType:gmatch("[^,]+") do
    local okct = (kind == "drive" and ct == "updated") or (kind ~= "drive" and (ct == "updated" or ct == "deleted"))
    if not okct then return self:graph_err(400, "ValidationError", "The changeType '" .. ct .. "' is not supported for resource '" .. b.resource .. "'.", req) end
  end
  local url = b.notificationUrl
  if type(url) ~= "string" or not (url:match("^https://") or url:match("^http://127%.") or url:match("^http://localhost")) then
    return self:graph_err(400, "ValidationError", "The notificationUrl must be an HTTPS URL.", req)
  end
  if b.clientState ~= nil and (type(b.clientState) ~= "string" or #b.clientState > 128) then
    return self:graph_err(400, "ValidationError", "clientState must be a string of at most 128 characters.", req)
  end
  local ex, e = self:check_expiration(req, kind, b.expirationDateTime)
  if not ex then return table.unpack(e) end
  local ok, verr = self:validate_endpoint(url)
  if not ok then return self:graph_err(400, "ValidationError", verr, req) end
  local s = { id = T.uuid(self.seed, "gsub", self:seq()), resource = b.resource, kind = kind, drive = did, changeType = b.changeType,
              notificationUrl = url, clientState = b.clientState, exp = ex, lifecycleNotificationUrl = b.lifecycleNotificationUrl,
              tls = b.latestSupportedTlsVersion }
  st.subscriptions[#st.subscriptions + 1] = s
  return 201, self:gsub_json(s)
end

function MS:h_subscription(req)
  local st = self.state
  for i, s in ipairs(st.subscriptions) do
    if s.id == req.params.subid then
      if req.method == "DELETE" then table.remove(st.subscriptions, i); return 204, "" end
      if req.method == "PATCH" then
        local b = body_json(req)
        local ex, e = self:check_expiration(req, s.kind, b and b.expirationDateTime)
        if not ex then return table.unpack(e) end
        local ok, verr = self:validate_endpoint(s.notificationUrl)
        if not ok then return self:graph_err(400, "ValidationError", verr, req) end
        s.exp = ex
      end
      return 200, self:gsub_json(s)
    end
  end
  return self:graph_err(404, "ResourceNotFound", "The object was not found.", req)
end

function MS:send_notification(s, n)
  local now = self:now_ms()
  if s.exp <= now then return end
  local want = false
  for ct in s.changeType:gmatch("[^,]+") do if ct == n.changeType then want = true end end
  if not want then return end
  n.id = T.b62(16, self.seed, "notif", self:seq())
  n.subscriptionId = s.id
  n.subscriptionExpirationDateTime = iso7(s.exp)
  n.clientState = nz(s.clientState)
  n.tenantId = self.tenant_id
  self:deliver{ url = s.notificationUrl, headers = { ["Content-Type"] = "application/json" },
                body = json().encode{ value = A({ n }) }, event = n.changeType, retries = 2, timeout = 3, subscription = s.id }
end

function MS:notify_change(kind, changeType, id, otype, oid)
  for _, s in ipairs(self.state.subscriptions) do
    if s.kind == kind then
      self:send_notification(s, { changeType = changeType, resource = oid,
        resourceData = { ["@odata.type"] = otype, ["@odata.id"] = oid, id = id } })
    end
  end
end

-- drive changes: one notification per change, without resource data (clients run a delta query)
function MS:notify_drive(d)
  for _, s in ipairs(self.state.subscriptions) do
    if s.kind == "drive" and s.drive == d.id then
      self:send_notification(s, { changeType = "updated", resource = s.resource })
    end
  end
end

function MS:sub_routes()
  local V, G = "/v1.0", {}
  return {
    { "GET", V .. "/subscriptions", MS.h_subscriptions, G },
    { "POST", V .. "/subscriptions", MS.h_subscriptions, G },
    { "GET", V .. "/subscriptions/:subid", MS.h_subscription, G },
    { "PATCH", V .. "/subscriptions/:subid", MS.h_subscription, G },
    { "DELETE", V .. "/subscriptions/:subid", MS.h_subscription, G },
  }
end


return true
