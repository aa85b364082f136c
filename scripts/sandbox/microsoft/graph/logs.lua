-- sandbox/microsoft/graph/logs.lua — Entra audit logs: directory audits and sign-ins, newest first.
-- Large logs are generated lazily (record i is a pure function of (seed, stream, i)); records caused by
-- state changes or added by tests are stored and merged in.
local C = require "sandbox.microsoft.common"
local T, MS, jnull, A, nz, CITIES = C.T, C.MS, C.jnull, C.A, C.nz, C.CITIES
local DEVICES, SIGNIN_APPS, iso7, ip_of, odata_qs, spread_ms = C.DEVICES, C.SIGNIN_APPS, C.iso7, C.ip_of, C.odata_qs, C.spread_ms
local enc_skip, dec_skip = C.enc_skip, C.dec_skip
local O = require "sandbox.microsoft.graph.odata"
local odata_filter, time_bound = O.odata_filter, O.time_bound

local FOREIGN = { { "Lagos", "Lagos", "NG", 6.5244, 3.3792 }, { "Moscow", "Moscow", "RU", 55.7558, 37.6173 },
  { "Sao Paulo", "Sao Paulo", "BR", -23.5505, -46.6333 }, { "Pyongyang", "Pyongyang", "KP", 39.0392, 125.7625 } }
