-- sandbox/github/orgs.lua — the organization: profile, members and memberships, outside collaborators,
-- invitations, blocks, teams and team memberships, repositories and their collaborators.
local GH = require "sandbox.github.core"
local json, guard, DOCS = GH.lib.json, GH.lib.guard, GH.lib.DOCS

GH.h_org = guard(function(self) return 200, self:org_json(true) end)

GH.h_members = guard(function(self, req)
  local role, filter = req.query.role or "all", req.query.filter or "all"
  local sel = {}
  for _, m in ipairs(self.state.members) do
    if m.state == "active" and (role == "all" or m.role == role) and (filter ~= "2fa_disabled" or not m.two_factor) then
      sel[#sel + 1] = m
    end
  end
  local extra = {}
  if req.query.role then extra[#extra + 1] = { "role", role } end
  if req.query.filter then extra[#extra + 1] = { "filter", filter } end
  return self:paged(req, self:mpath("/members"), sel, function(u) return self:user_json(u) end, extra)
end)

GH.h_member_check = guard(function(self, req)
  local m = self:member(req.params.username)
  if m and m.state == "active" then return 204, "" end
  return 404, ""
end)

function GH:remove_member(req, m, idx)
  table.remove(self.state.members, idx)
  local l = m.login:lower()
  local teams = {}
  for _, t in ipairs(self.state.teams) do if t.members[l] then t.members[l] = nil; teams[#teams + 1] = t end end
  for _, rp in ipairs(self.state.repos) do rp.collaborators[l] = nil end
  for i = #self.state.creds, 1, -1 do if self.state.creds[i].login:lower() == l then table.remove(self.state.creds, i) end end
  self:add_event{ action = "org.remove_member", actor = req.actor.login, user = m.login }
  local ms = self:membership_json(m)
  ms.organization = nil
  self:emit("organization", { action = "member_removed", membership = ms, sender = self:user_json(req.actor) })
  for _, t in ipairs(teams) do
    self:emit("membership", { action = "removed", scope = "team", member = self:user_json(m), sender = self:user_json(req.actor), team = self:team_json(t) })
  end
end

GH.h_member_delete = guard(function(self, req)
  local m, i = self:member(req.params.username)
  if not m then return self:not_found() end
  self:remove_member(req, m, i)
  return 204, ""
end)

GH.h_membership = guard(function(self, req)
  local m, i = self:member(req.params.username)
  if req.method == "GET" then
    if not m then return self:not_found() end
    return 200, self:membership_json(m)
  elseif req.method == "DELETE" then
    if not m then return self:not_found() end
    self:remove_member(req, m, i)
    return 204, ""
  end
  -- PUT: set role (invites a non-member as pending)
  local body = json().decode(req.body or "") or {}
  local role = type(body) == "table" and body.role or "member"
  if role ~= "admin" and role ~= "member" then
    return 422, { message = "Validation Failed", errors = json().array({ { resource = "OrganizationMembership", field = "role", code = "invalid" } }),
                  documentation_url = DOCS, status = "422" }
  end
  if not m then
    local u = self.state.by_login[req.params.username:lower()]
    if not u then return self:not_found() end
    local oi
    u, oi = self:outside(u.login)
    if u then table.remove(self.state.outside, oi) else u = self.state.by_login[req.params.username:lower()] end
    u.role, u.state, u.kind = role, "pending", "member"
    self.state.members[#self.state.members + 1] = u
    table.sort(self.state.members, function(a, b) return a.id < b.id end)
    self:add_event{ action = "org.invite_member", actor = req.actor.login, user = u.login }
    local ms = self:membership_json(u); ms.organization = nil
    self:emit("organization", { action = "member_invited", membership = ms, sender = self:user_json(req.actor) })
    return 200, self:membership_json(u)
  end
  if m.role ~= role then
    m.role = role
    self:add_event{ action = "org.update_member", actor = req.actor.login, user = m.login, permission = role }
  end
  return 200, self:membership_json(m)
end)

GH.h_outside = guard(function(self, req)
  local sel = {}
  for _, u in ipairs(self.state.outside) do
    if req.query.filter ~= "2fa_disabled" or not u.two_factor then sel[#sel + 1] = u end
  end
  local extra = req.query.filter and { { "filter", req.query.filter } } or nil
  return self:paged(req, self:mpath("/outside_collaborators"), sel, function(u) return self:user_json(u) end, extra)
end)

GH.h_outside_put = guard(function(self, req)
  local m, i = self:member(req.params.username)
  if not m then return self:not_found() end
  if m.role == "admin" then
    return self:err(403, "You cannot convert an organization owner to an outside collaborator.")
  end
  table.remove(self.state.members, i)
  local l = m.login:lower()
  for _, t in ipairs(self.state.teams) do t.members[l] = nil end
  m.kind, m.role, m.state = "outside", nil, nil
  self.state.outside[#self.state.outside + 1] = m
  table.sort(self.state.outside, function(a, b) return a.id < b.id end)
  self:add_event{ action = "org.remove_member", actor = req.actor.login, user = m.login }
  self:add_event{ action = "org.convert_member_to_outside_collaborator", actor = req.actor.login, user = m.login }
  local ms = { url = self.base_url .. "/orgs/" .. self.org.login .. "/memberships/" .. m.login, state = "active", role = "member",
               organization_url = self.base_url .. "/orgs/" .. self.org.login, user = self:user_json(m) }
  self:emit("organization", { action = "member_removed", membership = ms, sender = self:user_json(req.actor) })
  local body = json().decode(req.body or "")
  if type(body) == "table" and body.async == true then return 202, setmetatable({}, { __jsontype = "object" }) end
  return 204, ""
end)

GH.h_outside_delete = guard(function(self, req)
  local u, i = self:outside(req.params.username)
  if not u then
    if self:member(req.params.username) then
      return 422, { message = "You cannot specify an organization member to remove as an outside collaborator.",
                    documentation_url = DOCS, status = "422" }
    end
    return self:not_found()
  end
  table.remove(self.state.outside, i)
  local l = u.login:lower()
  for _, rp in ipairs(self.state.repos) do
    if rp.collaborators[l] then
      rp.collaborators[l] = nil
      self:emit("member", { action = "removed", member = self:user_json(u), repository = self:repo_json(rp), sender = self:user_json(req.actor) })
    end
  end
  self:add_event{ action = "org.remove_outside_collaborator", actor = req.actor.login, user = u.login }
  return 204, ""
end)

GH.h_invitations = guard(function(self, req) return self:paged(req, self:mpath("/invitations"), {}, function(x) return x end) end)

GH.h_blocks = guard(function(self, req)
  local sel = {}
  for _, u in ipairs(self.state.users) do if self.state.blocks[u.login:lower()] then sel[#sel + 1] = u end end
  return self:paged(req, self:mpath("/blocks"), sel, function(u) return self:user_json(u) end)
end)

GH.h_block = guard(function(self, req)
  local u = self.state.by_login[req.params.username:lower()]
  if not u then return self:not_found() end
  local l = u.login:lower()
  if req.method == "GET" then return self.state.blocks[l] and 204 or 404, "" end
  if req.method == "PUT" then
    if not self.state.blocks[l] then
      local m, i = self:member(u.login)
      if m then self:remove_member(req, m, i) end
      self.state.blocks[l] = true
      self:add_event{ action = "org.block_user", actor = req.actor.login, user = u.login }
      self:emit("org_block", { action = "blocked", blocked_user = self:user_json(u), sender = self:user_json(req.actor) })
    end
  else
    if self.state.blocks[l] then
      self.state.blocks[l] = nil
      self:add_event{ action = "org.unblock_user", actor = req.actor.login, user = u.login }
      self:emit("org_block", { action = "unblocked", blocked_user = self:user_json(u), sender = self:user_json(req.actor) })
    end
  end
  return 204, ""
end)

function GH:team(slug)
  for _, t in ipairs(self.state.teams) do if t.slug == slug:lower() or tostring(t.id) == slug then return t end end
end

GH.h_teams = guard(function(self, req)
  return self:paged(req, self:mpath("/teams"), self.state.teams, function(t) return self:team_json(t) end)
end)
GH.h_team = guard(function(self, req)
  local t = self:team(req.params.slug)
  if not t then return self:not_found() end
  return 200, self:team_json(t)
end)
GH.h_team_members = guard(function(self, req)
  local t = self:team(req.params.slug)
  if not t then return self:not_found() end
  local role = req.query.role or "all"
  local sel = {}
  for _, m in ipairs(self.state.members) do
    local r = t.members[m.login:lower()]
    if r and (role == "all" or role == r) then sel[#sel + 1] = m end
  end
  return self:paged(req, "/organizations/" .. self.org.id .. "/team/" .. t.id .. "/members", sel,
                    function(u) return self:user_json(u) end, req.query.role and { { "role", role } } or nil)
end)
GH.h_team_membership = guard(function(self, req)
  local t = self:team(req.params.slug)
  if not t then return self:not_found() end
  local l = req.params.username:lower()
  local role = t.members[l]
  if req.method == "GET" then
    if not role then return self:not_found() end
    return 200, { url = self.base_url .. "/organizations/" .. self.org.id .. "/team/" .. t.id .. "/memberships/" .. req.params.username,
                  role = role, state = "active" }
  end
  if not role then return self:not_found() end
  t.members[l] = nil
  local u = self.state.by_login[l]
  self:add_event{ action = "team.remove_member", actor = req.actor.login, user = u.login, team = self.org.login .. "/" .. t.slug }
  self:emit("membership", { action = "removed", scope = "team", member = self:user_json(u), sender = self:user_json(req.actor), team = self:team_json(t) })
  return 204, ""
end)

GH.h_repos = guard(function(self, req)
  local ty = req.query.type or "all"
  local sel = {}
  for _, rp in ipairs(self.state.repos) do
    if ty == "all" or ty == "sources" or ty == "member" or (ty == "public" and rp.visibility == "public")
       or (ty == "private" and rp.visibility ~= "public") or (ty == "internal" and rp.visibility == "internal") then
      sel[#sel + 1] = rp
    end
  end
  return self:paged(req, self:mpath("/repos"), sel, function(rp) return self:repo_json(rp) end)
end)

function GH:repo(req)
  if req.params.owner:lower() ~= self.org.login:lower() then return nil end
  for _, rp in ipairs(self.state.repos) do if rp.name:lower() == req.params.repo:lower() then return rp end end
end

function GH:h_collaborators(req)
  local rp = self:repo(req)
  if not rp then return self:not_found() end
  local aff = req.query.affiliation or "all"
  local sel = {}
  for _, u in ipairs(self.state.users) do
    local p = rp.collaborators[u.login:lower()]
    if p and (aff == "all" or aff == "direct" or (aff == "outside" and u.kind == "outside")) then sel[#sel + 1] = u end
  end
  local RN = { pull = "read", triage = "triage", push = "write", maintain = "maintain", admin = "admin" }
  local LVL = { pull = 1, triage = 2, push = 3, maintain = 4, admin = 5 }
  return self:paged(req, "/repositories/" .. rp.id .. "/collaborators", sel, function(u)
    local j = self:user_json(u)
    local p = rp.collaborators[u.login:lower()]
    local lv = LVL[p]
    j.permissions = { pull = lv >= 1, triage = lv >= 2, push = lv >= 3, maintain = lv >= 4, admin = lv >= 5 }
    j.role_name = RN[p]
    return j
  end)
end

function GH:h_collaborator_delete(req)
  local rp = self:repo(req)
  if not rp then return self:not_found() end
  local l = req.params.username:lower()
  if rp.collaborators[l] then
    rp.collaborators[l] = nil
    local u = self.state.by_login[l]
    self:add_event{ action = "repo.remove_member", actor = req.actor.login, user = u.login, repo = self.org.login .. "/" .. rp.name }
    self:emit("member", { action = "removed", member = self:user_json(u), repository = self:repo_json(rp), sender = self:user_json(req.actor) })
  end
  return 204, ""
end

function GH:h_repo_patch(req)
  local rp = self:repo(req)
  if not rp then return self:not_found() end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" then return self:err(400, "Problems parsing JSON") end
  local was = rp.visibility
  if body.private == true or body.visibility == "private" then rp.visibility = "private"
  elseif body.private == false or body.visibility == "public" then rp.visibility = "public"
  elseif body.visibility == "internal" then rp.visibility = "internal" end
  if body.archived ~= nil then rp.archived = body.archived == true end
  rp.updated = self:now_ms() // 1000
  if was ~= rp.visibility then
    self:add_event{ action = "repo.access", actor = req.actor.login, repo = self.org.login .. "/" .. rp.name, visibility = rp.visibility }
    local act = rp.visibility == "public" and "publicized" or (was == "public" and "privatized" or nil)
    if act then self:emit("repository", { action = act, repository = self:repo_json(rp), sender = self:user_json(req.actor) }) end
  end
  if body.archived == true then
    self:add_event{ action = "repo.archived", actor = req.actor.login, repo = self.org.login .. "/" .. rp.name }
    self:emit("repository", { action = "archived", repository = self:repo_json(rp), sender = self:user_json(req.actor) })
  end
  return 200, self:repo_json(rp)
end

return function(org, route)
  org("GET", "", GH.h_org)
  org("GET", "/members", GH.h_members, { app = "members:read" })
  org("GET", "/members/:username", GH.h_member_check, { app = "members:read" })
  org("DELETE", "/members/:username", GH.h_member_delete, { app = "members:write" })
  org("GET", "/memberships/:username", GH.h_membership, { app = "members:read" })
  org("PUT", "/memberships/:username", GH.h_membership, { app = "members:write" })
  org("DELETE", "/memberships/:username", GH.h_membership, { app = "members:write" })
  org("GET", "/outside_collaborators", GH.h_outside, { app = "members:read" })
  org("PUT", "/outside_collaborators/:username", GH.h_outside_put, { app = "members:write" })
  org("DELETE", "/outside_collaborators/:username", GH.h_outside_delete, { app = "members:write" })
  org("GET", "/invitations", GH.h_invitations, { app = "members:read" })
  org("GET", "/failed_invitations", GH.h_invitations, { app = "members:read" })
  org("GET", "/blocks", GH.h_blocks, { app = "organization_user_blocking:read" })
  org("GET", "/blocks/:username", GH.h_block, { app = "organization_user_blocking:read" })
  org("PUT", "/blocks/:username", GH.h_block, { app = "organization_user_blocking:write" })
  org("DELETE", "/blocks/:username", GH.h_block, { app = "organization_user_blocking:write" })
  org("GET", "/teams", GH.h_teams, { app = "members:read" })
  org("GET", "/teams/:slug", GH.h_team, { app = "members:read" })
  org("GET", "/teams/:slug/members", GH.h_team_members, { app = "members:read" })
  org("GET", "/teams/:slug/memberships/:username", GH.h_team_membership, { app = "members:read" })
  org("DELETE", "/teams/:slug/memberships/:username", GH.h_team_membership, { app = "members:write" })
  route("GET", "/organizations/:org/team/:slug/members", GH.h_team_members, { app = "members:read" })
  org("GET", "/repos", GH.h_repos)
  route("GET", "/repos/:owner/:repo/collaborators", GH.h_collaborators)
  route("GET", "/repositories/:rid/collaborators", function(self, req)
    for _, rp in ipairs(self.state.repos) do
      if tostring(rp.id) == req.params.rid then req.params.owner, req.params.repo = self.org.login, rp.name; return self:h_collaborators(req) end
    end
    return self:not_found()
  end)
  route("DELETE", "/repos/:owner/:repo/collaborators/:username", GH.h_collaborator_delete)
  route("PATCH", "/repos/:owner/:repo", GH.h_repo_patch)
end
