-- sandbox/github/roles.lua — organization roles (docs: "REST API endpoints for organization roles"): the
-- predefined roles and a custom one, assigned to users directly or through teams.  Listing them needs
-- admin:org from a classic or OAuth token.
local T = require "sandbox.tenant"
local GH = require "sandbox.github.core"
local json, isos, guard = GH.lib.json, GH.lib.isos, GH.lib.guard

-- {name, description, base_role, source, permissions}
local ROLES = {
  { "all_repo_read", "Grants read access to all repositories in the organization.", "read", "Predefined", {} },
  { "all_repo_write", "Grants write access to all repositories in the organization.", "write", "Predefined", {} },
  { "all_repo_admin", "Grants admin access to all repositories in the organization.", "admin", "Predefined", {} },
  { "security_manager", "Manages security policies, security alerts and security configurations for the organization and all its repositories.",
    "read", "Predefined", { "read_organization_custom_org_role", "write_organization_custom_repo_role" } },
  { "Audit reader", "Reads the audit log and the organization's custom roles.", nil, "Organization",
    { "read_audit_logs", "read_organization_custom_org_role" } },
}

-- The roles and their assignments, made once from the seed: {id, name, ..., users = {login_lower = true},
-- teams = {team_id = true}}.  Assignments name logins and team ids; who still is a member is read live.
function GH:org_roles()
  if self.roles then return self.roles end
  local seed, st = self.seed, self.state
  local now_s = self.t0_ms // 1000
  self.roles = {}
  for i, r in ipairs(ROLES) do
    local role = { id = 138 + i * 1011, name = r[1], description = r[2], base_role = r[3], source = r[4],
                   permissions = r[5], created = now_s - (400 - i) * 86400, users = {}, teams = {} }
    local active = {}
    for _, m in ipairs(st.members) do if m.state == "active" then active[#active + 1] = m end end
    -- one or two direct holders, and the role of one team for every other role
    for k = 1, 1 + T.below(T.hash(seed, "roleusers", i), 2) do
      if #active > 0 then role.users[active[T.below(T.hash(seed, "roleuser", i, k), #active) + 1].login:lower()] = true end
    end
    if i % 2 == 0 and #st.teams > 0 then role.teams[st.teams[T.below(T.hash(seed, "roleteam", i), #st.teams) + 1].id] = true end
    self.roles[#self.roles + 1] = role
  end
  return self.roles
end

function GH:role_json(r)
  return { id = r.id, name = r.name, description = r.description, base_role = r.base_role or json().null,
           source = r.source, permissions = json().array(T.deep(r.permissions)), organization = self:org_owner_json(),
           created_at = isos(r.created), updated_at = isos(r.created) }
end

function GH:role(req)
  for _, r in ipairs(self:org_roles()) do if tostring(r.id) == req.params.role_id then return r end end
end

-- The users holding a role: direct holders, and the members of its teams ("indirect", inherited_from
-- the team), "mixed" when both.
function GH:role_holders(r)
  local out = {}
  for _, m in ipairs(self.state.members) do
    if m.state == "active" then
      local l = m.login:lower()
      local from = {}
      for _, t in ipairs(self.state.teams) do if r.teams[t.id] and t.members[l] then from[#from + 1] = t end end
      if r.users[l] or #from > 0 then
        out[#out + 1] = { user = m, assignment = r.users[l] and (#from > 0 and "mixed" or "direct") or "indirect", from = from }
      end
    end
  end
  return out
end

-- Handlers behind the org check and admin:org; with_role also finds {role_id} (404 when it is not one).
local function admin_org(fn)
  return guard(function(self, req)
    local st, body, hdr = self:needs_scope(req, "admin:org")
    if st then return st, body, hdr end
    return fn(self, req)
  end)
end
local function with_role(fn)
  return admin_org(function(self, req)
    local r = self:role(req)
    if not r then return self:not_found() end
    return fn(self, req, r)
  end)
end

GH.h_org_roles = admin_org(function(self)
  local out = {}
  for i, r in ipairs(self:org_roles()) do out[i] = self:role_json(r) end
  return 200, { total_count = #out, roles = json().array(out) }
end)

GH.h_org_role = with_role(function(self, _, r) return 200, self:role_json(r) end)

GH.h_org_role_teams = with_role(function(self, req, r)
  local sel = {}
  for _, t in ipairs(self.state.teams) do if r.teams[t.id] then sel[#sel + 1] = t end end
  return self:paged(req, self:mpath("/organization-roles/" .. r.id .. "/teams"), sel, function(t)
    local j = self:team_json(t)
    j.assignment = "direct"
    return j
  end)
end)

GH.h_org_role_users = with_role(function(self, req, r)
  return self:paged(req, self:mpath("/organization-roles/" .. r.id .. "/users"), self:role_holders(r), function(h)
    local j = self:user_json(h.user)
    j.assignment = h.assignment
    local from = {}
    for i, t in ipairs(h.from) do from[i] = { id = t.id, name = t.name, slug = t.slug, url = self:team_json(t).url } end
    j.inherited_from = json().array(from)
    return j
  end)
end)

-- DELETE /orgs/{org}/organization-roles/users/{username}/{role_id}: the direct assignment goes (one held
-- through a team stays); 204 either way.
GH.h_org_role_user_delete = with_role(function(self, req, r)
  local l = req.params.username:lower()
  if r.users[l] then
    r.users[l] = nil
    self:add_event{ action = "org.revoke_organization_role", actor = req.actor.login, user = req.params.username }
  end
  return 204, ""
end)

return function(org)
  local R = { app = "organization_custom_org_roles:read" }
  org("GET", "/organization-roles", GH.h_org_roles, R)
  org("GET", "/organization-roles/:role_id", GH.h_org_role, R)
  org("GET", "/organization-roles/:role_id/teams", GH.h_org_role_teams, R)
  org("GET", "/organization-roles/:role_id/users", GH.h_org_role_users, R)
  org("DELETE", "/organization-roles/users/:username/:role_id", GH.h_org_role_user_delete,
    { app = "organization_custom_org_roles:write" })
end
