-- sandbox/okta/apps.lua — apps, their user assignments and lifecycle; OAuth scope consent grants and
-- refresh tokens, seen from the app and from the user (/users/{id}/grants, /clients).
local O = require "sandbox.okta.org"
local T, Okta = O.T, O.Okta
local json, jnull, iso = O.json, O.jnull, O.iso
local user_target = O.user_target

function Okta:app_json(a)
  local b = self.base_url .. "/api/v1/apps/" .. a.id
  return { id = a.id, name = a.name, label = a.label, status = a.status, signOnMode = a.signOnMode,
           created = iso(a.created), lastUpdated = iso(a.lastUpdated), accessibility = { selfService = false },
           visibility = { autoSubmitToolbar = false, hide = { iOS = false, web = false } },
           credentials = { userNameTemplate = { template = "${source.login}", type = "BUILT_IN" } },
           settings = { app = {} },
           _links = { self = { href = b }, users = { href = b .. "/users" }, groups = { href = b .. "/groups" },
                      deactivate = { href = b .. "/lifecycle/deactivate" } } }
end

function Okta:grant_json(g, expand)
  local a = self.state.app_by_id[g.appId]
  local self_href = g.userId and (self.base_url .. "/api/v1/users/" .. g.userId .. "/grants/" .. g.id)
                    or (self.base_url .. "/api/v1/apps/" .. g.appId .. "/grants/" .. g.id)
  local o = { id = g.id, status = g.status, created = iso(g.created), createdBy = { id = g.createdBy, type = "User" },
              lastUpdated = iso(g.lastUpdated), issuer = self.base_url, clientId = g.clientId, userId = g.userId,
              scopeId = g.scopeId, source = g.source,
              _links = { app = { href = self.base_url .. "/api/v1/apps/" .. g.appId, title = a and a.label },
                         self = { href = self_href, hints = { allow = json().array({ "GET", "DELETE" }) } },
                         client = { href = self.base_url .. "/oauth2/v1/clients/" .. g.clientId, title = a and a.label } } }
  if expand then o._embedded = { scope = { id = g.scopeId } } end
  return o
end

function Okta:token_json(t, expand)
  local a = self.state.app_by_id[t.appId]
  local u = self.state.by_id[t.userId]
  local self_href = self.base_url .. "/api/v1/apps/" .. t.appId .. "/tokens/" .. t.id
  local o = { id = t.id, status = t.status, created = iso(t.created), lastUpdated = iso(t.lastUpdated),
              expiresAt = iso(t.expiresAt), issuer = self.base_url .. "/oauth2/default", clientId = t.clientId,
              userId = t.userId, scopes = json().array(T.deep(t.scopes)),
              _links = { app = { href = self.base_url .. "/api/v1/apps/" .. t.appId, title = a and a.label },
                         self = { href = self_href },
                         revoke = { href = self_href, hints = { allow = json().array({ "DELETE" }) } },
                         client = { href = self.base_url .. "/oauth2/v1/clients/" .. t.clientId, title = a and a.label },
                         user = { href = self.base_url .. "/api/v1/users/" .. t.userId, title = u and u.profile.displayName } } }
  if expand then
    local sc = {}
    for i, s in ipairs(t.scopes) do sc[i] = { id = "scp" .. T.b62(17, self.seed, "scope", s), name = s } end
    o._embedded = { scopes = json().array(sc) }
  end
  return o
end


