-- sandbox/box/content.lua — folders, files, collaborations, trash, downloads by redirect, uploads on the
-- upload host.
local T = require "sandbox.tenant"
local C = require "sandbox.box.common"
local Box = C.Box
local M = {}
local data = require "sandbox.box.data"
local KINDS, SENSITIVE, sha1_hex = data.KINDS, data.SENSITIVE, data.sha1_hex
local json, crypto, jnull, body_of = C.json, C.crypto, C.jnull, C.body_of

-- Who reaches what (Box's permission model, as far as the connector meets it): every user has a root
-- of their own (folder 0); a user reaches an item they own or that lies under a folder they own, or one that
-- is (or lies under) an item collaborated with them or with a group they are in.  An uploader only adds:
-- they do not see the folder's content.  Without As-User a token acts as its own user (the service
-- account, or the admin who consented): other users' content is as invisible to it as to anyone (404).
local SEE = { editor = true, viewer = true, previewer = true, ["co-owner"] = true, owner = true,
              ["viewer uploader"] = true, ["previewer uploader"] = true }
local EDIT = { editor = true, ["co-owner"] = true, owner = true }
local ADD = { editor = true, ["co-owner"] = true, owner = true, uploader = true, ["viewer uploader"] = true,
              ["previewer uploader"] = true }
M.SEE = SEE

function Box:in_group(uid, gid)
  for _, m in ipairs(self.state.memberships) do if m.user == uid and m.group == gid then return true end end
  return false
end

-- a collaboration on `it` itself (not inherited) gives `u` one of `roles`
function Box:role_on(u, it, roles)
  for _, c in ipairs(self:collabs_of(it.id)) do
    if c.status == "accepted" and roles[c.role] and (c.who == u.id or (c.group and self:in_group(u.id, c.who))) then return true end
  end
  return false
end

function Box:reaches(u, it, roles)
  if it.id == "0" then return true end
  local p = it
  while p and p.id ~= "0" do
    if p.owner == u.id or self:role_on(u, p, roles or SEE) then return true end
    p = p.parent and self.state.items[p.parent]
  end
  return false
end

-- an item (trashed or not); with `actor`, only one that actor reaches
function Box:item(id, ty, actor)
  local it = self.state.items[id or ""]
  if it and (not ty or it.type == ty) and (not actor or self:reaches(actor, it)) then return it end
end

function Box:live(id, ty, actor)
  local it = self:item(id, ty, actor)
  if it and not self:in_trash(it) then return it end
end

-- who owns what is put in `folder`: the folder's owner (an item moved into another user's folder becomes
-- theirs); the root is the actor's own
function Box:owner_in(folder, actor) return folder.id == "0" and actor.id or folder.owner end

function Box:set_owner(it, owner)
  local old = it.owner
  it.owner = owner
  if it.type == "folder" then
    for _, c in ipairs(self:children(it.id, true)) do if c.owner == old then self:set_owner(c, owner) end end
  end
end

function Box:touch(it, by)
  it.seq = it.seq + 1
  it.modified = self:now_ms()
  it.modified_by = by and by.id or it.modified_by
end

function Box:h_folder_items(req)
  local f = self:live(req.params.id, "folder", req.actor)
  if not f then return self:not_found("folder") end
  self.listed[f.id] = (self.listed[f.id] or 0) + 1                        -- for tests: folders listed how often
  return self:paged(req, self:children(f.id, false, req.actor), function(it) return self:render_item(it, req.query.fields, true) end)
end

function Box:h_get_item(req, ty)
  local it = self:live(req.params.id, ty, req.actor)
  if not it then
    local t = self:item(req.params.id, ty, req.actor)
    if t then return self:err(404, "trashed", "Item is trashed") end
    return self:not_found(ty)
  end
  if req.headers["if-none-match"] and req.headers["if-none-match"] == tostring(it.seq) then return 304, "" end
  return 200, self:render_item(it, req.query.fields)
end

