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
  { "quarantine_folder_id", help = "admin folder quarantined files are moved to (default: 'cachost quarantine' in the root)" },
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

-- Marker pagination (§8): usemarker=true, then marker=next_marker until it is null or empty.
local function marker_pages(ctx, path, query)
  query = query or {}
  query.usemarker, query.limit = "true", query.limit or PAGE
  return ctx:pages(path, query, {
    items = "entries",
    next = function(resp)
      local m = resp.data.next_marker
      if type(m) ~= "string" or m == "" then return nil end
      local q = {}
      for k, v in pairs(query) do q[k] = v end
      q.marker = m
      return path, q
    end,
  })
end

-- Offset pagination (§8): stop when offset + limit >= total_count.  A page without total_count is not
-- what Box documents: taking it for the last page would end the listing early (and mark the rest deleted).
local function offset_pages(ctx, path, query)
  query = query or {}
  query.limit, query.offset = query.limit or PAGE, 0
  return ctx:pages(path, query, {
    items = "entries",
    next = function(resp)
      local d = resp.data
      local total = math.tointeger(d.total_count)
      if not total then error(("malformed listing: no total_count in an offset page (GET %s)"):format(path), 0) end
      local nxt = (tonumber(d.offset) or 0) + (tonumber(d.limit) or PAGE)
      if nxt >= total then return nil end
      local q = {}
      for k, v in pairs(query) do q[k] = v end
      q.offset = nxt
      return path, q
    end,
  })
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
function c.streams.groups(ctx)
  local ids = {}
  for page in offset_pages(ctx, "/groups", { fields = "id,type,name,description,group_type" }) do
    ctx:emit("groups", page, function(g)
      ids[#ids + 1] = g.id
      return { ext_id = g.id, name = g.name, description = str(g.description) }
    end)
  end
  for _, gid in ipairs(ids) do
    for page in offset_pages(ctx, "/groups/" .. gid .. "/memberships") do
      ctx:emit("group_members", page, function(m)
        return { ext_id = m.id, group_id = gid, member_id = m.user.id, member_type = "user", role = m.role }
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

local function item_path(it) return (it.type == "folder" and "/folders/" or "/files/") .. it.ext_id end

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
local function collaborations(ctx, it, inside)
  local rows, level = {}, "private"
  if not it.has_collaborations then return rows, level end
  for page in marker_pages(ctx, (it.type == "folder" and "/folders/" or "/files/") .. it.id .. "/collaborations") do
    for _, cb in ipairs(page) do
      local ext = is_external(cb, inside)
      local who = type(cb.accessible_by) == "table" and cb.accessible_by or {}
      level = raise(level, ext and "external" or "internal")
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
local function item_rows(ctx, it, inherited, path, inside, trashed)
  local perms, level = collaborations(ctx, it, inside)
  local lrow, llevel = link_row(it)
  if lrow then perms[#perms + 1] = lrow end
  level = raise(raise(level, llevel), inherited)
  return file_row(it, path, level, trashed), perms, level
end

-- Walk the tree from the root folder "0" (the whole enterprise with an admin / enterprise_content
-- token), breadth first; a folder's collaborators and links reach everything below it.  Then the trash.
function c.streams.files(ctx)
  local inside = insiders(ctx)
  local queue = { { id = "0", path = "", level = "private" } }
  local head = 1
  while queue[head] do
    local f = queue[head]
    head = head + 1
    for page in marker_pages(ctx, "/folders/" .. f.id .. "/items", { fields = ITEM_FIELDS }) do
      local rows, perms = {}, {}
      for _, it in ipairs(page) do
        if it.type == "file" or it.type == "folder" then
          local path = f.path .. "/" .. it.name
          local row, p, level = item_rows(ctx, it, f.level, path, inside, false)
          rows[#rows + 1] = row
          for _, x in ipairs(p) do perms[#perms + 1] = x end
          if it.type == "folder" then queue[#queue + 1] = { id = it.id, path = path, level = level } end
        elseif not (str(it.id) and str(it.type)) then
          ctx:reject("files", "an item without id or type")     -- web links are skipped, not this
        end
      end
      ctx:emit("files", rows, function(r) return r end)
      ctx:emit("file_permissions", perms, function(r) return r end)
    end
  end
  for page in marker_pages(ctx, "/folders/trash/items", { fields = ITEM_FIELDS }) do
    ctx:emit("files", page, function(it) return file_row(it, path_of(it), "private", true) end)
  end
end

-- Targeted re-fetch (webhooks): one file with its ancestors' sharing; gone or trashed -> its new state.
function c.fetch.files(ctx, id)
  local it = ctx:try_get("/files/" .. urlencode(id), { fields = ITEM_FIELDS })
  if not it then
    local t = ctx:try_get("/files/" .. urlencode(id) .. "/trash", { fields = ITEM_FIELDS })
    if t then ctx:emit("files", { t }, function(x) return file_row(x, path_of(x), "private", true) end) end
    return
  end
  local inside = insiders(ctx)
  local level = "private"
  for _, p in ipairs(type(it.path_collection) == "table" and it.path_collection.entries or {}) do
    if p.id ~= "0" then
      local f = ctx:get("/folders/" .. p.id, { fields = "id,type,shared_link,has_collaborations" })
      local _, fl = collaborations(ctx, f, inside)
      local _, ll = link_row(f)
      level = raise(raise(level, fl), ll)
    end
  end
  local row, perms = item_rows(ctx, it, level, path_of(it), inside, it.item_status == "trashed")
  ctx:emit("files", { it }, function() return row end)
  ctx:emit("file_permissions", perms, function(r) return r end)
end

-- Content for the data scan: GET /files/{id}/content answers 302 to a download URL (followed); the
-- body is capped at max_size (the http layer aborts with too_large).
function c.content(ctx, file, max_size)
  if file.is_folder == 1 then return nil, "unsupported: a folder has no content" end
  local resp, err = ctx:try("GET", "/files/" .. urlencode(file.ext_id) .. "/content",
    { max_size = max_size, raw = true, headers = { Accept = "*/*" } })
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

c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local query = { stream_type = "admin_logs", limit = EVENTS_PAGE }
  if cursor then query.stream_position = cursor
  else
    local days = tonumber(ctx.settings.initial_days) or c.initial_days
    query.created_after = (iso(sched.time() - days * 86400):gsub("%.%d+Z$", "Z"))
  end
  local pos = cursor
  for _ = 1, 100000 do
    local entries, resp = ctx:list("/events", query, "entries")
    local d = resp.data
    local nxt = d.next_stream_position ~= nil and tostring(d.next_stream_position) or pos
    ctx:checkpoint(nxt, #entries > 0 and when(entries[#entries].created_at) or nil)
    ctx:emit("activities", entries, event_row)
    if #entries < EVENTS_PAGE or nxt == pos then return end
    pos = nxt
    query = { stream_type = "admin_logs", limit = EVENTS_PAGE, stream_position = nxt }
  end
end

c.stream_order = { users = 1, groups = 2, files = 3, activities = 4 }

---------------------------------------------------------------------------------------------- governance
local function user_path(user) return "/users/" .. urlencode(user.ext_id) end

-- §7: status inactive / active; sign-out is POST /users/terminate_sessions.
function c.actions.suspend_user(ctx, user)
  ctx:put(user_path(user), { status = "inactive" })
  return { undo = { action = "unsuspend_user", params = {} } }
end
function c.actions.unsuspend_user(ctx, user)
  ctx:put(user_path(user), { status = "active" })
  return { undo = { action = "suspend_user", params = {} } }
end
function c.actions.revoke_sessions(ctx, user)
  ctx:post("/users/terminate_sessions", { user_ids = { user.ext_id } })
end

local function raw_of(row)
  if type(row.raw) == "table" then return row.raw end
  return type(row.raw) == "string" and json.decode(row.raw) or {}
end

-- The current item (trashed or not): GET /files/{id}, else GET /files/{id}/trash.
local function current(ctx, row)
  local base = item_path(row)
  return ctx:try_get(base, { fields = ITEM_FIELDS }) or ctx:get(base .. "/trash", { fields = ITEM_FIELDS })
end

local function find_child(ctx, folder_id, name)
  for page in marker_pages(ctx, "/folders/" .. folder_id .. "/items", { fields = "id,type,name" }) do
    for _, it in ipairs(page) do if it.name == name then return it end end
  end
end

-- The admin quarantine folder: the setting, else "cachost quarantine" in the root (created once; a 409
-- item_name_in_use names the existing one).
local QUARANTINE = "cachost quarantine"
local function quarantine_folder(ctx)
  local id = str(ctx.settings.quarantine_folder_id)
  if id then return id end
  local resp, err, token, r = ctx:try("POST", "/folders", { json = { name = QUARANTINE, parent = { id = "0" } } })
  if resp then return resp.data.id end
  local d = r and r.data
  if r and r.status == 409 and type(d) == "table" and type(d.context_info) == "table" and type(d.context_info.conflicts) == "table" then
    local cf = d.context_info.conflicts[1] or d.context_info.conflicts
    if cf.id then return cf.id end
  end
  local f = find_child(ctx, "0", QUARANTINE)
  if f then return f.id end
  fail(err, token)
end

-- Move with PUT {parent:{id}}; a name taken in the target (409) gets the item id in front.
local function move(ctx, it, parent_id, name)
  local path = "/files/" .. urlencode(it.id)
  local resp, err, token, r = ctx:try("PUT", path, { json = { parent = { id = parent_id }, name = name } })
  if resp then return resp.data end
  if r and r.status == 409 then return ctx:put(path, { parent = { id = parent_id }, name = it.id .. " " .. (name or it.name) }) end
  fail(err, token)
end

local function upload(ctx, path, attributes, name, data)
  local d = ctx:request("POST", upload_base(ctx) .. path, { multipart = {
    { name = "attributes", data = json.encode(attributes) },
    { name = "file", filename = name, content_type = "text/plain", data = data },
  } })
  return d.entries[1]
end

-- Quarantine (§7): a trashed file is restored first (POST /files/{id}); the file moves to the admin
-- quarantine folder and a tombstone "<name>.quarantined.txt" in its original folder says why and where.
-- Admin quarantine: the file leaves its folder for one only admins see, loses its own shared link and
-- external collaborators on the way, and a tombstone with the correlation id takes its place.
function c.actions.quarantine_file(ctx, file, params)
  params = params or {}
  local it = current(ctx, file)
  if it.item_status == "trashed" then it = ctx:post("/files/" .. urlencode(it.id), {}) end
  local origin = it.parent.id
  local qid = quarantine_folder(ctx)
  if origin == qid then error("http: file is already in the quarantine folder", 0) end
  local moved = move(ctx, it, qid)
  c.actions.make_private(ctx, file)
  local note = ("This file was quarantined by your administrator.\n\nFile: %s\nOriginal location: %s\n" ..
    "Moved to: admin quarantine folder '%s' (id %s) as '%s'\nCorrelation id: %s\n"):format(
    it.name, path_of(it), QUARANTINE, qid, moved.name, tostring(params.correlation_id or "-"))
  local tomb = upload(ctx, "/files/content", { name = it.name .. ".quarantined.txt", parent = { id = origin } },
    it.name .. ".quarantined.txt", note)
  return { undo = { action = "unquarantine_file", params = { parent_id = origin, name = it.name, tombstone_id = tomb.id,
    correlation_id = params.correlation_id } } }
end

function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  local it = current(ctx, file)
  local origin = params.parent_id
  local name = params.name or it.name
  if not origin then error("http: unquarantine_file needs params.parent_id (the quarantine's undo record)", 0) end
  local tomb_id = params.tombstone_id
  if not tomb_id then
    local t = find_child(ctx, origin, name .. ".quarantined.txt")
    tomb_id = t and t.id
  end
  if tomb_id then
    local _, err, token = ctx:try("DELETE", "/files/" .. urlencode(tomb_id))
    if err and token ~= "not_found" then fail(err, token) end
  end
  move(ctx, it, origin, name)
end

local function delete_collabs(ctx, row, only_external, id)
  local inside = insiders(ctx)
  local n = 0
  local list = {}
  for page in marker_pages(ctx, item_path(row) .. "/collaborations") do
    for _, cb in ipairs(page) do
      if (id and cb.id == id) or (not id and (not only_external or is_external(cb, inside))) then list[#list + 1] = cb.id end
    end
  end
  for _, cid in ipairs(list) do ctx:delete("/collaborations/" .. urlencode(cid)); n = n + 1 end
  return n
end

-- params.collaboration_id removes that one; without it every external collaborator goes.
function c.actions.remove_collaborator(ctx, file, params)
  params = params or {}
  local id = params.collaboration_id and tostring(params.collaboration_id):gsub("^collab:", "")
  if id then ctx:delete("/collaborations/" .. urlencode(id)); return end
  delete_collabs(ctx, file, true)
end

function c.actions.remove_shared_link(ctx, file)
  ctx:request("PUT", item_path(file), { query = { fields = "shared_link" }, json = { shared_link = json.null } })
end

function c.actions.make_private(ctx, file)
  c.actions.remove_shared_link(ctx, file)
  delete_collabs(ctx, file, true)
end

-- DELETE moves the item to the trash (restorable with POST /files/{id} for the retention period).
function c.actions.trash_file(ctx, file)
  if file.is_folder == 1 then ctx:delete("/folders/" .. urlencode(file.ext_id), { recursive = "true" })
  else ctx:delete("/files/" .. urlencode(file.ext_id)) end
end

-- A new version whose content is the notice; earlier versions stay in the version history.
function c.actions.overwrite_file(ctx, file, params)
  local notice = (params and params.notice) or "This file's content was removed by your administrator."
  upload(ctx, "/files/" .. urlencode(file.ext_id) .. "/content", {}, file.name, notice)
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
  if src.type == "file" and id then refetch[1] = { entity = "files", id = id } end
  return 200, nil, refetch
end

return c
