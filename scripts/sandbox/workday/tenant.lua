-- sandbox/workday/tenant.lua — the Workday tenant emulator's core: the generated tenant (workers and their
-- Workday accounts, security groups, sign-ons, audit entries), its credentials (an API client for
-- integrations with a refresh token, an integration system user), SOAP faults as Workday sends them,
-- ground truth.  wws.lua serves the SOAP operations, raas.lua the reports and the token endpoint.
-- Reference: shared/api/workday.md (what is verified and what is not is said there).
local T = require "sandbox.tenant"
local X = require "sdk.xml"
local soap = require "sdk.soap"

local W = { T = T }
local Tenant = setmetatable({}, { __index = T.Base })
Tenant.__index = Tenant
Tenant.default_rate_limit = 6000
W.Tenant = Tenant
W.NS = "urn:com.workday/bsvc"
W.VERSION = "v42.0"            -- what the answers say (wd:version); a request names its own in the URL

local FIRST = { "Logan", "Maria", "Chen", "Priya", "Omar", "Sofia", "Lars", "Amara", "Diego", "Hana", "Felix", "Ines",
  "Kwame", "Noor", "Pavel", "Rosa", "Tomas", "Yuki", "Zara", "Ben", "Clara", "Emil", "Greta", "Ivan" }
local LAST = { "McNeil", "Garcia", "Wei", "Sharma", "Haddad", "Rossi", "Berg", "Okafor", "Lopez", "Sato", "Wagner",
  "Moreau", "Mensah", "Rahman", "Novak", "Silva", "Kral", "Tanaka", "Ali", "Cohen", "Meyer", "Dahl", "Lund", "Petrov" }
-- security groups as Workday delivers them (user-based, role-based, integration system)
local GROUPS = {
  { "Security Administrator", "User-Based Security Group", admin = true },
  { "Security Configuration", "User-Based Security Group", admin = true },
  { "HR Administrator", "User-Based Security Group" },
  { "HR Partner", "Role-Based Security Group (Constrained)" },
  { "Manager", "Role-Based Security Group (Constrained)" },
  { "Integration Administrator", "User-Based Security Group", admin = true },
  { "Employee As Self", "User-Based Security Group" },
}
local CHANNELS = { { "Web", "User Name Password" }, { "Web", "SAML" }, { "Mobile", "SAML" } }
local BROWSERS = { "Chrome", "Firefox", "Safari", "Edge" }
local ACTIVITIES = {
  { "Change Job", "Worker Business Process" }, { "Edit Worker Additional Data", nil }, { "View Worker", nil },
  { "Maintain Permissions for Security Group", "Security Configuration" }, { "Run Report", nil },
  { "Assign Users to User-Based Security Group", "Security Configuration" },
}

local DAY = 86400000

function W.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Tenant)
  T.Base.init(self, opts)
  self.tenant = opts.tenant or "acme"
  self.domain = opts.email_domain or "example.com"
  self.nworkers = opts.workers or 50
  self.days = opts.days or 7
  self.nsignons = opts.signons or (opts.signons_per_day or 30) * self.days
  self.naudit = opts.audits or (opts.audits_per_day or 6) * self.days
  self.client_id = opts.client_id or "cachost-api-client"
  self.client_secret = opts.client_secret or "sandbox-workday-client-secret"
  self.refresh_token = opts.refresh_token or "sandbox-workday-refresh-token"
  self.isu_user = opts.isu_user or ("ISU_cachost@" .. self.tenant)
  self.isu_password = opts.isu_password or "sandbox-workday-isu-password"
  self.owner = "ISU_cachost"
  self.reports = { accounts = "cachost_Workday_Accounts", groups = "cachost_Security_Group_Members",
                   audit = "cachost_User_Activity" }
  -- tasks the integration user's security groups do not allow (an operation or report name -> true)
  self.denied = opts.denied or {}
  self.access_tokens = {}
  self.updates = {}            -- every account update served, in order (tests)
  self:generate(opts.people or {})
  return self