-- webhook fan-out: the webhooks on the item itself or on a folder above it
function Box:notify(trigger, it, actor, extra)
  local chain = {}
  local p = it
  while p do chain[p.id] = true; p = p.parent and self.state.items[p.parent] end
  for _, w in ipairs(self.state.webhooks) do
    local want = false
    for _, t in ipairs(w.triggers) do if t == trigger then want = true end end
    if want and chain[w.target.id] then self:send_webhook(w, trigger, it, actor, extra) end
  end
end

-- the first item of children(parent, false, actor) named `name` (case-insensitive) other than `except`
function Box:name_taken(parent, name, except, actor)
  local key, first = name:lower(), nil
  for id in pairs(self.state.named[key] or {}) do
    local c = self.state.items[id]
    if c and id ~= except and c.name:lower() == key and self:listed_in(c, parent, false, actor)
        and (not first or Box.before(c, first)) then first = c end
  end
  return first
end

function Box:conflict(c)
  return self:err(409, "item_name_in_use", "Item with the same name already exists",
    { conflicts = json().array({ self:item_mini(c) }) })
end

-- PUT /files/{id}, PUT /folders/{id}: rename, move (parent.id), shared_link (null removes)
function Box:h_put_item(req, ty)
  local it = self:live(req.params.id, ty, req.actor)
  if not it then return self:not_found(ty) end
  if not self:reaches(req.actor, it, EDIT) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local b = body_of(req)
  if not b then return self:err(400, "bad_request", "Invalid JSON body") end
  local im = req.headers["if-match"]
  if im and im ~= tostring(it.seq) then return self:err(412, "precondition_failed", "The resource has been modified. Please retrieve the resource again and retry") end
  local name = type(b.name) == "string" and b.name or it.name
  local parent = it.parent
  if type(b.parent) == "table" and b.parent.id then
    local p = self:live(tostring(b.parent.id), "folder", req.actor)
    if not p and self:live(tostring(b.parent.id), "folder") and self:reaches(req.actor, self.state.items[tostring(b.parent.id)], ADD) then
      p = self.state.items[tostring(b.parent.id)]                  -- an uploader may put things in
    end
    if not p then return self:not_found("parent") end
    local q = p
    while q do if q.id == it.id then return self:err(400, "bad_request", "Cannot move a folder into itself") end; q = q.parent and self.state.items[q.parent] end
    parent = p.id
  end
  if name ~= it.name or parent ~= it.parent then
    local c = self:name_taken(parent, name, it.id, req.actor)
    if c then return self:conflict(c) end
  end
  local moved = parent ~= it.parent
  it.parent = parent
  self:rename(it, name)
  if moved then
    local owner = self:owner_in(self.state.items[parent], req.actor)
    if owner ~= it.owner then self:set_owner(it, owner) end
  end
  local jn = jnull()
  if b.shared_link == jn then
    if it.link then it.link = nil; self:add_event("UNSHARE", req.actor, it); self:notify("SHARED_LINK.DELETED", it, req.actor) end
  elseif type(b.shared_link) == "table" then
    local acc = b.shared_link.access or (it.link and it.link.access) or "open"
    if acc ~= "open" and acc ~= "company" and acc ~= "collaborators" then return self:err(400, "bad_request", "Invalid value for 'shared_link.access'") end
    local created = not it.link
    it.link = it.link or self:make_link(it, acc)
    it.link.access = acc
    it.link.password = b.shared_link.password and b.shared_link.password ~= jn or nil
    it.link.unshared_at = b.shared_link.unshared_at and T.parse_iso(b.shared_link.unshared_at) or nil
    self:add_event(created and "SHARE" or "ITEM_SHARED_UPDATE", req.actor, it)
    self:notify(created and "SHARED_LINK.CREATED" or "SHARED_LINK.UPDATED", it, req.actor)
  end
  self:touch(it, req.actor)
  if moved then
    self:add_event("MOVE", req.actor, it)
    self:notify((ty == "file" and "FILE" or "FOLDER") .. ".MOVED", it, req.actor)
  end
  return 200, self:render_item(it, req.query.fields)
end

