-- sandbox/workday/raas.lua — the token endpoint of the tenant's API clients (POST /ccx/oauth2/<tenant>/token,
-- grant_type=refresh_token, the client by HTTP Basic or form fields) and Reports-as-a-Service
-- (GET /ccx/service/customreport2/<tenant>/<owner>/<Report_Name>?format=json, report prompts as query
-- parameters, {"Report_Entry": [...]}), read with a bearer token or the integration user's HTTP Basic.
local T = require "sandbox.tenant"
local W = require "sandbox.workday.tenant"
local Tenant = W.Tenant

local TOKEN_LIFE = 3600

local function oauth_err(status, code, desc)
  return status, { error = code, error_description = desc }, { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" }
end

function Tenant:h_token(req)
  if req.params.tenant ~= self.tenant then return oauth_err(404, "invalid_request", "unknown tenant") end
  local crypto = T.host("crypto")
  local form = T.parse_form(req.body)
  local id, secret = form.client_id, form.client_secret
  local basic = (req.headers["authorization"] or ""):match("^[Bb]asic%s+(%S+)$")
  if basic then id, secret = (crypto.unb64(basic) or ""):match("^([^:]*):(.*)$") end
  if not (id and secret and crypto.equal(id, self.client_id) and crypto.equal(secret, self.client_secret)) then
    return oauth_err(401, "invalid_client", "Invalid client credentials")
  end
  if form.grant_type ~= "refresh_token" then return oauth_err(400, "unsupported_grant_type", "grant_type must be refresh_token") end
  if not (form.refresh_token and crypto.equal(form.refresh_token, self.refresh_token)) then
    return oauth_err(400, "invalid_grant", "Invalid refresh token")
  end
  local tok = crypto.b64url(crypto.random(24))
  self.access_tokens[tok] = { exp = self:wall_s() + TOKEN_LIFE }
  return 200, { access_token = tok, token_type = "Bearer", expires_in = TOKEN_LIFE, refresh_token = self.refresh_token },
    { ["Cache-Control"] = "no-store" }
end

local function b(v) return v and "1" or "0" end

function Tenant:report_accounts()
  local out = {}
  for _, w in ipairs(self.state.workers) do
    local a = w.account
    if w.user_name and a then
      out[#out + 1] = { User_Name = w.user_name, Account_Disabled = b(a.disabled), Account_Locked = b(a.locked),
                        Account_Expiration_Date = a.expiration_ms and T.iso_ms(a.expiration_ms) or nil,
                        Last_Signon = a.last_signon_ms and T.iso_ms(a.last_signon_ms) or nil,
                        Require_New_Password_at_Next_Sign_In = b(a.require_new_password) }
    end
  end
  -- the integration system user's own account is a Workday account too (no worker)
  out[#out + 1] = { User_Name = self.isu_user:match("^[^@]+"), Account_Disabled = "0", Account_Locked = "0" }
  return out
end

function Tenant:report_groups()
  local out = {}
  for _, g in ipairs(self.state.groups) do
    local names = {}
    for u in pairs(g.members) do names[#names + 1] = u end
    table.sort(names)
    for _, u in ipairs(names) do out[#out + 1] = { Security_Group = g.name, Security_Group_Type = g.type, User_Name = u } end
  end
  return out
end

function Tenant:report_audit(q)
  local from, to = T.parse_iso(q.From_Moment), T.parse_iso(q.To_Moment)
  if not (from and to) then return nil, "the prompts From_Moment and To_Moment are required (dateTime)" end
  local out = {}
  for _, a in ipairs(self.state.audit) do
    if a.ms >= from and a.ms <= to then
      out[#out + 1] = { Entry_ID = a.id, Time = T.iso_ms(a.ms), Performed_By = a.actor, Activity = a.activity, Task = a.task,
                        Target = a.target, IP_Address = a.ip }
    end
  end
  return out
end

function Tenant:h_report(req)
  local p = req.params
  if p.tenant ~= self.tenant then return 404, "Tenant not found", { ["Content-Type"] = "text/plain" } end
  if not (self:bearer(req) or self:basic_isu(req)) then
    return 401, "Unauthorized", { ["Content-Type"] = "text/plain", ["WWW-Authenticate"] = 'Basic realm="Workday"' }
  end
  local which
  for k, name in pairs(self.reports) do if p.owner == self.owner and p.report == name then which = k end end
  if not which then return W.fault("Client.validationError", ("Report %s/%s does not exist or is not web service enabled"):format(p.owner, p.report)) end
  if self.denied[p.report] then return W.fault("Client.validationError", "Validation error occurred. The task submitted is not authorized.") end
  if req.query.format ~= "json" then return W.fault("Client.validationError", "This emulator serves reports as format=json only") end
  local entries, err = self["report_" .. which](self, req.query)
  if not entries then return W.fault("Client.validationError", err) end
  return 200, { Report_Entry = T.host("json").array(entries) }
end

return {
  { "POST", "/ccx/oauth2/:tenant/token", Tenant.h_token },
  { "GET", "/ccx/service/customreport2/:tenant/:owner/:report", Tenant.h_report },
}
