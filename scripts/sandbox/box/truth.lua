-- sandbox/box/truth.lua — ground truth for tests: what a complete, correct sync must find.
local C = require "sandbox.box.common"
local Box = C.Box

---------------------------------------------------------------------------------------------------
-- Ground truth and helpers for tests
---------------------------------------------------------------------------------------------------
function Box:find_file(id) return self.state.items[tostring(id)] end
function Box:file_content(id) local it = self.state.items[tostring(id)]; return it and it.content end
function Box:find_user(id) return self.state.by_id[tostring(id)] end

-- trashed itself or under a trashed folder
function Box:in_trash(it)
  while it do
    if it.trashed_at then return true end
    it = it.parent and self.state.items[it.parent]
  end
  return false
end

function Box:collabs_of(id)
  local out = {}
  for _, c in ipairs(self.state.collabs) do if c.item == id then out[#out + 1] = c end end
  return out
end

function Box:is_external_collab(c)
  if c.group then return false end
  local u = self.state.by_id[c.who]
  return u ~= nil and u.external == true
end

-- access level as the connector should compute it: own link and collaborations, plus those of ancestors
function Box:access_level(id)
  local it = self.state.items[tostring(id)]
  local level = 0
  local RANK = { private = 0, internal = 1, external = 2, public = 3 }
  while it do
    if it.link then
      local l = it.link.access == "open" and 3 or it.link.access == "company" and 1 or 0
      if l > level then level = l end
    end
    for _, c in ipairs(self:collabs_of(it.id)) do
      -- an uploader only adds: the content is not open to them
      local l = c.role == "uploader" and 0 or self:is_external_collab(c) and 2 or 1
      if l > level then level = l end
    end
    it = it.parent and self.state.items[it.parent]
  end
  for k, v in pairs(RANK) do if v == level then return k end end
end

-- path "/Finance/Reports 3/name.txt" (root excluded)
function Box:path_of(it)
  local parts = {}
  while it and it.id ~= "0" do table.insert(parts, 1, it.name); it = it.parent and self.state.items[it.parent] end
  return "/" .. table.concat(parts, "/")
end

-- Is `it` among children(fid, trashed, viewer)?  With a viewer, folder 0 is that user's own root: what
-- they own at the top, and the topmost items others collaborated with them (Box shows those in the
-- collaborator's root).
function Box:listed_in(it, fid, trashed, viewer)
  if it.id == "0" or (it.trashed_at and not trashed) then return false end
  if not (fid == "0" and viewer) then return it.parent == fid end
  if it.parent == "0" and it.owner == viewer.id then return true end
  return not self:in_trash(it) and (it.parent == "0" or not self:reaches(viewer, self.state.items[it.parent]))
    and self:reaches(viewer, it)
end

-- Box's order of a folder's items: folders first, then by name
function Box.before(a, b)
  if a.type ~= b.type then return a.type == "folder" end
  if a.name:lower() ~= b.name:lower() then return a.name:lower() < b.name:lower() end
  return a.id < b.id
end

-- children(fid [, trashed [, viewer]]), in Box's order
function Box:children(fid, trashed, viewer)
  local out = {}
  for _, id in ipairs(self.state.order) do
    local it = self.state.items[id]
    if self:listed_in(it, fid, trashed, viewer) then out[#out + 1] = it end
  end
  table.sort(out, Box.before)
  return out
end

-- count(what): users (managed), active_users, inactive_users, admins (admin+coadmin), groups, memberships,
-- files / folders (live, root excluded), trashed (top-level trashed items, what the trash lists),
-- collaborations and shared_links (on live items), events, sensitive (live files with seeded content)
function Box:count(what)
  local st = self.state
  local n = 0
  if what == "users" then return #st.users
  elseif what == "active_users" or what == "inactive_users" then
    for _, u in ipairs(st.users) do if u.status == what:match("^(%a+)_") then n = n + 1 end end
    return n
  elseif what == "admins" then
    for _, u in ipairs(st.users) do if u.role == "admin" or u.role == "coadmin" then n = n + 1 end end
    return n
  elseif what == "groups" then return #st.groups
  elseif what == "memberships" then return #st.memberships
  elseif what == "events" then return #st.events
  elseif what == "webhooks" then return #st.webhooks
  end
  for _, id in ipairs(st.order) do
    local it = st.items[id]
    local live = id ~= "0" and not self:in_trash(it)
    if what == "files" and live and it.type == "file" then n = n + 1
    elseif what == "folders" and live and it.type == "folder" then n = n + 1
    elseif what == "trashed" and it.trashed_at and not self:in_trash(st.items[it.parent]) then n = n + 1
    elseif what == "shared_links" and live and it.link then n = n + 1
    elseif what == "collaborations" and live then n = n + #self:collabs_of(id)
    elseif what == "sensitive" and live and it.sensitive and #it.sensitive > 0 then n = n + 1
    elseif not ({ files = 1, folders = 1, trashed = 1, shared_links = 1, collaborations = 1, sensitive = 1 })[what] then
      error("count: unknown " .. tostring(what))
    end
  end
  return n
end

-- Ground truth by entity, as the ids a complete sync keys rows by ("user:role" privileges; membership
-- ids; items and top-level trashed items, root excluded; "collab:id" and "link:item" permissions of live
-- items; event ids): the kill suite compares stores with it.  External users are not managed users.
function Box:truth()
  local st = self.state
  local t = { users = {}, groups = {}, group_members = {}, privileges = {}, files = {}, file_permissions = {}, activities = {} }
  for _, u in ipairs(st.users) do
    if not u.external then
      t.users[#t.users + 1] = u.id
      if u.role == "admin" or u.role == "coadmin" then t.privileges[#t.privileges + 1] = u.id .. ":" .. u.role end
    end
  end
  for _, g in ipairs(st.groups) do t.groups[#t.groups + 1] = g.id end
  for _, m in ipairs(st.memberships) do t.group_members[#t.group_members + 1] = m.id end
  for _, id in ipairs(st.order) do
    local it = st.items[id]
    if id ~= "0" and not self:in_trash(it) then
      t.files[#t.files + 1] = id
      for _, c in ipairs(self:collabs_of(id)) do t.file_permissions[#t.file_permissions + 1] = "collab:" .. c.id end
      if it.link then t.file_permissions[#t.file_permissions + 1] = "link:" .. id end
    elseif it.trashed_at and not self:in_trash(st.items[it.parent]) then
      t.files[#t.files + 1] = id
    end
  end
  for _, e in ipairs(st.events) do t.activities[#t.activities + 1] = e.id end
  return t
end

-- ids of live files seeded with a kind of sensitive content ("card", "ssn", "aws", "private_key")
function Box:sensitive_files(kind)
  local out = {}
  for _, id in ipairs(self.state.order) do
    local it = self.state.items[id]
    if it.type == "file" and not self:in_trash(it) then
      for _, k in ipairs(it.sensitive or {}) do if k == kind or kind == nil then out[#out + 1] = id; break end end
    end
  end
  return out
end

return Box
