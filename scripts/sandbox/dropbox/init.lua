-- sandbox/dropbox/init.lua — a Dropbox Business team emulator following /work/shared/api/dropbox.md: every
-- route a POST under /2/ (RPC: JSON argument and answer; content: the argument in Dropbox-API-Arg), OAuth 2
-- (authorization code with PKCE, offline refresh tokens, scopes per route), a team token acting as a member
-- through Dropbox-API-Select-User or as an admin through Dropbox-API-Select-Admin (team_admin / whole_team
-- routes), namespaces chosen with Dropbox-API-Path-Root, cursors and /continue routes, team_log events,
-- shared links and shared-folder members, linked apps and device sessions, webhooks signed with the app
-- secret, Dropbox's error bodies (error_summary, .tag) and 429 with Retry-After.
--
--   local t = require("sandbox.dropbox").new { seed = 1, users = 20, shared_folders = 3, files = 30, events = 200 }
--   t:mount(srv)   -- one server plays api.dropboxapi.com, content.dropboxapi.com and www.dropbox.com
--
-- One file per surface: init (class, seeded team, ground truth, mount), auth (OAuth, Select-*, Path-Root,
-- errors, faults), team (members, groups, namespaces, team_log, devices, linked apps), files (list_folder,
-- metadata, content, writes, webhooks), sharing (shared links, shared-folder members).
local T = require "sandbox.tenant"
local D = require "sandbox.dropbox.common"
local M = { D = D }

-- test values the DLP scan must find (as the other sandboxes seed them)
M.SENSITIVE = {
  ssn = "Employee SSN: 536-22-1234",
  card = "Card on file: 4111 1111 1111 1111, backup 5555555555554444 (exp 12/29).",
  aws = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  private_key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH\n-----END RSA PRIVATE KEY-----",
}
-- the first seeded files: an SSN linked publicly, a card number in a folder shared outside the team, an AWS
-- key linked team-only, a private key nobody else sees
M.KINDS = { "ssn", "card", "aws", "private_key" }

-- Admin roles (§3): role ids as the team's get_available_team_member_roles lists them.
M.ROLES = {
  team_admin = { role_id = "pid_dbtmr:2345", name = "Team admin", description = "User can do most user provisioning, de-provisioning and management." },
  user_management_admin = { role_id = "pid_dbtmr:3456", name = "User management admin", description = "Add, remove, and manage member accounts." },
  support_admin = { role_id = "pid_dbtmr:4567", name = "Support admin", description = "Help members with their accounts." },
}

local FIRST = { "Ada", "Bruno", "Chiara", "Dev", "Elif", "Femi", "Greta", "Hugo", "Isla", "Jun", "Kemal", "Lena",
  "Mateo", "Nadia", "Otto", "Pia", "Rafael", "Sana", "Tomas", "Uma" }
