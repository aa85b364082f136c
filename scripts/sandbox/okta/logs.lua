-- sandbox/okta/logs.lua — the System Log: generated events (pure in (seed, i), timestamps monotonic in
-- i, so a 1,000,000-event log costs no memory) merged with stored ones (state changes, injected events);
-- since/until, filter, q, both sort orders, and the polling next link that never ends.
local O = require "sandbox.okta.org"
local T, Okta = O.T, O.Okta
local json, jnull, iso = O.json, O.jnull, O.iso
local CITIES, FOREIGN, UAS = O.CITIES, O.FOREIGN, O.UAS

---------------------------------------------------------------------------------------------------
-- System Log: generated events (pure in (seed, i)) merged with stored events
---------------------------------------------------------------------------------------------------
local GEN_TYPES = {   -- cumulative weights
  { 0.40, "user.session.start" }, { 0.65, "user.authentication.sso" }, { 0.80, "user.authentication.auth_via_mfa" },
  { 0.88, "policy.evaluate_sign_on" }, { 0.95, "user.session.end" }, { 0.97, "group.user_membership.add" },
  { 0.98, "app.oauth2.as.consent.grant" }, { 0.99, "user.account.update_profile" }, { 1.01, "user.account.lock" },
}
local DISPLAY = {
  ["user.session.start"] = { "User login to Okta", "core.user_auth.login_success" },
  ["user.authentication.sso"] = { "User single sign on to app", "app.auth.sso" },
  ["user.authentication.auth_via_mfa"] = { "Authentication of user via MFA", "core.user.factor.attempt_success" },
  ["policy.evaluate_sign_on"] = { "Evaluation of sign-on policy", nil },
  ["user.session.end"] = { "User logout from Okta", "core.user_auth.logout_success" },
  ["group.user_membership.add"] = { "Add user to group membership", "group.user_membership.add" },
  ["group.user_membership.remove"] = { "Remove user from group membership", "group.user_membership.remove" },
  ["app.oauth2.as.consent.grant"] = { "User granted consent to app", nil },
  ["app.oauth2.as.consent.revoke"] = { "Consent revoked", nil },
  ["user.account.update_profile"] = { "Update user profile for Okta", "core.user.config.profile_update.success" },
  ["user.account.lock"] = { "Max sign in attempts exceeded", "core.user_auth.account_locked" },
  ["user.lifecycle.suspend"] = { "Suspend Okta user", "core.user.config.user_status.suspended" },
  ["user.lifecycle.unsuspend"] = { "Unsuspend Okta user", "core.user.config.user_status.unsuspended" },
  ["user.lifecycle.deactivate"] = { "Deactivate Okta user", "core.user.config.user_deactivated" },
  ["user.lifecycle.activate"] = { "Activate Okta user", "core.user.config.user_activated" },
  ["user.lifecycle.reactivate"] = { "Reactivate Okta user", "core.user.config.user_activated" },
  ["user.lifecycle.delete.initiated"] = { "Delete Okta user", "core.user.config.user_deleted" },
  ["user.account.unlock_by_admin"] = { "Unlock user account", "core.user.config.user_status.unlocked" },
  ["user.account.expire_password"] = { "User's Okta password is expired", "core.user.config.password_expired" },
  ["user.account.reset_password"] = { "Fired when the user's Okta password is reset", "core.user.config.password_reset" },
  ["user.mfa.factor.reset_all"] = { "Reset all factors for user", "core.user.factor.reset_all" },
  ["user.session.clear"] = { "Clear user session", "core.user.session.clear" },
  ["app.oauth2.token.revoke"] = { "OAuth2 token revocation request", nil },
  ["user.account.privilege.revoke"] = { "User privilege revocation", "core.user.admin_privilege.revoked" },
  ["group.privilege.revoke"] = { "Group privilege revocation", nil },
  ["system.api_token.revoke"] = { "Revoke API token", "api.token.revoke" },
  ["application.user_membership.remove"] = { "Remove user from application membership", "app.user_management.user_deleted" },
  ["application.lifecycle.deactivate"] = { "Deactivate application", "app.generic.config.app_deactivated" },
  ["event_hook.verified"] = { "Event hook verified", nil },
}

