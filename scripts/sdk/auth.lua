-- sdk/auth.lua — the ways a connector authenticates, declared in its `auth` table, run for every request.
--   { type = "token", header = "Authorization", format = "SSWS %s", secret = "api_token" }
--   { type = "oauth2", token_url = "/oauth/token", authorize_url = ..., scopes = {...}, pkce = true,
--     client_id = "client_id" (setting), client_secret = "client_secret" (secret),
--     grant = "authorization_code"|"client_credentials"|"password",
--     lifetime = seconds (a token answer without expires_in lives this long), accept = function(settings, answer) ->
--     true | nil, err (the connector's check of a token answer, e.g. that it is for the instance's own org),
--     authorize_params = {...} | function(settings) (more query parameters of the consent URL, e.g.
--     Google's access_type=offline, Dropbox's token_access_type=offline),
--     username = "username" (setting), password = "password" (secret) }
--     grant "password" (RFC 6749 4.3, an integration user's own credentials, e.g. ServiceNow): the tokens
--     are obtained without a browser, refreshed with the refresh token, and asked for again with the
--     password when the refresh token has expired.
--   { type = "basic", username = "username" (setting), password = "password" (secret) }: HTTP Basic
--     (RFC 7617) with an account's name and password, on every request.
--   { type = "sigv4", service = "iam", region = "us-east-1" | function(settings), s3 = false,
--     unsigned_payload = false, chunk_size = nil (S3: a longer body goes as a chunked upload),
--     access_key = "access_key_id", secret_key = "secret_access_key",
--     session_token = "session_token" (secret names; the token optional),
--     credentials = function(client, scheme) -> {access_key=, secret_key=, session_token=} | nil, err }
--     AWS Signature Version 4 (sdk/sigv4.lua) on every request; `credentials` replaces the secrets.
--     assume_role = { role_arn = "role_arn", external_id = "external_id" (setting names), url = STS endpoint
--     (string | function(settings)), region = ... }: when the instance sets role_arn, the keys only call
--     STS AssumeRole (with the external id) and requests are signed with the session it returns, kept in
--     the vault (sts_access_key_id, sts_secret_access_key, sts_session_token, sts_expires_at) and assumed
--     again shortly before it expires.
--   { type = "exchange", exchange = function(x) -> {token=, expires_at=epoch seconds} | nil, err }: a short-lived
--     token the connector obtains with a credential of its own (a GitHub App's JWT -> an installation token);
--     x offers settings, secret(name), jwt(claims, secret_name) (RS256), request(method, path, opts) (sent
--     as given: no credentials added), now() and subject (see below).  Kept in the vault like OAuth tokens,
--     renewed before expiry.  A request may act as a subject (opts.auth = {subject = "user@example.com"}:
--     Google's domain-wide delegation, where Drive acts as each file's owner): each subject's token is
--     obtained with x.subject set and kept apart in the vault (access_token.sub:<subject>).
--   { type = "wsse", username = "username" (setting), password = "password" (secret) }: an integration
--     user's name and password: a WS-Security UsernameToken in the header of a SOAP call (client
--     opts.soap), HTTP Basic on the app's other requests (Workday's reports).
--   An oauth2 scheme with grant = "refresh_token" is given its refresh token (the secret refresh_token) by
--     the admin, e.g. Workday's API clients for integrations: access tokens come from it, no consent flow.
-- Relative endpoint URLs resolve against the scheme's own host `base_url` when it declares one (GitHub's
-- web flow is on github.com, its API on api.github.com), else against the API base URL; the instance
-- setting `oauth_base_url` overrides the scheme's host (GHES, sandbox tenants).
-- OAuth tokens live in the vault as secrets access_token / refresh_token / token_expires_at, and are
-- refreshed shortly before they expire, or when the provider answers 401 to one that has not expired (then
-- the request is sent once more with the new token); a refused refresh means "reconnect needed".
local util = require "sdk.util"
local sigv4 = require "sdk.sigv4"
local soap = require "sdk.soap"

