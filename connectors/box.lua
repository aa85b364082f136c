-- Box (enterprise, Platform API 2.0).  Reference: shared/api/box.md.
local c = connector "box"
c.title = "Box"
c.settings = {
  { "client_id", required = true, help = "the Box app's client id (developer console)" },
  { "client_secret", secret = true, help = "the Box app's client secret" },
  { "enterprise_id", example = "11446498", help = "enterprise id: the subject of client-credentials tokens" },
  { "upload_base_url", example = "https://upload.box.com/api/2.0", help = "upload host (default: Box's; a sandbox serves both)" },
  { "oauth_base_url", example = "https://api.box.com", help = "host of /oauth2/token (default https://api.box.com)" },
  { "webhook_primary_key", secret = true, help = "webhook signature primary key (developer console)" },
  { "webhook_secondary_key", secret = true, help = "webhook signature secondary key" },
  { "quarantine_folder_id", help = "a folder of the app's own account (the service account) quarantined files are moved to (default: 'cachost quarantine' in its root)" },
}
c.base_url = "https://api.box.com/2.0"
local UPLOAD = "https://upload.box.com/api/2.0"
c.hosts = function(s) return { type(s.upload_base_url) == "string" and s.upload_base_url ~= "" and s.upload_base_url or UPLOAD } end

-- §2: the token endpoint is at the API host's root (no /2.0); the browser consent is on account.box.com.
-- Client credentials (server auth) act as the enterprise's service account; authorization code tokens
-- act as the admin who consented, with 60-day single-use refresh tokens.  No PKCE.
c.auth = {
  default = "oauth",
  oauth = {
    type = "oauth2", grant = "authorization_code", pkce = false, base_url = "https://api.box.com",
    authorize_url = "https://account.box.com/api/oauth2/authorize", token_url = "/oauth2/token",
  },
  client_credentials = {
    type = "oauth2", grant = "client_credentials", base_url = "https://api.box.com", token_url = "/oauth2/token",
    form = function(s) return { box_subject_type = "enterprise", box_subject_id = s.enterprise_id } end,
  },
}

c.capabilities = {
  users = true, groups = true, privileges = true, files = true, app_grants = false,
  activities = { "signin", "admin", "user" },
}
c.not_offered = {
  app_grants = "Box's API lists no OAuth authorizations a user granted to applications",
}

-- What each capability needs of the Box app (developer console scopes and advanced features) and of the
-- token's user (§2): the service account of an app with App + Enterprise Access, or an admin.
c.needs = {
  users = { "scope manage_managed_users", "admin, co-admin or the service account" },
  privileges = { "scope manage_managed_users", "admin, co-admin or the service account" },
  groups = { "scope manage_groups", "admin, co-admin or the service account (all the enterprise's groups)" },
  files = { "scope root_readonly (root_readwrite for actions)", "advanced feature: perform actions as users (As-User)",
            "admin or the service account (co-admins cannot act as other co-admins)" },
  activities = { "scope manage_enterprise_properties",
                 "the service account, an admin, or a co-admin with 'run new reports and access existing reports'" },
  actions = { "scopes root_readwrite and manage_managed_users", "advanced feature: perform actions as users (As-User)" },
  webhooks = { "scope manage_webhook", "webhook signature keys (developer console)" },
}

-- ClientError: {"type":"error","status","code","message","context_info",...}; OAuth2Error: {"error","error_description"}.
function c.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return resp.body:sub(1, 200) end
  if d.code then return ("%s (%s)"):format(tostring(d.message), d.code) end
  return tostring(d.error_description or d.error or resp.body:sub(1, 200))
end

local PAGE = 1000                              -- limit max for users, groups, items, collaborations
local EVENTS_PAGE = 500                        -- limit max for events

local function when(v) local t = parse_iso(v) return t and iso(t) or nil end
local function upload_base(ctx)
  local u = str(ctx.settings.upload_base_url) or UPLOAD
  return (u:gsub("/+$", ""))
end

-- As-User (§1): the service account (or an admin) acts as a managed user; without it that user's content
-- is invisible (404), so the file scan walks each user's tree, and actions on a file run as its owner.
local function as_user(id) return id and { ["As-User"] = id } or nil end

-- Marker pagination (§8): usemarker=true, then marker=next_marker until it is null or empty.
local function marker_pages(ctx, path, query, headers)
  query = query or {}
  query.usemarker, query.limit = "true", query.limit or PAGE
  return ctx:pages(path, query, { items = "entries", headers = headers, page_token = { "next_marker", "marker" } })
end

