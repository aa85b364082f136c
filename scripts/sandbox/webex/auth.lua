-- sandbox/webex/auth.lua — Webex's OAuth for integrations (§1): the browser's /v1/authorize (auto-approved as
-- the org's Compliance Officer, or ?login=), /v1/access_token (authorization_code and refresh_token, the
-- client secret checked), Bearer tokens carrying the scopes they were granted, each route's scope and role
-- checked (a token without the spark-compliance:* scopes is refused compliance endpoints), the rate
-- budget (429 with Retry-After), Trackingid on every answer and the shared faults.
local T = require "sandbox.tenant"
local O = require "sandbox.webex.org"
local Webex = O.Webex
local json, crypto = O.json, O.crypto

local ADMIN_ROLES = { full = true, user = true, readonly = true }

-- The Webex roles a person holds, as a set of role keys (full, user, readonly, compliance).
function Webex:roles_of(p)
  local set = {}
  for _, rid in ipairs(p and p.roles or {}) do
    for _, r in ipairs(self.roles) do if r.id == rid then set[r.key] = true end end
  end
  return set
end

function Webex:precheck(req, ropts)
  local _, _, _, exceeded = self:rate_take("api")
  if exceeded then
    local st, body, hdr = self:err(429, "Too Many Requests")
    hdr["Retry-After"] = "1"
    return st, body, hdr
  end
  if ropts.noauth then return nil end
  local tok = (req.headers["authorization"] or ""):match("^[Bb]earer%s+(%S+)%s*$")
  local rec = tok and self.tokens[tok]
  if not rec or rec.exp < self:wall_s() then
    return self:err(401, "The request requires a valid access token set in the Authorization request header.")
  end
  local who = self.by_id[rec.uid]
  if not who or who.loginEnabled == "false" then
    return self:err(401, "The request requires a valid access token set in the Authorization request header.")
  end
  req.token, req.actor = rec, who
  -- the route's scopes: any one of `scopes` (alternatives), every one of `all`
  local missing
  if ropts.scopes then
    local ok = false
    for _, s in ipairs(ropts.scopes) do ok = ok or rec.scopes[s] == true end
    if not ok then missing = ropts.scopes[1] end
  end
  for _, s in ipairs(ropts.all or {}) do if not rec.scopes[s] then missing = missing or s end end
  if missing then return self:err(403, ("Access denied: the access token lacks the required scope %s."):format(missing)) end
  local roles = self:roles_of(who)
  if ropts.role == "admin" and not (roles.full or roles.user or roles.readonly) then
    return self:err(403, "Access denied: this request requires an administrator.")
  elseif ropts.role == "full" and not roles.full then
    return self:err(403, "Access denied: this request requires a Full Administrator.")
  elseif ropts.role == "writer" and not (roles.full or roles.user) then
    return self:err(403, "Access denied: this request requires a Full or User Administrator.")
  elseif ropts.role == "compliance" and not roles.compliance then
    return self:err(403, "Access denied: this request requires the Compliance Officer role.")
  end
end

function Webex:decorate(_, _, hdr)
  local has = false
  for k in pairs(hdr) do has = has or k:lower() == "trackingid" end
  if not has then hdr.Trackingid = self:tracking_id() end
end

function Webex:fault_response(f)
  local k = f.kind
  local st, body, hdr
  if k == "429" or k == "primary" or k == "secondary" then
    st, body, hdr = self:err(429, "Too Many Requests")
    hdr["Retry-After"] = tostring(f.retry_after or 1)
  elseif k == "403" then
    st, body, hdr = self:err(403, "Access denied.")
  elseif k == "502" or k == "503" then
    st, body, hdr = self:err(tonumber(k), "Service Unavailable")
  else
    st, body, hdr = self:err(500, "Internal Server Error")
  end
  return st, json().encode(body), hdr
end

---------------------------------------------------------------------------------------------------
-- Tokens
---------------------------------------------------------------------------------------------------
local function scope_set(list)
  local s = {}
  for _, x in ipairs(list) do s[x] = true end
  return s
end

-- A token pair for a person with scopes (a list); -> the /access_token answer.
function Webex:issue(uid, scopes, refresh_token)
  self.nseq = self.nseq + 1
  local at = T.b62(64, self.seed, "at", self.nseq, self:wall_s())
  local set = type(scopes) == "table" and scopes[1] == nil and scopes or scope_set(scopes)
  self.tokens[at] = { uid = uid, scopes = set, exp = self:wall_s() + self.token_ttl }
  local rt = refresh_token
  if not rt then
    rt = T.b62(64, self.seed, "rt", self.nseq, self:wall_s())
    self.refresh[rt] = { uid = uid, scopes = set, exp = self:wall_s() + self.refresh_ttl }
  end
  return { access_token = at, expires_in = self.token_ttl, refresh_token = rt,
           refresh_token_expires_in = math.max(0, self.refresh[rt].exp - self:wall_s()), token_type = "Bearer" }
end

-- Tests and `cachost sandbox`: the Compliance Officer's tokens, as a connected integration holds them.
function Webex:officer_tokens(scopes) return self:issue(self.officer.id, scopes or O.ALL_SCOPES) end

function Webex:h_access_token(req)
  local f = T.parse_form(req.body)
  if f.client_id ~= self.client_id or not crypto().equal(f.client_secret or "", self.client_secret) then
    return self:err(401, "Invalid client id or client secret.")
  end
  if f.grant_type == "authorization_code" then
    local c = self.codes[f.code or ""]
    if not c or c.exp < self:wall_s() or c.redirect_uri ~= f.redirect_uri then
      return self:err(400, "Invalid or expired authorization code.")
    end
    self.codes[f.code] = nil
    return 200, self:issue(c.uid, c.scopes)
  elseif f.grant_type == "refresh_token" then
    local r = self.refresh[f.refresh_token or ""]
    if not r or r.exp < self:wall_s() then return self:err(400, "Invalid or expired refresh token.") end
    return 200, self:issue(r.uid, r.scopes, f.refresh_token)      -- a refresh token stays valid until it expires
  end
  return self:err(400, "Unsupported grant_type.")
end

-- The browser's consent page, approved at once as the Compliance Officer (or ?login=email): back to the
-- redirect URI with a code for the scopes asked, each of which the integration must have registered.
function Webex:h_authorize(req)
  local q = req.query
  if q.client_id ~= self.client_id or q.response_type ~= "code" or not q.redirect_uri then
    return 400, "<html><body>invalid_request</body></html>", { ["Content-Type"] = "text/html" }
  end
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  local scopes = {}
  for s in (q.scope or ""):gmatch("%S+") do
    if not self.integration_scopes[s] then
      return 302, "", { Location = q.redirect_uri .. sep .. T.qs { { "error", "invalid_scope" }, { "state", q.state } } }
    end
    scopes[s] = true
  end
  self.nseq = self.nseq + 1
  local code = T.b62(48, self.seed, "code", self.nseq, self:wall_s())
  local who = (q.login and self.by_email[q.login]) or self.officer
  self.codes[code] = { uid = who.id, scopes = scopes, exp = self:wall_s() + 300, redirect_uri = q.redirect_uri }
  return 302, "", { Location = q.redirect_uri .. sep .. T.qs { { "code", code }, { "state", q.state } } }
end

-- {"exp": epoch milliseconds} (the spec's example)
function Webex:h_token_expiry(req)
  return 200, { exp = req.token.exp * 1000 }
end

return Webex