local M = {}
local REFRESH_MARGIN = 120   -- seconds before expiry

local function scheme_of(connector, inst, which)
  local auth = connector.auth or {}
  if auth.type then return auth end
  local pick = which or inst.settings.auth or auth.default
  return auth[pick] or error(("%s: unknown auth scheme '%s'"):format(connector.app, tostring(pick)), 0)
end
M.scheme = scheme_of

local function endpoint(client, scheme, path)
  if type(path) == "function" then path = path(client.inst.settings) end   -- e.g. a tenant in the path
  if path:match("^https?://") then return path end
  local base = client.inst.settings.oauth_base_url
  if not base or base == "" then base = scheme.base_url end
  if base then return util.trim_slash(base) .. path end
  return client:url(path)
end
M.endpoint = endpoint

-- The hosts the auth schemes of a connector send credentials to (token and device endpoints), for an
-- instance's settings: with the API base URL, the only hosts its requests may go to (Client:set_hosts).
function M.hosts(connector, settings)
  local out = {}
  local auth = connector.auth or {}
  for _, scheme in pairs(auth.type and { auth } or auth) do
    if type(scheme) == "table" then
      -- the STS endpoint a sigv4 scheme assumes its role at
      local sts = scheme.assume_role and scheme.assume_role.url
      if type(sts) == "function" then sts = sts(settings) end
      if type(sts) == "string" then out[#out + 1] = sts end
      for _, k in ipairs { "token_url", "device_url" } do
        local p = scheme[k]
        if type(p) == "function" then p = p(settings) end
        if type(p) == "string" and p:match("^https?://") then out[#out + 1] = p
        elseif type(p) == "string" then
          local base = settings.oauth_base_url
          if not base or base == "" then base = scheme.base_url end
          if base then out[#out + 1] = base end          -- else the API base URL, there already
        end
      end
    end
  end
  return out
end

-- The scopes a scheme asks for: a list, or a function of the instance's settings (only what its enabled
-- components need: least privilege, and a service app may refuse a scope it was not granted).
function M.scopes(scheme, settings)
  local s = scheme.scopes
  if type(s) == "function" then s = s(settings) end
  return s or {}
end

-- Where a scheme's tokens live in the vault.  A request may name a scheme of its own (opts.auth: an app
-- with several OAuth resources, e.g. Graph and manage.office.com, holds one token per resource); such
-- tokens are keyed by the scheme's name, the instance's own scheme keeps the plain names.
local function names(key)
  local sfx = key and ("." .. key) or ""
  return { access = "access_token" .. sfx, refresh = "refresh_token" .. sfx, expires = "token_expires_at" .. sfx,
           type = "token_type" .. sfx }
end
M.token_names = names

---------------------------------------------------------------------------------------------- DPoP
-- DPoP (RFC 9449), a scheme's option `dpop` (true, or a function of the settings): a P-256 key pair made
-- once and kept in the vault ("dpop_key"); a proof JWT signed with it on the token request (the server may
-- first answer 400 use_dpop_nonce with a DPoP-Nonce header: asked once more with that nonce, which is
-- kept for the next ones); when the token comes back bound to the key (token_type DPoP), every request
-- carries `Authorization: DPoP <token>` and a fresh proof with the token's hash (ath), made again for
-- each retry (a proof's jti is good once).
function M.dpop_on(scheme, settings)
  local d = scheme.dpop
  if type(d) == "function" then d = d(settings) end
  return d == true
end

local function dpop_key(client)
  if client.dpop_pem then return client.dpop_pem, client.dpop_jwk end
  local inst = client.inst
  local pem, err = inst:secret("dpop_key")
  if not pem then
    if err and not tostring(err):match("^missing") then return nil, err end
    pem = crypto.keygen("P-256")
    inst:set_secret("dpop_key", pem)
  end
  local jwk = crypto.jwk(pem)
  if not jwk then return nil, "auth: the vault's DPoP key cannot be read" end
  client.dpop_pem, client.dpop_jwk = pem, jwk
  return pem, jwk
end

-- A proof of this request (htu: the URL without query and fragment), of `token` when there is one.
function M.dpop_proof(client, method, url, token)
  local pem, jwk = dpop_key(client)
  if not pem then return nil, jwk end
  local b64 = function(t) return crypto.b64url(json.encode(t)) end
  local input = b64 { typ = "dpop+jwt", alg = "ES256", jwk = jwk } .. "." .. b64 {
    jti = crypto.b64url(crypto.random(16)), htm = method, htu = (url:gsub("[?#].*$", "")),
    iat = math.floor(sched.time()), nonce = client.dpop_nonce,
    ath = token and crypto.b64url(crypto.sha256(token)) or nil }
  local sig, err = crypto.es256_sign(pem, input)
  if not sig then return nil, "auth: DPoP proof: " .. tostring(err) end
  return input .. "." .. crypto.b64url(sig)
end

-- req.refresh(req): run before each attempt of a request (client.lua), so a retry carries a new proof
local function dpop_refresher(client, token)
  return function(r) r.headers["DPoP"] = assert(M.dpop_proof(client, r.method, r.url, token)) end
end

-- Exchange a grant at the token endpoint; stores the tokens.  `form` may be a function making the form
-- (asked again, its client assertion is new: a jti is good once).  -> token table | nil, err, token, body
-- (the endpoint's answer, e.g. a device grant's {"error": "authorization_pending"})
function M.token_request(client, scheme, form, key)
  local n = names(key)
  local inst = client.inst
  local url = endpoint(client, scheme, scheme.token_url)
  local dpop = M.dpop_on(scheme, inst.settings)
  local make = type(form) == "function" and form or function() return form end
  local resp, err, token, answer
  for _ = 1, 2 do
    local f, ferr = make()
    if not f then return nil, ferr end
    local opts = { form = f, no_auth = true, headers = { Accept = "application/json" }, expect_json = true,
      idempotent = f.grant_type == "client_credentials" or f.grant_type == "password" }  -- a new token again: harmless
    if dpop then
      local proof, perr = M.dpop_proof(client, "POST", url)
      if not proof then return nil, perr end
      opts.headers.DPoP, opts.refresh = proof, dpop_refresher(client)
    end
    resp, err, token, answer = client:request("POST", url, opts)
    -- the server's nonce first: once more with it
    local nonce = dpop and not resp and answer and answer.status == 400 and answer.headers["dpop-nonce"]
    if not nonce or nonce == client.dpop_nonce then break end
    client.dpop_nonce = nonce
  end
  if not resp then
    -- refused (4xx) is about the credentials; an outage (5xx, timeout, a garbled answer) is not
    if token ~= "auth" and token ~= "permission" and token ~= "http" and token ~= "not_found" then return nil, err, token end
    return nil, "auth: token request refused: " .. tostring(err), "auth", answer and answer.data
  end
  local t = resp.data
  if type(t) ~= "table" or not t.access_token then
    return nil, "auth: token endpoint answered without access_token" ..
      (type(t) == "table" and t.error and (": " .. tostring(t.error)) or ""), "auth", t
  end
  if scheme.accept then                  -- the connector's check of the answer (Salesforce: the right org)
    local ok, why = scheme.accept(inst.settings, t)
    if not ok then return nil, why, "auth", t end
  end
  inst:set_secret(n.access, t.access_token)
  -- kept with the token; as "token_type=X" (every vault value is masked in output: not a bare word)
  inst:set_secret(n.type, "token_type=" .. tostring(t.token_type or "Bearer"))
  if t.refresh_token then inst:set_secret(n.refresh, t.refresh_token) end
  -- a provider that says nothing of the token's life (Salesforce: the org's session timeout) has the
  -- scheme's `lifetime`: renewed (refreshed) after it
  local life = tonumber(t.expires_in) or tonumber(scheme.lifetime)
  if life then inst:set_secret(n.expires, tostring(sched.time() + life)) end
  if t.scope then inst:set_granted(t.scope) end
  return t
end

-- An RS256-signed JWT (RFC 7519) of `claims` with a PEM private key -> jwt | nil, err
function M.jwt_rs256(claims, pem)
  local head = crypto.b64url(json.encode { alg = "RS256", typ = "JWT" }) .. "." .. crypto.b64url(json.encode(claims))
  local sig, err = crypto.rs256_sign(pem, head)
  if not sig then return nil, "auth: cannot sign the JWT with the private key: " .. tostring(err) end
  return head .. "." .. crypto.b64url(sig)
end

-- A scheme of type "exchange": the connector's exchange() gets a new token; stored with its expiry.
-- -> token | nil, err, token ("auth" when the provider refused the credential: reconnect needed)
local function exchange(client, scheme, key, subject)
  local inst = client.inst
  local x = {
    settings = inst.settings, subject = subject,
    secret = function(name) return inst:secret(name) end,
    now = function() return sched.time() end,
    jwt = function(claims, secret_name)
      local pem = inst:secret(secret_name)
      if not pem then return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(secret_name, inst.name) end
      return M.jwt_rs256(claims, pem)
    end,
    request = function(method, path, opts)
      opts = opts or {}
      opts.no_auth, opts.expect_json = true, true
      return client:request(method, path, opts)
    end,
  }
  local t, err, token = scheme.exchange(x)
  if not t then
    token = type(token) == "string" and token or tostring(err):match("^([%a_]+):")
    -- refused (4xx) is about the credential; an outage (5xx, timeout, a garbled answer) is not
    if token == "auth" or token == "permission" or token == "http" or token == "not_found" then
      return nil, "auth: token exchange refused: " .. tostring(err), "auth"
    end
    return nil, err, token
  end
  local n = names(key)
  inst:set_secret(n.access, t.token)
  inst:set_secret(n.expires, tostring(math.floor(t.expires_at)))
  return t.token
end

-- private_key_jwt (RFC 7523, OpenID Connect Core 9): the client authenticates with a JWT signed with its
-- private key (the secret scheme.private_key names): iss = sub = the client id, aud = the token endpoint,
-- a short life and a jti used once.  RS256.
function M.client_assertion(client, scheme)
  local inst = client.inst
  local pem, err = inst:secret(scheme.private_key)
  if not pem then
    if err and not tostring(err):match("^missing") then return nil, err end
    return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(scheme.private_key, inst.name)
  end
  local id = inst.settings[scheme.client_id or "client_id"]
  local now = math.floor(sched.time())
  return M.jwt_rs256({ iss = id, sub = id, aud = endpoint(client, scheme, scheme.token_url), iat = now, exp = now + 300,
                       jti = crypto.b64url(crypto.random(16)) }, pem)
end

local function client_credentials(client, scheme, key)
  local inst = client.inst
  local function form()
    local f = { grant_type = "client_credentials", scope = table.concat(M.scopes(scheme, inst.settings), " ") }
    if scheme.private_key then                       -- private_key_jwt (Okta service apps)
      local a, err = M.client_assertion(client, scheme)
      if not a then return nil, err end
      f.client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
      f.client_assertion = a
    else
      f.client_id = inst.settings[scheme.client_id or "client_id"]
      f.client_secret = inst:secret(scheme.client_secret or "client_secret")
    end
    -- provider-specific grant fields, e.g. Box's box_subject_type / box_subject_id
    for k, v in pairs(scheme.form and scheme.form(inst.settings) or {}) do f[k] = v end
    return f
  end
  return M.token_request(client, scheme, form, key)
end

-- The resource owner password grant: the account's own name and password (an integration user's).
local function password_grant(client, scheme, key)
  local inst = client.inst
  local function form()
    local password, err = inst:secret(scheme.password or "password")
    if not password then
      if err and not tostring(err):match("^missing") then return nil, err end
      return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(scheme.password or "password", inst.name)
    end
    local scopes = M.scopes(scheme, inst.settings)
    return { grant_type = "password", username = inst.settings[scheme.username or "username"], password = password,
      client_id = inst.settings[scheme.client_id or "client_id"],
      client_secret = inst:secret(scheme.client_secret or "client_secret"),
      scope = #scopes > 0 and table.concat(scopes, " ") or nil }
  end
  return M.token_request(client, scheme, form, key)
end

-- A grant that needs no browser: obtained again whenever there is no usable token.
local function obtain(client, scheme, key)
  if scheme.grant == "password" then return password_grant(client, scheme, key) end
  return client_credentials(client, scheme, key)
end
local function unattended(scheme) return scheme.grant == "client_credentials" or scheme.grant == "password" end

local function refresh(client, scheme, key)
  local inst = client.inst
  local rt = inst:secret(names(key).refresh)
  if not rt then
    if unattended(scheme) then return obtain(client, scheme, key) end
    return nil, "auth: no refresh token: reconnect needed (cachost instance connect " .. inst.name .. ")"
  end
  local t, err, token = M.token_request(client, scheme, {
    grant_type = "refresh_token", refresh_token = rt,
    client_id = inst.settings[scheme.client_id or "client_id"],
    client_secret = inst:secret(scheme.client_secret or "client_secret"),
  }, key)
  if not t then
    if token ~= "auth" then return nil, err, token end        -- an outage: try again later
    -- an expired refresh token: the password grant asks again with the account's own credentials
    if scheme.grant == "password" then return password_grant(client, scheme, key) end
    return nil, "auth: token refresh refused, reconnect needed: " .. tostring(err), "auth"
  end
  return t
end

local function str(v) if type(v) == "string" and v ~= "" then return v end end

local function setting(settings, v)
  if type(v) == "function" then return v(settings) end
  return v
end

-- One renewal of a token at a time per instance (`name`: the token's vault name): a request needing it
-- while another renews it waits for that renewal and shares its outcome, so requests in flight together
-- cause a single token request (Box's refresh tokens are single use: a second refresh with the same one
-- would be refused and read as a dead credential).  Across the processes sharing the store the same, by
-- the store's lock (inst:exclusive); fn reads the vault again first, so a process that waited there uses
-- the token the other one stored.  fn() -> value | nil, err, token
local function once(client, name, fn)
  local inst = client.inst
  if inst.id and inst.exclusive then        -- (an instance not yet stored has no other process to meet)
    local inner = fn
    fn = function() return inst:exclusive("token:" .. name, inner) end
  end
  client.renewing = client.renewing or {}
  while client.renewing[name] do
    local r = client.renewing[name]:wait()
    if type(r) == "table" then return table.unpack(r, 1, r.n) end
    -- the renewing task raised (e.g. it was cancelled): renew here
  end
  local cond = sched.cond()
  client.renewing[name] = cond
  local res = table.pack(pcall(fn))
  client.renewing[name] = nil
  cond:broadcast(res[1] and table.pack(table.unpack(res, 2, res.n)) or false)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The vault's token under `n` when it may be sent: not expiring, and not the one the provider refused.
local function usable(inst, n, refused, need_expiry)
  local token = inst:secret(n.access)
  local exp = tonumber(inst:secret(n.expires) or "")
  if not token or token == refused or (need_expiry and not exp) or (exp and exp - REFRESH_MARGIN < sched.time()) then return nil end
  return token
end

-- An oauth2 scheme's access token, obtained or refreshed when missing, expiring or refused.
local function oauth_token(client, scheme, key, refused)
  local inst, n = client.inst, names(key)
  local token = usable(inst, n, refused)
  if token then return token end
  return once(client, n.access, function()
    local fresh = usable(inst, n, refused)          -- renewed by the request we waited behind
    if fresh then return fresh end
    local t, err, etoken
    if not inst:secret(n.access) and unattended(scheme) then t, err, etoken = obtain(client, scheme, key)
    -- a refresh token alone (a service app's, handed over by its developer portal) is redeemed on first use
    elseif not inst:secret(n.access) and not inst:secret(n.refresh) then
      if scheme.grant == "refresh_token" then       -- the admin hands it over: no consent to run
        return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(n.refresh, inst.name)
      end
      return nil, "auth: not connected: run cachost instance connect " .. inst.name
    else t, err, etoken = refresh(client, scheme, key) end
    if not t then return nil, err, etoken end
    return t.access_token
  end)
end

-- An exchange scheme's token, exchanged again when missing, expiring or refused.
local function exchange_token(client, scheme, key, subject, refused)
  local inst, n = client.inst, names(key)
  local token = usable(inst, n, refused, true)
  if token then return token end
  return once(client, n.access, function()
    local fresh = usable(inst, n, refused, true)     -- renewed by the request we waited behind
    if fresh then return fresh end
    return exchange(client, scheme, key, subject)
  end)
end

local STS_VERSION = "2011-06-15"
local STS_SESSION = 3600          -- seconds asked for; AssumeRole's default and every role's minimum maximum

-- STS AssumeRole with the instance's own keys -> session credentials (stored) | nil, err.
local function assume_role(client, scheme, keys, role_arn)
  local ar, inst = scheme.assume_role, client.inst
  local settings = inst.settings
  local form = { Action = "AssumeRole", Version = STS_VERSION, RoleArn = role_arn,
                 RoleSessionName = "cachost-" .. inst.name:gsub("[^%w+=,.@%-]", "-"):sub(1, 56),
                 DurationSeconds = tostring(STS_SESSION), ExternalId = str(settings[ar.external_id or "external_id"]) }
  local url = setting(settings, ar.url)
  local region = setting(settings, ar.region) or "us-east-1"
  local req = { method = "POST", url = url, body = http.form(form),
                headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" } }
  sigv4.sign(req, keys, { service = "sts", region = region })
  local resp, err = client:request("POST", req.url, { body = req.body, headers = req.headers, no_auth = true,
    raw = true, expect_xml = true, idempotent = true })
  if not resp then
    local token = tostring(err):match("^(%a+):")
    -- refused (4xx: wrong keys, role or external id) is about the credentials; an outage is not
    if token ~= "auth" and token ~= "permission" and token ~= "http" and token ~= "not_found" then return nil, err, token end
    return nil, "auth: STS AssumeRole refused: " .. tostring(err), "auth"
  end
  local x = require "sdk.xml"
  local c = resp.xml and x.record(x.find(resp.xml, "AssumeRoleResult/Credentials") or { text = "" })
  local expires = type(c) == "table" and util.parse_iso(c.Expiration)
  if not (expires and c.AccessKeyId and c.SecretAccessKey and c.SessionToken) then
    return nil, "auth: STS AssumeRole answered without credentials", "auth"
  end
  inst:set_secret("sts_access_key_id", c.AccessKeyId)
  inst:set_secret("sts_secret_access_key", c.SecretAccessKey)
  inst:set_secret("sts_session_token", c.SessionToken)
  inst:set_secret("sts_expires_at", tostring(expires))
  return { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken }
end

-- The keys a sigv4 scheme signs with: its credentials function, else the instance's secrets (or the
-- session of the role they assume).
local function sigv4_credentials(client, scheme)
  if scheme.credentials then return scheme.credentials(client, scheme) end
  local inst = client.inst
  local creds = {}
  for _, f in ipairs { { "access_key", "access_key_id" }, { "secret_key", "secret_access_key" } } do
    local field, name = f[1], scheme[f[1]] or f[2]
    local v, err = inst:secret(name)
    if not v then
      if err and not err:match("^missing:") then return nil, err end
      return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(name, inst.name)
    end
    creds[field] = v
  end
  creds.session_token = inst:secret(scheme.session_token or "session_token")
  local ar = scheme.assume_role
  local role_arn = ar and str(inst.settings[ar.role_arn or "role_arn"])
  if not role_arn then return creds end
  local exp = tonumber(inst:secret("sts_expires_at") or "")
  if exp and exp - REFRESH_MARGIN > sched.time() then
    local id, secret, tok = inst:secret("sts_access_key_id"), inst:secret("sts_secret_access_key"), inst:secret("sts_session_token")
    if id and secret and tok then return { access_key = id, secret_key = secret, session_token = tok } end
  end
  return assume_role(client, scheme, creds, role_arn)
end

-- region: the request's own (an S3 bucket's region, another region's CloudTrail), else the scheme's.
local function sign_sigv4(client, req, scheme, region)
  local creds, err, token = sigv4_credentials(client, scheme)
  if not creds then return nil, err, token end
  region = region or scheme.region
  if type(region) == "function" then region = region(client.inst.settings) end
  local service = scheme.service
  if type(service) == "function" then service = service(client.inst.settings) end
  sigv4.sign(req, creds, { service = service, region = region or "us-east-1", s3 = scheme.s3,
                           unsigned_payload = scheme.unsigned_payload, chunk_size = scheme.chunk_size })
  return true
end

-- The account of a basic or wsse scheme: user name (a setting), password (a secret) | nil, err.
local function account(inst, scheme)
  local password, perr = inst:secret(scheme.password or "password")
  if not password then
    if perr and not perr:match("^missing:") then return nil, perr end
    return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(scheme.password or "password", inst.name)
  end
  local user = inst.settings[scheme.username or "username"]
  if type(user) ~= "string" or user == "" or user:find(":", 1, true) then
    return nil, ("auth: setting '%s' must name the account (no ':'): cachost instance edit %s"):format(scheme.username or "username", inst.name)
  end
  return user, password
end

-- The `auth(client, req, which, refused)` hook the client calls before every request; `which` names a
-- scheme other than the instance's (a request's opts.auth).  -> true, token (the OAuth or exchanged token
-- the request carries, which a 401 may have the client hand back as `refused`) | nil, err, token
-- `refused`: the provider answered 401 to this token although it has not expired (revoked, or the
-- provider's session ended): a new one is obtained without a user (refresh token, client credentials,
-- password, exchange) for the client's one retry of the request.
-- A connector's `headers` ride on each of its authenticated API requests (GitHub's media type and API
-- version); an Accept a request names itself stays, the client's default application/json gives way.
function M.for_connector(connector)
  return function(client, req, which, refused)
    local inst = client.inst
    for k, v in pairs(connector.headers or {}) do
      if req.headers[k] == nil or (k == "Accept" and req.headers[k] == "application/json") then req.headers[k] = v end
    end
    -- {scheme=, subject=}: acting as that subject; {scheme=, region=}: a sigv4 request of that region
    local subject, region
    if type(which) == "table" then subject, region, which = which.subject, which.region, which.scheme end
    local scheme = scheme_of(connector, inst, which)
    local key = which and scheme ~= scheme_of(connector, inst) and which or nil
    if subject then key = (key and key .. "." or "") .. "sub:" .. subject end
    if scheme.type == "token" then
      local secret, serr = inst:secret(scheme.secret)
      if not secret then
        if serr and not serr:match("^missing:") then return nil, serr end
        return nil, ("auth: secret '%s' is not set (cachost instance edit %s)"):format(scheme.secret, inst.name)
      end
      req.headers[scheme.header or "Authorization"] = (scheme.format or "Bearer %s"):format(secret)
      return true
    elseif scheme.type == "oauth2" then
      local n = names(key)
      local token, err, etoken = oauth_token(client, scheme, key, refused)
      if not token then return nil, err, etoken end
      -- a token bound to our key (only a DPoP scheme asks for one): a proof with each request
      if M.dpop_on(scheme, inst.settings) and tostring(inst:secret(n.type)):lower() == "token_type=dpop" then
        req.headers["Authorization"] = "DPoP " .. token
        local proof, perr = M.dpop_proof(client, req.method, req.url, token)
        if not proof then return nil, perr end
        req.headers["DPoP"] = proof
        req.refresh = dpop_refresher(client, token)
        return true, token
      end
      req.headers["Authorization"] = (scheme.format or "Bearer %s"):format(token)
      return true, token
    elseif scheme.type == "basic" or scheme.type == "wsse" then
      local user, password = account(inst, scheme)
      if not user then return nil, password end
      if scheme.type == "wsse" and req.soap then req.soap_header = { soap.username_token(user, password) }
      else req.headers["Authorization"] = "Basic " .. crypto.b64(user .. ":" .. password) end
      return true
    elseif scheme.type == "sigv4" then
      return sign_sigv4(client, req, scheme, region)
    elseif scheme.type == "exchange" then
      local token, err, etoken = exchange_token(client, scheme, key, subject, refused)
      if not token then return nil, err, etoken end
      req.headers["Authorization"] = (scheme.format or "Bearer %s"):format(token)
      return true, token
    end
    return nil, "auth: unknown scheme type " .. tostring(scheme.type)
  end
end

-- OAuth2 authorization code with PKCE: returns the URL to open and a function that waits for the
-- redirect on the loopback server and exchanges the code.  state and the PKCE verifier are checked.
function M.authorization_code(client, scheme, redirect_uri)
  local inst = client.inst
  local verifier = crypto.b64url(crypto.random(32))
  local state = crypto.b64url(crypto.random(16))
  local q = {
    response_type = "code", client_id = inst.settings[scheme.client_id or "client_id"],
    redirect_uri = redirect_uri, state = state, scope = table.concat(M.scopes(scheme, inst.settings), " "),
  }
  local extra = scheme.authorize_params
  if type(extra) == "function" then extra = extra(inst.settings) end
  for k, v in pairs(extra or {}) do q[k] = v end
  if scheme.pkce ~= false then
    q.code_challenge = crypto.b64url(crypto.sha256(verifier))
    q.code_challenge_method = "S256"
  end
  local url = endpoint(client, scheme, scheme.authorize_url) .. "?" .. http.form(q)
  local function exchange(params)
    if not params.state or not crypto.equal(params.state, state) then return nil, "auth: state mismatch (forged redirect?)" end
    if params.error then return nil, "auth: consent refused: " .. tostring(params.error_description or params.error) end
    if not params.code then return nil, "auth: redirect without code" end
    return M.token_request(client, scheme, {
      grant_type = "authorization_code", code = params.code, redirect_uri = redirect_uri,
      client_id = q.client_id, client_secret = inst:secret(scheme.client_secret or "client_secret"),
      code_verifier = scheme.pkce ~= false and verifier or nil,
    })
  end
  return url, exchange
end

-- OAuth2 device authorization (RFC 8628, GitHub's device flow): returns what the user must do
-- ({user_code, verification_uri, ...}) and a function that polls the token endpoint until they did,
-- honouring `interval` and `slow_down`.
local DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
function M.device_code(client, scheme)
  local client_id = client.inst.settings[scheme.client_id or "client_id"]
  local resp, err, token = client:request("POST", endpoint(client, scheme, scheme.device_url), {
    form = { client_id = client_id, scope = table.concat(M.scopes(scheme, client.inst.settings), " ") }, no_auth = true,
    headers = { Accept = "application/json" }, expect_json = true })
  if not resp then return nil, "auth: device code request refused: " .. tostring(err), token end
  local d = resp.data
  if type(d) ~= "table" or not d.device_code or not d.user_code then
    return nil, "auth: device code endpoint answered without device_code" .. (type(d) == "table" and d.error and (": " .. tostring(d.error)) or "")
  end
  local function poll()
    local interval = tonumber(d.interval) or 5
    local deadline = sched.time() + (tonumber(d.expires_in) or 900)
    while sched.time() < deadline do
      sched.sleep(interval)
      local t, terr, _, body = M.token_request(client, scheme, { client_id = client_id, device_code = d.device_code, grant_type = DEVICE_GRANT })
      if t then return t end
      local code = type(body) == "table" and body.error
      if code == "slow_down" then interval = interval + 5
      elseif code ~= "authorization_pending" then
        return nil, "auth: device authorization failed: " .. tostring(type(body) == "table" and (body.error_description or body.error) or terr)
      end
    end
    return nil, "auth: the device code expired before it was authorized"
  end
  return d, poll
end

return M
