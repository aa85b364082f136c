-- sandbox/box/render.lua — Box's JSON objects: users, groups, memberships, items (mini and full),
-- shared links, collaborations.
local C = require "sandbox.box.common"
local Box = C.Box
local json, jnull, btime, narrow = C.json, C.jnull, C.btime, C.narrow


function Box:user_mini(u)
  if not u then return { type = "user", id = "2", name = "Anonymous User", login = "" } end
  return { type = "user", id = u.id, name = u.name, login = u.login }
end

local USER_DEFAULT = { "type", "id", "name", "login", "created_at", "modified_at", "language", "timezone", "space_amount",
  "space_used", "max_upload_size", "status", "job_title", "phone", "address", "avatar_url", "notification_email" }

function Box:user_full(u)
  return { type = "user", id = u.id, name = u.name, login = u.login, created_at = btime(u.created), modified_at = btime(u.modified or u.created),
           language = "en", timezone = "America/Los_Angeles", space_amount = 11345156112, space_used = 1237009 * (tonumber(u.id:sub(-2)) or 1),
           max_upload_size = 2147483648, status = u.status, job_title = u.job_title or "", phone = "", address = "",
           avatar_url = "https://app.box.com/api/avatar/large/" .. u.id, notification_email = jnull(),
           role = u.role, tracking_codes = json().array({}), can_see_managed_users = u.role ~= "user", is_sync_enabled = true,
           is_external_collab_restricted = false, is_exempt_from_device_limits = false, is_exempt_from_login_verification = false,
           enterprise = u.external and jnull() or { id = self.enterprise_id, type = "enterprise", name = self.enterprise_name },
           my_tags = json().array({}), hostname = "https://acme.app.box.com/", is_platform_access_only = false, external_app_user_id = jnull() }
end

function Box:render_user(u, fields)
  local full = self:user_full(u)
  if fields and fields ~= "" then return narrow(full, { "type", "id", "name", "login" }, fields) end
  local out = {}
  for _, k in ipairs(USER_DEFAULT) do out[k] = full[k] end
  return out
end

function Box:group_json(g)
  return { type = "group", id = g.id, name = g.name, group_type = "managed_group", created_at = btime(g.created),
           modified_at = btime(g.created), provenance = "", external_sync_identifier = jnull(), description = g.description,
           invitability_level = "admins_only", member_viewability_level = "admins_only" }
end

function Box:membership_json(m)
  local u, g = self.state.by_id[m.user], nil
  for _, x in ipairs(self.state.groups) do if x.id == m.group then g = x end end
  return { type = "group_membership", id = m.id, user = self:user_mini(u),
           group = { type = "group", id = g.id, name = g.name, group_type = "managed_group" },
           role = m.role, created_at = btime(m.created), modified_at = btime(m.created) }
end

function Box:item_mini(it)
  local j = { type = it.type, id = it.id, etag = it.id == "0" and jnull() or tostring(it.seq),
              sequence_id = it.id == "0" and jnull() or tostring(it.seq), name = it.name }
  if it.type == "file" then
    j.sha1 = it.sha1
    j.file_version = { type = "file_version", id = it.version_id, sha1 = it.sha1 }
  end
  return j
end

function Box:link_json(l)
  if not l then return jnull() end
  return { url = l.url, download_url = l.download_url, vanity_url = jnull(), vanity_name = jnull(), access = l.access,
           effective_access = l.access, effective_permission = l.permission or "can_download",
           unshared_at = l.unshared_at and btime(l.unshared_at) or jnull(), is_password_enabled = l.password and true or false,
           permissions = { can_download = true, can_preview = true, can_edit = false }, download_count = 0, preview_count = 0 }
end

function Box:item_full(it)
  local st = self.state
  local path = {}
  local p = it.parent and st.items[it.parent]
  while p do table.insert(path, 1, self:item_mini(p)); p = p.parent and st.items[p.parent] end
  local owner = st.by_id[it.owner]
  local trashed = self:in_trash(it)
  local j = self:item_mini(it)
  j.description = ""
  j.size = it.size
  j.path_collection = { total_count = #path, entries = json().array(path) }
  j.created_at = btime(it.created); j.modified_at = btime(it.modified)
  j.trashed_at = it.trashed_at and btime(it.trashed_at) or jnull()
  j.purged_at = it.trashed_at and btime(it.trashed_at + 30 * 86400000) or jnull()
  j.content_created_at = btime(it.created); j.content_modified_at = btime(it.modified)
  j.created_by = self:user_mini(owner); j.modified_by = self:user_mini(st.by_id[it.modified_by or it.owner] or owner)
  j.owned_by = self:user_mini(owner)
  j.shared_link = self:link_json(it.link)
  j.parent = it.parent and self:item_mini(st.items[it.parent]) or jnull()
  j.item_status = trashed and "trashed" or "active"
  j.has_collaborations = #self:collabs_of(it.id) > 0
  j.is_externally_owned = false
  if it.type == "file" then
    j.extension = it.name:match("%.(%w+)$") or ""
    j.version_number = tostring(it.versions or 1)
    j.lock = jnull()
  else
    j.folder_upload_email = jnull()
    j.item_collection = nil
  end
  return j
end

local ITEM_MINI = { "type", "id", "etag", "sequence_id", "name", "sha1", "file_version" }
function Box:render_item(it, fields, default_mini)
  local full = self:item_full(it)
  if fields and fields ~= "" then return narrow(full, ITEM_MINI, fields) end
  if default_mini then return self:item_mini(it) end
  return full
end

function Box:collab_json(c)
  local st = self.state
  local it = st.items[c.item]
  local who
  if c.group then
    for _, g in ipairs(st.groups) do if g.id == c.who then who = { type = "group", id = g.id, name = g.name, group_type = "managed_group" } end end
  else
    local u = st.by_id[c.who]
    who = u and { type = "user", id = u.id, name = u.name, login = u.login, is_active = u.status == "active" }
  end
  return { type = "collaboration", id = c.id, item = it and self:item_mini(it) or jnull(), accessible_by = who or jnull(),
           invite_email = jnull(), role = c.role, expires_at = c.expires and btime(c.expires) or jnull(), is_access_only = false,
           status = c.status, acknowledged_at = btime(c.created), created_by = self:user_mini(st.by_id[c.created_by]),
           created_at = btime(c.created), modified_at = btime(c.created) }
end

return Box
