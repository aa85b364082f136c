-- sandbox/dropbox/sharing.lua — shared links (list_shared_links with its cursor, revoke_shared_link) and the
-- members of shared folders (list_folder_members with /continue, remove_folder_member as an async job), §7-§8.
local T = require "sandbox.tenant"
local D = require "sandbox.dropbox.common"
local json = D.json
local R = D.ROUTES

local function arr(t) return json().array(t) end

-- The view path of an entry for a caller, if they see it.
function D:view_path(who, e)
  for _, v in ipairs(self:view(who, true)) do if v.e == e then return v.path end end
end

function D:link_json(who, l)
  local e = self.by_entry[l.entry]
  local creator = self.by_mid[l.creator]
  local vis = { [".tag"] = l.visibility }
  local o = {
    [".tag"] = e.folder and "folder" or "file", url = l.url, id = e.id, name = e.name,
    expires = l.expires and T.iso_s(l.expires // 1000) or nil,
    link_permissions = { resolved_visibility = vis, requested_visibility = T.deep(vis), can_revoke = who.member.id == l.creator,
                         revoke_failure_reason = who.member.id ~= l.creator and { [".tag"] = "owner_only" } or nil,
                         allow_download = true, can_set_expiry = true, can_remove_expiry = true, allow_comments = true },
    team_member_info = { team_info = { id = self.team_id, name = self.team_name }, display_name = creator.given .. " " .. creator.surname,
                         member_id = creator.id },
  }
  local p = self:view_path(who, e)
  if p then o.path_lower = p:lower() end
  if not e.folder then
    o.client_modified, o.server_modified = T.iso_s(e.modified // 1000), T.iso_s(e.modified // 1000)
    o.rev, o.size = e.rev, e.size
  end
  return o
end

-- without a path: the caller's own links; with one: the links of that item (and, unless direct_only, of
-- the folders above it)
R["sharing/list_shared_links"] = { auth = "user", scope = "sharing.read", admin = "whole_team", fn = function(self, req, arg)
  local who = req.who
  local c = { k = "links", o = 0 }
  if arg.cursor ~= nil then
    c = self:uncursor(arg.cursor)
    if not c or c.k ~= "links" then return self:fail { [".tag"] = "reset" } end
  elseif arg.path ~= nil then
    local v = type(arg.path) == "string" and arg.path ~= "" and self:resolve(who, arg.path)
    if not v or not v.e then return self:fail { [".tag"] = "path", path = { [".tag"] = "not_found" } } end
    c.entry, c.direct = v.e.id, arg.direct_only == true
  end
  local list = {}
  for _, l in ipairs(self.links) do
    local e = self.by_entry[l.entry]
    local ok = not l.revoked and not e.deleted
    if ok and c.entry then
      local target = self.by_entry[c.entry]
      ok = e == target or (not c.direct and e.folder and e.ns == target.ns and target.path:lower():sub(1, #e.path + 1) == e.path:lower() .. "/")
    elseif ok then
      ok = l.creator == who.member.id
    end
    if ok then list[#list + 1] = l end
  end
  local n = math.min(self.page_max or 200, 200)
  local out = {}
  for i = c.o + 1, math.min(#list, c.o + n) do out[#out + 1] = self:link_json(who, list[i]) end
  c.o = c.o + #out
  return 200, { links = arr(out), has_more = c.o < #list, cursor = self:cursor(c) }
end }

R["sharing/revoke_shared_link"] = { auth = "user", scope = "sharing.write", admin = "team_admin", write = true, fn = function(self, req, arg)
  if type(arg.url) ~= "string" then return self:bad_request(req, 'request body: missing required field "url"') end
  for _, l in ipairs(self.links) do
    if l.url == arg.url and not l.revoked then
      if l.creator ~= req.who.member.id then return self:fail { [".tag"] = "shared_link_access_denied" } end
      l.revoked = true
      local e = self.by_entry[l.entry]
      self:add_event("sharing", "shared_link_remove_expiry", req.who.member, nil, {}, { assets = { { [".tag"] = "file", display_name = e.name, file_id = e.id } } })
      return 200, "null"
    end
  end
  return self:fail { [".tag"] = "shared_link_not_found" }
end }

---------------------------------------------------------------------------------------------------
-- Shared-folder members
---------------------------------------------------------------------------------------------------
function D:folder_member_json(x)
  local access = { [".tag"] = x.access }
  if x.mid then
    local m = self.by_mid[x.mid]
    return { access_type = access, user = { account_id = m.account_id, email = m.email, display_name = m.given .. " " .. m.surname,
             same_team = true, team_member_id = m.id }, permissions = arr({}), is_inherited = false }
  end
  return { access_type = access, user = { account_id = "dbid:" .. T.b62(40, self.seed, "ext", x.email), email = x.email,
           display_name = x.email:match("^[^@]+"), same_team = false }, permissions = arr({}), is_inherited = false }
end

local function folder_members(self, req, arg)
  local c
  if arg.cursor ~= nil then
    c = self:uncursor(arg.cursor)
    if not c or c.k ~= "fm" then return self:fail { [".tag"] = "invalid_cursor" } end
  else
    local limit = arg.limit == nil and 1000 or math.tointeger(arg.limit)
    if not limit or limit < 1 or limit > 1000 then return self:bad_request(req, "request body: limit: value must be between 1 and 1000") end
    c = { k = "fm", ns = tostring(arg.shared_folder_id or ""), o = 0, n = math.min(limit, self.page_max or limit) }
  end
  local ns = self.ns_by_id[c.ns]
  if not ns or ns.type == "team_member_folder" then return self:fail { [".tag"] = "access_error", access_error = { [".tag"] = "invalid_id" } } end
  local who = req.who
  if not ((who.admin and who.mode == "whole_team") or self:reaches(who.member, ns)) then
    return self:fail { [".tag"] = "access_error", access_error = { [".tag"] = "no_permission" } }
  end
  local out = {}
  for i = c.o + 1, math.min(#ns.members, c.o + c.n) do out[#out + 1] = self:folder_member_json(ns.members[i]) end
  c.o = c.o + #out
  local more = c.o < #ns.members
  return 200, { users = arr(out), groups = arr({}), invitees = arr({}), cursor = more and self:cursor(c) or nil }
end
R["sharing/list_folder_members"] = { auth = "user", scope = "sharing.read", admin = "whole_team", fn = folder_members }
R["sharing/list_folder_members/continue"] = { auth = "user", scope = "sharing.read", admin = "whole_team", fn = folder_members }

R["sharing/remove_folder_member"] = { auth = "user", scope = "sharing.write", admin = "team_admin", write = true, fn = function(self, req, arg)
  local ns = self.ns_by_id[tostring(arg.shared_folder_id or "")]
  if not ns or ns.type == "team_member_folder" then return self:fail { [".tag"] = "access_error", access_error = { [".tag"] = "invalid_id" } } end
  local me
  for _, x in ipairs(ns.members) do if x.mid == req.who.member.id then me = x end end
  if not me or (me.access ~= "owner" and me.access ~= "editor") then
    return self:fail { [".tag"] = "access_error", access_error = { [".tag"] = "no_permission" } }
  end
  local sel = type(arg.member) == "table" and arg.member or {}
  for i, x in ipairs(ns.members) do
    local m = x.mid and self.by_mid[x.mid]
    local hit = (sel[".tag"] == "email" and (x.email == sel.email or (m and m.email == sel.email)))
      or (sel[".tag"] == "dropbox_id" and m and (m.account_id == sel.dropbox_id or m.id == sel.dropbox_id))
    if hit then
      if x.access == "owner" then return self:fail { [".tag"] = "member_error", member_error = { [".tag"] = "is_owner" } } end
      table.remove(ns.members, i)
      self.jobs = self.jobs or {}
      local job = "dbjid:" .. T.b62(40, self.seed, "job", #self.jobs)
      self.jobs[job] = true
      return 200, { [".tag"] = "async_job_id", async_job_id = job }
    end
  end
  return self:fail { [".tag"] = "member_error", member_error = { [".tag"] = "not_a_member" } }
end }

R["sharing/check_remove_member_job_status"] = { auth = "user", scope = "sharing.write", admin = "team_admin", fn = function(self, req, arg)
  if not (self.jobs or {})[arg.async_job_id or ""] then return self:fail { [".tag"] = "invalid_async_job_id" } end
  return 200, { [".tag"] = "complete" }
end }

return D
