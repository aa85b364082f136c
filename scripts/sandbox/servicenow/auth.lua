-- sandbox/servicenow/auth.lua — who may call: HTTP Basic with a user's name and password, OAuth bearer
-- tokens from oauth_token.do (password, refresh_token and client_credentials grants of an application
-- registry, form-encoded only), the user's roles (admin passes every ACL), rate-limit rules
-- (X-RateLimit-* and 429 with Retry-After), and ServiceNow's answers to the shared faults.
local S = require "sandbox.servicenow.instance"
local T, Now = S.T, S.Now
local json, crypto = S.json, S.crypto

local ACCESS_LIFE, REFRESH_LIFE = 1799, 8640000     -- seconds: ServiceNow's defaults (30 min, 100 days)

-- A user may sign in (Basic, a password grant, a token's use): active and not locked out.
local function usable(u) return u and u.active == "true" and u.locked_out ~= "true" end

function Now:check_password(user_name, password)
  local u = self:user_by_name(user_name or "")
  local want = u and self.passwords[u.sys_id]
  if not (want and type(password) == "string" and crypto().equal(password, want)) then return nil end
  return u
end

local function unauthenticated(self)
  local st, body, hdr = self:err(401, "User Not Authenticated", "Required to provide Auth information")
  hdr["WWW-Authenticate"] = 'Basic realm="Service-now"'
  return st, body, hdr
end

function Now:precheck(req, ropts)
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local scheme, cred = auth:match("^(%S+)%s+(.+)$")
  scheme = scheme and scheme:lower()
  local u
  if scheme == "basic" then
    local pair = crypto().unb64(cred) or ""
    local name, password = pair:match("^([^:]*):(.*)$")
    u = self:check_password(name, password)
  elseif scheme == "bearer" then
    local at = self.access_tokens[cred]
    -- a token whose oauth_credential row was deleted is revoked
    if at and at.exp > self:wall_s() and self:get("oauth_credential", at.cred) then u = self:get("sys_user", at.user) end
  end
  if not usable(u) then return unauthenticated(self) end
  req.user, req.roles = u, self:roles_of(u)
  -- a rate-limit rule for all users, per hour (sys_rate_limit_rules)
  local limit, _, reset, exceeded = self:rate_take("user:" .. u.sys_id)
  req._rl = { limit, reset }
  if exceeded then return self:too_many(limit, reset) end
  return nil
end

function Now:too_many(limit, reset, retry_after)
  local st, body, hdr = self:err(429, "Too Many Requests",
    ("Rate limit of %d requests per hour exceeded for rule 'cachost sandbox'"):format(limit))
  hdr["Retry-After"] = tostring(retry_after or math.max(1, reset - self:wall_s()))
  hdr["X-RateLimit-Limit"], hdr["X-RateLimit-Reset"] = tostring(limit), tostring(reset)
  hdr["X-RateLimit-Rule"] = self:sys_id("rate-rule", 1)
  return st, body, hdr
end

-- Does the caller pass a table's ACL for reading or writing?
function Now:allowed(req, table_name, write)
  if req.roles.admin then return true end
  local t = S.TABLES[table_name]
  for _, r in ipairs(write and t.write or t.read) do if r == "*" or req.roles[r] then return true end end
  return false
end

-- Row-level: an attachment is readable by whoever may read the record it belongs to.
function Now:row_readable(req, table_name, rec)
  if table_name ~= "sys_attachment" then return true end
  return S.TABLES[rec.table_name] ~= nil and self:allowed(req, rec.table_name)
end

function Now:decorate(req, status, hdr)
  local rl = req._rl
  if rl then
    hdr["X-RateLimit-Limit"], hdr["X-RateLimit-Reset"] = tostring(rl[1]), tostring(rl[2])
    hdr["X-RateLimit-Rule"] = self:sys_id("rate-rule", 1)
  end
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json;charset=UTF-8"
end

function Now:fault_response(f, req)
  local st, body, hdr
  if f.kind == "429" then
    local reset = self:wall_s() + math.ceil(f.retry_after or 1)
    st, body, hdr = self:too_many(self.rate.limit, reset, f.retry_after or 1)
  elseif f.kind == "403" then
    st, body, hdr = self:err(403, "Insufficient rights to query records", "Field(s) present in the query do not have permission to be read")
  else
    local code = tonumber(f.kind) or 500
    st, body, hdr = self:err(code, code == 503 and "Service Unavailable" or "Internal Server Error",
      code == 503 and "The instance is not available" or "An internal error occurred")
  end
  return st, json().encode(body), hdr
end

---------------------------------------------------------------------------------------------- oauth_token.do
-- Errors: HTTP 401 with an OAuth-style body (shared/api/servicenow.md §1).
local function denied() return 401, { error = "server_error", error_description = "access_denied" } end

-- A token pair for a user through an application registry, each a row of oauth_credential.
function Now:issue(u, entity, with_refresh, refresh)
  local now, at_ms = self:wall_s(), self:now_ms()
  local access = crypto().b64url(crypto().random(32))
  local cred = self:insert("oauth_credential", { user = u.sys_id, peer = entity.sys_id, type = "access_token",
    scope = "useraccount", token_received = "true", expires = S.glide_time(at_ms + ACCESS_LIFE * 1000) }, u.user_name)
  self.access_tokens[access] = { user = u.sys_id, entity = entity.sys_id, exp = now + ACCESS_LIFE, cred = cred.sys_id }
  local out = { access_token = access, scope = "useraccount", token_type = "Bearer", expires_in = ACCESS_LIFE }
  if with_refresh then
    if not refresh then
      refresh = crypto().b64url(crypto().random(32))
      local rc = self:insert("oauth_credential", { user = u.sys_id, peer = entity.sys_id, type = "refresh_token",
        scope = "useraccount", token_received = "true", expires = S.glide_time(at_ms + REFRESH_LIFE * 1000) }, u.user_name)
      self.refresh_tokens[refresh] = { user = u.sys_id, entity = entity.sys_id, exp = now + REFRESH_LIFE, cred = rc.sys_id }
    end
    out.refresh_token = refresh
  end
  return out
end

function Now:h_token(req)
  local ct = (req.headers["content-type"] or ""):lower()
  if not ct:find("application/x-www-form-urlencoded", 1, true) then return denied() end
  local f = T.parse_form(req.body)
  local entity
  for _, e in ipairs(self.tables.oauth_entity.rows) do
    if e.client_id == f.client_id and e.active == "true" and self.secrets[e.sys_id]
      and crypto().equal(f.client_secret or "", self.secrets[e.sys_id]) then entity = e end
  end
  if not entity then return denied() end
  if f.grant_type == "password" then
    local u = self:check_password(f.username, f.password)
    if not usable(u) then return denied() end
    return 200, self:issue(u, entity, true)
  elseif f.grant_type == "refresh_token" then
    local rt = self.refresh_tokens[f.refresh_token or ""]
    if not rt or rt.entity ~= entity.sys_id or rt.exp <= self:wall_s() or not self:get("oauth_credential", rt.cred) then
      return 401, { error = "invalid_grant", error_description = "invalid refresh token" }
    end
    local u = self:get("sys_user", rt.user)
    if not usable(u) then return denied() end
    return 200, self:issue(u, entity, true, f.refresh_token)
  elseif f.grant_type == "client_credentials" then
    -- the registry must name the user its tokens act as
    local u = self.run_as[entity.sys_id] and self:get("sys_user", self.run_as[entity.sys_id])
    if not usable(u) then return denied() end
    return 200, self:issue(u, entity, false)
  end
  return 400, { error = "unsupported_grant_type", error_description = "unsupported grant type" }
end

return {
  { "POST", "/oauth_token.do", Now.h_token, { noauth = true } },
}