-- DELETE /files/{id}, /folders/{id}: to the trash
function Box:h_delete_item(req, ty)
  local it = self:live(req.params.id, ty, req.actor)
  if not it or it.id == "0" then return self:not_found(ty) end
  if not self:reaches(req.actor, it, EDIT) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  if ty == "folder" and #self:children(it.id) > 0 and req.query.recursive ~= "true" then
    return self:err(400, "folder_not_empty", "Cannot delete - folder not empty")
  end
  local im = req.headers["if-match"]
  if im and im ~= tostring(it.seq) then return self:err(412, "precondition_failed", "The resource has been modified. Please retrieve the resource again and retry") end
  it.trashed_at = self:now_ms()
  self:touch(it, req.actor)
  self:add_event("DELETE", req.actor, it)
  self:notify((ty == "file" and "FILE" or "FOLDER") .. ".TRASHED", it, req.actor)
  return 204, ""
end

-- GET /files/{id}/trash, DELETE (purge), POST /files/{id} (restore)
function Box:h_trash_item(req, ty)
  local it = self:item(req.params.id, ty, req.actor)
  if not it or not it.trashed_at then return self:err(404, "not_trashed", "Item is not trashed") end
  if req.method == "GET" then return 200, self:render_item(it, req.query.fields) end
  -- purge
  self.state.items[it.id] = nil
  for i, id in ipairs(self.state.order) do if id == it.id then table.remove(self.state.order, i); break end end
  self:add_event("DELETE", req.actor, it, { details = { purged = true } })
  return 204, ""
end

function Box:h_restore(req, ty)
  local it = self:item(req.params.id, ty, req.actor)
  if not it or not it.trashed_at then return self:err(405, "method_not_allowed", "Method Not Allowed") end
  local b = body_of(req) or {}
  local parent = it.parent
  if type(b.parent) == "table" and b.parent.id then parent = tostring(b.parent.id) end
  local p = self:live(parent, "folder", req.actor)
  if not p then return self:err(403, "access_denied_insufficient_permissions", "The parent folder is trashed or gone; give parent.id") end
  local name = type(b.name) == "string" and b.name or it.name
  local c = self:name_taken(parent, name, it.id, req.actor)
  if c then return self:conflict(c) end
  it.trashed_at, it.parent = nil, parent
  self:rename(it, name)
  self:touch(it, req.actor)
  self:add_event("UNDELETE", req.actor, it)
  self:notify((ty == "file" and "FILE" or "FOLDER") .. ".RESTORED", it, req.actor)
  return 201, self:render_item(it, req.query.fields)
end

