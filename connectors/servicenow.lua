-- ServiceNow (Table API, Attachment API, OAuth).  Reference: shared/api/servicenow.md.
local c = connector "servicenow"
c.title = "ServiceNow"
c.settings = {
  { "instance", required = true, example = "acme.service-now.com", help = "the instance's host name" },
  { "username", help = "the integration user's user_name (OAuth password grant, or Basic auth)" },
  { "password", secret = true, help = "the integration user's password" },
  { "client_id", help = "client id of the OAuth application registry (System OAuth > Application Registry)" },
  { "client_secret", secret = true, help = "client secret of that registry" },
  { "quarantine_table", help = "table of the record quarantined attachments are moved onto (with quarantine_sys_id)" },
  { "quarantine_sys_id", help = "sys_id of that record: one only the security team may read" },
  { "components", help = "what to read and do (default all): users, groups, privileges, app_grants, activities, "
      .. "files, actions; an integration user needs only the roles of the components it has on" },
}
c.base_url = function(s) return "https://" .. s.instance end

---------------------------------------------------------------------------------------------- auth
-- The integration user's OAuth tokens (password grant, refreshed; asked again with the password when the
-- refresh token expires after its 100 days), a registry's client credentials (newer releases: the
-- registry names the user its tokens act as), or Basic auth of the integration user as the fallback.
-- oauth_token.do takes form-encoded bodies only.
c.auth = {
  default = "oauth",
  oauth = { type = "oauth2", grant = "password", token_url = "/oauth_token.do" },
  client_credentials = { type = "oauth2", grant = "client_credentials", token_url = "/oauth_token.do" },
  basic = { type = "basic" },
}

local COMPONENTS = { "users", "groups", "privileges", "app_grants", "activities", "files", "actions" }
local function on(settings) return components(settings.components, COMPONENTS, "servicenow") end
function c.validate(settings)
  local host = settings.instance
  if host ~= nil and host ~= "" and not tostring(host):match("^[%w%-]+%.[%w%-%.]+$") then
    return nil, "servicenow: instance is the instance's host name, e.g. acme.service-now.com"
  end
  return on(settings)
end
function c.enabled(stream, settings)
  local set, err = on(settings)
  if not set then return nil, err end
  return set[stream] == true
end

-- The roles each capability needs of the integration user (the ACLs of the tables it reads and writes).
c.needs = {
  users = "user_admin (read sys_user), or admin",
  groups = "user_admin (read sys_user_group, sys_user_grmember), or admin",
  privileges = "user_admin (read sys_user_has_role, sys_user_role), or admin",
  app_grants = "oauth_admin (read oauth_credential, oauth_entity), or admin",
  activities = "admin (read sysevent and sys_audit)",
  files = "read of the records attachments belong to (each attachment follows its record's ACL; admin reads all)",
  actions = "user_admin (write sys_user: active, locked_out, password_needs_reset; delete sys_user_grmember); admin (delete sys_user_has_role; "
    .. "add and delete sys_attachment); oauth_admin (delete oauth_credential, write oauth_entity)",
}

c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = true,
  activities = { "signin", "admin" },
}

-- {"error": {"message", "detail"}, "status": "failure"}; oauth_token.do: {"error", "error_description"}.
function c.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return resp.body:sub(1, 200) end
  if type(d.error) == "table" then
    local m, detail = str(d.error.message) or "?", str(d.error.detail)
    return detail and (m .. ": " .. detail) or m
  end
  return tostring(d.error_description or d.error or resp.body:sub(1, 200))
end

-- A table the instance does not have (its plugin is not active) is answered 400 "Invalid table X".
function c.unavailable(resp)
  local d = resp.data
  local m = resp.status == 400 and type(d) == "table" and type(d.error) == "table" and str(d.error.message)
  local t = m and m:match("^Invalid table (%S+)")
  if t then return ("the plugin that provides table %s"):format(t) end
end

---------------------------------------------------------------------------------------------- Table API
-- Raw values (sysparm_display_value=false), references as bare sys_ids; pages of PAGE rows followed by the
-- Link header's rel="next" (a page may hold fewer rows than asked: the limit applies before the ACLs).
local PAGE = 1000
local function table_path(name) return "/api/now/table/" .. name end
local PAGES = { items = "result" }

