-- sandbox/box/users.lua — users, groups, group memberships, session termination.
local C = require "sandbox.box.common"
local Box = C.Box
local json, narrow, body_of, is_admin = C.json, C.narrow, C.body_of, C.is_admin

function Box:h_users(req)
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local q = req.query
  local ty = q.user_type or "all"
  local list = {}
  local term = (q.filter_term or ""):lower()
  local function match(u) return term == "" or u.name:lower():sub(1, #term) == term or u.login:lower():sub(1, #term) == term end
  if ty == "all" or ty == "managed" then
    for _, u in ipairs(self.state.users) do if match(u) then list[#list + 1] = u end end
  end
  if (ty == "external" or ty == "all") and term ~= "" then
    for _, u in ipairs(self.state.externals) do if match(u) then list[#list + 1] = u end end
  end
  return self:paged(req, list, function(u) return self:render_user(u, q.fields) end)
end

function Box:h_user(req)
  local id = req.params.id == "me" and req.actor.id or req.params.id
  local u = self.state.by_id[id]
  if not u or u.external then return self:not_found("user") end
  if req.method == "GET" then return 200, self:render_user(u, req.query.fields) end
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  if req.method == "DELETE" then
    for i, x in ipairs(self.state.users) do if x == u then table.remove(self.state.users, i) end end
    self.state.by_id[u.id] = nil
    self:add_event("DELETE_USER", req.actor, u)
    return 204, ""
  end
  local b = body_of(req)
  if not b then return self:err(400, "bad_request", "Invalid JSON body") end
  local ST = { active = true, inactive = true, cannot_delete_edit = true, cannot_delete_edit_upload = true }
  if b.status ~= nil then
    if not ST[b.status] then return self:err(400, "bad_request", "Invalid value for 'status'", { errors = json().array({ { name = "status", reason = "invalid_parameter" } }) }) end
    if b.status ~= u.status then u.status = b.status; self:add_event("EDIT_USER", req.actor, u, { details = { status = b.status } }) end
  end
  if b.role ~= nil then
    if b.role ~= "coadmin" and b.role ~= "user" then return self:err(400, "bad_request", "Invalid value for 'role'") end
    if u.role == "admin" then return self:err(403, "access_denied_insufficient_permissions", "Cannot change the primary admin's role") end
    if b.role ~= u.role then u.role = b.role; self:add_event("CHANGE_ADMIN_ROLE", req.actor, u) end
  end
  if type(b.name) == "string" then u.name = b.name end
  u.modified = self:now_ms()
  return 200, self:render_user(u, req.query.fields)
end

function Box:h_terminate(req)
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  -- the spec's body: user_ids and user_logins, both required, arrays of strings; the 400s are its own
  local b = body_of(req)
  if not b then return self:err(400, "bad_request", "Supported payload format is JSON") end
  if type(b.user_ids) ~= "table" or type(b.user_logins) ~= "table" then
    return self:err(400, "bad_request", "user_ids and user_logins are required")
  end
  if #b.user_ids == 0 and #b.user_logins == 0 then return self:err(400, "bad_request", "Users can not be NULL or EMPTY") end
  local n = 0
  local want = {}
  for _, id in ipairs(b.user_ids) do
    if type(id) ~= "string" then return self:err(400, "bad_request", "User id format is string") end
    want[id] = true
  end
  for _, l in ipairs(b.user_logins) do if type(l) == "string" then want[l] = true end end
  for _, u in ipairs(self.state.users) do
    if want[u.id] or want[u.login] then
      n = n + 1
      for k, t in pairs(self.tokens) do if t.uid == u.id then self.tokens[k] = nil end end
      for k, t in pairs(self.refresh) do if t.uid == u.id then self.refresh[k] = nil end end
      self.terminated = self.terminated or {}
      self.terminated[u.id] = (self.terminated[u.id] or 0) + 1
      self:add_event("USER_SESSIONS_TERMINATED", req.actor, u)
    end
  end
  if n == 0 then return self:err(400, "bad_request", "No valid users were given") end
  return 202, { message = "Request is successful, please check the admin events for the status of the job" }
end

function Box:h_groups(req)
  return self:paged(req, self.state.groups, function(g) return narrow(self:group_json(g), { "type", "id", "name", "group_type" }, req.query.fields) end, true)
end

function Box:h_group_memberships(req)
  local list = {}
  for _, m in ipairs(self.state.memberships) do if m.group == req.params.id then list[#list + 1] = m end end
  local found = false
  for _, g in ipairs(self.state.groups) do if g.id == req.params.id then found = true end end
  if not found then return self:not_found("group") end
  return self:paged(req, list, function(m) return self:membership_json(m) end, true)
end

function Box:h_user_memberships(req)
  local list = {}
  for _, m in ipairs(self.state.memberships) do if m.user == req.params.id then list[#list + 1] = m end end
  return self:paged(req, list, function(m) return self:membership_json(m) end, true)
end

function Box:h_membership_delete(req)
  for i, m in ipairs(self.state.memberships) do
    if m.id == req.params.id then
      table.remove(self.state.memberships, i)
      self:add_event("GROUP_REMOVE_USER", req.actor, self.state.by_id[m.user])
      return 204, ""
    end
  end
  return self:not_found("group_membership")
end

return Box