function Box:h_trash_list(req)
  local list = {}
  for _, id in ipairs(self.state.order) do
    local it = self.state.items[id]
    -- the trash is each user's own: what they own that they deleted
    if it.trashed_at and not self:in_trash(self.state.items[it.parent]) and it.owner == req.actor.id then list[#list + 1] = it end
  end
  return self:paged(req, list, function(it) return self:render_item(it, req.query.fields, true) end)
end

function Box:h_item_collabs(req, ty)
  local it = self:live(req.params.id, ty, req.actor)
  if not it then return self:not_found(ty) end
  local list = self:collabs_of(it.id)
  -- marker pagination only (§6)
  req.query.usemarker = "true"
  return self:paged(req, list, function(c) return self:collab_json(c) end)
end

function Box:h_collab(req)
  for i, c in ipairs(self.state.collabs) do
    if c.id == req.params.id then
      local on = self.state.items[c.item]
      if c.who ~= req.actor.id and not (on and self:reaches(req.actor, on)) then return self:not_found("collaboration") end
      if req.method ~= "GET" and c.who ~= req.actor.id and not self:reaches(req.actor, on, EDIT) then
        return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission")
      end
      if req.method == "GET" then return 200, self:collab_json(c) end
      if req.method == "DELETE" then
        table.remove(self.state.collabs, i)
        local it = self.state.items[c.item]
        self:add_event("COLLABORATION_REMOVE", req.actor, it, { details = { collaborator = c.who } })
        if it then self:notify("COLLABORATION.REMOVED", it, req.actor) end
        return 204, ""
      end
      local b = body_of(req) or {}
      if b.role then c.role = b.role end
      if b.expires_at then c.expires = T.parse_iso(b.expires_at) end
      self:add_event("COLLABORATION_ROLE_CHANGE", req.actor, self.state.items[c.item])
      return 200, self:collab_json(c)
    end
  end
  return self:not_found("collaboration")
end

function Box:h_post_collab(req)
  local b = body_of(req)
  if not b or type(b.item) ~= "table" or type(b.accessible_by) ~= "table" or not b.role then return self:err(400, "bad_request", "item, accessible_by and role are required") end
  local it = self:live(tostring(b.item.id), b.item.type, req.actor)
  if not it then return self:not_found("item") end
  if not self:reaches(req.actor, it, EDIT) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local who
  if b.accessible_by.type == "group" then
    for _, g in ipairs(self.state.groups) do if g.id == tostring(b.accessible_by.id) then who = { id = g.id, name = g.name, group = true } end end
  else
    who = self.state.by_id[tostring(b.accessible_by.id or "")]
    if not who and b.accessible_by.login then
      for _, u in pairs(self.state.by_id) do if u.login == b.accessible_by.login then who = u end end
      if not who then
        local x = { id = self:new_id("user"), name = b.accessible_by.login, login = b.accessible_by.login, external = true, status = "active", role = "user", created = self:now_ms() }
        self.state.externals[#self.state.externals + 1] = x; self.state.by_id[x.id] = x; who = x
      end
    end
  end
  if not who then return self:not_found("accessible_by") end
  for _, x in ipairs(self:collabs_of(it.id)) do
    if x.who == who.id then return self:err(400, "user_already_collaborator", "User is already a collaborator") end
  end
  local c = self:add_collab(it, who, b.role)
  c.created_by = req.actor.id
  self:add_event("COLLABORATION_INVITE", req.actor, it)
  self:notify("COLLABORATION.CREATED", it, req.actor)
  return 201, self:collab_json(c)
end

function Box:h_post_folder(req)
  local b = body_of(req)
  if not b or type(b.name) ~= "string" or b.name == "" or type(b.parent) ~= "table" then return self:err(400, "bad_request", "name and parent are required") end
  if b.name:find("[/\\]") or b.name == "." or b.name == ".." then return self:err(400, "item_name_invalid", "Item name invalid") end
  local p = self:live(tostring(b.parent.id), "folder", req.actor)
  if not p then return self:not_found("parent") end
  if not self:reaches(req.actor, p, ADD) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local c = self:name_taken(p.id, b.name, nil, req.actor)
  if c then return self:conflict(c) end
  local f = self:add_item{ type = "folder", name = b.name, parent = p.id, owner = self:owner_in(p, req.actor), created = self:now_ms() }
  self:add_event("CREATE", req.actor, f)
  self:notify("FOLDER.CREATED", f, req.actor)
  return 201, self:render_item(f, req.query.fields)
end

-- GET /files/{id}/content: 302 to a short-lived download URL (served by this server)
function Box:download_sig(id) return crypto().b64url(crypto().hmac_sha256(self.client_secret, "dl:" .. id)):sub(1, 22) end
function Box:h_download(req)
  local it = self:live(req.params.id, "file", req.actor)
  if not it then return self:not_found("file") end
  self:add_event("DOWNLOAD", req.actor, it)
  self:notify("FILE.DOWNLOADED", it, req.actor)
  return 302, "", { Location = self.root_url .. "/dl/" .. it.id .. "/" .. self:download_sig(it.id) }
end
function Box:h_dl(req)
  local it = self:live(req.params.id, "file")
  if not it or not crypto().equal(req.params.sig, self:download_sig(it.id)) then return 404, "not found", { ["Content-Type"] = "text/plain" } end
  local ct = it.name:match("%.txt$") and "text/plain; charset=utf-8" or "application/octet-stream"
  return 200, it.content, { ["Content-Type"] = ct, ["Content-Disposition"] = 'attachment; filename="' .. it.name:gsub('"', "") .. '"' }
end

-- multipart/form-data: -> list of {name=, filename=, content_type=, data=} or nil, err
function M.parse_multipart(ctype, body)
  local boundary = (ctype or ""):match('boundary="([^"]+)"') or (ctype or ""):match("boundary=([^;%s]+)")
  if not boundary then return nil, "no boundary" end
  local delim = "--" .. boundary
  local parts = {}
  local pos = body:find(delim, 1, true)
  if not pos then return nil, "no parts" end
  pos = pos + #delim
  while true do
    if body:sub(pos, pos + 1) == "--" then break end              -- closing delimiter
    if body:sub(pos, pos + 1) ~= "\r\n" then return nil, "bad delimiter line" end
    local hend = body:find("\r\n\r\n", pos + 2, true)
    if not hend then return nil, "unterminated part headers" end
    local headers = {}
    for line in body:sub(pos + 2, hend - 1):gmatch("[^\r\n]+") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    end
    local nxt = body:find("\r\n" .. delim, hend + 4, true)
    if not nxt then return nil, "unterminated part" end
    local cd = headers["content-disposition"] or ""
    parts[#parts + 1] = { name = cd:match('[; ]name="([^"]*)"'), filename = cd:match('filename="([^"]*)"'),
                          content_type = headers["content-type"], data = body:sub(hend + 4, nxt - 1) }
    pos = nxt + 2 + #delim
  end
  return parts
end

function Box:upload_parts(req)
  local parts, perr = M.parse_multipart(req.headers["content-type"], req.body or "")
  if not parts then return nil, self:err(400, "bad_request", "Malformed multipart body: " .. perr) end
  local attrs, file
  for _, p in ipairs(parts) do
    if p.name == "attributes" then
      if file then return nil, self:err(400, "metadata_after_file_contents", "Metadata must be sent before file contents") end
      attrs = json().decode(p.data)
      if type(attrs) ~= "table" then return nil, self:err(400, "bad_request", "attributes is not JSON") end
    elseif p.name == "file" then file = p end
  end
  if not file then return nil, self:err(400, "bad_request", "The file part is missing") end
  return attrs or {}, file
end

function Box:set_content(it, data)
  it.content = data
  it.size = #data
  it.sha1 = sha1_hex(data)
  it.version_id = self:new_id("version")
  it.versions = (it.versions or 1) + 1
  it.sensitive = {}
  for _, k in ipairs(KINDS) do if data:find(SENSITIVE[k], 1, true) then it.sensitive[#it.sensitive + 1] = k end end
end

-- POST upload/files/content (new file), POST upload/files/{id}/content (new version)
function Box:h_upload(req)
  local attrs, file, ebody = self:upload_parts(req)
  if not attrs then return file, ebody end
  local it
  if req.params.id then
    it = self:live(req.params.id, "file", req.actor)
    if not it then return self:not_found("file") end
    if not self:reaches(req.actor, it, EDIT) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
    local im = req.headers["if-match"]
    if im and im ~= tostring(it.seq) then return self:err(412, "precondition_failed", "The resource has been modified. Please retrieve the resource again and retry") end
    if type(attrs.name) == "string" and attrs.name ~= it.name then
      local c = self:name_taken(it.parent, attrs.name, it.id, req.actor)
      if c then return self:conflict(c) end
      self:rename(it, attrs.name)
    end
    self.nseq = self.nseq + 1
    it.versions = it.versions or 1
    self:set_content(it, file.data)
    self:touch(it, req.actor)
    self:add_event("UPLOAD", req.actor, it, { details = { version = it.versions } })
  else
    if type(attrs.name) ~= "string" or attrs.name == "" or type(attrs.parent) ~= "table" then
      return self:err(400, "bad_request", "attributes.name and attributes.parent.id are required")
    end
    local p = self:item(tostring(attrs.parent.id), "folder")
    if not p or self:in_trash(p) or not self:reaches(req.actor, p, ADD) then return self:not_found("parent") end
    local c = self:name_taken(p.id, attrs.name, nil, req.actor)
    if c then return self:conflict(c) end
    it = self:add_item{ type = "file", name = attrs.name, parent = p.id, owner = self:owner_in(p, req.actor), created = self:now_ms(), content = "" }
    self:set_content(it, file.data)
    it.versions = 1
    self:add_event("UPLOAD", req.actor, it)
  end
  self:notify("FILE.UPLOADED", it, req.actor)
  return req.params.id and 200 or 201, { total_count = 1, entries = json().array({ self:item_full(it) }) }
end

return M
