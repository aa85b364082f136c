-- providers/google.lua — what Google's connectors share (Workspace, Cloud): the service-account
-- JWT-bearer flow (OAuth 2.0 for server-to-server applications, RFC 7523), Google's error bodies and its
-- quota errors.  Loaded in a connector's confined env with provider("google").
--
-- The service account's JSON key file (what the admin downloads from the Cloud console) is a secret
-- setting, `service_account_key`: its private key is read from the vault when an assertion is signed and
-- never kept or logged elsewhere.
local M = {}

M.TOKEN_URL = "https://oauth2.googleapis.com/token"
M.SCOPE = "https://www.googleapis.com/auth/"
M.KEY_SECRET = "service_account_key"
local LIFETIME = 3600            -- Google refuses an assertion whose exp is more than an hour after iat

-- The token endpoint: Google's, or the sandbox tenant's (oauth_base_url) that plays oauth2.googleapis.com.
function M.token_url(settings)
  local base = str(settings.oauth_base_url)
  if base then return (base:gsub("/+$", "")) .. "/token" end
  return M.TOKEN_URL
end

-- The key file, checked: -> {client_email=, private_key=, private_key_id=} | nil, one-line error.
function M.key(text)
  if not text then return nil, "auth: secret '" .. M.KEY_SECRET .. "' is not set (the service account's JSON key file)" end
  local ok, k = pcall(json.decode, text)
  if not ok or type(k) ~= "table" then return nil, "auth: " .. M.KEY_SECRET .. " is not a JSON key file" end
  if k.type ~= "service_account" then return nil, "auth: " .. M.KEY_SECRET .. " is not a service account key (type " .. tostring(k.type) .. ")" end
  if not str(k.client_email) or not str(k.private_key) then
    return nil, "auth: " .. M.KEY_SECRET .. " has no client_email or private_key"
  end
  return k
end

-- The signed assertion (header.claims.signature, RS256).  claims: scope (space-separated), aud, sub
-- (optional: the Workspace user a domain-wide delegated service account acts as).
function M.assertion(key, claims, now)
  now = math.floor(now or sched.time())
  local b64 = function(t) return crypto.b64url(json.encode(t)) end
  local head = { alg = "RS256", typ = "JWT", kid = str(key.private_key_id) }
  local body = { iss = key.client_email, scope = claims.scope, aud = claims.aud, sub = claims.sub,
                 iat = now, exp = now + LIFETIME }
  local input = b64(head) .. "." .. b64(body)
  local sig, err = crypto.rs256_sign(key.private_key, input)
  if not sig then return nil, "auth: cannot sign with the service account key: " .. tostring(err) end
  return input .. "." .. crypto.b64url(sig)
end

-- An auth scheme for a service account (sdk/auth.lua's exchange: the assertion buys a 1-hour access
-- token at the token endpoint, RFC 7523 §2.1; no refresh token, a new assertion near expiry).
--   scopes: the full scope URLs requested (or a function of the settings); subject(settings) -> the user to act as when a request names
--   none (Workspace: the admin; Cloud: nil).  A request acting as someone else passes
--   opts.auth = {subject = email}: its token is cached apart, per subject.
M.JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
function M.service_account(opts)
  return {
    type = "exchange", token_url = M.token_url, scopes = opts.scopes,
    exchange = function(x)
      local key, err = M.key(x.secret(M.KEY_SECRET))
      if not key then return nil, err, "auth" end
      local url = M.token_url(x.settings)
      local scopes = type(opts.scopes) == "function" and opts.scopes(x.settings) or opts.scopes
      local jwt, jerr = M.assertion(key, { scope = table.concat(scopes, " "), aud = url,
        sub = x.subject or (opts.subject and opts.subject(x.settings)) }, x.now())
      if not jwt then return nil, jerr, "auth" end
      local resp, rerr, token, answer = x.request("POST", url, { form = { grant_type = M.JWT_BEARER, assertion = jwt },
        headers = { Accept = "application/json" }, idempotent = true })       -- a new token again: harmless
      if not resp then
        local d = answer and answer.data
        if type(d) == "table" and str(d.error) then                          -- {"error", "error_description"}
          return nil, ("%s: %s"):format(d.error, tostring(d.error_description or "")), "auth"
        end
        return nil, rerr, token
      end
      local t = resp.data
      if type(t) ~= "table" or not str(t.access_token) then return nil, "token endpoint answered without access_token", "auth" end
      return { token = t.access_token, expires_at = x.now() + (tonumber(t.expires_in) or 3600) }
    end,
  }
