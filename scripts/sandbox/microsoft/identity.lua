-- sandbox/microsoft/identity.lua — the Microsoft identity platform (login.microsoftonline.com): the token
-- endpoint (client credentials with a secret or a certificate assertion, authorization code, refresh),
-- /authorize and /adminconsent.  Tokens are opaque strings bound to one resource (Graph, Management, ARM).
local C = require "sandbox.microsoft.common"
local T, MS, json, crypto = C.T, C.MS, C.json, C.crypto

function MS:known_tenant(t)
  return t == self.tenant_id or t == "organizations" or t == "common" or t == self.domain or t == self.initial_domain
end

-- resource key of a scope list ("https://graph.microsoft.com/.default", "User.Read offline_access")
local function scope_resource(scope)
  for s in (scope or ""):gmatch("%S+") do
    for k, base in pairs(C.RESOURCES) do
      if s:sub(1, #base) == base then return k, s end
    end
    if s:match("^https?://") then return nil, s end
  end
  return "graph"
end
local function resource_key(resource)
  if not resource then return nil end
  resource = resource:gsub("/$", "")
  for k, base in pairs(C.RESOURCES) do if base == resource then return k end end
  if resource == "https://management.core.windows.net" then return "arm" end
end

function MS:issue(res, extra)
  local cr = crypto()
  local tok = "eyJ0eXAiOiJKV1QiLCJub25jZSI6" .. cr.b64url(cr.random(48))
  local rec = { res = res, client_id = self.client_id, exp = self:wall_s() + 3599, tid = self.tenant_id }
  for k, v in pairs(extra or {}) do rec[k] = v end
  self.tokens[tok] = rec
  return tok, rec
end

-- client authentication: secret (constant-time) or a client_assertion JWT signed by the registered key
function MS:client_auth(f, token_url)
  if f.client_id ~= self.client_id then
    return nil, { 400, "unauthorized_client", 700016, "Application with identifier '" .. tostring(f.client_id)
      .. "' was not found in the directory '" .. self.domain .. "'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant." }
  end
  if f.client_assertion then
    if f.client_assertion_type ~= "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" then
      return nil, { 400, "invalid_request", 50027, "Invalid client_assertion_type." }
    end
    local cr = crypto()
    local h64, p64, s64 = f.client_assertion:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
    local claims = p64 and json().decode(cr.unb64url(p64) or "")
    if type(claims) ~= "table" or not self.client_cert
       or not cr.rs256_verify(self.client_cert, h64 .. "." .. p64, cr.unb64url(s64) or "") then
      return nil, { 401, "invalid_client", 700027, "Client assertion failed signature validation." }
    end
    if claims.iss ~= self.client_id or claims.sub ~= self.client_id then
      return nil, { 401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer." }
    end
    if claims.aud ~= token_url then
      return nil, { 401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter." }
    end
    if type(claims.exp) ~= "number" or claims.exp <= self:wall_s() then
      return nil, { 401, "invalid_client", 700024, "Client assertion is not within its valid time range." }
    end
    return true
  end
  if not f.client_secret or f.client_secret == "" then
    return nil, { 401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'." }
  end
  if not crypto().equal(f.client_secret, self.client_secret) then
    return nil, { 401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" .. self.client_id .. "'." }
  end
  return true
end

function MS:h_token(req)
  local tenant = req.params.tenant
  local v1 = not req.path:find("/v2%.0/token$")
  if not self:known_tenant(tenant) then
    return self:aad_err(400, "invalid_request", 90002, "Tenant '" .. tenant .. "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
  end
  local f = T.parse_form(req.body)
  local token_url = self.base_url .. "/" .. tenant .. (v1 and "/oauth2/token" or "/oauth2/v2.0/token")
  local ok, e = self:client_auth(f, token_url)
  if not ok then return self:aad_err(e[1], e[2], e[3], e[4]) end
  local gt = f.grant_type
  local res, scope_str
  if v1 then
    res = resource_key(f.resource)
    if not res and gt == "client_credentials" then
      return self:aad_err(400, "invalid_resource", 500011, "The resource principal named " .. tostring(f.resource) .. " was not found in the tenant named " .. self.domain .. ".")
    end
  else
    local bad
    res, bad = scope_resource(f.scope)
    if not res and bad then
      return self:aad_err(400, "invalid_resource", 500011, "The resource principal named " .. bad .. " was not found in the tenant named " .. self.domain .. ". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")
    end
  end
  local function answer(tok, rec, extra)
    local b
    if v1 then
      b = { token_type = "Bearer", expires_in = "3599", ext_expires_in = "3599", expires_on = tostring(rec.exp),
            not_before = tostring(rec.exp - 3599), resource = C.RESOURCES[rec.res], access_token = tok }
    else
      b = { token_type = "Bearer", expires_in = 3599, ext_expires_in = 3599, access_token = tok }
    end
    for k, v in pairs(extra or {}) do b[k] = v end
    return 200, b, { ["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache" }
  end
  if gt == "client_credentials" then
    if not v1 then
      local sc = f.scope or ""
      if sc == "" then
        return self:aad_err(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
      end
      if not sc:match("^%S+/%.default$") then
        return self:aad_err(400, "invalid_scope", 1002012, "The provided value for scope " .. sc .. " is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
      end
    end
    local tok, rec = self:issue(res, { app_only = true })
    return answer(tok, rec)
  elseif gt == "authorization_code" then
    local c = f.code and self.codes[f.code]
    if not c or c.used or c.exp < self:wall_s() then
      return self:aad_err(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
    end
    c.used = true
    if c.redirect_uri ~= f.redirect_uri then
      return self:aad_err(400, "invalid_grant", 50148, "The redirect_uri specified in the token request does not match the redirect_uri used in the authorization request.")
    end
    if c.challenge then
      local v = f.code_verifier or ""
      local cr = crypto()
      local calc = c.method == "plain" and v or cr.b64url(cr.sha256(v))
      if v == "" or not cr.equal(calc, c.challenge) then
        return self:aad_err(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
      end
    end
    return self:delegated_answer(c.user, c.scope, v1 and (res or "graph") or scope_resource(c.scope) or "graph", answer)
  elseif gt == "refresh_token" then
    local rt = f.refresh_token and self.refresh[f.refresh_token]
    if not rt then
      return self:aad_err(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    end
    local u = self.state.user_by_id[rt.user]
    if not u or not u.accountEnabled then
      return self:aad_err(400, "invalid_grant", 50057, "The user account is disabled.")
    end
    if rt.issued < (u.sessionsValidFrom or 0) then
      return self:aad_err(400, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '"
        .. T.iso_s(rt.issued // 1000) .. "' and the TokensValidFrom date (before which tokens are not valid) for this user is '" .. T.iso_s(u.sessionsValidFrom // 1000) .. "'.")
    end
    local scope = (f.scope and f.scope ~= "") and f.scope or rt.scope
    return self:delegated_answer(u.id, scope, v1 and (res or "graph") or scope_resource(scope) or "graph", answer)
  end
  return self:aad_err(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '" .. tostring(gt) .. "'.")
end

function MS:delegated_answer(user_id, scope, res, answer)
  local tok, rec = self:issue(res, { user = user_id, scope = scope })
  local extra = { scope = scope }
  local has = {}
  for s in (scope or ""):gmatch("%S+") do has[s] = true end
  if has.offline_access then
    local cr = crypto()
    local rt = "0.AXoA" .. cr.b64url(cr.random(64))
    self.refresh[rt] = { user = user_id, scope = scope, issued = self:now_ms() }
    extra.refresh_token = rt
  end
  if has.openid then
    local cr, u = crypto(), self.state.user_by_id[user_id]
    local hdr = cr.b64url(json().encode{ typ = "JWT", alg = "RS256", kid = T.b62(27, self.seed, "kid") })
    local body = cr.b64url(json().encode{ aud = self.client_id, iss = "https://login.microsoftonline.com/" .. self.tenant_id .. "/v2.0",
      iat = self:wall_s(), nbf = self:wall_s(), exp = self:wall_s() + 3600, name = u and u.displayName,
      oid = user_id, preferred_username = u and u.upn, tid = self.tenant_id, ver = "2.0" })
    extra.id_token = hdr .. "." .. body .. "." .. cr.b64url(cr.random(64))
  end
  return answer(tok, rec, extra)
end

-- authorize: auto-consent as the tenant's admin, redirect with code & state
function MS:h_authorize(req)
  local q = req.query
  if not self:known_tenant(req.params.tenant) then
    return self:aad_err(400, "invalid_request", 90002, "Tenant '" .. req.params.tenant .. "' not found.")
  end
  if q.client_id ~= self.client_id then
    return self:aad_err(400, "unauthorized_client", 700016, "Application with identifier '" .. tostring(q.client_id) .. "' was not found in the directory '" .. self.domain .. "'.")
  end
  if not q.redirect_uri or q.redirect_uri == "" then
    return self:aad_err(400, "invalid_request", 900144, "The request body must contain the following parameter: 'redirect_uri'.")
  end
  if (q.response_type or "code") ~= "code" then
    return self:aad_err(400, "unsupported_response_type", 700054, "response_type '" .. tostring(q.response_type) .. "' is not enabled for the application.")
  end
  local code = "0.AXoA" .. crypto().b64url(crypto().random(48))
  self.codes[code] = { user = (q.login_hint and self:find_user(q.login_hint) or self.admin).id, scope = q.scope or "",
                       redirect_uri = q.redirect_uri, challenge = q.code_challenge, method = q.code_challenge_method or "plain",
                       exp = self:wall_s() + 600 }
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  local loc = q.redirect_uri .. sep .. T.qs{ { "code", code }, { "state", q.state }, { "session_state", T.uuid(self.seed, "session", self:seq()) } }
  return 302, "", { Location = loc }
end

function MS:h_adminconsent(req)
  local q = req.query
  if q.client_id ~= self.client_id or not q.redirect_uri then
    return self:aad_err(400, "unauthorized_client", 700016, "Application with identifier '" .. tostring(q.client_id) .. "' was not found in the directory '" .. self.domain .. "'.")
  end
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  local loc = q.redirect_uri .. sep .. T.qs{ { "admin_consent", "True" }, { "tenant", self.tenant_id }, { "state", q.state }, { "scope", q.scope } }
  return 302, "", { Location = loc }
end

-- test helper: every issued token expires now
function MS:expire_tokens() for _, rec in pairs(self.tokens) do rec.exp = 0 end end


return true
