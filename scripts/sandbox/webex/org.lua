-- sandbox/webex/org.lua — the generated Webex organization, errors and paging shared by the API surfaces.
-- Reference: /work/shared/api/webex.md (webex/webex-openapi-specs, developer.webex.com).
--
-- Ids are Webex's: base64url (no padding) of "ciscospark://us/<TYPE>/<uuid>".  The org has people (one
-- of them the integration's user: a Full Administrator who is also the Compliance Officer), admin roles,
-- licences, groups, spaces (rooms) whose members include people of another org (external participants),
-- messages with files (some holding card numbers), admin audit, security audit (sign-ins) and compliance
-- events, and the authorizations people granted to integrations.
local T = require "sandbox.tenant"

local O = {}
local Webex = setmetatable({}, { __index = T.Base })
Webex.__index = Webex
Webex.default_rate_limit = 300       -- Webex publishes no numbers (§7); 429 with Retry-After past it
O.Webex = Webex

local function json() return T.host("json") end
local function crypto() return T.host("crypto") end
O.json, O.crypto = json, crypto

-- A Webex id: base64url of the cluster URI (what Webex's ids decode to).
function O.wid(kind, ...)
  return (crypto().b64url("ciscospark://us/" .. kind .. "/" .. T.uuid(...)))
end

local FIRST = { "Ada", "Ben", "Chloe", "Dev", "Elena", "Femi", "Grace", "Hiro", "Ines", "Jon", "Kira", "Luis",
  "Maya", "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara" }
local LAST = { "Andersen", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
  "Khan", "Lopez", "Moreau", "Novak", "Okafor", "Park", "Rossi", "Silva", "Tanaka", "Weber" }

-- Roles as Control Hub names them; the Compliance Officer is a role of its own (not an admin's).
O.ROLES = { { "full", "Full Administrator" }, { "user", "User Administrator" }, { "readonly", "Read-only Administrator" },
  { "compliance", "Compliance Officer" } }

O.CARD = "4111 1111 1111 1111"            -- passes Luhn
O.APPS = { { "Cisco Webex Scheduler", "Cwebexscheduler" }, { "Jira Cloud for Webex", "Cjiracloud" },
  { "Polls by Acme", "Cacmepolls" } }

function O.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Webex)
  T.Base.init(self, opts)
  local seed = self.seed
  self.org_name = opts.org_name or "Acme"
  self.domain = opts.domain or (self.org_name:lower():gsub("[^%w]", "") .. ".example.com")
  self.org_id = O.wid("ORGANIZATION", seed, "org")
  self.partner_org_id = O.wid("ORGANIZATION", seed, "partner")
  self.client_id = opts.client_id or ("C" .. T.hexs(63, seed, "client_id"))
  self.client_secret = opts.client_secret or T.hexs(64, seed, "client_secret")
  -- the scopes the integration was registered with (developer portal); a token gets those it asked for
  self.integration_scopes = {}
  for _, s in ipairs(opts.scopes or O.ALL_SCOPES) do self.integration_scopes[s] = true end
  self.token_ttl = opts.token_ttl or 1209599            -- 14 days
  self.refresh_ttl = opts.refresh_ttl or 7776000        -- 90 days
  self.tokens, self.refresh, self.codes = {}, {}, {}
  self.nseq, self.nerr = 0, 0
  self.webhooks = {}
  self.deleted_messages = {}
  self:generate(opts)
  return self
end

-- Every scope the routes check (auth.lua); an integration registered with all of them by default.
O.ALL_SCOPES = { "spark:kms", "spark:people_read", "spark-admin:people_read", "spark-admin:people_write",
  "spark-admin:roles_read", "spark-admin:licenses_read", "identity:groups_read", "audit:events_read",
  "spark-compliance:events_read", "spark-compliance:messages_read", "spark-compliance:messages_write",
  "spark-compliance:memberships_read", "spark-compliance:memberships_write", "spark-compliance:rooms_read",
  "identity:tokens_read", "identity:tokens_write" }

local DAY = 86400000

function Webex:generate(opts)
  local seed, rng = self.seed, T.rng(self.seed, "org")
  local now = self.t0_ms
  local days = opts.days or 7
  self.days = days
  self.roles, self.role_by = {}, {}
  for _, r in ipairs(O.ROLES) do
    local role = { id = O.wid("ROLE", seed, "role", r[1]), name = r[2], key = r[1] }
    self.roles[#self.roles + 1], self.role_by[r[1]] = role, role
  end
  self.licenses = {
    { id = O.wid("LICENSE", seed, "lic", "msg"), name = "Messaging", totalUnits = 1000 },
    { id = O.wid("LICENSE", seed, "lic", "mtg"), name = "Meeting - Webex Enterprise Edition", totalUnits = 500 },
  }
  local n = opts.users or 20
  self.people, self.by_id, self.by_email = {}, {}, {}
  for i = 1, n do
    local first, last = FIRST[(i - 1) % #FIRST + 1], LAST[(i * 7 - 1) % #LAST + 1]
    local email = ("%s.%s%s@%s"):format(first:lower(), last:lower(), i > #FIRST and tostring(i) or "", self.domain)
    local roles = {}
    if i == 1 then roles = { self.role_by.full.id, self.role_by.compliance.id }
    elseif i == 2 then roles = { self.role_by.user.id }
    elseif i == 3 then roles = { self.role_by.readonly.id } end
    local created = now - (400 - i) * DAY
    local p = {
      id = O.wid("PEOPLE", seed, "person", i), emails = { email }, displayName = first .. " " .. last,
      firstName = first, lastName = last, nickName = first, orgId = self.org_id, roles = roles,
      licenses = { self.licenses[1].id, i % 3 == 0 and self.licenses[2].id or nil },
      created = T.iso_ms(created), lastModified = T.iso_ms(created + DAY), timezone = "Europe/Paris",
      lastActivity = T.iso_ms(now - rng:int(1, 72) * 3600000),
      status = rng:pick { "active", "inactive", "meeting", "DoNotDisturb" },
      invitePending = (i % 11 == 0) and "true" or "false", loginEnabled = (i % 9 == 0) and "false" or "true",
      type = "person",
    }
    self.people[i], self.by_id[p.id], self.by_email[email] = p, p, p
  end
  self.officer = self.people[1]                       -- the integration's user
  -- people of a partner org: they only show up as members of our spaces (external participants)
  self.externals = {}
  for i = 1, math.max(2, n // 8) do
    self.externals[i] = { id = O.wid("PEOPLE", seed, "ext", i), email = ("guest%d@partner.example.net"):format(i),
      displayName = "Guest " .. i, orgId = self.partner_org_id }
  end
  -- groups and their members
  self.groups = {}
  for g = 1, opts.groups or 3 do
    local members = {}
    for i = g, n, g + 1 do members[#members + 1] = self.people[i] end
    self.groups[g] = { id = O.wid("SCIM_GROUP", seed, "group", g), displayName = ({ "Sales", "Engineering", "Support", "Finance", "Legal" })[(g - 1) % 5 + 1] .. (g > 5 and (" " .. g) or ""),
      created = T.iso_ms(now - (300 - g) * DAY), members = members }
  end
  -- spaces: members, some from the partner org; messages, some with files
  self.rooms, self.room_by, self.memberships, self.membership_by = {}, {}, {}, {}
  self.messages, self.message_by, self.contents = {}, {}, {}
  self.events = {}
  local nrooms = opts.rooms or math.max(3, n // 4)
  for r = 1, nrooms do
    local created = now - (days - 1) * DAY + r * 3600000
    local room = { id = O.wid("ROOM", seed, "room", r), title = ("Project %d"):format(r), type = "group",
      isLocked = false, creatorId = self.people[(r - 1) % n + 1].id, ownerId = self.org_id, created = T.iso_ms(created),
      lastActivity = T.iso_ms(created) }
    self.rooms[r], self.room_by[room.id] = room, room
    local k = 0
    for i = r, n, nrooms do k = k + 1; self:add_membership(room, self.people[i], created + k * 60000, k == 1) end
    if k == 0 then self:add_membership(room, self.people[1], created, true) end
    if r % 2 == 1 then self:add_membership(room, self.externals[(r // 2) % #self.externals + 1], created + 3600000, false) end
  end
  local nfiles = opts.files or 8
  for f = 1, nfiles do
    local room = self.rooms[(f - 1) % nrooms + 1]
    local author = self:room_people(room)[1]
    local sensitive = f % 3 == 1
    local name = sensitive and ("payments-%d.txt"):format(f) or ("notes-%d.txt"):format(f)
    local body = sensitive and ("Customer card on file: %s exp 12/29\n"):format(O.CARD) or ("Meeting notes %d: nothing secret here.\n"):format(f)
    self:post_message(room, author, "File " .. name, { { name = name, type = "text/plain", data = body } },
      T.parse_iso(room.created) + (f + 1) * 1800000, true)
  end
  for m = 1, opts.messages or 6 do
    local room = self.rooms[(m - 1) % nrooms + 1]
    self:post_message(room, self:room_people(room)[1], "Hello " .. m, nil, T.parse_iso(room.created) + m * 600000, true)
  end
  -- admin audit and security audit (sign-in) events, over `days`
  self.admin_events, self.signins = {}, {}
  local nadmin = opts.audit_events or 20
  for i = 1, nadmin do
    local actor = self.people[(i % 3) + 1]
    local target = self.people[(i * 5) % n + 1]
    local cat = ({ "USERS", "LOGINS", "GROUPS", "ADMIN_ROLES" })[(i - 1) % 4 + 1]
    local t = now - days * DAY + i * (days * DAY // (nadmin + 1))
    self.admin_events[i] = { id = T.uuid(seed, "aud", i), created = T.iso_ms(t), actorId = actor.id, actorOrgId = self.org_id,
      data = { actorOrgName = self.org_name, targetName = target.displayName, eventDescription = cat == "LOGINS" and "An Admin logged in" or "A user was modified",
        actorName = actor.displayName, actorEmail = actor.emails[1], adminRoles = json().array({ "Full_Admin" }),
        trackingId = ("ATLAS_%s_0"):format(T.uuid(seed, "trk", i)), targetType = cat == "LOGINS" and "TargetResourceType.ORG" or "TargetResourceType.USER",
        targetId = target.id, eventCategory = "EventCategory." .. cat, actorUserAgent = "Mozilla/5.0 (Macintosh) Chrome/124.0",
        actorIp = ("198.51.100.%d"):format(i % 250 + 1), targetOrgId = self.org_id,
        actionText = ("%s %s %s"):format(actor.displayName, cat == "LOGINS" and "logged into organization" or "modified", cat == "LOGINS" and self.org_name or target.displayName),
        targetOrgName = self.org_name } }
  end
  local nsign = opts.signins or 30
  for i = 1, nsign do
    local who = self.people[(i * 3) % n + 1]
    local t = now - days * DAY + i * (days * DAY // (nsign + 1))
    local out = i % 5 == 0
    self.signins[i] = { id = T.uuid(seed, "sec", i), created = T.iso_ms(t), actorId = who.id, actorOrgId = self.org_id,
      data = { actorOrgName = self.org_name, eventDescription = out and "User logged out" or "User logged in", actorName = who.displayName,
        actorEmail = who.emails[1], actorUserAgent = "Webex/44.6 (Windows 11)", trackingId = ("ATLAS_%s_1"):format(T.uuid(seed, "strk", i)),
        eventCategory = out and "LOGOUT" or "LOGINS", actorIp = ("203.0.113.%d"):format(i % 250 + 1),
        actionText = ("%s %s"):format(who.displayName, out and "logged out" or "logged in") } }
  end
  -- authorizations: integrations people granted (a refresh and an access token each)
  self.authorizations = {}
  for i = 1, n do
    for a = 1, (i % 4 == 0) and 2 or (i % 2) do
      local app = O.APPS[(i + a) % #O.APPS + 1]
      for _, kind in ipairs { "refresh", "access" } do
        self.authorizations[#self.authorizations + 1] = { id = O.wid("AUTHORIZATION", seed, "auth", i, a, kind),
          applicationId = O.wid("APPLICATION", seed, "app", app[2]), applicationName = app[1], personId = self.people[i].id,
          clientId = app[2] .. T.hexs(32, seed, "cid", app[2]), created = T.iso_s((now - (30 + i) * DAY) // 1000):gsub("Z$", "+00:00"), type = kind }
      end
    end
  end
end

function Webex:room_people(room)
  local out = {}
  for _, m in ipairs(self.memberships) do
    if m.roomId == room.id and m.personOrgId == self.org_id then out[#out + 1] = self.by_id[m.personId] end
  end
  return out
end

-- A compliance event of the org (GET /events), data = the resource at the time.
function Webex:event(resource, kind, actor_id, data, ms)
  self.nseq = self.nseq + 1
  local e = { id = O.wid("EVENT", self.seed, "event", self.nseq), resource = resource, type = kind, appId = "null",
    actorId = actor_id, orgId = self.org_id, created = T.iso_ms(ms or self:now_ms()), data = data }
  self.events[#self.events + 1] = e
  return e
end

local function copy(t) return T.deep(t) end

function Webex:add_membership(room, who, ms, moderator)
  self.nseq = self.nseq + 1
  local m = { id = O.wid("MEMBERSHIP", self.seed, "mem", room.id, who.id), roomId = room.id, personId = who.id,
    personEmail = who.emails and who.emails[1] or who.email, personDisplayName = who.displayName,
    personOrgId = who.orgId, isModerator = moderator and true or false, isMonitor = false, isRoomHidden = false,
    roomType = room.type, created = T.iso_ms(ms or self:now_ms()) }
  self.memberships[#self.memberships + 1], self.membership_by[m.id] = m, m
  self:event("memberships", "created", room.creatorId, copy(m), ms)
  return m
end

-- A message in a room, with files {name=, type=, data=}: each file is a content URL of this tenant.
-- quiet: generated history (no webhook delivery).
function Webex:post_message(room, author, text, files, ms, quiet)
  self.nseq = self.nseq + 1
  local msg = { id = O.wid("MESSAGE", self.seed, "msg", self.nseq), roomId = room.id, roomType = room.type, text = text,
    personId = author.id, personEmail = author.emails[1], created = T.iso_ms(ms or self:now_ms()) }
  if files then
    msg.files = {}
    for k, f in ipairs(files) do
      local cid = O.wid("CONTENT", self.seed, "content", self.nseq, k)
      self.contents[cid] = { name = f.name, type = f.type or "application/octet-stream", data = f.data, message = msg.id }
      msg.files[k] = cid                                   -- made a URL when rendered (base_url known at mount)
    end
  end
  self.messages[#self.messages + 1], self.message_by[msg.id] = msg, msg
  local ev = self:event("messages", "created", author.id, self:render_message(msg), ms)
  if not quiet then
    self:notify("messages", "created", { id = msg.id, roomId = msg.roomId, roomType = msg.roomType, personId = msg.personId,
      personEmail = msg.personEmail, created = msg.created }, author.id)
  end
  return msg
end

function Webex:content_url(cid) return (self.api_url or "") .. "/contents/" .. cid end

function Webex:render_message(msg)
  local out = copy(msg)
  if msg.files then
    out.files = {}
    for k, cid in ipairs(msg.files) do out.files[k] = self:content_url(cid) end
    out.files = json().array(out.files)
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- Errors (§7): {message, errors:[{description}], trackingId}; every answer has a Trackingid header.
---------------------------------------------------------------------------------------------------
function Webex:tracking_id()
  self.nerr = self.nerr + 1
  return ("ROUTER_%s"):format(T.uuid(self.seed, "tracking", self.nerr, self.requests))
end

function Webex:err(status, message, hdr)
  local tid = self:tracking_id()
  hdr = hdr or {}
  hdr.Trackingid = tid
  return status, { message = message, errors = json().array({ { description = message } }), trackingId = tid }, hdr
end

function Webex:not_found(what) return self:err(404, ("The requested %s could not be found."):format(what or "resource")) end

---------------------------------------------------------------------------------------------------
-- Paging (§7): `max` caps a page; the next page is a Link rel="next" URL followed verbatim.  The
-- position travels in an opaque `cursor` parameter; every other parameter is kept.
---------------------------------------------------------------------------------------------------
function Webex:page(req, list, render, max_default, max_cap, key)
  key = key or "items"
  local q = req.query
  local max = T.intparam(q.max, max_default, 1, max_cap)
  if not max then return self:err(400, "Invalid value for 'max'.") end
  local start = 0
  if q.cursor then
    local raw = crypto().unb64url(q.cursor)
    start = raw and math.tointeger(tonumber(raw:match("^o(%d+)$") or ""))
    if not start then return self:err(400, "Invalid cursor.") end
  end
  local out = {}
  for i = start + 1, math.min(#list, start + max) do out[#out + 1] = render(list[i]) end
  local hdr = {}
  if start + max < #list then
    local pairs_list = {}
    local keys = {}
    for k in pairs(q) do if k ~= "cursor" then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do pairs_list[#pairs_list + 1] = { k, q[k] } end
    pairs_list[#pairs_list + 1] = { "cursor", crypto().b64url("o" .. (start + max)) }
    hdr.Link = T.link { { self.origin .. req.path .. "?" .. T.qs(pairs_list), "next" } }
  end
  return 200, { [key] = json().array(out) }, hdr
end

---------------------------------------------------------------------------------------------------
-- Ground truth (tests, `GET /_sandbox/truth`): what a complete sync holds.
---------------------------------------------------------------------------------------------------
function Webex:live_files()
  local out = {}
  for _, m in ipairs(self.messages) do
    if m.files and not self.deleted_messages[m.id] then
      for k in ipairs(m.files) do out[#out + 1] = m.id .. "/" .. k end
    end
  end
  return out
end

function Webex:external_rooms()
  local out = {}
  for _, m in ipairs(self.memberships) do if m.personOrgId ~= self.org_id then out[m.roomId] = true end end
  return out
end

function Webex:truth()
  local users, admins, grants = {}, {}, {}
  for _, p in ipairs(self.people) do
    users[#users + 1] = p.id
    if #p.roles > 0 then admins[#admins + 1] = p.id end
  end
  for _, a in ipairs(self.authorizations) do grants[#grants + 1] = a.id end
  local groups = {}
  for _, g in ipairs(self.groups) do groups[#groups + 1] = g.id end
  return { users = users, admins = admins, groups = groups, files = self:live_files(), app_grants = grants,
           activities = #self.admin_events + #self.signins + #self.events }
end

function Webex:count(what)
  local t = self:truth()
  if type(t[what]) == "table" then return #t[what] end
  if what == "activities" then return t.activities end
  error("unknown count " .. tostring(what))
end

return O
