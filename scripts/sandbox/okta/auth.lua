-- sandbox/okta/auth.lua — who may call: SSWS API tokens and OAuth access tokens of service apps
-- (client credentials with private_key_jwt at the org authorization server), scopes per route, the rate
-- budget and X-Rate-Limit-* headers, Okta's 429 and 5xx answers.
local O = require "sandbox.okta.org"
local T, Okta = O.T, O.Okta
local json, jnull, iso = O.json, O.jnull, O.iso
local crypto = O.crypto

local function bucket_of(path)
  local fam = path:match("^/api/v1/([%w]+)") or path:match("^/oauth2/v1/(%w+)") or "other"
  return fam
end

-- Scope needed by a route: ropts.scope = "okta.users" (+ .read / .manage by method) or explicit
local function needed_scope(req, ropts)
  if not ropts.scope then return nil end
  if ropts.scope:find("%.read$") or ropts.scope:find("%.manage$") then return ropts.scope end
  return ropts.scope .. ((req.method == "GET" or req.method == "HEAD") and ".read" or ".manage")
end

function Okta:precheck(req, ropts)
  local path = self.prefix and req.path:sub(#self.prefix + 1) or req.path
  local limit, remaining, reset, exceeded = self:rate_take(bucket_of(path))
  req._rl = { limit, remaining, reset }
  if exceeded then
    local st, body, hdr = self:err("E0000047")
    return st, body, hdr
  end
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local scheme, cred = auth:match("^(%S+)%s+(.+)$")
  scheme = scheme and scheme:lower()
  if scheme == "ssws" and crypto().equal(cred, self.token) then
    req.actor = { id = self.admin.id, type = "User", alternateId = self.admin.profile.login,
                  displayName = self.admin.profile.displayName, detailEntry = jnull() }
    return nil
  elseif scheme == "bearer" then
    local at = self.access_tokens[cred]
    if at and at.exp > self:wall_s() then
      local need = needed_scope(req, ropts)
      if need and not at.scopes[need] then
        local st, body, hdr = self:err("E0000006")
        hdr["WWW-Authenticate"] = string.format('Bearer authorization_uri="%s/oauth2/v1/authorize", realm="%s", scope="%s", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="%s"',
          self.base_url, self.base_url, need, path)
        return st, body, hdr
      end
      local c = self.clients[at.client_id]
      req.actor = { id = at.client_id, type = "PublicClientApp", alternateId = at.client_id,
                    displayName = c and c.name or at.client_id, detailEntry = jnull() }
      return nil
    end
  end
  return self:err("E0000011")
end

function Okta:decorate(req, status, hdr)
  local rl = req._rl
  if rl then
    hdr["X-Rate-Limit-Limit"] = tostring(rl[1])
    hdr["X-Rate-Limit-Remaining"] = tostring(rl[2])
    hdr["X-Rate-Limit-Reset"] = tostring(rl[3])
  end
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json"
end

function Okta:fault_response(f, req)
  local k = f.kind
  local hdr
  local st, body
  if k == "429" then
    st, body, hdr = self:err("E0000047")
    local ra = f.retry_after or 1
    hdr["X-Rate-Limit-Limit"] = tostring(self.rate.limit)
    hdr["X-Rate-Limit-Remaining"] = "0"
    hdr["X-Rate-Limit-Reset"] = tostring(self:wall_s() + math.ceil(ra))
    hdr["Retry-After"] = tostring(ra)
  elseif k == "503" or k == "502" then
    st, body, hdr = self:err("E0000009", "Service Unavailable", tonumber(k))
  else
    st, body, hdr = self:err("E0000009", nil, 500)
  end
  return st, json().encode(body), hdr
end


-- OAuth 2.0 client credentials with private_key_jwt
local function oauth_err(status, code, desc)
  return status, { error = code, error_description = desc }, { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" }
end

function Okta:h_token(req)
  local ct = (req.headers["content-type"] or ""):lower()
  if not ct:find("application/x-www-form-urlencoded", 1, true) then
    return oauth_err(400, "invalid_request", "The request must be application/x-www-form-urlencoded.")
  end
  local f = T.parse_form(req.body)
  if f.grant_type ~= "client_credentials" then
    return oauth_err(400, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].")
  end
  if f.client_assertion_type ~= "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or not f.client_assertion then
    return oauth_err(401, "invalid_client", "Client authentication failed. Either the client or the client credentials are invalid.")
  end
  local h64, p64, s64 = f.client_assertion:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  local cr = crypto()
  local header = h64 and json().decode(cr.unb64url(h64) or "")
  local claims = p64 and json().decode(cr.unb64url(p64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" then
    return oauth_err(401, "invalid_client", "The client_assertion token is invalid.")
  end
  if header.alg ~= "RS256" then
    return oauth_err(401, "invalid_client", "The client_assertion token has an unsupported signing algorithm.")
  end
  local c = self.clients[claims.iss]
  if not c or (f.client_id and f.client_id ~= claims.iss) then
    return oauth_err(401, "invalid_client", "The client_assertion token contains an unknown client.")
  end
  if not cr.rs256_verify(c.public_key, h64 .. "." .. p64, cr.unb64url(s64) or "") then
    return oauth_err(401, "invalid_client", "The client_assertion signature is invalid.")
  end
  local now = self:wall_s()
  if claims.sub ~= claims.iss then
    return oauth_err(401, "invalid_client", "The client_assertion token must have an 'iss' claim that matches the 'sub' claim.")
  end
  if claims.aud ~= self.base_url .. "/oauth2/v1/token" then
    return oauth_err(401, "invalid_client", "The audience claim for client_assertion must be the endpoint invoked for the request.")
  end
  if type(claims.exp) ~= "number" or claims.exp <= now then
    return oauth_err(401, "invalid_client", "The client_assertion token is expired.")
  end
  if type(claims.iat) == "number" and claims.exp - claims.iat > 3600 then
    return oauth_err(401, "invalid_client", "The client_assertion token has an expiration too far in the future.")
  end
  if claims.jti then
    if self.used_jti[claims.jti] then
      return oauth_err(401, "invalid_client", "The client_assertion token has already been used.")
    end
    self.used_jti[claims.jti] = true
  end
  if not f.scope or f.scope == "" then
    return oauth_err(400, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.")
  end
  local granted = {}
  for _, s in ipairs(c.scopes) do granted[s] = true end
  local set, list = {}, {}
  for s in f.scope:gmatch("%S+") do
    if not granted[s] then
      return oauth_err(400, "invalid_scope", "The following scopes are not allowed: [" .. s .. "].")
    end
    set[s] = true; list[#list + 1] = s
  end
  local tok = cr.b64url(cr.random(32))
  self.access_tokens[tok] = { client_id = c.client_id, scopes = set, exp = now + 3600 }
  return 200, { token_type = "Bearer", expires_in = 3600, access_token = tok, scope = table.concat(list, " ") },
         { ["Cache-Control"] = "no-store", Pragma = "no-cache" }
end

function Okta:h_revoke(req)
  local f = T.parse_form(req.body)
  if f.token and self.access_tokens[f.token] then self.access_tokens[f.token] = nil end
  return 200, ""
end


return {
  { "POST", "/oauth2/v1/token", Okta.h_token, { noauth = true } },
  { "POST", "/oauth2/v1/revoke", Okta.h_revoke, { noauth = true } },
}
