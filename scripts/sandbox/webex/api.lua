-- sandbox/webex/api.lua — the REST surfaces under /v1 (§2-§8): people, roles, licences, groups, admin and
-- security audit, compliance events, memberships, messages and their file contents, authorizations,
-- webhooks (signed deliveries).  Each route names the scopes and role Webex checks for it.
local T = require "sandbox.tenant"
local O = require "sandbox.webex.org"
local Webex = O.Webex
local json, crypto = O.json, O.crypto

local function body_of(req)
  local b = json().decode(req.body or "")
  return type(b) == "table" and not json().is_array(b) and b or nil
end
local function bool_text(v) if v == true or v == "true" then return "true" elseif v == false or v == "false" then return "false" end end

---------------------------------------------------------------------------------------------------- people
-- Admins see the administrative fields (roles, licenses, loginEnabled); others a person's public card.
function Webex:render_person(p, admin)
  local out = T.deep(p)
  out.emails, out.roles, out.licenses = json().array(T.deep(p.emails)), json().array(T.deep(p.roles)), json().array(T.deep(p.licenses))
  if not admin then out.roles, out.licenses, out.loginEnabled, out.invitePending = nil, nil, nil, nil end
  return out
end

local function is_admin(self, req)
  local r = self:roles_of(req.actor)
  return (r.full or r.user or r.readonly) and req.token.scopes["spark-admin:people_read"] == true
end

