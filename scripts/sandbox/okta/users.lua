-- sandbox/okta/users.lua — users: listing (q / filter / search), one user, the user's groups and app
-- links, lifecycle operations, deletion, sessions.
local O = require "sandbox.okta.org"
local T, Okta = O.T, O.Okta
local json, jnull, iso = O.json, O.jnull, O.iso
local user_target = O.user_target

function Okta:user_json(u)
  local b = self.base_url .. "/api/v1/users/" .. u.id
  local links = { self = { href = b } }
  local s = u.status
  local function lk(name, path) links[name] = { href = b .. path, method = "POST" } end
  if s == "ACTIVE" or s == "PASSWORD_EXPIRED" or s == "RECOVERY" or s == "LOCKED_OUT" then
    lk("suspend", "/lifecycle/suspend"); lk("resetPassword", "/lifecycle/reset_password")
    lk("expirePassword", "/lifecycle/expire_password"); lk("deactivate", "/lifecycle/deactivate")
    -- "present only if the user is currently enrolled in one or more MFA factors"
    if (u.factors or 0) > 0 then lk("resetFactors", "/lifecycle/reset_factors") end
    links.changePassword = { href = b .. "/credentials/change_password", method = "POST" }
    links.forgotPassword = { href = b .. "/credentials/forgot_password", method = "POST" }
  end
  if s == "SUSPENDED" then lk("unsuspend", "/lifecycle/unsuspend"); lk("deactivate", "/lifecycle/deactivate") end
  if s == "LOCKED_OUT" then lk("unlock", "/lifecycle/unlock") end
  if s == "STAGED" or s == "PROVISIONED" then lk("activate", "/lifecycle/activate"); lk("deactivate", "/lifecycle/deactivate") end
  if s == "DEPROVISIONED" then lk("activate", "/lifecycle/activate") end
  local p = u.profile
  return {
    id = u.id, status = s, created = iso(u.created), activated = iso(u.activated), statusChanged = iso(u.statusChanged),
    lastLogin = iso(u.lastLogin), lastUpdated = iso(u.lastUpdated), passwordChanged = iso(u.passwordChanged),
    type = { id = u.typeId },
    profile = { firstName = p.firstName, lastName = p.lastName, mobilePhone = p.mobilePhone, secondEmail = p.secondEmail,
                login = p.login, email = p.email, displayName = p.displayName, title = p.title, department = p.department,
                employeeNumber = p.employeeNumber },
    credentials = { password = setmetatable({}, { __jsontype = "object" }), provider = { type = "OKTA", name = "OKTA" } },
    _links = links,
  }
end

local USER_FILTER_ATTRS = { status = true, lastUpdated = true, id = true, ["profile.login"] = true,
  ["profile.email"] = true, ["profile.firstName"] = true, ["profile.lastName"] = true }

