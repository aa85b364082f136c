-- sandbox/google/directory.lua — Admin SDK Directory API (admin/directory/v1): users (list with
-- customer|domain, showDeleted, maxResults ≤ 500; get; patch suspended / changePasswordAtNextLogin;
-- signOut), OAuth tokens per user (list, delete), groups and members (≤ 200 a page), admin roles and role
-- assignments (delete).  Only an administrator (the token's sub) may call it.
local C = require "sandbox.google.common"
local W = require("sandbox.google.workspace").W
local json = C.json

local USER_R = { "admin.directory.user.readonly", "admin.directory.user" }
local USER_W = { "admin.directory.user" }
local SECURITY = { "admin.directory.user.security" }
local GROUP_R = { "admin.directory.group.readonly", "admin.directory.group" }
local MEMBER_R = { "admin.directory.group.member.readonly", "admin.directory.group.member", "admin.directory.group.readonly", "admin.directory.group" }
local ROLE_R = { "admin.directory.rolemanagement.readonly", "admin.directory.rolemanagement" }
local ROLE_W = { "admin.directory.rolemanagement" }

-- Directory calls act as an administrator: a super admin here (delegated admins would need the
-- privileges of each call; the connector is documented to impersonate a super admin).
local function admin_only(self, req)
  local u = self:actor(req)
  if not u or not u.isAdmin or u.suspended then
    return self:err(403, "forbidden", "Not Authorized to access this resource/api")
  end
end

local function customer_ok(self, req, customer)
  if customer == "my_customer" or customer == self.customer_id then return true end
end

local function public_user(u)
  local out = {}
  for k, v in pairs(u) do
    if k ~= "tokens" and k ~= "root" and k ~= "folder" and k ~= "sessions" then out[k] = v end
  end
  if not u.suspended then out.suspensionReason = nil end
  return out
end

local function find_user(self, key)
  key = tostring(key or "")
  return self.state.by_id[key] or self.state.by_email[key:lower()]
end

function W:h_users(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local q = req.query
  if not q.customer and not q.domain then return self:bad("Bad Request", "customer") end
  if q.customer and not customer_ok(self, req, q.customer) then return self:err(400, "badRequest", "Bad Request") end
  if q.domain and q.domain ~= self.domain then return self:err(403, "forbidden", "Not Authorized to access this resource/api") end
  local list = {}
  if q.showDeleted == "true" then
    for _, u in ipairs(self.state.deleted) do list[#list + 1] = public_user(u) end
  else
    for _, u in ipairs(self.state.users) do list[#list + 1] = public_user(u) end
  end
  local page, nxt, body = self:paged(req, list, 500, 100)
  if not page then return nxt, body end
  local out = { kind = "admin#directory#users", etag = '"e1"', users = json().array(page), nextPageToken = nxt }
  local r, st, b = self:fields(req, out)
  if not r then return st, b end
  return 200, r
end

function W:h_user(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local u = find_user(self, req.params.key)
  if not u then return self:not_found("userKey") end
  if req.method == "PATCH" or req.method == "PUT" then
    if not C.has_scope(req.token, USER_W) then return self:insufficient_scopes() end
    local b = C.body_of(req)
    if not b then return self:bad("Invalid JSON payload received.") end
    if b.suspended ~= nil then
      if type(b.suspended) ~= "boolean" then return self:bad("Invalid value for: suspended") end
      if u == self.admin and b.suspended then return self:err(412, "conditionNotMet", "Cannot suspend the only super admin.") end
      u.suspended = b.suspended
      u.suspensionReason = b.suspended and "ADMIN" or nil
      self:add_activity("admin", self.admin, { name = "SUSPEND_USER", lag = 0 })
    end
    if b.changePasswordAtNextLogin ~= nil then u.changePasswordAtNextLogin = b.changePasswordAtNextLogin == true end
  end
  return 200, public_user(u)
end

function W:h_signout(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local u = find_user(self, req.params.key)
  if not u then return self:not_found("userKey") end
  u.sessions = 0
  u.signed_out = (u.signed_out or 0) + 1
  return 204, ""
end

function W:h_tokens(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local u = find_user(self, req.params.key)
  if not u then return self:not_found("userKey") end
  return 200, { kind = "admin#directory#tokenList", etag = '"t1"', items = json().array(C.json().decode(C.json().encode(u.tokens))) }
end

function W:h_token_delete(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local u = find_user(self, req.params.key)
  if not u then return self:not_found("userKey") end
  for i, t in ipairs(u.tokens) do
    if t.clientId == req.params.client then
      table.remove(u.tokens, i)
      self:add_activity("token", u, { name = "revoke", lag = 0 })
      return 204, ""
    end
  end
  return self:not_found("clientId")
end

function W:h_groups(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local q = req.query
  if not q.customer and not q.domain and not q.userKey then return self:bad("Bad Request", "customer") end
  if q.customer and not customer_ok(self, req, q.customer) then return self:err(400, "badRequest", "Bad Request") end
  local list = {}
  for _, g in ipairs(self.state.groups) do
    list[#list + 1] = { kind = g.kind, id = g.id, etag = '"g"', email = g.email, name = g.name, description = g.description,
                        directMembersCount = tostring(#g.members), adminCreated = g.adminCreated }
  end
  local page, nxt, body = self:paged(req, list, 200, 200)
  if not page then return nxt, body end
  return 200, { kind = "admin#directory#groups", etag = '"e2"', groups = json().array(page), nextPageToken = nxt }
end

function W:h_members(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  local g = self.state.groups_by[req.params.key]
  if not g then return self:not_found("groupKey") end
  local list = {}
  for _, m in ipairs(g.members) do
    local u = self.state.by_id[m.id]
    local x = C.json().decode(C.json().encode(m))
    if u then x.status = u.suspended and "SUSPENDED" or "ACTIVE" end
    list[#list + 1] = x
  end
  local page, nxt, body = self:paged(req, list, 200, 200)
  if not page then return nxt, body end
  return 200, { kind = "admin#directory#members", etag = '"e3"', members = json().array(page), nextPageToken = nxt }
end

function W:h_roles(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  if not customer_ok(self, req, req.params.customer) then return self:err(400, "badRequest", "Bad Request") end
  local page, nxt, body = self:paged(req, self.state.roles, 100, 100)
  if not page then return nxt, body end
  return 200, { kind = "admin#directory#roles", etag = '"e4"', items = json().array(page), nextPageToken = nxt }
end

function W:h_assignments(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  if not customer_ok(self, req, req.params.customer) then return self:err(400, "badRequest", "Bad Request") end
  local q = req.query
  if q.includeIndirectRoleAssignments == "true" and not q.userKey then
    return self:bad("includeIndirectRoleAssignments requires userKey", "includeIndirectRoleAssignments")
  end
  local list = {}
  for _, a in ipairs(self.state.assignments) do
    if (not q.roleId or q.roleId == a.roleId) and (not q.userKey or a.assignedTo == (find_user(self, q.userKey) or {}).id) then
      list[#list + 1] = a
    end
  end
  local page, nxt, body = self:paged(req, list, 200, 100)
  if not page then return nxt, body end
  return 200, { kind = "admin#directory#roleAssignments", etag = '"e5"', items = json().array(page), nextPageToken = nxt }
end

function W:h_assignment_delete(req)
  local est, ebody = admin_only(self, req)
  if est then return est, ebody end
  for i, a in ipairs(self.state.assignments) do
    if a.roleAssignmentId == req.params.id then
      table.remove(self.state.assignments, i)
      return 204, ""
    end
  end
  return self:not_found("roleAssignmentId")
end

local P = "/admin/directory/v1"
return {
  { "GET", P .. "/users", W.h_users, { scopes = USER_R } },
  { "GET", P .. "/users/:key", W.h_user, { scopes = USER_R } },
  { "PATCH", P .. "/users/:key", W.h_user, { scopes = USER_W } },
  { "PUT", P .. "/users/:key", W.h_user, { scopes = USER_W } },
  { "POST", P .. "/users/:key/signOut", W.h_signout, { scopes = SECURITY } },
  { "GET", P .. "/users/:key/tokens", W.h_tokens, { scopes = SECURITY } },
  { "DELETE", P .. "/users/:key/tokens/:client", W.h_token_delete, { scopes = SECURITY } },
  { "GET", P .. "/groups", W.h_groups, { scopes = GROUP_R } },
  { "GET", P .. "/groups/:key/members", W.h_members, { scopes = MEMBER_R } },
  { "GET", P .. "/customer/:customer/roles", W.h_roles, { scopes = ROLE_R } },
  { "GET", P .. "/customer/:customer/roleassignments", W.h_assignments, { scopes = ROLE_R } },
  { "DELETE", P .. "/customer/:customer/roleassignments/:id", W.h_assignment_delete, { scopes = ROLE_W } },
}