end

-- OAuth 2.0 for installed apps (RFC 8252): a user (an admin) consents in the browser, the redirect comes
-- back to cachost's loopback listener (a "Desktop app" OAuth client of the customer's Cloud project), the
-- code is exchanged with its PKCE verifier (S256); access_type=offline gives a refresh token (the vault
-- keeps it), prompt=consent gives one again on a new consent.  Tokens act as that user only.
M.AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
function M.consent(opts)
  return {
    type = "oauth2", grant = "authorization_code", pkce = true, scopes = opts.scopes, token_url = M.token_url,
    authorize_url = function(s)
      local base = str(s.oauth_base_url)
      return base and ((base:gsub("/+$", "")) .. "/o/oauth2/v2/auth") or M.AUTHORIZE_URL
    end,
    authorize_params = { access_type = "offline", prompt = "consent" },
  }
end

-- Google's error body: {"error": {"code", "message", "status", "errors": [{"reason", "message", ...}]}},
-- the newer APIs' (AIP-193) with "details": [{"@type": ".../google.rpc.ErrorInfo", "reason", "metadata"}];
-- the token endpoint's: {"error": "invalid_grant", "error_description": "..."}.
local ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
local function reasons(d)
  local out = {}
  local e = type(d) == "table" and d.error
  if type(e) ~= "table" then return out end
  for _, x in ipairs(type(e.errors) == "table" and e.errors or {}) do
    if type(x) == "table" and str(x.reason) then out[#out + 1] = x.reason end
  end
  for _, x in ipairs(type(e.details) == "table" and e.details or {}) do
    if type(x) == "table" and x["@type"] == ERROR_INFO and str(x.reason) then out[#out + 1] = x.reason end
  end
  return out
end
M.reasons = reasons

function M.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return (resp.body or ""):sub(1, 200) end
  local e = d.error
  if type(e) == "table" then
    local r = reasons(d)
    local tag = str(e.status) or ""
    if r[1] then tag = tag ~= "" and (tag .. ", " .. r[1]) or r[1] end
    return tostring(e.message or "?") .. (tag ~= "" and (" (" .. tag .. ")") or "")
  end
  if str(e) then return e .. (str(d.error_description) and (": " .. d.error_description) or "") end
  return (resp.body or ""):sub(1, 200)
end

-- Quota errors (Drive "Resolve errors", Admin SDK limits): 429, or 403 with rateLimitExceeded /
-- userRateLimitExceeded: retried with backoff.  dailyLimitExceeded and quotaExceeded are not (they last
-- until the quota resets: retrying within a run only burns requests).
local THROTTLED = { rateLimitExceeded = true, userRateLimitExceeded = true }
function M.is_throttled(resp)
  if resp.status == 429 then return true end
  if resp.status ~= 403 then return false end
  for _, r in ipairs(reasons(resp.data or (resp.body and select(2, pcall(json.decode, resp.body))))) do
    if THROTTLED[r] then return true end
  end
  return false
end

-- A repeated field of an answer read in one body (a policy's bindings, a key list): Google leaves an empty
-- one out (proto3 JSON), anything else but an array is a malformed answer (ctx:listing raises).
function M.repeated(ctx, data, field, path)
  if type(data) == "table" and not json.is_array(data) and data[field] == nil then return {} end
  return ctx:listing(data, field, path)
end

-- Token paging of Google's APIs (AIP-158): nextPageToken sent back as pageToken with the same other
-- parameters; an empty repeated field is left out of the body.  fn(items, body) per page; opts.auth as
-- ctx:pages'.
function M.each_page(ctx, path, query, items, fn, opts)
  for list, resp in ctx:pages(path, query, {
    items = items, absent_empty = true, auth = opts and opts.auth, page_token = { "nextPageToken", "pageToken" },
  }) do fn(list, resp.data) end
end

return M
