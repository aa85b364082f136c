-- sandbox/dropbox/team.lua — the team routes (auth "team", §3-§6): members (list_v2, get_info_v2, suspend,
-- unsuspend), groups and their members, namespaces, team_log/get_events with its cursor, device sessions
-- and linked apps, the authenticated admin.
local T = require "sandbox.tenant"
local D = require "sandbox.dropbox.common"
local json = D.json
local R = D.ROUTES

local function arr(t) return json().array(t) end

-- A listing by cursor: the first call's limit (lo..hi, default), its cursor kept for /continue (bound to
-- the listing `key`).  -> 200, {[field] = items, cursor, has_more}
function D:listing(req, arg, list, render, field, key, lim)
  local offset, limit
  if arg.cursor ~= nil then
    local c = self:uncursor(arg.cursor)
    if not c or c.k ~= key then return self:fail { [".tag"] = "invalid_cursor" } end
    offset, limit = c.o, c.n
  else
    limit = arg.limit == nil and lim.default or math.tointeger(arg.limit)
    if not limit or limit < 1 or limit > lim.max then
      return self:bad_request(req, ('request body: limit: value must be between 1 and %d'):format(lim.max))
    end
    if self.page_max and limit > self.page_max then limit = self.page_max end
    offset = 0
  end
  local out = {}
  for i = offset + 1, math.min(#list, offset + limit) do out[#out + 1] = render(list[i]) end
  local nxt = offset + #out
  return 200, { [field] = arr(out), cursor = self:cursor { k = key, o = nxt, n = limit }, has_more = nxt < #list }
end

---------------------------------------------------------------------------------------------------
-- Members (§3)
---------------------------------------------------------------------------------------------------
function D:profile(m)
  local ms = self.t0_ms
  local status = { [".tag"] = m.status }
  if m.status == "removed" then status.is_recoverable, status.is_disconnected = true, false end
  return {
    team_member_id = m.id, account_id = m.account_id, external_id = m.external_id, email = m.email, email_verified = m.status ~= "invited",
    secondary_emails = arr({}), status = status,
    name = { given_name = m.given, surname = m.surname, familiar_name = m.given, display_name = m.given .. " " .. m.surname,
             abbreviated_name = m.given:sub(1, 1) .. m.surname:sub(1, 1) },
    membership_type = { [".tag"] = "full" }, groups = arr(T.deep(m.groups)),
    invited_on = T.iso_s((m.joined - 86400000) // 1000), joined_on = m.status ~= "invited" and T.iso_s(m.joined // 1000) or nil,
    suspended_on = m.status == "suspended" and T.iso_s((m.suspended_at or ms) // 1000) or nil,
    member_folder_id = m.ns, root_folder_id = m.root_ns,
  }
end
function D:member_info(m)
  local roles = {}
  for _, r in ipairs(m.roles) do roles[#roles + 1] = T.deep(r) end
  return { profile = self:profile(m), roles = arr(roles) }
end

local function members_list(self, req, arg)
  -- the cursor remembers whether removed members are listed
  local key = "members:" .. tostring(arg.include_removed == true)
  if arg.cursor ~= nil then
    key = (self:uncursor(arg.cursor) or {}).k
    if not tostring(key):match("^members:") then return self:fail { [".tag"] = "invalid_cursor" } end
  end
  local list = {}
  for _, m in ipairs(self.members) do
    if m.status ~= "removed" or key == "members:true" then list[#list + 1] = m end
  end
  return self:listing(req, arg, list, function(m) return self:member_info(m) end, "members", key, { default = 1000, max = 1000 })
end
R["team/members/list_v2"] = { auth = "team", scope = "members.read", fn = members_list }
R["team/members/list/continue_v2"] = { auth = "team", scope = "members.read", fn = function(self, req, arg)
  if type(arg.cursor) ~= "string" then return self:bad_request(req, 'request body: missing required field "cursor"') end
  return members_list(self, req, arg)
end }

-- UserSelectorArg -> member | nil
function D:select(sel)
  if type(sel) ~= "table" then return nil end
  local tag = sel[".tag"]
  for _, m in ipairs(self.members) do
    if (tag == "team_member_id" and m.id == sel.team_member_id) or (tag == "email" and m.email == sel.email)
       or (tag == "external_id" and m.external_id and m.external_id == sel.external_id) then return m end
  end
end

R["team/members/get_info_v2"] = { auth = "team", scope = "members.read", fn = function(self, req, arg)
  if type(arg.members) ~= "table" then return self:bad_request(req, 'request body: missing required field "members"') end
  local out = {}
  for _, sel in ipairs(arg.members) do
    local m = self:select(sel)
    if m then
      local info = self:member_info(m)
      out[#out + 1] = { [".tag"] = "member_info", profile = info.profile, roles = info.roles }
    else
      local k = sel[".tag"] or "team_member_id"
      out[#out + 1] = { [".tag"] = "id_not_found", id_not_found = sel[k] }
    end
  end
  return 200, { members_info = arr(out) }
end }

R["team/token/get_authenticated_admin"] = { auth = "team", scope = "team_info.read", fn = function(self)
  return 200, { admin_profile = self:profile(self.admin) }
end }

-- suspend (wipe_data defaults to true in Dropbox's reference: the caller must say false to keep the data)
R["team/members/suspend"] = { auth = "team", scope = "members.write", write = true, fn = function(self, req, arg)
  local m = self:select(arg.user)
  if not m then return self:fail { [".tag"] = "user_not_found" } end
  if m.status == "removed" then return self:fail { [".tag"] = "user_not_in_team" } end
  if m.status ~= "active" then return self:fail { [".tag"] = "suspend_inactive_user" } end
  if self:is_admin(m) then
    local admins = 0
    for _, x in ipairs(self.members) do if self:is_admin(x) then admins = admins + 1 end end
    if admins == 1 then return self:fail { [".tag"] = "suspend_last_admin" } end
  end
  m.status, m.suspended_at, m.wiped = "suspended", self:now_ms(), arg.wipe_data ~= false
  self:add_event("members", "member_change_status", self.admin, m, { new_value = { [".tag"] = "suspended" }, previous_value = { [".tag"] = "active" } })
  return 200, "null"
end }
R["team/members/unsuspend"] = { auth = "team", scope = "members.write", write = true, fn = function(self, req, arg)
  local m = self:select(arg.user)
  if not m then return self:fail { [".tag"] = "user_not_found" } end
  if m.status ~= "suspended" then return self:fail { [".tag"] = "unsuspend_non_suspended_member" } end
  m.status, m.suspended_at = "active", nil
  self:add_event("members", "member_change_status", self.admin, m, { new_value = { [".tag"] = "active" }, previous_value = { [".tag"] = "suspended" } })
  return 200, "null"
end }

---------------------------------------------------------------------------------------------------
-- Groups (§4)
---------------------------------------------------------------------------------------------------
local function groups_list(self, req, arg)
  return self:listing(req, arg, self.groups, function(g)
    return { group_name = g.name, group_id = g.id, member_count = #g.members, group_management_type = { [".tag"] = g.mtype } }
  end, "groups", "groups", { default = 1000, max = 1000 })
end
R["team/groups/list"] = { auth = "team", scope = "groups.read", fn = groups_list }
R["team/groups/list/continue"] = { auth = "team", scope = "groups.read", fn = groups_list }

local function group_members(self, req, arg)
  local gid = arg.cursor and (self:uncursor(arg.cursor) or {}).g or (type(arg.group) == "table" and arg.group.group_id)
  local g
  for _, x in ipairs(self.groups) do if x.id == gid then g = x end end
  if not g then return self:fail { [".tag"] = "group_not_found" } end
  local status, body = self:listing(req, arg, g.members, function(x)
    local m = self.by_mid[x.mid]
    local p = self:profile(m)
    return { profile = { team_member_id = p.team_member_id, account_id = p.account_id, email = p.email, email_verified = p.email_verified,
                         status = p.status, name = p.name, membership_type = p.membership_type, joined_on = p.joined_on },
             access_type = { [".tag"] = x.access } }
  end, "members", "group:" .. g.id, { default = 1000, max = 1000 })
  if status == 200 then   -- the cursor names its group
    local c = self:uncursor(body.cursor)
    c.g = g.id
    body.cursor = self:cursor(c)
  end
  return status, body
end
R["team/groups/members/list"] = { auth = "team", scope = "groups.read", fn = group_members }
R["team/groups/members/list/continue"] = { auth = "team", scope = "groups.read", fn = group_members }

---------------------------------------------------------------------------------------------------
-- Namespaces (team_namespaces.stone): every member folder, shared folder and team folder
---------------------------------------------------------------------------------------------------
local function namespaces(self, req, arg)
  local live = {}
  for _, ns in ipairs(self.namespaces) do
    local m = ns.type == "team_member_folder" and self.by_mid[ns.owner]
    if not (m and m.status == "removed") then live[#live + 1] = ns end
  end
  return self:listing(req, arg, live, function(ns)
    return { name = ns.name, namespace_id = ns.id, namespace_type = { [".tag"] = ns.type },
             team_member_id = ns.type == "team_member_folder" and ns.owner or nil }
  end, "namespaces", "namespaces", { default = 1000, max = 1000 })
end
R["team/namespaces/list"] = { auth = "team", scope = "team_data.member", fn = namespaces }
R["team/namespaces/list/continue"] = { auth = "team", scope = "team_data.member", fn = namespaces }

---------------------------------------------------------------------------------------------------
-- Devices and linked apps (§6)
---------------------------------------------------------------------------------------------------
function D:session_json(s)
  local o = { session_id = s.session_id, ip_address = s.ip, country = s.country, created = T.iso_s(s.created // 1000), updated = T.iso_s(s.created // 1000) }
  if s.kind == "web_session" then o.user_agent, o.os, o.browser = s.user_agent, s.os, s.browser
  else o.host_name, o.client_type, o.client_version, o.platform, o.is_delete_on_unlink_supported =
    s.host_name, { [".tag"] = s.client_type }, s.client_version, s.platform, s.is_delete_on_unlink_supported end
  return o
end

R["team/devices/list_member_devices"] = { auth = "team", scope = "sessions.list", fn = function(self, req, arg)
  local m = self.by_mid[arg.team_member_id or ""]
  if not m then return self:fail { [".tag"] = "member_not_found" } end
  local web, desk, mob = {}, {}, {}
  for _, s in ipairs(self.sessions) do
    if s.mid == m.id then
      local list = s.kind == "web_session" and web or s.kind == "desktop_client" and desk or mob
      list[#list + 1] = self:session_json(s)
    end
  end
  return 200, { active_web_sessions = arr(web), desktop_client_sessions = arr(desk), mobile_client_sessions = arr(mob) }
end }

R["team/devices/revoke_device_session"] = { auth = "team", scope = "sessions.modify", write = true, fn = function(self, req, arg)
  if not self.by_mid[arg.team_member_id or ""] then return self:fail { [".tag"] = "member_not_found" } end
  for i, s in ipairs(self.sessions) do
    if s.session_id == arg.session_id and s.mid == arg.team_member_id and s.kind == arg[".tag"] then
      table.remove(self.sessions, i)
      self:add_event("logins", "logout", self.by_mid[s.mid], nil, {})
      return 200, "null"
    end
  end
  return self:fail { [".tag"] = "device_session_not_found" }
end }

function D:app_json(a)
  return { app_id = a.app_id, app_name = a.app_name, publisher = a.publisher, publisher_url = a.publisher_url, linked = a.linked,
           is_app_folder = a.is_app_folder }
end
R["team/linked_apps/list_members_linked_apps"] = { auth = "team", scope = "sessions.list", fn = function(self, req, arg)
  local by, order = {}, {}
  for _, a in ipairs(self.apps) do
    if not by[a.mid] then by[a.mid] = {}; order[#order + 1] = a.mid end
    table.insert(by[a.mid], self:app_json(a))
  end
  local offset = 0
  if arg.cursor ~= nil then
    local c = self:uncursor(arg.cursor)
    if not c or c.k ~= "apps" then return self:fail { [".tag"] = "reset" } end
    offset = c.o
  end
  local page = math.min(self.page_max or 100, 100)
  local out = {}
  for i = offset + 1, math.min(#order, offset + page) do out[#out + 1] = { team_member_id = order[i], linked_api_apps = arr(by[order[i]]) } end
  local nxt = offset + #out
  return 200, { apps = arr(out), has_more = nxt < #order, cursor = nxt < #order and self:cursor { k = "apps", o = nxt } or nil }
end }

R["team/linked_apps/revoke_linked_app"] = { auth = "team", scope = "sessions.modify", write = true, fn = function(self, req, arg)
  if not self.by_mid[arg.team_member_id or ""] then return self:fail { [".tag"] = "member_not_found" } end
  for i, a in ipairs(self.apps) do
    if a.app_id == arg.app_id and a.mid == arg.team_member_id then
      if a.is_app_folder and arg.keep_app_folder == false then return self:fail { [".tag"] = "app_folder_removal_not_supported" } end
      table.remove(self.apps, i)
      self:add_event("apps", "app_unlink_user", self.admin, self.by_mid[a.mid], { app_info = { [".tag"] = "user_or_team_linked_app", app_id = a.app_id, display_name = a.app_name } })
      return 200, "null"
    end
  end
  return self:fail { [".tag"] = "app_not_found" }
end }

---------------------------------------------------------------------------------------------------
-- team_log (§5): chronological; the cursor is a position in the log and its filters, good for polling
---------------------------------------------------------------------------------------------------
local DESCRIPTION = { login_success = "(logins) Signed in", login_fail = "(logins) Failed to sign in", logout = "(logins) Signed out",
  member_change_status = "(members) Changed member status", member_change_admin_role = "(members) Changed admin role",
  shared_link_create = "(sharing) Created shared link", shared_content_add_member = "(sharing) Added users and/or groups as members of shared file/folder",
  file_download = "(file_operations) Downloaded files and/or folders", file_add = "(file_operations) Added files and/or folders",
  app_link_user = "(apps) Linked app for member", app_unlink_user = "(apps) Unlinked app for member",
  file_delete = "(file_operations) Deleted files and/or folders", shared_link_remove_expiry = "(sharing) Removed shared link expiration date" }

local function user_log(m)
  if not m then return nil end
  return { [".tag"] = "team_member", account_id = m.account_id, display_name = m.given .. " " .. m.surname, email = m.email, team_member_id = m.id }
end

-- add_event(category, type, actor member, target member | nil, details, {ms=, ip=}) -> event
function D:add_event(category, etype, actor, target, details, o)
  o = o or {}
  local d = T.deep(details or {})
  d[".tag"] = etype .. "_details"
  local ev = {
    timestamp = T.iso_s((o.ms or self:now_ms()) // 1000), event_category = { [".tag"] = category },
    actor = actor and { [".tag"] = (actor.roles[1] and category ~= "logins") and "admin" or "user",
                        admin = (actor.roles[1] and category ~= "logins") and user_log(actor) or nil,
                        user = not (actor.roles[1] and category ~= "logins") and user_log(actor) or nil } or { [".tag"] = "dropbox" },
    origin = { geo_location = { city = "Berlin", region = "Berlin", country = "DE", ip_address = o.ip or "192.0.2.10" },
               access_method = { [".tag"] = "end_user", end_user = { [".tag"] = "web", session_id = "dbwsid:" .. T.b62(20, self.seed, "sess", #self.events) } } },
    involve_non_team_member = false,
    context = target and user_log(target) or { [".tag"] = "team" },
    participants = arr(target and { { [".tag"] = "user", user = user_log(target) } } or {}),
    assets = arr(o.assets or {}),
    event_type = { [".tag"] = etype, description = DESCRIPTION[etype] or etype },
    details = d,
  }
  self.events[#self.events + 1] = { ms = o.ms or self:now_ms(), ev = ev }
  return ev
end

function D:generate_events(r, active)
  local span = self.days * 86400000
  local now = self.t0_ms
  local KINDS = { { 0.35, "logins", "login_success" }, { 0.45, "logins", "login_fail" }, { 0.55, "file_operations", "file_download" },
    { 0.65, "file_operations", "file_add" }, { 0.73, "sharing", "shared_link_create" }, { 0.80, "sharing", "shared_content_add_member" },
    { 0.87, "apps", "app_link_user" }, { 0.93, "members", "member_change_admin_role" }, { 1.01, "members", "member_change_status" } }
  for i = 1, self.nevents do
    local x, kind = r:float(), nil
    for _, k in ipairs(KINDS) do if x < k[1] then kind = k; break end end
    local ms = now - span + math.floor((i - 1 + r:float()) * span / self.nevents)
    local actor = active[r:int(1, #active)]
    local ip = ("%d.%d.%d.%d"):format(r:int(11, 220), r:int(0, 255), r:int(0, 255), r:int(1, 254))
    local details, target = {}, nil
    if kind[3] == "login_success" then details = { is_emm_managed = false, login_method = { [".tag"] = "password" } }
    elseif kind[3] == "login_fail" then
      details = { login_method = { [".tag"] = "password" }, error_details = { user_friendly_message = "Invalid password" } }
    elseif kind[2] == "members" then
      actor = self.admin
      target = active[r:int(1, #active)]
      if kind[3] == "member_change_admin_role" then
        details = { new_value = { [".tag"] = "support_admin" }, previous_value = { [".tag"] = "member_only" } }
      else
        details = { new_value = { [".tag"] = "active" }, previous_value = { [".tag"] = "invited" } }
      end
    elseif kind[2] == "apps" then
      details = { app_info = { [".tag"] = "user_or_team_linked_app", app_id = "dbaid:" .. T.b62(30, self.seed, "app", "Zapier"), display_name = "Zapier" } }
    end
    self:add_event(kind[2], kind[3], actor, target, details, { ms = ms, ip = ip })
  end
end

local CATEGORIES = {}
for c in ("admin_alerting apps comments dash data_governance devices domains encryption file_operations file_requests groups "
  .. "logins members paper passwords protect reports sharing showcase signatures sso team_folders team_policies team_profile tfa trusted_teams"):gmatch("%S+") do
  CATEGORIES[c] = true
end

local function events_page(self, req, c)
  local out, i = {}, c.i
  local now = self:now_ms()
  while i < #self.events and #out < c.n do
    i = i + 1
    local e = self.events[i]
    if c.e and e.ms >= c.e then i = i - 1; break end
    if e.ms > now then i = i - 1; break end                 -- not happened yet (a frozen clock)
    local ok = (not c.s or e.ms >= c.s) and (not c.cat or e.ev.event_category[".tag"] == c.cat)
      and (not c.et or e.ev.event_type[".tag"] == c.et) and (not c.a or (e.ev.actor.user or e.ev.actor.admin or {}).account_id == c.a)
    if ok then out[#out + 1] = e.ev end
  end
  c.i = i
  local more = false
  for j = i + 1, #self.events do
    local e = self.events[j]
    if (c.e and e.ms >= c.e) or e.ms > now then break end
    more = true
    break
  end
  return 200, { events = arr(out), cursor = self:cursor(c), has_more = more }
end

R["team_log/get_events"] = { auth = "team", scope = "events.read", fn = function(self, req, arg)
  if arg.category ~= nil and arg.event_type ~= nil then return self:fail { [".tag"] = "invalid_filters" } end
  local limit = arg.limit == nil and 1000 or math.tointeger(arg.limit)
  if not limit or limit < 1 or limit > 1000 then return self:bad_request(req, "request body: limit: value must be between 1 and 1000") end
  if self.page_max and limit > self.page_max then limit = self.page_max end
  local c = { k = "events", n = limit, i = 0 }
  if type(arg.time) == "table" then
    c.s = arg.time.start_time and T.parse_iso(arg.time.start_time)
    c.e = arg.time.end_time and T.parse_iso(arg.time.end_time)
    if (arg.time.start_time and not c.s) or (arg.time.end_time and not c.e) or (c.s and c.e and c.s > c.e) then
      return self:fail { [".tag"] = "invalid_time_range" }
    end
  end
  if type(arg.category) == "table" then
    c.cat = arg.category[".tag"]
    if not CATEGORIES[c.cat or ""] then return self:bad_request(req, 'request body: category: unknown tag "' .. tostring(c.cat) .. '"') end
  end
  if type(arg.event_type) == "table" then c.et = arg.event_type[".tag"] end
  if arg.account_id ~= nil then
    local found
    for _, m in ipairs(self.members) do if m.account_id == arg.account_id then found = m end end
    if not found then return self:fail { [".tag"] = "account_id_not_found" } end
    c.a = arg.account_id
  end
  return events_page(self, req, c)
end }

R["team_log/get_events/continue"] = { auth = "team", scope = "events.read", fn = function(self, req, arg)
  local c = self:uncursor(arg.cursor)
  if not c or c.k ~= "events" then return self:fail { [".tag"] = "bad_cursor" } end
  return events_page(self, req, c)
end }

return D
