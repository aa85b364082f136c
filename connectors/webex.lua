-- Cisco Webex (webexapis.com/v1).  Reference: shared/api/webex.md.
local c = connector "webex"
c.title = "Cisco Webex"
c.settings = {
  { "client_id", required = true, help = "the integration's client id (developer.webex.com, My Apps), or the service app's" },
  { "client_secret", secret = true, help = "its client secret" },
  { "refresh_token", secret = true, help = "auth=service_app: the refresh token the developer portal shows once a Full Admin "
      .. "authorized the service app in Control Hub" },
  { "org_id", help = "the organization's id (default: the token's own, from GET /people/me)" },
  { "webhook_secret", secret = true, help = "the secret of the webhooks cachost creates (made and kept in the vault when absent)" },
  { "auth", help = "oauth (an integration: `cachost instance connect` runs its consent; the default) or service_app" },
  { "components", help = "what to read and do (default all): users, groups, activities, files, app_grants, actions; "
      .. "the integration asks only for their scopes" },
}
c.base_url = "https://webexapis.com/v1"

---------------------------------------------------------------------------------------------- components
-- The scopes of each component (§1).  The admin ones act with the consenting user's admin role (Full
-- Administrator for the audit APIs); the spark-compliance ones only for a Compliance Officer.  spark:kms
-- opens the encrypted content (message text, files).
local SCOPES = {
  users = { "spark-admin:people_read", "spark-admin:roles_read" },            -- roles: the admin roles' names
  groups = { "identity:groups_read" },
  activities = { "audit:events_read", "spark-compliance:events_read", "spark:kms" },
  files = { "spark-compliance:events_read", "spark-compliance:messages_read", "spark-compliance:memberships_read",
            "spark-compliance:rooms_read", "spark:kms" },
  app_grants = { "identity:tokens_read" },
  actions = { "spark-admin:people_read", "spark-admin:people_write", "spark-compliance:messages_write",
              "spark-compliance:memberships_write", "identity:tokens_read", "identity:tokens_write" },
}
local COMPONENTS = { "users", "groups", "activities", "files", "app_grants", "actions" }

local function on(settings) return components(settings.components, COMPONENTS, "webex") end
function c.validate(settings) return on(settings) end
function c.enabled(stream, settings)
  local set, err = on(settings)
  if not set then return nil, err end
  return set[stream] == true
end

