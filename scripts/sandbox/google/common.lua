-- sandbox/google/common.lua — what Google's emulators share (Workspace now, Cloud later): the tenant
-- class, Google's error bodies and quota errors, pageToken paging, partial responses (fields=), and the
-- OAuth 2.0 token endpoint for service accounts (JWT-bearer assertions verified against the account's
-- public key; domain-wide delegation for `sub`).  References: shared/api/google-workspace.md §2, §7, §8, §10.
local T = require "sandbox.tenant"

local C = {}
local G = setmetatable({}, { __index = T.Base })
G.__index = G
G.default_rate_limit = 2400            -- Admin SDK: 2,400 queries a minute per user per project
C.G = G

function C.json() return T.host("json") end
function C.crypto() return T.host("crypto") end
local json, crypto = C.json, C.crypto

-- RFC 3339 in UTC with milliseconds, as Google writes it: "2026-01-02T03:04:05.678Z"
function C.time(ms) return T.iso_ms(ms) end

C.JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
C.SCOPE = "https://www.googleapis.com/auth/"
C.GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"

---------------------------------------------------------------------------------------------------
-- Errors: {"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}
---------------------------------------------------------------------------------------------------
local STATUS = { [400] = "INVALID_ARGUMENT", [401] = "UNAUTHENTICATED", [403] = "PERMISSION_DENIED",
                 [404] = "NOT_FOUND", [409] = "ALREADY_EXISTS", [412] = "FAILED_PRECONDITION",
                 [429] = "RESOURCE_EXHAUSTED", [500] = "INTERNAL", [503] = "UNAVAILABLE" }
function G:err(code, reason, message, extra)
  local e = { message = message, domain = (extra and extra.domain) or "global", reason = reason }
  if extra and extra.location then e.location, e.locationType = extra.location, extra.locationType or "parameter" end
  return code, { error = { code = code, message = message, errors = json().array({ e }), status = STATUS[code] } }
end
function G:not_found(what) return self:err(404, "notFound", "Resource Not Found: " .. tostring(what)) end
function G:bad(message, location) return self:err(400, "invalid", message or "Invalid Input", { location = location }) end

-- Quota errors as Google sends them: 429 (rateLimitExceeded) and 403 usageLimits.
function G:fault_response(f)
  local k = f.kind
  local st, body
  if k == "429" or k == "primary" then
    st, body = self:err(429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.", { domain = "usageLimits" })
  elseif k == "403" or k == "secondary" then
    st, body = self:err(403, "userRateLimitExceeded", "User Rate Limit Exceeded", { domain = "usageLimits" })
  elseif k == "503" or k == "502" then
    st, body = self:err(503, "backendError", "The service is currently unavailable.")
    st = tonumber(k)
  else
    st, body = self:err(500, "backendError", "Backend Error")
  end
  local hdr = {}
  if f.retry_after then hdr["Retry-After"] = tostring(f.retry_after) end
  return st, json().encode(body), hdr
end

function G:decorate() end

---------------------------------------------------------------------------------------------------
-- Paging: an opaque pageToken (the offset, signed with the tenant's seed so a forged one is refused)
---------------------------------------------------------------------------------------------------
local function page_token(self, offset, salt)
  return crypto().b64url(("%d:%s"):format(offset, T.hexs(8, self.seed, "page", salt, offset)))
end
-- paged(req, list, max, default) -> slice, nextPageToken | nil, status, body
function G:paged(req, list, max, default, size_param)
  size_param = size_param or "maxResults"
  local q = req.query
  local n = T.intparam(q[size_param], default, 1, nil)
  if not n then return nil, self:bad("Invalid value for " .. size_param, size_param) end
  n = math.min(n, max)                       -- Google coerces values above the maximum
  if self.page_max then n = math.min(n, self.page_max) end
  local salt = req.path
  local start = 0
  if q.pageToken and q.pageToken ~= "" then
    local raw = crypto().unb64url(q.pageToken) or ""
    local off = math.tointeger(tonumber(raw:match("^(%d+):") or ""))
    if not off or page_token(self, off, salt) ~= q.pageToken then
      return nil, self:bad("Invalid page token", "pageToken")
    end
    start = off
  end
  local out = {}
  for i = start + 1, math.min(#list, start + n) do out[#out + 1] = list[i] end
  return out, (start + n < #list) and page_token(self, start + n, salt) or nil
end

---------------------------------------------------------------------------------------------------
-- Partial responses: fields=nextPageToken,users(id,primaryEmail) keeps those fields only
---------------------------------------------------------------------------------------------------
-- parse "a,b(c,d(e)),f" -> {a=true, b={c=true, d={e=true}}, f=true}; "*" keeps everything
local function parse_fields(s)
  local pos = 1
  local function list()
    local out = {}
    while pos <= #s do
      local name = s:match("^%s*([%w_%*%./]+)%s*", pos)
      if not name then return nil end
      pos = pos + #s:match("^%s*[%w_%*%./]+%s*", pos)
      local sub = true
      if s:sub(pos, pos) == "(" then
        pos = pos + 1
        sub = list()
        if not sub or s:sub(pos, pos) ~= ")" then return nil end
        pos = pos + 1
      end
      -- a/b is b inside a
      local head, rest = name:match("^([^/]+)/(.+)$")
      if head then out[head] = { [rest] = sub } else out[name] = sub end
      local c = s:sub(pos, pos)
      if c == "," then pos = pos + 1 elseif c == ")" or c == "" then return out else return nil end
    end
    return out
  end
  return list()
end
C.parse_fields = parse_fields

local function select_fields(v, sel)
  if sel == true or type(v) ~= "table" or sel["*"] then return v end
  if json().is_array(v) then
    local out = {}
    for i, x in ipairs(v) do out[i] = select_fields(x, sel) end
    return json().array(out)
  end
  local out = {}
  for k, s in pairs(sel) do if v[k] ~= nil then out[k] = select_fields(v[k], s) end end
  return out
end

-- The body narrowed to req.query.fields (none: `default` decides, e.g. Drive's short file form) ->
-- body | nil, status, error body
function G:fields(req, body, default)
  local f = req.query.fields
  if not f or f == "" then
    if not default then return body end
    f = default
  end
  local sel = parse_fields(f)
  if not sel then return nil, self:bad("Invalid field selection " .. f, "fields") end
  return select_fields(body, sel)
end

---------------------------------------------------------------------------------------------------
-- Service accounts and the token endpoint
---------------------------------------------------------------------------------------------------
-- A service account with a new RSA key: {email, client_id, key_id, private_key, public_key} and its JSON
-- key file (what the Cloud console downloads).
function G:new_service_account(name, project)
  local cr = crypto()
  local pem = assert(cr.keygen("RSA", 2048))
  local sa = {
    email = ("%s@%s.iam.gserviceaccount.com"):format(name, project),
    client_id = "1" .. ("%018d"):format(T.below(T.hash(self.seed, "cid", name), 1000000000000000000)),
    key_id = T.hexs(40, self.seed, "kid", name), private_key = pem,
    public_key = assert(cr.jwk_pem(assert(cr.jwk(pem)))), project = project, enabled = true,
  }
  self.service_accounts = self.service_accounts or {}
  self.service_accounts[sa.email] = sa
  return sa
end

function G:key_file(sa)
  return json().encode {
    type = "service_account", project_id = sa.project, private_key_id = sa.key_id, private_key = sa.private_key,
    client_email = sa.email, client_id = sa.client_id, auth_uri = "https://accounts.google.com/o/oauth2/auth",
    token_uri = self.base_url .. "/token", auth_provider_x509_cert_url = "https://www.googleapis.com/oauth2/v1/certs",
  }
end

local function oauth_err(status, code, desc) return status, { error = code, error_description = desc } end

-- What the token endpoint accepts as `aud`: its own URL, or Google's (a key file's token_uri).
function G:token_audiences() return { [self.base_url .. "/token"] = true, [C.GOOGLE_TOKEN_URL] = true } end

-- POST /token, grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT> (RFC 7523).
-- The app's hook `delegate(sub, scopes, sa)` -> true | nil, error, description decides who may be
-- impersonated for which scopes (Workspace: a user of the domain, the scopes granted to the service
-- account's client id in the Admin console).
function G:h_token(req)
  local f = T.parse_form(req.body or "")
  if f.grant_type == "authorization_code" or f.grant_type == "refresh_token" then return self:oauth_grant(f) end
  if f.grant_type ~= C.JWT_BEARER then
    return oauth_err(400, "unsupported_grant_type", "Invalid grant_type: " .. tostring(f.grant_type))
  end
  local cr = crypto()
  local h64, p64, s64 = (f.assertion or ""):match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  local head = h64 and json().decode(cr.unb64url(h64) or "")
  local claims = p64 and json().decode(cr.unb64url(p64) or "")
  if type(head) ~= "table" or type(claims) ~= "table" then return oauth_err(400, "invalid_grant", "Invalid JWT: malformed") end
  if head.alg ~= "RS256" then return oauth_err(400, "invalid_grant", "Invalid JWT: unsupported algorithm") end
  local sa = self.service_accounts[tostring(claims.iss)]
  if not sa or not sa.enabled then return oauth_err(401, "invalid_client", "The OAuth client was not found.") end
  if head.kid ~= nil and head.kid ~= sa.key_id then return oauth_err(400, "invalid_grant", "Invalid JWT Signature.") end
  if not cr.rs256_verify(sa.public_key, h64 .. "." .. p64, cr.unb64url(s64) or "") then
    return oauth_err(400, "invalid_grant", "Invalid JWT Signature.")
  end
  if not self:token_audiences()[tostring(claims.aud)] then
    return oauth_err(400, "invalid_grant", "Invalid JWT: Failed audience check.")
  end
  local now = self:wall_s()
  local iat, exp = math.tointeger(claims.iat), math.tointeger(claims.exp)
  if not iat or not exp or exp <= iat or exp - iat > 3600 then
    return oauth_err(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
  end
  if iat > now + 300 or exp < now then
    return oauth_err(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
  end
  local scopes = {}
  for s in tostring(claims.scope or ""):gmatch("%S+") do scopes[#scopes + 1] = s end
  if #scopes == 0 then return oauth_err(400, "invalid_scope", "Empty or missing scope not allowed.") end
  local sub = claims.sub ~= nil and tostring(claims.sub) or nil
  if sub then
    local ok, code, desc = self:delegate(sub, scopes, sa)
    if not ok then return oauth_err(code == "unauthorized_client" and 401 or 400, code, desc) end
  end
  self.nseq = (self.nseq or 0) + 1
  local tok = "ya29." .. T.b62(80, self.seed, "at", self.nseq, now)
  local set = {}
  for _, s in ipairs(scopes) do set[s] = true end
  self.tokens[tok] = { sa = sa, sub = sub, scopes = set, exp = now + 3600 }
  self.issued = (self.issued or 0) + 1
  return 200, { access_token = tok, expires_in = 3599, token_type = "Bearer" }
end

---------------------------------------------------------------------------------------------------
-- OAuth 2.0 for installed apps (the consent of a user, here the admin): an OAuth client of the
-- customer's project (Desktop app: a loopback redirect on any port), the authorization code with PKCE
-- (S256), offline access (a refresh token) with access_type=offline.  The consent screen is approved at
-- once, as the user the tenant names (its admin).
---------------------------------------------------------------------------------------------------
-- register_client{client_id=, client_secret=} -> the client
function G:register_client(c)
  self.oauth_clients = self.oauth_clients or {}
  self.oauth_clients[c.client_id] = { client_id = c.client_id, client_secret = c.client_secret }
  return c
end

local function error_page(status, code, desc)
  return status, ("<html><body><h1>Access blocked: Authorization Error</h1><p>Error %d: %s</p><p>%s</p></body></html>")
    :format(status, code, desc), { ["Content-Type"] = "text/html; charset=utf-8" }
end

-- GET /o/oauth2/v2/auth?client_id&redirect_uri&response_type=code&scope&state&code_challenge&
-- code_challenge_method=S256&access_type=offline&prompt=consent -> 302 redirect_uri?state&code&scope
function G:h_authorize(req)
  local q = req.query
  local client = (self.oauth_clients or {})[q.client_id or ""]
  if not client then return error_page(401, "invalid_client", "The OAuth client was not found.") end
  local redirect = q.redirect_uri or ""
  -- a Desktop app client redirects to the loopback interface only (any port)
  if not (redirect:match("^http://127%.0%.0%.1:%d+/") or redirect:match("^http://localhost:%d+/") or redirect:match("^http://%[::1%]:%d+/")) then
    return error_page(400, "redirect_uri_mismatch", "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy.")
  end
  local function back(params)
    local sep = redirect:find("?", 1, true) and "&" or "?"
    params[#params + 1] = { "state", q.state }
    return 302, "", { Location = redirect .. sep .. T.qs(params) }
  end
  if q.response_type ~= "code" then return back { { "error", "unsupported_response_type" } } end
  if q.code_challenge and q.code_challenge_method ~= "S256" and q.code_challenge_method ~= "plain" then
    return back { { "error", "invalid_request" }, { "error_description", "Invalid code_challenge_method" } }
  end
  local scopes = {}
  for s in (q.scope or ""):gmatch("%S+") do scopes[#scopes + 1] = s end
  if #scopes == 0 then return back { { "error", "invalid_request" }, { "error_description", "Missing required parameter: scope" } } end
  self.ncode = (self.ncode or 0) + 1
  local code = "4/0A" .. T.b62(60, self.seed, "code", self.ncode, self:wall_s())
  self.codes = self.codes or {}
  self.codes[code] = { client_id = client.client_id, redirect_uri = redirect, scope = table.concat(scopes, " "),
    challenge = q.code_challenge, method = q.code_challenge_method or "plain", offline = q.access_type == "offline",
    user = self:consenting_user(), exp = self:wall_s() + 600 }
  return back { { "code", code }, { "scope", table.concat(scopes, " ") } }
end

local function user_token(self, user, scope, client_id)
  self.nseq = (self.nseq or 0) + 1
  local tok = "ya29." .. T.b62(80, self.seed, "uat", self.nseq, self:wall_s())
  local set = {}
  for s in scope:gmatch("%S+") do set[s] = true end
  self.tokens[tok] = { sub = user, scopes = set, exp = self:wall_s() + 3600, client = client_id }
  self.issued = (self.issued or 0) + 1
  return tok
end

-- POST /token grant_type=authorization_code | refresh_token (client_id, client_secret in the form)
function G:oauth_grant(f)
  local client = (self.oauth_clients or {})[f.client_id or ""]
  if not client or not crypto().equal(f.client_secret or "", client.client_secret) then
    return oauth_err(401, "invalid_client", "Unauthorized")
  end
  if f.grant_type == "refresh_token" then
    local r = (self.refresh_tokens or {})[f.refresh_token or ""]
    if not r or r.client_id ~= client.client_id then return oauth_err(400, "invalid_grant", "Token has been expired or revoked.") end
    return 200, { access_token = user_token(self, r.user, r.scope, client.client_id), expires_in = 3599, scope = r.scope, token_type = "Bearer" }
  end
  local c = (self.codes or {})[f.code or ""]
  if not c or c.client_id ~= client.client_id or c.exp <= self:wall_s() then return oauth_err(400, "invalid_grant", "Malformed auth code.") end
  self.codes[f.code] = nil                                  -- a code is good once
  if f.redirect_uri ~= c.redirect_uri then return oauth_err(400, "redirect_uri_mismatch", "Bad Request") end
  if c.challenge then
    if not f.code_verifier then return oauth_err(400, "invalid_grant", "Missing code verifier.") end
    local want = c.method == "S256" and crypto().b64url(crypto().sha256(f.code_verifier)) or f.code_verifier
    if not crypto().equal(want, c.challenge) then return oauth_err(400, "invalid_grant", "Invalid code verifier.") end
  end
  local out = { access_token = user_token(self, c.user, c.scope, client.client_id), expires_in = 3599, scope = c.scope, token_type = "Bearer" }
  if c.offline then
    out.refresh_token = "1//0" .. T.b62(100, self.seed, "rt", f.code)
    self.refresh_tokens = self.refresh_tokens or {}
    self.refresh_tokens[out.refresh_token] = { client_id = client.client_id, user = c.user, scope = c.scope }
  end
  return 200, out
end

-- Bearer auth on every API route -> the token record | nil, status, body
function G:bearer(req)
  local tok = (req.headers["authorization"] or ""):match("^[Bb]earer%s+(%S+)%s*$")
  local rec = tok and self.tokens[tok]
  if not rec or rec.exp <= self:wall_s() then
    local st, body = self:err(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
    body.error.errors[1].location, body.error.errors[1].locationType = "Authorization", "header"
    return nil, st, body, { ["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"' }
  end
  return rec
end

-- Does the token carry one of these scopes (full URLs)?
function C.has_scope(rec, list)
  for _, s in ipairs(list) do if rec.scopes[C.SCOPE .. s] then return true end end
  return false
end

function G:insufficient_scopes()
  local st, body = self:err(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
  body.error.details = json().array({ { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                                        domain = "googleapis.com" } })
  return st, body
end

function G:precheck(req, ropts)
  local _, _, _, exceeded = self:rate_take(ropts.bucket or "api")
  if exceeded then
    local st, body = self:err(429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.", { domain = "usageLimits" })
    return st, body
  end
  if ropts.noauth then return nil end
  local rec, st, body, hdr = self:bearer(req)
  if not rec then return st, body, hdr end
  if ropts.scopes and not C.has_scope(rec, ropts.scopes) then return self:insufficient_scopes() end
  req.token = rec
end

function C.body_of(req)
  local b = json().decode(req.body or "")
  return type(b) == "table" and b or nil
end

return C
