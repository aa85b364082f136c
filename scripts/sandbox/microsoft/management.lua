-- sandbox/microsoft/management.lua — the Office 365 Management Activity API (manage.office.com):
-- subscriptions, content blobs (lazy records per content type), notifications and webhooks.
local C = require "sandbox.microsoft.common"
local T, MS, json, jnull, A, nz = C.T, C.MS, C.json, C.jnull, C.A, C.nz
local DEVICES, SIGNIN_APPS, sub, below, unit, fuuid = C.DEVICES, C.SIGNIN_APPS, C.sub, C.below, C.unit, C.fuuid
local fhex, iso_mgmt, spread_ms, FILE_EXT = C.fhex, C.iso_mgmt, C.spread_ms, C.FILE_EXT

local CONTENT_TYPES = { "Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All" }
local CT_WEIGHT = { 0.25, 0.22, 0.33, 0.18, 0.02 }
local CT_INDEX = {}
for i, c in ipairs(CONTENT_TYPES) do CT_INDEX[c] = i end

-- {Workload, RecordType, {operations}}
local GENERAL = {
  { "MicrosoftTeams", 25, { "TeamCreated", "MemberAdded", "ChannelAdded", "TeamsSessionStarted", "MessageSent" } },
  { "PowerBI", 20, { "ViewReport", "ExportReport", "ViewDashboard", "ShareReport" } },
  { "CRM", 21, { "Retrieve", "Update", "RetrieveMultiple", "Create" } },                   -- Dynamics 365
  { "MicrosoftFlow", 30, { "CreateFlow", "EditFlow", "DeleteFlow" } },                      -- Power Automate
  { "PowerApps", 45, { "LaunchPowerApp", "CreatePowerApp", "PowerAppPermissionEdited" } },
  { "Yammer", 22, { "MessageCreated", "FileDownloaded", "GroupCreation" } },
  { "SkypeForBusiness", 23, { "Set-CsUser", "Grant-CsConferencingPolicy" } },
  { "OfficeNative", 83, { "SensitivityLabelApplied", "SensitivityLabelUpdated" } },
}
local EXCHANGE_OPS = { { "MailItemsAccessed", 50 }, { "Send", 2 }, { "New-InboxRule", 1 }, { "Set-Mailbox", 1 },
  { "HardDelete", 2 }, { "Add-MailboxPermission", 1 }, { "MailboxLogin", 2 } }
local SP_OPS = { { "FileAccessed", 6 }, { "FileDownloaded", 6 }, { "FileModified", 6 }, { "FileUploaded", 6 }, { "FileDeleted", 6 },
  { "FileMoved", 6 }, { "SharingSet", 14 }, { "AnonymousLinkCreated", 14 }, { "SharingInvitationCreated", 14 }, { "PageViewed", 4 } }
local AAD_OPS = { { "UserLoggedIn", 15 }, { "UserLoggedIn", 15 }, { "UserLoginFailed", 15 }, { "Update user.", 8 },
  { "Add member to group.", 8 }, { "Add user.", 8 } }

