-- sandbox/okta/groups.lua — groups and their members; admin role assignments (of users, of groups)
-- and the IAM listing of everyone holding one.
local O = require "sandbox.okta.org"
local T, Okta = O.T, O.Okta
local json, jnull, iso = O.json, O.jnull, O.iso
local user_target, page_after, get_limit = O.user_target, O.page_after, O.get_limit

function Okta:group_json(g)
  local b = self.base_url
  return {
    id = g.id, created = iso(g.created), lastUpdated = iso(g.lastUpdated), lastMembershipUpdated = iso(g.lastMembershipUpdated),
    objectClass = json().array({ g.type == "APP_GROUP" and "okta:windows_security_principal" or "okta:user_group" }),
    type = g.type, profile = { name = g.name, description = g.description },
    _links = {
      logo = json().array({ { name = "medium", href = b .. "/img/logos/groups/okta-medium.png", type = "image/png" },
                            { name = "large", href = b .. "/img/logos/groups/okta-large.png", type = "image/png" } }),
      users = { href = b .. "/api/v1/groups/" .. g.id .. "/users" },
      apps = { href = b .. "/api/v1/groups/" .. g.id .. "/apps" },
    },
  }
end

-- A role assignment; the assignee is the user, or the group it is held through (assignmentType GROUP).
function Okta:role_json(ra)
  local assignee = ra.group and ("/api/v1/groups/" .. ra.group) or ("/api/v1/users/" .. ra.user)
  return { id = ra.id, label = ra.label, type = ra.type, status = ra.status, created = iso(ra.created),
           lastUpdated = iso(ra.lastUpdated), assignmentType = ra.assignmentType,
           _links = { assignee = { href = self.base_url .. assignee } } }
end