-- An integration (OAuth authorization code, §1): the browser consent at /authorize, tokens from
-- /access_token, refreshed with the client secret (access tokens live 14 days, refresh tokens 90).  A
-- service app (an org's machine account, authorized by a Full Admin in Control Hub) hands over a refresh
-- token: redeemed and refreshed at the same endpoint.
c.auth = {
  default = "oauth",
  oauth = {
    type = "oauth2", grant = "authorization_code", pkce = false, authorize_url = "/authorize", token_url = "/access_token",
    scopes = function(settings) return component_scopes(on(settings) or {}, COMPONENTS, SCOPES) end,
  },
  service_app = { type = "oauth2", grant = "refresh_token", token_url = "/access_token" },
}

c.capabilities = {
  users = true, groups = true, privileges = true, files = true, app_grants = true,
  activities = { "signin", "admin", "user" },
}

local CO = "the consenting user holds the Compliance Officer role (Control Hub)"
c.needs = {
  users = { "scopes spark-admin:people_read, spark-admin:roles_read", "an administrator (a read-only one is enough)" },
  privileges = { "scopes spark-admin:people_read, spark-admin:roles_read", "an administrator" },
  groups = { "scope identity:groups_read", "an administrator" },
  activities = { "scope audit:events_read (admin audit, sign-ins: a Full Administrator)",
                 "scope spark-compliance:events_read (compliance events: messages, memberships, files)", CO },
  files = { "scopes spark-compliance:events_read, spark-compliance:messages_read, spark-compliance:memberships_read, "
            .. "spark-compliance:rooms_read, spark:kms", CO,
            "the inventory is built from the compliance events: files posted since initial_days before the first scan "
            .. "(Webex lists no spaces organization-wide)" },
  app_grants = { "scope identity:tokens_read", "an administrator" },
  suspend_user = { "scopes spark-admin:people_read, spark-admin:people_write", "a Full or User Administrator",
                   "sets loginEnabled false (true again to undo)" },
  unsuspend_user = { "scopes spark-admin:people_read, spark-admin:people_write", "a Full or User Administrator" },
  remove_admin_role = { "scopes spark-admin:people_read, spark-admin:people_write", "a Full Administrator" },
  revoke_sessions = { "scopes identity:tokens_read, identity:tokens_write",
                      "revokes every integration token of the user (Webex offers no sign-out of its own apps)" },
  revoke_grant = { "scopes identity:tokens_read, identity:tokens_write", "a Full or User Administrator",
                   "params.org_wide: the integration loses every authorization of the organization" },
  quarantine_file = { "scope spark-compliance:messages_write", CO,
                      "quarantine here deletes the message that carries the file: Webex has no quarantine folder, "
                      .. "the file leaves the space for every member and cannot be put back (no undo)" },
  remove_collaborator = { "scope spark-compliance:memberships_write", CO,
                          "removes the space's external participants (params.membership_id: that one)" },
  webhooks = { "the read scope of each webhook's resource (spark-compliance:messages_read, "
               .. "spark-compliance:memberships_read)", "org-wide message webhooks fire for messages with files when "
               .. "real-time file DLP is on (Pro Pack)" },
}

-- §7: {"message", "errors": [{"description"}], "trackingId"}: the trackingId goes with the message, as
-- Webex support asks for it.
function c.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return resp.body:sub(1, 200) end
  local msg = str(d.message) or (type(d.errors) == "table" and type(d.errors[1]) == "table" and str(d.errors[1].description))
    or resp.body:sub(1, 200)
  local tid = str(d.trackingId) or resp.headers["trackingid"]
  return tid and ("%s (trackingId %s)"):format(msg, tid) or msg
end

-- 423 Locked with Retry-After: the file is still being scanned (anti-malware, DLP); asked again after it.
function c.is_throttled(resp) return resp.status == 423 and resp.headers["retry-after"] ~= nil end

local PAGE = 1000                                -- people, memberships, events: max up to 1000
local OVERLAP = 600                              -- seconds read again: events land late
local YEAR = 365 * 86400                         -- the audit APIs serve a year per request

local function stamp(t) return iso(t) end
local function list_of(v) return type(v) == "table" and v or {} end
local function truthy(v) return v == true or v == "true" end

-- The organization: the setting, else the token's own (GET /people/me).
local function org_id(ctx)
  local id = str(ctx.settings.org_id)
  if id then return id end
  local me = ctx:get("/people/me")
  return str(me.orgId) or fail("GET /people/me answered without orgId", "http")
end

---------------------------------------------------------------------------------------------- users
-- A person's roles[] holds role ids (the spec's example joins several in one string: split on commas).
local function role_ids(p)
  local out = {}
  for _, v in ipairs(list_of(p.roles)) do
    for id in tostring(v):gmatch("[^,%s]+") do out[#out + 1] = id end
  end
  return out
end

-- §2: the account's state is loginEnabled (and invitePending); `status` is presence only.
local function user_row(p)
  local status = "active"
  if p.loginEnabled ~= nil and not truthy(p.loginEnabled) then status = "suspended"
  elseif truthy(p.invitePending) then status = "pending" end
  return {
    ext_id = p.id, email = list_of(p.emails)[1], display_name = str(p.displayName), status = status,
    external = 0, created_at = str(p.created),
  }
end

-- Role id -> name (GET /roles); a token without spark-admin:roles_read keeps the ids.
local function role_names(ctx)
  local names = {}
  local ok, err = pcall(function()
    for page in ctx:pages("/roles", nil, { items = "items" }) do
      for _, r in ipairs(page) do if str(r.id) then names[r.id] = str(r.name) or r.id end end
    end
  end)
  if not ok and token_of(err) ~= "permission" then error(err, 0) end
  return names
end

-- Every person of the org (an admin lists them all without email or displayName), with the admin roles
-- each holds (the Compliance Officer's too: it reads every space's content).
function c.streams.users(ctx)
  local names = role_names(ctx)
  local admins = {}
  for page in ctx:pages("/people", { max = PAGE }, { items = "items" }) do
    ctx:emit("users", page, user_row)
    local privs = {}
    for _, p in ipairs(page) do
      for _, rid in ipairs(role_ids(p)) do
        privs[#privs + 1] = { ext_id = p.id .. ":" .. rid, user_id = p.id, role = names[rid] or rid, scope = "organization",
                              raw = { personId = p.id, roleId = rid, name = names[rid] } }
        admins[p.id] = true
      end
    end
    ctx:emit("privileges", privs)
  end
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- groups
-- §3: startIndex (1-based) and count, until totalResults (memberSize for a group's members).
local function index_pages(path, field, count)
  local start = 1
  return path, { startIndex = "1", count = tostring(count) }, { items = field, next = function(resp, items)
    local d = resp.data
    local total = math.tointeger(tonumber(d.totalResults or d.memberSize))
    if not total then error(("malformed listing: no totalResults (GET %s)"):format(path), 0) end
    start = (math.tointeger(tonumber(d.startIndex)) or start) + #items
    if #items == 0 or start > total then return nil end
    return path, { startIndex = tostring(start), count = tostring(count) }
  end }
end

function c.streams.groups(ctx)
  local ids = {}
  for page in ctx:pages(index_pages("/groups", "groups", 100)) do
    ctx:emit("groups", page, function(g)
      ids[#ids + 1] = g.id
      return { ext_id = g.id, name = g.displayName }
    end)
  end
  for _, gid in ipairs(ids) do
    for page in ctx:pages(index_pages("/groups/" .. urlencode(gid) .. "/members", "members", 500)) do
      ctx:emit("group_members", page, function(m)
        return { ext_id = gid .. ":" .. m.id, group_id = gid, member_id = m.id, member_type = m.type or "user" }
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- app grants
-- §5: the authorizations each person granted to integrations (a refresh and an access token each; no
-- paging).  Webex does not say which scopes an authorization carries.
local function grant_row(a)
  return { ext_id = a.id, client_id = a.clientId, app_name = str(a.applicationName), user_id = a.personId,
           created_at = str(a.created) }
end

function c.streams.app_grants(ctx)
  for _, u in ipairs(ctx:known_users()) do
    local items = ctx:list("/authorizations", { personId = u.ext_id }, "items")
    ctx:emit("app_grants", items, function(a)
      local row = grant_row(a)
      row.user = u.email
      return row
    end)
  end
end

---------------------------------------------------------------------------------------------- activities
local function tail(v) return (tostring(v or ""):gsub("^EventCategory%.", "")) end

local function admin_row(e)
  local d = list_of(e.data)
  local cat = tail(d.eventCategory)
  return {
    ext_id = e.id, time = e.created, kind = (cat == "LOGINS" or cat == "LOGOUT") and "signin" or "admin",
    action = str(d.eventDescription) or cat, actor = str(d.actorEmail) or str(d.actorName), actor_id = str(e.actorId),
    target = str(d.targetName), target_id = str(d.targetId), ip = str(d.actorIp), user_agent = str(d.actorUserAgent),
    outcome = str(d.errorCode) and "failure" or "success", app = "Webex Control Hub",
  }
end

-- Security audit (§4): people signing in and out of Webex.
local function signin_row(e)
  local d = list_of(e.data)
  return {
    ext_id = e.id, time = e.created, kind = "signin", action = tail(d.eventCategory), actor = str(d.actorEmail),
    actor_id = str(e.actorId), ip = str(d.actorIp), user_agent = str(d.actorUserAgent), outcome = "success", app = "Webex",
  }
end

-- Compliance events (§4): messages, memberships, files... as they happened.
local function event_row(e)
  local d = list_of(e.data)
  return {
    ext_id = e.id, time = e.created, kind = "user", action = tostring(e.resource) .. "." .. tostring(e.type),
    actor = str(d.personEmail), actor_id = str(e.actorId), target = str(d.roomId), target_id = str(d.id), app = "Webex",
  }
end

-- Three logs, each read from where it was left (minus OVERLAP) up to the start of this run; the cursor is
-- {admin=, signin=, events=} in epoch seconds, saved as each log is read whole (rows are keyed by event
-- id: what is read twice changes nothing).  A log the token may not read (the audit APIs want a Full
-- Administrator, the events a Compliance Officer) does not keep the others from being read; the stream
-- then fails with that refusal (permission missing).
c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local state = type(cursor) == "string" and json.decode(cursor) or nil
  if type(state) ~= "table" then state = {} end
  local now = sched.time()
  local first = now - (tonumber(ctx.settings.initial_days) or c.initial_days) * 86400
  local org = org_id(ctx)
  local logs = {
    { "admin", "/adminAudit/events", "from", "to", { orgId = org, max = 200 }, admin_row },
    { "signin", "/admin/securityAudit/events", "startTime", "endTime", { orgId = org, max = 1000 }, signin_row },
    { "events", "/events", "from", "to", { max = PAGE }, event_row },
  }
  local refused
  for _, l in ipairs(logs) do
    local key, path, from, to, query, row = table.unpack(l)
    local since = tonumber(state[key]) and tonumber(state[key]) - OVERLAP or first
    query[from], query[to] = stamp(math.max(since, now - YEAR + 60)), stamp(now)
    local ok, err = pcall(function()
      for page in ctx:pages(path, query, { items = "items" }) do ctx:emit("activities", page, row) end
    end)
    if not ok then
      if token_of(err) ~= "permission" then error(err, 0) end
      refused = refused or err
    else
      state[key] = now
      ctx:checkpoint(json.encode(state), iso(now))
      ctx:emit("activities", {})                 -- commits this log's position
    end
  end
  if refused then error(refused, 0) end
end

---------------------------------------------------------------------------------------------- files
-- Files posted in spaces (§4, the Compliance Officer's view): a message's `files` are content URLs; a
-- HEAD gives each one's name, type and size.  A file is one row "<messageId>/<n>", its parent the space;
-- its sharing is the space's membership (people of another organization: external participants).
local function content_info(ctx, url)
  local resp = ctx:try("HEAD", url, { raw = true, headers = { Accept = "*/*" } })
  if not resp then return {} end
  local h = resp.headers
  local name = (h["content-disposition"] or ""):match('filename="([^"]*)"') or (h["content-disposition"] or ""):match("filename=([^;]+)")
  return { name = name, mime = str((h["content-type"] or ""):match("^[^;]+")), size = math.tointeger(tonumber(h["content-length"] or "")) }
end

-- The members of a space -> file_permissions rows for a file, and its access level.
local function space_access(ctx, room_id, org)
  local members = {}
  for page in ctx:pages("/memberships", { roomId = room_id, max = PAGE }, { items = "items" }) do
    for _, m in ipairs(page) do members[#members + 1] = m end
  end
  local level = "internal"
  for _, m in ipairs(members) do if str(m.personOrgId) and m.personOrgId ~= org then level = "external" end end
  return members, level
end

local function perm_rows(file_id, members, org)
  local rows = {}
  for _, m in ipairs(members) do
    if str(m.id) then
      rows[#rows + 1] = { ext_id = file_id .. "/" .. m.id, file_id = file_id, principal = str(m.personEmail) or str(m.personDisplayName),
        principal_type = "user", role = m.isModerator == true and "moderator" or "member",
        external = (str(m.personOrgId) and m.personOrgId ~= org) and 1 or 0, raw = m }
    end
  end
  return rows
end

-- A space's title, for the files' paths (GET /rooms/{id}); a room we may not read keeps its id.
local function room_title(ctx, cache, room_id)
  if cache[room_id] == nil then
    local room = ctx:try_get("/rooms/" .. urlencode(room_id))
    cache[room_id] = room and str(room.title) or room_id
  end
  return cache[room_id]
end

-- Emits the rows of a message's files and their permissions, the space's membership given; each file's id
-- goes into `done` when given.
local function emit_message(ctx, msg, members, level, org, titles, done)
  local rows, perms = {}, {}
  for k, url in ipairs(list_of(msg.files)) do
    if type(url) == "string" then
      local id = msg.id .. "/" .. k
      local info = content_info(ctx, url)
      local name = info.name or url:match("([^/]+)$")
      rows[#rows + 1] = { ext_id = id, name = name, path = "/" .. room_title(ctx, titles, msg.roomId) .. "/" .. name,
        parent_id = msg.roomId, is_folder = 0, owner = str(msg.personEmail), size = info.size, mime = info.mime,
        access_level = level, trashed = 0, created_at = str(msg.created), modified_at = str(msg.created),
        raw = { message = msg, url = url } }
      for _, p in ipairs(perm_rows(id, members, org)) do perms[#perms + 1] = p end
      if done then done[id] = true end
    end
  end
  ctx:emit("files", rows)
  ctx:emit("file_permissions", perms)
end

-- A space's stored files (but those in `done`: emitted already), their access and permissions computed
-- again (its membership changed).
local function refresh_space(ctx, room_id, org, members, level, done)
  local ids = {}
  for _, id in ipairs(ctx:stored_ids("files", "parent_id", room_id)) do
    if not (done and done[id]) then ids[#ids + 1] = id end
  end
  if #ids == 0 then return end
  if not members then members, level = space_access(ctx, room_id, org) end
  local rows, perms, now = {}, {}, {}
  for _, id in ipairs(ids) do
    local row = ctx:stored("files", id)
    if row and not row.deleted_at then
      rows[#rows + 1] = { ext_id = id, access_level = level, raw = row.raw }
      for _, p in ipairs(perm_rows(id, members, org)) do perms[#perms + 1] = p; now[p.ext_id] = true end
      local gone = {}
      for _, pid in ipairs(ctx:stored_ids("file_permissions", "file_id", id)) do if not now[pid] then gone[#gone + 1] = pid end end
      if #gone > 0 then ctx:retire("file_permissions", gone) end
    end
  end
  ctx:emit("files", rows)
  ctx:emit("file_permissions", perms)
end

-- A deleted message: its files (and their permissions) are gone.
local function retire_message(ctx, msg_id, room_id)
  local gone, perms = {}, {}
  for _, id in ipairs(room_id and ctx:stored_ids("files", "parent_id", room_id) or {}) do
    if id:sub(1, #msg_id + 1) == msg_id .. "/" then
      gone[#gone + 1] = id
      for _, p in ipairs(ctx:stored_ids("file_permissions", "file_id", id)) do perms[#perms + 1] = p end
    end
  end
  if #gone > 0 then ctx:retire("files", gone); ctx:retire("file_permissions", perms) end
end

-- Incremental over the compliance events (the cursor: epoch seconds read up to): messages created with
-- files add rows, deleted ones retire theirs, and a space whose membership changed has its files' access
-- computed again.  The first run reaches initial_days back.
function c.streams.files(ctx, cursor)
  local now = sched.time()
  local since = (tonumber(cursor) or now - (tonumber(ctx.settings.initial_days) or c.initial_days) * 86400) - OVERLAP
  local org = org_id(ctx)
  local window = { from = stamp(since), to = stamp(now), max = PAGE }
  local posted, deleted, spaces = {}, {}, {}
  local q = { resource = "messages" }
  for k, v in pairs(window) do q[k] = v end
  for page in ctx:pages("/events", q, { items = "items" }) do
    for _, e in ipairs(page) do
      local d = list_of(e.data)
      if str(d.id) and str(d.roomId) then
        if e.type == "deleted" then deleted[d.id] = d.roomId
        elseif e.type == "created" and #list_of(d.files) > 0 then posted[#posted + 1] = d end
      end
    end
  end
  q.resource = "memberships"
  for page in ctx:pages("/events", q, { items = "items" }) do
    for _, e in ipairs(page) do
      local d = list_of(e.data)
      if str(d.roomId) then spaces[d.roomId] = true end
    end
  end
  local access, titles, done = {}, {}, {}
  for _, msg in ipairs(posted) do
    if not deleted[msg.id] then
      local a = access[msg.roomId]
      if not a then a = { space_access(ctx, msg.roomId, org) }; access[msg.roomId] = a end
      emit_message(ctx, msg, a[1], a[2], org, titles, done)
    end
  end
  for id, room in pairs(deleted) do retire_message(ctx, id, room) end
  for room in pairs(spaces) do
    local a = access[room] or {}
    refresh_space(ctx, room, org, a[1], a[2], done)
  end
  ctx:checkpoint(tostring(now), iso(now))
  ctx:emit("files", {})
end

c.stream_order = { users = 1, groups = 2, app_grants = 3, files = 4, activities = 5 }

-- Targeted re-fetch (webhooks, governance): "<messageId>/<n>" or "<messageId>" -> that message's files
-- (gone: retired); "room:<roomId>" -> the access of the space's files.
function c.fetch.files(ctx, id, hint)
  local org = org_id(ctx)
  local room = tostring(id):match("^room:(.+)$")
  if room then return refresh_space(ctx, room, org) end
  local msg_id = tostring(id):match("^(.-)/%d+$") or tostring(id)
  local row = ctx:stored("files", tostring(id):find("/", 1, true) and id or msg_id .. "/1")
  local room_id = (hint and hint.room_id) or (row and row.parent_id)
  local msg = ctx:try_get("/messages/" .. urlencode(msg_id))
  if not msg then return retire_message(ctx, msg_id, room_id) end
  local members, level = space_access(ctx, msg.roomId, org)
  emit_message(ctx, msg, members, level, org, {})
end

-- Content for the data scan: the file's content URL (followed to wherever Webex serves it), capped.
function c.content(ctx, file, max_size)
  local raw = type(file.raw) == "string" and json.decode(file.raw) or file.raw
  local url = type(raw) == "table" and str(raw.url)
  if not url then return nil, "unsupported: no content URL" end
  local resp, err = ctx:try("GET", url, { max_size = max_size, raw = true, headers = { Accept = "*/*" } })
  if not resp then return nil, err end
  return resp.body
end

---------------------------------------------------------------------------------------------- governance
-- §6: PUT /people/{id} replaces the person: the current one is read first and sent back whole, changed.
local WRITABLE = { "emails", "phoneNumbers", "extension", "locationId", "displayName", "firstName", "lastName", "nickName",
  "avatar", "orgId", "roles", "licenses", "department", "manager", "managerId", "title", "addresses", "siteUrls" }
local function update_person(ctx, user, change)
  local path = "/people/" .. urlencode(user.ext_id)
  local p = ctx:get(path)
  local body = {}
  for _, k in ipairs(WRITABLE) do body[k] = p[k] end
  body.loginEnabled = p.loginEnabled ~= nil and truthy(p.loginEnabled) or nil
  change(body, p)
  ctx:put(path, body)
end

function c.actions.suspend_user(ctx, user)
  update_person(ctx, user, function(b) b.loginEnabled = false end)
  return { undo = { action = "unsuspend_user", params = {} } }
end
function c.actions.unsuspend_user(ctx, user)
  update_person(ctx, user, function(b) b.loginEnabled = true end)
  return { undo = { action = "suspend_user", params = {} } }
end

-- params.role: only that role (its id or name); else every admin role.
function c.actions.remove_admin_role(ctx, user, params)
  local want = params and str(params.role)
  local names = want and role_names(ctx) or {}
  update_person(ctx, user, function(b, p)
    local keep = {}
    for _, rid in ipairs(role_ids(p)) do
      if want and rid ~= want and names[rid] ~= want then keep[#keep + 1] = rid end
    end
    if want and #keep == #role_ids(p) then fail(("%s holds no role %s"):format(user.ext_id, want), "http") end
    b.roles = json.array(keep)
  end)
end

-- The user's authorizations (§5), those of one integration when client_id is given.
local function authorizations(ctx, person_id, client_id)
  local out = {}
  for _, a in ipairs(ctx:list("/authorizations", { personId = person_id }, "items")) do
    if str(a.id) and (not client_id or a.clientId == client_id) then out[#out + 1] = a.id end
  end
  return out
end
local function revoke(ctx, ids)
  for _, id in ipairs(ids) do
    local _, err, token = ctx:try("DELETE", "/authorizations/" .. urlencode(id))
    if err and token ~= "not_found" then fail(err, token) end
  end
end

function c.actions.revoke_sessions(ctx, user) revoke(ctx, authorizations(ctx, user.ext_id)) end
-- A grant is a refresh or an access token: both of the pair go (the other would mint or keep access).
-- params.org_wide: the integration loses every authorization in the organization (§5).
function c.actions.revoke_grant(ctx, grant, params)
  if params and (params.org_wide == true or params.org_wide == "true") then
    local _, err, token = ctx:try("DELETE", "/authorizations", { query = { clientId = grant.client_id, orgId = org_id(ctx) } })
    if err and token ~= "not_found" then fail(err, token) end
    return
  end
  revoke(ctx, { grant.ext_id })
  revoke(ctx, authorizations(ctx, grant.user_id, grant.client_id))
end

local function message_of(file)
  return tostring(file.ext_id):match("^(.-)/%d+$") or fail("not a Webex file row: " .. tostring(file.ext_id), "http")
end

-- The generic quarantine: the message carrying the file is deleted (compliance officer, §6).
function c.actions.quarantine_file(ctx, file)
  local _, err, token = ctx:try("DELETE", "/messages/" .. urlencode(message_of(file)))
  if err and token ~= "not_found" then fail(err, token) end
end

-- The external participants of the file's space leave it (params.membership_id: that membership only).
function c.actions.remove_collaborator(ctx, file, params)
  local id = params and str(params.membership_id)
  local list = {}
  if id then list[1] = id
  else
    local org = org_id(ctx)
    local members = space_access(ctx, file.parent_id, org)
    for _, m in ipairs(members) do if str(m.personOrgId) and m.personOrgId ~= org then list[#list + 1] = m.id end end
  end
  for _, mid in ipairs(list) do
    local _, err, token = ctx:try("DELETE", "/memberships/" .. urlencode(mid))
    if err and token ~= "not_found" then fail(err, token) end
  end
end

c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user" }
-- Done, these leave nothing behind to re-fetch: the file's row is gone with its message.
c.removes = { quarantine_file = true }

---------------------------------------------------------------------------------------------- webhooks
-- §8: created by the daemon (cachost run --public-url), each with the instance's secret (made once, kept in
-- the vault).  Org-wide message webhooks (ownedBy org: a Compliance Officer's, for messages with files);
-- membership webhooks of the officer's token.  An existing one (same URL, resource, event) is updated with
-- the secret and re-activated (Webex turns off hooks that keep failing).
local WANTED = {
  { resource = "messages", event = "created", ownedBy = "org" },
  { resource = "messages", event = "deleted", ownedBy = "org" },
  { resource = "memberships", event = "created" },
  { resource = "memberships", event = "deleted" },
}
local function webhook_secret(ctx)
  local s = ctx:secret("webhook_secret")
  if not s then
    s = crypto.hex(crypto.random(20))
    ctx:set_secret("webhook_secret", s)
  end
  return s
end

function c.subscribe(ctx, url)
  local secret = webhook_secret(ctx)
  local have = {}
  for page in ctx:pages("/webhooks", { max = 100 }, { items = "items" }) do
    for _, w in ipairs(page) do
      if w.targetUrl == url then have[tostring(w.resource) .. "." .. tostring(w.event)] = w end
    end
  end
  local ids = {}
  for _, w in ipairs(WANTED) do
    local name = ("cachost %s %s"):format(w.resource, w.event)
    local h = have[w.resource .. "." .. w.event]
    if h then
      if h.status ~= "active" or type(h.secret) ~= "string" or not crypto.equal(h.secret, secret) then
        ctx:put("/webhooks/" .. urlencode(h.id), { name = name, targetUrl = url, secret = secret, status = "active" })
      end
      ids[#ids + 1] = h.id
    else
      local made = ctx:post("/webhooks", { name = name, targetUrl = url, resource = w.resource, event = w.event,
        secret = secret, ownedBy = w.ownedBy })
      ids[#ids + 1] = made.id
    end
  end
  return ids
end

-- X-Spark-Signature: hex HMAC-SHA1 of the body with the secret, compared in constant time.  The body
-- names its resource, event and object id: each (resource, event, id) is handled once a day (a replay
-- is answered 200 and does nothing).  Messages -> their files re-fetched; memberships -> the space's.
local SEEN_FOR = 24 * 3600
function c.webhook(ctx, req)
  local secret = ctx:secret("webhook_secret")
  if not secret then return 403, { error = "webhook secret not configured" } end
  local sig = req.headers["x-spark-signature"]
  local want = crypto.hex(crypto.hmac_sha1(secret, req.body or ""))
  if type(sig) ~= "string" or not crypto.equal(sig:lower(), want) then return 401, { error = "bad signature" } end
  local p, status, why = webhook.json(req)
  if not p then return status, { error = why } end
  local d = type(p) == "table" and type(p.data) == "table" and p.data or nil
  if not (d and str(d.id) and (p.resource == "messages" or p.resource == "memberships")) then
    return 400, { error = "not a messages or memberships notification" }
  end
  if not webhook.first(ctx.instance .. "/webex", ("%s.%s:%s"):format(p.resource, tostring(p.event), d.id), SEEN_FOR) then
    return 200, { ok = true, duplicate = true }
  end
  local room = str(d.roomId)
  if p.resource == "messages" then return 200, nil, { { entity = "files", id = d.id, room_id = room } } end
  if room then return 200, nil, { { entity = "files", id = "room:" .. room } } end
  return 200
end

return c