function Webex:h_people(req)
  local q = req.query
  local admin = is_admin(self, req)
  if not (q.email or q.displayName or q.id) and not admin then
    return self:err(400, "Email, displayName, or id list should be specified.")
  end
  local ids = {}
  for id in (q.id or ""):gmatch("[^,]+") do ids[id] = true end
  local list = {}
  for _, p in ipairs(self.people) do
    if (not q.email or p.emails[1] == q.email) and (not q.displayName or p.displayName:sub(1, #q.displayName) == q.displayName)
      and (not q.id or ids[p.id]) then list[#list + 1] = p end
  end
  return self:page(req, list, function(p) return self:render_person(p, admin) end, 100, 1000)
end

function Webex:h_person(req)
  local p = req.params.id == "me" and req.actor or self.by_id[req.params.id]
  if not p then return self:not_found("person") end
  return 200, self:render_person(p, is_admin(self, req))
end

-- PUT replaces the person: displayName is required; what the body leaves out is cleared (§6: GET first).
local REPLACEABLE = { "emails", "phoneNumbers", "extension", "locationId", "displayName", "firstName", "lastName",
  "nickName", "avatar", "roles", "licenses", "department", "manager", "managerId", "title", "addresses", "siteUrls" }
function Webex:h_put_person(req)
  local p = self.by_id[req.params.id]
  if not p then return self:not_found("person") end
  local b = body_of(req)
  if not b or type(b.displayName) ~= "string" or b.displayName == "" then return self:err(400, "displayName is required.") end
  for _, k in ipairs(REPLACEABLE) do
    if k == "emails" or k == "roles" or k == "licenses" then p[k] = type(b[k]) == "table" and T.deep(b[k]) or {}
    else p[k] = b[k] end
  end
  if b.loginEnabled ~= nil then
    local v = bool_text(b.loginEnabled)
    if not v then return self:err(400, "loginEnabled must be a boolean.") end
    if v ~= p.loginEnabled then
      p.loginEnabled = v
      -- signing in is off: the person's tokens stop working at once
      if v == "false" then for tok, rec in pairs(self.tokens) do if rec.uid == p.id then self.tokens[tok] = nil end end end
    end
  end
  p.lastModified = T.iso_ms(self:now_ms())
  self:audit(req.actor, p, "USERS", ("%s modified %s"):format(req.actor.displayName, p.displayName))
  if req.query.minResponse == "true" then return 204, "" end
  return 200, self:render_person(p, true)
end

function Webex:audit(actor, target, cat, text)
  self.nseq = self.nseq + 1
  self.admin_events[#self.admin_events + 1] = { id = T.uuid(self.seed, "aud+", self.nseq), created = T.iso_ms(self:now_ms()),
    actorId = actor.id, actorOrgId = self.org_id, data = { actorOrgName = self.org_name, targetName = target.displayName,
      eventDescription = text, actorName = actor.displayName, actorEmail = actor.emails[1], adminRoles = json().array({ "Full_Admin" }),
      trackingId = self:tracking_id(), targetType = "TargetResourceType.USER", targetId = target.id,
      eventCategory = "EventCategory." .. cat, actorUserAgent = "cachost", actorIp = "127.0.0.1", targetOrgId = self.org_id,
      actionText = text, targetOrgName = self.org_name } }
end

function Webex:h_roles(req)
  return self:page(req, self.roles, function(r) return { id = r.id, name = r.name } end, 100, 1000)
end

function Webex:h_licenses()
  local out = {}
  for _, l in ipairs(self.licenses) do
    local used = 0
    for _, p in ipairs(self.people) do for _, id in ipairs(p.licenses) do if id == l.id then used = used + 1 end end end
    out[#out + 1] = { id = l.id, name = l.name, totalUnits = l.totalUnits, consumedUnits = used }
  end
  return 200, { items = json().array(out) }
end

---------------------------------------------------------------------------------------------------- groups
-- startIndex (1-based) and count, with totalResults (§3); members: count at most 500.
local function window(q, max_count)
  local start = T.intparam(q.startIndex, 1, 1)
  local count = T.intparam(q.count, 100, 0, max_count)
  return start, count
end
local function group_card(self, g)
  return { id = g.id, displayName = g.displayName, orgId = self.org_id, created = g.created, lastModified = g.created,
           memberSize = #g.members }
end

function Webex:h_groups(req)
  local start, count = window(req.query, 1000)
  if not start or not count then return self:err(400, "Invalid startIndex or count.") end
  local out = {}
  for i = start, math.min(#self.groups, start + count - 1) do out[#out + 1] = group_card(self, self.groups[i]) end
  return 200, { totalResults = #self.groups, startIndex = start, itemsPerPage = #out, groups = json().array(out) }
end

function Webex:h_group_members(req)
  local g
  for _, x in ipairs(self.groups) do if x.id == req.params.id then g = x end end
  if not g then return self:not_found("group") end
  local start, count = window(req.query, 500)
  if not start or not count then return self:err(400, "Invalid startIndex or count.") end
  local out = group_card(self, g)
  local members = {}
  for i = start, math.min(#g.members, start + count - 1) do
    members[#members + 1] = { id = g.members[i].id, type = "user", displayName = g.members[i].displayName }
  end
  out.members, out.startIndex, out.itemsPerPage, out.totalResults = json().array(members), start, #members, #g.members
  return 200, out
end

---------------------------------------------------------------------------------------------------- audit
-- from/to and startTime/endTime are required (§4), at most a year apart; newest first.
local YEAR = 366 * 86400000
local function span(self, q, a, b)
  local from, to = T.parse_iso(q[a]), T.parse_iso(q[b])
  if not from or not to then return nil, self:err(400, ("'%s' and '%s' are required ISO 8601 times."):format(a, b)) end
  if to - from > YEAR then return nil, self:err(400, "A maximum of one year of audit events can be returned per request.") end
  return { from = from, to = to }
end
local function within(list, s, time_of)
  local out = {}
  for i = #list, 1, -1 do
    local t = T.parse_iso(time_of(list[i]))
    if t >= s.from and t < s.to then out[#out + 1] = list[i] end
  end
  return out
end

function Webex:h_admin_audit(req)
  local q = req.query
  if q.orgId ~= self.org_id then return self:err(403, "orgId is not the organization of the access token.") end
  local s, st, body, hdr = span(self, q, "from", "to")
  if not s then return st, body, hdr end
  local list = within(self.admin_events, s, function(e) return e.created end)
  local cats = {}
  for c in (q.eventCategories or ""):gmatch("[^,]+") do cats["EventCategory." .. c] = true end
  if next(cats) then
    local keep = {}
    for _, e in ipairs(list) do if cats[e.data.eventCategory] then keep[#keep + 1] = e end end
    list = keep
  end
  -- offset and max, and the Link to the next page
  local max = T.intparam(q.max, 100, 1, 200)
  local offset = T.intparam(q.offset, 0, 0)
  if not max or not offset then return self:err(400, "Invalid max or offset.") end
  local out = {}
  for i = offset + 1, math.min(#list, offset + max) do out[#out + 1] = list[i] end
  local h = {}
  if offset + max < #list then
    local l = {}
    for _, k in ipairs { "orgId", "from", "to", "actorId", "eventCategories" } do l[#l + 1] = { k, q[k] } end
    l[#l + 1] = { "max", tostring(max) }
    l[#l + 1] = { "offset", tostring(offset + max) }
    h.Link = T.link { { self.origin .. req.path .. "?" .. T.qs(l), "next" } }
  end
  return 200, { items = json().array(out) }, h
end

function Webex:h_admin_categories()
  return 200, { eventCategories = json().array({ "USERS", "LOGINS", "LOGOUT", "GROUPS", "ADMIN_ROLES", "LICENSES" }) }
end

function Webex:h_security_audit(req)
  local q = req.query
  if q.orgId ~= self.org_id then return self:err(403, "orgId is not the organization of the access token.") end
  local s, st, body, hdr = span(self, q, "startTime", "endTime")
  if not s then return st, body, hdr end
  local list = within(self.signins, s, function(e) return e.created end)
  return self:page(req, list, function(e) return e end, 100, 1000)
end

---------------------------------------------------------------------------------------------------- compliance events
function Webex:h_events(req)
  local q = req.query
  local max = math.tointeger(tonumber(q.max or "100"))
  if not max or max < 1 or max > 1000 then return self:err(400, "max must be between 1 and 1000, inclusive.") end
  local from, to = q.from and T.parse_iso(q.from), q.to and T.parse_iso(q.to)
  if (q.from and not from) or (q.to and not to) then return self:err(400, "from and to must be ISO 8601 times.") end
  if to and to > self:wall_s() * 1000 + 300000 then return self:err(400, "to cannot be a future date.") end
  local list = {}
  for i = #self.events, 1, -1 do
    local e = self.events[i]
    local t = T.parse_iso(e.created)
    if (not q.resource or e.resource == q.resource) and (not q.type or e.type == q.type)
      and (not q.actorId or e.actorId == q.actorId) and (not from or t >= from) and (not to or t < to) then
      list[#list + 1] = e
    end
  end
  return self:page(req, list, function(e) return e end, 100, 1000)
end

function Webex:h_event(req)
  for _, e in ipairs(self.events) do if e.id == req.params.id then return 200, e end end
  return self:not_found("event")
end

---------------------------------------------------------------------------------------------------- spaces
function Webex:h_memberships(req)
  local q = req.query
  if (q.personId or q.personEmail) == nil and not q.roomId then
    return self:err(400, "roomId, personId or personEmail is required of a compliance officer.")
  end
  if q.roomId and not self.room_by[q.roomId] then return self:not_found("room") end
  local list = {}
  for _, m in ipairs(self.memberships) do
    if (not q.roomId or m.roomId == q.roomId) and (not q.personId or m.personId == q.personId)
      and (not q.personEmail or m.personEmail == q.personEmail) then list[#list + 1] = m end
  end
  return self:page(req, list, function(m) return m end, 100, 1000)
end

function Webex:h_membership(req)
  local m = self.membership_by[req.params.id]
  if not m then return self:not_found("membership") end
  if req.method == "GET" then return 200, m end
  for i, x in ipairs(self.memberships) do if x == m then table.remove(self.memberships, i) break end end
  self.membership_by[m.id] = nil
  self:event("memberships", "deleted", req.actor.id, T.deep(m))
  self:notify("memberships", "deleted", { id = m.id, roomId = m.roomId, personId = m.personId, personEmail = m.personEmail,
    personOrgId = m.personOrgId, created = m.created }, req.actor.id)
  return 204, ""
end

function Webex:h_room(req)
  local r = self.room_by[req.params.id]
  if not r then return self:not_found("room") end
  return 200, r
end

local function live_message(self, id)
  local m = self.message_by[id]
  if m and not self.deleted_messages[id] then return m end
end

function Webex:h_message(req)
  local m = live_message(self, req.params.id)
  if not m then return self:not_found("message") end
  if req.method == "GET" then return 200, self:render_message(m) end
  self.deleted_messages[m.id] = true
  self:event("messages", "deleted", req.actor.id, { id = m.id, roomId = m.roomId, roomType = m.roomType,
    personId = m.personId, personEmail = m.personEmail, created = m.created })
  self:notify("messages", "deleted", { id = m.id, roomId = m.roomId, roomType = m.roomType, personId = m.personId,
    personEmail = m.personEmail, created = m.created }, req.actor.id)
  return 204, ""
end

-- A file's content (GET downloads it, HEAD gives its name, type and size: "Message Attachments").  A file
-- still being scanned (anti-malware, DLP; `scanning` answers left) is 423 Locked with Retry-After.
function Webex:h_content(req)
  local c = self.contents[req.params.id]
  if not c or self.deleted_messages[c.message] then return self:not_found("content") end
  if (c.scanning or 0) > 0 then
    c.scanning = c.scanning - 1
    local st, body, hdr = self:err(423, "The file is being scanned for malware; retry later.")
    hdr["Retry-After"] = "1"
    return st, body, hdr
  end
  return 200, c.data, { ["Content-Type"] = c.type, ["Content-Disposition"] = ('attachment; filename="%s"'):format(c.name) }
end

---------------------------------------------------------------------------------------------------- authorizations
function Webex:h_authorizations(req)
  local q = req.query
  if req.method == "DELETE" then                   -- an integration revoked for the whole org
    if not q.clientId then return self:err(400, "clientId is required.") end
    if q.orgId and q.orgId ~= self.org_id then return self:err(403, "orgId is not the organization of the access token.") end
    local keep, n = {}, 0
    for _, a in ipairs(self.authorizations) do
      if a.clientId == q.clientId then n = n + 1 else keep[#keep + 1] = a end
    end
    if n == 0 then return self:not_found("authorization") end
    self.authorizations = keep
    return 204, ""
  end
  local p = (q.personId and self.by_id[q.personId]) or (q.personEmail and self.by_email[q.personEmail])
  if not (q.personId or q.personEmail) then return self:err(400, "Either personId or personEmail must be provided.") end
  if not p then return self:not_found("person") end
  local out = {}
  for _, a in ipairs(self.authorizations) do if a.personId == p.id then out[#out + 1] = a end end
  return 200, { items = json().array(out) }
end

function Webex:h_authorization(req)
  for i, a in ipairs(self.authorizations) do
    if a.id == req.params.id then
      table.remove(self.authorizations, i)
      return 204, ""
    end
  end
  return self:not_found("authorization")
end

---------------------------------------------------------------------------------------------------- webhooks
local RESOURCES = { messages = true, memberships = true, rooms = true, attachmentActions = true, meetings = true,
  recordings = true, meetingParticipants = true, meetingTranscripts = true }
local EVENTS = { created = true, updated = true, deleted = true, started = true, ended = true, joined = true, left = true, all = true }
-- Creating a webhook needs the read scope of its resource (the compliance one for org-wide hooks).
local READ = { messages = { "spark-compliance:messages_read", "spark:messages_read" },
  memberships = { "spark-compliance:memberships_read", "spark:memberships_read" },
  rooms = { "spark-compliance:rooms_read", "spark:rooms_read" } }

function Webex:render_webhook(w) return T.deep(w) end

function Webex:h_webhooks(req)
  if req.method == "GET" then
    local list = {}
    for _, w in ipairs(self.webhooks) do
      if w.createdBy == req.actor.id and (req.query.ownedBy ~= "org" or w.ownedBy == "org") then list[#list + 1] = w end
    end
    return self:page(req, list, function(w) return self:render_webhook(w) end, 100, 100)
  end
  local b = body_of(req)
  if not b then return self:err(400, "The request body is not a JSON object.") end
  for _, k in ipairs { "name", "targetUrl", "resource", "event" } do
    if type(b[k]) ~= "string" or b[k] == "" then return self:err(400, k .. " is required.") end
  end
  if not RESOURCES[b.resource] or not EVENTS[b.event] then return self:err(400, "Invalid resource or event.") end
  local ok = false
  for _, s in ipairs(READ[b.resource] or {}) do ok = ok or req.token.scopes[s] == true end
  if READ[b.resource] and not ok then
    return self:err(403, ("Access denied: creating a %s webhook needs the scope %s."):format(b.resource, READ[b.resource][1]))
  end
  if b.ownedBy ~= nil and b.ownedBy ~= "org" then return self:err(400, "ownedBy must be 'org'.") end
  if b.ownedBy == "org" and not self:roles_of(req.actor).compliance and not self:roles_of(req.actor).full then
    return self:err(403, "Access denied: org-wide webhooks need an administrator or the Compliance Officer.")
  end
  self.nseq = self.nseq + 1
  local w = { id = O.wid("WEBHOOK", self.seed, "hook", self.nseq), name = b.name, targetUrl = b.targetUrl, resource = b.resource,
    event = b.event, filter = b.filter, secret = b.secret, status = "active", created = T.iso_ms(self:now_ms()),
    ownedBy = b.ownedBy or "creator", orgId = self.org_id, createdBy = req.actor.id, appId = O.wid("APPLICATION", self.seed, "our-app") }
  self.webhooks[#self.webhooks + 1] = w
  return 200, self:render_webhook(w)
end

function Webex:h_webhook(req)
  local w, at
  for i, x in ipairs(self.webhooks) do if x.id == req.params.id and x.createdBy == req.actor.id then w, at = x, i end end
  if not w then return self:not_found("webhook") end
  if req.method == "GET" then return 200, self:render_webhook(w) end
  if req.method == "DELETE" then table.remove(self.webhooks, at); return 204, "" end
  local b = body_of(req)
  if not b or type(b.name) ~= "string" or type(b.targetUrl) ~= "string" then return self:err(400, "name and targetUrl are required.") end
  w.name, w.targetUrl = b.name, b.targetUrl
  if b.secret ~= nil then w.secret = b.secret end
  if b.status == "active" or b.status == "inactive" then w.status = b.status end
  return 200, self:render_webhook(w)
end

-- A delivery to every active webhook on this resource and event (§8): the envelope with the resource's
-- ids, signed with X-Spark-Signature (hex HMAC-SHA1 of the body with the webhook's secret).
function Webex:notify(resource, event, data, actor_id)
  for _, w in ipairs(self.webhooks) do
    if w.status == "active" and w.resource == resource and (w.event == event or w.event == "all") then
      local body = json().encode { id = w.id, name = w.name, targetUrl = w.targetUrl, resource = resource, event = event,
        filter = w.filter, orgId = self.org_id, createdBy = w.createdBy, appId = w.appId, ownedBy = w.ownedBy,
        status = w.status, created = w.created, actorId = actor_id, data = data }
      local headers = { ["Content-Type"] = "application/json" }
      if w.secret then headers["X-Spark-Signature"] = crypto().hex(crypto().hmac_sha1(w.secret, body)) end
      self:deliver { url = w.targetUrl, headers = headers, body = body, event = resource .. "." .. event, retries = 1 }
    end
  end
end

-- Tests and demos: someone posts a file in a space (the delivery goes to the message webhooks).
function Webex:share_file(room, author, name, data)
  room = type(room) == "number" and self.rooms[room] or room
  return self:post_message(room, author or self:room_people(room)[1], "File " .. name,
    { { name = name, type = "text/plain", data = data } })
end

return Webex