local function rows(ctx, name, query, fields)
  return ctx:pages(table_path(name), { sysparm_query = query, sysparm_fields = fields, sysparm_limit = PAGE,
    sysparm_exclude_reference_link = "true", sysparm_display_value = "false" }, PAGES)
end

-- "2024-03-01 12:00:00" (UTC) <-> epoch seconds
local function glide_time(t)
  local s = iso(t):gsub("T", " "):gsub("%.%d+Z$", "")
  return s
end
local function parse_glide(s)
  s = str(s)
  return s and parse_iso(s:gsub(" ", "T") .. "Z")
end
local function at(s)
  local t = parse_glide(s)
  return t and iso(t) or nil
end

---------------------------------------------------------------------------------------------- users
local USER_FIELDS = "sys_id,user_name,name,first_name,last_name,email,active,locked_out,last_login_time,"
  .. "web_service_access_only,sys_created_on"

local function user_row(u)
  if type(u.active) ~= "string" then error("a user without active") end
  local status = u.active ~= "true" and "disabled" or u.locked_out == "true" and "locked" or "active"
  return {
    ext_id = str(u.sys_id), email = str(u.email) or str(u.user_name), status = status,
    display_name = str(u.name) or str(u.user_name), last_login = at(u.last_login_time), created_at = at(u.sys_created_on),
    external = 0,
  }
end

function c.streams.users(ctx)
  for page in rows(ctx, "sys_user", "ORDERBYsys_id", USER_FIELDS) do ctx:emit("users", page, user_row) end
end

function c.fetch.users(ctx, id)
  local d = ctx:get(table_path("sys_user") .. "/" .. urlencode(id), { sysparm_fields = USER_FIELDS,
    sysparm_exclude_reference_link = "true" })
  ctx:emit("users", { type(d) == "table" and d.result or nil }, user_row)
end

---------------------------------------------------------------------------------------------- groups
function c.streams.groups(ctx)
  for page in rows(ctx, "sys_user_group", "ORDERBYsys_id", "sys_id,name,description,email") do
    ctx:emit("groups", page, function(g)
      return { ext_id = str(g.sys_id), name = g.name, description = str(g.description), email = str(g.email) }
    end)
  end
  for page in rows(ctx, "sys_user_grmember", "ORDERBYsys_id", "sys_id,user,group") do
    ctx:emit("group_members", page, function(m)
      return { ext_id = str(m.sys_id), group_id = str(m.group), member_id = str(m.user), member_type = "user" }
    end)
  end
end

---------------------------------------------------------------------------------------------- privileges
-- Admin and elevated roles (security_admin...) held by users, direct or inherited through a group (each a
-- sys_user_has_role row of its own); users.is_admin follows them.
local ADMIN_QUERY = "role.nameINadmin,security_admin^ORrole.elevated_privilege=true^ORDERBYsys_id"

function c.streams.privileges(ctx)
  local admins = {}
  for page in rows(ctx, "sys_user_has_role", ADMIN_QUERY, "sys_id,user,role,role.name,inherited,granted_by,granted_by.name") do
    ctx:emit("privileges", page, function(r)
      local user, role = str(r.user), str(r["role.name"])
      if not (user and role) then error("a role grant without user or role") end
      admins[user] = true
      local group = r.inherited == "true" and (str(r["granted_by.name"]) or str(r.granted_by))
      return { ext_id = str(r.sys_id), user_id = user, role = role, scope = group and ("group " .. group) or "direct" }
    end)
  end
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- app grants
-- The OAuth tokens issued to users (oauth_credential: each access and refresh token, with its
-- application registry), and the application registries themselves (oauth_entity).
function c.streams.app_grants(ctx)
  for page in rows(ctx, "oauth_credential", "ORDERBYsys_id",
      "sys_id,user,user.user_name,peer,peer.name,peer.client_id,type,scope,expires,sys_created_on") do
    ctx:emit("app_grants", page, function(t)
      return { ext_id = str(t.sys_id), client_id = str(t["peer.client_id"]) or str(t.peer),
        app_name = str(t["peer.name"]), user_id = str(t.user), user = str(t["user.user_name"]),
        scopes = (str(t.scope) or "") .. " (" .. tostring(t.type) .. ")", created_at = at(t.sys_created_on) }
    end)
  end
  for page in rows(ctx, "oauth_entity", "ORDERBYsys_id", "sys_id,name,client_id,active,type,sys_created_on") do
    ctx:emit("app_grants", page, function(e)
      return { ext_id = str(e.sys_id), client_id = str(e.client_id), app_name = str(e.name),
        scopes = "application registry" .. (e.active == "true" and "" or " (inactive)"), created_at = at(e.sys_created_on) }
    end)
  end
