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

local function role_of(self, f, u)
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

function W:perm_render(f)
  local owner = self.state.by_id[f.owner]
  local out = { { kind = "drive#permission", id = owner.id, type = "user", role = "owner", emailAddress = owner.primaryEmail,
                  displayName = owner.name.fullName, permissionDetails = json().array({ { permissionType = "file", role = "owner", inherited = false } }) } }
  for _, x in ipairs(self:perms_of(f)) do
    local p = T.deep(x.p)
    p.permissionDetails = json().array({ { permissionType = "file", role = p.role, inherited = x.inherited,
                                           inheritedFrom = x.inherited and x.from or nil } })
    out[#out + 1] = p
  end
  return out
end

function W:file_render(f, u)
  local owner = self.state.by_id[f.owner]
  local perms = self:perm_render(f)
  local ids = {}
  for _, p in ipairs(perms) do ids[#ids + 1] = p.id end
  local size = (not f.mimeType:match(GOOGLE_APPS)) and tostring(#(f.content or "")) or nil
  return {
    kind = "drive#file", id = f.id, name = f.name, mimeType = f.mimeType, parents = json().array({ f.parent }),
    owners = json().array({ { kind = "drive#user", displayName = owner.name.fullName, emailAddress = owner.primaryEmail,
                              permissionId = owner.id, me = u and u.id == owner.id } }),
    createdTime = f.createdTime, modifiedTime = f.modifiedTime, size = size, trashed = f.trashed,
    explicitlyTrashed = f.trashed, trashedTime = f.trashed and f.trashedTime or nil, shared = #perms > 1,
    ownedByMe = u and u.id == owner.id, permissionIds = json().array(ids), permissions = json().array(perms),
    webViewLink = ("https://drive.google.com/file/d/%s/view"):format(f.id), spaces = json().array({ "drive" }),
  }
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
  local list = {}
  for _, f in ipairs(self.state.files) do
    if role_of(self, f, u) and pred(f, u) then list[#list + 1] = self:file_render(f, u) end
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
      if role ~= "owner" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
      f.trashed = b.trashed == true
      f.trashedTime = f.trashed and C.time(self:now_ms()) or nil
    end
    if req.query.addParents then
      if role ~= "owner" and role ~= "writer" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
      if req.query.removeParents ~= f.parent then return self:bad("Invalid Value", "removeParents") end
      local to = req.query.addParents
      local dest = self.state.files_by[to]
      if to ~= u.root then
        local drole = dest and dest.mimeType == WS.FOLDER and role_of(self, dest, u)
        if drole ~= "owner" and drole ~= "writer" then
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
  local u, f, err = target(self, req)       -- not u: f, err are the error's status and body
  if not u then return f, err end
  local page, nxt, b = self:paged(req, self:perm_render(f), 100, 100, "pageSize")
  if not page then return nxt, b end
  return 200, { kind = "drive#permissionList", permissions = json().array(page), nextPageToken = nxt }
end

function W:h_permission_delete(req)
  local u, f, err = target(self, req)       -- not u: f, err are the error's status and body
  if not u then return f, err end
  local role = role_of(self, f, u)
  if role ~= "owner" and role ~= "writer" then
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
    if role ~= "owner" and role ~= "writer" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
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
  if role ~= "owner" and role ~= "writer" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
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
  if role ~= "owner" and role ~= "writer" then return self:err(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.") end
  local p = self:add_permission(f, { type = b.type, role = b.role, emailAddress = b.emailAddress, domain = b.domain, allowFileDiscovery = b.allowFileDiscovery })
  return 200, p
end

function W:h_start_token(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  return 200, { kind = "drive#startPageToken", startPageToken = tostring(#self.state.changes + 1) }
end

function W:h_changes(req)
  local u, st, body = me(self, req)
  if not u then return st, body end
  local start = math.tointeger(tonumber(req.query.pageToken or ""))
  if not start or start < 1 or start > #self.state.changes + 1 then
    return self:err(400, "invalid", "Invalid Value", { location = "pageToken" })
  end
  local n = math.min(T.intparam(req.query.pageSize, 100, 1, nil) or 100, 1000)
  local out, i = {}, start
  while i <= #self.state.changes and #out < n do
    local c = self.state.changes[i]
    local f = self.state.files_by[c.fileId]
    if f and role_of(self, f, u) then
      out[#out + 1] = { kind = "drive#change", changeType = "file", time = c.time, removed = c.removed, fileId = c.fileId,
                        file = self:file_render(f, u) }
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
    if not ch.stopped and ch.expiration > now and u and role_of(self, f, u) then self:notify(ch, "change") end
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
  { "POST", P .. "/changes/watch", W.h_changes_watch, { scopes = READ } },
  { "POST", P .. "/channels/stop", W.h_channel_stop, { scopes = READ } },
}
