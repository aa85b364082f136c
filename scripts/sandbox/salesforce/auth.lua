-- sandbox/salesforce/auth.lua — OAuth 2.0 of a connected app (Salesforce Help, "OAuth Authorization
-- Flows"): the JWT bearer flow (an RS256 assertion checked against the certificate uploaded to the app:
-- iss its consumer key, sub a pre-authorized user's username, aud the login host — test.salesforce.com for
-- a sandbox org — and exp within 3 minutes), the web server flow with PKCE (S256; the consumer secret
-- too), refresh, and revoke.  Token answers carry instance_url, id, issued_at and the HMAC signature, no
-- expires_in: a session lives as long as the org's session timeout.  OAuth endpoints answer
-- {"error", "error_description"}; the REST API's 401 is [{"errorCode": "INVALID_SESSION_ID"}].
local S = require "sandbox.salesforce.org"
local T, Org = S.T, S.Org
local json, crypto = S.json, S.crypto

local JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
local MAX_EXP = 180            -- seconds: "the expiration time of the assertion within 3 minutes"
local LEEWAY = 30

local function oauth_error(status, code, desc)
  return status, { error = code, error_description = desc }
end

function Org:login_host() return self.is_sandbox and "https://test.salesforce.com" or "https://login.salesforce.com" end

