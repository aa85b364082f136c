-- sandbox/dropbox/auth.lua — the transport every route shares (§1, §2, §10): OAuth 2 (authorization code
-- with PKCE, offline refresh tokens, scopes), Bearer tokens of the team-linked app, the Select-User /
-- Select-Admin headers as Dropbox restricts them, Dropbox-API-Path-Root, argument decoding (JSON body or
-- Dropbox-API-Arg), error bodies, the rate budget and injected faults.
local T = require "sandbox.tenant"
local D = require "sandbox.dropbox.common"
local json, crypto = D.json, D.crypto

-- Every route: auth (team | user), scope, select_admin_mode (user routes that take Select-Admin:
-- team_admin acts on what the admin may reach, whole_team on any namespace of the team), host content
-- (argument in Dropbox-API-Arg), write (counted against too_many_write_operations), fn(self, req, arg).
D.ROUTES = {}
D.SCOPES = { "account_info.read", "members.read", "members.write", "groups.read", "sessions.list", "sessions.modify",
  "events.read", "team_info.read", "team_data.member", "team_data.team_space", "files.metadata.read", "files.content.read",
  "files.content.write", "sharing.read", "sharing.write" }

---------------------------------------------------------------------------------------------------
-- Errors (§10)
---------------------------------------------------------------------------------------------------
-- "<tag>/<subtag>/..." of a union value
local function summary(e)
  local parts = {}
  while type(e) == "table" and e[".tag"] do
    parts[#parts + 1] = e[".tag"]
    e = e[e[".tag"]]
  end
  return table.concat(parts, "/") .. "/..."
end
D.summary = summary

function D:err(status, e)
  return status, { error_summary = summary(e), error = e }
end
-- a route's own error: 409 with its union, e.g. self:fail({".tag" = "path", path = {".tag" = "not_found"}})
function D:fail(e) return self:err(409, e) end
function D:not_found(tag) return self:fail { [".tag"] = tag or "path", [tag or "path"] = { [".tag"] = "not_found" } } end
-- 400: a bad request is plain text (not JSON), naming the route
function D:bad_request(req, why)
  return 400, ('Error in call to API function "%s": %s'):format(req.route or "?", why), { ["Content-Type"] = "text/plain; charset=utf-8" }
end
function D:auth_error(tag, extra)
  local e = { [".tag"] = tag }
  for k, v in pairs(extra or {}) do e[k] = v end
  return 401, { error_summary = summary(e), error = e }, { ["WWW-Authenticate"] = 'Bearer realm="Dropbox-API"' }
end

function D:decorate(req, status, hdr)
  hdr["X-Dropbox-Request-Id"] = T.hexs(32, self.seed, "rid", self.requests)
end

-- 429: Retry-After and the reason; writes to one namespace too fast are too_many_write_operations
function D:too_many(req, seconds)
  local r = D.ROUTES[req.route or ""]
  local reason = r and r.write and "too_many_write_operations" or "too_many_requests"
  local e = { reason = { [".tag"] = reason }, retry_after = seconds }
  return 429, { error_summary = reason .. "/...", error = e }, { ["Retry-After"] = tostring(seconds) }
end

function D:fault_response(f, req)
  req.route = req.path:match("/2/(.+)$")
  local k, st, body, hdr = f.kind, nil, nil, nil
  if k == "429" or k == "primary" or k == "secondary" then
    st, body, hdr = self:too_many(req, f.retry_after or 1)
  elseif k == "403" then
    st, body = self:err(403, { [".tag"] = "no_permission" })
  else
    st, body, hdr = tonumber(k) or 500, "Internal Server Error", { ["Content-Type"] = "text/plain" }
  end
  if type(body) == "table" then body = json().encode(body); hdr = hdr or {}; hdr["Content-Type"] = "application/json" end
  return st, body, hdr
end

---------------------------------------------------------------------------------------------------
-- Who is calling: the token, then Select-User / Select-Admin and Path-Root (user routes)
---------------------------------------------------------------------------------------------------
function D:is_admin(m) return m and m.status == "active" and m.roles[1] ~= nil and m.roles[1].role_id == "pid_dbtmr:2345" end

-- The namespaces a member may reach: their own folder, shared folders they are in, the team folders.
function D:reaches(m, ns)
  if not m or not ns then return false end
  if ns.type == "team_folder" then return true end
  for _, x in ipairs(ns.members) do if x.mid == m.id then return true end end
  return false
end

function D:precheck(req, ropts)
  if ropts.noauth then return nil end
  req.route = ropts.route
  local r = D.ROUTES[req.route]
  local _, _, _, exceeded = self:rate_take(r and r.write and "write" or "api")
  if exceeded then return self:too_many(req, 1) end
  local tok = (req.headers["authorization"] or ""):match("^Bearer%s+(%S+)%s*$")
  if not tok then return 400, 'Error in call to API function "' .. req.route .. '": Must provide HTTP header "Authorization" or URL parameter "authorization".', { ["Content-Type"] = "text/plain" } end
  local rec = self.tokens[tok]
  if not rec then return self:auth_error("invalid_access_token") end
  if rec.exp <= self:wall_s() then return self:auth_error("expired_access_token") end
  if not rec.scopes[r.scope] then return self:auth_error("missing_scope", { required_scope = r.scope }) end
  req.token = rec
  local su, sa = req.headers["dropbox-api-select-user"], req.headers["dropbox-api-select-admin"]
  if r.auth == "team" then return nil end
  -- a user route called with a team token: it must say whom it acts as
  if su and sa then return self:bad_request(req, "Only one of Dropbox-API-Select-User and Dropbox-API-Select-Admin may be given.") end
  if not su and not sa then
    return self:bad_request(req, "This API function operates on a single Dropbox account, but the OAuth 2 access token you provided "
      .. "is for an entire Dropbox Business team.  Since your API app key has team member file access permissions, you can operate "
      .. 'on a team member\'s Dropbox by providing the "Dropbox-API-Select-User" HTTP header or "Dropbox-API-Select-Admin" HTTP header.')
  end
  if not rec.scopes["team_data.member"] then return self:auth_error("missing_scope", { required_scope = "team_data.member" }) end
  local m
  if su then
    m = self.by_mid[su]
    if not m or m.status == "removed" or m.status == "invited" then return self:auth_error("invalid_select_user") end
    if m.status == "suspended" then return self:auth_error("user_suspended") end
  else
    if not r.admin then return self:bad_request(req, "This API function does not support the Dropbox-API-Select-Admin header.") end
    m = self.by_mid[sa]
    if not self:is_admin(m) then return self:auth_error("invalid_select_admin") end
  end
  req.who = { member = m, admin = sa ~= nil, mode = sa and r.admin or nil }
  -- Path-Root (§1): home, root (checked against the caller's) or a namespace the caller may reach
  local pr = req.headers["dropbox-api-path-root"]
  local ns = self.ns_by_id[m.root_ns]
  if pr then
    local v = json().decode(pr)
    local tag = type(v) == "table" and v[".tag"]
    if tag == "home" then ns = self.ns_by_id[m.ns]
    elseif tag == "root" then
      if v.root ~= m.root_ns then
        return self:err(422, { [".tag"] = "invalid_root", invalid_root = { [".tag"] = "user", home_namespace_id = m.ns, home_path = "/" .. m.given } })
      end
    elseif tag == "namespace_id" then
      ns = self.ns_by_id[tostring(v.namespace_id)]
      local ok = ns and ((sa and r.admin == "whole_team") or self:reaches(m, ns))
      if not ok then return self:err(422, { [".tag"] = "no_permission" }) end
    else
      return self:bad_request(req, 'Invalid "Dropbox-API-Path-Root" header: ' .. tostring(pr))
    end
  end
  req.who.ns = ns
end

-- Dispatch: the argument (JSON body, or Dropbox-API-Arg on the content host), then the route.
function D:call(name, r, req)
  local text
  if r.content then
    text = req.headers["dropbox-api-arg"]
    if not text then return self:bad_request(req, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".') end
    if text:find("[\128-\255]") then return self:bad_request(req, 'HTTP header "Dropbox-API-Arg": could not decode input as JSON (non-ASCII)') end
  else
    local ct = (req.headers["content-type"] or ""):match("^%s*([^;%s]+)")
    text = req.body or ""
    if text ~= "" and ct ~= "application/json" then
      return self:bad_request(req, 'Bad HTTP "Content-Type" header: "' .. tostring(ct) .. '".  Expecting one of "application/json", "application/json; charset=utf-8", "text/plain; charset=dropbox-cors-hack".')
    end
    if text == "" then text = "null" end
  end
  local arg = json().decode(text)
  if arg == nil then return self:bad_request(req, "request body: could not decode input as JSON") end
  if arg == json().null then arg = {} end
  if type(arg) ~= "table" then return self:bad_request(req, "request body: expected an object") end
  return r.fn(self, req, arg)
end

-- Cursors: opaque, bound to their route family and caller
function D:cursor(t) return crypto().b64url(json().encode(t)) end
function D:uncursor(s)
  local raw = type(s) == "string" and crypto().unb64url(s)
  local t = raw and json().decode(raw)
  return type(t) == "table" and t or nil
end

---------------------------------------------------------------------------------------------------
-- OAuth 2 (§2)
---------------------------------------------------------------------------------------------------
function D:oauth_err(code, desc) return 400, { error = code, error_description = desc } end

function D:issue(scopes, with_refresh)
  self.nseq = self.nseq + 1
  local tok = "sl.sbx" .. T.b62(60, self.seed, "at", self.nseq, self:wall_s())
  self.tokens[tok] = { scopes = scopes, exp = self:wall_s() + self.token_ttl }
  local list = {}
  for s in pairs(scopes) do list[#list + 1] = s end
  table.sort(list)
  local out = { access_token = tok, token_type = "bearer", expires_in = self.token_ttl, scope = table.concat(list, " "),
                team_id = self.team_id }
  if with_refresh then
    local rt = T.b62(64, self.seed, "rt", self.nseq, self:wall_s())
    self.refresh[rt] = { scopes = scopes }
    out.refresh_token = rt
  end
  return 200, out
end

-- the scopes asked for among the app's (none asked: all of the app's)
function D:granted(asked)
  local s = {}
  if not asked or asked == "" then
    for k in pairs(self.app_scopes) do s[k] = true end
    return s
  end
  for w in asked:gmatch("%S+") do
    if not self.app_scopes[w] then return nil, w end
    s[w] = true
  end
  return s
end

-- the browser consent, approved at once as the team admin (sandbox): 302 back with code and state
function D:h_authorize(req)
  local q = req.query
  local function page(why) return 400, "<html><body><h1>Error (400)</h1><p>" .. why .. "</p></body></html>", { ["Content-Type"] = "text/html" } end
  if q.client_id ~= self.client_id then return page("Invalid client_id") end
  if q.response_type ~= "code" then return page("Invalid response_type") end
  if not q.redirect_uri or not q.redirect_uri:match("^https?://") then return page("Invalid redirect_uri") end
  if q.code_challenge and q.code_challenge_method ~= "S256" and q.code_challenge_method ~= "plain" then return page("Invalid code_challenge_method") end
  local scopes, bad = self:granted(q.scope)
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  if not scopes then
    return 302, "", { Location = q.redirect_uri .. sep .. T.qs { { "error", "invalid_scope" }, { "error_description", "unknown scope " .. bad }, { "state", q.state } } }
  end
  self.nseq = self.nseq + 1
  local code = T.b62(43, self.seed, "code", self.nseq, self:wall_s())
  self.codes[code] = { exp = self:wall_s() + 600, redirect_uri = q.redirect_uri, challenge = q.code_challenge,
                       method = q.code_challenge_method or "plain", scopes = scopes, offline = q.token_access_type == "offline" }
  return 302, "", { Location = q.redirect_uri .. sep .. T.qs { { "code", code }, { "state", q.state } } }
end

function D:h_token(req)
  local f = T.parse_form(req.body)
  -- client authentication: HTTP Basic or the form; with PKCE the app key alone
  local basic = (req.headers["authorization"] or ""):match("^Basic%s+(%S+)")
  if basic then
    local dec = crypto().unb64(basic) or ""
    f.client_id, f.client_secret = dec:match("^([^:]*):(.*)$")
  end
  if f.client_id ~= self.client_id then return self:oauth_err("invalid_client", "Invalid client_id or client_secret") end
  local authed = f.client_secret ~= nil and crypto().equal(f.client_secret, self.client_secret)
  if f.client_secret ~= nil and not authed then return self:oauth_err("invalid_client", "Invalid client_id or client_secret") end
  if f.grant_type == "authorization_code" then
    local c = self.codes[f.code or ""]
    self.codes[f.code or ""] = nil                              -- a code is good once
    if not c or c.exp < self:wall_s() then return self:oauth_err("invalid_grant", "code doesn't exist or has expired") end
    if c.redirect_uri ~= f.redirect_uri then return self:oauth_err("invalid_grant", "redirect_uri mismatch") end
    if c.challenge then
      local v = f.code_verifier or ""
      local want = c.method == "S256" and crypto().b64url(crypto().sha256(v)) or v
      if v == "" or not crypto().equal(want, c.challenge) then return self:oauth_err("invalid_grant", "invalid code verifier") end
    elseif not authed then
      return self:oauth_err("invalid_client", "client_secret required without PKCE")
    end
    return self:issue(c.scopes, c.offline)
  elseif f.grant_type == "refresh_token" then
    local rec = self.refresh[f.refresh_token or ""]
    if not rec then return self:oauth_err("invalid_grant", "refresh token is invalid or revoked") end
    local scopes = rec.scopes
    if f.scope and f.scope ~= "" then
      scopes = {}
      for w in f.scope:gmatch("%S+") do
        if not rec.scopes[w] then return self:oauth_err("invalid_scope", "scope not granted: " .. w) end
        scopes[w] = true
      end
    end
    return self:issue(scopes, false)                          -- refresh tokens are long-lived and reused
  end
  return self:oauth_err("unsupported_grant_type", "grant_type is not supported")
end

-- A token for tests and the printed credential: every scope of the app, and a refresh token.
function D:grant_all()
  local _, out = self:issue(self:granted(nil), true)
  return out
end

return D