function MS:mgmt_n(c)
  self._mgmt_n = self._mgmt_n or {}
  if not self._mgmt_n[c] then
    local total, acc = self.nmgmt, 0
    for i = 1, #CONTENT_TYPES - 1 do
      local k = math.floor(total * CT_WEIGHT[i])
      self._mgmt_n[i] = k; acc = acc + k
    end
    self._mgmt_n[#CONTENT_TYPES] = total - acc
  end
  return self._mgmt_n[c]
end
function MS:mgmt_ms(c, i) return spread_ms(self, "mgmt" .. c, self:mgmt_n(c), i) end
-- first record index of content type c with time >= ms
function MS:mgmt_first(c, ms)
  local lo, hi = 0, self:mgmt_n(c)
  while lo < hi do
    local mid = (lo + hi) // 2
    if self:mgmt_ms(c, mid) < ms then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function stamp(ms) return (T.iso_ms(ms):gsub("[^%d]", "")) end
local function unstamp(s)
  local y, mo, d, h, mi, se, f = s:match("^(%d%d%d%d)(%d%d)(%d%d)(%d%d)(%d%d)(%d%d)(%d%d%d)$")
  if not y then return nil end
  return T.parse_iso(string.format("%s-%s-%sT%s:%s:%s.%sZ", y, mo, d, h, mi, se, f))
end

-- blob of generated slot s for content type index c
function MS:blob_created(c, s)
  local h = T.hash(self.seed, "blobdelay", c, s)
  local delay = (2 + T.below(h, 38)) * 60000
  if T.unit(T.hash(h, 1)) < 0.02 then delay = delay + 6 * 3600000 end     -- a documented long delay
  return (s + 1) * self.blob_ms + delay
end
function MS:blob_id(c, s)
  local ct = CONTENT_TYPES[c]:gsub("%.", "_")
  return string.format("%s$%s$%s$%s$na%04d", stamp(s * self.blob_ms), stamp((s + 1) * self.blob_ms - 1), ct:lower(), ct,
                       T.below(T.hash(self.seed, "region", c), 60))
end
-- parse a content id: gen -> c, s ; stored -> c, nil, seq
function MS:parse_blob_id(id)
  local a, _, _, ct, tail = id:match("^(%d+)%$(%d+)%$([%w_]+)%$([%w_]+)%$([%w]+)$")
  if not a then return nil end
  local c = CT_INDEX[(ct:gsub("_", "."))]
  if not c then return nil end
  local seq = tail:match("^s(%d+)$")
  if seq then return c, nil, math.tointeger(tonumber(seq)) end
  local ms = unstamp(a)
  if not ms then return nil end
  return c, ms // self.blob_ms
end
function MS:slot_range(c, s) return self:mgmt_first(c, s * self.blob_ms), self:mgmt_first(c, (s + 1) * self.blob_ms) end

function MS:is_dup(c, i) return unit(sub(T.hash(self.seed, c, i), 30)) < self.dup_share end

-- records of a generated blob: its own slot plus duplicates re-delivered from the previous slot
function MS:blob_records(c, s)
  local out = {}
  local a, b = self:slot_range(c, s)
  for i = a, b - 1 do out[#out + 1] = self:gen_record(c, i) end
  if #out > 0 then
    local pa, pb = self:slot_range(c, s - 1)
    for i = pa, pb - 1 do if self:is_dup(c, i) then out[#out + 1] = self:gen_record(c, i) end end
  end
  return out
end

function MS:user_key(u)
  if not u.key then u.key = "1003" .. string.format("%012X", T.hash(self.seed, "puid", u.index or 0) >> 16) end
  return u.key
end

function MS:mgmt_common(ms, id, op, rtype, workload, u, status, ip)
  return { CreationTime = iso_mgmt(ms), Id = id, Operation = op, OrganizationId = self.tenant_id, RecordType = rtype,
           ResultStatus = status or "Succeeded", UserKey = u and self:user_key(u) or "app@sharepoint",
           UserType = u and 0 or 5, Version = 1, Workload = workload, ClientIP = ip or (u and u.ip) or "", ObjectId = "",
           UserId = u and u.upn or "app@sharepoint", Scope = 0 }
end

function MS:gen_record(c, i)
  local seed = self.seed
  local h = T.hash(seed, c, i)
  local ms = self:mgmt_ms(c, i)
  local id = fuuid(h)
  local u = self.gen_users[below(sub(h, 1), #self.gen_users) + 1]
  local ct = CONTENT_TYPES[c]
  local r
  if ct == "Audit.AzureActiveDirectory" then
    local op = AAD_OPS[below(sub(h, 2), #AAD_OPS) + 1]
    if op[2] == 15 then
      local fail = op[1] == "UserLoginFailed"
      r = self:mgmt_common(ms, id, op[1], 15, "AzureActiveDirectory", u, fail and "Failed" or "Success")
      r.ObjectId = "00000003-0000-0ff1-ce00-000000000000"
      r.AzureActiveDirectoryEventType = 1
      r.ApplicationId = SIGNIN_APPS[below(sub(h, 3), #SIGNIN_APPS) + 1][2]
      r.ErrorCode = fail and "50126" or "0"
      r.LogonError = fail and "InvalidUserNameOrPassword" or nil
      r.ExtendedProperties = A({ { Name = "UserAgent", Value = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)" },
                                 { Name = "RequestType", Value = "Login:login" }, { Name = "ResultStatusDetail", Value = fail and "Redirect" or "Success" } })
      r.DeviceProperties = A({ { Name = "OS", Value = DEVICES[u.device][1] }, { Name = "BrowserType", Value = DEVICES[u.device][2] } })
      r.Actor = A({ { ID = u.id, Type = 0 }, { ID = u.upn, Type = 5 } })
      r.ActorContextId = self.tenant_id
      r.InterSystemsId = fuuid(sub(h, 21))
      r.IntraSystemId = fuuid(sub(h, 22))
      r.Target = A({ { ID = r.ObjectId, Type = 0 } })
      r.TargetContextId = self.tenant_id
    else
      local tu = self.gen_users[below(sub(h, 3), #self.gen_users) + 1]
      r = self:mgmt_common(ms, id, op[1], 8, "AzureActiveDirectory", self.admin, "Success")
      r.ObjectId = tu.upn
      r.AzureActiveDirectoryEventType = 1
      r.Actor = A({ { ID = self.admin.upn, Type = 5 }, { ID = self.admin.id, Type = 2 } })
      r.ActorContextId = self.tenant_id
      r.ModifiedProperties = A()
      r.Target = A({ { ID = "User_" .. tu.id, Type = 2 }, { ID = tu.upn, Type = 5 } })
      r.TargetContextId = self.tenant_id
      r.InterSystemsId = fuuid(sub(h, 21))
      r.IntraSystemId = fuuid(sub(h, 22))
    end
  elseif ct == "Audit.Exchange" then
    local op = EXCHANGE_OPS[below(sub(h, 2), #EXCHANGE_OPS) + 1]
    r = self:mgmt_common(ms, id, op[1], op[2], "Exchange", u, op[2] == 1 and "True" or "Succeeded")
    r.ObjectId = op[2] == 1 and u.upn or ("<" .. fhex(sub(h, 23), 16) .. "@" .. self.domain .. ">")
    r.MailboxGuid = self:const("mbx", u.index)
    r.MailboxOwnerUPN = u.upn
    r.LogonType = 0
    r.ClientInfoString = "Client=OWA;Action=ViaProxy"
    if op[2] == 1 then
      r.Parameters = A({ { Name = "Identity", Value = u.upn } })
      r.OrganizationName = self.initial_domain
      r.OriginatingServer = "BY1PR00MB0000 (15.20.7800.000)"
    end
  elseif ct == "Audit.SharePoint" then
    local op = SP_OPS[below(sub(h, 2), #SP_OPS) + 1]
    local onedrive = unit(sub(h, 3)) < 0.5
    local wl = onedrive and "OneDrive" or "SharePoint"
    local site = onedrive and (self.my_host .. "/personal/" .. u.upn:gsub("[@%.]", "_"):lower())
                          or (self.sp_host .. "/sites/" .. ((self.state.sites[1] and self.state.sites[1].name) or "Marketing"))
    local fname = "Document" .. (sub(h, 4) >> 50) .. "." .. FILE_EXT[below(sub(h, 5), #FILE_EXT) + 1]
    r = self:mgmt_common(ms, id, op[1], op[2], wl, u, "Succeeded")
    r.ObjectId = site .. "/Shared Documents/" .. fname
    r.Site = self:const("spsite", onedrive and u.index or 0)
    r.ItemType = op[1] == "PageViewed" and "Page" or "File"
    r.EventSource = "SharePoint"
    r.SourceName = "ObjectModel"
    r.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"
    r.ListId = self:const("splist", onedrive and u.index or 0)
    r.ListItemUniqueId = fuuid(sub(h, 24))
    r.WebId = self:const("spweb", onedrive and u.index or 0)
    r.SiteUrl = site .. "/"
    r.SourceRelativeUrl = "Shared Documents"
    r.SourceFileName = fname
    r.SourceFileExtension = fname:match("%.(%w+)$")
    if op[2] == 14 then
      local ext = unit(sub(h, 6)) < 0.4
      r.TargetUserOrGroupName = ext and ("guest" .. (sub(h, 7) >> 56) .. "@gmail.com") or self.gen_users[below(sub(h, 7), #self.gen_users) + 1].upn
      r.TargetUserOrGroupType = ext and "Guest" or "Member"
      r.EventData = op[1] == "AnonymousLinkCreated" and "<Type>View</Type>" or "<PermissionsGranted>Contribute</PermissionsGranted>"
      r.UniqueSharingId = fuuid(sub(h, 25))
    end
    if op[1] == "FileMoved" then r.DestinationRelativeUrl = "Shared Documents/Archive"; r.DestinationFileName = fname end
  elseif ct == "Audit.General" then
    local w = GENERAL[below(sub(h, 2), #GENERAL) + 1]
    local op = w[3][below(sub(h, 3), #w[3]) + 1]
    r = self:mgmt_common(ms, id, op, w[2], w[1], u, "Succeeded")
    r.ObjectId = w[1] .. "/" .. fhex(sub(h, 26), 12)
    if w[1] == "MicrosoftTeams" then r.TeamName = (self.state.groups[1] and self.state.groups[1].displayName) or "Team"; r.TeamGuid = "19:" .. self:const("team", 0):gsub("-", "") .. "@thread.tacv2"
    elseif w[1] == "PowerBI" then r.Activity = op; r.ItemName = "Quarterly Sales"; r.WorkSpaceName = "Sales"
    elseif w[1] == "CRM" then r.CrmOrganizationUniqueName = "org" .. self:const("crm", 0):sub(1, 8); r.EntityName = "account"; r.InstanceUrl = "https://contoso.crm.dynamics.com"
    elseif w[1] == "MicrosoftFlow" then r.FlowDetailsUrl = "https://make.powerautomate.com/environments/Default-" .. self.tenant_id .. "/flows/" .. fuuid(sub(h, 27))
    elseif w[1] == "PowerApps" then r.AppName = "Expense Tracker"; r.EnvironmentName = "Default-" .. self.tenant_id
    elseif w[1] == "Yammer" then r.ActorUserId = u.upn; r.ActorYammerUserId = below(h, 1000000000)
    end
  else   -- DLP.All
    local exch = unit(sub(h, 2)) < 0.5
    r = self:mgmt_common(ms, id, "DlpRuleMatch", exch and 13 or 11, exch and "Exchange" or "SharePoint", u, "Succeeded")
    r.ObjectId = exch and ("<" .. fhex(sub(h, 28), 16) .. "@" .. self.domain .. ">") or (self.sp_host .. "/sites/Finance/Shared Documents/cards.xlsx")
    r.IncidentId = fuuid(sub(h, 29))
    r.PolicyDetails = A({ { PolicyId = self:const("dlppolicy", 0), PolicyName = "U.S. Financial Data",
      Rules = A({ { RuleId = self:const("dlprule", 0), RuleName = "Low volume of content detected", Severity = "Low",
        ConditionsMatched = { SensitiveInformation = A({ { SensitiveType = "50842eb7-edc8-4019-85dd-5a5c1f2bb085", Count = 1 + below(h, 5), Confidence = 85 } }) },
        Actions = A({ "NotifyUser" }) } }) } })
    r.SensitiveInfoDetectionIsIncluded = false
  end
  return r
end

-- a stored record (governance or test), in its own blob, available at once
function MS:mgmt_state_record(ct, fields, ms)
  local c = CT_INDEX[ct]
  assert(c, "unknown content type " .. tostring(ct))
  ms = ms or self:now_ms()
  local seq = self:seq()
  local u = fields.user or self.admin
  local wl = fields.Workload or ({ "AzureActiveDirectory", "Exchange", "SharePoint", "MicrosoftTeams", "SharePoint" })[c]
  local r = self:mgmt_common(ms, T.uuid(self.seed, "smrec", seq), fields.Operation or "Unknown", fields.RecordType or 8, wl, u, fields.ResultStatus or "Success")
  for k, v in pairs(fields) do
    if k ~= "user" and k ~= "target" then r[k] = v end
  end
  if ct == "Audit.AzureActiveDirectory" and not fields.Actor then
    r.Actor = A({ { ID = u.upn, Type = 5 }, { ID = u.id, Type = 2 } })
    r.ActorContextId = self.tenant_id
    if fields.target then r.Target = A({ { ID = "User_" .. fields.target.id, Type = 2 }, { ID = fields.target.upn, Type = 5 } }) end
  end
  local ctn = ct:gsub("%.", "_")
  local rec = { ms = ms, seq = seq, rec = r, c = c, created = ms,
                id = string.format("%s$%s$%s$%s$s%d", stamp(ms), stamp(ms), ctn:lower(), ctn, seq) }
  local list = self.state.mgmt_stored
  list[#list + 1] = rec
  self:mgmt_notify(rec)
  return r, rec.id
end

-- test helper: add a record; spec {workload=, operation=, user=, ms=, content_type=, ...extra fields}
local WORKLOAD_CT = { AzureActiveDirectory = "Audit.AzureActiveDirectory", Exchange = "Audit.Exchange", SharePoint = "Audit.SharePoint",
                      OneDrive = "Audit.SharePoint" }
function MS:add_record(spec)
  spec = spec or {}
  local wl = spec.workload or "SharePoint"
  local ct = spec.content_type or WORKLOAD_CT[wl] or "Audit.General"
  local f = { Workload = wl, Operation = spec.operation or "FileAccessed", RecordType = spec.record_type or 6,
              user = spec.user and self:find_user(spec.user) or self.admin, ResultStatus = spec.result or "Succeeded" }
  for k, v in pairs(spec) do if type(k) == "string" and k:match("^%u") then f[k] = v end end
  return self:mgmt_state_record(ct, f, spec.ms)
end

function MS:expire_blob(id) self.state.expired_blobs[id] = true end

function MS:content_obj(c, id, created)
  return { contentType = CONTENT_TYPES[c], contentId = id,
           contentUri = self.base_url .. "/api/v1.0/" .. self.tenant_id .. "/activity/feed/audit/" .. id,
           contentCreated = T.iso_ms(created), contentExpiration = T.iso_ms(created + 7 * 86400000) }
end

-- every available blob of content type c with start <= contentCreated < end, sorted by (created, id)
function MS:list_blobs(c, start, stop)
  local now = self:now_ms()
  local out = {}
  local B = self.blob_ms
  local s0 = (start - 7 * 3600000) // B - 1
  local s1 = stop // B
  for s = s0, s1 do
    local cr = self:blob_created(c, s)
    if cr >= start and cr < stop and cr <= now then
      local a, b = self:slot_range(c, s)
      if b > a then out[#out + 1] = { created = cr, id = self:blob_id(c, s) } end
    end
  end
  for _, r in ipairs(self.state.mgmt_stored) do
    if r.c == c and r.created >= start and r.created < stop and r.created <= now then out[#out + 1] = { created = r.created, id = r.id } end
  end
  table.sort(out, function(x, y) if x.created ~= y.created then return x.created < y.created end return x.id < y.id end)
  return out
end

function MS:mgmt_tenant_check(req)
  local tid = req.params.tid
  if not tid:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
    return self:mgmt_err(400, "AF20013", "The tenant ID passed in the URL (" .. tid .. ") is not a valid GUID.")
  end
  if tid ~= self.tenant_id or (req.token and req.token.tid ~= tid) then
    return self:mgmt_err(400, "AF20010", "The tenant ID passed in the URL (" .. tid .. ") does not match the tenant ID passed in the access token (" .. self.tenant_id .. ").")
  end
end

local function parse_mgmt_time(s)
  if not s then return nil end
  if s:match("^%d%d%d%d%-%d%d%-%d%d$") or s:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d$") or s:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d") then
    return T.parse_iso(s)
  end
end

function MS:mgmt_ct(req)
  local ct = req.query.contentType
  if not ct or ct == "" then return nil, { self:mgmt_err(400, "AF20001", "A required parameter is missing: contentType.") } end
  local c = CT_INDEX[ct]
  if not c then return nil, { self:mgmt_err(400, "AF20020", "The specified content type is not valid.") } end
  return c
end

function MS:sub_json(s)
  return { contentType = s.contentType, status = s.status,
           webhook = s.webhook and { status = s.webhook.status, address = s.webhook.address, authId = nz(s.webhook.authId),
                                     expiration = nz(s.webhook.expiration) } or jnull() }
end

function MS:h_mgmt_start(req)
  local e1, e2, e3 = self:mgmt_tenant_check(req); if e1 then return e1, e2, e3 end
  local c, err = self:mgmt_ct(req); if not c then return table.unpack(err) end
  local ct = CONTENT_TYPES[c]
  local st = self.state.mgmt_subs
  local s = st[ct] or { contentType = ct }
  local b = (req.body and req.body ~= "") and json().decode(req.body) or nil
  if req.body and req.body ~= "" and type(b) ~= "table" then return self:mgmt_err(400, "AF20002", "The request body is not valid JSON.") end
  if b and type(b.webhook) == "table" then
    local w = b.webhook
    local addr = w.address
    if type(addr) ~= "string" or not (addr:match("^https://") or addr:match("^http://127%.") or addr:match("^http://localhost")) then
      return self:mgmt_err(400, "AF20002", "The webhook address must be a valid HTTPS URL.")
    end
    if w.expiration and w.expiration ~= "" and w.expiration ~= jnull() then
      local ex = T.parse_iso(w.expiration)
      if not ex then return self:mgmt_err(400, "AF20002", "Invalid parameter type: expiration.") end
      if ex < self:now_ms() then return self:mgmt_err(400, "AF20003", "Expiration " .. w.expiration .. " provided is set to past date and time.") end
    end
    -- validation: POST {"validationCode": ...}; any 200 validates
    local code = T.uuid(self.seed, "validation", self:seq())
    local headers = { ["Content-Type"] = "application/json", ["Webhook-ValidationCode"] = code }
    if type(w.authId) == "string" then headers["Webhook-AuthID"] = w.authId end
    local res = T.host("http").request{ method = "POST", url = addr, headers = headers, body = json().encode{ validationCode = code }, timeout = 10 }
    if not res or res.status ~= 200 then
      return self:mgmt_err(400, "AF20021", "The webhook endpoint {" .. addr .. "} could not be validated. " .. (res and ("The endpoint returned HTTP " .. res.status .. ".") or "The endpoint did not respond."))
    end
    -- content that becomes available from now on is notified (see mgmt_pump); an update keeps the mark
    local since = s.webhook and s.webhook.since or self:now_ms() + 1
    s.webhook = { status = "enabled", address = addr, authId = type(w.authId) == "string" and w.authId or nil,
                  expiration = (type(w.expiration) == "string" and w.expiration ~= "") and w.expiration or nil,
                  since = since }
  end
  s.status = "enabled"
  st[ct] = s
  return 200, self:sub_json(s)
end

function MS:h_mgmt_stop(req)
  local e1, e2, e3 = self:mgmt_tenant_check(req); if e1 then return e1, e2, e3 end
  local c, err = self:mgmt_ct(req); if not c then return table.unpack(err) end
  local s = self.state.mgmt_subs[CONTENT_TYPES[c]]
  if not s then return self:mgmt_err(400, "AF20022", "No subscription found for the specified content type.") end
  s.status = "disabled"
  return 200, ""
end

function MS:h_mgmt_list(req)
  local e1, e2, e3 = self:mgmt_tenant_check(req); if e1 then return e1, e2, e3 end
  local out = {}
  for _, ct in ipairs(CONTENT_TYPES) do
    local s = self.state.mgmt_subs[ct]
    if s then out[#out + 1] = self:sub_json(s) end
  end
  return 200, A(out)
end

-- window checks shared by content and notifications listing; returns start, stop or an error answer
function MS:mgmt_window(req)
  local q = req.query
  local now = self:now_ms()
  local hs, he = q.startTime and q.startTime ~= "", q.endTime and q.endTime ~= ""
  if hs ~= he then
    return nil, { self:mgmt_err(400, "AF20055", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time no more than 7 days in the past.") }
  end
  if not hs then return now - 86400000, now + 1 end
  local a, b = parse_mgmt_time(q.startTime), parse_mgmt_time(q.endTime)
  if not a or not b then return nil, { self:mgmt_err(400, "AF20002", "Invalid parameter type: startTime/endTime.") } end
  if b <= a or b - a > 86400000 or a < now - 7 * 86400000 then
    return nil, { self:mgmt_err(400, "AF20055", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time no more than 7 days in the past.") }
  end
  return a, b
end

function MS:h_mgmt_content(req)
  local e1, e2, e3 = self:mgmt_tenant_check(req); if e1 then return e1, e2, e3 end
  local c, err = self:mgmt_ct(req); if not c then return table.unpack(err) end
  local s = self.state.mgmt_subs[CONTENT_TYPES[c]]
  if not s or s.status ~= "enabled" then return self:mgmt_err(400, "AF20022", "No subscription found for the specified content type.") end
  local a, b = self:mgmt_window(req)
  if not a then return table.unpack(b) end
  local blobs = self:list_blobs(c, a, b)
  local start = 1
  local np = req.query.nextPage
  if np and np ~= "" then
    local cms, cid = np:match("^(%d+)_(.+)$")
    if not cms then return self:mgmt_err(400, "AF20031", "Invalid nextPage Input: " .. np .. ".") end
    cms = math.tointeger(tonumber(cms))
    start = #blobs + 1
    for i, x in ipairs(blobs) do
      if x.created > cms or (x.created == cms and x.id > cid) then start = i; break end
    end
  end
  local size = self.opts.content_page or 200
  local out = {}
  for i = start, math.min(#blobs, start + size - 1) do out[#out + 1] = self:content_obj(c, blobs[i].id, blobs[i].created) end
  local hdr = {}
  if start + size - 1 < #blobs then
    local last = blobs[start + size - 1]
    local qs = T.qs{ { "contentType", CONTENT_TYPES[c] }, { "startTime", req.query.startTime }, { "endTime", req.query.endTime },
                     { "nextPage", string.format("%d_%s", last.created, last.id) } }
    hdr.NextPageUri = self.base_url .. "/api/v1/" .. self.tenant_id .. "/activity/feed/subscriptions/content?" .. qs
  end
  return 200, A(out), hdr
end

function MS:h_mgmt_blob(req)
  local e1, e2, e3 = self:mgmt_tenant_check(req); if e1 then return e1, e2, e3 end
  local id = req.params.cid
  local c, s, seq = self:parse_blob_id(id)
  if not c then return self:mgmt_err(400, "AF20052", "Content ID " .. id .. " in the URL is invalid.") end
  local now = self:now_ms()
  local records, created
  if seq then
    for _, r in ipairs(self.state.mgmt_stored) do if r.seq == seq and r.id == id then records, created = { r.rec }, r.created end end
  else
    if id == self:blob_id(c, s) then
      created = self:blob_created(c, s)
      local a, b = self:slot_range(c, s)
      if b > a and created <= now then records = true end
    end
  end
  if not records then return self:mgmt_err(404, "AF20050", "The specified content (" .. id .. ") doesn't exist.") end
  if self.state.expired_blobs[id] or created + 7 * 86400000 < now then
    return self:mgmt_err(404, "AF20051", "Content requested with the key " .. id .. " has already expired. Content older than 7 days cannot be retrieved.")
  end
  if records == true then records = self:blob_records(c, s) end
  return 200, A(records)
end

function MS:h_mgmt_notifications(req)
  local e1, e2, e3 = self:mgmt_tenant_check(req); if e1 then return e1, e2, e3 end
  local c, err = self:mgmt_ct(req); if not c then return table.unpack(err) end
  local a, b = self:mgmt_window(req)
  if not a then return table.unpack(b) end
  local out = {}
  for _, n in ipairs(self.state.mgmt_notifications) do
    if n.c == c and n.sent >= a and n.sent < b then
      local o = self:content_obj(c, n.id, n.created)
      o.notificationSent = T.iso_ms(n.sent)
      o.notificationStatus = n.rec.status == 200 and "success" or (n.rec.status == "pending" and "pending" or "failed")
      out[#out + 1] = o
    end
  end
  return 200, A(out)
end

function MS:h_dlp_types(req)
  return 200, A({ { id = "50842eb7-edc8-4019-85dd-5a5c1f2bb085", name = "CreditCardNumber" },
                  { id = "0e9b3178-9678-47dd-a509-37222ca96b42", name = "EUDebitCardNumber" },
                  { id = "a44669fe-0d48-453d-a9b1-2cc83f2cba77", name = "U.S. Social Security Number (SSN)" } })
end

-- One webhook notification (§7): a JSON array of the content objects of blobs {c=, id=, created=} of one
-- content type, with Webhook-AuthID; recorded in the notification history.
function MS:mgmt_send(c, blobs)
  local s = self.state.mgmt_subs[CONTENT_TYPES[c]]
  if #blobs == 0 or not s or s.status ~= "enabled" or not s.webhook or s.webhook.status ~= "enabled" then return end
  local list = {}
  for i, b in ipairs(blobs) do
    local o = self:content_obj(c, b.id, b.created)
    o.tenantId = self.tenant_id
    o.clientId = self.client_id
    list[i] = o
  end
  local headers = { ["Content-Type"] = "application/json" }
  if s.webhook.authId then headers["Webhook-AuthID"] = s.webhook.authId end
  local d = { url = s.webhook.address, headers = headers, body = json().encode(A(list)), event = CONTENT_TYPES[c], retries = 2, timeout = 10 }
  local sent = self:now_ms()
  for _, b in ipairs(blobs) do
    self.state.mgmt_notifications[#self.state.mgmt_notifications + 1] = { c = c, id = b.id, created = b.created, sent = sent, rec = d }
  end
  self:deliver(d)
end

-- webhook notification for a newly available stored blob
function MS:mgmt_notify(rec) self:mgmt_send(rec.c, { rec }) end

-- Generated blobs become available as the tenant clock moves: notify those that did since the last
-- pump (or the webhook's start), one notification per content type.  Runs on t:advance(); a test (or
-- a host that lets real time pass) calls t:mgmt_pump().
function MS:mgmt_pump()
  local now = self:now_ms()
  for c, ct in ipairs(CONTENT_TYPES) do
    local s = self.state.mgmt_subs[ct]
    local w = s and s.webhook
    if s and s.status == "enabled" and w and w.status == "enabled" and (w.since or now + 1) <= now then
      local due = {}
      for _, b in ipairs(self:list_blobs(c, w.since, now + 1)) do
        local _, _, seq = self:parse_blob_id(b.id)
        if not seq then due[#due + 1] = b end          -- stored blobs were notified when stored
      end
      w.since = now + 1
      self:mgmt_send(c, due)
    end
  end
end

function MS:advance(seconds)
  T.Base.advance(self, seconds)
  self:mgmt_pump()
end

function MS:mgmt_routes()
  local R = {}
  for _, v in ipairs({ "/api/v1.0/:tid/activity/feed", "/api/v1/:tid/activity/feed" }) do
    R[#R + 1] = { "POST", v .. "/subscriptions/start", MS.h_mgmt_start, {} }
    R[#R + 1] = { "POST", v .. "/subscriptions/stop", MS.h_mgmt_stop, {} }
    R[#R + 1] = { "GET", v .. "/subscriptions/list", MS.h_mgmt_list, {} }
    R[#R + 1] = { "GET", v .. "/subscriptions/content", MS.h_mgmt_content, {} }
    R[#R + 1] = { "GET", v .. "/subscriptions/notifications", MS.h_mgmt_notifications, {} }
    R[#R + 1] = { "GET", v .. "/audit/:cid", MS.h_mgmt_blob, {} }
    R[#R + 1] = { "GET", v .. "/resources/dlpSensitiveTypes", MS.h_dlp_types, {} }
  end
  return R
end

-- ground truth: unique records (generated + stored) whose blob is listed with start <= contentCreated < stop
-- and already available; duplicates counted once
function MS:mgmt_available(ct, start, stop)
  local now = self:now_ms()
  stop = math.min(stop or (now + 1), now + 1)
  start = start or (now - 7 * 86400000)
  local n = 0
  for c = 1, #CONTENT_TYPES do
    if not ct or CONTENT_TYPES[c] == ct then
      for _, b in ipairs(self:list_blobs(c, start, stop)) do
        local _, s = self:parse_blob_id(b.id)
        if s then local a, e = self:slot_range(c, s); n = n + (e - a) else n = n + 1 end
      end
    end
  end
  return n
end

-- ground truth: unique records of content type ct (or all)
function MS:mgmt_count(ct)
  local n = 0
  for c = 1, #CONTENT_TYPES do
    if not ct or CONTENT_TYPES[c] == ct then n = n + self:mgmt_n(c) end
  end
  for _, r in ipairs(self.state.mgmt_stored) do if not ct or CONTENT_TYPES[r.c] == ct then n = n + 1 end end
  return n
end


return { CONTENT_TYPES = CONTENT_TYPES }