local SIGNIN_FAIL = {
  { 50126, "Error validating credentials due to invalid username or password." },
  { 50053, "The account is locked, you've tried to sign in too many times with an incorrect user ID or password." },
  { 50074, "Strong Authentication is required." },
  { 53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance." },
  { 50057, "The user account is disabled." },
}

local AUDIT_ACTS = {   -- activityDisplayName, category, loggedByService, operationType, target kind
  { "Update user", "UserManagement", "Core Directory", "Update", "user" },
  { "Add member to group", "GroupManagement", "Core Directory", "Assign", "group" },
  { "Add user", "UserManagement", "Core Directory", "Add", "user" },
  { "Reset password (by admin)", "UserManagement", "Core Directory", "Update", "user" },
  { "Consent to application", "ApplicationManagement", "Core Directory", "Assign", "app" },
  { "Add member to role", "RoleManagement", "Core Directory", "Assign", "user" },
  { "Change user password", "UserManagement", "Self-service Password Management", "Update", "user" },
  { "Add app role assignment to service principal", "ApplicationManagement", "Core Directory", "Assign", "app" },
  { "Update group", "GroupManagement", "Core Directory", "Update", "group" },
  { "GroupLifecyclePolicies_Get", "GroupManagement", "Self-service Group Management", "Update", "group" },
}

function MS:audit_json(e)
  local actor = e.actor
  local init
  if e.app then
    init = { user = jnull(), app = { appId = e.app.appId, displayName = e.app.displayName, servicePrincipalId = e.app.id,
                                     servicePrincipalName = e.app.displayName } }
  else
    init = { app = jnull(), user = { id = actor.id, displayName = jnull(), userPrincipalName = actor.upn, ipAddress = e.ip or actor.ip,
                                     userType = jnull(), homeTenantId = jnull(), homeTenantName = jnull() } }
  end
  local targets = {}
  for _, t in ipairs(e.targets or {}) do
    targets[#targets + 1] = { id = t.id, displayName = nz(t.displayName), type = t.type, userPrincipalName = nz(t.upn),
                              groupType = nz(t.groupType), modifiedProperties = A(t.modified) }
  end
  return { id = e.id, category = e.category, correlationId = e.correlationId, result = e.result or "success",
           resultReason = e.resultReason or "", activityDisplayName = e.activity, activityDateTime = iso7(e.ms),
           loggedByService = e.service or "Core Directory", operationType = e.operationType or "Update", initiatedBy = init,
           targetResources = A(targets), additionalDetails = A(e.additional or {}) }
end

local function user_target(u, mods)
  return { id = u.id, displayName = jnull(), type = "User", upn = u.upn, modified = mods or {} }
end
local function group_target(g, mods)
  return { id = g.id, displayName = g.displayName, type = "Group", groupType = #g.groupTypes > 0 and "unifiedGroups" or "azureAD", modified = mods or {} }
end

function MS:gen_audit(i)
  local seed = self.seed
  local h = T.hash(seed, "audit", i)
  local a = AUDIT_ACTS[T.below(h, #AUDIT_ACTS) + 1]
  local actor = self.gen_users[T.below(T.hash(h, 1), math.min(#self.gen_users, 5)) + 1]
  local target = self.gen_users[T.below(T.hash(h, 2), #self.gen_users) + 1]
  local targets
  if a[5] == "group" and #self.state.groups > 0 then
    local g = self.state.groups[T.below(T.hash(h, 3), #self.state.groups) + 1]
    targets = { group_target(g), user_target(target) }
  elseif a[5] == "app" then
    local sp = self.state.sps[T.below(T.hash(h, 3), #self.state.sps) + 1]
    targets = { { id = sp.id, displayName = sp.displayName, type = "ServicePrincipal", modified = {} } }
  else
    targets = { user_target(target) }
  end
  local corr = T.uuid(seed, "acorr", i)
  local fail = T.unit(T.hash(h, 4)) < 0.03
  return self:audit_json{ id = "Directory_" .. corr .. "_" .. T.b62(5, seed, "aid", i) .. "_" .. (T.hash(h, 5) >> 37),
    ms = spread_ms(self, "audit", self.naudits, i), activity = a[1], category = a[2], service = a[3], operationType = a[4],
    actor = actor, targets = targets, correlationId = corr, result = fail and "failure" or "success",
    resultReason = fail and "Microsoft.Online.Directory.Framework.DirectoryException" or "" }
end

-- a governance change or a test's record: stored, merged into the lazy log
function MS:audit(spec)
  local st = self.state
  local seq = self:seq()
  local ms = spec.ms or self:now_ms()
  local targets = {}
  if spec.target then targets[#targets + 1] = user_target(spec.target, spec.modified) end
  if spec.group then targets[#targets + 1] = group_target(spec.group) end
  if spec.sp then targets[#targets + 1] = { id = spec.sp.id, displayName = spec.sp.displayName, type = "ServicePrincipal", modified = spec.modified or {} } end
  if spec.role then targets[#targets + 1] = { id = spec.role[2], displayName = spec.role[1], type = "Role", modified = {} } end
  local caller = spec.req and spec.req.token
  local app = (not caller or caller.app_only) and self.sp_client or nil
  local actor = (caller and caller.user and st.user_by_id[caller.user]) or self.admin
  local corr = T.uuid(self.seed, "scorr", seq)
  local ev = self:audit_json{ id = "Directory_" .. corr .. "_S" .. seq, ms = ms, activity = spec.activity, category = spec.category,
    service = "Core Directory", operationType = spec.operationType, actor = actor, app = app, targets = targets,
    correlationId = corr, ip = spec.req and spec.req.remote and tostring(spec.req.remote):match("^[^:]+") }
  T.insert_sorted(st.audits, { ms = ms, seq = seq, ev = ev })
  return ev
end

function MS:signin_json(s)
  local c = s.city
  return {
    id = s.id, createdDateTime = iso7(s.ms), userDisplayName = s.user.displayName, userPrincipalName = s.user.upn, userId = s.user.id,
    appId = s.app[2], appDisplayName = s.app[1], ipAddress = s.ip, clientAppUsed = s.clientAppUsed or s.app[5],
    correlationId = s.correlationId, conditionalAccessStatus = s.errorCode == 53003 and "failure" or (s.ca and "success" or "notApplied"),
    isInteractive = s.isInteractive ~= false, riskDetail = "none", riskLevelAggregated = s.risk or "none",
    riskLevelDuringSignIn = s.risk or "none", riskState = s.risk and s.risk ~= "none" and "atRisk" or "none",
    riskEventTypes = A(s.riskEvents), riskEventTypes_v2 = A(s.riskEvents), resourceDisplayName = s.app[3], resourceId = s.app[4],
    status = { errorCode = s.errorCode or 0, failureReason = nz(s.failureReason), additionalDetails = nz(s.additionalDetails) },
    deviceDetail = { deviceId = "", displayName = jnull(), operatingSystem = s.device[1], browser = s.device[2], isCompliant = false,
                     isManaged = false, trustType = jnull() },
    location = { city = c[1], state = c[2], countryOrRegion = c[3], geoCoordinates = { altitude = jnull(), latitude = c[4], longitude = c[5] } },
    appliedConditionalAccessPolicies = A(s.ca and { { id = T.uuid(self.seed, "capolicy", 1), displayName = "Require MFA for admins",
      enforcedGrantControls = A({ "Mfa" }), enforcedSessionControls = A(), result = s.errorCode == 0 and "success" or "failure" } } or {}),
  }
end

function MS:gen_signin(i)
  local seed = self.seed
  local h = T.hash(seed, "signin", i)
  local u = self.gen_users[T.below(h, #self.gen_users) + 1]
  local app = SIGNIN_APPS[T.below(T.hash(h, 1), #SIGNIN_APPS) + 1]
  local s = { id = T.uuid(seed, "signinid", i), ms = spread_ms(self, "signin", self.nsignins, i), user = u, app = app,
              ip = u.ip, city = CITIES[u.city], device = DEVICES[u.device], correlationId = T.uuid(seed, "scorr", i),
              errorCode = 0, ca = T.unit(T.hash(h, 2)) < 0.3 }
  local x = T.unit(T.hash(h, 3))
  if not u.enabled0 then
    s.errorCode, s.failureReason = SIGNIN_FAIL[5][1], SIGNIN_FAIL[5][2]
  elseif x < 0.12 then
    local f = SIGNIN_FAIL[T.below(T.hash(h, 4), 4) + 1]
    s.errorCode, s.failureReason = f[1], f[2]
    if T.unit(T.hash(h, 5)) < 0.35 then    -- failures from elsewhere
      s.city = FOREIGN[T.below(T.hash(h, 6), #FOREIGN) + 1]
      s.ip = ip_of(T.hash(h, 7))
      s.risk = "medium"; s.riskEvents = { "unfamiliarFeatures" }
    end
  end
  return self:signin_json(s)
end

-- Non-interactive sign-ins (a client refreshing its tokens on the user's behalf): Graph's beta signIns
-- answers them only when the $filter asks for them by signInEventTypes.
local REFRESH_FAIL = { 70043, "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access." }
function MS:gen_signin_ni(i)
  local seed = self.seed
  local h = T.hash(seed, "signin_ni", i)
  local u = self.gen_users[T.below(h, #self.gen_users) + 1]
  local s = { id = T.uuid(seed, "signinniid", i), ms = spread_ms(self, "signin_ni", self.nsignins_ni, i), user = u,
              app = SIGNIN_APPS[T.below(T.hash(h, 1), #SIGNIN_APPS) + 1], ip = u.ip, city = CITIES[u.city],
              device = DEVICES[u.device], correlationId = T.uuid(seed, "snicorr", i), errorCode = 0, isInteractive = false,
              clientAppUsed = "Mobile Apps and Desktop clients" }
  if not u.enabled0 then
    s.errorCode, s.failureReason = SIGNIN_FAIL[5][1], SIGNIN_FAIL[5][2]
  elseif T.unit(T.hash(h, 3)) < 0.05 then
    s.errorCode, s.failureReason = REFRESH_FAIL[1], REFRESH_FAIL[2]
  end
  return self:signin_json(s)
end

-- test helper: store one sign-in; spec {user=, ms=, errorCode=, failureReason=, city=, state=, countryOrRegion=,
-- latitude=, longitude=, ip=, clientAppUsed=, app= (appDisplayName), risk=}
function MS:add_signin(spec)
  spec = spec or {}
  local u = assert(self:find_user(spec.user or self.admin.id), "add_signin: no such user")
  local seq = self:seq()
  local app = SIGNIN_APPS[1]
  for _, a in ipairs(SIGNIN_APPS) do if a[1] == spec.app then app = a; break end end
  local city = CITIES[u.city]
  if spec.city or spec.countryOrRegion then
    city = { spec.city or city[1], spec.state or jnull(), spec.countryOrRegion or city[3], spec.latitude or city[4], spec.longitude or city[5] }
  end
  local ms = spec.ms or self:now_ms()
  local code = spec.errorCode or 0
  local reason = spec.failureReason
  if code ~= 0 and not reason then
    for _, f in ipairs(SIGNIN_FAIL) do if f[1] == code then reason = f[2] end end
    reason = reason or "Other."
  end
  local ev = self:signin_json{ id = T.uuid(self.seed, "ssignin", seq), ms = ms, user = u, app = app, ip = spec.ip or u.ip, city = city,
    device = DEVICES[u.device], correlationId = T.uuid(self.seed, "sscorr", seq), errorCode = code, failureReason = reason,
    clientAppUsed = spec.clientAppUsed, risk = spec.risk, riskEvents = spec.riskEventTypes }
  T.insert_sorted(self.state.signins, { ms = ms, seq = seq, ev = ev })
  if code == 0 and (not u.lastSignIn or ms > u.lastSignIn) then u.lastSignIn = ms end
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = code == 0 and "UserLoggedIn" or "UserLoginFailed", RecordType = 15,
    ObjectId = "00000003-0000-0ff1-ce00-000000000000", target = u, user = u, ErrorCode = tostring(code), ClientIP = ev.ipAddress,
    ResultStatus = code == 0 and "Success" or "Failed" }, ms)
  return ev
end

-- spec: {n, gen(i), stream, list, prop, context, top_default, top_max}
function MS:log_page(req, spec)
  local q = req.query
  local _, path = self:api_of(req.path)
  local top = spec.top_default
  if q["$top"] and q["$top"] ~= "" then
    local n = math.tointeger(tonumber(q["$top"]))
    if not n or n < 1 then return self:graph_err(400, "Request_BadRequest", "Invalid page size specified: '" .. q["$top"] .. "'.", req) end
    top = math.min(n, spec.top_max)
  end
  local filter = q["$filter"] ~= "" and q["$filter"] or nil
  local pred
  if filter then
    local err
    pred, err = odata_filter(filter)
    if not pred then return self:graph_err(400, "Request_UnsupportedQuery", "Invalid filter clause: " .. err, req) end
  end
  local lower = time_bound(filter, spec.prop, { "ge", "gt" })
  local upper = time_bound(filter, spec.prop, { "le", "lt" })
  local K = { upper and (upper + 1) or math.maxinteger, 0, 0 }
  if q["$skiptoken"] then
    local s = dec_skip(q["$skiptoken"])
    local a, b, c = (s or ""):match("^(%-?%d+)_(%d+)_(%-?%d+)$")
    if not a then return self:graph_err(400, "Request_BadRequest", "Invalid skip token.", req) end
    K = { math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c)) }
  end
  local out, last, more, scanned, peeked = {}, nil, false, 0, 0
  local n = spec.n
  local stream = spec.stream
  T.merged_scan(n, function(i) return spread_ms(self, stream, n, i) end, spec.gen, spec.list, K, -1, function(ms, key, get)
    if lower and ms < lower then return true end
    if #out >= top then
      peeked = peeked + 1
      if not pred or pred(get()) or peeked > 5000 then more = true; return true end
      return false
    end
    local ev = get()
    if not pred or pred(ev) then out[#out + 1] = ev end
    last = key
    scanned = scanned + 1
    if scanned >= 50000 then more = true; return true end
    return false
  end)
  local body = { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#" .. spec.context, value = A(out) }
  if more and last then
    local params = {}
    if q["$top"] then params[#params + 1] = { "$top", q["$top"] } end
    if filter then params[#params + 1] = { "$filter", filter } end
    params[#params + 1] = { "$skiptoken", enc_skip(string.format("%d_%d_%d", last[1], last[2], last[3])) }
    body["@odata.nextLink"] = self.base_url .. path .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:h_audits(req)
  return self:log_page(req, { n = self.naudits, stream = "audit", gen = function(i) return self:gen_audit(i) end,
    list = self.state.audits, prop = "activityDateTime", context = "auditLogs/directoryAudits", top_default = 100, top_max = 1000 })
end
function MS:h_signins(req)
  if not self.entra_premium then
    return self:graph_err(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
      "Neither tenant is B2C or tenant doesn't have premium license", req)
  end
  return self:log_page(req, { n = self.nsignins, stream = "signin", gen = function(i) return self:gen_signin(i) end,
    list = self.state.signins, prop = "createdDateTime", context = "auditLogs/signIns", top_default = 1000, top_max = 1000 })
end
-- beta: sign-ins carry signInEventTypes, and the log holds interactive sign-ins unless the $filter asks
-- for non-interactive ones (`signInEventTypes/any(t: t eq 'nonInteractiveUser')`; a filter asking for
-- both kinds at once is answered with the non-interactive ones only).
local function typed(ev, kind)
  local o = {}
  for k, v in pairs(ev) do o[k] = v end
  o.signInEventTypes = A({ kind })
  return o
end
function MS:h_beta_signins(req)
  if not self.entra_premium then
    return self:graph_err(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
      "Neither tenant is B2C or tenant doesn't have premium license", req)
  end
  if tostring(req.query["$filter"] or ""):find("'nonInteractiveUser'", 1, true) then
    return self:log_page(req, { n = self.nsignins_ni, stream = "signin_ni", list = {},
      gen = function(i) return typed(self:gen_signin_ni(i), "nonInteractiveUser") end,
      prop = "createdDateTime", context = "auditLogs/signIns", top_default = 1000, top_max = 1000 })
  end
  local stored = {}
  for k, r in ipairs(self.state.signins) do stored[k] = { ms = r.ms, seq = r.seq, ev = typed(r.ev, "interactiveUser") } end
  return self:log_page(req, { n = self.nsignins, stream = "signin", list = stored,
    gen = function(i) return typed(self:gen_signin(i), "interactiveUser") end,
    prop = "createdDateTime", context = "auditLogs/signIns", top_default = 1000, top_max = 1000 })
end

function MS:h_log_item(req)
  local signin = req.path:find("/signIns/")
  local id = req.params.lid
  local n = signin and self.nsignins or self.naudits
  local gen = signin and function(i) return self:gen_signin(i) end or function(i) return self:gen_audit(i) end
  for _, r in ipairs(signin and self.state.signins or self.state.audits) do if r.ev.id == id then return 200, r.ev end end
  for i = 0, n - 1 do local ev = gen(i); if ev.id == id then return 200, ev end end
  return self:graph_404(req, id)
end


return true
