-- sandbox/box.lua — a Box enterprise emulator following /work/shared/api/box.md: OAuth2 at /oauth2/token
-- (client credentials with box_subject_type, authorization code, single-use refresh tokens, revoke),
-- Bearer auth, users / groups / memberships, enterprise events (admin_logs, admin_logs_streaming) with
-- stream positions, folders and files (marker and offset pagination, fields=, shared links, collaborations,
-- trash, downloads by redirect, multipart uploads on the upload host), webhooks V2 signed with both keys,
-- 429 with retry-after and Box's ClientError bodies.  Files carry seeded sensitive content (card numbers,
-- SSNs, AWS keys, a private key) and some are shared publicly or with people outside the enterprise.
--
--   local box = require "sandbox.box"
--   local t = box.new{seed=1, users=30, groups=4, folders=10, files=40, events=300, days=30}
--   t:mount(srv)   -- API under /2.0, uploads under /api/2.0, OAuth at /oauth2/*, browser authorize at
--                  -- /api/oauth2/authorize: one server plays api.box.com, upload.box.com and account.box.com
--
-- Root folder "0" shows the whole enterprise's content, as a token with enterprise_content sees it.
local T = require "sandbox.tenant"

local M = {}
local Box = setmetatable({}, { __index = T.Base })
Box.__index = Box
Box.default_rate_limit = 1000          -- ~1000 requests/min per user (§9)
-- admin_logs pages end at the first short page (API reference §events): a page cap would end the stream
Box.page_exempt = "/events$"

local function json() return T.host("json") end
local function crypto() return T.host("crypto") end
local function jnull() return json().null end
local HELP = "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/"
local POS_BASE = 1152922976252290000   -- stream positions look like Box's (opaque large integers)

local FIRST = { "Aaron", "Ellis", "Maya", "Noah", "Priya", "Lucas", "Sofia", "Omar", "Hana", "Ivan", "Chloe", "Diego",
  "Fatima", "George", "Ines", "Jonas", "Kira", "Liam", "Mei", "Nina", "Oscar", "Paula", "Quinn", "Rosa" }
local LAST = { "Levie", "Wiggins", "Chen", "Garcia", "Patel", "Muller", "Rossi", "Haddad", "Sato", "Petrov", "Martin",
  "Lopez", "Khan", "Brown", "Silva", "Berg", "Novak", "Walsh", "Wong", "Kowalski" }
local TOP = { "Finance", "Engineering", "HR", "Legal", "Marketing", "Sales", "Partners", "Board", "Support", "Design" }
local SUB = { "2023", "2024", "Archive", "Drafts", "Contracts", "Reports", "Q1", "Q2", "Shared", "Private" }
local GROUPS = { "Everyone Finance", "Engineering", "Security", "Sales EMEA", "Legal", "Contractors", "Executives", "Support" }
local EXTERNAL_DOMAINS = { "gmail.com", "partner.example.org", "outlook.com", "vendor.example.net" }
local WORDS = { "quarterly", "budget", "roadmap", "customer", "renewal", "forecast", "review", "meeting", "notes",
  "summary", "project", "launch", "invoice", "policy", "team", "plan", "update", "draft", "final", "status" }

-- Sensitive snippets the DLP scan must find (test values: Luhn-valid cards, a valid-range SSN, AWS's
-- documented example key id, a PEM private key block).
M.SENSITIVE = {
  card = "Card on file: 4111 1111 1111 1111, backup 5555555555554444 (exp 12/29).",
  ssn = "Employee SSN: 536-22-1234",
  aws = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  private_key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH\nlWu2/a1gB9JW5TBQ+AVpum9Okx7KfqkfBKL9mcHgSL0yWMdjMfNOqNtrQqKlN4kE\n-----END RSA PRIVATE KEY-----",
}
local KINDS = { "card", "aws", "ssn", "private_key" }   -- files 1..4 get these, in order

-- A minimal valid PDF (one page, Helvetica, uncompressed) holding `text`, ten words a line so nothing falls
-- off the page: the DLP scan reads PDF text with poppler.
local function pdf_doc(text)
  local ops, words = { "BT /F1 11 Tf 14 TL 72 760 Td" }, {}
  local function flush()
    if #words > 0 then ops[#ops + 1] = "(" .. table.concat(words, " "):gsub("[\\()]", "\\%0") .. ") Tj T*" end
    words = {}
  end
  for line in text:gmatch("[^\n]+") do
    for w in line:gmatch("%S+") do
      words[#words + 1] = w
      if #words == 10 then flush() end
    end
    flush()
  end
  ops[#ops + 1] = "ET"
  local stream = table.concat(ops, "\n")
  local objs = { "<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
    ("<< /Length %d >>\nstream\n%s\nendstream"):format(#stream, stream),
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>" }
  local out, offsets = { "%PDF-1.4\n" }, {}
  local pos = #out[1]
  for i, o in ipairs(objs) do
    out[#out + 1] = ("%d 0 obj\n%s\nendobj\n"):format(i, o)
    offsets[i] = pos
    pos = pos + #out[#out]
  end
  out[#out + 1] = ("xref\n0 %d\n0000000000 65535 f \n"):format(#objs + 1)
  for _, off in ipairs(offsets) do out[#out + 1] = ("%010d 00000 n \n"):format(off) end
  out[#out + 1] = ("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"):format(#objs + 1, pos)
  return table.concat(out)
end
M.pdf_doc = pdf_doc

-- SHA-1 of content (Box's `sha1` field); the host's crypto has no SHA-1 digest, and the emulator's files
-- are small, so plain Lua is enough here.
local function sha1_hex(msg)
  local M32 = 0xffffffff
  local function rol(x, n) return ((x << n) | (x >> (32 - n))) & M32 end
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  local ml = #msg * 8
  msg = msg .. "\128" .. string.rep("\0", (55 - #msg) % 64) .. string.pack(">I8", ml)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do w[i] = string.unpack(">I4", msg, chunk + i * 4) end
    for i = 16, 79 do w[i] = rol(w[i - 3] ~ w[i - 8] ~ w[i - 14] ~ w[i - 16], 1) end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then f, k = (b & c) | ((~b) & d), 0x5A827999
      elseif i < 40 then f, k = b ~ c ~ d, 0x6ED9EBA1
      elseif i < 60 then f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
      else f, k = b ~ c ~ d, 0xCA62C1D6 end
      local t = (rol(a, 5) + (f & M32) + e + k + w[i]) & M32
      e, d, c, b, a = d, c, rol(b, 30), a, t
    end
    h0, h1, h2, h3, h4 = (h0 + a) & M32, (h1 + b) & M32, (h2 + c) & M32, (h3 + d) & M32, (h4 + e) & M32
  end
  return string.format("%08x%08x%08x%08x%08x", h0, h1, h2, h3, h4)
end
M.sha1_hex = sha1_hex

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Box)
  T.Base.init(self, opts)
  self.enterprise_id = tostring(opts.enterprise_id or (100000 + T.below(T.hash(self.seed, "ent"), 900000)))
  self.enterprise_name = opts.enterprise_name or "Acme Inc."
  self.domain = opts.domain or "acme.example.com"
  self.token = opts.token or ("box_dev_" .. T.b62(32, self.seed, "devtoken"))
  self.client_id = opts.client_id or ("sbx" .. T.b62(29, self.seed, "client_id"):lower())
  self.client_secret = opts.client_secret or T.b62(32, self.seed, "client_secret")
  self.token_ttl = opts.token_ttl or 3600
  self.nusers = opts.users or 30
  -- application scopes the app was not granted (developer console), e.g. { "manage_groups" }: the
  -- routes needing them answer 403 insufficient_scope
  self.missing_scopes = {}
  for _, sc in ipairs(opts.missing_scopes or {}) do self.missing_scopes[sc] = true end
  self.ngroups = opts.groups or 4
  self.nfolders = opts.folders or 10
  self.nfiles = opts.files or 40
  self.nevents = opts.events or 300
  self.days = opts.days or 30
  self.keys = { primary = opts.webhook_primary_key or ("prim" .. T.b62(28, self.seed, "whp")),
                secondary = opts.webhook_secondary_key or ("seco" .. T.b62(28, self.seed, "whs")) }
  self.tokens = {}        -- access token -> {uid=, exp=, kind=}
  self.refresh = {}       -- refresh token -> {uid=, exp=}
  self.codes = {}
  self.nseq = 0
  self:generate()
  return self
end

---------------------------------------------------------------------------------------------------
-- Generation (pure in the seed)
---------------------------------------------------------------------------------------------------
function Box:new_id(kind)
  self.ids = self.ids or {}
  local cur = self.ids[kind] or ({ item = 110000000000, user = 19000000000, group = 5000000, membership = 38000000,
                                    collab = 21000000000, webhook = 4100000, version = 900000000000 })[kind]
  cur = cur + 1 + T.below(T.hash(self.seed, "id", kind, cur), 997)
  self.ids[kind] = cur
  return tostring(cur)
end

function Box:generate()
  local r = T.rng(self.seed, "box")
  local now = self.t0_ms
  local st = { users = {}, by_id = {}, externals = {}, groups = {}, memberships = {}, items = {}, order = {},
               collabs = {}, events = {}, webhooks = {} }
  self.state = st
  local used = {}
  for i = 1, self.nusers do
    local fn, ln = FIRST[(i - 1) % #FIRST + 1], LAST[T.below(T.hash(self.seed, "ln", i), #LAST) + 1]
    local login = (fn .. "." .. ln):lower()
    local k = 1
    while used[login] do k = k + 1; login = (fn .. "." .. ln .. k):lower() end
    used[login] = true
    local u = { id = self:new_id("user"), name = fn .. " " .. ln, login = login .. "@" .. self.domain,
                role = i == 1 and "admin" or (r:chance(0.1) and "coadmin" or "user"),
                status = i == 1 and "active" or (r:chance(0.08) and "inactive" or (r:chance(0.04) and "cannot_delete_edit" or "active")),
                created = now - r:int(30, 1500) * 86400000, job_title = r:pick({ "Engineer", "Analyst", "Manager", "Counsel", "Designer" }) }
    st.users[#st.users + 1] = u
    st.by_id[u.id] = u
  end
  self.admin = st.users[1]
  for i = 1, math.max(3, self.nusers // 8) do
    local fn, ln = FIRST[T.below(T.hash(self.seed, "xf", i), #FIRST) + 1], LAST[T.below(T.hash(self.seed, "xl", i), #LAST) + 1]
    local x = { id = self:new_id("user"), name = fn .. " " .. ln, external = true,
                login = (fn .. "." .. ln .. i):lower() .. "@" .. EXTERNAL_DOMAINS[(i - 1) % #EXTERNAL_DOMAINS + 1],
                role = "user", status = "active", created = now - r:int(30, 900) * 86400000 }
    st.externals[#st.externals + 1] = x
    st.by_id[x.id] = x
  end
  -- groups and memberships
  for i = 1, self.ngroups do
    local g = { id = self:new_id("group"), name = GROUPS[(i - 1) % #GROUPS + 1] .. (i > #GROUPS and (" " .. i) or ""),
                created = now - r:int(10, 600) * 86400000, description = "Sandbox group " .. i }
    st.groups[#st.groups + 1] = g
    for _, u in ipairs(st.users) do
      if r:chance(0.3) then
        st.memberships[#st.memberships + 1] = { id = self:new_id("membership"), user = u.id, group = g.id,
          role = r:chance(0.1) and "admin" or "member", created = g.created + r:int(0, 5) * 86400000 }
      end
    end
  end
  -- folders: root, top-level folders, some subfolders
  self:add_item{ id = "0", type = "folder", name = "All Files", owner = self.admin.id, created = now - 2000 * 86400000 }
  local folders = {}
  for i = 1, self.nfolders do
    local parent = (i <= math.min(#TOP, math.max(1, self.nfolders // 2)) or #folders == 0) and "0" or folders[r:int(1, #folders)].id
    local name = parent == "0" and TOP[(i - 1) % #TOP + 1] .. (i > #TOP and (" " .. i) or "") or SUB[r:int(1, #SUB)] .. " " .. i
    local f = self:add_item{ type = "folder", name = name, parent = parent, owner = st.users[r:int(1, #st.users)].id,
                             created = now - r:int(100, 900) * 86400000 }
    folders[#folders + 1] = f
  end
  -- files: seeded sensitive content on a share of the text files; the first ones are guaranteed cases
  local pdf_seeded = false
  for i = 1, self.nfiles do
    local folder = folders[r:int(1, #folders)]
    local ext = (i <= 4 or r:chance(0.6)) and "txt" or r:pick({ "pdf", "docx", "xlsx", "png" })
    local name = WORDS[r:int(1, #WORDS)] .. "-" .. WORDS[r:int(1, #WORDS)] .. "-" .. i .. "." .. ext
    local body = {}
    for w = 1, r:int(20, 120) do body[w] = WORDS[r:int(1, #WORDS)] end
    local content = table.concat(body, " ") .. "\n"
    local sensitive = {}
    if ext == "txt" and (i <= 4 or r:chance(0.25)) then
      local kind = i <= 4 and KINDS[i] or KINDS[r:int(1, #KINDS)]
      sensitive[#sensitive + 1] = kind
      content = content .. M.SENSITIVE[kind] .. "\n" .. table.concat(body, " ", 1, math.min(10, #body)) .. "\n"
    elseif ext == "pdf" then
      if not pdf_seeded then   -- the first PDF holds a card number (no extra draw: the seed's tenant stays)
        pdf_seeded = true
        sensitive[#sensitive + 1] = "card"
        content = content .. M.SENSITIVE.card .. "\n"
      end
      content = pdf_doc(content)
    elseif ext ~= "txt" then
      content = "%" .. ext:upper() .. "-sandbox\0\1\2" .. content
    end
    local f = self:add_item{ type = "file", name = name, parent = folder.id, owner = st.users[r:int(1, #st.users)].id,
                             created = now - r:int(1, 400) * 86400000, content = content, sensitive = sensitive }
    if i == 1 or r:chance(0.12) then
      f.link = self:make_link(f, i == 1 and "open" or r:pick({ "open", "company", "collaborators" }))
    end
    if i == 2 or r:chance(0.1) then
      self:add_collab(f, st.externals[r:int(1, #st.externals)], r:pick({ "viewer", "editor", "previewer" }), f.created)
    end
    if r:chance(0.15) then self:add_collab(f, st.users[r:int(1, #st.users)], "editor", f.created) end
    if i == 5 or (i > 5 and r:chance(0.07)) then f.trashed_at = now - r:int(1, 20) * 86400000 end
  end
  -- a folder shared with a group and one with an external collaborator (inherited by its content)
  if #folders >= 2 then
    local g = st.groups[1]
    self:add_collab(folders[1], { id = g.id, name = g.name, group = true }, "viewer", folders[1].created)
    self:add_collab(folders[#folders], st.externals[1], "editor", folders[#folders].created)
  end
  -- enterprise events, chronological, over `days`
  local span = self.days * 86400000
  local TYPES = { { 0.30, "LOGIN" }, { 0.38, "FAILED_LOGIN" }, { 0.42, "ADMIN_LOGIN" }, { 0.55, "DOWNLOAD" }, { 0.65, "PREVIEW" },
    { 0.73, "UPLOAD" }, { 0.78, "SHARE" }, { 0.82, "COLLABORATION_INVITE" }, { 0.86, "EDIT_USER" }, { 0.90, "GROUP_ADD_USER" },
    { 0.93, "CHANGE_ADMIN_ROLE" }, { 0.97, "DELETE" }, { 1.01, "ITEM_SHARED_UPDATE" } }
  local files = {}
  for _, id in ipairs(st.order) do if st.items[id].type == "file" then files[#files + 1] = st.items[id] end end
  for i = 1, self.nevents do
    local x = r:float()
    local et = "LOGIN"
    for _, w in ipairs(TYPES) do if x < w[1] then et = w[2]; break end end
    local ms = now - span + math.floor((i - 1 + r:float()) * span / self.nevents)
    local actor = st.users[r:int(1, #st.users)]
    local source
    if et:match("LOGIN") then source = actor
    elseif et == "EDIT_USER" or et == "CHANGE_ADMIN_ROLE" or et == "GROUP_ADD_USER" then source = st.users[r:int(1, #st.users)]
    else source = files[r:int(1, #files)] end
    self:add_event(et, actor, source, { ms = ms, ip = ("%d.%d.%d.%d"):format(r:int(11, 220), r:int(0, 255), r:int(0, 255), r:int(1, 254)) })
  end
end

function Box:add_item(spec)
  local st = self.state
  local it = spec
  it.id = it.id or self:new_id("item")
  it.modified = it.modified or it.created
  it.seq = 0
  it.version_id = it.type == "file" and self:new_id("version") or nil
  if it.content then it.size = #it.content; it.sha1 = sha1_hex(it.content) end
  it.size = it.size or 0
  st.items[it.id] = it
  st.order[#st.order + 1] = it.id
  return it
end

function Box:make_link(it, access)
  local tok = T.b62(32, self.seed, "link", it.id, self.nseq)
  return { access = access, url = "https://app.box.com/s/" .. tok:lower(), download_url = "https://app.box.com/shared/static/" .. tok:lower(),
           created = self:now_ms() }
end

-- who: a user/external {id, name, login} or a group {id, name, group=true}
function Box:add_collab(it, who, role, created)
  local c = { id = self:new_id("collab"), item = it.id, role = role, status = "accepted", created = created or self:now_ms(),
              who = who.id, group = who.group or false, created_by = it.owner }
  self.state.collabs[#self.state.collabs + 1] = c
  return c
end

---------------------------------------------------------------------------------------------------
-- Ground truth and helpers for tests
---------------------------------------------------------------------------------------------------
function Box:find_file(id) return self.state.items[tostring(id)] end
function Box:file_content(id) local it = self.state.items[tostring(id)]; return it and it.content end
function Box:find_user(id) return self.state.by_id[tostring(id)] end

-- trashed itself or under a trashed folder
function Box:in_trash(it)
  while it do
    if it.trashed_at then return true end
    it = it.parent and self.state.items[it.parent]
  end
  return false
end

function Box:collabs_of(id)
  local out = {}
  for _, c in ipairs(self.state.collabs) do if c.item == id then out[#out + 1] = c end end
  return out
end

function Box:is_external_collab(c)
  if c.group then return false end
  local u = self.state.by_id[c.who]
  return u ~= nil and u.external == true
end

-- access level as the connector should compute it: own link and collaborations, plus those of ancestors
function Box:access_level(id)
  local it = self.state.items[tostring(id)]
  local level = 0
  local RANK = { private = 0, internal = 1, external = 2, public = 3 }
  while it do
    if it.link then
      local l = it.link.access == "open" and 3 or it.link.access == "company" and 1 or 0
      if l > level then level = l end
    end
    for _, c in ipairs(self:collabs_of(it.id)) do
      local l = self:is_external_collab(c) and 2 or 1
      if l > level then level = l end
    end
    it = it.parent and self.state.items[it.parent]
  end
  for k, v in pairs(RANK) do if v == level then return k end end
end

-- path "/Finance/Reports 3/name.txt" (root excluded)
function Box:path_of(it)
  local parts = {}
  while it and it.id ~= "0" do table.insert(parts, 1, it.name); it = it.parent and self.state.items[it.parent] end
  return "/" .. table.concat(parts, "/")
end

function Box:children(fid, trashed)
  local out = {}
  for _, id in ipairs(self.state.order) do
    local it = self.state.items[id]
    if it.parent == fid and (trashed or not it.trashed_at) then out[#out + 1] = it end
  end
  table.sort(out, function(a, b)
    if a.type ~= b.type then return a.type == "folder" end
    if a.name:lower() ~= b.name:lower() then return a.name:lower() < b.name:lower() end
    return a.id < b.id
  end)
  return out
end

-- count(what): users (managed), active_users, inactive_users, admins (admin+coadmin), groups, memberships,
-- files / folders (live, root excluded), trashed (top-level trashed items, what the trash lists),
-- collaborations and shared_links (on live items), events, sensitive (live files with seeded content)
function Box:count(what)
  local st = self.state
  local n = 0
  if what == "users" then return #st.users
  elseif what == "active_users" or what == "inactive_users" then
    for _, u in ipairs(st.users) do if u.status == what:match("^(%a+)_") then n = n + 1 end end
    return n
  elseif what == "admins" then
    for _, u in ipairs(st.users) do if u.role == "admin" or u.role == "coadmin" then n = n + 1 end end
    return n
  elseif what == "groups" then return #st.groups
  elseif what == "memberships" then return #st.memberships
  elseif what == "events" then return #st.events
  elseif what == "webhooks" then return #st.webhooks
  end
  for _, id in ipairs(st.order) do
    local it = st.items[id]
    local live = id ~= "0" and not self:in_trash(it)
    if what == "files" and live and it.type == "file" then n = n + 1
    elseif what == "folders" and live and it.type == "folder" then n = n + 1
    elseif what == "trashed" and it.trashed_at and not self:in_trash(st.items[it.parent]) then n = n + 1
    elseif what == "shared_links" and live and it.link then n = n + 1
    elseif what == "collaborations" and live then n = n + #self:collabs_of(id)
    elseif what == "sensitive" and live and it.sensitive and #it.sensitive > 0 then n = n + 1
    elseif not ({ files = 1, folders = 1, trashed = 1, shared_links = 1, collaborations = 1, sensitive = 1 })[what] then
      error("count: unknown " .. tostring(what))
    end
  end
  return n
end

-- Ground truth by entity, as the ids a complete sync keys rows by ("user:role" privileges; membership
-- ids; items and top-level trashed items, root excluded; "collab:id" and "link:item" permissions of live
-- items; event ids): the kill suite compares stores with it.  External users are not managed users.
function Box:truth()
  local st = self.state
  local t = { users = {}, groups = {}, group_members = {}, privileges = {}, files = {}, file_permissions = {}, activities = {} }
  for _, u in ipairs(st.users) do
    if not u.external then
      t.users[#t.users + 1] = u.id
      if u.role == "admin" or u.role == "coadmin" then t.privileges[#t.privileges + 1] = u.id .. ":" .. u.role end
    end
  end
  for _, g in ipairs(st.groups) do t.groups[#t.groups + 1] = g.id end
  for _, m in ipairs(st.memberships) do t.group_members[#t.group_members + 1] = m.id end
  for _, id in ipairs(st.order) do
    local it = st.items[id]
    if id ~= "0" and not self:in_trash(it) then
      t.files[#t.files + 1] = id
      for _, c in ipairs(self:collabs_of(id)) do t.file_permissions[#t.file_permissions + 1] = "collab:" .. c.id end
      if it.link then t.file_permissions[#t.file_permissions + 1] = "link:" .. id end
    elseif it.trashed_at and not self:in_trash(st.items[it.parent]) then
      t.files[#t.files + 1] = id
    end
  end
  for _, e in ipairs(st.events) do t.activities[#t.activities + 1] = e.ev.event_id end
  return t
end

-- ids of live files seeded with a kind of sensitive content ("card", "ssn", "aws", "private_key")
function Box:sensitive_files(kind)
  local out = {}
  for _, id in ipairs(self.state.order) do
    local it = self.state.items[id]
    if it.type == "file" and not self:in_trash(it) then
      for _, k in ipairs(it.sensitive or {}) do if k == kind or kind == nil then out[#out + 1] = id; break end end
    end
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- Rendering
---------------------------------------------------------------------------------------------------
-- Box writes times with the account's offset: "2012-12-12T10:53:43-08:00"
local function btime(ms)
  if ms == nil then return jnull() end
  return (T.iso_s((ms - 8 * 3600000) // 1000):gsub("Z$", "-08:00"))
end
M.btime = btime

function Box:user_mini(u)
  if not u then return { type = "user", id = "2", name = "Anonymous User", login = "" } end
  return { type = "user", id = u.id, name = u.name, login = u.login }
end

local USER_DEFAULT = { "type", "id", "name", "login", "created_at", "modified_at", "language", "timezone", "space_amount",
  "space_used", "max_upload_size", "status", "job_title", "phone", "address", "avatar_url", "notification_email" }

function Box:user_full(u)
  return { type = "user", id = u.id, name = u.name, login = u.login, created_at = btime(u.created), modified_at = btime(u.modified or u.created),
           language = "en", timezone = "America/Los_Angeles", space_amount = 11345156112, space_used = 1237009 * (tonumber(u.id:sub(-2)) or 1),
           max_upload_size = 2147483648, status = u.status, job_title = u.job_title or "", phone = "", address = "",
           avatar_url = "https://app.box.com/api/avatar/large/" .. u.id, notification_email = jnull(),
           role = u.role, tracking_codes = json().array({}), can_see_managed_users = u.role ~= "user", is_sync_enabled = true,
           is_external_collab_restricted = false, is_exempt_from_device_limits = false, is_exempt_from_login_verification = false,
           enterprise = u.external and jnull() or { id = self.enterprise_id, type = "enterprise", name = self.enterprise_name },
           my_tags = json().array({}), hostname = "https://acme.app.box.com/", is_platform_access_only = false, external_app_user_id = jnull() }
end

-- fields= narrows an object to its mini form plus the named fields (§11)
local function narrow(full, mini_keys, fields)
  if not fields or fields == "" then return full end
  local out = {}
  for _, k in ipairs(mini_keys) do out[k] = full[k] end
  for f in fields:gmatch("[^,%s]+") do if full[f] ~= nil then out[f] = full[f] end end
  return out
end

function Box:render_user(u, fields)
  local full = self:user_full(u)
  if fields and fields ~= "" then return narrow(full, { "type", "id", "name", "login" }, fields) end
  local out = {}
  for _, k in ipairs(USER_DEFAULT) do out[k] = full[k] end
  return out
end

function Box:group_json(g)
  return { type = "group", id = g.id, name = g.name, group_type = "managed_group", created_at = btime(g.created),
           modified_at = btime(g.created), provenance = "", external_sync_identifier = jnull(), description = g.description,
           invitability_level = "admins_only", member_viewability_level = "admins_only" }
end

function Box:membership_json(m)
  local u, g = self.state.by_id[m.user], nil
  for _, x in ipairs(self.state.groups) do if x.id == m.group then g = x end end
  return { type = "group_membership", id = m.id, user = self:user_mini(u),
           group = { type = "group", id = g.id, name = g.name, group_type = "managed_group" },
           role = m.role, created_at = btime(m.created), modified_at = btime(m.created) }
end

function Box:item_mini(it)
  local j = { type = it.type, id = it.id, etag = it.id == "0" and jnull() or tostring(it.seq),
              sequence_id = it.id == "0" and jnull() or tostring(it.seq), name = it.name }
  if it.type == "file" then
    j.sha1 = it.sha1
    j.file_version = { type = "file_version", id = it.version_id, sha1 = it.sha1 }
  end
  return j
end

function Box:link_json(l)
  if not l then return jnull() end
  return { url = l.url, download_url = l.download_url, vanity_url = jnull(), vanity_name = jnull(), access = l.access,
           effective_access = l.access, effective_permission = l.permission or "can_download",
           unshared_at = l.unshared_at and btime(l.unshared_at) or jnull(), is_password_enabled = l.password and true or false,
           permissions = { can_download = true, can_preview = true, can_edit = false }, download_count = 0, preview_count = 0 }
end

function Box:item_full(it)
  local st = self.state
  local path = {}
  local p = it.parent and st.items[it.parent]
  while p do table.insert(path, 1, self:item_mini(p)); p = p.parent and st.items[p.parent] end
  local owner = st.by_id[it.owner]
  local trashed = self:in_trash(it)
  local j = self:item_mini(it)
  j.description = ""
  j.size = it.size
  j.path_collection = { total_count = #path, entries = json().array(path) }
  j.created_at = btime(it.created); j.modified_at = btime(it.modified)
  j.trashed_at = it.trashed_at and btime(it.trashed_at) or jnull()
  j.purged_at = it.trashed_at and btime(it.trashed_at + 30 * 86400000) or jnull()
  j.content_created_at = btime(it.created); j.content_modified_at = btime(it.modified)
  j.created_by = self:user_mini(owner); j.modified_by = self:user_mini(st.by_id[it.modified_by or it.owner] or owner)
  j.owned_by = self:user_mini(owner)
  j.shared_link = self:link_json(it.link)
  j.parent = it.parent and self:item_mini(st.items[it.parent]) or jnull()
  j.item_status = trashed and "trashed" or "active"
  j.has_collaborations = #self:collabs_of(it.id) > 0
  j.is_externally_owned = false
  if it.type == "file" then
    j.extension = it.name:match("%.(%w+)$") or ""
    j.version_number = tostring(it.versions or 1)
    j.lock = jnull()
  else
    j.folder_upload_email = jnull()
    j.item_collection = nil
  end
  return j
end

local ITEM_MINI = { "type", "id", "etag", "sequence_id", "name", "sha1", "file_version" }
function Box:render_item(it, fields, default_mini)
  local full = self:item_full(it)
  if fields and fields ~= "" then return narrow(full, ITEM_MINI, fields) end
  if default_mini then return self:item_mini(it) end
  return full
end

function Box:collab_json(c)
  local st = self.state
  local it = st.items[c.item]
  local who
  if c.group then
    for _, g in ipairs(st.groups) do if g.id == c.who then who = { type = "group", id = g.id, name = g.name, group_type = "managed_group" } end end
  else
    local u = st.by_id[c.who]
    who = u and { type = "user", id = u.id, name = u.name, login = u.login, is_active = u.status == "active" }
  end
  return { type = "collaboration", id = c.id, item = it and self:item_mini(it) or jnull(), accessible_by = who or jnull(),
           invite_email = jnull(), role = c.role, expires_at = c.expires and btime(c.expires) or jnull(), is_access_only = false,
           status = c.status, acknowledged_at = btime(c.created), created_by = self:user_mini(st.by_id[c.created_by]),
           created_at = btime(c.created), modified_at = btime(c.created) }
end

---------------------------------------------------------------------------------------------------
-- Events (admin_logs): one chronological list; a stream position is POS_BASE + how many come before it
---------------------------------------------------------------------------------------------------
function Box:add_event(event_type, actor, source, extra)
  extra = extra or {}
  self.nseq = self.nseq + 1
  local ms = extra.ms or self:now_ms()
  local src = jnull()
  if source then
    if source.type == "file" or source.type == "folder" then
      local p = source.parent and self.state.items[source.parent]
      src = { item_type = source.type, item_id = source.id, item_name = source.name,
              parent = p and { type = "folder", name = p.name, id = p.id } or jnull(), owned_by = self:user_mini(self.state.by_id[source.owner]) }
    elseif source.login then
      src = { type = "user", id = source.id, name = source.name, login = source.login }
    elseif source.group_type or source.group then
      src = { type = "group", id = source.id, name = source.name, group_type = "managed_group" }
    end
  end
  local ev = { type = "event", event_id = T.hexs(8, self.seed, "ev", self.nseq) .. "-" .. T.hexs(4, self.seed, "ev2", self.nseq) .. "-" ..
               T.hexs(4, self.seed, "ev3", self.nseq) .. "-" .. T.hexs(12, self.seed, "ev4", self.nseq),
               created_at = btime(ms), recorded_at = btime(ms + 1000), created_by = self:user_mini(actor), event_type = event_type,
               session_id = jnull(), source = src, ip_address = extra.ip or "10.0.0.1",
               additional_details = extra.details or jnull(), action_by = jnull() }
  local list = self.state.events
  list[#list + 1] = { ms = ms, ev = ev }
  return ev
end

---------------------------------------------------------------------------------------------------
-- Errors, auth, rate limits
---------------------------------------------------------------------------------------------------
function Box:err(status, code, message, context)
  self.nreq_err = (self.nreq_err or 0) + 1
  return status, { type = "error", status = status, code = code, message = message, context_info = context or jnull(),
                   help_url = HELP, request_id = T.hexs(12, self.seed, "rid", self.nreq_err) }
end
function Box:not_found(what)
  return self:err(404, "not_found", "Not Found", { errors = json().array({ { reason = "invalid_parameter", name = what or "item", message = "Invalid value '" .. tostring(what) .. "'." } }) })
end

-- The application scope a route family needs (shared/api/box.md, capability -> requirement).
local SCOPE_OF = { groups = "manage_groups", group_memberships = "manage_groups", users = "manage_managed_users",
                   events = "manage_enterprise_properties" }

function Box:precheck(req, ropts)
  local _, _, _, exceeded = self:rate_take(ropts.upload and "upload" or "api")
  if exceeded then
    local st, body = self:err(429, "rate_limit_exceeded", "Request rate limit exceeded, please try again later")
    return st, body, { ["retry-after"] = "1" }
  end
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local tok = auth:match("^[Bb]earer%s+(%S+)%s*$")
  local rec = tok and self:find_token(tok)
  if not rec then
    return 401, "", { ["WWW-Authenticate"] = 'Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid."' }
  end
  local need = SCOPE_OF[req.path:match("/2%.0/([%w_]+)") or ""]
  if need and self.missing_scopes[need] then
    local st, body = self:err(403, "insufficient_scope", "The request requires higher privileges than provided by the access token.")
    return st, body, { ["WWW-Authenticate"] = 'Bearer realm="Service", error="insufficient_scope", error_description="The request requires higher privileges than provided by the access token."' }
  end
  req.actor = self.state.by_id[rec.uid] or self.admin
  req.token = rec
end

function Box:find_token(tok)
  if crypto().equal(tok, self.token) then return { uid = self.admin.id, kind = "developer" } end
  local rec = self.tokens[tok]
  if rec and rec.exp > self:wall_s() then return rec end
end

function Box:decorate(req, status, hdr)
  hdr["box-request-id"] = T.hexs(16, self.seed, "brid", self.requests)
end

function Box:fault_response(f, req)
  local k = f.kind
  local st, body, hdr = 500, nil, {}
  if k == "429" or k == "primary" or k == "secondary" then
    st, body = self:err(429, "rate_limit_exceeded", "Request rate limit exceeded, please try again later")
    hdr["retry-after"] = tostring(f.retry_after or 1)
  elseif k == "403" then
    st, body = self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission")
  elseif k == "503" or k == "502" then
    st, body = self:err(tonumber(k), "unavailable", "Unavailable")
  else
    st, body = self:err(500, "internal_server_error", "Internal Server Error")
  end
  return st, json().encode(body), hdr
end

function Box:issue_token(uid, kind, with_refresh)
  self.nseq = self.nseq + 1
  local tok = T.b62(32, self.seed, "at", self.nseq, self:wall_s())
  self.tokens[tok] = { uid = uid, kind = kind, exp = self:wall_s() + self.token_ttl }
  local out = { access_token = tok, expires_in = self.token_ttl, token_type = "bearer", restricted_to = json().array({}) }
  if with_refresh then
    local rt = T.b62(64, self.seed, "rt", self.nseq, self:wall_s())
    self.refresh[rt] = { uid = uid, exp = self:wall_s() + 60 * 86400 }
    out.refresh_token = rt
  end
  return 200, out
end

function Box:oauth_err(code, desc) return 400, { error = code, error_description = desc } end

function Box:h_token(req)
  local f = T.parse_form(req.body)
  if f.client_id ~= self.client_id or not crypto().equal(f.client_secret or "", self.client_secret) then
    return self:oauth_err("invalid_client", "The client credentials are invalid")
  end
  local g = f.grant_type
  if g == "client_credentials" then
    if f.box_subject_type == "enterprise" and f.box_subject_id == self.enterprise_id then
      return self:issue_token(self.admin.id, "service", false)
    elseif f.box_subject_type == "user" and self.state.by_id[f.box_subject_id or ""] and not self.state.by_id[f.box_subject_id].external then
      return self:issue_token(f.box_subject_id, "user", false)
    end
    return self:oauth_err("invalid_grant", "Grant credentials are invalid")
  elseif g == "authorization_code" then
    local c = self.codes[f.code or ""]
    if not c or c.exp < self:wall_s() or (c.redirect_uri and f.redirect_uri and f.redirect_uri ~= c.redirect_uri) then
      return self:oauth_err("invalid_grant", "Auth code doesn't exist or is invalid for the client")
    end
    self.codes[f.code] = nil
    return self:issue_token(c.uid, "oauth", true)
  elseif g == "refresh_token" then
    local rec = self.refresh[f.refresh_token or ""]
    if not rec or rec.exp < self:wall_s() then return self:oauth_err("invalid_grant", "Invalid refresh token") end
    self.refresh[f.refresh_token] = nil        -- single use
    return self:issue_token(rec.uid, "oauth", true)
  end
  return self:oauth_err("unsupported_grant_type", "Grant type is not supported")
end

function Box:h_revoke(req)
  local f = T.parse_form(req.body)
  if f.client_id ~= self.client_id or not crypto().equal(f.client_secret or "", self.client_secret) then
    return self:oauth_err("invalid_client", "The client credentials are invalid")
  end
  local rec = self.tokens[f.token or ""] or self.refresh[f.token or ""]
  self.tokens[f.token or ""] = nil; self.refresh[f.token or ""] = nil
  if rec then self:add_event("OAUTH2_ACCESS_TOKEN_REVOKE", self.state.by_id[rec.uid], self.state.by_id[rec.uid]) end
  return 200, ""
end

-- browser consent, auto-approved as the admin (or ?login=)
function Box:h_authorize(req)
  local q = req.query
  if q.client_id ~= self.client_id or q.response_type ~= "code" or not q.redirect_uri then
    return 400, "<html><body>invalid_request</body></html>", { ["Content-Type"] = "text/html" }
  end
  self.nseq = self.nseq + 1
  local code = T.b62(32, self.seed, "code", self.nseq, self:wall_s())
  local uid = self.admin.id
  for _, u in ipairs(self.state.users) do if q.login and u.login == q.login then uid = u.id end end
  self.codes[code] = { uid = uid, exp = self:wall_s() + 30, redirect_uri = q.redirect_uri }
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  return 302, "", { Location = q.redirect_uri .. sep .. T.qs{ { "code", code }, { "state", q.state } } }
end

---------------------------------------------------------------------------------------------------
-- Pagination: offset (total_count) and marker (usemarker=true)
---------------------------------------------------------------------------------------------------
function Box:paged(req, list, render, max)
  local q = req.query
  local limit, e1 = T.intparam(q.limit, 100, 1, max or 1000)
  if not limit then return self:err(400, "invalid_parameter", "Invalid value for 'limit'" .. (e1 and "" or "")) end
  local out = {}
  if q.usemarker == "true" or (q.marker and q.marker ~= "") then
    local start = 0
    if q.marker and q.marker ~= "" then
      local raw = crypto().unb64url(q.marker)
      start = raw and math.tointeger(tonumber(raw:match("^m(%d+)$") or "")) or nil
      if not start then return self:err(400, "invalid_parameter", "Invalid value for 'marker'") end
    end
    for i = start + 1, math.min(#list, start + limit) do out[#out + 1] = render(list[i]) end
    local nxt = start + limit < #list and crypto().b64url("m" .. (start + limit)) or jnull()
    return 200, { limit = limit, next_marker = nxt, prev_marker = jnull(), entries = json().array(out) }
  end
  local offset = T.intparam(q.offset, 0, 0)
  if not offset then return self:err(400, "invalid_parameter", "Invalid value for 'offset'") end
  if offset > 10000 then return self:err(400, "invalid_parameter", "Offset exceeds the maximum of 10000; use marker-based pagination") end
  for i = offset + 1, math.min(#list, offset + limit) do out[#out + 1] = render(list[i]) end
  return 200, { total_count = #list, limit = limit, offset = offset,
                order = json().array({ { by = "type", direction = "ASC" }, { by = "name", direction = "ASC" } }),
                entries = json().array(out) }
end

---------------------------------------------------------------------------------------------------
-- Users, groups
---------------------------------------------------------------------------------------------------
local function is_admin(u) return u and (u.role == "admin" or u.role == "coadmin") end
local function body_of(req)
  local b = json().decode(req.body or "")
  return type(b) == "table" and b or nil
end

function Box:h_users(req)
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local q = req.query
  local ty = q.user_type or "all"
  local list = {}
  local term = (q.filter_term or ""):lower()
  local function match(u) return term == "" or u.name:lower():sub(1, #term) == term or u.login:lower():sub(1, #term) == term end
  if ty == "all" or ty == "managed" then
    for _, u in ipairs(self.state.users) do if match(u) then list[#list + 1] = u end end
  end
  if (ty == "external" or ty == "all") and term ~= "" then
    for _, u in ipairs(self.state.externals) do if match(u) then list[#list + 1] = u end end
  end
  return self:paged(req, list, function(u) return self:render_user(u, q.fields) end)
end

function Box:h_user(req)
  local id = req.params.id == "me" and req.actor.id or req.params.id
  local u = self.state.by_id[id]
  if not u or u.external then return self:not_found("user") end
  if req.method == "GET" then return 200, self:render_user(u, req.query.fields) end
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  if req.method == "DELETE" then
    for i, x in ipairs(self.state.users) do if x == u then table.remove(self.state.users, i) end end
    self.state.by_id[u.id] = nil
    self:add_event("DELETE_USER", req.actor, u)
    return 204, ""
  end
  local b = body_of(req)
  if not b then return self:err(400, "bad_request", "Invalid JSON body") end
  local ST = { active = true, inactive = true, cannot_delete_edit = true, cannot_delete_edit_upload = true }
  if b.status ~= nil then
    if not ST[b.status] then return self:err(400, "bad_request", "Invalid value for 'status'", { errors = json().array({ { name = "status", reason = "invalid_parameter" } }) }) end
    if b.status ~= u.status then u.status = b.status; self:add_event("EDIT_USER", req.actor, u, { details = { status = b.status } }) end
  end
  if b.role ~= nil then
    if b.role ~= "coadmin" and b.role ~= "user" then return self:err(400, "bad_request", "Invalid value for 'role'") end
    if u.role == "admin" then return self:err(403, "access_denied_insufficient_permissions", "Cannot change the primary admin's role") end
    if b.role ~= u.role then u.role = b.role; self:add_event("CHANGE_ADMIN_ROLE", req.actor, u) end
  end
  if type(b.name) == "string" then u.name = b.name end
  u.modified = self:now_ms()
  return 200, self:render_user(u, req.query.fields)
end

function Box:h_terminate(req)
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local b = body_of(req) or {}
  local n = 0
  local want = {}
  for _, id in ipairs(b.user_ids or {}) do want[tostring(id)] = true end
  for _, l in ipairs(b.user_logins or {}) do want[l] = true end
  for _, u in ipairs(self.state.users) do
    if want[u.id] or want[u.login] then
      n = n + 1
      for k, t in pairs(self.tokens) do if t.uid == u.id then self.tokens[k] = nil end end
      for k, t in pairs(self.refresh) do if t.uid == u.id then self.refresh[k] = nil end end
      self.terminated = self.terminated or {}
      self.terminated[u.id] = (self.terminated[u.id] or 0) + 1
      self:add_event("USER_SESSIONS_TERMINATED", req.actor, u)
    end
  end
  if n == 0 then return self:err(400, "bad_request", "No valid users were given") end
  return 202, { message = "Request is successful, please check the admin events for the status of the job" }
end

function Box:h_groups(req)
  return self:paged(req, self.state.groups, function(g) return narrow(self:group_json(g), { "type", "id", "name", "group_type" }, req.query.fields) end)
end

function Box:h_group_memberships(req)
  local list = {}
  for _, m in ipairs(self.state.memberships) do if m.group == req.params.id then list[#list + 1] = m end end
  local found = false
  for _, g in ipairs(self.state.groups) do if g.id == req.params.id then found = true end end
  if not found then return self:not_found("group") end
  return self:paged(req, list, function(m) return self:membership_json(m) end)
end

function Box:h_user_memberships(req)
  local list = {}
  for _, m in ipairs(self.state.memberships) do if m.user == req.params.id then list[#list + 1] = m end end
  return self:paged(req, list, function(m) return self:membership_json(m) end)
end

function Box:h_membership_delete(req)
  for i, m in ipairs(self.state.memberships) do
    if m.id == req.params.id then
      table.remove(self.state.memberships, i)
      self:add_event("GROUP_REMOVE_USER", req.actor, self.state.by_id[m.user])
      return 204, ""
    end
  end
  return self:not_found("group_membership")
end

---------------------------------------------------------------------------------------------------
-- Events
---------------------------------------------------------------------------------------------------
function Box:h_events(req)
  local q = req.query
  local stype = q.stream_type or "all"
  if stype ~= "admin_logs" and stype ~= "admin_logs_streaming" then
    -- user streams are not emulated: an empty chunk at the current position
    return 200, { chunk_size = 0, next_stream_position = tostring(POS_BASE + #self.state.events), entries = json().array({}) }
  end
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  local limit = T.intparam(q.limit, 100, 1, 500)
  if not limit then return self:err(400, "invalid_parameter", "Invalid value for 'limit'") end
  local list = self.state.events
  local pos = 0
  local sp = q.stream_position
  if sp == "now" then
    return 200, { chunk_size = 0, next_stream_position = tostring(POS_BASE + #list), entries = json().array({}) }
  elseif sp and sp ~= "" and sp ~= "0" then
    local n = math.tointeger(tonumber(sp))
    if not n or n < POS_BASE or n > POS_BASE + #list then return self:err(400, "invalid_parameter", "Invalid value for 'stream_position'") end
    pos = n - POS_BASE
  end
  local after, before
  if stype == "admin_logs" then
    if q.created_after and q.created_after ~= "" then after = T.parse_iso(q.created_after)
      if not after then return self:err(400, "invalid_parameter", "Invalid value for 'created_after'") end end
    if q.created_before and q.created_before ~= "" then before = T.parse_iso(q.created_before)
      if not before then return self:err(400, "invalid_parameter", "Invalid value for 'created_before'") end end
  else
    after = self:now_ms() - 14 * 86400000       -- streaming: the last two weeks
  end
  local types
  if q.event_type and q.event_type ~= "" then
    types = {}
    for t in q.event_type:gmatch("[^,%s]+") do types[t] = true end
  end
  local out = {}
  local i = pos
  while i < #list and #out < limit do
    i = i + 1
    local e = list[i]
    if before and e.ms >= before then i = #list; break end
    if (not after or e.ms >= after) and (not types or types[e.ev.event_type]) then out[#out + 1] = e.ev end
  end
  return 200, { chunk_size = #out, next_stream_position = tostring(POS_BASE + i), entries = json().array(out) }
end

---------------------------------------------------------------------------------------------------
-- Folders, files, collaborations, trash
---------------------------------------------------------------------------------------------------
function Box:item(id, ty)
  local it = self.state.items[id or ""]
  if it and (not ty or it.type == ty) then return it end
end

function Box:live(id, ty)
  local it = self:item(id, ty)
  if it and not self:in_trash(it) then return it end
end

function Box:touch(it, by)
  it.seq = it.seq + 1
  it.modified = self:now_ms()
  it.modified_by = by and by.id or it.modified_by
end

function Box:h_folder_items(req)
  local f = self:live(req.params.id, "folder")
  if not f then return self:not_found("folder") end
  return self:paged(req, self:children(f.id), function(it) return self:render_item(it, req.query.fields, true) end)
end

function Box:h_get_item(req, ty)
  local it = self:live(req.params.id, ty)
  if not it then
    local t = self:item(req.params.id, ty)
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

function Box:name_taken(parent, name, except)
  for _, c in ipairs(self:children(parent)) do
    if c.name:lower() == name:lower() and c.id ~= except then return c end
  end
end

function Box:conflict(c)
  return self:err(409, "item_name_in_use", "Item with the same name already exists",
    { conflicts = json().array({ self:item_mini(c) }) })
end

-- PUT /files/{id}, PUT /folders/{id}: rename, move (parent.id), shared_link (null removes)
function Box:h_put_item(req, ty)
  local it = self:live(req.params.id, ty)
  if not it then return self:not_found(ty) end
  local b = body_of(req)
  if not b then return self:err(400, "bad_request", "Invalid JSON body") end
  local im = req.headers["if-match"]
  if im and im ~= tostring(it.seq) then return self:err(412, "precondition_failed", "The resource has been modified. Please retrieve the resource again and retry") end
  local name = type(b.name) == "string" and b.name or it.name
  local parent = it.parent
  if type(b.parent) == "table" and b.parent.id then
    local p = self:live(tostring(b.parent.id), "folder")
    if not p then return self:not_found("parent") end
    local q = p
    while q do if q.id == it.id then return self:err(400, "bad_request", "Cannot move a folder into itself") end; q = q.parent and self.state.items[q.parent] end
    parent = p.id
  end
  if name ~= it.name or parent ~= it.parent then
    local c = self:name_taken(parent, name, it.id)
    if c then return self:conflict(c) end
  end
  local moved = parent ~= it.parent
  it.name, it.parent = name, parent
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
  local it = self:live(req.params.id, ty)
  if not it or it.id == "0" then return self:not_found(ty) end
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
  local it = self:item(req.params.id, ty)
  if not it or not it.trashed_at then return self:err(404, "not_trashed", "Item is not trashed") end
  if req.method == "GET" then return 200, self:render_item(it, req.query.fields) end
  -- purge
  self.state.items[it.id] = nil
  for i, id in ipairs(self.state.order) do if id == it.id then table.remove(self.state.order, i); break end end
  self:add_event("DELETE", req.actor, it, { details = { purged = true } })
  return 204, ""
end

function Box:h_restore(req, ty)
  local it = self:item(req.params.id, ty)
  if not it or not it.trashed_at then return self:err(405, "method_not_allowed", "Method Not Allowed") end
  local b = body_of(req) or {}
  local parent = it.parent
  if type(b.parent) == "table" and b.parent.id then parent = tostring(b.parent.id) end
  local p = self:live(parent, "folder")
  if not p then return self:err(403, "access_denied_insufficient_permissions", "The parent folder is trashed or gone; give parent.id") end
  local name = type(b.name) == "string" and b.name or it.name
  local c = self:name_taken(parent, name, it.id)
  if c then return self:conflict(c) end
  it.trashed_at, it.parent, it.name = nil, parent, name
  self:touch(it, req.actor)
  self:add_event("UNDELETE", req.actor, it)
  self:notify((ty == "file" and "FILE" or "FOLDER") .. ".RESTORED", it, req.actor)
  return 201, self:render_item(it, req.query.fields)
end

function Box:h_trash_list(req)
  local list = {}
  for _, id in ipairs(self.state.order) do
    local it = self.state.items[id]
    if it.trashed_at and not self:in_trash(self.state.items[it.parent]) then list[#list + 1] = it end
  end
  return self:paged(req, list, function(it) return self:render_item(it, req.query.fields, true) end)
end

function Box:h_item_collabs(req, ty)
  local it = self:live(req.params.id, ty)
  if not it then return self:not_found(ty) end
  local list = self:collabs_of(it.id)
  -- marker pagination only (§6)
  req.query.usemarker = "true"
  return self:paged(req, list, function(c) return self:collab_json(c) end)
end

function Box:h_collab(req)
  for i, c in ipairs(self.state.collabs) do
    if c.id == req.params.id then
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
  local it = self:live(tostring(b.item.id), b.item.type)
  if not it then return self:not_found("item") end
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
  local p = self:live(tostring(b.parent.id), "folder")
  if not p then return self:not_found("parent") end
  local c = self:name_taken(p.id, b.name)
  if c then return self:conflict(c) end
  local f = self:add_item{ type = "folder", name = b.name, parent = p.id, owner = req.actor.id, created = self:now_ms() }
  self:add_event("CREATE", req.actor, f)
  self:notify("FOLDER.CREATED", f, req.actor)
  return 201, self:render_item(f, req.query.fields)
end

-- GET /files/{id}/content: 302 to a short-lived download URL (served by this server)
function Box:download_sig(id) return crypto().b64url(crypto().hmac_sha256(self.client_secret, "dl:" .. id)):sub(1, 22) end
function Box:h_download(req)
  local it = self:live(req.params.id, "file")
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
  for _, k in ipairs(KINDS) do if data:find(M.SENSITIVE[k], 1, true) then it.sensitive[#it.sensitive + 1] = k end end
end

-- POST upload/files/content (new file), POST upload/files/{id}/content (new version)
function Box:h_upload(req)
  local attrs, file, ebody = self:upload_parts(req)
  if not attrs then return file, ebody end
  local it
  if req.params.id then
    it = self:live(req.params.id, "file")
    if not it then return self:not_found("file") end
    local im = req.headers["if-match"]
    if im and im ~= tostring(it.seq) then return self:err(412, "precondition_failed", "The resource has been modified. Please retrieve the resource again and retry") end
    if type(attrs.name) == "string" and attrs.name ~= it.name then
      local c = self:name_taken(it.parent, attrs.name, it.id)
      if c then return self:conflict(c) end
      it.name = attrs.name
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
    local p = self:live(tostring(attrs.parent.id), "folder")
    if not p then return self:not_found("parent") end
    local c = self:name_taken(p.id, attrs.name)
    if c then return self:conflict(c) end
    it = self:add_item{ type = "file", name = attrs.name, parent = p.id, owner = req.actor.id, created = self:now_ms(), content = "" }
    self:set_content(it, file.data)
    it.versions = 1
    self:add_event("UPLOAD", req.actor, it)
  end
  self:notify("FILE.UPLOADED", it, req.actor)
  return req.params.id and 200 or 201, { total_count = 1, entries = json().array({ self:item_full(it) }) }
end

---------------------------------------------------------------------------------------------------
-- Webhooks V2
---------------------------------------------------------------------------------------------------
function Box:webhook_json(w)
  return { id = w.id, type = "webhook", target = { id = w.target.id, type = w.target.type }, created_by = self:user_mini(self.admin),
           created_at = btime(w.created), address = w.address, triggers = json().array(T.deep(w.triggers)) }
end

function Box:create_webhook(spec)
  local w = { id = self:new_id("webhook"), target = spec.target, address = spec.address, triggers = spec.triggers, created = self:now_ms() }
  self.state.webhooks[#self.state.webhooks + 1] = w
  return w
end

-- tests: a webhook on a folder (default root's first folder is not allowed to be "0"; any folder works here)
function Box:webhook_target(address, target_id, triggers)
  return self:create_webhook{ address = address, target = { id = target_id, type = "folder" },
    triggers = triggers or { "FILE.UPLOADED", "FILE.TRASHED", "FILE.MOVED", "FILE.RESTORED", "SHARED_LINK.CREATED",
                             "SHARED_LINK.DELETED", "SHARED_LINK.UPDATED", "COLLABORATION.CREATED", "COLLABORATION.REMOVED" } }
end

-- signature = base64(HMAC-SHA256(key, body .. timestamp)) with each key; both headers always sent (§10)
function M.sign(key, body, timestamp)
  local cr = crypto()
  return cr.b64(cr.hmac_sha256(key, body .. timestamp))
end

function Box:send_webhook(w, trigger, it, actor, extra)
  self.nseq = self.nseq + 1
  local payload = { type = "webhook_event", id = T.uuid(self.seed, "whe", self.nseq), created_at = btime(self:now_ms()), trigger = trigger,
                    webhook = { id = w.id, type = "webhook" }, created_by = self:user_mini(actor), source = self:item_full(it),
                    additional_info = extra or json().array({}) }
  local body = json().encode(payload)
  local ts = btime(self:wall_s() * 1000)
  local headers = { ["Content-Type"] = "application/json; charset=UTF-8", ["User-Agent"] = "Box-WH-Client/0.1",
                    ["BOX-DELIVERY-ID"] = T.uuid(self.seed, "whd", self.nseq), ["BOX-DELIVERY-TIMESTAMP"] = ts,
                    ["BOX-SIGNATURE-PRIMARY"] = M.sign(self.keys.primary, body, ts),
                    ["BOX-SIGNATURE-SECONDARY"] = M.sign(self.keys.secondary, body, ts),
                    ["BOX-SIGNATURE-VERSION"] = "1", ["BOX-SIGNATURE-ALGORITHM"] = "HmacSHA256" }
  return self:deliver{ url = w.address, headers = headers, body = body, event = trigger, retries = 0, hook = w.id }
end

function Box:h_webhooks(req)
  if req.method == "GET" then
    req.query.usemarker = "true"
    return self:paged(req, self.state.webhooks, function(w) return { id = w.id, type = "webhook", target = { id = w.target.id, type = w.target.type } } end)
  end
  local b = body_of(req)
  if not b or type(b.target) ~= "table" or type(b.address) ~= "string" or type(b.triggers) ~= "table" then
    return self:err(400, "bad_request", "target, address and triggers are required")
  end
  if tostring(b.target.id) == "0" then return self:err(400, "bad_request", "Webhooks are not allowed on the root folder") end
  if not self:live(tostring(b.target.id), b.target.type) then return self:not_found("target") end
  for _, w in ipairs(self.state.webhooks) do
    if w.target.id == tostring(b.target.id) then return self:err(409, "conflict", "Webhook for this target already exists") end
  end
  local w = self:create_webhook{ target = { id = tostring(b.target.id), type = b.target.type }, address = b.address, triggers = b.triggers }
  return 201, self:webhook_json(w)
end

function Box:h_webhook(req)
  for i, w in ipairs(self.state.webhooks) do
    if w.id == req.params.id then
      if req.method == "DELETE" then table.remove(self.state.webhooks, i); return 204, "" end
      return 200, self:webhook_json(w)
    end
  end
  return self:not_found("webhook")
end

---------------------------------------------------------------------------------------------------
-- Mount
---------------------------------------------------------------------------------------------------
function Box:mount(srv, prefix)
  local function kind(fn, ty) return function(self, req) return fn(self, req, ty) end end
  local api = {
    { "GET", "/users", Box.h_users },
    { "POST", "/users/terminate_sessions", Box.h_terminate },
    { "GET", "/users/:id", Box.h_user },
    { "PUT", "/users/:id", Box.h_user },
    { "DELETE", "/users/:id", Box.h_user },
    { "GET", "/users/:id/memberships", Box.h_user_memberships },
    { "GET", "/groups", Box.h_groups },
    { "GET", "/groups/:id/memberships", Box.h_group_memberships },
    { "DELETE", "/group_memberships/:id", Box.h_membership_delete },
    { "GET", "/events", Box.h_events },
    { "GET", "/folders/trash/items", Box.h_trash_list },
    { "POST", "/folders", Box.h_post_folder },
    { "GET", "/folders/:id/items", Box.h_folder_items },
    { "GET", "/folders/:id/collaborations", kind(Box.h_item_collabs, "folder") },
    { "GET", "/folders/:id/trash", kind(Box.h_trash_item, "folder") },
    { "DELETE", "/folders/:id/trash", kind(Box.h_trash_item, "folder") },
    { "GET", "/folders/:id", kind(Box.h_get_item, "folder") },
    { "PUT", "/folders/:id", kind(Box.h_put_item, "folder") },
    { "POST", "/folders/:id", kind(Box.h_restore, "folder") },
    { "DELETE", "/folders/:id", kind(Box.h_delete_item, "folder") },
    { "GET", "/files/:id/content", Box.h_download },
    { "GET", "/files/:id/collaborations", kind(Box.h_item_collabs, "file") },
    { "GET", "/files/:id/trash", kind(Box.h_trash_item, "file") },
    { "DELETE", "/files/:id/trash", kind(Box.h_trash_item, "file") },
    { "GET", "/files/:id", kind(Box.h_get_item, "file") },
    { "PUT", "/files/:id", kind(Box.h_put_item, "file") },
    { "POST", "/files/:id", kind(Box.h_restore, "file") },
    { "DELETE", "/files/:id", kind(Box.h_delete_item, "file") },
    { "POST", "/collaborations", Box.h_post_collab },
    { "GET", "/collaborations/:id", Box.h_collab },
    { "PUT", "/collaborations/:id", Box.h_collab },
    { "DELETE", "/collaborations/:id", Box.h_collab },
    { "GET", "/webhooks", Box.h_webhooks },
    { "POST", "/webhooks", Box.h_webhooks },
    { "GET", "/webhooks/:id", Box.h_webhook },
    { "DELETE", "/webhooks/:id", Box.h_webhook },
  }
  prefix = (prefix or ""):gsub("/$", "")
  local routes = {}
  for _, r in ipairs(api) do routes[#routes + 1] = { r[1], "/2.0" .. r[2], r[3] } end
  routes[#routes + 1] = { "POST", "/api/2.0/files/content", Box.h_upload, { upload = true } }
  routes[#routes + 1] = { "POST", "/api/2.0/files/:id/content", Box.h_upload, { upload = true } }
  routes[#routes + 1] = { "POST", "/oauth2/token", Box.h_token, { noauth = true } }
  routes[#routes + 1] = { "POST", "/oauth2/revoke", Box.h_revoke, { noauth = true } }
  routes[#routes + 1] = { "GET", "/api/oauth2/authorize", Box.h_authorize, { public = true } }
  routes[#routes + 1] = { "GET", "/dl/:id/:sig", Box.h_dl, { public = true } }
  routes[#routes + 1] = { "*", "/2.0/*", function(t) return t:err(404, "not_found", "Not Found") end }
  self:mount_routes(srv, prefix, routes)
  self.root_url = self.base_url                       -- mount_routes: server url .. prefix
  self.api_url = self.root_url .. "/2.0"
  self.upload_url = self.root_url .. "/api/2.0"
  return self
end

return M