-- A session for user u: the token answer.
function Org:issue(u, with_refresh, scope)
  local token = self.org_id:sub(1, 15) .. "!" .. T.b62(96, self.seed, "access", u.Id, self:now_ms(), #self.tokens)
  local now = self:wall_s()
  self.tokens[token] = { user = u.Id, exp = now + self.session_seconds }
  local issued = tostring(math.floor(self:now_ms()))
  local id = ("%s/id/%s/%s"):format(self:login_host(), self.org_id, u.Id)
  local out = { access_token = token, instance_url = self.base_url, id = id, token_type = "Bearer", issued_at = issued,
    scope = scope or "api", signature = crypto().b64(crypto().hmac_sha256(self.app.client_secret, id .. issued)) }
  if with_refresh then
    local rt = "5Aep" .. T.b62(80, self.seed, "refresh", u.Id, issued)
    self.refresh_tokens[rt] = { user = u.Id }
    out.refresh_token = rt
  end
  return out
end

local function user_named(self, name)
  local u = self:user_by_name(name)
  if not u then return nil, "invalid_grant", "user hasn't approved this consumer" end
  if not u.IsActive then return nil, "invalid_grant", "inactive user" end
  if u["@login"].IsFrozen then return nil, "invalid_grant", "authentication failure" end
  if not self.app.authorized[u.Id] then return nil, "invalid_grant", "user hasn't approved this consumer" end
  return u
end

-- The JWT bearer assertion -> the user | nil, error, description.
function Org:check_assertion(jwt)
  local cr = crypto()
  local h64, p64, s64 = tostring(jwt):match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  local header = h64 and json().decode(cr.unb64url(h64) or "")
  local claims = p64 and json().decode(cr.unb64url(p64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" then return nil, "invalid_grant", "invalid assertion" end
  if header.alg ~= "RS256" then return nil, "invalid_grant", "invalid assertion" end
  if claims.iss ~= self.app.client_id then return nil, "invalid_client_id", "client identifier invalid" end
  if cr.rs256_verify(self.app.public_key, h64 .. "." .. p64, cr.unb64url(s64) or "") ~= true then
    return nil, "invalid_grant", "invalid assertion"
  end
  if claims.aud ~= self:login_host() then return nil, "invalid_grant", "audience is invalid" end
  local now = self:wall_s()
  if math.type(claims.exp) ~= "integer" or claims.exp < now - LEEWAY then return nil, "invalid_grant", "expired authorization code" end
  if claims.exp > now + MAX_EXP + LEEWAY then return nil, "invalid_grant", "invalid assertion" end
  if type(claims.sub) ~= "string" then return nil, "invalid_grant", "invalid assertion" end
  self.assertions = (self.assertions or 0) + 1
  return user_named(self, claims.sub)
end

local function client_ok(self, f)
  if f.client_id ~= self.app.client_id then return nil, "invalid_client_id", "client identifier invalid" end
  if not f.client_secret or not crypto().equal(f.client_secret, self.app.client_secret) then
    return nil, "invalid_client", "invalid client credentials"
  end
  return true
end

function Org:h_token(req)
  local ctype = req.headers["content-type"] or ""
  if not ctype:find("application/x-www-form-urlencoded", 1, true) then
    return oauth_error(400, "invalid_request", "must use Content-Type application/x-www-form-urlencoded")
  end
  local f = T.parse_form(req.body)
  if f.grant_type == JWT_BEARER then
    local u, code, desc = self:check_assertion(f.assertion)
    if not u then return oauth_error(400, code, desc) end
    return 200, self:issue(u, false)
  elseif f.grant_type == "authorization_code" then
    local ok, code, desc = client_ok(self, f)
    if not ok then return oauth_error(400, code, desc) end
    local c = f.code and self.codes[f.code]
    self.codes[f.code or ""] = nil                       -- a code is good once
    if not c or c.exp < self:wall_s() then return oauth_error(400, "invalid_grant", "invalid authorization code") end
    if c.redirect_uri ~= f.redirect_uri then return oauth_error(400, "invalid_grant", "redirect_uri mismatch") end
    if c.challenge then
      local v = f.code_verifier
      if not v or not crypto().equal(crypto().b64url(crypto().sha256(v)), c.challenge) then
        return oauth_error(400, "invalid_grant", "invalid code verifier")
      end
    end
    local u = self.byid[c.user:sub(1, 15)]
    return 200, self:issue(u, c.scope:find("refresh_token", 1, true) ~= nil or c.scope:find("offline_access", 1, true) ~= nil, c.scope)
  elseif f.grant_type == "refresh_token" then
    local ok, code, desc = client_ok(self, f)
    if not ok then return oauth_error(400, code, desc) end
    local rt = f.refresh_token and self.refresh_tokens[f.refresh_token]
    if not rt then return oauth_error(400, "invalid_grant", "expired access/refresh token") end
    local u = self.byid[rt.user:sub(1, 15)]
    if not u.IsActive or u["@login"].IsFrozen then return oauth_error(400, "invalid_grant", "inactive user") end
    return 200, self:issue(u, false)
  end
  return oauth_error(400, "unsupported_grant_type", "grant type not supported")
end

-- The consent page, approved at once by the integration user (a sandbox has no browser session):
-- 302 back to the redirect URI with the code and the state.
function Org:h_authorize(req)
  local q = req.query
  if q.client_id ~= self.app.client_id then return oauth_error(400, "invalid_client_id", "client identifier invalid") end
  if q.response_type ~= "code" or not q.redirect_uri then return oauth_error(400, "unsupported_response_type", "response type not supported") end
  if q.code_challenge and q.code_challenge_method ~= "S256" then
    return oauth_error(400, "invalid_request", "code_challenge_method must be S256")
  end
  local code = "aPrx" .. T.b62(40, self.seed, "code", self:now_ms(), q.state or "")
  self.codes[code] = { user = self.integration.Id, redirect_uri = q.redirect_uri, challenge = q.code_challenge,
    scope = q.scope or "api", exp = self:wall_s() + 900 }
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  return 302, "", { Location = q.redirect_uri .. sep .. T.qs { { "code", code }, { "state", q.state } } }
end

-- Revoke an access token, a refresh token (and its sessions) or an OAuth token a user granted (its
-- DeleteToken): 200, or 400 for a token Salesforce does not know.
function Org:h_revoke(req)
  local f = T.parse_form(req.body)
  local tok = f.token or req.query.token
  if not tok then return oauth_error(400, "unsupported_token_type", "this token type is not supported") end
  if self.tokens[tok] then self.tokens[tok] = nil; return 200, "" end
  if self.refresh_tokens[tok] then self.refresh_tokens[tok] = nil; return 200, "" end
  for i, o in ipairs(self.db.OauthToken) do
    if crypto().equal(o.DeleteToken, tok) then
      table.remove(self.db.OauthToken, i)
      self.byid[o.Id:sub(1, 15)] = nil
      return 200, ""
    end
  end
  return oauth_error(400, "invalid_token", "invalid token")
end

-- Before every REST call: the org's edition offers the API, the daily allowance has room, the session
-- is valid ("Authorization: Bearer <token>", or the older "OAuth <token>").
function Org:precheck(req)
  if self.edition == "Professional Edition" then
    return S.err(403, "API_DISABLED_FOR_ORG", "The REST API is not enabled for this Organization.")
  end
  local auth = req.headers["authorization"] or ""
  local scheme, cred = auth:match("^(%S+)%s+(.+)$")
  local s = cred and self.tokens[cred]
  if not s or not (scheme == "Bearer" or scheme == "OAuth") or s.exp < self:wall_s() then
    return S.err(401, "INVALID_SESSION_ID", "Session expired or invalid")
  end
  local u = self.byid[s.user:sub(1, 15)]
  if not u.IsActive or u["@login"].IsFrozen then return S.err(401, "INVALID_SESSION_ID", "Session expired or invalid") end
  req.user = u
  req.sf_counted = true
  if not self:take_request() then return S.err(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.") end
end

return {
  { "POST", "/services/oauth2/token", Org.h_token, { public = true } },
  { "GET", "/services/oauth2/authorize", Org.h_authorize, { public = true } },
  { "POST", "/services/oauth2/revoke", Org.h_revoke, { public = true } },
}
