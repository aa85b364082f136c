-- sandbox/okta/hooks.lua — event hooks: the management API, the one-time verification GET and signed
-- (shared header secret) deliveries of System Log events.
local O = require "sandbox.okta.org"
local T, Okta = O.T, O.Okta
local json, jnull, iso = O.json, O.jnull, O.iso

---------------------------------------------------------------------------------------------------
-- Event hooks (outgoing)
---------------------------------------------------------------------------------------------------
function Okta:hook_json(h)
  local b = self.base_url .. "/api/v1/eventHooks/" .. h.id
  local headers = {}
  for i, kv in ipairs(h.headers or {}) do headers[i] = { key = kv.key, value = kv.value } end
  return { id = h.id, status = h.status, verificationStatus = h.verificationStatus, name = h.name,
           description = h.description or jnull(), created = iso(h.created), createdBy = h.createdBy,
           lastUpdated = iso(h.lastUpdated),
           events = { type = "EVENT_TYPE", items = json().array(T.deep(h.items)), filter = jnull() },
           channel = { type = "HTTP", version = "1.0.0",
                       config = { uri = h.uri, headers = json().array(headers), method = "POST",
                                  authScheme = h.auth_key and { type = "HEADER", key = h.auth_key } or jnull() } },
           _links = { self = { href = b },
                      verify = { href = b .. "/lifecycle/verify", hints = { allow = json().array({ "POST" }) } },
                      deactivate = { href = b .. "/lifecycle/deactivate", hints = { allow = json().array({ "POST" }) } } } }
end

