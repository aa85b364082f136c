-- sandbox/microsoft/graph/drives.lua — OneDrive and SharePoint: drives, sites, items, permissions,
-- uploads, downloads and driveItem delta.
local C = require "sandbox.microsoft.common"
local T, MS, crypto, jnull, A, obj = C.T, C.MS, C.crypto, C.jnull, C.A, C.obj
local isoz, body_json, FILE_EXT = C.isoz, C.body_json, C.FILE_EXT
local O = require "sandbox.microsoft.graph.odata"
local project = O.project

local MIME = { docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  pptx = "application/vnd.openxmlformats-officedocument.presentationml.presentation", pdf = "application/pdf",
  txt = "text/plain", png = "image/png", csv = "text/csv" }
local FILE_BASES = { "Budget", "Roadmap", "Contract", "Customer list", "Salaries", "Design spec", "Meeting notes", "Invoice",
  "Board deck", "Passwords", "Architecture", "Q3 forecast" }
local SITE_NAMES = { "Marketing", "Finance", "Engineering", "Legal" }

function MS:new_item(drive, parent, name, folder, spec)
  local st = self.state
  self.file_seq = (self.file_seq or 0) + 1
  self.item_order = (self.item_order or 0) + 1
  local it = { id = "01" .. T.b62(32, self.seed, "item", drive.id, self.item_order):upper(), drive = drive, parent = parent and parent.id,
               name = name, folder = folder, order = self.item_order, cseq = self.file_seq, perms = {},
               created = spec and spec.created or self:now_ms(), by = spec and spec.by or drive.owner_user or self.admin,
               size = folder and 0 or (spec and spec.size or 0), content = spec and spec.content, version = 1 }
  it.modified = it.created
  st.items[it.id] = it
  drive.items[#drive.items + 1] = it
  return it
end

function MS:generate_files(r)
  local st = self.state
  local seed = self.seed
  local now = self.t0_ms
  local function mkdrive(key, dtype, name, owner_user, site)
    local d = { id = "b!" .. T.b62(64, seed, "drive", key), driveType = dtype, name = name, owner_user = owner_user, site = site,
                items = {}, created = now - r:int(100, 900) * 86400000 }
    st.drives[#st.drives + 1] = d
    st.drive_by_id[d.id] = d
    d.root = self:new_item(d, nil, "root", true, { created = d.created, by = owner_user })
    return d
  end
  local function fill(d, owner, nfiles, share_p)
    local docs = self:new_item(d, d.root, "Documents", true, { created = d.created + 86400000, by = owner })
    local shared = self:new_item(d, d.root, "Shared", true, { created = d.created + 2 * 86400000, by = owner })
    local parents = { d.root, docs, shared }
    for k = 1, nfiles do
      local ext = r:pick(FILE_EXT)
      local base = r:pick(FILE_BASES)
      local name = base .. " " .. k .. "." .. ext
      local it = self:new_item(d, r:pick(parents), name, false,
        { created = now - r:int(1, 300) * 86400000, by = owner, size = r:int(1000, 5000000) })
      it.modified = math.min(now - 60000, it.created + r:int(0, 30) * 86400000)
      if r:chance(share_p) then
        local x = r:float()
        if x < 0.35 then
          it.perms[#it.perms + 1] = { kind = "link", type = "view", scope = "anonymous", roles = { "read" } }
        elseif x < 0.65 then
          it.perms[#it.perms + 1] = { kind = "link", type = "edit", scope = "organization", roles = { "write" } }
        else
          local ext_mail = "partner" .. r:int(1, 99) .. "@" .. r:pick({ "gmail.com", "fabrikam.com", "outlook.com" })
          it.perms[#it.perms + 1] = { kind = "user", email = ext_mail, roles = { r:chance(0.5) and "write" or "read" }, external = true }
        end
      end
    end
    -- the Shared folder carries an anonymous edit link its children inherit
    shared.perms[#shared.perms + 1] = { kind = "link", type = "edit", scope = "anonymous", roles = { "write" } }
  end
  for _, u in ipairs(self.gen_users) do
    if u.userType == "Member" then
      local d = mkdrive("user" .. u.index, "business", "OneDrive", u)
      d.user = u
      fill(d, u, self.files_per_user, 0.3)
    end
  end
  for k = 1, math.min(#SITE_NAMES, self.opts.sites or 2) do
    local name = SITE_NAMES[k]
    local site = { id = "contoso.sharepoint.com," .. T.uuid(seed, "site", k) .. "," .. T.uuid(seed, "web", k), name = name,
                   created = now - r:int(300, 900) * 86400000 }
    st.sites[#st.sites + 1] = site
    local d = mkdrive("site" .. k, "documentLibrary", "Documents", self.admin, site)
    site.drive = d
    fill(d, self.admin, self.files_per_user * 3, 0.4)
  end
  -- permission ids are stable per (drive, item, index)
  for _, it in pairs(st.items) do
    for j, p in ipairs(it.perms) do p.id = T.uuid(seed, "perm", it.id, j) end
  end
end

function MS:drive_web(d)
  if d.site then return self.sp_host .. "/sites/" .. d.site.name .. "/Shared%20Documents" end
  return self.my_host .. "/personal/" .. d.owner_user.upn:gsub("[@%.]", "_"):lower() .. "/Documents"
end

local function identity(u)
  return { user = { id = u.id, displayName = u.displayName, email = u.mail } }
end

function MS:drive_json(d)
  return { id = d.id, driveType = d.driveType, name = d.name, description = "", createdDateTime = isoz(d.created),
           lastModifiedDateTime = isoz(d.created), webUrl = self:drive_web(d), createdBy = identity(d.owner_user),
           lastModifiedBy = identity(d.owner_user),
           owner = d.site and { group = { id = T.uuid(self.seed, "sitegroup", d.site.id), displayName = d.site.name .. " Owners" } } or identity(d.owner_user),
           quota = { deleted = 0, remaining = 1099511627776, state = "normal", total = 1099511627776, used = 0 } }
end

function MS:item_path(it)
  local parts = {}
  local p = it.parent and self.state.items[it.parent]
  while p and p.parent do table.insert(parts, 1, p.name); p = self.state.items[p.parent] end
  return parts
end

function MS:item_url(it)
  local parts = self:item_path(it)
  parts[#parts + 1] = it.name
  if not it.parent then return self:drive_web(it.drive) end
  return self:drive_web(it.drive) .. "/" .. table.concat(parts, "/"):gsub(" ", "%%20")
end

-- own sharing permissions + the ones inherited from ancestors (owner not included)
function MS:effective_perms(it)
  local out = {}
  for _, p in ipairs(it.perms) do out[#out + 1] = { p = p, from = nil } end
  local a = it.parent and self.state.items[it.parent]
  while a do
    for _, p in ipairs(a.perms) do out[#out + 1] = { p = p, from = a } end
    a = a.parent and self.state.items[a.parent]
  end
  return out
end

function MS:perm_json(it, p, from)
  local d = it.drive
  local o = { id = p.id, roles = A(T.deep(p.roles)), shareId = "s!" .. T.b62(40, self.seed, "share", p.id), hasPassword = false }
  if p.kind == "link" then
    o.link = { type = p.type, scope = p.scope, preventsDownload = false,
               webUrl = self.sp_host .. "/:" .. (p.type == "edit" and "w" or "v") .. ":/g/" .. T.b62(22, self.seed, "link", p.id) }
    o.grantedToIdentitiesV2 = A()
    o.grantedToIdentities = A()
  else
    local who = { user = { displayName = p.email, email = p.email, id = p.user_id or jnull() },
                  siteUser = { displayName = p.email, email = p.email, id = tostring(T.hash(self.seed, "siteuser", p.id) >> 54),
                               loginName = "i:0#.f|membership|" .. p.email:gsub("@", "_") .. "#ext#@" .. self.initial_domain } }
    o.grantedToV2 = who
    o.grantedTo = { user = who.user }
    o.invitation = { email = p.email, signInRequired = true }
  end
  if from then
    local parts = self:item_path(from)
    if from.parent then parts[#parts + 1] = from.name end
    o.inheritedFrom = { driveId = d.id, driveType = d.driveType, id = from.id, path = "/drives/" .. d.id .. "/root:" .. (#parts > 0 and ("/" .. table.concat(parts, "/")) or "") }
  end
  return o
end

function MS:owner_perm(it)
  local u = it.drive.owner_user
  return { id = "aTowIy5mfG1lbWJlcnNoaXB8" .. crypto().b64url(u.upn), roles = A({ "owner" }),
           shareId = "s!" .. T.b62(40, self.seed, "ownershare", it.drive.id), hasPassword = false,
           grantedToV2 = { user = { id = u.id, displayName = u.displayName, email = u.mail },
                           siteUser = { id = "3", displayName = u.displayName, email = u.mail, loginName = "i:0#.f|membership|" .. u.upn } },
           grantedTo = { user = { id = u.id, displayName = u.displayName, email = u.mail } } }
end

-- Prefer tokens of a delta request (`Prefer: deltashowremovedasdeleted, deltatraversepermissiongaps,
-- deltashowsharingchanges`, `Prefer: hierarchicalsharing`): a set
function MS:prefer(req)
  local set = {}
  for tok in tostring(req.headers["prefer"] or ""):gmatch("[^,%s]+") do set[tok:lower()] = true end
  return set
end

-- The sharing facet: the widest scope of the item's effective permissions.  In a delta answered with
-- `hierarchicalsharing` only the roots of permission hierarchies carry it (items with permissions of
-- their own, or whose own sharing was removed: then it is empty), and the drive root, to set the scope.
function MS:shared_facet(it, hierarchical)
  if hierarchical then
    if #it.perms == 0 then
      if it.unshared or not it.parent then return obj() end
      return nil
    end
  end
  local eff = self:effective_perms(it)
  if #eff == 0 then return nil end
  local scope = "users"
  for _, e in ipairs(eff) do
    if e.p.scope == "anonymous" then scope = "anonymous" elseif e.p.scope == "organization" and scope ~= "anonymous" then scope = "organization" end
  end
  return { scope = scope, owner = identity(it.drive.owner_user) }
end

-- delta: {prefer = set} when the item is answered in a delta: Graph's delta leaves parentReference.path
-- out (a folder's rename does not bring its descendants back), and honours the Prefer tokens.
function MS:item_json(it, deleted, delta)
  local d = it.drive
  local parts = self:item_path(it)
  local o = { id = it.id, name = it.name, eTag = '"{' .. T.uuid(self.seed, "etag", it.id):upper() .. '},' .. it.version .. '"',
              cTag = '"c:{' .. T.uuid(self.seed, "etag", it.id):upper() .. '},' .. it.version .. '"',
              createdDateTime = isoz(it.created), lastModifiedDateTime = isoz(it.modified), size = it.size,
              webUrl = self:item_url(it), createdBy = identity(it.by), lastModifiedBy = identity(it.mby or it.by) }
  if it.parent then
    o.parentReference = { driveId = d.id, driveType = d.driveType, id = it.parent,
                          path = "/drives/" .. d.id .. "/root:" .. (#parts > 0 and ("/" .. table.concat(parts, "/")) or ""),
                          siteId = d.site and d.site.id or nil }
    if delta then o.parentReference.path = nil end
  else
    o.root = obj()
    o.parentReference = { driveId = d.id, driveType = d.driveType }
  end
  if it.folder then
    local n = 0
    for _, c in ipairs(d.items) do if c.parent == it.id and not c.deleted then n = n + 1 end end
    o.folder = { childCount = n }
  else
    local ext = it.name:match("%.(%w+)$")
    o.file = { mimeType = MIME[ext or ""] or "application/octet-stream",
               hashes = { quickXorHash = crypto().b64(T.hexs(40, self.seed, "qx", it.id, it.version):sub(1, 20)) } }
    o["@microsoft.graph.downloadUrl"] = self.base_url .. "/_download/" .. d.id .. "/" .. it.id .. "?tempauth=" .. T.b62(40, self.seed, "dl", it.id)
  end
  local prefer = delta and delta.prefer or {}
  o.shared = self:shared_facet(it, prefer.hierarchicalsharing)
  -- deltashowsharingchanges needs the other two tokens
  if prefer.deltashowsharingchanges and prefer.deltashowremovedasdeleted and prefer.deltatraversepermissiongaps
     and it.share_cseq == it.cseq then
    o["@microsoft.graph.sharedChanged"] = "True"
  end
  if deleted then
    o.deleted = { state = "deleted" }
    o.file, o.folder, o.shared, o["@microsoft.graph.downloadUrl"] = nil, it.folder and { childCount = 0 } or nil, nil, nil
  end
  return o
end

function MS:files_count(what, arg)
  local st = self.state
  if what == "drives" then return #st.drives
  elseif what == "sites" then return #st.sites end
  local n = 0
  if what == "items" or what == "files" or what == "folders" or what == "permissions" or what == "shared_items" or what == "deleted_items" then
    for _, it in pairs(st.items) do
      if (not arg or it.drive.id == arg) and it.parent then
        if what == "deleted_items" then if it.deleted then n = n + 1 end
        elseif not it.deleted then
          if what == "items" then n = n + 1
          elseif what == "files" and not it.folder then n = n + 1
          elseif what == "folders" and it.folder then n = n + 1
          elseif what == "permissions" then n = n + #it.perms
          elseif what == "shared_items" and #self:effective_perms(it) > 0 then n = n + 1 end
        end
      end
    end
    return n
  end
end

-- test helper: every delta token issued so far becomes stale (next use answers 410 Gone)
function MS:expire_delta() self.delta_epoch = self.delta_epoch + 1 end

function MS:touch(it, by)
  self.file_seq = self.file_seq + 1
  it.cseq = self.file_seq
  it.modified = self:now_ms()
  it.version = it.version + 1
  if by then it.mby = by end
  self:notify_drive(it.drive)
end

-- the item's own sharing changed: it shows up in delta (with @microsoft.graph.sharedChanged when asked)
function MS:sharing_changed(it)
  self:touch(it)
  it.share_cseq = it.cseq
  if #it.perms == 0 then it.unshared = true end
end

-- test helper: share an item as a user would in OneDrive; perm {kind="link", scope=, type=, roles=} or
-- {kind="user", email=, roles=, external=}.  -> the permission
function MS:share(it, perm)
  perm.id = perm.id or T.uuid(self.seed, "perm", it.id, "added", self:seq())
  it.perms[#it.perms + 1] = perm
  self:sharing_changed(it)
  return perm
end

function MS:item_404(req)
  return self:graph_err(404, "itemNotFound", "The resource could not be found.", req)
end

function MS:find_item(d, id)
  local it = self.state.items[id]
  if not it or it.drive ~= d or it.deleted then return nil end
  return it
end
function MS:child_named(parent, name)
  for _, c in ipairs(parent.drive.items) do
    if c.parent == parent.id and not c.deleted and c.name:lower() == name:lower() then return c end
  end
end
function MS:item_by_path(d, path)
  local cur = d.root
  for seg in path:gmatch("[^/]+") do
    cur = self:child_named(cur, T.urldecode(seg))
    if not cur then return nil end
  end
  return cur
end

function MS:file_event(it, op, rtype, extra)
  local d = it.drive
  local f = { Operation = op, RecordType = rtype or 6, Workload = d.site and "SharePoint" or "OneDrive", ObjectId = self:item_url(it),
              SourceFileName = it.name, SiteUrl = self:drive_web(d), ItemType = it.folder and "Folder" or "File" }
  for k, v in pairs(extra or {}) do f[k] = v end
  self:mgmt_state_record("Audit.SharePoint", f)
end

-- delta tokens: b64url("epoch:n:S:after") (initial enumeration, snapshot S) or "epoch:d:after" (changes)
local function enc_delta(s) return crypto().b64url(s) end
function MS:h_delta(req, d, token)
  local q = req.query
  local view = { prefer = self:prefer(req) }
  local top = math.min(math.tointeger(tonumber(q["$top"] or "")) or 200, 1000)
  local base = self.base_url .. "/v1.0/drives/" .. d.id .. "/root/delta"
  local epoch, mode, a, b
  if token == "latest" then
    return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#Collection(driveItem)", value = A(),
                  ["@odata.deltaLink"] = base .. "?token=" .. enc_delta(self.delta_epoch .. ":d:" .. self.file_seq) }
  elseif token then
    local s = crypto().unb64url(token) or ""
    epoch, mode, a, b = s:match("^(%d+):([nd]):(%d+):?(%d*)$")
    if not epoch then return self:graph_err(400, "invalidRequest", "Invalid delta token.", req) end
    if tonumber(epoch) ~= self.delta_epoch then
      local st, body, hdr = self:graph_err(410, "resyncRequired", "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.", req)
      hdr.Location = base
      return st, body, hdr
    end
    a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b ~= "" and b or "0"))
  else
    mode, a, b = "n", self.file_seq, 0
  end
  local out = {}
  local more, last = false, nil
  if mode == "n" then
    -- initial enumeration in creation order (parents before children)
    for _, it in ipairs(d.items) do
      if it.order > b and not it.deleted then
        if #out >= top then more = true; break end
        out[#out + 1] = self:item_json(it, nil, view); last = it.order
      end
    end
    if more then
      return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#Collection(driveItem)", value = A(out),
                    ["@odata.nextLink"] = base .. "?token=" .. enc_delta(self.delta_epoch .. ":n:" .. a .. ":" .. last) }
    end
    -- changes made while enumerating are picked up by the next round
    return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#Collection(driveItem)", value = A(out),
                  ["@odata.deltaLink"] = base .. "?token=" .. enc_delta(self.delta_epoch .. ":d:" .. a) }
  end
  local changed = {}
  for _, it in ipairs(d.items) do if it.cseq > a then changed[#changed + 1] = it end end
  table.sort(changed, function(x, y) return x.cseq < y.cseq end)
  local wm = a
  for _, it in ipairs(changed) do
    if #out >= top then more = true; break end
    out[#out + 1] = self:item_json(it, it.deleted, view)
    wm = it.cseq
  end
  local body = { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#Collection(driveItem)", value = A(out) }
  if more then body["@odata.nextLink"] = base .. "?token=" .. enc_delta(self.delta_epoch .. ":d:" .. wm)
  else body["@odata.deltaLink"] = base .. "?token=" .. enc_delta(self.delta_epoch .. ":d:" .. math.max(wm, self.file_seq)) end
  return 200, body
end

function MS:h_children(req, d, it)
  if req.method == "GET" then
    local list = {}
    for _, c in ipairs(d.items) do if c.parent == it.id and not c.deleted then list[#list + 1] = c end end
    table.sort(list, function(x, y) return x.id < y.id end)
    return self:graph_collection(req, { list = list, full = function(c) return self:item_json(c) end,
      props = { "id", "name", "size", "eTag", "cTag", "createdDateTime", "lastModifiedDateTime", "createdBy", "lastModifiedBy",
                "parentReference", "webUrl", "file", "folder", "shared", "root", "@microsoft.graph.downloadUrl" },
      type = "driveItem", context = "drives('" .. d.id .. "')/items('" .. it.id .. "')/children", top_default = 200, top_max = 1000 })
  end
  if req.method ~= "POST" then return self:graph_err(405, "notAllowed", "Method not allowed.", req) end
  if not it.folder then return self:graph_err(400, "invalidRequest", "The parent item is not a folder.", req) end
  local b = body_json(req)
  if not b or type(b.name) ~= "string" or b.name == "" or b.name:find("[\\/:*?\"<>|]") then
    return self:graph_err(400, "invalidRequest", "Invalid request: a valid name is required.", req)
  end
  if b.folder == nil and b.file == nil then return self:graph_err(400, "invalidRequest", "Either a folder or a file facet is required.", req) end
  local name = b.name
  local existing = self:child_named(it, name)
  local behavior = b["@microsoft.graph.conflictBehavior"] or "fail"
  if existing then
    if behavior == "rename" then
      local k = 1
      local stem, ext = name:match("^(.-)(%.[^.]*)$")
      stem, ext = stem or name, ext or ""
      repeat k = k + 1; name = stem .. " " .. k .. ext until not self:child_named(it, name)
    elseif behavior == "replace" then
      existing.deleted = true; self:touch(existing)
    else
      return self:graph_err(409, "nameAlreadyExists", "The specified item name already exists.", req)
    end
  end
  local by = req.token and req.token.user and self.state.user_by_id[req.token.user] or d.owner_user
  local c = self:new_item(d, it, name, b.folder ~= nil, { by = by })
  self:touch(it)
  self:file_event(c, b.folder ~= nil and "FolderCreated" or "FileUploaded")
  local o = self:item_json(c)
  o["@odata.context"] = self.base_url .. "/v1.0/$metadata#drives('" .. d.id .. "')/items/$entity"
  return 201, o
end

function MS:h_upload(req, d, parent, name, target)
  if req.method ~= "PUT" then return self:graph_err(405, "notAllowed", "Method not allowed.", req) end
  local body = req.body or ""
  if #body > 250 * 1024 * 1024 then return self:graph_err(413, "invalidRequest", "Use an upload session for files over 250 MB.", req) end
  local it, st = target, 200
  if not it then
    if not parent or not parent.folder then return self:item_404(req) end
    it = self:child_named(parent, name)
    if it and it.folder then return self:graph_err(409, "nameAlreadyExists", "The specified item name already exists.", req) end
    if not it then
      it = self:new_item(d, parent, name, false, { by = d.owner_user })
      st = 201
      self:touch(parent)
    end
  end
  it.content, it.size = body, #body
  self:touch(it)
  self:file_event(it, st == 201 and "FileUploaded" or "FileModified")
  return st, self:item_json(it)
end

function MS:h_item(req, d, it)
  if req.method == "GET" then
    local o = self:item_json(it)
    local sel, serr = self:graph_select(req, { "id", "name", "size", "eTag", "cTag", "createdDateTime", "lastModifiedDateTime", "createdBy",
      "lastModifiedBy", "parentReference", "webUrl", "file", "folder", "shared", "root", "@microsoft.graph.downloadUrl" }, "driveItem")
    if serr then return self:graph_err(400, "invalidRequest", serr, req) end
    if sel then o = project(o, sel) end
    o["@odata.context"] = self.base_url .. "/v1.0/$metadata#drives('" .. d.id .. "')/items/$entity"
    return 200, o
  end
  if not it.parent then return self:graph_err(403, "accessDenied", "The root folder cannot be modified.", req) end
  local im = req.headers["if-match"]
  if im and im ~= "*" and im ~= self:item_json(it).eTag then
    return self:graph_err(412, "resourceModified", "ETag does not match current item's value", req)
  end
  if req.method == "DELETE" then
    local function del(x)
      x.deleted = true
      self:touch(x)
      for _, c in ipairs(d.items) do if c.parent == x.id and not c.deleted then del(c) end end
    end
    del(it)
    self:touch(self.state.items[it.parent])
    self:file_event(it, it.folder and "FolderRecycled" or "FileRecycled")
    return 204, ""
  elseif req.method == "PATCH" then
    local b = body_json(req)
    if not b then return self:graph_err(400, "invalidRequest", "Invalid request body.", req) end
    local newparent = self.state.items[it.parent]
    if b.parentReference ~= nil then
      local pid = type(b.parentReference) == "table" and b.parentReference.id
      local p = pid and self:find_item(d, pid)
      if not p or not p.folder then return self:graph_err(400, "invalidRequest", "Invalid parentReference: the target folder does not exist.", req) end
      local a = p
      while a do
        if a == it then return self:graph_err(400, "invalidRequest", "Cannot move a folder into itself or one of its descendants.", req) end
        a = a.parent and self.state.items[a.parent]
      end
      newparent = p
    end
    local newname = type(b.name) == "string" and b.name or it.name
    local clash = self:child_named(newparent, newname)
    if clash and clash ~= it then return self:graph_err(409, "nameAlreadyExists", "The specified item name already exists.", req) end
    local oldparent = self.state.items[it.parent]
    local moved = newparent ~= oldparent
    local oldurl = self:item_url(it)
    it.parent, it.name = newparent.id, newname
    self:touch(it)
    if moved then self:touch(oldparent); self:touch(newparent) end
    -- descendants of a moved or renamed folder do not come back in delta: their path is the client's to
    -- follow by parent id (driveItem delta, remarks)
    self:file_event(it, moved and "FileMoved" or "FileRenamed", 6, { SourceRelativeUrl = oldurl, DestinationFileName = newname })
    return 200, self:item_json(it)
  end
  return self:graph_err(405, "notAllowed", "Method not allowed.", req)
end

function MS:h_permissions(req, d, it, pid)
  if not pid then
    if req.method ~= "GET" then return self:graph_err(405, "notAllowed", "Method not allowed.", req) end
    local out = {}
    if it.drive.driveType ~= "documentLibrary" then out[1] = self:owner_perm(it) end
    for _, e in ipairs(self:effective_perms(it)) do out[#out + 1] = self:perm_json(it, e.p, e.from) end
    return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#drives('" .. d.id .. "')/items('" .. it.id .. "')/permissions", value = A(out) }
  end
  if pid == self:owner_perm(it).id then
    if req.method == "GET" then return 200, self:owner_perm(it) end
    return self:graph_err(403, "accessDenied", "The owner's permission cannot be removed or changed.", req)
  end
  for _, e in ipairs(self:effective_perms(it)) do
    if e.p.id == pid then
      if req.method == "GET" then return 200, self:perm_json(it, e.p, e.from) end
      if e.from then
        return self:graph_err(400, "invalidRequest", "Cannot modify an inherited permission; change it on the item it is inherited from.", req)
      end
      if req.method == "DELETE" then
        for i, p in ipairs(it.perms) do if p == e.p then table.remove(it.perms, i) break end end
        self:sharing_changed(it)
        local function touch_desc(x) for _, c in ipairs(d.items) do if c.parent == x.id and not c.deleted then self:touch(c); touch_desc(c) end end end
        if it.folder then touch_desc(it) end
        self:file_event(it, e.p.kind == "link" and "SharingLinkRemoved" or "SharingRevoked", 14,
                        { TargetUserOrGroupName = e.p.email, TargetUserOrGroupType = e.p.external and "Guest" or nil })
        return 204, ""
      elseif req.method == "PATCH" then
        local b = body_json(req)
        if not b or type(b.roles) ~= "table" or #b.roles == 0 then return self:graph_err(400, "invalidRequest", "roles is required.", req) end
        e.p.roles = T.deep(b.roles)
        if e.p.kind == "link" then e.p.type = (b.roles[1] == "write") and "edit" or "view" end
        self:sharing_changed(it)
        return 200, self:perm_json(it, e.p)
      end
      return self:graph_err(405, "notAllowed", "Method not allowed.", req)
    end
  end
  return self:item_404(req)
end

-- one dispatcher for /drives/{drive-id}/... (and /users/{id}/drive/..., /sites/{id}/drive/...)
function MS:drive_dispatch(req, d, rest)
  rest = rest or ""
  if rest == "" then
    if req.method ~= "GET" then return self:graph_err(405, "notAllowed", "Method not allowed.", req) end
    local o = self:drive_json(d)
    o["@odata.context"] = self.base_url .. "/v1.0/$metadata#drives/$entity"
    return 200, o
  end
  -- path addressing: root:/a/b.txt:/content  |  items/{id}:/name:/content  |  root:/a:
  local pre, path, tail = rest:match("^(.-):/(.-):?(/?[%w]*)$")
  if pre and path and (pre == "root" or pre:match("^items/[^/]+$")) then
    local base = pre == "root" and d.root or self:find_item(d, pre:match("^items/([^/]+)$"))
    if not base then return self:item_404(req) end
    path = T.urldecode(path)
    local dir, name = path:match("^(.*)/([^/]+)$")
    if not dir then dir, name = "", path end
    local parent = dir == "" and base or self:item_by_path(d, dir)
    if parent and base ~= d.root and dir ~= "" then parent = nil end
    local target = parent and name and self:child_named(parent, name)
    if tail == "/content" then return self:h_upload(req, d, parent, name, target and not target.folder and target or nil) end
    if not target then return self:item_404(req) end
    if tail == "/children" then return self:h_children(req, d, target) end
    return self:h_item(req, d, target)
  end
  local seg = {}
  for s in rest:gmatch("[^/]+") do seg[#seg + 1] = s end
  local it, i
  if seg[1] == "root" then it, i = d.root, 2
  elseif seg[1] == "items" and seg[2] then it, i = self:find_item(d, seg[2]), 3
  else return self:graph_err(400, "BadRequest", "Resource not found for the segment '" .. tostring(seg[1]) .. "'.", req) end
  if not it then return self:item_404(req) end
  local op = seg[i]
  if not op then return self:h_item(req, d, it) end
  if op == "delta" or op == "delta()" or op:match("^delta%(") then
    if it ~= d.root then return self:graph_err(400, "invalidRequest", "delta is only supported on the drive root.", req) end
    local tok = req.query.token or req.query["$deltatoken"] or op:match("^delta%(token='?([^')]*)'?%)$")
    return self:h_delta(req, d, tok)
  elseif op == "children" then return self:h_children(req, d, it)
  elseif op == "permissions" then return self:h_permissions(req, d, it, seg[i + 1])
  elseif op == "content" then
    if req.method == "PUT" then
      if it.folder then return self:graph_err(400, "invalidRequest", "Cannot upload content to a folder.", req) end
      return self:h_upload(req, d, nil, nil, it)
    end
    if it.folder then return self:item_404(req) end
    return 302, "", { Location = self:item_json(it)["@microsoft.graph.downloadUrl"] }
  end
  return self:graph_err(400, "BadRequest", "Resource not found for the segment '" .. op .. "'.", req)
end

function MS:user_drive(u)
  for _, d in ipairs(self.state.drives) do if d.user == u then return d end end
end

function MS:h_drives_any(req)
  local d = self.state.drive_by_id[req.params.did]
  if not d then return self:graph_err(404, "itemNotFound", "The requested drive was not found.", req) end
  return self:drive_dispatch(req, d, req.params.rest)
end
function MS:h_drive_root(req)
  local d = self.state.drive_by_id[req.params.did]
  if not d then return self:graph_err(404, "itemNotFound", "The requested drive was not found.", req) end
  return self:drive_dispatch(req, d, "")
end

function MS:h_user_drive(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  local d = self:user_drive(u)
  if not d then return self:graph_err(404, "itemNotFound", "The user's OneDrive has not been provisioned.", req) end
  return self:drive_dispatch(req, d, req.params.rest or "")
end

function MS:h_user_drives(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  local d = self:user_drive(u)
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#drives", value = A(d and { self:drive_json(d) } or {}) }
end

function MS:site_json(s)
  return { id = s.id, name = s.name, displayName = s.name, webUrl = self.sp_host .. "/sites/" .. s.name,
           createdDateTime = isoz(s.created), lastModifiedDateTime = isoz(s.created),
           siteCollection = { hostname = "contoso.sharepoint.com" } }
end
function MS:h_sites(req)
  local out = {}
  for _, s in ipairs(self.state.sites) do out[#out + 1] = self:site_json(s) end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#sites", value = A(out) }
end
function MS:find_site(id) for _, s in ipairs(self.state.sites) do if s.id == id then return s end end end
function MS:h_site(req)
  local s = self:find_site(req.params.sid)
  if not s then return self:graph_err(404, "itemNotFound", "Requested site could not be found", req) end
  local rest = req.params.rest
  if req.path:find("/drives$") then
    return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#drives", value = A({ self:drive_json(s.drive) }) }
  end
  if rest ~= nil then return self:drive_dispatch(req, s.drive, rest) end
  if req.path:find("/drive$") then return self:drive_dispatch(req, s.drive, "") end
  return 200, self:site_json(s)
end

function MS:h_download(req)
  local d = self.state.drive_by_id[req.params.did]
  local it = d and self:find_item(d, req.params.iid)
  if not it or it.folder or req.query.tempauth ~= T.b62(40, self.seed, "dl", it.id) then
    return 401, "", { ["Content-Type"] = "text/plain" }
  end
  return 200, it.content or string.rep("x", math.min(it.size, 4096)), { ["Content-Type"] = "application/octet-stream" }
end

function MS:file_routes()
  local V, G = "/v1.0", {}
  return {
    { "GET", V .. "/users/:id/drive", MS.h_user_drive, G },
    { "*", V .. "/users/:id/drive/*", MS.h_user_drive, G },
    { "GET", V .. "/users/:id/drives", MS.h_user_drives, G },
    { "GET", V .. "/drives/:did", MS.h_drive_root, G },
    { "*", V .. "/drives/:did/*", MS.h_drives_any, G },
    { "GET", V .. "/sites", MS.h_sites, G },
    { "GET", V .. "/sites/getAllSites", MS.h_sites, G },
    { "GET", V .. "/sites/:sid", MS.h_site, G },
    { "GET", V .. "/sites/:sid/drives", MS.h_site, G },
    { "GET", V .. "/sites/:sid/drive", MS.h_site, G },
    { "*", V .. "/sites/:sid/drive/*", MS.h_site, G },
    { "GET", "/_download/:did/:iid", MS.h_download, { public = true } },
  }
end


return true
