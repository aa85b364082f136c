-- Dropbox Business (a team-scoped app, API v2).  Reference: shared/api/dropbox.md.
-- Every route is a POST under /2/ with a JSON argument (§1); listings go on by POSTing their cursor to the
-- matching /continue route (§9); content routes carry their argument in Dropbox-API-Arg on the content
-- host.  The team token acts on the team's routes as the team; on a member's content as that member
-- (Dropbox-API-Select-User) or as an admin (Dropbox-API-Select-Admin: "whole_team" routes read any
-- namespace, "team_admin" ones only what the admin may reach), in the namespace Dropbox-API-Path-Root names.
local c = connector "dropbox"
c.title = "Dropbox Business"
c.settings = {
  { "client_id", required = true, help = "the app key (App Console)" },
  { "client_secret", secret = true, help = "the app secret: OAuth client secret and the key of webhook signatures" },
  { "content_base_url", example = "https://content.dropboxapi.com", help = "content host (default Dropbox's; a sandbox serves both)" },
  { "oauth_base_url", example = "https://api.dropboxapi.com", help = "host of /oauth2/token and /oauth2/authorize (default Dropbox's)" },
  { "admin_member_id", example = "dbmid:AAHhy7WsR0x-u4ZCqiDl5Fz5zvuL3kmspwU", help = "team_member_id of the team admin cachost acts as (default: the admin who linked the app)" },
  { "quarantine_path", example = "/cachost quarantine", help = "folder of the admin's own Dropbox quarantined files are copied into" },
}
c.base_url = "https://api.dropboxapi.com"
local CONTENT = "https://content.dropboxapi.com"
c.hosts = function(s) return { str(s.content_base_url) or CONTENT } end

-- §2: authorization code with PKCE for a team-scoped app, offline (a long-lived refresh token, reused; access
-- tokens last 4 hours).  The consent is on www.dropbox.com, the token endpoint on the API host; a sandbox
-- (oauth_base_url) serves both.
local SCOPES = { "team_info.read", "members.read", "members.write", "groups.read", "events.read", "sessions.list", "sessions.modify",
  "team_data.member", "files.metadata.read", "files.content.read", "files.content.write", "sharing.read", "sharing.write" }
c.auth = {
  type = "oauth2", grant = "authorization_code", pkce = true, base_url = "https://api.dropboxapi.com", token_url = "/oauth2/token",
  authorize_url = function(s) return (str(s.oauth_base_url) or "https://www.dropbox.com"):gsub("/+$", "") .. "/oauth2/authorize" end,
  authorize_params = { token_access_type = "offline" },
  scopes = SCOPES,
}

c.capabilities = {
  users = true, groups = true, privileges = true, files = true, app_grants = true, activities = { "signin", "admin", "user" },
}