function Okta:h_user_roles(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local out = {}
  for _, ra in ipairs(self.state.roles[u.id] or {}) do out[#out + 1] = self:role_json(ra) end
  -- a user's roles include those held through the groups they are in (StandardRolesListResponse)
  for _, g in ipairs(self.state.groups) do
    if g.members[u.id] then
      for _, ra in ipairs(self.state.group_roles[g.id] or {}) do out[#out + 1] = self:role_json(ra) end
    end
  end
  return 200, json().array(out)
end

function Okta:h_delete_role(req)
  local u = self:find_user(req.params.id)
  if not u then return self:not_found("User", req.params.id) end
  local l = self.state.roles[u.id] or {}
  for i, ra in ipairs(l) do
    if ra.id == req.params.rid then
      table.remove(l, i)
      self:gov_event(req, "user.account.privilege.revoke", user_target(u))
      return 204, ""
    end
  end
  return self:not_found("RoleAssignment", req.params.rid)
end

-- The users assigned a role themselves; the holders through a group are found through the groups' roles.
-- Pages through _links.next in the body (RoleAssignedUsers), without a Link header.
function Okta:h_assignees(req)
  local users = {}
  for _, u in ipairs(self.state.users) do
    if self.state.roles[u.id] and #self.state.roles[u.id] > 0 then users[#users + 1] = u end
  end
  local limit = get_limit(req.query, 100, 200)
  if not limit then return self:err("E0000001", "Api validation failed: limit") end
  local page, nxt = page_after(users, req.query.after, limit)
  local vals = {}
  for i, u in ipairs(page) do
    vals[i] = { id = u.id, orn = "orn:okta:directory:" .. self.orgid .. ":users:" .. u.id,
                _links = { self = { href = self.base_url .. "/api/v1/users/" .. u.id } } }
  end
  local body = { value = json().array(vals), _links = {} }
  if nxt then
    body._links.next = { href = self.base_url .. "/api/v1/iam/assignees/users?" .. T.qs{ { "after", nxt }, { "limit", tostring(limit) } } }
  end
  return 200, body
end

function Okta:h_list_groups(req)
  local q = req.query
  local sel = {}
  local extra = {}
  if q.q and q.q ~= "" then
    local p = q.q:lower()
    for _, g in ipairs(self.state.groups) do if g.name:lower():sub(1, #p) == p then sel[#sel + 1] = g end end
    extra[#extra + 1] = { "q", q.q }
  elseif (q.filter and q.filter ~= "") or (q.search and q.search ~= "") then
    local expr = (q.search and q.search ~= "") and q.search or q.filter
    local f, err = T.scim_filter(expr)
    if not f then return self:err("E0000031", "Invalid search criteria.", 400, { { errorSummary = err } }) end
    for _, g in ipairs(self.state.groups) do if f(self:group_json(g)) then sel[#sel + 1] = g end end
    extra[#extra + 1] = { (q.search and q.search ~= "") and "search" or "filter", expr }
  else
    sel = self.state.groups
  end
  return self:paged(req, "/api/v1/groups", sel, 10000, 10000, function(g) return self:group_json(g) end, extra)
end

function Okta:h_get_group(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  return 200, self:group_json(g)
end

function Okta:h_group_users(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  local sel = {}
  for _, u in ipairs(self.state.users) do if g.members[u.id] then sel[#sel + 1] = u end end
  return self:paged(req, "/api/v1/groups/" .. g.id .. "/users", sel, 1000, 1000, function(u) return self:user_json(u) end)
end

function Okta:h_group_member(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  local u = self:find_user(req.params.uid)
  if not u then return self:not_found("User", req.params.uid) end
  local tgt = user_target(u)
  tgt[2] = { id = g.id, type = "UserGroup", alternateId = "unknown", displayName = g.name, detailEntry = jnull() }
  if req.method == "DELETE" then
    if g.type == "BUILT_IN" then return self:err("E0000006") end
    if g.members[u.id] then
      g.members[u.id] = nil
      g.lastMembershipUpdated = self:now_ms()
      self:gov_event(req, "group.user_membership.remove", tgt)
    end
  else
    if not g.members[u.id] then
      g.members[u.id] = true
      g.lastMembershipUpdated = self:now_ms()
      self:gov_event(req, "group.user_membership.add", tgt)
    end
  end
  return 204, ""
end

function Okta:h_group_roles(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  local out = {}
  for _, ra in ipairs(self.state.group_roles[g.id] or {}) do out[#out + 1] = self:role_json(ra) end
  return 200, json().array(out)
end

function Okta:h_group_role_delete(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:not_found("UserGroup", req.params.gid) end
  local l = self.state.group_roles[g.id] or {}
  for i, ra in ipairs(l) do
    if ra.id == req.params.rid then
      table.remove(l, i)
      self:gov_event(req, "group.privilege.revoke", { { id = g.id, type = "UserGroup", alternateId = "unknown",
                                                         displayName = g.name, detailEntry = jnull() } })
      return 204, ""
    end
  end
  return self:not_found("RoleAssignment", req.params.rid)
end

local G, R = { scope = "okta.groups" }, { scope = "okta.roles" }
return {
  { "GET", "/api/v1/users/:id/roles", Okta.h_user_roles, R },
  { "DELETE", "/api/v1/users/:id/roles/:rid", Okta.h_delete_role, R },
  { "GET", "/api/v1/groups", Okta.h_list_groups, G },
  { "GET", "/api/v1/groups/:gid", Okta.h_get_group, G },
  { "GET", "/api/v1/groups/:gid/users", Okta.h_group_users, G },
  { "PUT", "/api/v1/groups/:gid/users/:uid", Okta.h_group_member, G },
  { "DELETE", "/api/v1/groups/:gid/users/:uid", Okta.h_group_member, G },
  { "GET", "/api/v1/groups/:gid/roles", Okta.h_group_roles, R },
  { "DELETE", "/api/v1/groups/:gid/roles/:rid", Okta.h_group_role_delete, R },
  { "GET", "/api/v1/iam/assignees/users", Okta.h_assignees, R },
}