function Okta:revoke_tokens(req, pred)
  local kept, n = {}, 0
  for _, t in ipairs(self.state.tokens) do
    if pred(t) then
      n = n + 1
      local u = self.state.by_id[t.userId]
      self:gov_event(req, "app.oauth2.token.revoke", { { id = t.id, type = "RefreshToken", alternateId = t.clientId,
        displayName = "refresh token", detailEntry = jnull() } }, { user = u })
    else kept[#kept + 1] = t end
  end
  self.state.tokens = kept
  return n
end

function Okta:revoke_grants(req, pred)
  local kept, n = {}, 0
  for _, g in ipairs(self.state.grants) do
    if pred(g) then
      n = n + 1
      self:gov_event(req, "app.oauth2.as.consent.revoke", { { id = g.id, type = "OAuth2Grant", alternateId = g.scopeId,
        displayName = g.scopeId, detailEntry = jnull() } })
    else kept[#kept + 1] = g end
  end
  self.state.grants = kept
  return n
end


function Okta:h_user_grants(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local sel = {}
  for _, g in ipairs(self.state.grants) do
    if g.userId == u.id and (not req.query.scopeId or req.query.scopeId == g.scopeId) then sel[#sel + 1] = g end
  end
  local expand = req.query.expand == "scope"
  return self:paged(req, "/api/v1/users/" .. u.id .. "/grants", sel, 20, 200, function(g) return self:grant_json(g, expand) end)
end

function Okta:h_user_grants_delete(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local gid, cid = req.params.gid, req.params.cid
  local n = self:revoke_grants(req, function(g)
    return g.userId == u.id and (not gid or g.id == gid) and (not cid or g.clientId == cid)
  end)
  if gid and n == 0 then return self:not_found("OAuth2Grant", gid) end
  return 204, ""
end

function Okta:h_user_clients(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local seen, out = {}, {}
  local function add(cid)
    if seen[cid] then return end
    seen[cid] = true
    local a = self.state.app_by_id[cid]
    local b = self.base_url .. "/api/v1/users/" .. u.id .. "/clients/" .. cid
    out[#out + 1] = { client_id = cid, client_name = a and a.label or cid, client_uri = jnull(), logo_uri = jnull(),
                      _links = { grants = { href = b .. "/grants" }, tokens = { href = b .. "/tokens" } } }
  end
  for _, g in ipairs(self.state.grants) do if g.userId == u.id then add(g.clientId) end end
  for _, t in ipairs(self.state.tokens) do if t.userId == u.id then add(t.clientId) end end
  return 200, json().array(out)
end

function Okta:h_user_client_tokens(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local cid = req.params.cid
  local sel = {}
  for _, t in ipairs(self.state.tokens) do if t.userId == u.id and t.clientId == cid then sel[#sel + 1] = t end end
  local expand = req.query.expand == "scope"
  return self:paged(req, "/api/v1/users/" .. u.id .. "/clients/" .. cid .. "/tokens", sel, 20, 200,
                    function(t) return self:token_json(t, expand) end)
end

function Okta:h_user_client_grants(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local cid = req.params.cid
  local sel = {}
  for _, g in ipairs(self.state.grants) do if g.userId == u.id and g.clientId == cid then sel[#sel + 1] = g end end
  return self:paged(req, "/api/v1/users/" .. u.id .. "/clients/" .. cid .. "/grants", sel, 20, 200,
                    function(g) return self:grant_json(g, req.query.expand == "scope") end)
end

function Okta:h_user_client_tokens_delete(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local cid, tid = req.params.cid, req.params.tid
  local n = self:revoke_tokens(req, function(t) return t.userId == u.id and t.clientId == cid and (not tid or t.id == tid) end)
  if tid and n == 0 then return self:not_found("OAuth2RefreshToken", tid) end
  return 204, ""
end

function Okta:h_list_apps(req)
  local sel = {}
  local q = req.query
  local f
  if q.filter and q.filter ~= "" then
    local uid = q.filter:match('^user%.id eq "([^"]+)"$')
    local gid = q.filter:match('^group%.id eq "([^"]+)"$')
    if uid then f = function(a) return a.users[uid] end
    elseif gid then
      local g = self.state.group_by_id[gid]
      f = function() return g ~= nil and false end
    else
      local p, err = T.scim_filter(q.filter)
      if not p then return self:err("E0000031", "Invalid search criteria.", 400, { { errorSummary = err } }) end
      f = function(a) return p(self:app_json(a)) end
    end
  end
  for _, a in ipairs(self.state.apps) do
    if (not f or f(a)) and (not q.q or q.q == "" or a.label:lower():sub(1, #q.q) == q.q:lower() or a.name:lower():sub(1, #q.q) == q.q:lower()) then
      sel[#sel + 1] = a
    end
  end
  local extra = {}
  if q.filter then extra[#extra + 1] = { "filter", q.filter } end
  if q.q then extra[#extra + 1] = { "q", q.q } end
  return self:paged(req, "/api/v1/apps", sel, 200, 200, function(a) return self:app_json(a) end, extra)
end

function Okta:app_or_404(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return nil, self:not_found("Application", req.params.aid) end
  return a
end

function Okta:h_get_app(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  return 200, self:app_json(a)
end

function Okta:h_app_users(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local sel = {}
  for _, u in ipairs(self.state.users) do if a.users[u.id] then sel[#sel + 1] = u end end
  return self:paged(req, "/api/v1/apps/" .. a.id .. "/users", sel, 50, 500, function(u)
    return { id = u.id, externalId = jnull(), created = iso(u.created), lastUpdated = iso(u.lastUpdated), scope = "USER",
             status = "ACTIVE", statusChanged = iso(u.statusChanged), passwordChanged = jnull(), syncState = "DISABLED",
             credentials = { userName = u.profile.login }, profile = setmetatable({}, { __jsontype = "object" }),
             _links = { app = { href = self.base_url .. "/api/v1/apps/" .. a.id }, user = { href = self.base_url .. "/api/v1/users/" .. u.id } } }
  end)
end

function Okta:h_app_user_delete(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local u = self:find_user(req.params.uid)
  if not u or not a.users[u.id] then return self:not_found("AppUser", req.params.uid) end
  a.users[u.id] = nil
  local tgt = user_target(u)
  tgt[2] = { id = a.id, type = "AppInstance", alternateId = a.label, displayName = a.label, detailEntry = jnull() }
  self:gov_event(req, "application.user_membership.remove", tgt)
  return 204, ""
end

function Okta:h_app_grants(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local out = {}
  for _, g in ipairs(self.state.grants) do
    if g.appId == a.id and not g.userId then out[#out + 1] = self:grant_json(g, req.query.expand == "scope") end
  end
  return 200, json().array(out)
end

function Okta:h_app_grant_delete(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local gid = req.params.gid
  local n = self:revoke_grants(req, function(g) return g.appId == a.id and g.id == gid end)
  if n == 0 then return self:not_found("OAuth2ScopeConsentGrant", gid) end
  return 204, ""
end

function Okta:h_app_tokens(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local sel = {}
  for _, t in ipairs(self.state.tokens) do if t.appId == a.id then sel[#sel + 1] = t end end
  return self:paged(req, "/api/v1/apps/" .. a.id .. "/tokens", sel, 20, 200, function(t) return self:token_json(t, req.query.expand == "scope") end)
end

function Okta:h_app_tokens_delete(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local tid = req.params.tid
  local n = self:revoke_tokens(req, function(t) return t.appId == a.id and (not tid or t.id == tid) end)
  if tid and n == 0 then return self:not_found("OAuth2RefreshToken", tid) end
  return 204, ""
end

function Okta:h_app_lifecycle(req)
  local a = self.state.app_by_id[req.params.aid]
  if not a then return self:not_found("Application", req.params.aid) end
  local act = req.params.action
  if act == "deactivate" then
    a.status = "INACTIVE"
    self:gov_event(req, "application.lifecycle.deactivate", { { id = a.id, type = "AppInstance", alternateId = a.label, displayName = a.label, detailEntry = jnull() } })
  elseif act == "activate" then
    a.status = "ACTIVE"
  else
    return self:not_found("Resource", req.path)
  end
  a.lastUpdated = self:now_ms()
  return 200, setmetatable({}, { __jsontype = "object" })
end

local U, A = { scope = "okta.users" }, { scope = "okta.apps" }
return {
  { "GET", "/api/v1/users/:id/grants", Okta.h_user_grants, U },
  { "DELETE", "/api/v1/users/:id/grants", Okta.h_user_grants_delete, U },
  { "DELETE", "/api/v1/users/:id/grants/:gid", Okta.h_user_grants_delete, U },
  { "GET", "/api/v1/users/:id/clients", Okta.h_user_clients, U },
  { "GET", "/api/v1/users/:id/clients/:cid/tokens", Okta.h_user_client_tokens, U },
  { "DELETE", "/api/v1/users/:id/clients/:cid/tokens", Okta.h_user_client_tokens_delete, U },
  { "DELETE", "/api/v1/users/:id/clients/:cid/tokens/:tid", Okta.h_user_client_tokens_delete, U },
  { "GET", "/api/v1/users/:id/clients/:cid/grants", Okta.h_user_client_grants, U },
  { "DELETE", "/api/v1/users/:id/clients/:cid/grants", Okta.h_user_grants_delete, U },
  { "GET", "/api/v1/apps", Okta.h_list_apps, A },
  { "GET", "/api/v1/apps/:aid", Okta.h_get_app, A },
  { "GET", "/api/v1/apps/:aid/users", Okta.h_app_users, A },
  { "DELETE", "/api/v1/apps/:aid/users/:uid", Okta.h_app_user_delete, A },
  { "GET", "/api/v1/apps/:aid/grants", Okta.h_app_grants, A },
  { "DELETE", "/api/v1/apps/:aid/grants/:gid", Okta.h_app_grant_delete, A },
  { "GET", "/api/v1/apps/:aid/tokens", Okta.h_app_tokens, A },
  { "DELETE", "/api/v1/apps/:aid/tokens", Okta.h_app_tokens_delete, A },
  { "DELETE", "/api/v1/apps/:aid/tokens/:tid", Okta.h_app_tokens_delete, A },
  { "POST", "/api/v1/apps/:aid/lifecycle/:action", Okta.h_app_lifecycle, A },
}
