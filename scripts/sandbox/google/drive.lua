-- sandbox/google/drive.lua — Drive API v3 as an impersonated user sees it (the token's sub): files.list
-- (q with 'me' in owners, trashed, 'ID' in parents, mimeType; pageSize ≤ 1000; only
-- kind,id,name,mimeType unless fields= asks for more), files.get (alt=media for binary content only),
-- files.export (Docs Editors files only), files.create, files.update (trashed, addParents/removeParents
-- into a folder the user may write; media uploads), permissions (create, transferOwnership
-- to a user of the domain; list ≤ 100 a page, inherited ones included with permissionDetails; delete: owners and writers, never
-- an inherited one), changes (startPageToken, list ending with newStartPageToken; watch channels that
-- notify, channels.stop).
local T = require "sandbox.tenant"
local C = require "sandbox.google.common"
local WS = require "sandbox.google.workspace"
local W = WS.W
local json = C.json

local READ = { "drive", "drive.readonly", "drive.metadata.readonly" }
local CONTENT = { "drive", "drive.readonly" }
local WRITE = { "drive" }
local GOOGLE_APPS = "^application/vnd%.google%-apps%."
local EXPORT = { [WS.DOC] = { ["text/plain"] = true, ["text/html"] = true },
                 [WS.SHEET] = { ["text/csv"] = true } }

local function me(self, req)
  local u = self:actor(req)
  if not u then
    -- a service account without sub has its own (empty) Drive: nothing of the domain's
    return nil, self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.")
  end
  return u
end

-- Roles that may change a file (shared drives: content managers and managers too).
local EDITS = { owner = true, organizer = true, fileOrganizer = true, writer = true }
local RANK = { organizer = 5, fileOrganizer = 4, writer = 3, commenter = 2, reader = 1 }

local function role_of(self, f, u)
  if f.drive then                                       -- a shared drive's item: the user's membership decides
    local best
    for _, x in ipairs(self:perms_of(f)) do
      local p = x.p
      if p.type == "user" and p.emailAddress == u.primaryEmail and (not best or RANK[p.role] > RANK[best]) then best = p.role end
    end
    return best
  end
  if f.owner == u.id then return "owner" end
  local best
  for _, x in ipairs(self:perms_of(f)) do
    local p = x.p
    if (p.type == "user" and p.emailAddress == u.primaryEmail) or (p.type == "domain" and p.domain == self.domain) then
      if p.role == "writer" then return "writer" end
      best = best or p.role
    end
  end
  return best
end

-- A file's permissions as Drive lists them: its owner (My Drive), its own, those its folders give it and,
-- in a shared drive, the drive's members (permissionType "member", inherited from the drive).
function W:perm_render(f)
  local out = {}
  if not f.drive then
    local owner = self.state.by_id[f.owner]
    out[1] = { kind = "drive#permission", id = owner.id, type = "user", role = "owner", emailAddress = owner.primaryEmail,
               displayName = owner.name.fullName, permissionDetails = json().array({ { permissionType = "file", role = "owner", inherited = false } }) }
  end
  for _, x in ipairs(self:perms_of(f)) do
    local p = T.deep(x.p)
    p.permissionDetails = json().array({ { permissionType = x.member and "member" or "file", role = p.role, inherited = x.inherited,
                                           inheritedFrom = x.inherited and x.from or nil } })
    out[#out + 1] = p
  end
  return out
end

-- A shared drive's item has no owners (the drive owns it) and, in files.list/get, no permissions (only
-- their ids: permissions.list gives them).
function W:file_render(f, u)
  local perms = self:perm_render(f)
  local ids = {}
  for _, p in ipairs(perms) do ids[#ids + 1] = p.id end
  local size = (not f.mimeType:match(GOOGLE_APPS)) and tostring(#(f.content or "")) or nil
  local out = {
    kind = "drive#file", id = f.id, name = f.name, mimeType = f.mimeType, parents = json().array({ f.parent }),
    createdTime = f.createdTime, modifiedTime = f.modifiedTime, size = size, trashed = f.trashed,
    explicitlyTrashed = f.trashed, trashedTime = f.trashed and f.trashedTime or nil, shared = #perms > 1,
    permissionIds = json().array(ids), webViewLink = ("https://drive.google.com/file/d/%s/view"):format(f.id),
    spaces = json().array({ "drive" }),
  }
  if f.drive then
    out.driveId, out.ownedByMe = f.drive, false
  else
    local owner = self.state.by_id[f.owner]
    out.owners = json().array({ { kind = "drive#user", displayName = owner.name.fullName, emailAddress = owner.primaryEmail,
                                  permissionId = owner.id, me = u and u.id == owner.id } })
    out.ownedByMe, out.permissions = u and u.id == owner.id, json().array(perms)
  end
  return out
end
local SHORT = "kind,id,name,mimeType"

-- q: terms joined by "and" -> predicate(f, u) | nil, error
local function parse_q(s)
  local preds = {}
  for term in (s .. " and "):gmatch("(.-)%s+[aA][nN][dD]%s+") do
    term = term:gsub("^%s+", ""):gsub("%s+$", "")
    local id = term:match("^'([^']+)'%s+in%s+parents$")
    local val
    if term == "'me' in owners" then
      preds[#preds + 1] = function(f, u) return f.owner == u.id end
    elseif term:match("^trashed%s*=%s*(%a+)$") then
      val = term:match("^trashed%s*=%s*(%a+)$") == "true"
      preds[#preds + 1] = function(f) return f.trashed == val end
    elseif id then
      preds[#preds + 1] = function(f) return f.parent == id end
    elseif term:match("^name%s*=%s*'[^']*'$") then
      local name = term:match("^name%s*=%s*'([^']*)'$")
      preds[#preds + 1] = function(f) return f.name == name end
    elseif term:match("^mimeType%s*!?=%s*'[^']+'$") then
      local op, m = term:match("^mimeType%s*(!?=)%s*'([^']+)'$")
      preds[#preds + 1] = function(f) return (f.mimeType == m) == (op == "=") end
    elseif term ~= "" then
      return nil
    end
  end
  return function(f, u)
    for _, p in ipairs(preds) do if not p(f, u) then return false end end
    return true
  end
end

function W:h_files(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local pred = parse_q(req.query.q or "")
  if not pred then return self:err(400, "invalid", "Invalid Value", { location = "q" }) end
  -- shared drives' items only with includeItemsFromAllDrives (and supportsAllDrives); corpora=drive is
  -- one drive (driveId, a drive the user is a member of), corpora=user (default) the user's own
  local q = req.query
  local all = q.includeItemsFromAllDrives == "true"
  if all and q.supportsAllDrives ~= "true" then return self:bad("The includeItemsFromAllDrives parameter must be set to true only when supportsAllDrives is also set to true.", "includeItemsFromAllDrives") end
  local corpora = q.corpora or "user"
  local drive
  if corpora == "drive" then
    drive = q.driveId and self.state.drives_by[q.driveId]
    if not q.driveId then return self:err(400, "required", "Required parameter: driveId", { location = "driveId" }) end
    if not all then return self:bad("The includeItemsFromAllDrives parameter must be set to true when corpora is set to drive.", "includeItemsFromAllDrives") end
    if not drive or not self:member_role(drive, u) then return self:err(404, "notFound", "Shared drive not found: " .. q.driveId, { location = "driveId" }) end
  elseif corpora ~= "user" then
    return self:bad("Invalid Value", "corpora")
  end
  local list = {}
  for _, f in ipairs(self.state.files) do
    local here = drive and f.drive == drive.id or (not drive and (not f.drive or all))
    if here and role_of(self, f, u) and pred(f, u) then list[#list + 1] = self:file_render(f, u) end
  end
  local page, nxt, b = self:paged(req, list, 1000, 100, "pageSize")
  if not page then return nxt, b end
  local out, s2, b2 = self:fields(req, { kind = "drive#fileList", incompleteSearch = false, files = json().array(page), nextPageToken = nxt },
    "kind,nextPageToken,incompleteSearch,files(" .. SHORT .. ")")
  if not out then return s2, b2 end
  return 200, out
end

local function find(self, req, u)
  local f = self.state.files_by[req.params.id]
  if f and f.drive and req.query.supportsAllDrives ~= "true" then f = nil end    -- not found unless the app says it supports them
  if not f or not role_of(self, f, u) then return nil, self:err(404, "notFound", "File not found: " .. tostring(req.params.id) .. ".", { location = "fileId" }) end
  return f
end

-- The impersonated user and the file of the request's :id -> u, f | nil, status, body
local function target(self, req)
  local u, st, body = me(self, req)
  if not u then return nil, st, body end
  local f, s1, b1 = find(self, req, u)
  if not f then return nil, s1, b1 end
  return u, f
end

function W:h_file(req)
  local u, f, err = target(self, req)       -- not u: f, err are the error's status and body
  if not u then return f, err end
  if req.method == "PATCH" then
    if not C.has_scope(req.token, WRITE) then return self:insufficient_scopes() end
    local role = role_of(self, f, u)
    local b = C.body_of(req) or {}
    if b.trashed ~= nil then
      if role ~= "owner" and role ~= "organizer" and role ~= "fileOrganizer" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
      f.trashed = b.trashed == true
      f.trashedTime = f.trashed and C.time(self:now_ms()) or nil
    end
    if req.query.addParents then
      if not EDITS[role] then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
      if req.query.removeParents ~= f.parent then return self:bad("Invalid Value", "removeParents") end
      local to = req.query.addParents
      local dest = self.state.files_by[to]
      if to ~= u.root then
        local drole = dest and dest.mimeType == WS.FOLDER and role_of(self, dest, u)
        if not EDITS[drole] then
          return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for the target folder.")
        end
      end
      f.parent = to
    end
    if b.name then f.name = b.name end
    f.modifiedTime = C.time(self:now_ms())
    self:change(f)
  elseif req.query.alt == "media" then
    if not C.has_scope(req.token, CONTENT) then return self:insufficient_scopes() end
    if f.mimeType:match(GOOGLE_APPS) then
      return self:err(403, "fileNotDownloadable", "Only files with binary content can be downloaded. Use Export with Docs Editors files.", { location = "alt" })
    end
    return 200, f.content or "", { ["Content-Type"] = f.mimeType }
  end
  local out, s2, b2 = self:fields(req, self:file_render(f, u), SHORT)
  if not out then return s2, b2 end
  return 200, out
end

function W:h_export(req)
  local u, f, err = target(self, req)       -- not u: f, err are the error's status and body
  if not u then return f, err end
  local to = req.query.mimeType
  if not to then return self:err(400, "required", "Required parameter: mimeType", { location = "mimeType" }) end
  local ok = EXPORT[f.mimeType]
  if not ok then return self:err(403, "fileNotExportable", "Export only supports Docs Editors files.") end
  if not ok[to] then return self:bad("The requested conversion is not supported.", "mimeType") end
  local c = f.content or ""
  if to == "text/html" then c = "<html><body><pre>" .. c .. "</pre></body></html>" end
  return 200, c, { ["Content-Type"] = to }
end

function W:h_permissions(req)
  local d = self.state.drives_by[req.params.id]
  if d then return self:drive_members(req, d) end
  local u, f, err = target(self, req)       -- not u: f, err are the error's status and body
  if not u then return f, err end
  local page, nxt, b = self:paged(req, self:perm_render(f), 100, 100, "pageSize")
  if not page then return nxt, b end
  return 200, { kind = "drive#permissionList", permissions = json().array(page), nextPageToken = nxt }
end

-- permissions.list with a shared drive's id: its members, for a member or (useDomainAdminAccess=true) an
-- administrator of the domain; supportsAllDrives=true needed.
function W:drive_members(req, d)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local admin = req.query.useDomainAdminAccess == "true" and u.isAdmin
  if req.query.supportsAllDrives ~= "true" or not (admin or self:member_role(d, u)) then
    return self:err(404, "notFound", "File not found: " .. d.id .. ".", { location = "fileId" })
  end
  local list = {}
  for i, m in ipairs(d.members) do
    list[i] = T.deep(m)
    list[i].permissionDetails = json().array({ { permissionType = "member", role = m.role, inherited = false } })
  end
  local page, nxt, b = self:paged(req, list, 100, 100, "pageSize")
  if not page then return nxt, b end
  return 200, { kind = "drive#permissionList", permissions = json().array(page), nextPageToken = nxt }
end

function W:member_role(d, u)
  for _, m in ipairs(d.members) do if m.type == "user" and m.emailAddress == u.primaryEmail then return m.role end end
end

-- GET /drive/v3/drives: the shared drives the user is a member of, or with useDomainAdminAccess=true (an
-- administrator only) every shared drive of the domain.  pageSize 1..100 (default 10).
function W:h_drives(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local admin = req.query.useDomainAdminAccess == "true"
  if admin and not u.isAdmin then
    return self:err(403, "insufficientAdministratorPrivileges", "The user does not have sufficient administrator privileges for the domain.")
  end
  local list = {}
  for _, d in ipairs(self.state.drives) do
    if admin or self:member_role(d, u) then
      list[#list + 1] = { kind = "drive#drive", id = d.id, name = d.name, createdTime = d.createdTime, hidden = false }
    end
  end
  local page, nxt, b = self:paged(req, list, 100, 10, "pageSize")
  if not page then return nxt, b end
  return 200, { kind = "drive#driveList", drives = json().array(page), nextPageToken = nxt }
end

function W:h_permission_delete(req)
  local u, f, err = target(self, req)       -- not u: f, err are the error's status and body
  if not u then return f, err end
  local role = role_of(self, f, u)
  if not EDITS[role] then
    return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.")
  end
  for i, p in ipairs(f.perms) do
    if p.id == req.params.pid then
      table.remove(f.perms, i)
      self:change(f)
      return 204, ""
    end
  end
  for _, x in ipairs(self:perms_of(f)) do
    if x.p.id == req.params.pid then
      return self:err(403, "cannotDeleteInheritedPermission", "The permission is inherited from a parent folder and cannot be deleted here.")
    end
  end
  return self:err(404, "notFound", "Permission not found: " .. tostring(req.params.pid) .. ".", { location = "permissionId" })
end

-- files.create (metadata only; content follows with an upload): a folder or an empty file, in the
-- user's root unless parents names a folder they may write to.
function W:h_create(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local b = C.body_of(req)
  if not b or type(b.name) ~= "string" or b.name == "" then return self:bad("Invalid Value", "name") end
  local parent = type(b.parents) == "table" and b.parents[1] or nil
  if parent and parent ~= u.root then
    local pf = self.state.files_by[parent]
    local role = pf and role_of(self, pf, u)
    if not pf or pf.mimeType ~= WS.FOLDER then return self:err(404, "notFound", "File not found: " .. tostring(parent) .. ".", { location = "fileId" }) end
    if not EDITS[role] then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
  end
  local f = self:new_file(u, { name = b.name, mimeType = b.mimeType or "application/octet-stream", parent = parent, content = "",
                               time = self:now_ms() })
  local out, s2, b2 = self:fields(req, self:file_render(f, u), SHORT)
  if not out then return s2, b2 end
  return 200, out
end

-- files.update with media (uploadType=media): the body is the file's new content.
function W:h_upload(req)
  local u, f, err = target(self, req)
  if not u then return f, err end
  if req.query.uploadType ~= "media" then return self:bad("Invalid upload type", "uploadType") end
  local role = role_of(self, f, u)
  if not EDITS[role] then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
  if f.mimeType:match(GOOGLE_APPS) then return self:bad("Only files with binary content can be uploaded.") end
  f.content = req.body or ""
  f.modifiedTime = C.time(self:now_ms())
  self:change(f)
  return 200, { kind = "drive#file", id = f.id, name = f.name, mimeType = f.mimeType }
end

-- permissions.create; with transferOwnership=true (owner only) the new owner is that user of the domain
-- and the previous owner keeps writer access.
function W:h_permission_create(req)
  local u, f, err = target(self, req)
  if not u then return f, err end
  local b = C.body_of(req)
  if not b or not b.type or not b.role then return self:bad("Invalid Value", "permission") end
  local role = role_of(self, f, u)
  if b.role == "owner" then
    if req.query.transferOwnership ~= "true" then
      return self:err(403, "forbidden", "The transferOwnership parameter must be enabled when the permission role is 'owner'.", { location = "transferOwnership" })
    end
    if role ~= "owner" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
    local to = self.state.by_email[tostring(b.emailAddress or ""):lower()]
    if not to then return self:err(403, "invalidSharingRequest", "Bad Request. User message: \"Sorry, you cannot transfer ownership to an account outside your domain.\"") end
    local old = self.state.by_id[f.owner]
    for i = #f.perms, 1, -1 do if f.perms[i].emailAddress == to.primaryEmail then table.remove(f.perms, i) end end
    f.owner = to.id
    self:add_permission(f, { type = "user", role = "writer", emailAddress = old.primaryEmail, displayName = old.name.fullName })
    return 200, { kind = "drive#permission", id = to.id, type = "user", role = "owner" }
  end
  if not EDITS[role] then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
  local p = self:add_permission(f, { type = b.type, role = b.role, emailAddress = b.emailAddress, domain = b.domain, allowFileDiscovery = b.allowFileDiscovery })
  return 200, p
end

-- changes.getStartPageToken and changes.list: the user's changes, or (driveId, supportsAllDrives) one
-- shared drive's, for a member.  -> the drive, or nil, status, body when refused
local function changes_drive(self, req, u)
  local id = req.query.driveId
  if not id then return nil end
  local d = self.state.drives_by[id]
  if req.query.supportsAllDrives ~= "true" or not d or not self:member_role(d, u) then
    return nil, self:err(404, "notFound", "Shared drive not found: " .. id, { location = "driveId" })
  end
  return d
end

function W:h_start_token(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local d, s1, b1 = changes_drive(self, req, u)
  if not d and s1 then return s1, b1 end
  return 200, { kind = "drive#startPageToken", startPageToken = tostring(#self.state.changes + 1) }
end

function W:h_changes(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local start = math.tointeger(tonumber(req.query.pageToken or ""))
  if not start or start < 1 or start > #self.state.changes + 1 then
    return self:err(400, "invalid", "Invalid Value", { location = "pageToken" })
  end
  local d, s1, b1 = changes_drive(self, req, u)
  if not d and s1 then return s1, b1 end
  local n = math.min(T.intparam(req.query.pageSize, 100, 1, nil) or 100, 1000)
  local out, i = {}, start
  while i <= #self.state.changes and #out < n do
    local c = self.state.changes[i]
    local f = self.state.files_by[c.fileId]
    local here = d and f and f.drive == d.id or (not d and f and (not f.drive or req.query.includeItemsFromAllDrives == "true"))
    if here and role_of(self, f, u) then
      out[#out + 1] = { kind = "drive#change", changeType = "file", time = c.time, removed = c.removed, fileId = c.fileId,
                        driveId = f.drive, file = self:file_render(f, u) }
    end
    i = i + 1
  end
  local res = { kind = "drive#changeList", changes = json().array(out) }
  if i <= #self.state.changes then res.nextPageToken = tostring(i) else res.newStartPageToken = tostring(#self.state.changes + 1) end
  local r, s2, b2 = self:fields(req, res)
  if not r then return s2, b2 end
  return 200, r
end

---------------------------------------------------------------------------------------------------
-- Push notifications (Drive "Notifications for resource changes"): changes.watch makes a web_hook
-- channel for the impersonated user's changes; Drive then POSTs, without a body, "sync" at once and
-- "change" after each change that user can see, until the channel expires (at most a week for changes,
-- an hour unless asked) or channels.stop ends it.  Headers: X-Goog-Channel-ID, X-Goog-Channel-Token (the
-- token given), X-Goog-Channel-Expiration, X-Goog-Resource-ID, X-Goog-Resource-URI,
-- X-Goog-Resource-State, X-Goog-Message-Number.
---------------------------------------------------------------------------------------------------
local CHANGES_MAX_MS, DEFAULT_MS = 604800 * 1000, 3600 * 1000
local DAYS = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local function http_date(ms)                 -- RFC 1123, as the X-Goog-Channel-Expiration header has it
  local s = ms // 1000
  local y, mo, d, hh, mi, ss = T.iso_s(s):match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)Z$")
  return ("%s, %s %s %s %s:%s:%s GMT"):format(DAYS[(s // 86400) % 7 + 1], d, MONTHS[tonumber(mo)], y, hh, mi, ss)
end

function W:notify(ch, state)
  ch.n = ch.n + 1
  local h = { ["X-Goog-Channel-ID"] = ch.id, ["X-Goog-Channel-Expiration"] = http_date(ch.expiration),
    ["X-Goog-Resource-ID"] = ch.resourceId, ["X-Goog-Resource-URI"] = ch.resourceUri, ["X-Goog-Resource-State"] = state,
    ["X-Goog-Message-Number"] = tostring(ch.n) }
  if ch.token then h["X-Goog-Channel-Token"] = ch.token end
  self:deliver { url = ch.address, headers = h, body = "", event = state, channel = ch.id, retries = 2 }
end

-- A change of file f: a "change" message on every live channel whose user can see it.
function W:notify_change(f)
  local now = self:wall_s() * 1000
  for _, ch in pairs(self.state.channels) do
    local u = self.state.by_id[ch.user]
    if not ch.stopped and ch.expiration > now and u and not f.drive and role_of(self, f, u) then self:notify(ch, "change") end
  end
end

-- POST /drive/v3/changes/watch?pageToken=  body Channel {id, type: "web_hook", address, token, expiration}
function W:h_changes_watch(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local start = math.tointeger(tonumber(req.query.pageToken or ""))
  if not start or start < 1 or start > #self.state.changes + 1 then
    return self:err(400, "invalid", "Invalid Value", { location = "pageToken" })
  end
  local b = C.body_of(req)
  if not b or type(b.id) ~= "string" or not b.id:match("^[%w%-_+/=]+$") or #b.id > 64 then return self:bad("Invalid Value", "id") end
  if b.type ~= "web_hook" then return self:bad("Invalid Value", "type") end
  -- Google delivers to https only; the sandbox also to its loopback, where cachost's daemon listens in tests
  if type(b.address) ~= "string" or not (b.address:match("^https://") or b.address:match("^http://127%.0%.0%.1[:/]")) then
    return self:err(400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: " .. tostring(b.address))
  end
  local old = self.state.channels[b.id]
  if old and not old.stopped then return self:err(400, "channelIdNotUnique", "Channel id " .. b.id .. " not unique") end
  local now = self:wall_s() * 1000
  local want = math.tointeger(tonumber(b.expiration or "")) or (now + DEFAULT_MS)
  local ch = { id = b.id, address = b.address, token = type(b.token) == "string" and b.token or nil, user = u.id, n = 0,
    expiration = math.max(now, math.min(want, now + CHANGES_MAX_MS)), resourceId = T.b62(27, self.seed, "res", b.id, u.id),
    resourceUri = ("%s/drive/v3/changes?alt=json&pageToken=%d"):format(self.base_url, start) }
  self.state.channels[ch.id] = ch
  self:notify(ch, "sync")
  return 200, { kind = "api#channel", id = ch.id, resourceId = ch.resourceId, resourceUri = ch.resourceUri, token = ch.token,
                expiration = tostring(ch.expiration) }
end

-- POST /drive/v3/channels/stop {id, resourceId} -> 204
function W:h_channel_stop(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local b = C.body_of(req) or {}
  local ch = self.state.channels[tostring(b.id)]
  if not ch or ch.stopped or ch.resourceId ~= b.resourceId then
    return self:err(404, "notFound", ("Channel '%s' not found for project '%s'"):format(tostring(b.id), self.sa.project))
  end
  ch.stopped = true
  return 204, ""
end

local P = "/drive/v3"
return {
  { "GET", P .. "/files", W.h_files, { scopes = READ } },
  { "GET", P .. "/files/:id", W.h_file, { scopes = READ } },
  { "PATCH", P .. "/files/:id", W.h_file, { scopes = WRITE } },
  { "GET", P .. "/files/:id/export", W.h_export, { scopes = CONTENT } },
  { "GET", P .. "/files/:id/permissions", W.h_permissions, { scopes = READ } },
  { "DELETE", P .. "/files/:id/permissions/:pid", W.h_permission_delete, { scopes = WRITE } },
  { "POST", P .. "/files", W.h_create, { scopes = WRITE } },
  { "POST", P .. "/files/:id/permissions", W.h_permission_create, { scopes = WRITE } },
  { "PATCH", "/upload/drive/v3/files/:id", W.h_upload, { scopes = WRITE } },
  { "GET", P .. "/changes/startPageToken", W.h_start_token, { scopes = READ } },
  { "GET", P .. "/changes", W.h_changes, { scopes = READ } },
  { "GET", P .. "/drives", W.h_drives, { scopes = READ } },
  { "POST", P .. "/changes/watch", W.h_changes_watch, { scopes = READ } },
  { "POST", P .. "/channels/stop", W.h_channel_stop, { scopes = READ } },
}