-- timestamp (ms) of generated event i (0-based): monotonic, spread evenly over [now - days, now)
function Okta:gen_ms(i)
  local span = self.days * 86400000
  local u = T.unit(T.hash(self.seed, "logt", i))
  return self.t0_ms - span + math.floor((i + u) * span / self.nevents)
end

local function geo(c)
  return { city = c[1], state = c[2], country = c[3], postalCode = c[4], geolocation = { lat = c[5], lon = c[6] } }
end

-- the full LogEvent for generated index i
function Okta:gen_event(i)
  local seed = self.seed
  local h = T.hash(seed, "logev", i)
  local x = T.unit(h)
  local etype = "user.session.start"
  for _, w in ipairs(GEN_TYPES) do if x < w[1] then etype = w[2]; break end end
  local u = self.gen_users[T.below(T.hash(seed, "actor", i), #self.gen_users) + 1]
  local h2 = T.hash(seed, "detail", i)
  local ip, city = u.ip, CITIES[u.city]
  local result, reason = "SUCCESS", jnull()
  if etype == "user.session.start" and T.unit(h2) < self.failed_share then
    result, reason = "FAILURE", "INVALID_CREDENTIALS"
    if T.unit(T.hash(h2, 1)) < 0.3 then   -- failures from elsewhere
      city = FOREIGN[T.below(T.hash(h2, 2), #FOREIGN) + 1]
      ip = string.format("%d.%d.%d.%d", 41 + T.below(T.hash(h2, 3), 150), T.below(T.hash(h2, 4), 256), T.below(T.hash(h2, 5), 256), 1 + T.below(T.hash(h2, 6), 254))
    end
  elseif etype == "policy.evaluate_sign_on" then
    result = "ALLOW"
  elseif etype == "user.account.lock" then
    result = "FAILURE"; reason = "LOCKED_OUT"
  end
  local target
  if etype == "user.authentication.sso" or etype == "app.oauth2.as.consent.grant" then
    local a = self.state.apps[T.below(T.hash(seed, "app", i), #self.state.apps) + 1]
    target = { { id = a.id, type = "AppInstance", alternateId = a.label, displayName = a.label, detailEntry = jnull() } }
  elseif etype == "group.user_membership.add" and #self.state.groups > 0 then
    local g = self.state.groups[T.below(T.hash(seed, "grp", i), #self.state.groups) + 1]
    target = { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() },
               { id = g.id, type = "UserGroup", alternateId = "unknown", displayName = g.name, detailEntry = jnull() } }
  else
    target = { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() } }
  end
  return self:event{
    ms = self:gen_ms(i), uuid = T.uuid(seed, "uuid", i), eventType = etype, result = result, reason = reason,
    actor = { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() },
    ip = ip, city = city, ua = UAS[u.ua], target = target, txid = T.b62(27, seed, "tx", i),
    session = "102" .. T.b62(22, seed, "sess", u.index, i // 50),
    severity = (result == "FAILURE") and "WARN" or "INFO", request_id = T.hexs(32, seed, "rq", i),
  }
end

-- build a LogEvent table (fixtures/okta/sign-in-event.json shape)
function Okta:event(e)
  local d = DISPLAY[e.eventType] or { e.eventType, nil }
  local city, ua = e.city or CITIES[1], e.ua or UAS[1]
  local g = geo(city)
  return {
    actor = e.actor,
    client = { userAgent = { rawUserAgent = ua[1], os = ua[2], browser = ua[3] }, zone = jnull(), device = ua[4],
               id = jnull(), ipAddress = e.ip, geographicalContext = g },
    device = jnull(),
    authenticationContext = { authenticationProvider = jnull(), credentialProvider = jnull(), credentialType = jnull(),
                              issuer = jnull(), interface = jnull(), authenticationStep = 0,
                              rootSessionId = e.session or jnull(), externalSessionId = e.session or jnull() },
    displayMessage = d[1], eventType = e.eventType,
    outcome = { result = e.result or "SUCCESS", reason = e.reason or jnull() },
    published = T.iso_ms(e.ms),
    securityContext = { asNumber = 394089, asOrg = "ASN 0000", isp = "sandbox-isp", domain = jnull(), isProxy = false },
    severity = e.severity or "INFO",
    debugContext = { debugData = { requestId = e.request_id or "", requestUri = e.request_uri or "/api/v1/authn", url = e.request_uri or "/api/v1/authn" } },
    legacyEventType = d[2] or jnull(),
    transaction = { type = e.txtype or "WEB", id = e.txid or "", detail = setmetatable({}, { __jsontype = "object" }) },
    uuid = e.uuid, version = "0",
    request = { ipChain = json().array({ { ip = e.ip, geographicalContext = g, version = "V4", source = jnull() } }) },
    target = json().array(e.target or {}),
  }
end

-- store an event (state change or injected).  spec = {eventType, actor?, target?, result?, reason?, ip?, ms?, ...}
function Okta:add_event(spec)
  self.seq = self.seq + 1
  local seq = self.seq
  local ms = spec.ms or (spec.published and T.parse_iso(spec.published)) or self:now_ms()
  local ev = spec.event
  if not ev then
    local u = spec.user and self:find_user(spec.user) or nil
    local actor = spec.actor or (u and { id = u.id, type = "User", alternateId = u.profile.login,
                  displayName = u.profile.displayName, detailEntry = jnull() })
                  or { id = self.admin.id, type = "User", alternateId = self.admin.profile.login,
                       displayName = self.admin.profile.displayName, detailEntry = jnull() }
    ev = self:event{ ms = ms, uuid = T.uuid(self.seed, "stored", seq), eventType = spec.eventType,
                     result = spec.result, reason = spec.reason, actor = actor,
                     ip = spec.ip or (u and u.ip) or "127.0.0.1", city = spec.city, ua = spec.ua,
                     target = spec.target, txid = T.b62(27, self.seed, "stx", seq), session = spec.session,
                     severity = spec.severity, request_id = T.hexs(32, self.seed, "srq", seq),
                     request_uri = spec.request_uri, txtype = spec.txtype }
  end
  T.insert_sorted(self.state.events, { ms = ms, seq = seq, ev = ev })
  self:hook_deliver(ev)
  return ev
end

-- n failed sign-ins, then one success, all from one IP (for detection tests)
function Okta:simulate_bruteforce(login, n, opts)
  opts = opts or {}
  local u = assert(self:find_user(login), "no such user " .. tostring(login))
  local ip = opts.ip or "203.0.113.66"
  local city = FOREIGN[2]
  local out = {}
  local tgt = { { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName, detailEntry = jnull() } }
  for _ = 1, n do
    out[#out + 1] = self:add_event{ eventType = "user.session.start", user = u, result = "FAILURE",
      reason = "INVALID_CREDENTIALS", ip = ip, city = city, severity = "WARN", target = tgt }
  end
  if opts.success ~= false then
    out[#out + 1] = self:add_event{ eventType = "user.session.start", user = u, result = "SUCCESS", ip = ip, city = city, target = tgt }
  end
  return out
end

local function enc_cursor(ms, src, idx) return string.format("%d_%d_%d", ms, src, idx) end
local function dec_cursor(s)
  local a, b, c = (s or ""):match("^(%-?%d+)_(%d+)_(%d+)$")
  if not a then return nil end
  return math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c))
end

local LOG_ATTRS = nil -- any attribute path is accepted by the System Log filter

-- Query the System Log.  Returns events (tables), next cursor or nil, and the resolved bounds.
function Okta:query_log(q)
  local now = self:now_ms()
  local until_ms, since_ms
  if q["until"] and q["until"] ~= "" then
    until_ms = T.parse_iso(q["until"])
    if not until_ms then return nil, "until" end
  end
  local bounded = until_ms ~= nil
  local upper = until_ms or (now + 1)      -- polling includes events published at `now`
  if q.since and q.since ~= "" then
    since_ms = T.parse_iso(q.since)
    if not since_ms then return nil, "since" end
  else
    since_ms = (until_ms or now) - 7 * 86400000
  end
  local limit = T.intparam(q.limit, 100, 0)
  if not limit then return nil, "limit" end
  if limit > 1000 then limit = 1000 end
  local desc = (q.sortOrder or "ASCENDING"):upper() == "DESCENDING"
  local pred = nil
  if q.filter and q.filter ~= "" then
    local f, err = T.scim_filter(q.filter, LOG_ATTRS)
    if not f then return nil, "filter: " .. err end
    pred = f
  end
  if q.q and q.q ~= "" then
    local words = {}
    for w in q.q:gmatch("%S+") do words[#words + 1] = w:lower() end
    local jsonm = json()
    local inner = pred
    pred = function(ev)
      if inner and not inner(ev) then return false end
      local s = jsonm.encode(ev):lower()
      for _, w in ipairs(words) do if not s:find(w, 1, true) then return false end end
      return true
    end
  end
  local K
  if q.after and q.after ~= "" then
    local cms, csrc, cidx = dec_cursor(q.after)
    if not cms then return nil, "after" end
    K = { cms, csrc, cidx }
  else
    K = desc and { upper, -1, 0 } or { since_ms - 1, 9, 0 }
  end
  local out, last_key, more, scanned = {}, nil, false, 0
  T.merged_scan(self.nevents, function(i) return self:gen_ms(i) end, function(i) return self:gen_event(i) end,
    self.state.events, K, desc and -1 or 1, function(ms, key, get)
      if desc then
        if ms < since_ms then return true end
      elseif ms >= upper or ms > now then return true end
      if #out >= limit then more = true; return true end
      if ms >= since_ms and ms < upper and ms <= now then
        local ev = get()
        if not pred or pred(ev) then out[#out + 1] = ev end
      end
      last_key = key
      scanned = scanned + 1
      -- a selective filter over a huge log: hand back what we have with a cursor
      if scanned >= 20000 and #out < limit then more = true; return true end
      return false
    end)
  local cursor = (last_key or not desc) and enc_cursor(table.unpack(last_key or K)) or nil
  if desc or bounded then return out, more and cursor or nil, limit end
  return out, cursor, limit              -- polling: the next link is always there
end

-- total stored + generated events (ground truth)
function Okta:log_size() return self.nevents + #self.state.events end

function Okta:h_logs(req)
  local q = req.query
  local events, cursor, limit_or_err = self:query_log(q)
  if not events then
    return self:err("E0000001", "Api validation failed: " .. tostring(cursor), 400,
                    { { errorSummary = "Invalid value for parameter " .. tostring(cursor) } })
  end
  local params = {}
  for _, k in ipairs({ "since", "until", "filter", "q" }) do
    if q[k] and q[k] ~= "" then params[#params + 1] = { k, q[k] } end
  end
  params[#params + 1] = { "limit", tostring(limit_or_err) }
  if q.sortOrder and q.sortOrder ~= "" then params[#params + 1] = { "sortOrder", q.sortOrder } end
  local self_params = {}
  for i, kv in ipairs(params) do self_params[i] = kv end
  if q.after and q.after ~= "" then self_params[#self_params + 1] = { "after", q.after } end
  local links = { { self.base_url .. "/api/v1/logs?" .. T.qs(self_params), "self" } }
  if cursor then
    local np = {}
    for i, kv in ipairs(params) do np[i] = kv end
    np[#np + 1] = { "after", cursor }
    links[#links + 1] = { self.base_url .. "/api/v1/logs?" .. T.qs(np), "next" }
  end
  return 200, json().array(events), { Link = T.link(links) }
end

-- event hooks API
return {
  { "GET", "/api/v1/logs", Okta.h_logs, { scope = "okta.logs.read" } },
}