end

---------------------------------------------------------------------------------------------- activities
-- Sign-ins from the event queue (sysevent: `login`, `login.failed`; parm1 the user_name, parm2 the
-- address), and the changes made to users, groups, memberships, roles and ACLs from sys_audit (field by
-- field).  Each table is read ascending from its own watermark on sys_created_on minus an overlap (a row
-- may commit after a later-stamped one); re-read rows are the same rows (ext_id = sys_id).
c.initial_days = 7
c.OVERLAP = 300
local AUDITED = "sys_user,sys_user_group,sys_user_grmember,sys_user_has_role,sys_group_has_role,sys_security_acl"
local SOURCES = {
  { key = "signins", table = "sysevent", filter = "nameINlogin,login.failed",
    fields = "sys_id,name,parm1,parm2,instance,sys_created_on" },
  { key = "audit", table = "sys_audit", filter = "tablenameIN" .. AUDITED,
    fields = "sys_id,tablename,documentkey,fieldname,oldvalue,newvalue,user,sys_created_on" },
}

-- user_name -> sys_id of the users a page names, asked for once per run (sysevent and sys_audit name
-- users by user_name)
local function resolver(ctx)
  local known = {}
  return function(page, field)
    local want, seen = {}, {}
    for _, e in ipairs(page) do
      local n = type(e) == "table" and str(e[field])
      if n and known[n] == nil and not seen[n] and not n:find("[,%^]") then seen[n] = true; want[#want + 1] = n end
    end
    for i = 1, #want, 100 do
      local chunk = table.concat(want, ",", i, math.min(#want, i + 99))
      for found in rows(ctx, "sys_user", "user_nameIN" .. chunk, "sys_id,user_name") do
        for _, u in ipairs(found) do if str(u.user_name) then known[u.user_name] = str(u.sys_id) end end
      end
      for j = i, math.min(#want, i + 99) do if known[want[j]] == nil then known[want[j]] = false end end
    end
    return function(n) return n and known[n] or nil end
  end
end

local function signin_row(e, id_of)
  local actor = str(e.parm1)
  return { ext_id = str(e.sys_id), time = at(e.sys_created_on) or error("no sys_created_on"), kind = "signin",
    action = e.name, actor = actor, actor_id = id_of(actor), ip = str(e.parm2),
    outcome = e.name == "login" and "success" or "failure", app = "ServiceNow" }
end

local function audit_row(a, id_of)
  local actor = str(a.user)
  local change = a.fieldname == "DELETED" and "deleted" or (tostring(a.fieldname) .. ": " .. tostring(a.oldvalue)
    .. " -> " .. tostring(a.newvalue))
  return { ext_id = str(a.sys_id), time = at(a.sys_created_on) or error("no sys_created_on"), kind = "admin",
    action = tostring(a.tablename) .. "." .. (a.fieldname == "DELETED" and "delete" or tostring(a.fieldname)),
    actor = actor, actor_id = id_of(actor), target = change, target_id = str(a.documentkey),
    outcome = "success", app = "ServiceNow" }
end

function c.streams.activities(ctx, cursor)
  local marks = type(cursor) == "string" and json.decode(cursor) or nil
  if type(marks) ~= "table" then marks = {} end
  local start = sched.time() - (tonumber(ctx.settings.initial_days) or c.initial_days) * 86400
  local resolve = resolver(ctx)
  local function save()
    local low                  -- complete up to the older of the two
    for _, s in ipairs(SOURCES) do
      local t = parse_glide(marks[s.key])
      if t and (not low or t < low) then low = t end
    end
    ctx:checkpoint(json.encode(marks), low and iso(low) or nil)
  end
  for _, s in ipairs(SOURCES) do
    local from = parse_glide(marks[s.key])
    local since = glide_time(from and (from - c.OVERLAP) or start)
    for page in rows(ctx, s.table, ("%s^sys_created_on>=%s^ORDERBYsys_created_on^ORDERBYsys_id"):format(s.filter, since), s.fields) do
      local id_of = resolve(page, s.table == "sysevent" and "parm1" or "user")
      local last = page[#page]
      if type(last) == "table" and parse_glide(last.sys_created_on) then marks[s.key] = last.sys_created_on end
      save()
      ctx:emit("activities", page, function(e) return (s.table == "sysevent" and signin_row or audit_row)(e, id_of) end)
    end
  end
  save()
end

---------------------------------------------------------------------------------------------- files
-- Attachments (sys_attachment) of every table: visible to whoever may read the record they belong to
-- (internal); the content through the Attachment API for the data scan.
local function file_row(a)
  return { ext_id = str(a.sys_id), name = a.file_name, path = ("%s/%s/%s"):format(tostring(a.table_name),
    tostring(a.table_sys_id), tostring(a.file_name)), parent_id = str(a.table_sys_id), is_folder = 0,
    owner = str(a.sys_created_by), size = tonumber(a.size_bytes), mime = str(a.content_type),
    sha256 = str(a.hash), access_level = "internal", trashed = 0, created_at = at(a.sys_created_on),
    modified_at = at(a.sys_updated_on) }
end
local FILE_FIELDS = "sys_id,file_name,content_type,size_bytes,table_name,table_sys_id,hash,sys_created_by,sys_created_on,sys_updated_on"

function c.streams.files(ctx)
  for page in rows(ctx, "sys_attachment", "ORDERBYsys_id", FILE_FIELDS) do ctx:emit("files", page, file_row) end
end

function c.fetch.files(ctx, id)
  local d = ctx:try_get(table_path("sys_attachment") .. "/" .. urlencode(id), { sysparm_fields = FILE_FIELDS,
    sysparm_exclude_reference_link = "true" })
  if not d then return ctx:retire("files", { id }) end
  ctx:emit("files", { type(d) == "table" and d.result or nil }, file_row)
end

function c.content(ctx, file, max_size)
  local resp, err = ctx:try("GET", "/api/now/attachment/" .. urlencode(file.ext_id) .. "/file",
    { max_size = max_size, raw = true, headers = { Accept = "*/*" } })
  if not resp then return nil, err end
  return resp.body
end

c.stream_order = { users = 1, groups = 2, privileges = 3, app_grants = 4, activities = 5, files = 6 }

---------------------------------------------------------------------------------------------- governance
-- suspend_user locks the account out (locked_out=true): no sign-in, no new token, as ServiceNow itself
-- does after failed sign-ins; the account stays active with its roles, groups, assignments and approvals,
-- and unsuspend_user (or unlock_user) lets it in again.  deactivate_user sets active=false: the account
-- leaves assignment and approval lookups, which a lock-out leaves alone.
local function user_path(user) return table_path("sys_user") .. "/" .. urlencode(user.ext_id) end
local function set(ctx, user, fields) ctx:patch(user_path(user) .. "?sysparm_fields=sys_id", fields) end

function c.actions.suspend_user(ctx, user) set(ctx, user, { locked_out = "true" }) end
function c.actions.unsuspend_user(ctx, user) set(ctx, user, { locked_out = "false" }) end
function c.actions.unlock_user(ctx, user) set(ctx, user, { locked_out = "false" }) end
function c.actions.deactivate_user(ctx, user) set(ctx, user, { active = "false" }) end
function c.actions.expire_password(ctx, user) set(ctx, user, { password_needs_reset = "true" }) end

-- The admin and elevated roles granted to the user themselves (params.role: only that one).  A role
-- inherited through a group goes when the user leaves the group.
function c.actions.remove_admin_role(ctx, user, params)
  local want = params and str(params.role)
  local removed, through = 0, {}
  local q = "user=" .. user.ext_id .. "^" .. ADMIN_QUERY
  for page in rows(ctx, "sys_user_has_role", q, "sys_id,role.name,inherited,granted_by.name") do
    for _, r in ipairs(page) do
      if not want or r["role.name"] == want then
        if r.inherited == "true" then through[#through + 1] = ("%s (group %s)"):format(r["role.name"], tostring(r["granted_by.name"]))
        else
          ctx:delete(table_path("sys_user_has_role") .. "/" .. urlencode(r.sys_id))
          removed = removed + 1
        end
      end
    end
  end
  if removed == 0 then
    error(#through > 0 and ("http: %s holds %s only through a group: remove them from the group (remove_member, param group)")
      :format(user.ext_id, table.concat(through, ", "))
      or ("http: %s holds no direct %s role"):format(user.ext_id, want or "admin or elevated"), 0)
  end
end

-- The user leaves a group (params.group: its sys_id or name), and with it the roles the group gave: the
-- way to take away an inherited admin role.
function c.actions.remove_member(ctx, user, params)
  local group = params and str(params.group)
  if not group or group:find("^", 1, true) then error("http: remove_member needs the group (param group: a sys_id or a name)", 0) end
  local ids = {}                 -- listed first: deleting while paging by offset would skip rows
  for page in rows(ctx, "sys_user_grmember", ("user=%s^group=%s^ORgroup.name=%s"):format(user.ext_id, group, group), "sys_id") do
    for _, m in ipairs(page) do ids[#ids + 1] = str(m.sys_id) end
  end
  if #ids == 0 then error(("http: %s is not a member of group %s"):format(user.ext_id, group), 0) end
  for _, id in ipairs(ids) do ctx:delete(table_path("sys_user_grmember") .. "/" .. urlencode(id)) end
end

-- A user's token: its oauth_credential row deleted (the token stops working); an application registry:
-- made inactive (it issues no more tokens).
local function is_registry(grant) return tostring(grant.scopes):match("^application registry") ~= nil end
function c.actions.revoke_token(ctx, grant)
  if is_registry(grant) then error("http: revoke_token acts on a user's token; this is an application registry: revoke_grant", 0) end
  ctx:delete(table_path("oauth_credential") .. "/" .. urlencode(grant.ext_id))
end
function c.actions.revoke_grant(ctx, grant)
  if is_registry(grant) then return ctx:patch(table_path("oauth_entity") .. "/" .. urlencode(grant.ext_id) .. "?sysparm_fields=sys_id", { active = "false" }) end
  c.actions.revoke_token(ctx, grant)
end

-- Attachments are immutable and have no trash: deleting one removes it (DELETE /api/now/attachment/{id}).
local function attachment_path(file) return "/api/now/attachment/" .. urlencode(file.ext_id) end
function c.actions.trash_file(ctx, file) ctx:delete(attachment_path(file)) end

-- The record an attachment belongs to (its path: table/sys_id/name) and its bytes.
local function record_of(file)
  local t, id = tostring(file.path):match("^([^/]+)/([^/]+)/")
  if not t then error("http: " .. tostring(file.ext_id) .. " names no record (scan it again)", 0) end
  return t, id
end
local function bytes(ctx, file)
  local _, resp = ctx:request("GET", attachment_path(file) .. "/file", { raw = true, headers = { Accept = "*/*" } })
  return resp.body
end
local function upload(ctx, table_name, record, name, mime, body)
  ctx:request("POST", "/api/now/attachment/file", { query = { table_name = table_name, table_sys_id = record,
    file_name = name }, body = body, headers = { ["Content-Type"] = mime or "application/octet-stream" } })
end
local NOTICE = "This attachment was removed by your security team (cachost). Ask them for access.\n"

-- Quarantine: the attachment moves onto the quarantine record (quarantine_table, quarantine_sys_id), named
-- after where it was, and a tombstone takes its place; being immutable, it moves by download, upload, delete.
function c.actions.quarantine_file(ctx, file)
  local qt, qid = str(ctx.settings.quarantine_table), str(ctx.settings.quarantine_sys_id)
  if not (qt and qid) then
    error("http: quarantine needs the settings quarantine_table and quarantine_sys_id (cachost instance edit "
      .. ctx.instance .. ")", 0)
  end
  local t, id = record_of(file)
  upload(ctx, qt, qid, ("%s_%s_%s"):format(t, id, file.name), file.mime, bytes(ctx, file))
  upload(ctx, t, id, file.name .. ".quarantined.txt", "text/plain", NOTICE)
  ctx:delete(attachment_path(file))
end

-- Overwrite: an attachment of the same name holding the notice replaces it on its record.
function c.actions.overwrite_file(ctx, file, params)
  local t, id = record_of(file)
  upload(ctx, t, id, file.name, "text/plain", params and str(params.notice) or NOTICE)
  ctx:delete(attachment_path(file))
end

c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user" }
-- the attachment acted on is gone afterwards (a new one, or the tombstone, takes its place)
c.removes = { quarantine_file = true, overwrite_file = true }

return c
