-- sandbox/okta/auth.lua — who may call: SSWS API tokens and OAuth access tokens of service apps
-- (client credentials with private_key_jwt at the org authorization server), scopes per route, the rate
-- budget and X-Rate-Limit-* headers, Okta's 429 and 5xx answers.
--
-- DPoP (RFC 9449), as Okta's guide "Configure OAuth 2.0 Demonstrating Proof-of-Possession" describes it
-- for Okta resources: a service app with `dpop = true` ("Require Demonstrating Proof of Possession (DPoP)
-- header in token requests", on by default for new apps) must send a DPoP proof JWT (typ dpop+jwt, ES256
-- or RS256, its public jwk in the header; htm, htu, iat, jti) with the token request; the first proof
-- without the server's nonce gets 400 use_dpop_nonce and a DPoP-Nonce header (the nonce is renewed
-- every 24 hours and the previous one stays valid); the token is then bound to the key (token_type DPoP,
-- cnf.jkt) and each resource request needs `Authorization: DPoP <token>` and a fresh proof with ath (the
-- token's hash).  Okta's resource server requires no nonce.  A refused proof is a 400 with
-- WWW-Authenticate: DPoP error="invalid_dpop_proof", as Okta answers (okta-sdk-python issue 541).
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

---------------------------------------------------------------------------------------------- DPoP
local DPOP_ALGS = { ES256 = "EC", RS256 = "RSA" }
local PRIVATE_JWK = { "d", "p", "q", "dp", "dq", "qi", "k" }
local IAT_PAST, IAT_FUTURE = 300, 60     -- seconds a proof's iat may lie before / after the server's clock

-- RFC 7638 thumbprint of a public JWK: the SHA-256 of its required members, in lexical order
local function thumbprint(jwk)
  local canon = jwk.kty == "EC" and ('{"crv":%s,"kty":"EC","x":%s,"y":%s}'):format(json().encode(jwk.crv), json().encode(jwk.x), json().encode(jwk.y))
    or ('{"e":%s,"kty":"RSA","n":%s}'):format(json().encode(jwk.e), json().encode(jwk.n))
  return crypto().b64url(crypto().sha256(canon))
end
O.thumbprint = thumbprint

-- the current nonce, and the one before it (still accepted)
function Okta:dpop_nonce()
  self.nonce_gen = self.nonce_gen or 1
  return T.b62(32, self.seed, "dpop-nonce", self.nonce_gen), T.b62(32, self.seed, "dpop-nonce", self.nonce_gen - 1)
end
-- test helper: the daily renewal of the nonce
function Okta:rotate_dpop_nonce() self.nonce_gen = (self.nonce_gen or 1) + 1 end

-- The DPoP proof of a request -> the thumbprint of its key | nil, description.  htu is compared on the
-- decoded URL without query, as Okta does; with `token`, ath must be its hash; with `nonce`, the proof
-- must carry a valid nonce (-> nil, description, "use_dpop_nonce").
function Okta:check_dpop(req, token, nonce)
  local proof = req.headers["dpop"]
  if not proof or proof == "" then return nil, "The DPoP proof JWT header is missing." end
  local cr = crypto()
  local h64, p64, s64 = proof:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  local header = h64 and json().decode(cr.unb64url(h64) or "")
  local claims = p64 and json().decode(cr.unb64url(p64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" then return nil, "The DPoP proof JWT is malformed." end
  if header.typ ~= "dpop+jwt" then return nil, "The DPoP proof JWT 'typ' header must be 'dpop+jwt'." end
  local kty = DPOP_ALGS[header.alg]
  if not kty then return nil, "The DPoP proof JWT 'alg' header is not supported." end
  local jwk = header.jwk
  if type(jwk) ~= "table" or jwk.kty ~= kty then return nil, "The DPoP proof JWT 'jwk' header is invalid." end
  for _, k in ipairs(PRIVATE_JWK) do
    if jwk[k] ~= nil then return nil, "The DPoP proof JWT 'jwk' header must not contain a private key." end
  end
  local pem = cr.jwk_pem(jwk)
  local verify = header.alg == "ES256" and cr.es256_verify or cr.rs256_verify
  if not pem or verify(pem, h64 .. "." .. p64, cr.unb64url(s64) or "") ~= true then
    return nil, "The DPoP proof JWT signature is invalid."
  end
  if claims.htm ~= req.method then return nil, "'htm' claim in the DPoP proof JWT is invalid." end
  local origin = self.base_url:match("^(https?://[^/]+)")
  if type(claims.htu) ~= "string" or T.urldecode(claims.htu:gsub("[?#].*$", "")) ~= T.urldecode(origin .. req.path) then
    return nil, "'htu' claim in the DPoP proof JWT is invalid."
  end
  local now = self:wall_s()
  if math.type(claims.iat) ~= "integer" or claims.iat < now - IAT_PAST or claims.iat > now + IAT_FUTURE then
    return nil, "'iat' claim in the DPoP proof JWT is invalid."
  end
  if type(claims.jti) ~= "string" or claims.jti == "" then return nil, "'jti' claim in the DPoP proof JWT is missing." end
  if token and claims.ath ~= cr.b64url(cr.sha256(token)) then return nil, "'ath' claim in the DPoP proof JWT is invalid." end
  if nonce then
    local cur, prev = self:dpop_nonce()
    if claims.nonce ~= cur and claims.nonce ~= prev then
      return nil, "Authorization server requires nonce in DPoP proof.", "use_dpop_nonce"
    end
  end
  -- a proof is good once (Okta: resource servers track jti and accept none twice)
  self.dpop_jti = self.dpop_jti or {}
  if self.dpop_jti[claims.jti] then return nil, "The DPoP proof JWT has already been used." end
  self.dpop_jti[claims.jti] = true
  return thumbprint(jwk)
end

local function dpop_refused(desc)
  return 400, { error = "invalid_dpop_proof", error_description = desc },
    { ["Content-Type"] = "application/json",
      ["WWW-Authenticate"] = ('DPoP algs="ES256 RS256", error="invalid_dpop_proof", error_description="%s"'):format(desc) }
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
  local api_token = scheme == "ssws" and self:api_token_of(cred)
  if api_token then
    -- the token acts as the admin who created it
    local u = self.state.by_id[api_token.userId] or self.admin
    req.actor = { id = u.id, type = "User", alternateId = u.profile.login, displayName = u.profile.displayName,
                  detailEntry = jnull() }
    req.api_token = api_token
    return nil
  elseif scheme == "bearer" or scheme == "dpop" then
    local at = self.access_tokens[cred]
    -- a DPoP-bound token is refused as a bearer token, and a bearer one as DPoP (RFC 9449 7.1, 7.2)
    if at and (at.jkt ~= nil) ~= (scheme == "dpop") then at = nil end
    if at and at.jkt then
      local jkt, why = self:check_dpop(req, cred)
      if not jkt then return dpop_refused(why) end
      if jkt ~= at.jkt then return dpop_refused("The DPoP proof JWT key does not match the access token's binding.") end
    end
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
  if claims.jti and self.used_jti[claims.jti] then
    return oauth_err(401, "invalid_client", "The client_assertion token has already been used.")
  end
  -- the app requires DPoP: a proof, then one with the current nonce (the first answer gives it)
  local jkt
  if c.dpop then
    local why, code
    jkt, why, code = self:check_dpop(req, nil, true)
    if not jkt and code == "use_dpop_nonce" then
      local st, body, hdr = oauth_err(400, "use_dpop_nonce", why)
      hdr["DPoP-Nonce"] = (self:dpop_nonce())
      return st, body, hdr
    end
    if not jkt then return oauth_err(400, "invalid_dpop_proof", why) end
  end
  if claims.jti then self.used_jti[claims.jti] = true end
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
  self.access_tokens[tok] = { client_id = c.client_id, scopes = set, exp = now + 3600, jkt = jkt }
  return 200, { token_type = jkt and "DPoP" or "Bearer", expires_in = 3600, access_token = tok, scope = table.concat(list, " ") },
         { ["Cache-Control"] = "no-store", Pragma = "no-cache" }
end

function Okta:h_revoke(req)
  local f = T.parse_form(req.body)
  if f.token and self.access_tokens[f.token] then self.access_tokens[f.token] = nil end
  return 200, ""
end


---------------------------------------------------------------------------------------------- API tokens
-- The SSWS tokens of the org's admins (GET /api/v1/api-tokens: no paging); a revoked one authenticates
-- nothing any more.
function Okta:api_token_of(secret)
  if type(secret) ~= "string" then return nil end
  for _, k in ipairs(self.state.api_tokens) do
    if crypto().equal(secret, k.secret) then return k end
  end
end

function Okta:api_token_json(k)
  local b = self.base_url
  return { id = k.id, name = k.name, userId = k.userId, clientName = k.clientName, tokenWindow = k.tokenWindow,
           network = { connection = "ANYWHERE" }, created = iso(k.created), lastUpdated = iso(k.lastUpdated),
           expiresAt = iso(k.expiresAt),
           _links = { self = { href = b .. "/api/v1/api-tokens/" .. k.id, hints = { allow = json().array({ "GET", "DELETE" }) } },
                      user = { href = b .. "/api/v1/users/" .. k.userId, hints = { allow = json().array({ "GET" }) } } } }
end

function Okta:h_api_tokens(req)
  local out = {}
  for i, k in ipairs(self.state.api_tokens) do out[i] = self:api_token_json(k) end
  return 200, json().array(out)
end

-- GET / DELETE one token; DELETE /api/v1/api-tokens/current revokes the caller's own
function Okta:h_api_token(req)
  local id = req.params.tid
  if id == "current" then
    if req.method ~= "DELETE" then return self:not_found("ApiToken", id) end
    if not req.api_token then return self:err("E0000006") end
    id = req.api_token.id
  end
  for i, k in ipairs(self.state.api_tokens) do
    if k.id == id then
      if req.method == "GET" then return 200, self:api_token_json(k) end
      table.remove(self.state.api_tokens, i)
      self:gov_event(req, "system.api_token.revoke", { { id = k.id, type = "Token", alternateId = "unknown",
                                                          displayName = k.name, detailEntry = jnull() } })
      return 204, ""
    end
  end
  return self:not_found("ApiToken", id)
end

local K = { scope = "okta.apiTokens" }
return {
  { "GET", "/api/v1/api-tokens", Okta.h_api_tokens, K },
  { "GET", "/api/v1/api-tokens/:tid", Okta.h_api_token, K },
  { "DELETE", "/api/v1/api-tokens/:tid", Okta.h_api_token, K },
  { "POST", "/oauth2/v1/token", Okta.h_token, { noauth = true } },
  { "POST", "/oauth2/v1/revoke", Okta.h_revoke, { noauth = true } },
}