local LAST = { "Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Reyes", "Schmidt", "Kaur", "Dubois", "Costa" }
local WORDS = { "plan", "budget", "notes", "draft", "review", "invoice", "roadmap", "minutes", "report", "contract" }
local FOLDERS = { "Projects", "Finance", "Clients", "Archive", "Design" }
local SHARED = { "Board Pack", "Partner Deals", "Launch 2025", "Vendors", "Audit" }
local TEAM_FOLDERS = { "Company Handbook", "Sales" }
local EXTERNAL = { "auditor@kpmg.example", "jo@partner.example.org", "sam@gmail.com" }
local APPS = { { "Zapier", "Zapier Inc." }, { "Smartsheet", "Smartsheet" }, { "Notion", "Notion Labs" }, { "HelloSign", "Dropbox" } }

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, D)
  T.Base.init(self, opts)
  self.team_id = "dbtid:" .. T.b62(32, self.seed, "team")
  self.team_name = opts.team_name or "Acme"
  self.domain = opts.domain or "acme.example.com"
  self.client_id = opts.client_id or T.b62(15, self.seed, "app_key"):lower()
  self.client_secret = opts.client_secret or T.b62(15, self.seed, "app_secret"):lower()
  -- the scopes the app was given in the App Console; a token gets those it asks for among them
  self.app_scopes = {}
  for _, s in ipairs(opts.scopes or M.SCOPES) do self.app_scopes[s] = true end
  self.token_ttl = opts.token_ttl or 14400
  self.nusers = opts.users or 20
  self.nshared = opts.shared_folders or 3
  self.nfiles = opts.files or 30
  self.nevents = opts.events or 200
  self.days = opts.days or 7
  self.tokens, self.refresh, self.codes = {}, {}, {}
  self.webhooks = {}          -- URLs notified of file changes (the App Console's webhook URI)
  self.nseq, self.seq = 0, 0
  self.listed = {}            -- list_folder calls by namespace id (tests)
  self:generate()
  return self
end

function D:next_seq() self.seq = self.seq + 1; return self.seq end
function D:new_id(kind)
  self.nseq = self.nseq + 1
  return T.b62(22, self.seed, kind, self.nseq)
end

---------------------------------------------------------------------------------------------------
-- The seeded team (pure in the seed)
---------------------------------------------------------------------------------------------------
function D:add_namespace(ns)
  self.nsn = (self.nsn or 1000) + 1 + T.below(T.hash(self.seed, "ns", self.nsn or 0), 97)
  ns.id = tostring(self.nsn)
  ns.members = ns.members or {}
  ns.root_id = "id:" .. self:new_id("root")
  self.namespaces[#self.namespaces + 1] = ns
  self.ns_by_id[ns.id] = ns
  return ns
end

-- An entry (file or folder) of a namespace at `path` (relative to the namespace root, as displayed).
function D:add_entry(ns, path, spec)
  local e = spec or {}
  e.id = e.id or ("id:" .. self:new_id("entry"))
  e.ns, e.path = ns.id, path
  e.name = path:match("([^/]+)$")
  e.folder = e.folder or false
  e.modified = e.modified or self:now_ms()
  e.seq = self:next_seq()
  if not e.folder then self:set_content(e, e.content or "") end
  self.entries[#self.entries + 1] = e
  self.by_entry[e.id] = e
  return e
end

function D:set_content(e, content)
  local cr = D.crypto()
  e.content, e.size = content, #content
  e.rev = T.hexs(9, self.seed, "rev", e.id, self:next_seq()) .. "0000000" .. T.hexs(3, self.seed, "r2", e.id)
  -- content_hash: SHA-256 of the concatenated SHA-256 of each 4 MiB block
  local blocks = {}
  for i = 1, math.max(1, #content), 4 * 1024 * 1024 do blocks[#blocks + 1] = cr.sha256(content:sub(i, i + 4 * 1024 * 1024 - 1)) end
  e.hash = cr.hex(cr.sha256(table.concat(blocks)))
end

function D:add_member(spec)
  local m = spec
  m.id = "dbmid:" .. T.b62(32, self.seed, "mid", #self.members)
  m.account_id = "dbid:" .. T.b62(40, self.seed, "acct", #self.members)
  m.roles = m.roles or {}
  m.groups = {}
  self.members[#self.members + 1] = m
  self.by_mid[m.id] = m
  local home = self:add_namespace { type = "team_member_folder", name = m.given .. " " .. m.surname, owner = m.id }
  home.members[1] = { mid = m.id, access = "owner" }
  m.ns = home.id
  m.root_ns = home.id
  return m
end

function D:generate()
  local r = T.rng(self.seed, "dropbox")
  local now = self.t0_ms
  self.members, self.by_mid, self.groups = {}, {}, {}
  self.namespaces, self.ns_by_id, self.entries, self.by_entry, self.tombs = {}, {}, {}, {}, {}
  self.links, self.apps, self.sessions, self.events, self.copy_refs = {}, {}, {}, {}, {}
  for i = 1, self.nusers do
    local given, surname = FIRST[(i - 1) % #FIRST + 1], LAST[T.below(T.hash(self.seed, "ln", i), #LAST) + 1]
    local status = "active"
    if i > 3 then
      local x = r:float()
      status = x < 0.08 and "suspended" or x < 0.14 and "invited" or x < 0.18 and "removed" or "active"
    end
    local roles = {}
    if i == 1 then roles = { M.ROLES.team_admin }
    elseif i == 2 then roles = { M.ROLES.user_management_admin }
    elseif i == 3 then roles = { M.ROLES.support_admin } end
    self:add_member { given = given, surname = surname, status = status, roles = roles,
      email = ("%s.%s%s@%s"):format(given, surname, i > #FIRST and tostring(i) or "", self.domain):lower(),
      joined = now - r:int(30, 900) * 86400000, external_id = i % 3 == 0 and ("EMP" .. (1000 + i)) or nil }
  end
  self.admin = self.members[1]
  local active = {}
  for _, m in ipairs(self.members) do if m.status == "active" then active[#active + 1] = m end end
  -- groups
  for i = 1, math.max(2, self.nusers // 6) do
    local g = { id = "g:" .. T.hexs(32, self.seed, "group", i), name = ({ "Engineering", "Finance", "Sales", "Legal", "Support" })[(i - 1) % 5 + 1] .. (i > 5 and (" " .. i) or ""),
                mtype = i == 1 and "company_managed" or "user_managed", members = {} }
    for k, m in ipairs(self.members) do
      if m.status ~= "removed" and (k % (i + 1) == 0 or r:chance(0.15)) then
        g.members[#g.members + 1] = { mid = m.id, access = #g.members == 0 and "owner" or "member" }
        m.groups[#m.groups + 1] = g.id
      end
    end
    self.groups[#self.groups + 1] = g
  end
  -- each active member's own folders
  for _, m in ipairs(active) do
    local ns = self.ns_by_id[m.ns]
    for k = 1, r:int(1, 2) do self:add_entry(ns, "/" .. FOLDERS[(k + #m.email) % #FOLDERS + 1], { folder = true, modified = now - r:int(5, 300) * 86400000 }) end
  end
  -- shared folders: owned by an active member, shared with other members and, for the first, an outsider
  for i = 1, self.nshared do
    local owner = active[(i * 3) % #active + 1]
    local ns = self:add_namespace { type = "shared_folder", name = SHARED[(i - 1) % #SHARED + 1] .. (i > #SHARED and (" " .. i) or ""), owner = owner.id }
    ns.members[1] = { mid = owner.id, access = "owner" }
    for k = 1, 2 do
      local m = active[(i * 3 + k * 2) % #active + 1]
      if m ~= owner then ns.members[#ns.members + 1] = { mid = m.id, access = k == 1 and "editor" or "viewer" } end
    end
    if i == 1 then ns.members[#ns.members + 1] = { email = EXTERNAL[1], access = "editor" } end
    self:add_entry(ns, "/Notes", { folder = true, modified = now - r:int(5, 300) * 86400000 })
  end
  -- team folders (the team's own space): every active member may read them
  for i, name in ipairs(TEAM_FOLDERS) do
    local ns = self:add_namespace { type = "team_folder", name = name, owner = self.admin.id }
    ns.members[1] = { mid = self.admin.id, access = "owner" }
    if i == 1 then self:add_entry(ns, "/Policies", { folder = true }) end
  end
  -- files: seeded sensitive content, links of every visibility
  local homes, shares = {}, {}
  for _, m in ipairs(active) do homes[#homes + 1] = self.ns_by_id[m.ns] end
  for _, ns in ipairs(self.namespaces) do if ns.type ~= "team_member_folder" then shares[#shares + 1] = ns end end
  for i = 1, self.nfiles do
    local ns
    if i == 2 then ns = shares[1]
    elseif i > 4 and i % 4 == 0 and #shares > 0 then ns = shares[r:int(1, #shares)]
    else ns = homes[r:int(1, #homes)] end
    local dirs = { "" }
    for _, e in ipairs(self.entries) do if e.ns == ns.id and e.folder then dirs[#dirs + 1] = e.path end end
    local dir = dirs[r:int(1, #dirs)]
    local ext = (i <= 4 or r:chance(0.7)) and "txt" or r:pick({ "docx", "png", "xlsx" })
    local words = {}
    for w = 1, r:int(15, 60) do words[w] = WORDS[r:int(1, #WORDS)] end
    local content = table.concat(words, " ") .. "\n"
    local sensitive = {}
    if ext == "txt" and (i <= 4 or r:chance(0.2)) then
      local kind = i <= 4 and M.KINDS[i] or M.KINDS[r:int(1, #M.KINDS)]
      sensitive[1] = kind
      content = content .. M.SENSITIVE[kind] .. "\n"
    elseif ext ~= "txt" then
      content = "%" .. ext:upper() .. "-sandbox\0\1" .. content
    end
    local name = ("%s-%s-%d.%s"):format(WORDS[r:int(1, #WORDS)], WORDS[r:int(1, #WORDS)], i, ext)
    local e = self:add_entry(ns, dir .. "/" .. name, { content = content, sensitive = sensitive, modified = now - r:int(1, 200) * 86400000 })
    local creator = ns.members[1].mid
    if i == 1 then self:add_link(e, creator, "public")
    elseif i == 3 then self:add_link(e, creator, "team_only")
    elseif i > 4 and r:chance(0.15) then self:add_link(e, creator, r:pick({ "public", "team_only", "password" }), r:chance(0.3) and (now + 30 * 86400000) or nil) end
  end
  -- a link on a shared folder's subfolder (its content is reachable through it)
  local sub
  for _, e in ipairs(self.entries) do if not sub and e.folder and self.ns_by_id[e.ns].type == "shared_folder" then sub = e end end
  if sub then self:add_link(sub, self.ns_by_id[sub.ns].members[1].mid, "password") end
  -- linked apps and device sessions
  for k, m in ipairs(active) do
    for j = 1, (k % 3) do
      local a = APPS[(k + j) % #APPS + 1]
      self.apps[#self.apps + 1] = { mid = m.id, app_id = "dbaid:" .. T.b62(30, self.seed, "app", a[1]), app_name = a[1], publisher = a[2],
        publisher_url = "https://" .. a[1]:lower() .. ".example.com", linked = T.iso_s((now - r:int(1, 300) * 86400000) // 1000), is_app_folder = j == 2 }
    end
    self.sessions[#self.sessions + 1] = { mid = m.id, kind = "web_session", session_id = "dbwsid:" .. T.b62(30, self.seed, "ws", k),
      ip = ("198.51.100.%d"):format(k), country = "US", created = now - r:int(1, 30) * 86400000, user_agent = "Mozilla/5.0", os = "Mac OS X", browser = "Chrome" }
    if k % 2 == 0 then
      self.sessions[#self.sessions + 1] = { mid = m.id, kind = "desktop_client", session_id = "dbdsid:" .. T.b62(30, self.seed, "ds", k),
        ip = ("198.51.100.%d"):format(k), country = "US", created = now - r:int(30, 300) * 86400000, host_name = "laptop-" .. k,
        client_type = "macos", client_version = "190.4.6383", platform = "Mac OS X 14.2", is_delete_on_unlink_supported = true }
    end
  end
  -- a week of team_log events, chronological
  self:generate_events(r, active)
end

function D:add_link(e, creator, visibility, expires)
  local tok = T.b62(15, self.seed, "link", e.id, #self.links):lower()
  local l = { url = ("https://www.dropbox.com/%s/%s/%s?dl=0"):format(e.folder and "sh" or "s", tok, e.name:gsub(" ", "%%20")),
              entry = e.id, creator = creator, visibility = visibility, expires = expires }
  self.links[#self.links + 1] = l
  return l
end

---------------------------------------------------------------------------------------------------
-- Ground truth (tests)
---------------------------------------------------------------------------------------------------
function D:member(id) return self.by_mid[id] end
function D:entry(id) return self.by_entry[id] end
function D:member_by_email(email)
  for _, m in ipairs(self.members) do if m.email == email then return m end end
end
function D:live_entries()
  local out = {}
  for _, e in ipairs(self.entries) do if not e.deleted then out[#out + 1] = e end end
  return out
end
function D:links_of(entry_id)
  local out = {}
  for _, l in ipairs(self.links) do if l.entry == entry_id and not l.revoked then out[#out + 1] = l end end
  return out
end

-- ids of live files seeded with a kind of sensitive content
function D:sensitive_files(kind)
  local out = {}
  for _, e in ipairs(self.entries) do
    if not e.deleted and not e.folder then
      for _, k in ipairs(e.sensitive or {}) do if k == kind or kind == nil then out[#out + 1] = e.id; break end end
    end
  end
  return out
end

-- count(what): users (every member, removed ones too), active_users, suspended_users, invited_users,
-- removed_users, admins (members with a role), groups, memberships, files, folders (live entries),
-- shared_folders (shared and team folder namespaces), links, apps, events
function D:count(what)
  local n = 0
  if what == "users" then return #self.members
  elseif what:match("_users$") then
    for _, m in ipairs(self.members) do if m.status == what:match("^(%a+)_") then n = n + 1 end end
    return n
  elseif what == "admins" then
    for _, m in ipairs(self.members) do if #m.roles > 0 and m.status ~= "removed" then n = n + 1 end end
    return n
  elseif what == "groups" then return #self.groups
  elseif what == "memberships" then
    for _, g in ipairs(self.groups) do n = n + #g.members end
    return n
  elseif what == "files" or what == "folders" then
    for _, e in ipairs(self.entries) do if not e.deleted and (e.folder == (what == "folders")) then n = n + 1 end end
    return n
  elseif what == "shared_folders" then
    for _, ns in ipairs(self.namespaces) do if ns.type ~= "team_member_folder" then n = n + 1 end end
    return n
  elseif what == "links" then
    for _, l in ipairs(self.links) do if not l.revoked and not self.by_entry[l.entry].deleted then n = n + 1 end end
    return n
  elseif what == "apps" then return #self.apps
  elseif what == "events" then return #self.events
  end
  error("count: unknown " .. tostring(what))
end

-- The ids a complete sync keys rows by: members, groups, live entries and each shared or team folder as
-- "ns:<namespace id>" (events have no id of Dropbox's: not listed).
function D:truth()
  local t = { users = {}, groups = {}, files = {} }
  for _, m in ipairs(self.members) do t.users[#t.users + 1] = m.id end
  for _, g in ipairs(self.groups) do t.groups[#t.groups + 1] = g.id end
  for _, e in ipairs(self.entries) do if not e.deleted then t.files[#t.files + 1] = e.id end end
  for _, ns in ipairs(self.namespaces) do if ns.type ~= "team_member_folder" then t.files[#t.files + 1] = "ns:" .. ns.id end end
  return t
end

require "sandbox.dropbox.auth"
require "sandbox.dropbox.team"
local files = require "sandbox.dropbox.files"
require "sandbox.dropbox.sharing"
M.sign = files.sign
M.SCOPES = D.SCOPES

---------------------------------------------------------------------------------------------------
-- Mount: every route is a POST (§1); the hosts are one server here
---------------------------------------------------------------------------------------------------
function D:mount(srv, prefix)
  local routes = {}
  for name, r in pairs(D.ROUTES) do
    routes[#routes + 1] = { "POST", "/2/" .. name, function(t, req) return t:call(name, r, req) end, { route = name } }
  end
  table.sort(routes, function(a, b) return a[2] < b[2] end)
  routes[#routes + 1] = { "POST", "/oauth2/token", D.h_token, { noauth = true } }
  routes[#routes + 1] = { "GET", "/oauth2/authorize", D.h_authorize, { public = true } }
  routes[#routes + 1] = { "*", "/2/*", function(t, req)
    return 404, ('Unknown API function: "%s"'):format(req.path:gsub("^.-/2/", "")), { ["Content-Type"] = "text/plain; charset=utf-8" }
  end, { noauth = true } }
  self:mount_routes(srv, prefix, routes)
  return self
end

return M
