-- sandbox/github/auth.lua — who may call: the classic/OAuth token check, the GitHub App JWT (RS256),
-- GET /user, the OAuth web flow and device flow on github.com, and /applications/{client_id}/... (Basic).
local T = require "sandbox.tenant"
local GH = require "sandbox.github.core"
local json, crypto, jnull, isos = GH.lib.json, GH.lib.crypto, GH.lib.jnull, GH.lib.isos

-- A classic or OAuth token must carry `scope` (the route's X-Accepted-OAuth-Scopes) -> the 403 answer | nil.
-- Installation tokens are held to their app's permissions instead.
function GH:needs_scope(req, scope)
  req._accepted = scope
  local tk = req.token
  if not tk or (tk.kind ~= "pat" and tk.kind ~= "oauth") then return nil end
  for s in (tk.scopes or ""):gmatch("[^,%s]+") do if s == scope then return nil end end
  return self:err(403, ("This request needs the '%s' scope; the token has: %s"):format(scope, tk.scopes ~= "" and tk.scopes or "none"))
end

function GH:find_token(cred)
  if crypto().equal(cred, self.token) then
    return { login = self.admin.login, scopes = self.token_scopes, kind = "pat" }
  end
  local t = self.tokens[cred]
  if t and (not t.exp or t.exp > self:wall_s()) then return t end
end


-- A GitHub App's JWT (docs: "Generating a JSON Web Token (JWT) for a GitHub App"): RS256 with the app's
-- key; iss the app's client ID or its (integer) app ID; iat the issue time (GitHub advises 60 s in the
-- past against clock drift: one ahead of its clock is refused); exp at most 10 minutes ahead.
local JWT_LEEWAY = 30          -- seconds of clock drift tolerated
function GH:verify_app_jwt(jwt)
  local bad = "A JSON web token could not be decoded"
  if not self.app then return nil, bad end
  local cr = crypto()
  local h64, p64, s64 = jwt:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  if not h64 then return nil, bad end
  local header = json().decode(cr.unb64url(h64) or "")
  local claims = json().decode(cr.unb64url(p64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" or header.alg ~= "RS256" then return nil, bad end
  local iss = claims.iss
  if math.type(iss) ~= "integer" and type(iss) ~= "string" then return nil, "'Issuer' claim ('iss') must be an Integer" end
  if tostring(iss) ~= tostring(self.app.app_id) and iss ~= self.app.client_id then
    return nil, "Integration not found"
  end
  if not cr.rs256_verify(self.app.public_key, h64 .. "." .. p64, cr.unb64url(s64) or "") then return nil, bad end
  local now = self:wall_s()
  if math.type(claims.iat) ~= "integer" or claims.iat > now + JWT_LEEWAY then
    return nil, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
  end
  if math.type(claims.exp) ~= "integer" or claims.exp <= now then
    return nil, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
  end
  if claims.exp > now + 600 + JWT_LEEWAY then return nil, "'Expiration time' claim ('exp') is too far in the future" end
  self.jwts = (self.jwts or 0) + 1
  return true
end

function GH:h_user(req)
  local j = self:user_json(req.actor)
  j.name = req.actor.login
  return 200, j
end

-- OAuth web flow (auto-approved): authorize -> 302 redirect_uri?code&state
function GH:h_authorize(req)
  local q = req.query
  local app = self.oauth_apps[q.client_id or ""]
  if not app then return 404, "<html><body><h1>404</h1><p>Not Found</p></body></html>", { ["Content-Type"] = "text/html" } end
  local redirect = q.redirect_uri or app.redirect_uri
  if not redirect or (app.redirect_uri and redirect:sub(1, #app.redirect_uri) ~= app.redirect_uri) then
    return 302, "", { Location = (app.redirect_uri or "") .. "?" .. T.qs{ { "error", "redirect_uri_mismatch" },
      { "error_description", "The redirect_uri MUST match the registered callback URL for this application." },
      { "error_uri", "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch" },
      { "state", q.state } } }
  end
  self.ncode = (self.ncode or 0) + 1
  local code = T.hexs(20, self.seed, "code", self.ncode, self:wall_s())
  local login = q.login and self.state.by_login[q.login:lower()] and q.login or self.admin.login
  self.codes[code] = { client_id = app.client_id, redirect_uri = redirect, scope = q.scope or "",
                       login = login, exp = self:wall_s() + 600 }
  local sep = redirect:find("?", 1, true) and "&" or "?"
  return 302, "", { Location = redirect .. sep .. T.qs{ { "code", code }, { "state", q.state } } }
end

function GH:h_access_token(req)
  local f = {}
  local ct = (req.headers["content-type"] or ""):lower()
  if ct:find("json", 1, true) then f = json().decode(req.body or "") or {} else f = T.parse_form(req.body) end
  for k, v in pairs(req.query) do if f[k] == nil then f[k] = v end end
  local accept_json = (req.headers["accept"] or ""):find("json", 1, true)
  local function reply(t, order)
    if accept_json then return 200, t, { ["Content-Type"] = "application/json; charset=utf-8" } end
    return 200, T.form(t, order), { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" }
  end
  local function oerr(code, desc, uri)
    return reply({ error = code, error_description = desc, error_uri = uri or "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors" },
                 { "error", "error_description", "error_uri" })
  end
  local app = self.oauth_apps[f.client_id or ""]
  if f.grant_type == "urn:ietf:params:oauth:grant-type:device_code" then return self:device_token(f, app, reply, oerr) end
  if not app or not crypto().equal(f.client_secret or "", app.client_secret or "") then
    return oerr("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
  end
  local c = self.codes[f.code or ""]
  if not c or c.client_id ~= app.client_id or c.exp <= self:wall_s() then
    return oerr("bad_verification_code", "The code passed is incorrect or expired.")
  end
  if f.redirect_uri and f.redirect_uri ~= "" and f.redirect_uri ~= c.redirect_uri then
    return oerr("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
  end
  self.codes[f.code] = nil
  local tok = "gho_" .. T.b62(36, self.seed, "gho", f.code)
  local scopes = {}
  for s in (c.scope or ""):gmatch("[^%s,]+") do scopes[#scopes + 1] = s end
  local scope = table.concat(scopes, ",")
  self.tokens[tok] = { login = c.login, scopes = table.concat(scopes, ", "), client_id = app.client_id, kind = "oauth",
                       created = self:wall_s() }
  return reply({ access_token = tok, scope = scope, token_type = "bearer" }, { "access_token", "scope", "token_type" })
end

-- Device flow (§2.2): POST /login/device/code issues a device code and a user code; the user enters the
-- user code at verification_uri (POST /login/device, user_code=...: what the browser form does); the
-- app polls /login/oauth/access_token with the device_code grant until then.
function GH:h_device_code(req)
  local f = T.parse_form(req.body)
  local app = self.oauth_apps[f.client_id or ""]
  if not app then return 200, { error = "incorrect_client_credentials", error_description = "The client_id is not valid." } end
  self.devices = self.devices or {}
  self.ndev = (self.ndev or 0) + 1
  local dc = T.hexs(40, self.seed, "device", self.ndev)
  local uc = T.b62(8, self.seed, "user_code", self.ndev):upper()
  uc = uc:sub(1, 4) .. "-" .. uc:sub(5, 8)
  self.devices[dc] = { user_code = uc, client_id = app.client_id, scope = f.scope or "", exp = self:wall_s() + 900,
                       interval = self.device_interval or 5, approved = false }
  return 200, { device_code = dc, user_code = uc, verification_uri = "http://" .. (req.headers.host or "localhost") .. "/login/device",
                expires_in = 900, interval = self.device_interval or 5 }
end

function GH:h_device_approve(req)
  local f = T.parse_form(req.body)
  for _, d in pairs(self.devices or {}) do
    if d.user_code == f.user_code and d.exp > self:wall_s() then
      d.approved = true
      return 200, "Congratulations, you're all set! Your device is now connected.", { ["Content-Type"] = "text/plain" }
    end
  end
  return 404, "That code is not valid.", { ["Content-Type"] = "text/plain" }
end

function GH:device_token(f, app, reply, oerr)
  local d = (self.devices or {})[f.device_code or ""]
  if not app or not d or d.client_id ~= app.client_id then return oerr("incorrect_device_code", "The device_code provided is not valid.") end
  if d.exp <= self:wall_s() then return oerr("expired_token", "The device_code has expired.") end
  local now = self:wall_s()
  if not d.approved then
    if d.last_poll and now - d.last_poll < d.interval - 0.5 then
      d.interval = d.interval + 5
      d.last_poll = now
      return reply({ error = "slow_down", error_description = "Too many requests have been made in the same timeframe.", interval = d.interval })
    end
    d.last_poll = now
    return oerr("authorization_pending", "The authorization request is still pending.")
  end
  self.devices[f.device_code] = nil
  local tok = "gho_" .. T.b62(36, self.seed, "gho-device", f.device_code)
  local scopes = {}
  for s in (d.scope or ""):gmatch("[^%s,]+") do scopes[#scopes + 1] = s end
  self.tokens[tok] = { login = self.admin.login, scopes = table.concat(scopes, ", "), client_id = app.client_id, kind = "oauth",
                       created = now }
  return reply({ access_token = tok, scope = table.concat(scopes, ","), token_type = "bearer" }, { "access_token", "scope", "token_type" })
end

-- Basic client_id:client_secret for /applications/{client_id}/...
function GH:app_basic(req)
  local auth = req.headers["authorization"] or ""
  local b = auth:match("^[Bb]asic%s+(%S+)$")
  local raw = b and crypto().unb64(b)
  local id, secret = (raw or ""):match("^([^:]*):(.*)$")
  local app = id and self.oauth_apps[id]
  if not app or id ~= req.params.client_id or not crypto().equal(secret, app.client_secret or "") then return nil end
  return app
end

function GH:h_app_token(req)
  local app = self:app_basic(req)
  if not app then return self:not_found() end
  local body = json().decode(req.body or "")
  local tok = type(body) == "table" and body.access_token
  local t = tok and self.tokens[tok]
  if not t or t.client_id ~= app.client_id then
    if req.method == "POST" then return self:not_found() end
    return self:err(422, "Validation Failed")
  end
  local u = self.state.by_login[t.login:lower()]
  if req.method == "POST" then
    local scopes = {}
    for s in (t.scopes or ""):gmatch("[^,%s]+") do scopes[#scopes + 1] = s end
    return 200, { id = T.below(T.hash(self.seed, tok), 1000000000), url = self.base_url .. "/authorizations/1",
                  scopes = json().array(scopes), token = tok, token_last_eight = tok:sub(-8),
                  hashed_token = crypto().hex(crypto().sha256(tok)),
                  app = { url = "http://sandbox.invalid", name = app.name or "sandbox app", client_id = app.client_id },
                  note = jnull(), note_url = jnull(), updated_at = isos(t.created), created_at = isos(t.created),
                  fingerprint = jnull(), expires_at = jnull(), user = self:user_json(u) }
  end
  -- DELETE token (one) or grant (all the user's tokens for this app)
  local whole = req.path:find("/grant$") ~= nil
  for k, v in pairs(self.tokens) do
    if k == tok or (whole and v.client_id == app.client_id and v.login == t.login) then self.tokens[k] = nil end
  end
  self:add_event{ action = "oauth_authorization.destroy", actor = t.login, user = t.login,
                  oauth_application_name = app.name or "sandbox app" }
  if whole then self:emit("github_app_authorization", { action = "revoked", sender = self:user_json(u) }) end
  return 204, ""
end

return function(org, route)
  route("GET", "/user", GH.h_user)
  route("GET", "/login/oauth/authorize", GH.h_authorize, { public = true })
  route("POST", "/login/oauth/access_token", GH.h_access_token, { public = true })
  route("POST", "/login/device/code", GH.h_device_code, { public = true })
  route("POST", "/login/device", GH.h_device_approve, { public = true })
  route("POST", "/applications/:client_id/token", GH.h_app_token, { basic = true })
  route("DELETE", "/applications/:client_id/token", GH.h_app_token, { basic = true })
  route("DELETE", "/applications/:client_id/grant", GH.h_app_token, { basic = true })
end
