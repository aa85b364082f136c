-- sandbox/box/auth.lua — rate limits, Bearer auth and application scopes, injected faults, OAuth2
-- (client credentials with box_subject_type, authorization code, single-use refresh tokens, revoke).
local T = require "sandbox.tenant"
local C = require "sandbox.box.common"
local Box = C.Box
local json, crypto = C.json, C.crypto

-- The application scope a route family needs (shared/api/box.md, capability -> requirement).
local SCOPE_OF = { groups = "manage_groups", group_memberships = "manage_groups", users = "manage_managed_users",
                   events = "manage_enterprise_properties" }

function Box:precheck(req, ropts)
  local _, _, _, exceeded = self:rate_take(ropts.upload and "upload" or "api")
  if exceeded then
    local st, body = self:err(429, "rate_limit_exceeded", "Request rate limit exceeded, please try again later")
    return st, body, { ["retry-after"] = "1" }
  end
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local tok = auth:match("^[Bb]earer%s+(%S+)%s*$")
  local rec = tok and self:find_token(tok)
  if not rec then
    return 401, "", { ["WWW-Authenticate"] = 'Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid."' }
  end
  local need = SCOPE_OF[req.path:match("/2%.0/([%w_]+)") or ""]
  if need and self.missing_scopes[need] then
    local st, body = self:err(403, "insufficient_scope", "The request requires higher privileges than provided by the access token.")
    return st, body, { ["WWW-Authenticate"] = 'Bearer realm="Service", error="insufficient_scope", error_description="The request requires higher privileges than provided by the access token."' }
  end
  req.actor = self.state.by_id[rec.uid] or self.admin
  req.token = rec
  local as = req.headers["as-user"]
  if as then return self:as_user(req, as) end
end

-- As-User (guides/authentication/*/as-user): the app must be allowed to "perform actions as users", the
-- token's user must be an admin, co-admin or the service account, a co-admin may not act as the primary
-- admin or another co-admin, and a service account's id cannot be the subject.
function Box:as_user(req, id)
  local me, u = req.actor, self.state.by_id[id]
  local function denied(why) return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission: " .. why) end
  if self.as_user_disabled then return denied("the application may not perform actions as users") end
  if not C.is_admin(me) then return denied("as-user needs an admin, co-admin or service account token") end
  if not u or u.external or u.service then return denied("as-user names no managed user of this enterprise") end
  if me.role == "coadmin" and not me.service and (u.role == "admin" or u.role == "coadmin") and u ~= me then
    return denied("a co-admin cannot act as an admin or another co-admin")
  end
  req.actor, req.token_user = u, me
end

function Box:find_token(tok)
  if crypto().equal(tok, self.token) then return { uid = self.admin.id, kind = "developer" } end
  local rec = self.tokens[tok]
  if rec and rec.exp > self:wall_s() then return rec end
end

function Box:decorate(req, status, hdr)
  hdr["box-request-id"] = T.hexs(16, self.seed, "brid", self.requests)
end

function Box:fault_response(f, req)
  local k = f.kind
  local st, body, hdr = 500, nil, {}
  if k == "429" or k == "primary" or k == "secondary" then
    st, body = self:err(429, "rate_limit_exceeded", "Request rate limit exceeded, please try again later")
    hdr["retry-after"] = tostring(f.retry_after or 1)
  elseif k == "403" then
    st, body = self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission")
  elseif k == "503" or k == "502" then
    st, body = self:err(tonumber(k), "unavailable", "Unavailable")
  else
    st, body = self:err(500, "internal_server_error", "Internal Server Error")
  end
  return st, json().encode(body), hdr
end

function Box:issue_token(uid, kind, with_refresh)
  self.nseq = self.nseq + 1
  local tok = T.b62(32, self.seed, "at", self.nseq, self:wall_s())
  self.tokens[tok] = { uid = uid, kind = kind, exp = self:wall_s() + self.token_ttl }
  local out = { access_token = tok, expires_in = self.token_ttl, token_type = "bearer", restricted_to = json().array({}) }
  if with_refresh then
    local rt = T.b62(64, self.seed, "rt", self.nseq, self:wall_s())
    self.refresh[rt] = { uid = uid, exp = self:wall_s() + 60 * 86400 }
    out.refresh_token = rt
  end
  return 200, out
end

function Box:oauth_err(code, desc) return 400, { error = code, error_description = desc } end

function Box:h_token(req)
  local f = T.parse_form(req.body)
  if f.client_id ~= self.client_id or not crypto().equal(f.client_secret or "", self.client_secret) then
    return self:oauth_err("invalid_client", "The client credentials are invalid")
  end
  local g = f.grant_type
  if g == "client_credentials" then
    if f.box_subject_type == "enterprise" and f.box_subject_id == self.enterprise_id then
      return self:issue_token(self.service.id, "service", false)
    elseif f.box_subject_type == "user" and self.state.by_id[f.box_subject_id or ""] and not self.state.by_id[f.box_subject_id].external then
      return self:issue_token(f.box_subject_id, "user", false)
    end
    return self:oauth_err("invalid_grant", "Grant credentials are invalid")
  elseif g == "authorization_code" then
    local c = self.codes[f.code or ""]
    if not c or c.exp < self:wall_s() or (c.redirect_uri and f.redirect_uri and f.redirect_uri ~= c.redirect_uri) then
      return self:oauth_err("invalid_grant", "Auth code doesn't exist or is invalid for the client")
    end
    self.codes[f.code] = nil
    return self:issue_token(c.uid, "oauth", true)
  elseif g == "refresh_token" then
    local rec = self.refresh[f.refresh_token or ""]
    if not rec or rec.exp < self:wall_s() then return self:oauth_err("invalid_grant", "Invalid refresh token") end
    self.refresh[f.refresh_token] = nil        -- single use
    return self:issue_token(rec.uid, "oauth", true)
  end
  return self:oauth_err("unsupported_grant_type", "Grant type is not supported")
end

function Box:h_revoke(req)
  local f = T.parse_form(req.body)
  if f.client_id ~= self.client_id or not crypto().equal(f.client_secret or "", self.client_secret) then
    return self:oauth_err("invalid_client", "The client credentials are invalid")
  end
  local rec = self.tokens[f.token or ""] or self.refresh[f.token or ""]
  self.tokens[f.token or ""] = nil; self.refresh[f.token or ""] = nil
  if rec then self:add_event("OAUTH2_ACCESS_TOKEN_REVOKE", self.state.by_id[rec.uid], self.state.by_id[rec.uid]) end
  return 200, ""
end

-- browser consent, auto-approved as the admin (or ?login=)
function Box:h_authorize(req)
  local q = req.query
  if q.client_id ~= self.client_id or q.response_type ~= "code" or not q.redirect_uri then
    return 400, "<html><body>invalid_request</body></html>", { ["Content-Type"] = "text/html" }
  end
  self.nseq = self.nseq + 1
  local code = T.b62(32, self.seed, "code", self.nseq, self:wall_s())
  local uid = self.admin.id
  for _, u in ipairs(self.state.users) do if q.login and u.login == q.login then uid = u.id end end
  self.codes[code] = { uid = uid, exp = self:wall_s() + 30, redirect_uri = q.redirect_uri }
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  return 302, "", { Location = q.redirect_uri .. sep .. T.qs{ { "code", code }, { "state", q.state } } }
end

return Box