---------------------------------------------------------------------------------------------- users
local STATUS = { active = "active", inactive = "suspended", cannot_delete_edit = "active", cannot_delete_edit_upload = "active" }
local USER_FIELDS = "id,type,name,login,status,role,created_at,modified_at,enterprise"

local function user_row(u)
  return {
    ext_id = u.id, email = u.login, display_name = u.name,
    status = STATUS[u.status] or error("unknown user status " .. tostring(u.status)),
    is_admin = (u.role == "admin" or u.role == "coadmin") and 1 or 0, external = 0, created_at = when(u.created_at),
  }
end

-- Managed users only: external collaborators show up as collaborations on files.  Admin roles (§3):
-- role admin (primary) and coadmin.
function c.streams.users(ctx)
  local admins = {}
  for page in marker_pages(ctx, "/users", { user_type = "managed", fields = USER_FIELDS }) do
    ctx:emit("users", page, user_row)
    local privs = {}
    for _, u in ipairs(page) do
      if u.role == "admin" or u.role == "coadmin" then privs[#privs + 1] = u; admins[u.id] = true end
    end
    ctx:emit("privileges", privs, function(u)
      return { ext_id = u.id .. ":" .. u.role, user_id = u.id, role = u.role, scope = "enterprise" }
    end)
  end
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- groups
local function member_row(m)
  return { ext_id = m.id, group_id = m.group.id, member_id = m.user.id, member_type = "user", role = m.role }
end

-- Offset paging by hand: the listing's pages, false when Box refuses an offset this deep (400: offsets past
-- 10,000 are refused, and these endpoints offer no marker paging).
local function offset_walk(ctx, path, query, each)
  local q = {}
  for k, v in pairs(query or {}) do q[k] = v end
  q.limit, q.offset = PAGE, 0
  while true do
    local resp, err, token, r = ctx:try("GET", path, { query = q, expect_json = true })
    if not resp then
      if q.offset > 0 and r and r.status == 400 then return false end
      fail(err, token)
    end
    local d = resp.data
    local items = ctx:listing(d, "entries", path)
    -- a page without total_count is not what Box documents: taken for the last page, it would end the
    -- listing early (and the rest would be marked deleted)
    local total = math.tointeger(d.total_count)
    if not total then error(("malformed listing: no total_count in an offset page (GET %s)"):format(path), 0) end
    each(items)
    local nxt = (tonumber(d.offset) or q.offset) + (tonumber(d.limit) or PAGE)
    if nxt >= total then return true end
    q.offset = nxt
  end
end