function Okta:create_hook(spec)
  local st = self.state
  local n = #st.hooks + 1
  local h = { id = "who" .. T.b62(17, self.seed, "hook", n), name = spec.name or ("hook " .. n), status = "ACTIVE",
              verificationStatus = "UNVERIFIED", created = self:now_ms(), createdBy = self.admin.id,
              items = spec.items or {}, uri = spec.uri, headers = spec.headers or {},
              auth_key = spec.auth_key, auth_value = spec.auth_value, description = spec.description }
  h.lastUpdated = h.created
  st.hooks[#st.hooks + 1] = h
  return h
end

-- one-time verification: GET uri with X-Okta-Verification-Challenge; expect {"verification": value}
-- (blocking: call inside a task).  Returns true or nil, err.
function Okta:verify_hook(h)
  local challenge = T.b62(40, self.seed, "challenge", h.id, self.seq)
  local headers = { ["X-Okta-Verification-Challenge"] = challenge, Accept = "application/json" }
  for _, kv in ipairs(h.headers or {}) do headers[kv.key] = kv.value end
  if h.auth_key then headers[h.auth_key] = h.auth_value end
  local ok_resp
  for _ = 1, 2 do                          -- one retry, as Okta does
    local res = T.host("http").request{ method = "GET", url = h.uri, headers = headers, timeout = 3 }
    if res and res.status == 200 then
      local body = json().decode(res.body or "")
      if type(body) == "table" and body.verification == challenge then ok_resp = true; break end
    end
  end
  if not ok_resp then return nil, "verification failed" end
  h.verificationStatus = "VERIFIED"
  h.lastUpdated = self:now_ms()
  return true
end

function Okta:hook_deliver(ev)
  for _, h in ipairs(self.state.hooks) do
    if h.status == "ACTIVE" and h.verificationStatus == "VERIFIED" then
      local want = false
      for _, it in ipairs(h.items) do if it == ev.eventType then want = true; break end end
      if want then
        self.ndeliv = (self.ndeliv or 0) + 1
        local body = json().encode{
          eventType = "com.okta.event_hook", eventTypeVersion = "1.0", cloudEventsVersion = "0.1",
          contentType = "application/json", eventId = T.uuid(self.seed, "delivery", self.ndeliv),
          eventTime = T.iso_ms(self:now_ms()), source = self.base_url .. "/api/v1/eventHooks/" .. h.id,
          data = { events = json().array({ ev }) } }
        local headers = { ["Content-Type"] = "application/json", Accept = "application/json" }
        for _, kv in ipairs(h.headers or {}) do headers[kv.key] = kv.value end
        if h.auth_key then headers[h.auth_key] = h.auth_value end
        self:deliver{ url = h.uri, headers = headers, body = body, event = ev.eventType, retries = 1,
                      no_retry_4xx = true, timeout = 3, hook = h.id }
      end
    end
  end
end

-- Test helper: register an event hook for all event types the tenant emits, authenticated with
-- `Authorization: <secret>`.  opts.verify (default true) runs the verification GET first (in a task).
function Okta:webhook_target(url, secret, opts)
  opts = opts or {}
  local items = opts.events or { "user.session.start", "user.lifecycle.suspend", "user.lifecycle.unsuspend",
    "user.lifecycle.deactivate", "user.lifecycle.activate", "user.lifecycle.reactivate", "user.account.unlock_by_admin",
    "user.account.expire_password", "user.account.reset_password", "user.session.clear", "user.account.lock",
    "group.user_membership.add", "group.user_membership.remove", "app.oauth2.as.consent.revoke",
    "app.oauth2.token.revoke", "user.account.privilege.revoke", "user.lifecycle.delete.initiated" }
  local h = self:create_hook{ uri = url, items = items, auth_key = "Authorization", auth_value = secret,
                              name = opts.name or "cachost" }
  if opts.verify == false then
    h.verificationStatus = "VERIFIED"
  else
    local t = T.host("sched").spawn(function() return self:verify_hook(h) end)
    self.tasks[#self.tasks + 1] = t
  end
  return h
end

function Okta:h_hooks(req)
  if req.method == "GET" then
    local out = {}
    for i, h in ipairs(self.state.hooks) do out[i] = self:hook_json(h) end
    return 200, json().array(out)
  end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" then return self:err("E0000003") end
  local ch = body.channel or {}
  local cfg = ch.config or {}
  if type(body.name) ~= "string" or type(cfg.uri) ~= "string" or type(body.events) ~= "table" then
    return self:err("E0000001", "Api validation failed: eventHook", 400, { { errorSummary = "name, events and channel.config.uri are required" } })
  end
  if #self.state.hooks >= 25 then return self:err("E0000001", "Api validation failed: maximum number of event hooks reached") end
  local auth = cfg.authScheme
  local h = self:create_hook{ name = body.name, description = body.description ~= json().null and body.description or nil,
    items = body.events.items or {}, uri = cfg.uri, headers = cfg.headers ~= json().null and cfg.headers or {},
    auth_key = type(auth) == "table" and auth.key or nil, auth_value = type(auth) == "table" and auth.value or nil }
  return 200, self:hook_json(h)
end

function Okta:hook_or_404(id)
  for _, h in ipairs(self.state.hooks) do if h.id == id then return h end end
end

function Okta:h_hook(req)
  local h = self:hook_or_404(req.params.hid)
  if not h then return self:not_found("EventHook", req.params.hid) end
  if req.method == "DELETE" then
    if h.status == "ACTIVE" then return self:err("E0000001", "Api validation failed: Cannot delete an ACTIVE event hook") end
    for i, x in ipairs(self.state.hooks) do if x == h then table.remove(self.state.hooks, i) break end end
    return 204, ""
  end
  return 200, self:hook_json(h)
end

function Okta:h_hook_lifecycle(req)
  local h = self:hook_or_404(req.params.hid)
  if not h then return self:not_found("EventHook", req.params.hid) end
  local act = req.params.action
  if act == "verify" then
    local ok = self:verify_hook(h)
    if not ok then
      return self:err("E0000001", "Api validation failed: Verification of the event hook failed", 400,
                      { { errorSummary = "Event hook verification failed" } })
    end
    self:add_event{ eventType = "event_hook.verified", actor = req.actor,
                    target = { { id = h.id, type = "EventHook", alternateId = h.name, displayName = h.name, detailEntry = jnull() } } }
  elseif act == "activate" then h.status = "ACTIVE"
  elseif act == "deactivate" then h.status = "INACTIVE"
  else return self:not_found("Resource", req.path) end
  h.lastUpdated = self:now_ms()
  return 200, self:hook_json(h)
end

local H = { scope = "okta.eventHooks" }
return {
  { "GET", "/api/v1/eventHooks", Okta.h_hooks, H },
  { "POST", "/api/v1/eventHooks", Okta.h_hooks, H },
  { "GET", "/api/v1/eventHooks/:hid", Okta.h_hook, H },
  { "DELETE", "/api/v1/eventHooks/:hid", Okta.h_hook, H },
  { "POST", "/api/v1/eventHooks/:hid/lifecycle/:action", Okta.h_hook_lifecycle, H },
}
