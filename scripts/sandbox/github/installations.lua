-- sandbox/github/installations.lua — what holds access to the organization: GitHub App installations and
-- their installation tokens (app JWT), SAML SSO credential authorizations, fine-grained PAT grants.
local T = require "sandbox.tenant"
local GH = require "sandbox.github.core"
local json, jnull, isos, guard, DOCS = GH.lib.json, GH.lib.jnull, GH.lib.isos, GH.lib.guard, GH.lib.DOCS

GH.h_creds = guard(function(self, req)
  local sel = {}
  for _, c in ipairs(self.state.creds) do
    if not req.query.login or req.query.login == "" or c.login:lower() == req.query.login:lower() then sel[#sel + 1] = c end
  end
  return self:paged(req, self:mpath("/credential-authorizations"), sel, function(c)
    return { login = c.login, credential_id = c.credential_id, credential_type = c.credential_type,
             token_last_eight = c.credential_type == "personal access token" and c.token_last_eight or nil,
             fingerprint = c.credential_type == "SSH key" and ("jklmnop" .. c.token_last_eight) or nil,
             credential_authorized_at = isos(c.credential_authorized_at), credential_accessed_at = isos(c.credential_accessed_at),
             authorized_credential_expires_at = isos(c.expires), scopes = json().array(T.deep(c.scopes)),
             authorized_credential_id = c.credential_id + 1000000 }
  end, req.query.login and { { "login", req.query.login } } or nil)
end)

GH.h_cred_delete = guard(function(self, req)
  local id = math.tointeger(tonumber(req.params.cid))
  for i, c in ipairs(self.state.creds) do
    if c.credential_id == id then
      table.remove(self.state.creds, i)
      self:add_event{ action = "org_credential_authorization.deauthorized", actor = req.actor.login, user = c.login,
                      credential_type = c.credential_type }
      return 204, ""
    end
  end
  return self:not_found()
end)

-- GET /orgs/{org}/installations: "OAuth app tokens and personal access tokens (classic) need the
-- admin:read scope" (GitHub's reference)
GH.h_installations = guard(function(self, req)
  local st, body, hdr = self:needs_scope(req, "admin:read")
  if st then return st, body, hdr end
  local out = {}
  for i, ins in ipairs(self.state.installations) do out[i] = self:installation_json(ins) end
  return 200, { total_count = #out, installations = json().array(out) }
end)

function GH:installation_json(ins)
  return { id = ins.id, account = self:org_owner_json(), repository_selection = "all",
           access_tokens_url = self.base_url .. "/app/installations/" .. ins.id .. "/access_tokens",
           repositories_url = self.base_url .. "/installation/repositories",
           html_url = self.web_url .. "/organizations/" .. self.org.login .. "/settings/installations/" .. ins.id,
           app_id = ins.app_id, app_slug = ins.app_slug, target_id = self.org.id, target_type = "Organization",
           permissions = T.deep(ins.permissions),
           events = json().array({ "organization", "member", "membership", "team" }),
           created_at = isos(ins.created), updated_at = isos(ins.created), single_file_name = jnull(),
           suspended_at = isos(ins.suspended), suspended_by = jnull() }
end

local PAT_PERMISSIONS = { organization = { members = "read" }, repository = { metadata = "read", contents = "read" } }

-- The fine-grained PAT routes: "Only GitHub Apps can use this endpoint" (an installation token with the
-- organization_personal_access_tokens permission).
function GH:apps_only(req)
  if req.token and req.token.kind == "installation" then return nil end
  return self:err(403, "Resource not accessible by personal access token; only GitHub Apps can use this endpoint")
end

GH.h_pats = guard(function(self, req)
  local st, body, hdr = self:apps_only(req)
  if st then return st, body, hdr end
  return self:paged(req, self:mpath("/personal-access-tokens"), self.state.pats, function(p)
    local u = self.state.by_login[p.owner:lower()]
    return { id = p.id, owner = self:user_json(u), repository_selection = p.repository_selection,
             repositories_url = self.base_url .. "/organizations/" .. self.org.id .. "/personal-access-tokens/" .. p.id .. "/repositories",
             permissions = T.deep(PAT_PERMISSIONS),
             access_granted_at = isos(p.granted), token_id = p.token_id, token_name = p.token_name, token_expired = false,
             token_expires_at = isos(p.expires), token_last_used_at = isos(p.last_used) }
  end)
end)

-- A POST on the App-only PAT routes: {"action": one of `actions`, ids in body[many] or the path's
-- `one` param} -> body, {id = true} | nil, the refusal (403 not an App, 422 another action)
local function app_review(self, req, actions, resource, one, many)
  local st, b, hdr = self:apps_only(req)
  if st then return nil, st, b, hdr end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" or not actions[body.action] then
    return nil, 422, { message = "Validation Failed", errors = json().array({ { resource = resource, field = "action", code = "invalid" } }),
                       documentation_url = DOCS, status = "422" }
  end
  local ids = {}
  if req.params[one] then ids[math.tointeger(tonumber(req.params[one])) or -1] = true
  else for _, v in ipairs(type(body[many]) == "table" and body[many] or {}) do ids[math.tointeger(v) or -1] = true end end
  return body, ids
end

GH.h_pats_revoke = guard(function(self, req)
  local body, ids, b, hdr = app_review(self, req, { revoke = true }, "PersonalAccessToken", "pat_id", "pat_ids")
  if not body then return ids, b, hdr end
  local found = false
  for i = #self.state.pats, 1, -1 do
    local p = self.state.pats[i]
    if ids[p.id] then
      found = true
      table.remove(self.state.pats, i)
      self:add_event{ action = "personal_access_token.access_revoked", actor = req.actor.login, user = p.owner }
    end
  end
  if not found then return self:not_found() end
  if req.params.pat_id then return 204, "" end            -- one token: 204; several: 202 (queued)
  return 202, setmetatable({}, { __jsontype = "object" })
end)

-- GitHub App: installations and installation tokens (JWT-authenticated)
function GH:h_app_installations(req)
  local out = {}
  for i, ins in ipairs(self.state.installations) do out[i] = self:installation_json(ins) end
  return 200, json().array(out)
end
function GH:h_org_installation(req)
  if not self:org_ok(req) then return self:not_found() end
  return 200, self:installation_json(self.state.installations[1])
end
function GH:h_access_tokens(req)
  local ins
  for _, x in ipairs(self.state.installations) do if tostring(x.id) == req.params.iid then ins = x end end
  if not ins then return self:not_found() end
  if ins.suspended then return self:err(403, "This installation has been suspended") end
  self.nins = (self.nins or 0) + 1
  local tok = "ghs_" .. T.b62(36, self.seed, "ghs", self.nins, self:wall_s())
  local exp = self:wall_s() + 3600
  self.tokens[tok] = { login = self.org.login .. "-sandbox[bot]", kind = "installation", exp = exp, permissions = ins.permissions }
  return 201, { token = tok, expires_at = T.iso_s(exp), permissions = self:installation_json(ins).permissions,
                repository_selection = "all" }
end

-- Pending requests for fine-grained PAT access (orgs that require approval), made once from the seed;
-- approving one makes it a grant, denying drops it.
function GH:pat_requests()
  if self.pat_reqs then return self.pat_reqs end
  local seed, now_s = self.seed, self.t0_ms // 1000
  local active = {}
  for _, m in ipairs(self.state.members) do if m.state == "active" then active[#active + 1] = m end end
  self.pat_reqs = {}
  for i = 1, math.min(2, #active) do
    local m = active[T.below(T.hash(seed, "patreq", i), #active) + 1]
    self.pat_reqs[i] = { id = 1900 + i, owner = m.login, token_id = 99700 + i, token_name = "request-" .. i,
      reason = "Needs to read the org's members for a script", repository_selection = "subset",
      created = now_s - (i + 1) * 3600, expires = now_s + 30 * 86400 }
  end
  return self.pat_reqs
end

GH.h_pat_requests = guard(function(self, req)
  local st, body, hdr = self:apps_only(req)
  if st then return st, body, hdr end
  return self:paged(req, self:mpath("/personal-access-token-requests"), self:pat_requests(), function(p)
    return { id = p.id, reason = p.reason, owner = self:user_json(self.state.by_login[p.owner:lower()]),
             repository_selection = p.repository_selection,
             repositories_url = self.base_url .. "/organizations/" .. self.org.id .. "/personal-access-token-requests/" .. p.id .. "/repositories",
             permissions = T.deep(PAT_PERMISSIONS), created_at = isos(p.created), token_id = p.token_id,
             token_name = p.token_name, token_expired = false, token_expires_at = isos(p.expires), token_last_used_at = jnull() }
  end)
end)

-- POST .../personal-access-token-requests[/{pat_request_id}] {"action": "approve"|"deny", "reason"}: one 204, several 202
GH.h_pat_requests_review = guard(function(self, req)
  local body, ids, b, hdr = app_review(self, req, { approve = true, deny = true }, "PersonalAccessTokenRequest", "req_id", "pat_request_ids")
  if not body then return ids, b, hdr end
  local reqs, found = self:pat_requests(), false
  for i = #reqs, 1, -1 do
    local p = reqs[i]
    if ids[p.id] then
      found = true
      table.remove(reqs, i)
      if body.action == "approve" then
        self.state.pats[#self.state.pats + 1] = { id = p.id + 30000, owner = p.owner, token_id = p.token_id, token_name = p.token_name,
          repository_selection = p.repository_selection, granted = self:now_ms() // 1000, last_used = nil, expires = p.expires }
      end
      self:add_event{ action = "personal_access_token.request_" .. (body.action == "approve" and "approved" or "denied"),
                      actor = req.actor.login, user = p.owner }
    end
  end
  if not found then return self:not_found() end
  if req.params.req_id then return 204, "" end
  return 202, setmetatable({}, { __jsontype = "object" })
end)

return function(org, route)
  org("GET", "/credential-authorizations", function(self, req)
    if self.plan ~= "enterprise" then return self:cloud_only("orgs/orgs#list-saml-sso-authorizations-for-an-organization") end
    return self:h_creds(req)
  end)
  org("DELETE", "/credential-authorizations/:cid", GH.h_cred_delete)
  org("GET", "/installations", GH.h_installations, { app = "organization_administration:read" })
  org("GET", "/installation", GH.h_org_installation, { app_jwt = true })
  org("GET", "/personal-access-tokens", GH.h_pats, { app = "organization_personal_access_tokens:read" })
  org("POST", "/personal-access-tokens", GH.h_pats_revoke, { app = "organization_personal_access_tokens:write" })
  org("POST", "/personal-access-tokens/:pat_id", GH.h_pats_revoke, { app = "organization_personal_access_tokens:write" })
  org("GET", "/personal-access-token-requests", GH.h_pat_requests, { app = "organization_personal_access_token_requests:read" })
  org("POST", "/personal-access-token-requests", GH.h_pat_requests_review, { app = "organization_personal_access_token_requests:write" })
  org("POST", "/personal-access-token-requests/:req_id", GH.h_pat_requests_review, { app = "organization_personal_access_token_requests:write" })
  route("GET", "/app/installations", GH.h_app_installations, { app_jwt = true })
  route("POST", "/app/installations/:iid/access_tokens", GH.h_access_tokens, { app_jwt = true })
end
