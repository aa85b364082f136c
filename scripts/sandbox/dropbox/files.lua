-- sandbox/dropbox/files.lua — the files routes (auth "user": a member through Select-User, an admin
-- through Select-Admin, §7-§8): list_folder with its cursor (a listing, then the changes since it,
-- deleted entries included), get_metadata, download and upload on the content host, create_folder_v2,
-- delete_v2, restore, move_v2, copy_reference; webhooks for every change, signed with the app secret
-- (§11).
--
-- A member's folder shows the shared folders they belong to mounted at its root ("/<name>"); a caller
-- sees its root namespace (Path-Root, else its own folder) with those mounts.
local T = require "sandbox.tenant"
local D = require "sandbox.dropbox.common"
local json, crypto = D.json, D.crypto
local R = D.ROUTES
local M = {}

local function lower(p) return p:lower() end
local function ts(ms) return T.iso_s(ms // 1000) end

---------------------------------------------------------------------------------------------------
-- What a caller sees: {path = as displayed, e = entry | nil, mount = namespace | nil, ns = its namespace}
---------------------------------------------------------------------------------------------------
function D:mounts(who, root)
  local out = {}
  if who.member and root.id == who.member.ns then
    for _, ns in ipairs(self.namespaces) do
      if ns.type == "shared_folder" and ns.id ~= root.id then
        for _, x in ipairs(ns.members) do if x.mid == who.member.id then out[#out + 1] = ns; break end end
      end
    end
  end
  return out
end

function D:view(who, with_mounted)
  local root = who.ns
  local out = {}
  for _, e in ipairs(self.entries) do
    if e.ns == root.id and not e.deleted then out[#out + 1] = { path = e.path, e = e, ns = root } end
  end
  for _, ns in ipairs(self:mounts(who, root)) do
    out[#out + 1] = { path = "/" .. ns.name, mount = ns, ns = root }
    if with_mounted then
      for _, e in ipairs(self.entries) do
        if e.ns == ns.id and not e.deleted then out[#out + 1] = { path = "/" .. ns.name .. e.path, e = e, ns = ns } end
      end
    end
  end
  table.sort(out, function(a, b) return lower(a.path) < lower(b.path) end)
  return out
end

function D:metadata(v)
  local name = v.path:match("([^/]+)$")
  if v.mount then
    return { [".tag"] = "folder", name = name, id = v.mount.root_id, path_lower = lower(v.path), path_display = v.path,
             shared_folder_id = v.mount.id, sharing_info = { read_only = false, shared_folder_id = v.mount.id, traverse_only = false, no_access = false } }
  end
  local e = v.e
  local shared = self.ns_by_id[e.ns].type ~= "team_member_folder"
  if e.folder then
    return { [".tag"] = "folder", name = name, id = e.id, path_lower = lower(v.path), path_display = v.path,
             sharing_info = shared and { read_only = false, parent_shared_folder_id = e.ns, traverse_only = false, no_access = false } or nil }
  end
  local owner = self.by_mid[self.ns_by_id[e.ns].owner]
  return { [".tag"] = "file", name = name, id = e.id, client_modified = ts(e.modified), server_modified = ts(e.modified), rev = e.rev,
           size = e.size, path_lower = lower(v.path), path_display = v.path, is_downloadable = true, content_hash = e.hash,
           has_explicit_shared_members = false,
           sharing_info = shared and { read_only = false, parent_shared_folder_id = e.ns, modified_by = owner and owner.account_id } or nil }
end

-- path ("" root, "/a/b", "id:...") -> view item | nil ("" gives a root marker)
function D:resolve(who, path)
  if path == "" then return { root = true, path = "" } end
  local list = self:view(who, true)
  if path:match("^id:") then
    for _, v in ipairs(list) do if (v.e and v.e.id == path) or (v.mount and v.mount.root_id == path) then return v end end
    return nil
  end
  local lp = lower(path)
  for _, v in ipairs(list) do if lower(v.path) == lp then return v end end
end

-- Where a new entry at a view path goes: (namespace, path in it)
function D:place(who, path)
  for _, ns in ipairs(self:mounts(who, who.ns)) do
    local prefix = "/" .. lower(ns.name) .. "/"
    if lower(path):sub(1, #prefix) == prefix then return ns, path:sub(#prefix) end
  end
  return who.ns, path
end

local function valid_path(p) return type(p) == "string" and (p == "" or p:match("^/.") or p:match("^id:.")) and not p:match("/$") end
local function path_error(tag) return { [".tag"] = "path", path = { [".tag"] = tag } } end

---------------------------------------------------------------------------------------------------
-- Webhooks (§11): who sees a namespace is told its files changed; body signed with the app secret
---------------------------------------------------------------------------------------------------
function M.sign(secret, body) return crypto().hex(crypto().hmac_sha256(secret, body)) end

function D:changed(ns)
  if #self.webhooks == 0 then return end
  local mids = {}
  for _, x in ipairs(ns.members) do if x.mid and self.by_mid[x.mid].status == "active" then mids[#mids + 1] = x.mid end end
  local teams = { [self.team_id] = json().array(mids) }
  local body = json().encode { list_folder = { teams = teams }, delta = { teams = teams } }
  for _, url in ipairs(self.webhooks) do
    self:deliver { url = url, body = body, event = "list_folder", retries = 0,
      headers = { ["Content-Type"] = "application/json", ["X-Dropbox-Signature"] = M.sign(self.client_secret, body),
                  ["User-Agent"] = "DropboxWebhooks/1.0" } }
  end
end

-- The App Console's check of a webhook URI: GET ?challenge=, the answer must echo it. -> ok, why
function D:verify_webhook(url)
  local challenge = T.b62(24, self.seed, "challenge", #self.webhooks)
  local resp, err = T.host("http").request { url = url .. "?challenge=" .. challenge, timeout = 10 }
  if not resp then return false, err end
  if resp.status ~= 200 or resp.body ~= challenge then return false, "answered " .. resp.status .. ": " .. resp.body:sub(1, 80) end
  self.webhooks[#self.webhooks + 1] = url
  return true
end

---------------------------------------------------------------------------------------------------
-- Changes: every write bumps the entry's seq; what leaves a path leaves a tombstone
---------------------------------------------------------------------------------------------------
function D:tomb(e)
  self.tombs[#self.tombs + 1] = { ns = e.ns, path = e.path, seq = self:next_seq() }
end
function D:under(e)       -- the entry and everything below a folder, in its namespace
  local out = { e }
  if e.folder then
    local prefix = lower(e.path) .. "/"
    for _, x in ipairs(self.entries) do
      if x.ns == e.ns and not x.deleted and lower(x.path):sub(1, #prefix) == prefix then out[#out + 1] = x end
    end
  end
  return out
end

-- Parent folders of a new path are made as Dropbox does (upload and create_folder make them).
function D:ensure_parents(ns, path)
  local acc = ""
  for part in path:gmatch("[^/]+") do
    local nxt = acc .. "/" .. part
    if nxt == path then break end
    local found
    for _, e in ipairs(self.entries) do if e.ns == ns.id and not e.deleted and lower(e.path) == lower(nxt) then found = e end end
    if not found then self:add_entry(ns, nxt, { folder = true }) end
    acc = nxt
  end
end

local function at(self, ns, path)
  for _, e in ipairs(self.entries) do if e.ns == ns.id and not e.deleted and lower(e.path) == lower(path) then return e end end
end

---------------------------------------------------------------------------------------------------
-- list_folder and its cursor
---------------------------------------------------------------------------------------------------
local function under_prefix(path, prefix, recursive)
  local lp = lower(path)
  if prefix == "" then return recursive or not lp:sub(2):find("/", 1, true) end
  if lp:sub(1, #prefix + 1) ~= prefix .. "/" then return false end
  return recursive or not lp:sub(#prefix + 2):find("/", 1, true)
end

local function page(self, who, c)
  local items = {}
  local with = c.mnt
  if not c.done then
    for _, v in ipairs(self:view(who, with)) do
      if under_prefix(v.path, c.p, c.rec) then items[#items + 1] = self:metadata(v) end
    end
  else
    -- the changes since the listing (or the last change read): entries written since, paths left
    c.u = c.u or self.seq
    for _, v in ipairs(self:view(who, with)) do
      local seq = v.e and v.e.seq or 0
      if seq > c.s and seq <= c.u and under_prefix(v.path, c.p, c.rec) then items[#items + 1] = self:metadata(v) end
    end
    local nss = { [who.ns.id] = "" }
    if with then for _, ns in ipairs(self:mounts(who, who.ns)) do nss[ns.id] = "/" .. ns.name end end
    for _, t in ipairs(self.tombs) do
      local prefix = nss[t.ns]
      if prefix and t.seq > c.s and t.seq <= c.u and under_prefix(prefix .. t.path, c.p, c.rec) and not at(self, self.ns_by_id[t.ns], t.path) then
        local p = prefix .. t.path
        items[#items + 1] = { [".tag"] = "deleted", name = p:match("([^/]+)$"), path_lower = lower(p), path_display = p }
      end
    end
  end
  local out = {}
  for i = c.o + 1, math.min(#items, c.o + c.n) do out[#out + 1] = items[i] end
  c.o = c.o + #out
  local more = c.o < #items
  if not more then
    if c.done then c.s, c.u = c.u, nil else c.done = true end
    c.o = 0
  end
  return 200, { entries = json().array(out), cursor = self:cursor(c), has_more = more }
end

local function caller_key(who) return (who.admin and "admin:" or "user:") .. who.member.id .. "@" .. who.ns.id end

R["files/list_folder"] = { auth = "user", scope = "files.metadata.read", admin = "whole_team", fn = function(self, req, arg)
  local who = req.who
  if not valid_path(arg.path) then return self:bad_request(req, 'request body: path: "' .. tostring(arg.path) .. '" did not match pattern') end
  local limit = arg.limit == nil and 2000 or math.tointeger(arg.limit)
  if not limit or limit < 1 or limit > 2000 then return self:bad_request(req, "request body: limit: value must be between 1 and 2000") end
  if self.page_max and limit > self.page_max then limit = self.page_max end
  local v = self:resolve(who, arg.path)
  if not v then return self:fail(path_error("not_found")) end
  if v.e and not v.e.folder then return self:fail(path_error("not_folder")) end
  self.listed[who.ns.id] = (self.listed[who.ns.id] or 0) + 1
  local mnt = arg.include_mounted_folders ~= false
  return page(self, who, { k = "lf", who = caller_key(who), p = lower(v.path), rec = arg.recursive == true, mnt = mnt,
                           s = self.seq, o = 0, n = limit, done = false })
end }

R["files/list_folder/continue"] = { auth = "user", scope = "files.metadata.read", admin = "whole_team", fn = function(self, req, arg)
  local c = self:uncursor(arg.cursor)
  if not c or c.k ~= "lf" then return self:bad_request(req, 'request body: cursor: invalid') end
  if c.who ~= caller_key(req.who) then return self:fail { [".tag"] = "reset" } end
  return page(self, req.who, c)
end }

R["files/list_folder/get_latest_cursor"] = { auth = "user", scope = "files.metadata.read", admin = "whole_team", fn = function(self, req, arg)
  local v = valid_path(arg.path) and self:resolve(req.who, arg.path)
  if not v then return self:fail(path_error("not_found")) end
  return 200, { cursor = self:cursor { k = "lf", who = caller_key(req.who), p = lower(v.path), rec = arg.recursive == true,
    mnt = arg.include_mounted_folders ~= false, s = self.seq, o = 0, n = 2000, done = true } }
end }

R["files/get_metadata"] = { auth = "user", scope = "files.metadata.read", admin = "whole_team", fn = function(self, req, arg)
  if not valid_path(arg.path) or arg.path == "" then return self:bad_request(req, "request body: path: invalid") end
  local v = self:resolve(req.who, arg.path)
  if not v then return self:fail(path_error("not_found")) end
  return 200, self:metadata(v)
end }

---------------------------------------------------------------------------------------------------
-- Content (host content: argument in Dropbox-API-Arg)
---------------------------------------------------------------------------------------------------
R["files/download"] = { auth = "user", scope = "files.content.read", admin = "whole_team", content = true, fn = function(self, req, arg)
  local v = valid_path(arg.path) and arg.path ~= "" and self:resolve(req.who, arg.path)
  if not v then return self:fail(path_error("not_found")) end
  if not v.e or v.e.folder then return self:fail(path_error("not_file")) end
  local meta = assert(require("sdk.util").header_json(self:metadata(v)))
  return 200, v.e.content, { ["Content-Type"] = "application/octet-stream", ["Dropbox-API-Result"] = meta }
end }

R["files/upload"] = { auth = "user", scope = "files.content.write", admin = "team_admin", content = true, write = true, fn = function(self, req, arg)
  local ct = (req.headers["content-type"] or ""):match("^%s*([^;%s]+)")
  if ct ~= "application/octet-stream" then return self:bad_request(req, 'Bad HTTP "Content-Type" header: "' .. tostring(ct) .. '".  Expecting one of "application/octet-stream", "text/plain; charset=dropbox-cors-hack".') end
  if type(arg.path) ~= "string" or not arg.path:match("^/.") then return self:bad_request(req, "request body: path: invalid") end
  local ns, path = self:place(req.who, arg.path)
  local mode = arg.mode or "add"
  local tag = type(mode) == "table" and mode[".tag"] or mode
  local e = at(self, ns, path)
  local conflict = { [".tag"] = "path", reason = { [".tag"] = "conflict", conflict = { [".tag"] = "file" } }, upload_session_id = self:new_id("us") }
  if e and e.folder then conflict.reason.conflict[".tag"] = "folder"; return self:fail(conflict) end
  if e and (tag == "add" or (tag == "update" and mode.update ~= e.rev)) then
    if tag == "add" and arg.autorename then
      local base, ext = path:match("^(.-)(%.[^./]*)$")
      base, ext = base or path, ext or ""
      local k = 1
      repeat k = k + 1; path = ("%s (%d)%s"):format(base, k, ext) until not at(self, ns, path)
      e = nil
    else
      return self:fail(conflict)
    end
  end
  if e then
    self:set_content(e, req.body or "")
    e.modified, e.seq = self:now_ms(), self:next_seq()
  else
    self:ensure_parents(ns, path)
    e = self:add_entry(ns, path, { content = req.body or "" })
  end
  self:changed(ns)
  return 200, self:metadata { path = path, e = e }
end }

---------------------------------------------------------------------------------------------------
-- Writes
---------------------------------------------------------------------------------------------------
R["files/create_folder_v2"] = { auth = "user", scope = "files.content.write", admin = "team_admin", write = true, fn = function(self, req, arg)
  if type(arg.path) ~= "string" or not arg.path:match("^/.") then return self:bad_request(req, "request body: path: invalid") end
  local v = self:resolve(req.who, arg.path)
  if v then
    return self:fail { [".tag"] = "path", path = { [".tag"] = "conflict", conflict = { [".tag"] = (v.e and not v.e.folder) and "file" or "folder" } } }
  end
  local ns, path = self:place(req.who, arg.path)
  self:ensure_parents(ns, path)
  local e = self:add_entry(ns, path, { folder = true })
  self:changed(ns)
  return 200, { metadata = self:metadata { path = arg.path, e = e } }
end }

R["files/delete_v2"] = { auth = "user", scope = "files.content.write", admin = "team_admin", write = true, fn = function(self, req, arg)
  local v = valid_path(arg.path) and arg.path ~= "" and self:resolve(req.who, arg.path)
  if not v then return self:fail { [".tag"] = "path_lookup", path_lookup = { [".tag"] = "not_found" } } end
  if v.mount then return self:fail { [".tag"] = "path_write", path_write = { [".tag"] = "no_write_permission" } } end
  if arg.parent_rev and arg.parent_rev ~= v.e.rev then return self:fail { [".tag"] = "path_lookup", path_lookup = { [".tag"] = "restricted_content" } } end
  local meta = self:metadata(v)
  for _, x in ipairs(self:under(v.e)) do x.deleted = true; self:tomb(x) end
  self:changed(self.ns_by_id[v.e.ns])
  return 200, { metadata = meta }
end }

R["files/restore"] = { auth = "user", scope = "files.content.write", admin = "team_admin", write = true, fn = function(self, req, arg)
  if type(arg.path) ~= "string" or type(arg.rev) ~= "string" then return self:bad_request(req, "request body: path and rev are required") end
  local ns, path = self:place(req.who, arg.path)
  for _, e in ipairs(self.entries) do
    if e.ns == ns.id and e.deleted and not e.folder and e.rev == arg.rev and lower(e.path) == lower(path) then
      if at(self, ns, path) then return self:fail { [".tag"] = "path_write", path_write = { [".tag"] = "conflict", conflict = { [".tag"] = "file" } } } end
      self:ensure_parents(ns, path)
      e.deleted, e.seq = false, self:next_seq()
      self:changed(ns)
      return 200, self:metadata { path = arg.path, e = e }
    end
  end
  return self:fail { [".tag"] = "invalid_revision" }
end }

R["files/move_v2"] = { auth = "user", scope = "files.content.write", admin = "team_admin", write = true, fn = function(self, req, arg)
  local v = valid_path(arg.from_path) and arg.from_path ~= "" and self:resolve(req.who, arg.from_path)
  if not v or not v.e then return self:fail { [".tag"] = "from_lookup", from_lookup = { [".tag"] = "not_found" } } end
  if type(arg.to_path) ~= "string" or not arg.to_path:match("^/.") then return self:bad_request(req, "request body: to_path: invalid") end
  local ns, path = self:place(req.who, arg.to_path)
  if ns.id ~= v.e.ns then return self:fail { [".tag"] = "cant_transfer_ownership" } end
  if at(self, ns, path) then return self:fail { [".tag"] = "to", to = { [".tag"] = "conflict", conflict = { [".tag"] = "file" } } } end
  self:ensure_parents(ns, path)
  local old = v.e.path
  for _, x in ipairs(self:under(v.e)) do
    self:tomb(x)
    x.path = path .. x.path:sub(#old + 1)
    x.name, x.seq = x.path:match("([^/]+)$"), self:next_seq()
  end
  self:changed(ns)
  return 200, { metadata = self:metadata { path = arg.to_path, e = v.e } }
end }

-- copy_reference: get one as the member who can read the file, save it into another member's Dropbox
R["files/copy_reference/get"] = { auth = "user", scope = "files.content.write", fn = function(self, req, arg)
  local v = valid_path(arg.path) and arg.path ~= "" and self:resolve(req.who, arg.path)
  if not v or not v.e then return self:fail(path_error("not_found")) end
  local ref = T.b62(22, self.seed, "cref", v.e.id, #self.copy_refs)
  self.copy_refs[#self.copy_refs + 1] = { ref = ref, entry = v.e.id }
  return 200, { metadata = self:metadata(v), copy_reference = ref, expires = "2045-05-12T15:50:38Z" }
end }

R["files/copy_reference/save"] = { auth = "user", scope = "files.content.write", write = true, fn = function(self, req, arg)
  local src
  for _, c in ipairs(self.copy_refs) do if c.ref == arg.copy_reference then src = self.by_entry[c.entry] end end
  if not src then return self:fail { [".tag"] = "invalid_copy_reference" } end
  if src.deleted then return self:fail { [".tag"] = "not_found" } end
  if type(arg.path) ~= "string" or not arg.path:match("^/.") then return self:bad_request(req, "request body: path: invalid") end
  local ns, path = self:place(req.who, arg.path)
  if at(self, ns, path) then return self:fail { [".tag"] = "path", path = { [".tag"] = "conflict", conflict = { [".tag"] = "file" } } } end
  self:ensure_parents(ns, path)
  local copy = self:add_entry(ns, path, { folder = src.folder, content = src.content, sensitive = src.sensitive })
  self:changed(ns)
  return 200, { metadata = self:metadata { path = arg.path, e = copy } }
end }

return M
