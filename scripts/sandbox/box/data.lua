-- sandbox/box/data.lua — the seeded enterprise: users, externals, groups, folders and files with sensitive
-- content (cards, SSNs, AWS keys, a private key; one PDF), links, collaborations and a month of events.
local T = require "sandbox.tenant"
local C = require "sandbox.box.common"
local Box = C.Box
local M = {}

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
M.KINDS = KINDS

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

-- SHA-1 of content (Box's `sha1` field)
local function sha1_hex(msg) return crypto.hex(crypto.sha1(msg)) end
M.sha1_hex = sha1_hex

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
               collabs = {}, events = {}, event_texts = { sealed = {}, open = {} }, webhooks = {}, named = {} }
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
    -- what a folder holds is its owner's (Box: content belongs to the owner of the folder it is in)
    local drawn = st.users[r:int(1, #st.users)].id
    local f = self:add_item{ type = "folder", name = name, parent = parent, owner = parent == "0" and drawn or st.items[parent].owner,
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
    local _ = r:int(1, #st.users)          -- (the draw of an owner, kept so the seed's tenant stays the same)
    local f = self:add_item{ type = "file", name = name, parent = folder.id, owner = folder.owner,
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
  -- the app's service account (client credentials with box_subject_type=enterprise): a user of its own with
  -- its own, empty, root; not a managed user (GET /users does not list it); it sees other users' content only
  -- through As-User or collaborations
  self.service = { id = self:new_id("user"), name = "cachost", service = true, role = "user", status = "active",
    login = ("AutomationUser_%d_%s@boxdevedition.com"):format(T.below(T.hash(self.seed, "sa"), 900000) + 100000,
                                                                T.b62(10, self.seed, "sal")), created = now - 86400000 }
  st.by_id[self.service.id] = self.service
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
  self:rename(it, it.name)
  return it
end

-- Every name an item was given: state.named[lower(name)] = {id = true} (a superset: name_taken checks the
-- current name), so that a name is looked up without reading every item.
function Box:rename(it, name)
  it.name = name
  local key = name:lower()
  local set = self.state.named[key]
  if not set then set = {}; self.state.named[key] = set end
  set[it.id] = true
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

return M