-- Scopes (App Console, Permissions tab) by capability (Stone's `scope` of each route); the app must be
-- team-scoped and linked by a team admin.
c.needs = {
  users = { "members.read" }, privileges = { "members.read" }, groups = { "groups.read" },
  activities = { "events.read" }, app_grants = { "sessions.list (linked apps)" },
  files = { "team_data.member (act as members and admins)", "files.metadata.read", "files.content.read (DLP)", "sharing.read",
            "team_info.read (the linking admin)" },
  actions = { "members.write (suspend)", "sessions.modify (sign-out, revoke apps)", "files.content.write", "sharing.write" },
  webhooks = { "the app secret (webhook signatures); the webhook URI set in the App Console" },
}

-- §10: 409 {"error_summary": "path/not_found/..", "error": {".tag": ...}}; 400 is plain text; OAuth
-- {"error", "error_description"}.
function c.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return resp.body:sub(1, 200) end
  local e = type(d.error) == "table" and d.error or {}
  local scope = str(e.required_scope) and (" (needs scope " .. e.required_scope .. ")") or ""
  return tostring(d.error_summary or d.error_description or d.error or resp.body:sub(1, 200)) .. scope
end

local function tag_of(resp)
  local d = resp.data
  return type(d) == "table" and type(d.error) == "table" and d.error[".tag"] or nil
end

-- Dropbox's 401 also says "this token lacks a scope" and "this member cannot be acted as"; a 409 says what
-- is gone by its tag, or by the LookupError inside it; a 422 refuses a Path-Root the caller may not use.
local GONE = { not_found = true, shared_link_not_found = true, member_not_found = true, app_not_found = true,
  user_not_found = true, id_not_found = true, device_session_not_found = true }
local LOOKUP = { path = true, path_lookup = true, from_lookup = true }
function c.fault_token(resp)
  local t = tag_of(resp)
  if resp.status == 401 then
    if t == "missing_scope" or t == "invalid_select_admin" then return "permission" end
    if t == "invalid_select_user" or t == "user_suspended" then return "not_found" end
  elseif resp.status == 409 and t then
    local inner = resp.data.error[t]
    if GONE[t] or (LOOKUP[t] and type(inner) == "table" and inner[".tag"] == "not_found") then return "not_found" end
  elseif resp.status == 422 then
    return "permission"
  end
end

local PAGE = 1000                          -- members, groups, namespaces, team_log, folder members
local FILES_PAGE = 2000                    -- list_folder
local OVERLAP = 600                        -- seconds read again when the team_log is started afresh

local function when(v) local t = parse_iso(v) return t and iso(t) or nil end
local function tag(v) return type(v) == "table" and v[".tag"] or nil end

-- A listing by cursor: POST route with arg, then POST continue with {"cursor"} while has_more (§9).
local function listing(ctx, route, arg, items, continue, headers)
  return ctx:pages("/2/" .. route, nil, { method = "POST", body = arg, items = items, headers = headers,
    next = function(resp)
      local d = resp.data
      if d.has_more ~= true then return nil end
      if type(d.cursor) ~= "string" or d.cursor == "" then error("malformed listing: has_more without a cursor (" .. route .. ")", 0) end
      return "/2/" .. continue, nil, { cursor = d.cursor }
    end })
end

-- An RPC call (a Void argument is sent as null) -> data | raises; try_call -> resp | nil, err, token, resp
local function call(ctx, route, arg, headers)
  return ctx:request("POST", "/2/" .. route, { json = arg == nil and json.null or arg, headers = headers, expect_json = true })
end
local function try_call(ctx, route, arg, headers)
  return ctx:try("POST", "/2/" .. route, { json = arg == nil and json.null or arg, headers = headers, expect_json = true })
end
local function content_base(ctx) return (str(ctx.settings.content_base_url) or CONTENT):gsub("/+$", "") end

local function member_sel(id) return { [".tag"] = "team_member_id", team_member_id = id } end

---------------------------------------------------------------------------------------------- users
-- §3: status active / invited / suspended / removed (include_removed); admin roles of list_v2.
local STATUS = { active = "active", invited = "pending", suspended = "suspended", removed = "deprovisioned" }

local function user_row(m)
  local p = m.profile
  return {
    ext_id = p.team_member_id, email = p.email, display_name = type(p.name) == "table" and p.name.display_name or nil,
    status = STATUS[tag(p.status)] or error("unknown member status " .. tostring(tag(p.status))),
    is_admin = (type(m.roles) == "table" and #m.roles > 0) and 1 or 0, external = 0,
    created_at = when(p.joined_on) or when(p.invited_on),
  }
end

function c.streams.users(ctx)
  local admins = {}
  for page in listing(ctx, "team/members/list_v2", { limit = PAGE, include_removed = true }, "members", "team/members/list/continue_v2") do
    ctx:emit("users", page, user_row)
    local privs = {}
    for _, m in ipairs(page) do
      local p = type(m) == "table" and type(m.profile) == "table" and m.profile
      if p and tag(p.status) ~= "removed" and type(m.roles) == "table" then
        for _, r in ipairs(m.roles) do
          privs[#privs + 1] = { user = p.team_member_id, role = r }
          admins[p.team_member_id] = true
        end
      end
    end
    ctx:emit("privileges", privs, function(x)
      return { ext_id = x.user .. ":" .. x.role.role_id, user_id = x.user, role = x.role.name, scope = "team", raw = x.role }
    end)
  end
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- groups
function c.streams.groups(ctx)
  local ids = {}
  for page in listing(ctx, "team/groups/list", { limit = PAGE }, "groups", "team/groups/list/continue") do
    ctx:emit("groups", page, function(g)
      ids[#ids + 1] = g.group_id
      return { ext_id = g.group_id, name = g.group_name, description = tag(g.group_management_type) }
    end)
  end
  for _, gid in ipairs(ids) do
    for page in listing(ctx, "team/groups/members/list", { group = { [".tag"] = "group_id", group_id = gid }, limit = PAGE },
        "members", "team/groups/members/list/continue") do
      ctx:emit("group_members", page, function(m)
        local mid = m.profile.team_member_id
        return { ext_id = gid .. ":" .. mid, group_id = gid, member_id = mid, member_type = "user", role = tag(m.access_type) }
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- linked apps
-- §6: the apps each member linked (OAuth grants); Dropbox lists no scopes for them.
function c.streams.app_grants(ctx)
  local email = {}
  for _, u in ipairs(ctx:known_users()) do email[u.ext_id] = u.email end
  -- the same route goes on with {"cursor"}
  for page in listing(ctx, "team/linked_apps/list_members_linked_apps", {}, "apps", "team/linked_apps/list_members_linked_apps") do
    local grants = {}
    for _, m in ipairs(page) do
      if type(m) ~= "table" or type(m.linked_api_apps) ~= "table" then ctx:reject("app_grants", "a member's apps without linked_api_apps")
      else for _, a in ipairs(m.linked_api_apps) do grants[#grants + 1] = { mid = m.team_member_id, app = a } end end
    end
    ctx:emit("app_grants", grants, function(g)
      local a = g.app
      return { ext_id = g.mid .. ":" .. a.app_id, client_id = a.app_id, app_name = a.app_name, user_id = g.mid, user = email[g.mid],
               scopes = a.is_app_folder and "app_folder" or nil, created_at = when(a.linked), raw = a }
    end)
  end
end

---------------------------------------------------------------------------------------------- who acts
-- The admin cachost acts as: the setting, else the admin who linked the app (§2).
local function admin_id(ctx)
  local id = str(ctx.settings.admin_member_id)
  if id then return id end
  local d = call(ctx, "team/token/get_authenticated_admin")
  return d.admin_profile.team_member_id
end

-- Dropbox-API-Path-Root: a namespace (its id is digits: the JSON is ASCII as it is)
local function path_root(ns) return assert(json.encode { [".tag"] = "namespace_id", namespace_id = tostring(ns) }) end
-- reading any namespace: the admin, on whole_team routes (list_folder, get_metadata, download, list_shared_links)
local function admin_read(admin, ns) return { ["Dropbox-API-Select-Admin"] = admin, ["Dropbox-API-Path-Root"] = path_root(ns) } end

local function decode(raw)
  if type(raw) == "string" then raw = json.decode(raw) end
  return type(raw) == "table" and raw or {}
end

-- A stored member by e-mail: {id, ns = their folder's namespace}
local function member_of(ctx, email)
  for _, u in ipairs(ctx:known_users()) do
    if u.email == email then
      local row = ctx:stored("users", u.ext_id)
      local p = decode(row and row.raw).profile or {}
      return { id = u.ext_id, ns = p.member_folder_id }
    end
  end
end

-- The namespace of a stored file row: its shared folder's, else its owner's folder.
local function ns_of(ctx, row)
  local ns = tostring(row.ext_id):match("^ns:(.+)$")
  if ns then return ns end
  local raw = decode(row.raw)
  if type(raw.sharing_info) == "table" and str(raw.sharing_info.parent_shared_folder_id) then return raw.sharing_info.parent_shared_folder_id end
  local m = row.owner and member_of(ctx, row.owner)
  if m and m.ns then return m.ns end
  fail(("cannot tell the namespace of %s (owner %s is not a stored member)"):format(tostring(row.path), tostring(row.owner)), "http")
end

-- Writes on a file (team_admin routes, and those without Select-Admin) are made as the member who owns it
-- (Select-User), in its namespace.  -> headers, member id
local function as_owner(ctx, row)
  local m = row.owner and member_of(ctx, row.owner)
  if not m then fail(("%s has no owner among the team's members"):format(tostring(row.path)), "http") end
  return { ["Dropbox-API-Select-User"] = m.id, ["Dropbox-API-Path-Root"] = path_root(ns_of(ctx, row)) }, m.id
end

---------------------------------------------------------------------------------------------- files
local RANK = { private = 0, internal = 1, external = 2, public = 3 }
local function raise(level, to) return RANK[to] > RANK[level] and to or level end
-- §7: requested public / team_only / password; resolved adds team_and_password, shared_folder_only,
-- no_one, only_you.  A password link opens to anyone who has the password: outside the team.
local LINK_LEVEL = { public = "public", password = "external", team_only = "internal", team_and_password = "internal",
  shared_folder_only = "internal", no_one = "private", only_you = "private" }
local MIME = { txt = "text/plain", pdf = "application/pdf", png = "image/png", jpg = "image/jpeg", csv = "text/csv",
  docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" }

local function link_row(l, now)
  local vis = type(l.link_permissions) == "table" and tag(l.link_permissions.resolved_visibility) or "public"
  local expired = l.expires and (parse_iso(l.expires) or math.huge) < now
  return { ext_id = "link:" .. crypto.hex(crypto.sha256(l.url)):sub(1, 24), file_id = l.id, principal = vis == "public" and "anyone" or vis,
           principal_type = "link", role = "viewer", external = (vis == "public" or vis == "password") and 1 or 0, link = l.url,
           expires_at = when(l.expires), raw = l }, (not expired) and (LINK_LEVEL[vis] or "external") or "private"
end

-- Every shared link of the team: each active member lists the links they made (§7).  -> links by item id
local function team_links(ctx)
  local by, now = {}, sched.time()
  for _, u in ipairs(ctx:known_users()) do
    local row = ctx:stored("users", u.ext_id)
    if row and row.status == "active" then
      for page in listing(ctx, "sharing/list_shared_links", {}, "links", "sharing/list_shared_links",
          { ["Dropbox-API-Select-User"] = u.ext_id }) do
        for _, l in ipairs(page) do
          if type(l) == "table" and str(l.id) and str(l.url) then
            local r, level = link_row(l, now)
            by[l.id] = by[l.id] or {}
            table.insert(by[l.id], { row = r, level = level })
          else
            ctx:reject("file_permissions", "a shared link without id or url")
          end
        end
      end
    end
  end
  return by
end

-- The members of a shared or team folder (§7) as permissions of its namespace row, and the access level
-- they give what is inside.  -> rows, level, owner e-mail | nil
local function folder_members(ctx, admin, ns, kind)
  local rows, level, owner = {}, kind == "team_folder" and "internal" or "private", nil
  local h = { ["Dropbox-API-Select-Admin"] = admin }
  for page in ctx:pages("/2/sharing/list_folder_members", nil, { method = "POST", body = { shared_folder_id = ns, limit = PAGE },
      items = "users", headers = h, next = function(resp)
        local cur = resp.data.cursor
        if type(cur) == "string" and cur ~= "" then return "/2/sharing/list_folder_members/continue", nil, { cursor = cur } end
      end }) do
    local d = page
    for _, m in ipairs(d) do
      local u = m.user or {}
      local ext = u.same_team == false
      local access = tag(m.access_type)
      if access == "owner" and not ext then owner = u.email end
      if #d > 1 or ext then level = raise(level, ext and "external" or "internal") end
      rows[#rows + 1] = { ext_id = ("member:%s:%s"):format(ns, u.account_id or u.email), file_id = "ns:" .. ns, principal = u.email,
        principal_type = "user", role = access, external = ext and 1 or 0, raw = m }
    end
  end
  return rows, level, owner
end

-- One namespace's entries (list_folder recursive from its root, as the admin, §7), with the access level
-- each gets from its own links, a linked folder above it and the namespace itself.  Rows are emitted once
-- the namespace is read (levels need the folders above, which a recursive listing may give later).
-- -> the listing's last cursor (for list_folder/continue)
local function scan_namespace(ctx, admin, ns, links, opts)
  local entries, cursor = {}, nil
  local pages = ctx:pages("/2/files/list_folder", nil, { method = "POST", items = "entries", headers = admin_read(admin, ns.namespace_id),
    body = { path = "", recursive = true, include_mounted_folders = false, include_deleted = false, limit = FILES_PAGE },
    next = function(resp)
      cursor = resp.data.cursor
      if resp.data.has_more ~= true then return nil end
      if type(cursor) ~= "string" or cursor == "" then error("malformed listing: has_more without a cursor (files/list_folder)", 0) end
      return "/2/files/list_folder/continue", nil, { cursor = cursor }
    end })
  for page in pages do
    for _, it in ipairs(page) do
      if type(it) ~= "table" or not str(it[".tag"]) then ctx:reject("files", "an entry without .tag")
      elseif it[".tag"] ~= "deleted" and not it.shared_folder_id then              -- a mounted folder: its own namespace
        if not (str(it.id) and str(it.path_display)) then ctx:reject("files", "an entry without id or path")
        else entries[#entries + 1] = it end
      end
    end
  end
  -- a folder's links reach everything below it
  local linked = {}
  for _, it in ipairs(entries) do
    for _, l in ipairs(links[it.id] or {}) do
      if it[".tag"] == "folder" then linked[it.path_display:lower()] = raise(linked[it.path_display:lower()] or "private", l.level) end
    end
  end
  local byp = {}
  for _, it in ipairs(entries) do if it[".tag"] == "folder" then byp[it.path_display:lower()] = it.id end end
  local rows, perms = {}, {}
  for _, it in ipairs(entries) do
    local level, lp = opts.level, it.path_display:lower()
    for _, l in ipairs(links[it.id] or {}) do level = raise(level, l.level); perms[#perms + 1] = l.row end
    local parent = lp:match("^(.*)/[^/]*$")
    for fp, lv in pairs(linked) do if lp:sub(1, #fp + 1) == fp .. "/" then level = raise(level, lv) end end
    local folder = it[".tag"] == "folder"
    rows[#rows + 1] = {
      ext_id = it.id, name = it.name, path = opts.prefix .. it.path_display, is_folder = folder and 1 or 0, owner = opts.owner,
      parent_id = (parent ~= "" and byp[parent]) or opts.root_id, size = math.tointeger(it.size),
      mime = not folder and MIME[(it.name:match("%.(%w+)$") or ""):lower()] or nil, access_level = level, trashed = 0,
      modified_at = when(it.server_modified), raw = it,
    }
  end
  for i = 1, #rows, 500 do
    ctx:emit("files", table.move(rows, i, math.min(#rows, i + 499), 1, {}), function(r) return r end)
  end
  ctx:emit("file_permissions", perms, function(r) return r end)
  return cursor
end

-- The data scan (periodic, every 12 hours by default): every namespace of the team (§7, team/namespaces/list:
-- members' folders, shared folders, team folders) listed once, as the admin; shared and team folders are
-- rows of their own ("ns:<id>") carrying their members.  Each namespace's last cursor is kept for
-- list_folder/continue (webhooks).
function c.streams.files(ctx)
  local admin = admin_id(ctx)
  local links = team_links(ctx)
  local owners = {}
  for _, u in ipairs(ctx:known_users()) do owners[u.ext_id] = u.email end
  local cursors = {}
  -- "duplicates may occur in the list" (namespaces/list): each namespace read once
  for page in listing(ctx, "team/namespaces/list", { limit = PAGE }, "namespaces", "team/namespaces/list/continue") do
    for _, ns in ipairs(page) do
      local kind = type(ns) == "table" and tag(ns.namespace_type)
      if not kind or not str(ns.namespace_id) then ctx:reject("files", "a namespace without id or type")
      elseif cursors[ns.namespace_id] then                      -- listed already
      elseif kind == "team_member_folder" then
        cursors[ns.namespace_id] = scan_namespace(ctx, admin, ns, links, { level = "private", prefix = "", owner = owners[ns.team_member_id] })
      elseif kind == "shared_folder" or kind == "team_folder" then
        local perms, level, owner = folder_members(ctx, admin, ns.namespace_id, kind)
        owner = owner or owners[admin]
        ctx:emit("files", { ns }, function(x)
          return { ext_id = "ns:" .. x.namespace_id, name = x.name, path = "/" .. x.name, is_folder = 1, owner = owner,
                   access_level = level, trashed = 0 }
        end)
        ctx:emit("file_permissions", perms, function(r) return r end)
        cursors[ns.namespace_id] = scan_namespace(ctx, admin, ns, links,
          { level = level, prefix = "/" .. ns.name, owner = owner, root_id = "ns:" .. ns.namespace_id })
      end                    -- app folders (the apps' own) and team_member_root (the home and team folders, read as such)
    end
  end
  ctx:save_cursor("files", json.encode(cursors))
end

-- One file, as Dropbox has it now (governance, webhooks): its metadata in its namespace and its links
-- (those of the folders above it too); gone: marked deleted.
local function fetch_file(ctx, id, admin)
  local row = ctx:stored("files", id)
  if not row or tostring(id):match("^ns:") then return end
  local ns = ns_of(ctx, row)
  local h = admin_read(admin or admin_id(ctx), ns)
  local resp, err, token = try_call(ctx, "files/get_metadata", { path = id }, h)
  if not resp then
    if token == "not_found" then ctx:retire("files", { id }); return end
    fail(err, token)
  end
  local it = resp.data
  local level = "private"
  local parent = row.parent_id and ctx:stored("files", row.parent_id)
  if parent and parent.access_level then level = raise(level, parent.access_level) end
  local nsrow = ctx:stored("files", "ns:" .. ns)
  if nsrow and nsrow.access_level then level = raise(level, nsrow.access_level) end
  local perms, now = {}, sched.time()
  for page in listing(ctx, "sharing/list_shared_links", { path = id }, "links", "sharing/list_shared_links", h) do
    for _, l in ipairs(page) do
      local r, lv = link_row(l, now)
      level = raise(level, lv)
      if l.id == id then perms[#perms + 1] = r end
    end
  end
  local prefix = nsrow and nsrow.path or ""
  ctx:emit("files", { it }, function(x)
    return { ext_id = x.id, name = x.name, path = prefix .. x.path_display, is_folder = x[".tag"] == "folder" and 1 or 0, owner = row.owner,
             parent_id = row.parent_id, size = math.tointeger(x.size), mime = row.mime, access_level = level, trashed = 0,
             modified_at = when(x.server_modified) }
  end)
  ctx:emit("file_permissions", perms, function(r) return r end)
  local gone = {}
  local keep = {}
  for _, p in ipairs(perms) do keep[p.ext_id] = true end
  for _, pid in ipairs(ctx:stored_ids("file_permissions", "file_id", id)) do
    if pid:match("^link:") and not keep[pid] then gone[#gone + 1] = pid end
  end
  if #gone > 0 then ctx:retire("file_permissions", gone) end
end

-- What changed in the namespaces a member sees since the last listing (list_folder/continue, §7; a
-- webhook names the member): changed entries re-fetched one by one, deleted paths marked deleted.
local function member_changes(ctx, mid)
  local state = ctx:state("files")
  local cursors = type(state.cursor) == "string" and json.decode(state.cursor) or nil
  if type(cursors) ~= "table" then return end                  -- no scan yet: the next one sees everything
  local row = ctx:stored("users", mid)
  if not row then return end
  local nss = {}
  local home = decode(row.raw).profile
  if type(home) == "table" and home.member_folder_id then nss[#nss + 1] = home.member_folder_id end
  for _, pid in ipairs(ctx:stored_ids("file_permissions", "principal", row.email)) do
    local ns = pid:match("^member:([^:]+):")
    if ns then nss[#nss + 1] = ns end
  end
  local admin = admin_id(ctx)
  for _, ns in ipairs(nss) do
    local cur = cursors[ns]
    if cur then
      local h = admin_read(admin, ns)
      local nsrow = ctx:stored("files", "ns:" .. ns)
      local prefix = nsrow and nsrow.path or ""
      while cur do
        local d = call(ctx, "files/list_folder/continue", { cursor = cur }, h)
        for _, it in ipairs(ctx:listing(d, "entries", "/2/files/list_folder/continue")) do
          if it[".tag"] == "deleted" then
            local ids = ctx:stored_ids("files", "path", prefix .. tostring(it.path_display))
            if #ids > 0 then ctx:retire("files", ids) end
          elseif str(it.id) and not it.shared_folder_id then
            if ctx:stored("files", it.id) then fetch_file(ctx, it.id, admin)
            else
              -- new here: a row like the scan's, then its links
              ctx:emit("files", { it }, function(x)
                return { ext_id = x.id, name = x.name, path = prefix .. x.path_display, is_folder = x[".tag"] == "folder" and 1 or 0,
                         owner = nsrow and nsrow.owner or row.email, size = math.tointeger(x.size), access_level = nsrow and nsrow.access_level or "private",
                         mime = MIME[(tostring(x.name):match("%.(%w+)$") or ""):lower()], trashed = 0, modified_at = when(x.server_modified) }
              end)
              fetch_file(ctx, it.id, admin)
            end
          end
        end
        cursors[ns] = d.cursor
        cur = d.has_more == true and d.cursor or nil
      end
    end
  end
  ctx:save_cursor("files", json.encode(cursors))
end

-- Targeted re-fetch: a file by id (governance), or (a webhook's record with changes_of) what changed for
-- a member since the last listing.
function c.fetch.files(ctx, id, hint)
  if type(hint) == "table" and hint.changes_of then return member_changes(ctx, hint.changes_of) end
  return fetch_file(ctx, id)
end

-- Content for the data scan: files/download on the content host, as the admin in the file's namespace
-- (whole_team); capped at max_size.
function c.content(ctx, file, max_size)
  if file.is_folder == 1 then return nil, "unsupported: a folder has no content" end
  local resp, err = ctx:try("POST", content_base(ctx) .. "/2/files/download", { headers = admin_read(admin_id(ctx), ns_of(ctx, file)),
    header_json = { ["Dropbox-API-Arg"] = { path = file.ext_id } }, raw = true, max_size = max_size })
  if not resp then return nil, err end
  return resp.body
end

---------------------------------------------------------------------------------------------- team_log
-- §5: get_events from the watermark minus an overlap (the first run: initial_days back), then the
-- cursor with /continue, which keeps polling.  Events have no id: a row is keyed by the digest of the
-- event's canonical JSON, so the overlap read twice changes nothing.  A cursor Dropbox no longer takes
-- (bad_cursor, reset) starts afresh from the watermark.
local ADMIN = { members = true, groups = true, team_policies = true, team_profile = true, domains = true, sso = true,
  trusted_teams = true, admin_alerting = true, data_governance = true, encryption = true, reports = true, team_folders = true,
  passwords = true, tfa = true }

local function person(a)
  if type(a) ~= "table" then return {} end
  return a.user or a.admin or a.app or a
end

local function event_row(e)
  local cat, et = tag(e.event_category), tag(e.event_type)
  local who = person(e.actor)
  local ctxp = type(e.context) == "table" and e.context or {}
  local asset = type(e.assets) == "table" and e.assets[1] or nil
  local geo = type(e.origin) == "table" and type(e.origin.geo_location) == "table" and e.origin.geo_location or {}
  local kind = cat == "logins" and "signin" or ((tag(e.actor) == "admin" or ADMIN[cat]) and "admin" or "user")
  return {
    ext_id = crypto.hex(crypto.sha256(assert(json.encode(e)))):sub(1, 40), time = when(e.timestamp) or error("event without timestamp"),
    kind = kind, action = et or error("event without event_type"),
    actor = str(who.email) or str(who.display_name), actor_id = str(who.team_member_id) or str(who.account_id) or str(who.app_id),
    target = str(ctxp.email) or (type(asset) == "table" and str(asset.display_name)) or nil,
    target_id = str(ctxp.team_member_id) or (type(asset) == "table" and str(asset.file_id)) or nil,
    ip = str(geo.ip_address), location = str(geo.city) and (geo.city .. (str(geo.country) and (", " .. geo.country) or "")) or str(geo.country),
    outcome = et == "login_fail" and "failure" or (et == "login_success" and "success" or nil), app = "Dropbox",
  }
end

function c.streams.activities(ctx, cursor)
  local newest = ctx.watermark
  local function pages_from(first_route, arg)
    return ctx:pages("/2/" .. first_route, nil, { method = "POST", body = arg, items = "events",
      next = function(resp)
        local d = resp.data
        if type(d.cursor) ~= "string" or d.cursor == "" then error("malformed listing: team_log without a cursor", 0) end
        if d.has_more == true then return "/2/team_log/get_events/continue", nil, { cursor = d.cursor } end
      end })
  end
  local function read(iter)
    for page, resp in iter do
      for _, e in ipairs(page) do
        local t = type(e) == "table" and when(e.timestamp)
        if t and (not newest or t > newest) then newest = t end
      end
      -- the cursor after this page, saved with it (read-ahead may already hold the next one)
      ctx:checkpoint(resp.data.cursor, newest)
      ctx:emit("activities", page, event_row)
    end
  end
  local function afresh()
    local from = parse_iso(ctx.watermark or "")
    from = from and (from - OVERLAP) or (sched.time() - (tonumber(ctx.settings.initial_days) or 7) * 86400)
    read(pages_from("team_log/get_events", { limit = PAGE, time = { start_time = (iso(from):gsub("%.%d+Z$", "Z")) } }))
  end
  if type(cursor) ~= "string" or cursor == "" then return afresh() end
  local ok, err = pcall(read, pages_from("team_log/get_events/continue", { cursor = cursor }))
  if ok then return end
  -- only a refused cursor starts afresh; anything else is this run's failure
  if token_of(err) ~= "http" or not (tostring(err):find("bad_cursor", 1, true) or tostring(err):find("reset", 1, true)) then error(err, 0) end
  log.warn("dropbox: team_log cursor refused, reading again from the watermark", { instance = ctx.instance })
  afresh()
end

c.stream_order = { users = 1, groups = 2, app_grants = 3, files = 4, activities = 5 }

---------------------------------------------------------------------------------------------- account governance
-- §8: suspend keeps the member's data unless asked (Dropbox's wipe_data defaults to true: always sent).
function c.actions.suspend_user(ctx, user, params)
  call(ctx, "team/members/suspend", { user = member_sel(user.ext_id), wipe_data = type(params) == "table" and params.wipe_data == true })
  return { undo = { action = "unsuspend_user", params = {} } }
end
function c.actions.unsuspend_user(ctx, user)
  call(ctx, "team/members/unsuspend", { user = member_sel(user.ext_id) })
  return { undo = { action = "suspend_user", params = {} } }
end

-- Sign out of every web session and unlink every device (their files stay: delete_on_unlink false).
function c.actions.revoke_sessions(ctx, user)
  local d = call(ctx, "team/devices/list_member_devices", { team_member_id = user.ext_id, include_web_sessions = true,
    include_desktop_clients = true, include_mobile_clients = true })
  local n = 0
  for field, kind in pairs { active_web_sessions = "web_session", desktop_client_sessions = "desktop_client", mobile_client_sessions = "mobile_client" } do
    for _, s in ipairs(type(d[field]) == "table" and d[field] or {}) do
      local arg = { [".tag"] = kind, session_id = s.session_id, team_member_id = user.ext_id }
      if kind == "desktop_client" then arg.delete_on_unlink = false end
      local _, err, token = try_call(ctx, "team/devices/revoke_device_session", arg)
      if err and token ~= "not_found" then fail(err, token) end
      n = n + 1
    end
  end
  return { status = n .. " sessions" }
end

---------------------------------------------------------------------------------------------- app-permission governance
function c.actions.revoke_grant(ctx, grant)
  local mid, app = tostring(grant.ext_id):match("^(dbmid:[^:]+):(.+)$")
  if not mid then fail("revoke_grant: " .. tostring(grant.ext_id) .. " is not a linked app of a member", "http") end
  call(ctx, "team/linked_apps/revoke_linked_app", { app_id = app, team_member_id = mid, keep_app_folder = true })
end

---------------------------------------------------------------------------------------------- data governance
local function current(ctx, row, h)
  local resp, err, token = try_call(ctx, "files/get_metadata", { path = row.ext_id }, h)
  if not resp then fail(err, token) end
  return resp.data
end

-- Every shared link of the file, each revoked by the member who made it (only they may, §8).
function c.actions.remove_shared_link(ctx, file)
  local h = as_owner(ctx, file)
  local n = 0
  for page in listing(ctx, "sharing/list_shared_links", { path = file.ext_id, direct_only = true }, "links", "sharing/list_shared_links", h) do
    for _, l in ipairs(page) do
      local by = type(l.team_member_info) == "table" and str(l.team_member_info.member_id)
      local _, err, token = try_call(ctx, "sharing/revoke_shared_link", { url = l.url },
        by and { ["Dropbox-API-Select-User"] = by, ["Dropbox-API-Path-Root"] = h["Dropbox-API-Path-Root"] } or h)
      if err and token ~= "not_found" then fail(err, token) end
      n = n + 1
    end
  end
  return { status = n .. " links revoked" }
end

-- Members of the shared folder a file is in: params.principal (an e-mail) or every member outside the
-- team; removed by the folder's owner.
function c.actions.remove_collaborator(ctx, file, params)
  params = params or {}
  local ns = ns_of(ctx, file)
  local nsrow = ctx:stored("files", "ns:" .. ns)
  if not nsrow then fail(("%s is not in a shared folder"):format(tostring(file.path)), "http") end
  local h = as_owner(ctx, nsrow)
  local list = {}
  for _, pid in ipairs(ctx:stored_ids("file_permissions", "file_id", "ns:" .. ns)) do
    local p = ctx:stored("file_permissions", pid)
    if p and p.role ~= "owner" and ((params.principal and p.principal == params.principal) or (not params.principal and p.external == 1)) then
      list[#list + 1] = p
    end
  end
  for _, p in ipairs(list) do
    local d = call(ctx, "sharing/remove_folder_member", { shared_folder_id = ns, member = { [".tag"] = "email", email = p.principal },
      leave_a_copy = false }, h)
    if tag(d) == "async_job_id" then call(ctx, "sharing/check_remove_member_job_status", { async_job_id = d.async_job_id }, h) end
    ctx:retire("file_permissions", { p.ext_id })
  end
  return { status = #list .. " members removed" }
end

-- Moved to the owner's deleted files (restorable, §8: delete_v2).
function c.actions.trash_file(ctx, file)
  call(ctx, "files/delete_v2", { path = file.ext_id }, (as_owner(ctx, file)))
end

local function upload(ctx, arg, data, h)
  local headers = { ["Content-Type"] = "application/octet-stream" }
  for k, v in pairs(h) do headers[k] = v end
  return ctx:request("POST", content_base(ctx) .. "/2/files/upload", { body = data, headers = headers,
    header_json = { ["Dropbox-API-Arg"] = arg }, expect_json = true })
end

-- A new revision whose content is the notice (upload in update mode on the current rev: nothing newer is
-- overwritten); earlier revisions stay in the file's history.
function c.actions.overwrite_file(ctx, file, params)
  local notice = (params and params.notice) or "This file's content was removed by your administrator."
  local h = as_owner(ctx, file)
  local it = current(ctx, file, h)
  upload(ctx, { path = it.path_display, mode = { [".tag"] = "update", update = it.rev }, autorename = false, mute = true }, notice, h)
end

local QUARANTINE = "/cachost quarantine"

-- Quarantine (§8): the file's shared links go; a copy is saved into the admin's quarantine folder
-- (copy_reference/get as the owner, copy_reference/save as the admin: Dropbox's way between accounts);
-- the original goes to the owner's deleted files; a tombstone "<name>.quarantined.txt" with the
-- correlation id takes its place.
function c.actions.quarantine_file(ctx, file, params)
  params = params or {}
  if file.is_folder == 1 then fail("quarantine_file: " .. tostring(file.path) .. " is a folder", "http") end
  local h, owner = as_owner(ctx, file)
  local it = current(ctx, file, h)
  local admin = admin_id(ctx)
  local qdir = str(ctx.settings.quarantine_path) or QUARANTINE
  local asadmin = { ["Dropbox-API-Select-User"] = admin }
  if (it.path_display or ""):lower():sub(1, #qdir + 1) == qdir:lower() .. "/" and owner == admin then
    fail("file is already in the quarantine folder", "http")
  end
  c.actions.remove_shared_link(ctx, file)
  local _, cerr, ctoken, cr = try_call(ctx, "files/create_folder_v2", { path = qdir, autorename = false }, asadmin)
  if cerr and not (cr and cr.status == 409) then fail(cerr, ctoken) end            -- 409 path/conflict: it exists
  local ref = call(ctx, "files/copy_reference/get", { path = it.id }, h)
  local target = qdir .. "/" .. it.name
  local saved, serr, stoken, sr = try_call(ctx, "files/copy_reference/save", { copy_reference = ref.copy_reference, path = target }, asadmin)
  if not saved and sr and sr.status == 409 then
    target = ("%s/%s %s"):format(qdir, (it.id:gsub("^id:", "")), it.name)
    saved = call(ctx, "files/copy_reference/save", { copy_reference = ref.copy_reference, path = target }, asadmin)
  elseif not saved then
    fail(serr, stoken)
  else
    saved = saved.data
  end
  call(ctx, "files/delete_v2", { path = it.id, parent_rev = it.rev }, h)
  local note = ("This file was quarantined by your administrator.\n\nFile: %s\nOriginal location: %s\n" ..
    "Moved to: the administrator's quarantine folder as '%s'\nCorrelation id: %s\n"):format(
    it.name, it.path_display, saved.metadata.path_display, tostring(params.correlation_id or "-"))
  local tomb = upload(ctx, { path = it.path_display .. ".quarantined.txt", mode = "add", autorename = true, mute = true }, note, h)
  return { undo = { action = "unquarantine_file", params = { path = it.path_display, rev = it.rev, tombstone = tomb.id,
    quarantined = saved.metadata.id, correlation_id = params.correlation_id } } }
end

-- Undo: the original restored from the owner's deleted files (its id and history kept), the tombstone and
-- the admin's copy deleted.
function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  if not (params.path and params.rev) then fail("unquarantine_file needs params.path and params.rev (the quarantine's undo record)", "http") end
  local h = as_owner(ctx, file)
  call(ctx, "files/restore", { path = params.path, rev = params.rev }, h)
  if params.tombstone then
    local _, err, token = try_call(ctx, "files/delete_v2", { path = params.tombstone }, h)
    if err and token ~= "not_found" then fail(err, token) end
  end
  if params.quarantined then
    local _, err, token = try_call(ctx, "files/delete_v2", { path = params.quarantined }, { ["Dropbox-API-Select-User"] = admin_id(ctx) })
    if err and token ~= "not_found" then fail(err, token) end
  end
end

c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user", quarantine_file = "unquarantine_file" }

---------------------------------------------------------------------------------------------- webhooks
-- §11: the App Console checks the URI with GET ?challenge= (echoed as text/plain, nosniff); a notification
-- is a POST whose X-Dropbox-Signature is the hex HMAC-SHA256 of the body with the app secret.  It names
-- only whose files changed ({"list_folder": {"teams": {team_id: [team_member_id...]}}}): each member of
-- this team gets a list_folder/continue of what they see.  A replayed notification costs a re-read of
-- current state, nothing more (Dropbox signs no id or time to refuse it by); members this instance does
-- not know are ignored.
function c.webhook(ctx, req)
  if req.method == "GET" then
    local ch = req.query and req.query.challenge
    if not ch or ch == "" then return 400, { error = "missing challenge" } end
    return 200, ch, nil, { ["Content-Type"] = "text/plain", ["X-Content-Type-Options"] = "nosniff" }
  end
  local secret = ctx:secret("client_secret")
  if not secret then return 403, { error = "app secret not configured" } end
  local sig = req.headers["x-dropbox-signature"]
  if not sig or not crypto.equal(sig:lower(), crypto.hex(crypto.hmac_sha256(secret, req.body or ""))) then
    return 401, { error = "bad signature" }
  end
  local p, status, why = webhook.json(req)
  if not p then return status, { error = why } end
  local lf = type(p) == "table" and type(p.list_folder) == "table" and p.list_folder.teams
  if type(lf) ~= "table" then return 200, { ok = true } end
  local refetch, seen = {}, {}
  for _, mids in pairs(lf) do
    for _, mid in ipairs(type(mids) == "table" and mids or {}) do
      if type(mid) == "string" and not seen[mid] and ctx:stored("users", mid) then
        seen[mid] = true
        refetch[#refetch + 1] = { entity = "files", id = mid, changes_of = mid }
      end
    end
  end
  return 200, nil, refetch
end

return c