function Okta:h_list_users(req)
  local q = req.query
  local list = self.state.users
  local sel = {}
  local default = 200
  local extra = {}
  if q.q and q.q ~= "" then
    local p = q.q:lower()
    for _, u in ipairs(list) do
      local pr = u.profile
      if pr.firstName:lower():sub(1, #p) == p or pr.lastName:lower():sub(1, #p) == p or pr.email:lower():sub(1, #p) == p then
        if u.status ~= "DEPROVISIONED" then sel[#sel + 1] = u end
      end
    end
    default = 10
    extra[#extra + 1] = { "q", q.q }
  elseif (q.filter and q.filter ~= "") or (q.search and q.search ~= "") then
    local expr = (q.search and q.search ~= "") and q.search or q.filter
    local f, err = T.scim_filter(expr, (q.search and q.search ~= "") and nil or USER_FILTER_ATTRS)
    if not f then
      return self:err("E0000031", "Invalid search criteria.", 400, { { errorSummary = err } })
    end
    for _, u in ipairs(list) do
      local j = self:user_json(u)
      if f(j) then sel[#sel + 1] = u end
    end
    extra[#extra + 1] = { (q.search and q.search ~= "") and "search" or "filter", expr }
  else
    for _, u in ipairs(list) do if u.status ~= "DEPROVISIONED" then sel[#sel + 1] = u end end
  end
  return self:paged(req, "/api/v1/users", sel, default, 200, function(u) return self:user_json(u) end, extra)
end

function Okta:h_get_user(req)
  local id = req.params.id
  local u = (id == "me") and self.admin or self:find_user(id)
  if not u then return self:not_found("User", id) end
  return 200, self:user_json(u), { ETag = 'W/"' .. T.hexs(16, self.seed, u.id, u.lastUpdated) .. '"' }
end

function Okta:h_user_groups(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local out = {}
  for _, g in ipairs(self.state.groups) do if g.members[u.id] then out[#out + 1] = self:group_json(g) end end
  return 200, json().array(out)
end

function Okta:h_app_links(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local out = {}
  for i, a in ipairs(self.state.apps) do
    if a.users[u.id] and a.status == "ACTIVE" then
      out[#out + 1] = { id = "00ub" .. T.b62(16, self.seed, "applink", i, u.index), label = a.label,
        linkUrl = self.base_url .. "/home/" .. a.name .. "/" .. a.id .. "/" .. i, logoUrl = self.base_url .. "/img/logos/" .. a.name .. ".png",
        appName = a.name, appInstanceId = a.id, appAssignmentId = "0ua" .. T.b62(17, self.seed, "assign", i, u.index),
        credentialsSetup = false, hidden = false, sortOrder = i - 1 }
    end
  end
  return 200, json().array(out)
end

-- lifecycle transitions: action -> {from = set (nil = any), to, event, returns}
local LIFECYCLE = {
  suspend = { from = { ACTIVE = true }, to = "SUSPENDED", event = "user.lifecycle.suspend",
              err = "Cannot suspend a user that is not active" },
  unsuspend = { from = { SUSPENDED = true }, to = "ACTIVE", event = "user.lifecycle.unsuspend",
                err = "Cannot unsuspend a user that is not suspended" },
  unlock = { from = { LOCKED_OUT = true }, to = "ACTIVE", event = "user.account.unlock_by_admin",
             err = "Cannot unlock a user that is not locked out" },
  deactivate = { notfrom = { DEPROVISIONED = true }, to = "DEPROVISIONED", event = "user.lifecycle.deactivate" },
  activate = { from = { STAGED = true, PROVISIONED = true, DEPROVISIONED = true }, to = "PROVISIONED", event = "user.lifecycle.activate",
               err = "Activation failed because the user is already active" },
  reactivate = { from = { PROVISIONED = true }, to = "PROVISIONED", event = "user.lifecycle.reactivate",
                 err = "Cannot reactivate a user that is not provisioned" },
  expire_password = { notfrom = { DEPROVISIONED = true, STAGED = true, SUSPENDED = true }, to = "PASSWORD_EXPIRED", event = "user.account.expire_password" },
  expire_password_with_temp_password = { notfrom = { DEPROVISIONED = true, STAGED = true, SUSPENDED = true }, to = "PASSWORD_EXPIRED", event = "user.account.expire_password" },
  reset_password = { notfrom = { DEPROVISIONED = true, STAGED = true, SUSPENDED = true }, to = "RECOVERY", event = "user.account.reset_password" },
  reset_factors = { notfrom = { DEPROVISIONED = true, STAGED = true }, event = "user.mfa.factor.reset_all" },
}

function Okta:set_status(u, status)
  local now = self:now_ms()
  if u.status ~= status then u.status = status; u.statusChanged = now end
  if status == "ACTIVE" and not u.activated then u.activated = now end
  u.lastUpdated = now
end

function Okta:revoke_user_sessions(req, u, oauth)
  local kept = {}
  local n = 0
  for _, s in ipairs(self.state.sessions) do
    if s.userId == u.id then self.state.session_by_id[s.id] = nil; n = n + 1 else kept[#kept + 1] = s end
  end
  self.state.sessions = kept
  if oauth then self:revoke_tokens(req, function(t) return t.userId == u.id end) end
  return n
end


function Okta:h_lifecycle(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local action = req.params.action
  local L = LIFECYCLE[action]
  if not L then return self:not_found("Resource", req.path) end
  if action == "reset_password" and (req.query.sendEmail == nil or req.query.sendEmail == "") then
    return self:err("E0000028", "The request is missing a required parameter.", 400, { { errorSummary = "sendEmail" } })
  end
  if (L.from and not L.from[u.status]) or (L.notfrom and L.notfrom[u.status]) then
    if u.status == "DEPROVISIONED" then return self:err("E0000038") end
    return self:err("E0000001", "Api validation failed: " .. (L.err or action), 400,
                    { { errorSummary = L.err or ("This operation is not allowed in the user's current status.") } })
  end
  if L.to then self:set_status(u, L.to) else u.lastUpdated = self:now_ms() end
  if action == "deactivate" then
    -- deprovisioned from all assigned apps (the spec: "a destructive operation"), sessions ended
    for _, a in ipairs(self.state.apps) do a.users[u.id] = nil end
    self:revoke_user_sessions(req, u, false)
  elseif action == "reset_factors" then
    u.factors = 0                       -- every enrollment back to unenrolled; the status stays
  end
  if (action == "reset_password" or action == "expire_password_with_temp_password") and req.query.revokeSessions == "true" then
    self:revoke_user_sessions(req, u, false)
  end
  if action == "activate" and req.query.sendEmail == "false" then
    -- activation without email returns an activation token
  end
  self:gov_event(req, L.event, user_target(u))
  if action == "expire_password" then
    return 200, self:user_json(u)
  elseif action == "expire_password_with_temp_password" then
    return 200, { tempPassword = T.b62(10, self.seed, "temp", u.id, self.seq), user = self:user_json(u) }
  elseif action == "reset_password" then
    if req.query.sendEmail == "false" then
      return 200, { summary = "Reset password without sending email",
                    resetPasswordUrl = self.base_url .. "/reset_password/" .. T.b62(20, self.seed, "reset", u.id, self.seq) }
    end
    return 200, setmetatable({}, { __jsontype = "object" })
  elseif action == "activate" then
    if req.query.sendEmail == "false" then
      local tok = T.b62(20, self.seed, "act", u.id, self.seq)
      return 200, { activationUrl = self.base_url .. "/welcome/" .. tok, activationToken = tok }
    end
    return 200, setmetatable({}, { __jsontype = "object" })
  end
  return 200, setmetatable({}, { __jsontype = "object" })
end

function Okta:h_delete_user(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  if u.status ~= "DEPROVISIONED" then
    self:set_status(u, "DEPROVISIONED")
    self:revoke_user_sessions(req, u, false)
    self:gov_event(req, "user.lifecycle.deactivate", user_target(u))
    return 204, ""
  end
  local st = self.state
  for i, x in ipairs(st.users) do if x == u then table.remove(st.users, i); break end end
  st.by_id[u.id] = nil
  st.by_login[u.profile.login:lower()] = nil
  for _, g in ipairs(st.groups) do g.members[u.id] = nil end
  st.roles[u.id] = nil
  self:gov_event(req, "user.lifecycle.delete.initiated", user_target(u))
  return 204, ""
end

function Okta:h_user_sessions_delete(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  self:revoke_user_sessions(req, u, req.query.oauthTokens == "true")
  self:gov_event(req, "user.session.clear", user_target(u))
  return 204, ""
end

function Okta:h_session(req)
  local s = self.state.session_by_id[req.params.sid]
  if not s then return self:not_found("Session", req.params.sid) end
  if req.method == "DELETE" then
    self.state.session_by_id[s.id] = nil
    for i, x in ipairs(self.state.sessions) do if x == s then table.remove(self.state.sessions, i); break end end
    local u = self.state.by_id[s.userId]
    self:gov_event(req, "user.session.clear", u and user_target(u) or {})
    return 204, ""
  end
  local b = self.base_url .. "/api/v1/sessions/" .. s.id
  return 200, { id = s.id, userId = s.userId, login = s.login, createdAt = iso(s.createdAt),
                expiresAt = iso(s.createdAt + 7200000), status = "ACTIVE", lastPasswordVerification = iso(s.createdAt),
                lastFactorVerification = jnull(), amr = json().array({ "pwd" }),
                idp = { id = self.orgid, type = "OKTA" }, mfaActive = false,
                _links = { self = { href = b }, refresh = { href = b .. "/lifecycle/refresh" },
                           user = { href = self.base_url .. "/api/v1/users/" .. s.userId } } }
end

local U = { scope = "okta.users" }
return {
  { "GET", "/api/v1/users", Okta.h_list_users, U },
  { "GET", "/api/v1/users/:id", Okta.h_get_user, U },
  { "DELETE", "/api/v1/users/:id", Okta.h_delete_user, U },
  { "GET", "/api/v1/users/:id/groups", Okta.h_user_groups, U },
  { "GET", "/api/v1/users/:id/appLinks", Okta.h_app_links, U },
  { "POST", "/api/v1/users/:id/lifecycle/:action", Okta.h_lifecycle, U },
  { "DELETE", "/api/v1/users/:id/sessions", Okta.h_user_sessions_delete, { scope = "okta.users.manage" } },
  { "GET", "/api/v1/sessions/:sid", Okta.h_session, { scope = "okta.sessions" } },
  { "DELETE", "/api/v1/sessions/:sid", Okta.h_session, { scope = "okta.sessions" } },
}