end

-- people: {"email", ...} or {{email=, name=}...}: the first workers are these people (the demo passes the
-- identity provider's users, so one person is the same in every app).  The first one of them (else the
-- second worker) left the organization but their Workday account is still active: what offboarding is for.
function Tenant:generate(people)
  local r, seed, now = T.rng(self.seed, "workday"), self.seed, self.t0_ms
  local st = { workers = {}, by_wid = {}, by_user = {}, groups = {}, signons = {}, audit = {} }
  self.state = st
  local used = {}
  for i = 1, self.nworkers do
    local p = people[i]
    if type(p) == "string" then p = { email = p } end
    local first, last = r:pick(FIRST), r:pick(LAST)
    local email
    if p and p.email then
      email = p.email:lower()
      local name = p.name or email:match("^([^@]+)"):gsub("[._]", " "):gsub("(%a)(%w*)", function(a, b) return a:upper() .. b end)
      first, last = name:match("^(%S+)%s+(.+)$")
      first, last = first or name, last or ""
    else
      local base = (first .. "." .. last):lower()
      email = base .. "@" .. self.domain
      local k = 1
      while used[email] do k = k + 1; email = base .. k .. "@" .. self.domain end
    end
    used[email] = true
    local contingent = i > 3 and r:chance(0.12)
    local hire = now - r:int(60, 2000) * DAY
    local w = {
      index = i, wid = T.hexs(32, seed, "wid", i), contingent = contingent,
      id = contingent and ("C-" .. (5000 + i)) or tostring(21000 + i),
      first = first, last = last, email = email, hire_ms = hire, entry_ms = hire - 14 * DAY,
      user_name = email,
      account = { disabled = false, locked = false, require_new_password = false,
                  last_signon_ms = now - r:int(1, 20 * 86400) * 1000 },
      ip = ("%d.%d.%d.%d"):format(r:int(11, 199), r:int(0, 255), r:int(0, 255), r:int(1, 254)),
    }
    -- a few workers have left; a few accounts are disabled, expired or locked
    local x = r:float()
    if i > 3 then
      if x < 0.08 then w.terminated_ms = now - r:int(5, 200) * DAY; w.account.disabled = true
      elseif x < 0.12 then w.account.disabled = true
      elseif x < 0.15 then w.account.expiration_ms = now - r:int(1, 90) * DAY
      elseif x < 0.18 then w.account.locked = true
      elseif x < 0.21 then w.account = nil; w.user_name = nil end         -- no Workday account
    end
    st.workers[i] = w
    st.by_wid[w.wid] = w
    if w.user_name then st.by_user[w.user_name] = w end
  end
  -- the person who left with an active account
  local leaver = st.workers[#people > 0 and 1 or 2]
  if leaver then
    leaver.terminated_ms = now - 3 * DAY
    leaver.account = leaver.account or { disabled = false, locked = false, require_new_password = false }
    leaver.account.disabled, leaver.account.expiration_ms = false, nil
    leaver.user_name = leaver.user_name or leaver.email
    st.by_user[leaver.user_name] = leaver
    self.leaver = leaver
  end
  -- security groups and their members (accounts)
  local holders = {}
  for _, w in ipairs(st.workers) do if w.user_name then holders[#holders + 1] = w end end
  for gi, g in ipairs(GROUPS) do
    local members = {}
    if #holders > 0 then
      local n = g.admin and math.min(2, #holders) or math.max(1, #holders // (gi + 1))
      for _ = 1, n do members[r:pick(holders).user_name] = true end
    end
    st.groups[gi] = { name = g[1], type = g[2], admin = g.admin, members = members }
  end
  if #holders > 0 then st.groups[1].members[holders[1].user_name] = true end     -- the first worker administers security
  -- sign-ons: workers and the integration user, a share failed (invalid credentials)
  local t0 = now - self.days * DAY
  for k = 1, self.nsignons do
    local ms = t0 + (k * (self.days * DAY - 60000)) // math.max(1, self.nsignons)
    local w = #holders > 0 and r:pick(holders) or nil
    local isu = not w or r:chance(0.15)
    local failed = not isu and r:chance(0.1)
    local ch = isu and { "Web Services", "Trusted" } or r:pick(CHANNELS)
    st.signons[k] = {
      ms = ms, user = isu and self.isu_user:match("^[^@]+") or w.user_name, ok = not failed,
      ip = isu and "198.51.100.7" or w.ip, channel = ch[1], auth_type = ch[2],
      browser = not isu and r:pick(BROWSERS) or nil, session = not failed and T.b62(10, seed, "session", k) or nil,
      wid = isu and T.hexs(32, seed, "isu") or w.wid, duration = r:int(60, 7200) * 1000,
    }
  end
  for k = 1, self.naudit do
    local ms = t0 + (k * (self.days * DAY - 90000)) // math.max(1, self.naudit) + 30000
    local a, actor, target = r:pick(ACTIVITIES), r:pick(holders), r:pick(holders)
    st.audit[k] = { id = T.hexs(32, seed, "audit", k), ms = ms, actor = actor and actor.user_name, activity = a[1], task = a[2],
                    target = target and (target.first .. " " .. target.last), ip = actor and actor.ip }
  end
end

---------------------------------------------------------------------------------------------- accounts
function Tenant:account_status(w)
  local a = w.account
  if not a then return nil end
  if a.disabled then return "disabled" end
  if a.expiration_ms and a.expiration_ms <= self:now_ms() then return "expired" end
  if a.locked then return "locked" end
  return "active"
end

-- A new worker hired now (tests: a record entered after a listing's As_Of_Entry_DateTime).
function Tenant:hire(first, last)
  local st = self.state
  local i = #st.workers + 1
  local email = (first .. "." .. last):lower() .. "@" .. self.domain
  local w = { index = i, wid = T.hexs(32, self.seed, "wid", i), id = tostring(21000 + i), first = first, last = last,
              email = email, user_name = email, hire_ms = self:now_ms(), entry_ms = self:now_ms(),
              account = { disabled = false, locked = false, require_new_password = false }, ip = "192.0.2.10" }
  st.workers[i], st.by_wid[w.wid], st.by_user[email] = w, w, w
  return w
end

-- A sign-on recorded now (tests).
function Tenant:add_signon(user, ok, ms)
  local s = { ms = ms or self:now_ms(), user = user, ok = ok ~= false, ip = "203.0.113.9", channel = "Web",
              auth_type = "User Name Password", browser = "Chrome", entry_ms = self:now_ms(),
              session = ok ~= false and T.b62(10, self.seed, "added", #self.state.signons) or nil,
              wid = (self.state.by_user[user] or {}).wid or T.hexs(32, self.seed, "unknown"), duration = 60000 }
  table.insert(self.state.signons, s)
  return s
end

---------------------------------------------------------------------------------------------- faults
local SOAP_HDR = { ["Content-Type"] = "text/xml; charset=utf-8" }
W.SOAP_HDR = SOAP_HDR

-- A SOAP 1.1 Fault as Workday sends it: HTTP 500, faultcode SOAP-ENV:Client.* or Server.*, a Validation_Fault
-- detail for validation errors.
function W.fault(code, message, xpath)
  local detail
  if code == "Client.validationError" then
    detail = X.element("detail", { X.element("wd:Validation_Fault", { X.element("wd:Validation_Error", {
      X.element("wd:Message", message), X.element("wd:Detail_Message", message), X.element("wd:Xpath", xpath or "") }) }, { ["xmlns:wd"] = W.NS }) })
  end
  local f = X.element("SOAP-ENV:Fault", { X.element("faultcode", "SOAP-ENV:" .. code), X.element("faultstring", message), detail })
  local env = X.element("SOAP-ENV:Envelope", { X.element("SOAP-ENV:Body", { f }) }, { ["xmlns:SOAP-ENV"] = soap.ENVELOPE })
  return 500, X.encode(env), SOAP_HDR
end

function Tenant:fault_response(f)
  local k = f.kind
  if k == "429" then
    local st, body, hdr = W.fault("Client.validationError", "The request was throttled: too many requests.")
    hdr = { ["Content-Type"] = hdr["Content-Type"], ["Retry-After"] = tostring(f.retry_after or 1) }
    return 429, body, hdr
  elseif k == "502" or k == "503" then
    return tonumber(k), "Service Unavailable", { ["Content-Type"] = "text/plain" }
  end
  return W.fault("Server.processingError", "An unexpected error occurred. Please try again.")
end

-- shape: the operation's answer without its results; garbled: every record an element without any of its
-- fields (faults of the shared suite, sandbox/tenant.lua)
function Tenant:rewrite(body, how)
  if how == "shape" then
    return (body:gsub("<wd:Response_Results>.*</wd:Response_Data>", "<wd:Message>The service is under maintenance.</wd:Message>"))
  end
  return (body:gsub("<wd:(Worker)>.-</wd:Worker>", "<wd:%1><wd:Message>maintenance</wd:Message></wd:%1>")
              :gsub("<wd:(Workday_Account_Signon)>.-</wd:Workday_Account_Signon>", "<wd:%1><wd:Message>maintenance</wd:Message></wd:%1>"))
end

-- Rate budget: one per tenant; Workday does not document its limits or headers (a 429 says Retry-After).
function Tenant:precheck(req)
  local _, _, reset, exceeded = self:rate_take("all")
  if exceeded then
    local _, body = W.fault("Client.validationError", "The request was throttled: too many requests.")
    return 429, body, { ["Content-Type"] = "text/xml; charset=utf-8", ["Retry-After"] = tostring(math.max(1, reset - self:wall_s())) }
  end
end
function Tenant:decorate() end

---------------------------------------------------------------------------------------------- credentials
-- The bearer token of a request, valid now | nil
function Tenant:bearer(req)
  local tok = (req.headers["authorization"] or ""):match("^[Bb]earer%s+(%S+)$")
  local t = tok and self.access_tokens[tok]
  return t and t.exp > self:wall_s() and t or nil
end

-- HTTP Basic of the integration system user (the reports) -> true | nil
function Tenant:basic_isu(req)
  local b = (req.headers["authorization"] or ""):match("^[Bb]asic%s+(%S+)$")
  local plain = b and T.host("crypto").unb64(b)
  local user, pw = (plain or ""):match("^([^:]*):(.*)$")
  local crypto = T.host("crypto")
  return user and crypto.equal(user, self.isu_user) and crypto.equal(pw, self.isu_password) or nil
end

---------------------------------------------------------------------------------------------- ground truth
function Tenant:count(what)
  local st = self.state
  if what == "users" or what == "accounts" then
    local n = 0
    for _, w in ipairs(st.workers) do if w.user_name then n = n + 1 end end
    return n
  elseif what == "workers" then return #st.workers
  elseif what == "groups" then return #st.groups
  elseif what == "signons" then return #st.signons
  elseif what == "audit" then return #st.audit
  end
  error("count: unknown " .. tostring(what))
end

-- What a complete sync holds: users (account user names), groups, group_members ("group:user"),
-- privileges ("user:group").
function Tenant:truth()
  local st = self.state
  local t = { users = {}, groups = {}, group_members = {}, privileges = {} }
  for _, w in ipairs(st.workers) do if w.user_name then t.users[#t.users + 1] = w.user_name end end
  for _, g in ipairs(st.groups) do
    local any = false
    for u in pairs(g.members) do
      any = true
      t.group_members[#t.group_members + 1] = g.name .. ":" .. u
      if g.admin then t.privileges[#t.privileges + 1] = u .. ":" .. g.name end
    end
    if any then t.groups[#t.groups + 1] = g.name end
  end
  return t
end

return W
