-- sandbox/microsoft/common.lua — what the Microsoft emulator's pieces share: the tenant class (MS),
-- JSON helpers, the resources and built-in roles, fast hashing for the lazy streams, timestamp formats.
local T = require "sandbox.tenant"

local C = {}
local MS = setmetatable({}, { __index = T.Base })
MS.__index = MS
MS.default_rate_limit = 2000
C.T, C.MS = T, MS

local function json() return T.host("json") end
local function crypto() return T.host("crypto") end
local function jnull() return json().null end
local function A(t) return json().array(t or {}) end
local function obj() return setmetatable({}, { __jsontype = "object" }) end
local function nz(v) if v == nil then return jnull() end return v end
C.json, C.crypto, C.jnull, C.A, C.obj, C.nz = json, crypto, jnull, A, obj, nz

C.RESOURCES = {
  graph = "https://graph.microsoft.com", mgmt = "https://manage.office.com", arm = "https://management.azure.com",
}
local RES_APPID = { graph = "00000003-0000-0000-c000-000000000000", mgmt = "c5393580-f805-4401-95e8-94b7a6ef2fc2",
                    arm = "797f4846-ba00-4fd7-ba43-dac1f8f63013" }
local MS_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"   -- Microsoft Services (first-party apps)
C.RES_APPID, C.MS_TENANT = RES_APPID, MS_TENANT

-- Entra built-in roles: {displayName, templateId, description}
local DIR_ROLES = {
  { "Global Administrator", "62e90394-69f5-4237-9190-012177145e10", "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities." },
  { "Security Administrator", "194ae4cb-b126-40b2-bd5b-6091b380977d", "Can read security information and reports, and manage configuration in Microsoft Entra ID and Office 365." },
  { "Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509", "Can read security information and reports in Microsoft Entra ID and Office 365." },
  { "Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Can read everything that a Global Administrator can, but not update anything." },
  { "User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1", "Can manage all aspects of users and groups, including resetting passwords for limited admins." },
  { "Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de", "Can manage all aspects of the Exchange product." },
  { "SharePoint Administrator", "f28a1f50-f6e7-4571-818b-6a12f2af6b6c", "Can manage all aspects of the SharePoint service." },
  { "Privileged Role Administrator", "e8611ab8-c189-46e8-94e1-60213ab1f814", "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged Identity Management." },
}
local ROLE_BY_NAME = {}
for _, r in ipairs(DIR_ROLES) do ROLE_BY_NAME[r[1]] = r end