-- GET /groups and /groups/{id}/memberships page by offset only, and Box refuses offsets past 10,000.  A
-- group with more members than that is read from the other side: each managed user's memberships
-- (GET /users/{id}/memberships), kept for the groups that needed it.  More groups than that: no way to
-- list them all, said as such (a partial listing would retire the rest).
function c.streams.groups(ctx)
  local ids = {}
  local complete = offset_walk(ctx, "/groups", { fields = "id,type,name,description,group_type" }, function(page)
    ctx:emit("groups", page, function(g)
      ids[#ids + 1] = g.id
      return { ext_id = g.id, name = g.name, description = str(g.description) }
    end)
  end)
  if not complete then fail("more groups than Box lists by offset (10,000): GET /groups offers no other paging", "http") end
  local big = {}
  for _, gid in ipairs(ids) do
    local path = "/groups/" .. urlencode(gid) .. "/memberships"
    if not offset_walk(ctx, path, {}, function(page) ctx:emit("group_members", page, member_row) end) then big[gid] = true end
  end
  if not next(big) then return end
  for _, u in ipairs(ctx:known_users()) do
    if not u.external or u.external == 0 then
      offset_walk(ctx, "/users/" .. urlencode(u.ext_id) .. "/memberships", {}, function(page)
        local keep = {}
        for _, m in ipairs(page) do if type(m.group) == "table" and big[m.group.id] then keep[#keep + 1] = m end end
        ctx:emit("group_members", keep, member_row)
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- files
local ITEM_FIELDS = "id,type,name,size,sha1,parent,path_collection,owned_by,shared_link,created_at,modified_at," ..
  "trashed_at,item_status,has_collaborations,extension"
local RANK = { private = 0, internal = 1, external = 2, public = 3 }
local function raise(level, to) return RANK[to] > RANK[level] and to or level end
local MIME = { txt = "text/plain", pdf = "application/pdf", png = "image/png", jpg = "image/jpeg", csv = "text/csv",
  docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" }

local function item_path(row) return ((row.is_folder == 1 or row.type == "folder") and "/folders/" or "/files/") .. urlencode(row.ext_id) end

-- Enterprise users are the managed users listed by the users stream; groups are the enterprise's own.
local function insiders(ctx)
  local set = {}
  for _, u in ipairs(ctx:known_users()) do set[u.ext_id] = true end
  return set
end
local function is_external(collab, inside)
  local who = collab.accessible_by
  if type(who) ~= "table" then return true end             -- pending invite by e-mail
  if who.type == "group" then return false end
  return not inside[who.id]
end

-- The collaborations of an item, as file_permissions rows, and the access level they give.
local function collaborations(ctx, it, inside, headers)
  local rows, level = {}, "private"
  if not it.has_collaborations then return rows, level end
  for page in marker_pages(ctx, (it.type == "folder" and "/folders/" or "/files/") .. it.id .. "/collaborations", nil, headers) do
    for _, cb in ipairs(page) do
      local ext = is_external(cb, inside)
      local who = type(cb.accessible_by) == "table" and cb.accessible_by or {}
      -- an uploader (Box's "upload only" role) puts items in without seeing them: no access it opens
      if cb.role ~= "uploader" then level = raise(level, ext and "external" or "internal") end
      rows[#rows + 1] = { ext_id = "collab:" .. cb.id, file_id = it.id, principal = str(who.login) or str(who.name) or str(cb.invite_email),
        principal_type = who.type or "user", role = cb.role, external = ext and 1 or 0, expires_at = when(cb.expires_at), raw = cb }
    end
  end
  return rows, level
end

local function link_row(it)
  local l = it.shared_link
  if type(l) ~= "table" then return nil, "private" end
  local level = l.access == "open" and "public" or l.access == "company" and "internal" or "private"
  return { ext_id = "link:" .. it.id, file_id = it.id, principal = l.access == "open" and "anyone" or l.access,
           principal_type = "link", role = (l.permissions and l.permissions.can_edit) and "editor" or "viewer",
           external = l.access == "open" and 1 or 0, link = l.url, expires_at = when(l.unshared_at), raw = l }, level
end

local function path_of(it)
  local parts = {}
  local pc = type(it.path_collection) == "table" and it.path_collection.entries or {}
  for _, p in ipairs(pc) do if p.id ~= "0" then parts[#parts + 1] = p.name end end
  parts[#parts + 1] = it.name
  return "/" .. table.concat(parts, "/")
end

local function file_row(it, path, level, trashed)
  local folder = it.type == "folder"
  return {
    ext_id = it.id, name = it.name, path = path, parent_id = type(it.parent) == "table" and it.parent.id or nil,
    is_folder = folder and 1 or 0, owner = type(it.owned_by) == "table" and it.owned_by.login or nil,
    size = math.tointeger(it.size), mime = not folder and MIME[(it.extension or it.name:match("%.(%w+)$") or ""):lower()] or nil,
    sha1 = str(it.sha1), access_level = level, trashed = trashed and 1 or 0,
    created_at = when(it.created_at), modified_at = when(it.modified_at), raw = it,
  }
end

-- One item's rows: itself, its collaborations and its shared link, with the access level it inherits.
local function item_rows(ctx, it, inherited, path, inside, trashed, headers)
  local perms, level = collaborations(ctx, it, inside, headers)
  local lrow, llevel = link_row(it)
  if lrow then perms[#perms + 1] = lrow end
  level = raise(raise(level, llevel), inherited)
  return file_row(it, path, level, trashed), perms, level
end

local function owner_id(it) return type(it.owned_by) == "table" and str(it.owned_by.id) or nil end

-- One account's tree, breadth first from its root (folder 0 as that user sees it), then its trash; a
-- folder's collaborators and links reach everything below it.  The root also lists what others
-- collaborated with this user (a shared folder shows in every collaborator's root): that is its owner's,
-- read in the owner's walk, so it is skipped here (each item counted once).  Below the root everything is
-- the folder owner's (Box: content belongs to the owner of the folder it is in).
local function walk(ctx, uid, headers, inside)
  local queue = { { id = "0", path = "", level = "private" } }
  local head = 1
  while queue[head] do
    local f = queue[head]
    head = head + 1
    for page in marker_pages(ctx, "/folders/" .. f.id .. "/items", { fields = ITEM_FIELDS }, headers) do
      local rows, perms = {}, {}
      for _, it in ipairs(page) do
        if not (str(it.id) and str(it.type)) then
          ctx:reject("files", "an item without id or type")
        elseif (it.type == "file" or it.type == "folder") and (f.id ~= "0" or owner_id(it) == uid) then
          local path = f.path .. "/" .. it.name
          local row, p, level = item_rows(ctx, it, f.level, path, inside, false, headers)
          rows[#rows + 1] = row
          for _, x in ipairs(p) do perms[#perms + 1] = x end
          if it.type == "folder" then queue[#queue + 1] = { id = it.id, path = path, level = level } end
        end                                                   -- web links, others' shared items: skipped
      end
      ctx:emit("files", rows, function(r) return r end)
      ctx:emit("file_permissions", perms, function(r) return r end)
    end
  end
  for page in marker_pages(ctx, "/folders/trash/items", { fields = ITEM_FIELDS }, headers) do
    ctx:emit("files", page, function(it) return file_row(it, path_of(it), "private", true) end)
  end
end

-- Every managed user's tree, As-User, and the token's own account (the service account: the quarantine
-- folder).  Content owned outside the enterprise and only shared into it is not the enterprise's: skipped.
-- Box refuses As-User (403) when the app may not "perform actions as users", or for a co-admin's token
-- acting as an admin or another co-admin: such a user is skipped and the listing is not complete (nothing
-- of theirs is marked deleted); refused for everyone, the stream says what the app lacks.
function c.streams.files(ctx)
  local inside = insiders(ctx)
  local me = ctx:get("/users/me", { fields = "id,login" })
  walk(ctx, me.id, nil, inside)
  local users, refused = 0, 0
  for _, u in ipairs(ctx:known_users()) do
    if u.ext_id ~= me.id then
      users = users + 1
      local ok, err = pcall(walk, ctx, u.ext_id, as_user(u.ext_id), inside)
      if not ok then
        if token_of(err) ~= "permission" then error(err, 0) end
        refused = refused + 1
        ctx:reject("files", ("As-User %s refused: %s"):format(u.ext_id, tostring(err)))
      end
    end
  end
  if users > 0 and refused == users then
    fail("Box refused As-User for every managed user: the app needs 'Perform actions as users' (developer console, "
      .. "advanced features) and an admin or service account token", "permission")
  end
end

-- The account a stored file row is acted on as: its owner when that is a managed user (As-User), else the
-- token's own (the service account owns the quarantine folder and what was moved into it).
local function owner_headers(ctx, row)
  row = row or {}
  local raw = row.raw
  if type(raw) == "string" then raw = json.decode(raw) end
  local id = type(raw) == "table" and owner_id(raw)
  for _, u in ipairs(ctx:known_users()) do
    if u.ext_id == id or (not id and row.owner and u.email == row.owner) then return as_user(u.ext_id) end
  end
end

-- Targeted re-fetch (webhooks, governance): one file with its ancestors' sharing, as its owner (the stored
-- row's, or for a file not stored yet the owner the signed notification named: hint.owner_id); gone or
-- trashed -> its new state.  A file the stored owner no longer sees may have become the token's own
-- account's (a quarantine moved it into its folder): asked again as that account.
function c.fetch.files(ctx, id, hint)
  local row = ctx:stored("files", id) or { raw = { owned_by = { id = hint and hint.owner_id } } }
  local headers = owner_headers(ctx, row)
  local path = "/files/" .. urlencode(id)
  local it = ctx:try_get(path, { fields = ITEM_FIELDS }, { headers = headers })
  if not it and headers then
    it = ctx:try_get(path, { fields = ITEM_FIELDS })
    if it then headers = nil end
  end
  if not it then
    local t = ctx:try_get(path .. "/trash", { fields = ITEM_FIELDS }, { headers = headers })
    if t then ctx:emit("files", { t }, function(x) return file_row(x, path_of(x), "private", true) end) end
    return
  end
  local inside = insiders(ctx)
  local level = "private"
  for _, p in ipairs(type(it.path_collection) == "table" and it.path_collection.entries or {}) do
    if p.id ~= "0" then
      local f = ctx:get("/folders/" .. p.id, { fields = "id,type,shared_link,has_collaborations" }, { headers = headers })
      local _, fl = collaborations(ctx, f, inside, headers)
      local _, ll = link_row(f)
      level = raise(raise(level, fl), ll)
    end
  end
  local row, perms = item_rows(ctx, it, level, path_of(it), inside, it.item_status == "trashed", headers)
  ctx:emit("files", { it }, function() return row end)
  ctx:emit("file_permissions", perms, function(r) return r end)
end

-- Content for the data scan: GET /files/{id}/content answers 302 to a download URL (followed); the
-- body is capped at max_size (the http layer aborts with too_large).
function c.content(ctx, file, max_size)
  if file.is_folder == 1 then return nil, "unsupported: a folder has no content" end
  local headers = owner_headers(ctx, file) or {}
  headers.Accept = "*/*"
  local resp, err = ctx:try("GET", "/files/" .. urlencode(file.ext_id) .. "/content",
    { max_size = max_size, raw = true, headers = headers })
  if not resp then return nil, err end
  return resp.body
end

---------------------------------------------------------------------------------------------- events
-- Enterprise events (§5): stream_type=admin_logs, chronological without duplicates; the cursor is
-- next_stream_position.  The first run starts initial_days back (created_after).
local SIGNIN = { LOGIN = true, FAILED_LOGIN = true, ADMIN_LOGIN = true, ADD_LOGIN_ACTIVITY_DEVICE = true,
  REMOVE_LOGIN_ACTIVITY_DEVICE = true, USER_AUTHENTICATE_OAUTH2_ACCESS_TOKEN_CREATE = true, DEVICE_TRUST_CHECK_FAILED = true,
  ENABLE_TWO_FACTOR_AUTH = true, ENABLE_MULTI_FACTOR_AUTH = true, DISABLE_MULTI_FACTOR_AUTH = true, USER_SESSIONS_TERMINATED = true }
local ADMIN = { CHANGE_ADMIN_ROLE = true, NEW_USER = true, EDIT_USER = true, DELETE_USER = true, GROUP_ADD_USER = true,
  GROUP_REMOVE_USER = true, GROUP_CREATION = true, GROUP_DELETION = true, GROUP_EDITED = true, GROUP_ADMIN_CREATED = true,
  GROUP_ADMIN_DELETED = true, ENTERPRISE_APP_AUTHORIZATION_UPDATE = true, APPLICATION_CREATED = true,
  APPLICATION_PUBLIC_KEY_ADDED = true, APPLICATION_PUBLIC_KEY_DELETED = true, OAUTH2_ACCESS_TOKEN_REVOKE = true,
  OAUTH2_REFRESH_TOKEN_REVOKE = true }
local function kind_of(t)
  if SIGNIN[t] then return "signin" end
  if ADMIN[t] then return "admin" end
  return "user"
end

local function event_row(e)
  local by, src = type(e.created_by) == "table" and e.created_by or {}, type(e.source) == "table" and e.source or {}
  return {
    ext_id = e.event_id, time = when(e.created_at), kind = kind_of(e.event_type), action = e.event_type,
    actor = str(by.login) or str(by.name), actor_id = str(by.id),
    target = str(src.item_name) or str(src.login) or str(src.name), target_id = str(src.item_id) or str(src.id),
    ip = str(e.ip_address), outcome = e.event_type == "FAILED_LOGIN" and "failure" or (e.event_type == "LOGIN" and "success" or nil),
    app = "Box",
  }
end

-- What event_row and the watermark read of an event: the only members decoded (raw: the event's whole text).
local EVENT_FIELDS = { "event_id", "created_at", "event_type", "ip_address", "created_by.login", "created_by.name",
  "created_by.id", "source.item_name", "source.login", "source.name", "source.item_id", "source.id" }

-- GET /events until Box has no more: an empty chunk (or a position that no longer moves).  A chunk shorter
-- than the limit is no end: "events less than the limit requested can be returned even when there may
-- be more events remaining" (the limit parameter).  page(entries, next_stream_position) per chunk.
local function read_events(ctx, query, page)
  local pos = query.stream_position
  for _ = 1, 100000 do
    local entries, resp = ctx:list("/events", query, "entries", { fields = EVENT_FIELDS })
    local d = resp.data
    local nxt = d.next_stream_position ~= nil and tostring(d.next_stream_position) or pos
    page(entries, nxt)
    if #entries == 0 or nxt == pos then return nxt end
    pos, query.stream_position = nxt, nxt
  end
  fail("events: more than 100,000 chunks without an end", "http")
end

-- The activity stream is admin_logs_streaming (§5): low latency, two weeks kept, at least once and not
-- in order (rows are keyed by event_id: a repeat changes nothing); the cursor is its next_stream_position.
-- The first run reads the history with admin_logs (chronological, one year, created_after/created_before:
-- initial_days back to now), after taking the streaming position "now" first, so what happens meanwhile
-- is read by the stream (twice at worst, never lost).  A cursor of the admin_logs stream (before this
-- change) is no streaming position: the first run again (repeats change nothing).
local LIVE = "streaming:"
c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local pos = type(cursor) == "string" and cursor:match("^" .. LIVE .. "(.+)$")
  local newest
  local function seen(entries)
    for _, e in ipairs(entries) do
      local t = when(e.created_at)
      if t and (not newest or t > newest) then newest = t end
    end
  end
  if not pos then
    local _, now_resp = ctx:list("/events", { stream_type = "admin_logs_streaming", stream_position = "now" }, "entries")
    pos = now_resp.data.next_stream_position ~= nil and tostring(now_resp.data.next_stream_position) or "now"
    local days = tonumber(ctx.settings.initial_days) or c.initial_days
    local now = sched.time()
    local function stamp(t) return (iso(t):gsub("%.%d+Z$", "Z")) end
    read_events(ctx, { stream_type = "admin_logs", limit = EVENTS_PAGE, created_after = stamp(now - days * 86400),
                       created_before = stamp(now + 1) }, function(entries)
      seen(entries)
      ctx:emit("activities", entries, event_row)
    end)
  end
  ctx:checkpoint(LIVE .. pos, newest)
  read_events(ctx, { stream_type = "admin_logs_streaming", limit = EVENTS_PAGE, stream_position = pos }, function(entries, nxt)
    seen(entries)
    ctx:checkpoint(LIVE .. nxt, newest)
    ctx:emit("activities", entries, event_row)
  end)
end

c.stream_order = { users = 1, groups = 2, files = 3, activities = 4 }

---------------------------------------------------------------------------------------------- governance
local function user_path(user) return "/users/" .. urlencode(user.ext_id) end

-- §7: status inactive / active; sign-out is POST /users/terminate_sessions, whose body has both of its
-- required fields (user_ids and user_logins, arrays of strings).
function c.actions.suspend_user(ctx, user)
  ctx:put(user_path(user), { status = "inactive" })
  return { undo = { action = "unsuspend_user", params = {} } }
end
function c.actions.unsuspend_user(ctx, user)
  ctx:put(user_path(user), { status = "active" })
  return { undo = { action = "suspend_user", params = {} } }
end
function c.actions.revoke_sessions(ctx, user)
  ctx:post("/users/terminate_sessions", { user_ids = { tostring(user.ext_id) },
                                          user_logins = str(user.email) and { user.email } or json.array({}) })
end

-- Calls on an item as an account (headers: As-User, or nil for the token's own).
local function call(ctx, method, path, headers, opts)
  opts = opts or {}
  opts.headers = headers
  return ctx:request(method, path, opts)
end

-- The current item (trashed or not): GET /files/{id}, else GET /files/{id}/trash.
local function current(ctx, row, headers)
  local base = item_path(row)
  return ctx:try_get(base, { fields = ITEM_FIELDS }, { headers = headers })
    or ctx:get(base .. "/trash", { fields = ITEM_FIELDS }, { headers = headers })
end

local function find_child(ctx, folder_id, name, headers)
  for page in marker_pages(ctx, "/folders/" .. folder_id .. "/items", { fields = "id,type,name" }, headers) do
    for _, it in ipairs(page) do if it.name == name then return it end end
  end
end

-- The admin quarantine folder: the setting, else "cachost quarantine" in the root of the token's own
-- account (the service account: no managed user sees it), created once; a 409 item_name_in_use names
-- the existing one.  This process remembers it per enterprise, with the owners it made uploaders there
-- (one POST /folders and one POST /collaborations per owner, not one each per quarantine); `again` forgets
-- it (an admin deleted or trashed the folder, or removed an owner's collaboration: looked up anew).
-- -> id, what is remembered of it ({id, uploaders}; nil for the setting's folder), from memory (true|nil)
local QUARANTINE = "cachost quarantine"
local quarantines = {}
local function quarantine_folder(ctx, again)
  local id = str(ctx.settings.quarantine_folder_id)
  if id then return id end
  local key = ("%s\0%s\0%s"):format(ctx.instance, tostring(ctx.settings.enterprise_id), tostring(ctx.settings.base_url))
  if again then quarantines[key] = nil end
  local q = quarantines[key]
  if q then return q.id, q, true end
  local resp, err, token, r = ctx:try("POST", "/folders", { json = { name = QUARANTINE, parent = { id = "0" } } })
  if resp then id = resp.data.id end
  local d = r and r.data
  if not id and r and r.status == 409 and type(d) == "table" and type(d.context_info) == "table" and type(d.context_info.conflicts) == "table" then
    local cf = d.context_info.conflicts[1] or d.context_info.conflicts
    id = cf.id
  end
  if not id then
    local f = find_child(ctx, "0", QUARANTINE)
    id = f and f.id
  end
  if not id then fail(err, token) end
  q = { id = id, uploaders = {} }
  quarantines[key] = q
  return id, q
end

-- POST /collaborations as the token's own account; one that exists already is fine.  -> its id | nil
local function collaborate(ctx, item_type, item_id, user_id, role)
  local resp, err, token, r = ctx:try("POST", "/collaborations", { json = { item = { type = item_type, id = item_id },
    accessible_by = { type = "user", id = user_id }, role = role }, query = { notify = "false" } })
  if resp then return resp.data.id end
  local d = r and r.data
  if r and (r.status == 400 or r.status == 409) and type(d) == "table" and d.code == "user_already_collaborator" then return nil end
  fail(err, token)
end

-- Move with PUT {parent:{id}}; a name taken in the target (409) gets the item id in front.
local function move(ctx, it, parent_id, name, headers)
  local path = "/files/" .. urlencode(it.id)
  local resp, err, token, r = ctx:try("PUT", path, { json = { parent = { id = parent_id }, name = name }, headers = headers })
  if resp then return resp.data end
  if r and r.status == 409 then
    return call(ctx, "PUT", path, headers, { json = { parent = { id = parent_id }, name = it.id .. " " .. (name or it.name) } })
  end
  fail(err, token)
end

local function upload(ctx, path, attributes, name, data, headers)
  local d = call(ctx, "POST", upload_base(ctx) .. path, headers, { multipart = {
    { name = "attributes", data = json.encode(attributes) },
    { name = "file", filename = name, content_type = "text/plain", data = data },
  } })
  return d.entries[1]
end

-- Quarantine (§7), as the file's owner (As-User): a trashed file is restored first (POST /files/{id}); it
-- loses its own shared link and external collaborators, then moves to the admin quarantine folder, which
-- the owner may put things into (an uploader collaboration: uploaders do not see the folder's content),
-- and becomes the folder owner's (Box: an item moved into another user's folder is theirs); a tombstone
-- "<name>.quarantined.txt" with the correlation id takes its place in the original folder.
function c.actions.quarantine_file(ctx, file, params)
  params = params or {}
  local headers = owner_headers(ctx, file)
  local owner = headers and headers["As-User"]
  local it = current(ctx, file, headers)
  if it.item_status == "trashed" then it = call(ctx, "POST", "/files/" .. urlencode(it.id), headers, { json = {} }) end
  local origin = it.parent.id
  local qid, q, remembered = quarantine_folder(ctx)
  if origin == qid then fail("file is already in the quarantine folder", "http") end
  c.actions.make_private(ctx, file)
  local function into(folder_id)
    if owner and not (q and q.uploaders[owner]) then
      collaborate(ctx, "folder", folder_id, owner, "uploader")
      if q then q.uploaders[owner] = true end
    end
    return move(ctx, it, folder_id, nil, headers)
  end
  local ok, moved = pcall(into, qid)
  if not ok and remembered and token_of(moved) == "not_found" then
    -- the remembered folder, or the owner's access to it, is gone (or the file: then the move fails again)
    qid, q = quarantine_folder(ctx, true)
    moved = into(qid)
  elseif not ok then
    error(moved, 0)
  end
  local note = ("This file was quarantined by your administrator.\n\nFile: %s\nOriginal location: %s\n" ..
    "Moved to: admin quarantine folder '%s' (id %s) as '%s'\nCorrelation id: %s\n"):format(
    it.name, path_of(it), QUARANTINE, qid, moved.name, tostring(params.correlation_id or "-"))
  local tomb = upload(ctx, "/files/content", { name = it.name .. ".quarantined.txt", parent = { id = origin } },
    it.name .. ".quarantined.txt", note, headers)
  return { undo = { action = "unquarantine_file", params = { parent_id = origin, name = it.name, tombstone_id = tomb.id,
    owner_id = owner, correlation_id = params.correlation_id } } }
end

-- Undo: the quarantined file is the quarantine folder owner's now; its original owner is made its editor,
-- moves it home as themselves (it is theirs again there) and the temporary collaboration goes.
function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  local origin = params.parent_id
  if not origin then fail("unquarantine_file needs params.parent_id (the quarantine's undo record)", "http") end
  local owner = str(params.owner_id)
  local headers = as_user(owner)
  local it = ctx:try_get(item_path(file), { fields = ITEM_FIELDS }) or current(ctx, file, headers)
  local name = params.name or it.name
  local temp = owner and owner_id(it) ~= owner and collaborate(ctx, "file", it.id, owner, "editor")
  local tomb_id = params.tombstone_id
  if not tomb_id then
    local t = find_child(ctx, origin, name .. ".quarantined.txt", headers)
    tomb_id = t and t.id
  end
  if tomb_id then
    local _, err, token = ctx:try("DELETE", "/files/" .. urlencode(tomb_id), { headers = headers })
    if err and token ~= "not_found" then fail(err, token) end
  end
  move(ctx, it, origin, name, headers)
  if temp then
    local _, err, token = ctx:try("DELETE", "/collaborations/" .. urlencode(temp), { headers = headers })
    if err and token ~= "not_found" then fail(err, token) end
  end
end

local function delete_collabs(ctx, row, only_external, headers)
  local inside = insiders(ctx)
  local list = {}
  for page in marker_pages(ctx, item_path(row) .. "/collaborations", nil, headers) do
    for _, cb in ipairs(page) do
      if not only_external or is_external(cb, inside) then list[#list + 1] = cb.id end
    end
  end
  for _, cid in ipairs(list) do call(ctx, "DELETE", "/collaborations/" .. urlencode(cid), headers) end
  return #list
end

-- params.collaboration_id removes that one; without it every external collaborator goes.  As the owner.
function c.actions.remove_collaborator(ctx, file, params)
  params = params or {}
  local headers = owner_headers(ctx, file)
  local id = params.collaboration_id and tostring(params.collaboration_id):gsub("^collab:", "")
  if id then call(ctx, "DELETE", "/collaborations/" .. urlencode(id), headers); return end
  delete_collabs(ctx, file, true, headers)
end

function c.actions.remove_shared_link(ctx, file)
  call(ctx, "PUT", item_path(file), owner_headers(ctx, file), { query = { fields = "shared_link" }, json = { shared_link = json.null } })
end

function c.actions.make_private(ctx, file)
  c.actions.remove_shared_link(ctx, file)
  delete_collabs(ctx, file, true, owner_headers(ctx, file))
end

-- DELETE moves the item to the owner's trash (restorable with POST /files/{id} for the retention period).
function c.actions.trash_file(ctx, file)
  local headers = owner_headers(ctx, file)
  if file.is_folder == 1 then call(ctx, "DELETE", "/folders/" .. urlencode(file.ext_id), headers, { query = { recursive = "true" } })
  else call(ctx, "DELETE", "/files/" .. urlencode(file.ext_id), headers) end
end

-- A new version whose content is the notice; earlier versions stay in the version history.
function c.actions.overwrite_file(ctx, file, params)
  local notice = (params and params.notice) or "This file's content was removed by your administrator."
  upload(ctx, "/files/" .. urlencode(file.ext_id) .. "/content", {}, file.name, notice, owner_headers(ctx, file))
end

c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user", quarantine_file = "unquarantine_file" }

---------------------------------------------------------------------------------------------- webhooks
-- §10: base64(HMAC-SHA256(key, body .. BOX-DELIVERY-TIMESTAMP)) with the primary and the secondary key;
-- either matching is enough (keys rotate one at a time).  A timestamp more than 10 minutes away is
-- refused.  BOX-DELIVERY-ID is not signed (and changes on retry), so what was already handled is known by
-- the signed body's event id (stable across retries), or the signed bytes themselves: remembered while
-- its timestamp can pass (twice MAX_AGE, for clock skew both ways), acknowledged 200 and not handled again.
local MAX_AGE = 600

function c.webhook(ctx, req)
  local h = req.headers
  local primary, secondary = ctx:secret("webhook_primary_key"), ctx:secret("webhook_secondary_key")
  if not primary and not secondary then return 403, { error = "webhook keys not configured" } end
  local ts = h["box-delivery-timestamp"] or ""
  local body = req.body or ""
  local ok = false
  for _, pair in ipairs { { primary, h["box-signature-primary"] }, { secondary, h["box-signature-secondary"] } } do
    local key, sig = pair[1], pair[2]
    if key and sig and crypto.equal(sig, crypto.b64(crypto.hmac_sha256(key, body .. ts))) then ok = true end
  end
  if not ok then return 401, { error = "bad signature" } end
  local t = parse_iso(ts)
  local now = sched.time()
  if not t or now - t > MAX_AGE or t - now > MAX_AGE then return 401, { error = "stale delivery" } end
  local p, status, why = webhook.json(req)
  if not p then return status, { error = why } end
  if type(p) ~= "table" then return 400, { error = "body is not a JSON object" } end
  local key = type(p.id) == "string" and p.id ~= "" and "event:" .. p.id or "sig:" .. crypto.hex(crypto.sha256(body .. ts))
  if not webhook.first(ctx.instance .. "/box", key, 2 * MAX_AGE + 60) then return 200, { ok = true, duplicate = true } end
  local src = type(p.source) == "table" and p.source or {}
  local refetch = {}
  -- an id we can put in a URL: a non-empty string (Box's), or an integer
  local id = (type(src.id) == "string" and src.id ~= "" or math.type(src.id) == "integer") and tostring(src.id) or nil
  if src.type == "file" and id then
    -- the owner: a new file's re-fetch has no stored row to find it in (As-User needs it)
    local owner = type(src.owned_by) == "table" and str(src.owned_by.id) or nil
    refetch[1] = { entity = "files", id = id, owner_id = owner }
  end
  return 200, nil, refetch
end

return c