-- Azure built-in roles: {roleName, guid, description, actions, notActions}
local ARM_ROLES = {
  { "Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.", { "*" }, {} },
  { "Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c", "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.", { "*" },
    { "Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write", "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action" } },
  { "User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "Lets you manage user access to Azure resources.", { "*/read", "Microsoft.Authorization/*", "Microsoft.Support/*" }, {} },
  { "Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7", "View all resources, but does not allow you to make any changes.", { "*/read" }, {} },
  { "Role Based Access Control Administrator", "f58310d9-a9f6-439a-9e8d-f62e7b41a168", "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow you to manage access using other ways, such as Azure Policy.",
    { "Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete", "*/read", "Microsoft.Support/*" }, {} },
}
local ARM_ROLE_BY_NAME, ARM_ROLE_BY_ID = {}, {}
for _, r in ipairs(ARM_ROLES) do ARM_ROLE_BY_NAME[r[1]] = r; ARM_ROLE_BY_ID[r[2]] = r end
C.DIR_ROLES, C.ROLE_BY_NAME, C.ARM_ROLES, C.ARM_ROLE_BY_NAME, C.ARM_ROLE_BY_ID = DIR_ROLES, ROLE_BY_NAME, ARM_ROLES, ARM_ROLE_BY_NAME, ARM_ROLE_BY_ID

-- shared by the directory, the sign-in log and the Management Activity records
local CITIES = {   -- city, state, countryOrRegion, lat, lon
  { "Redmond", "Washington", "US", 47.6740, -122.1215 }, { "New York", "New York", "US", 40.7128, -74.0060 },
  { "Seattle", "Washington", "US", 47.6062, -122.3321 }, { "London", "England", "GB", 51.5072, -0.1276 },
  { "Berlin", "Berlin", "DE", 52.5200, 13.4050 }, { "Toronto", "Ontario", "CA", 43.6532, -79.3832 },
}
local DEVICES = { { "Windows 10", "Edge 126.0.0" }, { "MacOs", "Chrome 127.0.0" }, { "Ios", "Mobile Safari 17.5" },
  { "Android", "Chrome Mobile 126.0" }, { "Windows 10", "Rich Client 16.0.17" } }
local SIGNIN_APPS = {   -- appDisplayName, appId, resourceDisplayName, resourceId, clientAppUsed
  { "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Browser" },
  { "Microsoft Teams", "1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams Services", "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Mobile Apps and Desktop clients" },
  { "Office 365 SharePoint Online", "00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online", "00000003-0000-0ff1-ce00-000000000000", "Browser" },
  { "Azure Portal", "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Windows Azure Service Management API", "797f4846-ba00-4fd7-ba43-dac1f8f63013", "Browser" },
  { "Graph Explorer", "de8bc8b5-d9f9-48b1-a8ad-b748da725064", "Microsoft Graph", "00000003-0000-0000-c000-000000000000", "Browser" },
  { "Microsoft Office", "d3590ed6-52b3-4102-aeff-aad2292ab01c", "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Mobile Apps and Desktop clients" },
  { "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "IMAP4" },
  { "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Exchange ActiveSync" },
}
C.CITIES, C.DEVICES, C.SIGNIN_APPS = CITIES, DEVICES, SIGNIN_APPS

---------------------------------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------------------------------
-- Hot-path derivation for the lazy streams (the base's T.hash with string salts costs a mix per
-- character): sub(h, k) is an independent 64-bit value derived from one record hash h.
local GOLDEN = -7046029254386353131
local function mix(z)
  z = (z ~ (z >> 30)) * -4658895280553007687
  z = (z ~ (z >> 27)) * -7723592293110705685
  return z ~ (z >> 31)
end
local function sub(h, k) return mix(h + k * GOLDEN) end
local function below(h, n) return (h >> 1) % n end
local function unit(h) return (h >> 11) * (1.0 / 9007199254740992.0) end
local function fuuid(h)
  local a, b = mix(h + 101 * GOLDEN), mix(h + 102 * GOLDEN)
  return string.format("%08x-%04x-4%03x-a%03x-%012x", (a >> 32) & 0xffffffff, (a >> 16) & 0xffff, a & 0xfff,
                       (b >> 52) & 0xfff, b & 0xffffffffffff)
end
local function fhex(h, n) return string.format("%016x%016x", mix(h + 103 * GOLDEN), mix(h + 104 * GOLDEN)):sub(1, n) end

-- "2024-12-27T10:01:19.5796748Z": Graph/ARM spell fractions with 7 digits
local function iso7(ms)
  if ms == nil then return jnull() end
  return (T.iso_ms(ms):gsub("Z$", "0000Z"))
end
local function isoz(ms) if ms == nil then return jnull() end return T.iso_s(ms // 1000) end
-- Management Activity API: "2015-06-29T20:03:19" (UTC, no zone)
local day_cache = {}
local function iso_mgmt(ms)
  local sec = ms // 1000
  local day, rem = sec // 86400, sec % 86400
  local d = day_cache[day]
  if not d then d = T.iso_s(day * 86400):sub(1, 10); day_cache[day] = d end
  return string.format("%sT%02d:%02d:%02d", d, rem // 3600, rem % 3600 // 60, rem % 60)
end

local function ip_of(h)
  return string.format("%d.%d.%d.%d", 20 + T.below(T.hash(h, 1), 180), T.below(T.hash(h, 2), 256),
                       T.below(T.hash(h, 3), 256), 1 + T.below(T.hash(h, 4), 254))
end

-- query-string builder that keeps OData's `$` literal (as Graph's own links do)
local function odata_qs(list)
  local out = {}
  for _, kv in ipairs(list) do
    if kv[2] ~= nil then out[#out + 1] = kv[1] .. "=" .. T.urlencode(kv[2]) end
  end
  return table.concat(out, "&")
end

C.sub, C.below, C.unit, C.fuuid, C.fhex, C.iso7, C.isoz, C.iso_mgmt, C.ip_of, C.odata_qs = sub, below, unit, fuuid, fhex, iso7, isoz, iso_mgmt, ip_of, odata_qs

-- timestamp of record i of n in a lazy stream spread over the tenant's days (logs, Management, ARM)
local function spread_ms(self, stream, n, i)
  local span = self.days * 86400000
  local bases = self._stream_base
  if not bases then bases = {}; self._stream_base = bases end
  local b = bases[stream]
  if not b then b = T.hash(self.seed, stream, "t"); bases[stream] = b end
  return self.t0_ms - span + math.floor((i + unit(sub(b, i))) * span / n)
end
C.spread_ms = spread_ms

-- file name extensions of generated drive items and SharePoint audit records
local FILE_EXT = { "docx", "xlsx", "pptx", "pdf", "txt", "png", "csv" }
C.FILE_EXT = FILE_EXT

-- Graph/ARM $skiptoken
local function enc_skip(s) return "RFNwdAIA" .. crypto().b64url(s) end
local function dec_skip(s)
  if type(s) ~= "string" or s:sub(1, 8) ~= "RFNwdAIA" then return nil end
  return crypto().unb64url(s:sub(9))
end

local function body_json(req)
  local b = json().decode(req.body or "")
  if type(b) ~= "table" then return nil end
  return b
end

C.enc_skip, C.dec_skip, C.body_json = enc_skip, dec_skip, body_json

return C
