-- sandbox/microsoft.lua — a Microsoft cloud tenant emulator: the identity platform token endpoint,
-- Microsoft Graph v1.0 (directory, audit logs, sign-ins, OAuth grants, OneDrive/SharePoint files,
-- change notifications), the Office 365 Management Activity API and Azure Resource Manager
-- (activity log, RBAC), following /work/shared/api/{microsoft-graph,office365-management,azure}.md.
--
--   local ms = require "sandbox.microsoft"
--   local t = ms.new{seed=1, users=50, groups=8, domain="contoso.com", signins=2000, audits=500,
--                    mgmt_records_per_day=2000, days=7, files_per_user=5, subscriptions=2,
--                    client_id=..., client_secret=...}
--   t:mount(srv[, prefix])      -- every host on one server: login, graph (/v1.0), manage (/api/v1.0), ARM
--
-- t.urls = {login=, graph=, mgmt=, arm=} after mount (all on srv.url); t.tenant_id, t.client_id, t.admin.
-- Test helpers: t:count(what[, arg]) ground truth ("users", "users_enabled", "users_disabled", "guests",
-- "groups", "members"[, group id], "directory_roles", "role_assignments", "service_principals", "grants",
-- "audits", "signins", "drives", "sites", "items"/"files"/"folders"/"permissions"/"shared_items"/
-- "deleted_items"[, drive id], "graph_subscriptions", "mgmt_records"[, content type], "mgmt_available"
-- [, content type], "mgmt_stored", "arm_subscriptions", "arm_role_assignments"[, sub id or role name],
-- "arm_events"[, sub id]); t:add_signin{user=, errorCode=, city=, countryOrRegion=, latitude=, longitude=,
-- ip=, clientAppUsed=, app=, ms=}; t:add_record{workload=, operation=, record_type=, user=, ms=, <Field>=};
-- t:expire_delta() (drive and user delta tokens go stale: 410); t:expire_blob(contentId) (AF20051);
-- t:expire_tokens(); t:fault{...}, t:set_rate_limit(n, window), t:advance(s) (also notifies Management
-- webhooks of the blobs that became available: t:mgmt_pump()), t:flush() from the base.
--
-- Tokens are opaque strings bound to one resource (Graph, Management, ARM).  Large logs (sign-ins,
-- directory audits, Management Activity records, ARM activity log) are generated lazily: record i
-- of a stream is a pure function of (seed, stream, i) with timestamps monotonic in i; only records
-- caused by state changes or added by tests are stored.
local T = require "sandbox.tenant"

local M = {}
local MS = setmetatable({}, { __index = T.Base })
MS.__index = MS
MS.default_rate_limit = 2000

local function json() return T.host("json") end
local function crypto() return T.host("crypto") end
local function jnull() return json().null end
local function A(t) return json().array(t or {}) end
local function obj() return setmetatable({}, { __jsontype = "object" }) end
local function nz(v) if v == nil then return jnull() end return v end

M.RESOURCES = {
  graph = "https://graph.microsoft.com", mgmt = "https://manage.office.com", arm = "https://management.azure.com",
}
local RES_APPID = { graph = "00000003-0000-0000-c000-000000000000", mgmt = "c5393580-f805-4401-95e8-94b7a6ef2fc2",
                    arm = "797f4846-ba00-4fd7-ba43-dac1f8f63013" }
local MS_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"   -- Microsoft Services (first-party apps)

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
M.DIR_ROLES = DIR_ROLES
local ROLE_BY_NAME = {}
for _, r in ipairs(DIR_ROLES) do ROLE_BY_NAME[r[1]] = r end

-- Azure built-in roles: {roleName, guid, description, actions, notActions}
local ARM_ROLES = {
  { "Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.", { "*" }, {} },
  { "Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c", "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.", { "*" },
    { "Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write", "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action" } },
  { "User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "Lets you manage user access to Azure resources.", { "*/read", "Microsoft.Authorization/*", "Microsoft.Support/*" }, {} },
  { "Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7", "View all resources, but does not allow you to make any changes.", { "*/read" }, {} },
}
M.ARM_ROLES = ARM_ROLES
local ARM_ROLE_BY_NAME, ARM_ROLE_BY_ID = {}, {}
for _, r in ipairs(ARM_ROLES) do ARM_ROLE_BY_NAME[r[1]] = r; ARM_ROLE_BY_ID[r[2]] = r end

local FIRST = { "Adele", "Alex", "Allan", "Christie", "Debra", "Diego", "Emily", "Enrico", "Grady", "Henrietta",
  "Irvin", "Isaiah", "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep",
  "Raul", "Sofia", "Tomas", "Uma", "Vikram", "Wanda", "Yara", "Zoltan" }
local LAST = { "Vance", "Wilber", "Deyoung", "Cline", "Berg", "Siciliani", "Braun", "Catteneo", "Archie", "Gonzalez",
  "Sayers", "Langer", "Lanier", "Sherman", "Gu", "Holloway", "Robbins", "Bowen", "Graham", "Wilke", "Fernandez",
  "Gupta", "Okafor", "Novak", "Kowalski", "Tanaka", "Moreau", "Silva" }
local DEPTS = { "Engineering", "Sales", "Marketing", "Finance", "Legal", "IT", "HR", "Operations", "Retail" }
local TITLES = { "Engineer", "Senior Engineer", "Marketing Manager", "Director", "Analyst", "Sales Rep", "Attorney", "IT Admin" }
local OFFICES = { "12/1110", "131/1104", "20/1101", "18/2111", "19/3123", "98/2202" }
local GROUP_NAMES = { "Sales and Marketing", "Retail", "U.S. Sales", "Mark 8 Project Team", "Digital Initiative Public Relations",
  "Leadership", "Finance", "IT Admins", "Engineering", "Contractors", "Legal", "Security", "Design", "Data", "Operations" }
local CITIES = {   -- city, state, countryOrRegion, lat, lon
  { "Redmond", "Washington", "US", 47.6740, -122.1215 }, { "New York", "New York", "US", 40.7128, -74.0060 },
  { "Seattle", "Washington", "US", 47.6062, -122.3321 }, { "London", "England", "GB", 51.5072, -0.1276 },
  { "Berlin", "Berlin", "DE", 52.5200, 13.4050 }, { "Toronto", "Ontario", "CA", 43.6532, -79.3832 },
}
local FOREIGN = { { "Lagos", "Lagos", "NG", 6.5244, 3.3792 }, { "Moscow", "Moscow", "RU", 55.7558, 37.6173 },
  { "Sao Paulo", "Sao Paulo", "BR", -23.5505, -46.6333 }, { "Pyongyang", "Pyongyang", "KP", 39.0392, 125.7625 } }
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
local SIGNIN_FAIL = {
  { 50126, "Error validating credentials due to invalid username or password." },
  { 50053, "The account is locked, you've tried to sign in too many times with an incorrect user ID or password." },
  { 50074, "Strong Authentication is required." },
  { 53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance." },
  { 50057, "The user account is disabled." },
}
-- third-party / line-of-business apps that hold delegated grants
local THIRD_APPS = { { "Contoso Expenses", "Contoso" }, { "Slack", "Slack Technologies" }, { "Zoom", "Zoom Video Communications" },
  { "Free PDF Converter", nil }, { "Adobe Acrobat", "Adobe Inc." }, { "Mail Merge Pro", nil } }
local DELEGATED_SCOPES = { "User.Read", "openid profile email offline_access User.Read", "Mail.Read Mail.Send offline_access",
  "Files.ReadWrite.All Sites.Read.All offline_access", "User.Read Calendars.ReadWrite Contacts.Read",
  "Directory.ReadWrite.All Mail.ReadWrite Files.ReadWrite.All offline_access" }

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
M.iso7, M.iso_mgmt = iso7, iso_mgmt

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

---------------------------------------------------------------------------------------------------
-- OData $filter: comparisons (eq ne gt ge lt le), and/or/not, parentheses, startswith/endswith/
-- contains, lambda any/all over collections (groupTypes/any(c:c eq 'Unified')).  Paths use `/`.
-- Returns predicate(obj) -> bool, or nil, err.
---------------------------------------------------------------------------------------------------
local function odata_tokens(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then i = i + 1
    elseif c == "(" or c == ")" or c == "," or c == ":" then toks[#toks + 1] = { t = c }; i = i + 1
    elseif c == "'" then
      local buf, j = {}, i + 1
      while true do
        if j > n then return nil, "unterminated string literal" end
        local d = s:sub(j, j)
        if d == "'" then
          if s:sub(j + 1, j + 1) == "'" then buf[#buf + 1] = "'"; j = j + 2 else break end
        else buf[#buf + 1] = d; j = j + 1 end
      end
      toks[#toks + 1] = { t = "val", v = table.concat(buf) }; i = j + 1
    else
      local dt = s:match("^%d%d%d%d%-%d%d%-%d%dT[%d:%.]+Z", i) or s:match("^%d%d%d%d%-%d%d%-%d%dT[%d:%.]+[+-]%d%d:%d%d", i)
                 or s:match("^%d%d%d%d%-%d%d%-%d%dT[%d:%.]+", i)
      if dt then toks[#toks + 1] = { t = "val", v = dt }; i = i + #dt
      elseif s:match("^%-?%d", i) then
        local num = s:match("^%-?%d+%.?%d*", i)
        toks[#toks + 1] = { t = "val", v = tonumber(num) }; i = i + #num
      else
        local w = s:match("^[%w_%./@#%$]+", i)
        if not w then return nil, "unexpected character '" .. c .. "'" end
        i = i + #w
        local lw = w:lower()
        if lw == "true" then toks[#toks + 1] = { t = "val", v = true }
        elseif lw == "false" then toks[#toks + 1] = { t = "val", v = false }
        elseif lw == "null" then toks[#toks + 1] = { t = "val", v = T.NULL }
        elseif lw == "and" or lw == "or" or lw == "not" then toks[#toks + 1] = { t = lw }
        else toks[#toks + 1] = { t = "word", v = w } end
      end
    end
  end
  return toks
end

local function isnull(v) return v == nil or v == T.NULL or v == jnull() end

local function resolve(ctx, path)
  local v, first = nil, true
  for seg in path:gmatch("[^/]+") do
    if first then
      first = false
      if ctx.vars[seg] ~= nil then v = ctx.vars[seg]
      else v = ctx.root; if type(v) ~= "table" then return nil end; v = v[seg] end
    else
      if type(v) ~= "table" then return nil end
      v = v[seg]
    end
  end
  return v
end

local function ocompare(op, a, b)
  if b == T.NULL then
    if op == "eq" then return isnull(a) elseif op == "ne" then return not isnull(a) end
    return false
  end
  if isnull(a) then return op == "ne" end
  if type(a) == "string" and type(b) == "string" then
    local ta, tb = T.parse_iso(a), T.parse_iso(b)
    if ta and tb and a:find("T") and b:find("T") then a, b = ta, tb else a, b = a:lower(), b:lower() end
  elseif type(a) ~= type(b) then
    if op == "ne" then return true end
    return false
  end
  if op == "eq" then return a == b elseif op == "ne" then return a ~= b
  elseif op == "gt" then return a > b elseif op == "ge" then return a >= b
  elseif op == "lt" then return a < b elseif op == "le" then return a <= b end
  return false
end
local CMP = { eq = true, ne = true, gt = true, ge = true, lt = true, le = true }

function M.odata_filter(expr)
  local toks, terr = odata_tokens(expr or "")
  if not toks then return nil, terr end
  local pos = 1
  local function peek() return toks[pos] end
  local function take() pos = pos + 1; return toks[pos - 1] end
  local function expect(t) local x = take(); if not x or x.t ~= t then error("expected '" .. t .. "'", 0) end; return x end
  local parse_or
  local function primary()
    local t = take()
    if not t then error("unexpected end of $filter", 0) end
    if t.t == "(" then local f = parse_or(); expect(")"); return f end
    if t.t == "not" then local f = primary(); return function(c) return not f(c) end end
    if t.t ~= "word" then error("syntax error in $filter", 0) end
    local nx = peek()
    if nx and nx.t == "(" then
      local name, lname = t.v, t.v:lower()
      take()
      local quant = lname:match("/(any)$") or lname:match("/(all)$")
      if quant then
        local coll = name:sub(1, -5)
        local var = take()
        if not var or var.t ~= "word" then error("lambda variable expected", 0) end
        expect(":")
        local body = parse_or()
        expect(")")
        return function(c)
          local list = resolve(c, coll)
          if type(list) ~= "table" then return false end
          for _, el in ipairs(list) do
            local vars = setmetatable({ [var.v] = el }, { __index = c.vars })
            local ok = body({ root = c.root, vars = vars })
            if quant == "any" and ok then return true end
            if quant == "all" and not ok then return false end
          end
          return quant == "all"
        end
      elseif lname == "startswith" or lname == "endswith" or lname == "contains" then
        local p = take()
        if not p or p.t ~= "word" then error(name .. ": property expected", 0) end
        expect(",")
        local v = take()
        if not v or v.t ~= "val" or type(v.v) ~= "string" then error(name .. ": string expected", 0) end
        expect(")")
        local needle = v.v:lower()
        return function(c)
          local x = resolve(c, p.v)
          if type(x) ~= "string" then return false end
          x = x:lower()
          if lname == "startswith" then return x:sub(1, #needle) == needle
          elseif lname == "endswith" then return #needle == 0 or x:sub(-#needle) == needle end
          return x:find(needle, 1, true) ~= nil
        end
      end
      error("unsupported function '" .. name .. "'", 0)
    end
    local op = take()
    if not op or op.t ~= "word" or not CMP[op.v:lower()] then error("operator expected after '" .. t.v .. "'", 0) end
    local v = take()
    if not v or v.t ~= "val" then error("value expected after '" .. op.v .. "'", 0) end
    local path, o, val = t.v, op.v:lower(), v.v
    return function(c) return ocompare(o, resolve(c, path), val) end
  end
  local function parse_and()
    local f = primary()
    while peek() and peek().t == "and" do
      take()
      local a, g = f, primary()
      f = function(c) return a(c) and g(c) end
    end
    return f
  end
  parse_or = function()
    local f = parse_and()
    while peek() and peek().t == "or" do
      take()
      local a, g = f, parse_and()
      f = function(c) return a(c) or g(c) end
    end
    return f
  end
  local ok, f = pcall(parse_or)
  if not ok then return nil, f end
  if pos <= #toks then return nil, "syntax error near token " .. pos end
  return function(o) return f({ root = o, vars = {} }) end
end

-- `prop ge <datetime>` bound from a raw $filter (lets a log scan start/stop early)
local function time_bound(filter, prop, ops)
  if not filter then return nil end
  for _, op in ipairs(ops) do
    local v = filter:match(prop .. "%s+" .. op .. "%s+'?([%d%-T:%.Z+]+)'?")
    if v then return T.parse_iso(v) end
  end
end

---------------------------------------------------------------------------------------------------
-- Construction
---------------------------------------------------------------------------------------------------
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, MS)
  T.Base.init(self, opts)
  local seed = self.seed
  self.tenant_id = opts.tenant_id or T.uuid(seed, "tenant")
  self.domain = opts.domain or "contoso.com"
  local short = (self.domain:match("^([^%.]+)") or "contoso"):lower()
  self.initial_domain = short .. ".onmicrosoft.com"
  self.sp_host = "https://" .. short .. ".sharepoint.com"            -- SharePoint/OneDrive web URLs (not served)
  self.my_host = "https://" .. short .. "-my.sharepoint.com"
  self.nusers = opts.users or 50
  self.ngroups = opts.groups or 8
  self.days = opts.days or 7
  self.nsignins = opts.signins or 2000
  -- Microsoft Entra ID P1 or P2 in the tenant (false: the free edition, whose sign-in logs Graph refuses)
  self.entra_premium = opts.entra_premium ~= false
  self.naudits = opts.audits or 500
  self.files_per_user = opts.files_per_user or 5
  self.nsubs = opts.subscriptions or 2
  self.client_id = opts.client_id or T.uuid(seed, "client")
  self.client_secret = opts.client_secret or "sandbox~secret.value"
  self.client_cert = opts.client_certificate           -- PEM public key/cert for client_assertion
  self.client_name = opts.client_name or "cachost connector"
  self.client_roles = opts.client_roles or { "Security Administrator" }
  self.arm_client_roles = opts.arm_client_roles or { "Reader", "User Access Administrator" }
  local per_day = opts.mgmt_records_per_day or 2000
  self.nmgmt = opts.mgmt_records or math.floor(per_day * self.days)
  self.arm_events = opts.arm_events or math.floor((opts.arm_events_per_day or 40) * self.days)
  self.blob_ms = math.floor((opts.blob_minutes or 15) * 60000)
  self.dup_share = opts.duplicate_share or 0.01
  self.tokens, self.codes, self.refresh = {}, {}, {}
  self.nseq = 0
  self.delta_epoch = 1
  self:generate()
  return self
end

function MS:seq() self.nseq = self.nseq + 1; return self.nseq end

-- stable per-tenant identifiers, computed once
function MS:const(name, k)
  local c = self._const
  if not c then c = {}; self._const = c end
  local key = name .. ":" .. k
  local v = c[key]
  if not v then v = T.uuid(self.seed, name, k); c[key] = v end
  return v
end


function MS:generate()
  local seed, r = self.seed, T.rng(self.seed, "microsoft")
  local now = self.t0_ms
  local st = { users = {}, user_by_id = {}, user_by_upn = {}, groups = {}, group_by_id = {}, sps = {}, sp_by_id = {},
               grants = {}, role_assignments = {}, audits = {}, signins = {}, drives = {}, drive_by_id = {},
               items = {}, sites = {}, subscriptions = {}, mgmt_subs = {}, mgmt_stored = {}, mgmt_notifications = {},
               arm_subs = {}, arm_sub_by_id = {}, arm_assignments = {}, arm_events = {}, expired_blobs = {},
               deleted_users = {} }
  self.state = st
  -- users (generation order = index; listing order = id)
  local used = {}
  for i = 1, self.nusers do
    local first, last = r:pick(FIRST), r:pick(LAST)
    local nick = (first .. last:sub(1, 1)):gsub("[^%w]", "")
    local k = 1
    while used[nick:lower()] do k = k + 1; nick = first .. last:sub(1, 1) .. k end
    used[nick:lower()] = true
    local guest = i > 2 and r:chance(0.08)
    local u = {
      id = T.uuid(seed, "user", i), index = i, givenName = first, surname = last, displayName = first .. " " .. last,
      jobTitle = r:pick(TITLES), department = r:pick(DEPTS), officeLocation = r:pick(OFFICES),
      mobilePhone = r:chance(0.5) and string.format("+1 425 555 %04d", r:int(0, 9999)) or nil,
      businessPhones = r:chance(0.6) and { string.format("+1 425 555 %04d", r:int(0, 9999)) } or {},
      preferredLanguage = "en-US", accountEnabled = true, userType = "Member",
      created = now - r:int(60, 1200) * 86400000 - r:int(0, 86399999),
      city = r:int(1, #CITIES), device = r:int(1, #DEVICES), forceChange = false,
    }
    u.ip = ip_of(T.hash(seed, "uip", i))
    if guest then
      local ext = nick:lower() .. "@" .. r:pick({ "gmail.com", "outlook.com", "fabrikam.com", "partner.example" })
      u.userType = "Guest"
      u.mail = ext
      u.upn = ext:gsub("@", "_") .. "#EXT#@" .. self.initial_domain
      u.externalUserState = r:chance(0.8) and "Accepted" or "PendingAcceptance"
      u.jobTitle, u.department, u.officeLocation = nil, nil, nil
    else
      u.upn = nick .. "@" .. self.domain
      u.mail = u.upn
    end
    if i > 1 and r:chance(0.06) then u.accountEnabled = false end
    u.enabled0 = u.accountEnabled            -- generated history depends on the initial state only
    u.lastPasswordChange = u.created + r:int(1, 50) * 86400000
    u.sessionsValidFrom = u.lastPasswordChange
    u.lastSignIn = u.accountEnabled and (now - r:int(60, 20 * 86400) * 1000) or nil
    st.users[#st.users + 1] = u
    st.user_by_id[u.id] = u
    st.user_by_upn[u.upn:lower()] = u
  end
  self.gen_users = {}
  for i, u in ipairs(st.users) do self.gen_users[i] = u end
  table.sort(st.users, function(a, b) return a.id < b.id end)
  self.admin = self.gen_users[1]
  self.admin.jobTitle = "IT Admin"

  -- groups: Microsoft 365 (Unified) groups and security groups
  for i = 1, self.ngroups do
    local name = GROUP_NAMES[(i - 1) % #GROUP_NAMES + 1] .. (i > #GROUP_NAMES and (" " .. (i // #GROUP_NAMES + 1)) or "")
    local unified = (i % 3) ~= 0
    local nick = name:gsub("[^%w]", "")
    local g = { id = T.uuid(seed, "group", i), index = i, displayName = name, description = "Group for " .. name,
                mailNickname = nick, mailEnabled = unified, securityEnabled = not unified or i == 1,
                groupTypes = unified and { "Unified" } or {}, visibility = unified and (i % 2 == 0 and "Public" or "Private") or nil,
                isAssignableToRole = (i == 8), created = now - r:int(100, 900) * 86400000, members = {}, member_set = {} }
    g.mail = unified and (nick .. "@" .. self.domain) or nil
    for _, u in ipairs(self.gen_users) do
      if r:chance(0.35) then g.members[#g.members + 1] = u.id; g.member_set[u.id] = true end
    end
    g.owner = g.members[1]
    st.groups[#st.groups + 1] = g
    st.group_by_id[g.id] = g
  end
  table.sort(st.groups, function(a, b) return a.id < b.id end)

  -- service principals: first-party resources, the connector's own app, third-party apps
  local function addsp(key, appId, name, owner_tid, publisher)
    local sp = { id = T.uuid(seed, "sp", key), appId = appId, displayName = name, accountEnabled = true,
                 appOwnerOrganizationId = owner_tid, publisherName = publisher, created = now - r:int(30, 700) * 86400000 }
    st.sps[#st.sps + 1] = sp
    st.sp_by_id[sp.id] = sp
    return sp
  end
  self.sp_graph = addsp("graph", RES_APPID.graph, "Microsoft Graph", MS_TENANT, "Microsoft Services")
  self.sp_mgmt = addsp("mgmt", RES_APPID.mgmt, "Office 365 Management APIs", MS_TENANT, "Microsoft Services")
  self.sp_arm = addsp("arm", RES_APPID.arm, "Windows Azure Service Management API", MS_TENANT, "Microsoft Services")
  self.sp_client = addsp("client", self.client_id, self.client_name, self.tenant_id, "Contoso")
  local third = {}
  for i, a in ipairs(THIRD_APPS) do
    third[i] = addsp("third" .. i, T.uuid(seed, "appid", i), a[1], a[2] and T.uuid(seed, "pubtenant", i) or T.uuid(seed, "unverified", i), a[2] or jnull())
  end
  table.sort(st.sps, function(a, b) return a.id < b.id end)

  -- delegated permission grants (to Microsoft Graph)
  local gi = 0
  local function addgrant(sp, ctype, principal, scope)
    gi = gi + 1
    local g = { id = T.b62(43, seed, "grant", gi), clientId = sp.id, consentType = ctype, principalId = principal,
                resourceId = self.sp_graph.id, scope = scope }
    st.grants[#st.grants + 1] = g
  end
  addgrant(third[1], "AllPrincipals", nil, DELEGATED_SCOPES[2])
  addgrant(third[5], "AllPrincipals", nil, DELEGATED_SCOPES[1])
  for _, u in ipairs(self.gen_users) do
    if u.accountEnabled and r:chance(0.25) then
      local k = r:int(2, #third)
      addgrant(third[k], "Principal", u.id, DELEGATED_SCOPES[(k % #DELEGATED_SCOPES) + 1])
    end
  end
  table.sort(st.grants, function(a, b) return a.id < b.id end)

  -- directory role assignments (unifiedRoleAssignment); directoryRoles are derived from them
  local ai = 0
  local function assign(principal, role_name)
    ai = ai + 1
    local role = ROLE_BY_NAME[role_name]
    st.role_assignments[#st.role_assignments + 1] = { id = T.b62(43, seed, "roleassign", ai) .. "-1",
      principalId = principal, roleDefinitionId = role[2], directoryScopeId = "/" }
  end
  assign(self.admin.id, "Global Administrator")
  local others = { "User Administrator", "Exchange Administrator", "SharePoint Administrator", "Security Reader",
                   "Global Reader", "Global Administrator", "Privileged Role Administrator" }
  for _, u in ipairs(self.gen_users) do
    if u.index > 1 and u.userType == "Member" and r:chance(0.1) then assign(u.id, r:pick(others)) end
  end
  for _, rn in ipairs(self.client_roles) do assign(self.sp_client.id, rn) end

  self:generate_files(r)
  self:generate_arm(r)
end

---------------------------------------------------------------------------------------------------
-- Which API a path belongs to (routes share one server)
---------------------------------------------------------------------------------------------------
function MS:api_of(path)
  if self.prefix and self.prefix ~= "" and path:sub(1, #self.prefix) == self.prefix then path = path:sub(#self.prefix + 1) end
  if path:find("^/v1%.0/") or path:find("^/beta/") then return "graph", path end
  if path:find("^/api/v1") then return "mgmt", path end
  if path:find("^/subscriptions") or path:find("^/providers") then return "arm", path end
  return "login", path
end

---------------------------------------------------------------------------------------------------
-- Error bodies
---------------------------------------------------------------------------------------------------
function MS:request_id() return T.uuid(self.seed, "request", self:seq()) end

function MS:graph_err(status, code, message, req)
  local inner = { date = isoz(self:now_ms()), ["request-id"] = self:request_id() }
  local crid = req and req.headers and req.headers["client-request-id"]
  inner["client-request-id"] = crid or inner["request-id"]
  return status, { error = { code = code, message = message, innerError = inner } }, { ["Content-Type"] = "application/json" }
end
function MS:mgmt_err(status, code, message)
  return status, { error = { code = code, message = message } }, { ["Content-Type"] = "application/json; charset=utf-8" }
end
function MS:arm_err(status, code, message)
  return status, { error = { code = code, message = message } }, { ["Content-Type"] = "application/json; charset=utf-8" }
end
-- identity platform (token endpoint) errors
function MS:aad_err(status, err, aadsts, desc)
  local trace, corr = self:request_id(), self:request_id()
  local d = string.format("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, corr,
                          (T.iso_s(self:wall_s()):gsub("T", " "):gsub("Z", "Z")))
  return status, { error = err, error_description = d, error_codes = A({ aadsts }), timestamp = (T.iso_s(self:wall_s()):gsub("T", " ")),
                   trace_id = trace, correlation_id = corr, error_uri = "https://login.microsoftonline.com/error?code=" .. aadsts },
         { ["Content-Type"] = "application/json; charset=utf-8", ["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache" }
end

---------------------------------------------------------------------------------------------------
-- Auth, rate budget, headers
---------------------------------------------------------------------------------------------------
local ARM_AUDIENCES = "'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'"

function MS:precheck(req, ropts)
  local api, path = self:api_of(req.path)
  req._api = api
  if api == "login" then return nil end
  local limit, remaining, reset, exceeded = self:rate_take(api)
  req._rl = { limit, remaining, reset }
  if exceeded then return self:throttled(api, req, math.max(1, reset - self:wall_s())) end
  if ropts.noauth then return nil end
  local auth = req.headers["authorization"] or ""
  local tok = auth:match("^[Bb]earer%s+(%S+)$")
  local rec = tok and self.tokens[tok]
  if api == "graph" then
    if not tok then return self:graph_err(401, "InvalidAuthenticationToken", "Access token is empty.", req) end
    if not rec then return self:graph_err(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).", req) end
    if rec.res ~= "graph" then return self:graph_err(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", req) end
    if rec.exp <= self:wall_s() then return self:graph_err(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", req) end
  elseif api == "mgmt" then
    if not rec then return self:mgmt_err(401, "AF10001", "Authorization has been denied for this request.") end
    if rec.res ~= "mgmt" then
      return self:mgmt_err(401, "AF10001", "The permission set () sent in the request does not include the expected permission.")
    end
    if rec.exp <= self:wall_s() then return self:mgmt_err(401, "AF10001", "Authorization has been denied for this request.") end
  else
    if not tok then return self:arm_err(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.") end
    if not rec then return self:arm_err(401, "InvalidAuthenticationToken", "The access token is invalid.") end
    if rec.res ~= "arm" then
      return self:arm_err(401, "InvalidAuthenticationToken", "The access token has been obtained for wrong audience or resource '"
        .. M.RESOURCES[rec.res] .. "'. It should exactly match with one of the allowed audiences " .. ARM_AUDIENCES .. ".")
    end
    if rec.exp <= self:wall_s() then
      return self:arm_err(401, "ExpiredAuthenticationToken", "The access token expiry UTC time '" .. T.iso_s(rec.exp)
        .. "' is earlier than current UTC time '" .. T.iso_s(self:wall_s()) .. "'.")
    end
    if not req.query["api-version"] or req.query["api-version"] == "" then
      return self:arm_err(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
    end
  end
  req.token = rec
  return nil
end

function MS:throttled(api, req, retry_after)
  local st, body, hdr
  if api == "graph" then
    st, body, hdr = self:graph_err(429, "activityLimitReached", "The request has been throttled", req)
  elseif api == "mgmt" then
    st, body, hdr = self:mgmt_err(429, "AF429", "Too many requests. Method=" .. (req.path:match("feed/(%a+)") or "List")
      .. ", PublisherId=" .. (req.query.PublisherIdentifier or "00000000-0000-0000-0000-000000000000"))
  else
    st, body, hdr = self:arm_err(429, "SubscriptionRequestsThrottled", "Number of 'read' requests for subscription '"
      .. (req.path:match("^/subscriptions/([^/]+)") or "") .. "' actor '" .. self.sp_client.id
      .. "' exceeded. Please try again after '" .. retry_after .. "' seconds after additional tokens are available.")
  end
  hdr["Retry-After"] = tostring(retry_after)
  return st, body, hdr
end

function MS:fault_response(f, req)
  local api = self:api_of(req.path)
  local st, body, hdr
  if f.kind == "429" then
    st, body, hdr = self:throttled(api, req, f.retry_after or 1)
  else
    local code = tonumber(f.kind) or 500
    if api == "graph" then st, body, hdr = self:graph_err(code, code == 503 and "serviceNotAvailable" or "generalException",
        code == 503 and "The service is temporarily unavailable." or "An unspecified error has occurred.", req)
      if code == 503 then hdr["Retry-After"] = tostring(f.retry_after or 1) end
    elseif api == "mgmt" then st, body, hdr = self:mgmt_err(code, "AF50000", "An internal server error occurred. Retry the request.")
    else st, body, hdr = self:arm_err(code, code == 503 and "ServiceUnavailable" or "InternalServerError", "The server encountered an internal error.") end
  end
  return st, json().encode(body), hdr
end

function MS:decorate(req, status, hdr)
  local api = req._api or self:api_of(req.path)
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json"
  local rid = self:request_id()
  if api == "graph" then
    hdr["request-id"] = rid
    hdr["client-request-id"] = req.headers["client-request-id"] or rid
    hdr["x-ms-ags-diagnostic"] = '{"ServerInfo":{"DataCenter":"West US","Slice":"E","Ring":"5","ScaleUnit":"001","RoleInstance":"sandbox"}}'
  elseif api == "arm" then
    hdr["x-ms-request-id"] = rid
    hdr["x-ms-correlation-request-id"] = req.headers["x-ms-correlation-request-id"] or rid
    local rl = req._rl
    if rl then
      local kind = (req.method == "GET" or req.method == "HEAD") and "reads" or (req.method == "DELETE" and "deletes" or "writes")
      hdr["x-ms-ratelimit-remaining-subscription-" .. kind] = tostring(rl[2])
      hdr["x-ms-ratelimit-remaining-tenant-" .. kind] = tostring(rl[2])
    end
  end
end

---------------------------------------------------------------------------------------------------
-- Identity platform: /{tenant}/oauth2/v2.0/token (+ v1 /oauth2/token), /authorize, /adminconsent
---------------------------------------------------------------------------------------------------
function MS:known_tenant(t)
  return t == self.tenant_id or t == "organizations" or t == "common" or t == self.domain or t == self.initial_domain
end

-- resource key of a scope list ("https://graph.microsoft.com/.default", "User.Read offline_access")
local function scope_resource(scope)
  for s in (scope or ""):gmatch("%S+") do
    for k, base in pairs(M.RESOURCES) do
      if s:sub(1, #base) == base then return k, s end
    end
    if s:match("^https?://") then return nil, s end
  end
  return "graph"
end
local function resource_key(resource)
  if not resource then return nil end
  resource = resource:gsub("/$", "")
  for k, base in pairs(M.RESOURCES) do if base == resource then return k end end
  if resource == "https://management.core.windows.net" then return "arm" end
end

function MS:issue(res, extra)
  local cr = crypto()
  local tok = "eyJ0eXAiOiJKV1QiLCJub25jZSI6" .. cr.b64url(cr.random(48))
  local rec = { res = res, client_id = self.client_id, exp = self:wall_s() + 3599, tid = self.tenant_id }
  for k, v in pairs(extra or {}) do rec[k] = v end
  self.tokens[tok] = rec
  return tok, rec
end

-- client authentication: secret (constant-time) or a client_assertion JWT signed by the registered key
function MS:client_auth(f, token_url)
  if f.client_id ~= self.client_id then
    return nil, { 400, "unauthorized_client", 700016, "Application with identifier '" .. tostring(f.client_id)
      .. "' was not found in the directory '" .. self.domain .. "'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant." }
  end
  if f.client_assertion then
    if f.client_assertion_type ~= "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" then
      return nil, { 400, "invalid_request", 50027, "Invalid client_assertion_type." }
    end
    local cr = crypto()
    local h64, p64, s64 = f.client_assertion:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
    local claims = p64 and json().decode(cr.unb64url(p64) or "")
    if type(claims) ~= "table" or not self.client_cert
       or not cr.rs256_verify(self.client_cert, h64 .. "." .. p64, cr.unb64url(s64) or "") then
      return nil, { 401, "invalid_client", 700027, "Client assertion failed signature validation." }
    end
    if claims.iss ~= self.client_id or claims.sub ~= self.client_id then
      return nil, { 401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer." }
    end
    if claims.aud ~= token_url then
      return nil, { 401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter." }
    end
    if type(claims.exp) ~= "number" or claims.exp <= self:wall_s() then
      return nil, { 401, "invalid_client", 700024, "Client assertion is not within its valid time range." }
    end
    return true
  end
  if not f.client_secret or f.client_secret == "" then
    return nil, { 401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'." }
  end
  if not crypto().equal(f.client_secret, self.client_secret) then
    return nil, { 401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" .. self.client_id .. "'." }
  end
  return true
end

function MS:h_token(req)
  local tenant = req.params.tenant
  local v1 = not req.path:find("/v2%.0/token$")
  if not self:known_tenant(tenant) then
    return self:aad_err(400, "invalid_request", 90002, "Tenant '" .. tenant .. "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
  end
  local f = T.parse_form(req.body)
  local token_url = self.base_url .. "/" .. tenant .. (v1 and "/oauth2/token" or "/oauth2/v2.0/token")
  local ok, e = self:client_auth(f, token_url)
  if not ok then return self:aad_err(e[1], e[2], e[3], e[4]) end
  local gt = f.grant_type
  local res, scope_str
  if v1 then
    res = resource_key(f.resource)
    if not res and gt == "client_credentials" then
      return self:aad_err(400, "invalid_resource", 500011, "The resource principal named " .. tostring(f.resource) .. " was not found in the tenant named " .. self.domain .. ".")
    end
  else
    local bad
    res, bad = scope_resource(f.scope)
    if not res and bad then
      return self:aad_err(400, "invalid_resource", 500011, "The resource principal named " .. bad .. " was not found in the tenant named " .. self.domain .. ". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")
    end
  end
  local function answer(tok, rec, extra)
    local b
    if v1 then
      b = { token_type = "Bearer", expires_in = "3599", ext_expires_in = "3599", expires_on = tostring(rec.exp),
            not_before = tostring(rec.exp - 3599), resource = M.RESOURCES[rec.res], access_token = tok }
    else
      b = { token_type = "Bearer", expires_in = 3599, ext_expires_in = 3599, access_token = tok }
    end
    for k, v in pairs(extra or {}) do b[k] = v end
    return 200, b, { ["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache" }
  end
  if gt == "client_credentials" then
    if not v1 then
      local sc = f.scope or ""
      if sc == "" then
        return self:aad_err(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
      end
      if not sc:match("^%S+/%.default$") then
        return self:aad_err(400, "invalid_scope", 1002012, "The provided value for scope " .. sc .. " is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
      end
    end
    local tok, rec = self:issue(res, { app_only = true })
    return answer(tok, rec)
  elseif gt == "authorization_code" then
    local c = f.code and self.codes[f.code]
    if not c or c.used or c.exp < self:wall_s() then
      return self:aad_err(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
    end
    c.used = true
    if c.redirect_uri ~= f.redirect_uri then
      return self:aad_err(400, "invalid_grant", 50148, "The redirect_uri specified in the token request does not match the redirect_uri used in the authorization request.")
    end
    if c.challenge then
      local v = f.code_verifier or ""
      local cr = crypto()
      local calc = c.method == "plain" and v or cr.b64url(cr.sha256(v))
      if v == "" or not cr.equal(calc, c.challenge) then
        return self:aad_err(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
      end
    end
    return self:delegated_answer(c.user, c.scope, v1 and (res or "graph") or scope_resource(c.scope) or "graph", answer)
  elseif gt == "refresh_token" then
    local rt = f.refresh_token and self.refresh[f.refresh_token]
    if not rt then
      return self:aad_err(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    end
    local u = self.state.user_by_id[rt.user]
    if not u or not u.accountEnabled then
      return self:aad_err(400, "invalid_grant", 50057, "The user account is disabled.")
    end
    if rt.issued < (u.sessionsValidFrom or 0) then
      return self:aad_err(400, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '"
        .. T.iso_s(rt.issued // 1000) .. "' and the TokensValidFrom date (before which tokens are not valid) for this user is '" .. T.iso_s(u.sessionsValidFrom // 1000) .. "'.")
    end
    local scope = (f.scope and f.scope ~= "") and f.scope or rt.scope
    return self:delegated_answer(u.id, scope, v1 and (res or "graph") or scope_resource(scope) or "graph", answer)
  end
  return self:aad_err(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '" .. tostring(gt) .. "'.")
end

function MS:delegated_answer(user_id, scope, res, answer)
  local tok, rec = self:issue(res, { user = user_id, scope = scope })
  local extra = { scope = scope }
  local has = {}
  for s in (scope or ""):gmatch("%S+") do has[s] = true end
  if has.offline_access then
    local cr = crypto()
    local rt = "0.AXoA" .. cr.b64url(cr.random(64))
    self.refresh[rt] = { user = user_id, scope = scope, issued = self:now_ms() }
    extra.refresh_token = rt
  end
  if has.openid then
    local cr, u = crypto(), self.state.user_by_id[user_id]
    local hdr = cr.b64url(json().encode{ typ = "JWT", alg = "RS256", kid = T.b62(27, self.seed, "kid") })
    local body = cr.b64url(json().encode{ aud = self.client_id, iss = "https://login.microsoftonline.com/" .. self.tenant_id .. "/v2.0",
      iat = self:wall_s(), nbf = self:wall_s(), exp = self:wall_s() + 3600, name = u and u.displayName,
      oid = user_id, preferred_username = u and u.upn, tid = self.tenant_id, ver = "2.0" })
    extra.id_token = hdr .. "." .. body .. "." .. cr.b64url(cr.random(64))
  end
  return answer(tok, rec, extra)
end

-- authorize: auto-consent as the tenant's admin, redirect with code & state
function MS:h_authorize(req)
  local q = req.query
  if not self:known_tenant(req.params.tenant) then
    return self:aad_err(400, "invalid_request", 90002, "Tenant '" .. req.params.tenant .. "' not found.")
  end
  if q.client_id ~= self.client_id then
    return self:aad_err(400, "unauthorized_client", 700016, "Application with identifier '" .. tostring(q.client_id) .. "' was not found in the directory '" .. self.domain .. "'.")
  end
  if not q.redirect_uri or q.redirect_uri == "" then
    return self:aad_err(400, "invalid_request", 900144, "The request body must contain the following parameter: 'redirect_uri'.")
  end
  if (q.response_type or "code") ~= "code" then
    return self:aad_err(400, "unsupported_response_type", 700054, "response_type '" .. tostring(q.response_type) .. "' is not enabled for the application.")
  end
  local code = "0.AXoA" .. crypto().b64url(crypto().random(48))
  self.codes[code] = { user = (q.login_hint and self:find_user(q.login_hint) or self.admin).id, scope = q.scope or "",
                       redirect_uri = q.redirect_uri, challenge = q.code_challenge, method = q.code_challenge_method or "plain",
                       exp = self:wall_s() + 600 }
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  local loc = q.redirect_uri .. sep .. T.qs{ { "code", code }, { "state", q.state }, { "session_state", T.uuid(self.seed, "session", self:seq()) } }
  return 302, "", { Location = loc }
end

function MS:h_adminconsent(req)
  local q = req.query
  if q.client_id ~= self.client_id or not q.redirect_uri then
    return self:aad_err(400, "unauthorized_client", 700016, "Application with identifier '" .. tostring(q.client_id) .. "' was not found in the directory '" .. self.domain .. "'.")
  end
  local sep = q.redirect_uri:find("?", 1, true) and "&" or "?"
  local loc = q.redirect_uri .. sep .. T.qs{ { "admin_consent", "True" }, { "tenant", self.tenant_id }, { "state", q.state }, { "scope", q.scope } }
  return 302, "", { Location = loc }
end

-- test helper: every issued token expires now
function MS:expire_tokens() for _, rec in pairs(self.tokens) do rec.exp = 0 end end

---------------------------------------------------------------------------------------------------
-- Graph rendering
---------------------------------------------------------------------------------------------------
local USER_DEFAULT = { "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
                       "preferredLanguage", "surname", "userPrincipalName", "id" }
local USER_PROPS = { "accountEnabled", "businessPhones", "createdDateTime", "department", "deletedDateTime", "displayName",
  "externalUserState", "givenName", "id", "jobTitle", "lastPasswordChangeDateTime", "mail", "mailNickname", "mobilePhone",
  "officeLocation", "onPremisesSyncEnabled", "passwordProfile", "preferredLanguage", "signInActivity",
  "signInSessionsValidFromDateTime", "surname", "userPrincipalName", "userType", "usageLocation", "creationType" }

function MS:user_full(u)
  return {
    id = u.id, businessPhones = A(T.deep(u.businessPhones)), displayName = u.displayName, givenName = nz(u.givenName),
    jobTitle = nz(u.jobTitle), mail = nz(u.mail), mobilePhone = nz(u.mobilePhone), officeLocation = nz(u.officeLocation),
    preferredLanguage = nz(u.preferredLanguage), surname = nz(u.surname), userPrincipalName = u.upn,
    accountEnabled = u.accountEnabled, userType = u.userType, createdDateTime = isoz(u.created), department = nz(u.department),
    deletedDateTime = isoz(u.deleted), externalUserState = nz(u.externalUserState), mailNickname = u.upn:match("^[^@]+"),
    lastPasswordChangeDateTime = isoz(u.lastPasswordChange), onPremisesSyncEnabled = jnull(),
    passwordProfile = { forceChangePasswordNextSignIn = u.forceChange, forceChangePasswordNextSignInWithMfa = false, password = jnull() },
    signInSessionsValidFromDateTime = isoz(u.sessionsValidFrom), usageLocation = "US",
    creationType = u.userType == "Guest" and "Invitation" or jnull(),
    signInActivity = { lastSignInDateTime = iso7(u.lastSignIn), lastSignInRequestId = u.lastSignIn and self:const("lsr", u.index) or jnull(),
                       lastNonInteractiveSignInDateTime = iso7(u.lastSignIn and u.lastSignIn - 3600000),
                       lastNonInteractiveSignInRequestId = u.lastSignIn and self:const("lnsr", u.index) or jnull(),
                       lastSuccessfulSignInDateTime = iso7(u.lastSignIn),
                       lastSuccessfulSignInRequestId = u.lastSignIn and self:const("lssr", u.index) or jnull() },
  }
end

local GROUP_PROPS = { "id", "displayName", "description", "mail", "mailEnabled", "mailNickname", "securityEnabled", "groupTypes",
  "visibility", "isAssignableToRole", "membershipRule", "membershipRuleProcessingState", "createdDateTime", "deletedDateTime",
  "classification", "renewedDateTime", "securityIdentifier", "proxyAddresses", "onPremisesSyncEnabled" }
function MS:group_full(g)
  return { id = g.id, displayName = g.displayName, description = g.description, mail = nz(g.mail), mailEnabled = g.mailEnabled,
           mailNickname = g.mailNickname, securityEnabled = g.securityEnabled, groupTypes = A(T.deep(g.groupTypes)),
           visibility = nz(g.visibility), isAssignableToRole = g.isAssignableToRole, membershipRule = jnull(),
           membershipRuleProcessingState = jnull(), createdDateTime = isoz(g.created), deletedDateTime = jnull(),
           classification = jnull(), renewedDateTime = isoz(g.created),
           securityIdentifier = "S-1-12-1-" .. (T.hash(self.seed, "sid", g.index) >> 33),
           proxyAddresses = A(g.mail and { "SMTP:" .. g.mail } or {}), onPremisesSyncEnabled = jnull() }
end

local SP_PROPS = { "id", "appId", "displayName", "accountEnabled", "servicePrincipalType", "appOwnerOrganizationId",
  "appDisplayName", "publisherName", "signInAudience", "servicePrincipalNames", "tags", "appRoles", "oauth2PermissionScopes",
  "passwordCredentials", "keyCredentials", "replyUrls", "homepage", "verifiedPublisher", "deletedDateTime", "createdDateTime" }
function MS:sp_full(sp)
  local verified = sp.publisherName ~= jnull() and sp.publisherName ~= nil
  return { id = sp.id, appId = sp.appId, displayName = sp.displayName, appDisplayName = sp.displayName,
           accountEnabled = sp.accountEnabled, servicePrincipalType = "Application",
           appOwnerOrganizationId = sp.appOwnerOrganizationId, publisherName = nz(sp.publisherName),
           signInAudience = sp.appOwnerOrganizationId == self.tenant_id and "AzureADMyOrg" or "AzureADMultipleOrgs",
           servicePrincipalNames = A({ sp.appId }), tags = A({ "WindowsAzureActiveDirectoryIntegratedApp" }),
           appRoles = A(), oauth2PermissionScopes = A(), passwordCredentials = A(), keyCredentials = A(), replyUrls = A(),
           homepage = jnull(), deletedDateTime = jnull(), createdDateTime = isoz(sp.created),
           verifiedPublisher = { displayName = verified and sp.publisherName or jnull(),
                                 verifiedPublisherId = verified and tostring(T.hash(self.seed, "mpn", sp.id) >> 44) or jnull(),
                                 addedDateTime = verified and isoz(sp.created) or jnull() } }
end

local GRANT_PROPS = { "id", "clientId", "consentType", "principalId", "resourceId", "scope" }
function MS:grant_full(g)
  return { id = g.id, clientId = g.clientId, consentType = g.consentType, principalId = nz(g.principalId),
           resourceId = g.resourceId, scope = g.scope }
end

-- directory objects (members lists) carry @odata.type
function MS:dirobj(id)
  local st = self.state
  local u = st.user_by_id[id]
  if u then
    local o, full = {}, self:user_full(u)
    for _, k in ipairs(USER_DEFAULT) do o[k] = full[k] end
    o["@odata.type"] = "#microsoft.graph.user"
    return o, "user"
  end
  local sp = st.sp_by_id[id]
  if sp then
    local o = { id = sp.id, appId = sp.appId, displayName = sp.displayName, accountEnabled = sp.accountEnabled,
                servicePrincipalType = "Application", ["@odata.type"] = "#microsoft.graph.servicePrincipal" }
    return o, "servicePrincipal"
  end
  local g = st.group_by_id[id]
  if g then
    local o = self:group_full(g)
    o["@odata.type"] = "#microsoft.graph.group"
    return o, "group"
  end
end

---------------------------------------------------------------------------------------------------
-- Graph collections: $select, $filter, $top, $count, @odata.nextLink with $skiptoken
---------------------------------------------------------------------------------------------------
local function enc_skip(s) return "RFNwdAIA" .. crypto().b64url(s) end
local function dec_skip(s)
  if type(s) ~= "string" or s:sub(1, 8) ~= "RFNwdAIA" then return nil end
  return crypto().unb64url(s:sub(9))
end

function MS:graph_select(req, props, type_name)
  local sel = req.query["$select"]
  if not sel or sel == "" then return nil end
  local allowed = {}
  for _, p in ipairs(props) do allowed[p] = true end
  local list = {}
  for p in sel:gmatch("[^,%s]+") do
    if not allowed[p] then return nil, "Could not find a property named '" .. p .. "' on type 'microsoft.graph." .. type_name .. "'." end
    list[#list + 1] = p
  end
  return list
end

local function project(full, sel)
  local o = {}
  for _, k in ipairs(sel) do o[k] = full[k] end
  if full["@odata.type"] then o["@odata.type"] = full["@odata.type"] end
  return o
end

-- spec: {list (sorted by .id), full(x) -> table, props, defaults (nil = all props), type, context,
--        top_default, top_max, where(x) -> bool (pre-filter)}
function MS:graph_collection(req, spec)
  local q = req.query
  local _, path = self:api_of(req.path)
  local top = spec.top_default or 100
  if q["$top"] and q["$top"] ~= "" then
    local n = math.tointeger(tonumber(q["$top"]))
    if not n or n < 1 then
      return self:graph_err(400, "Request_BadRequest", "Invalid page size specified: '" .. q["$top"] .. "'. Must be between 1 and " .. (spec.top_max or 999) .. " inclusive.", req)
    end
    top = math.min(n, spec.top_max or 999)
  end
  local sel, serr = self:graph_select(req, spec.props, spec.type)
  if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
  local pred
  if q["$filter"] and q["$filter"] ~= "" then
    local ferr
    pred, ferr = M.odata_filter(q["$filter"])
    if not pred then return self:graph_err(400, "Request_UnsupportedQuery", "Invalid filter clause: " .. ferr, req) end
  end
  if q["$skip"] then return self:graph_err(400, "Request_BadRequest", "'$skip' is not supported by the service.", req) end
  local after
  if q["$skiptoken"] then
    after = dec_skip(q["$skiptoken"])
    if not after then return self:graph_err(400, "Request_BadRequest", "Invalid skip token.", req) end
  end
  local out, last, more, total = {}, nil, false, 0
  local counting = q["$count"] == "true" and not after
  for _, x in ipairs(spec.list) do
    if more and not counting then break end
    if (not spec.where or spec.where(x)) and (counting or not after or x.id > after) then
      local full = spec.full(x)
      if not pred or pred(full) then
        total = total + 1
        if not after or x.id > after then
          if #out < top then
            out[#out + 1] = sel and project(full, sel) or (spec.defaults and project(full, spec.defaults) or full)
            last = x.id
          else more = true end
        end
      end
    end
  end
  local ctx = self.base_url .. "/v1.0/$metadata#" .. spec.context .. (sel and ("(" .. table.concat(sel, ",") .. ")") or "")
  local body = { ["@odata.context"] = ctx, value = A(out) }
  if q["$count"] == "true" and not after then body["@odata.count"] = total end
  if more then
    local params = {}
    for _, k in ipairs({ "$select", "$filter", "$count", "$top" }) do
      if q[k] and q[k] ~= "" then params[#params + 1] = { k, q[k] } end
    end
    if not q["$top"] then params[#params + 1] = { "$top", tostring(top) } end
    params[#params + 1] = { "$skiptoken", enc_skip(last) }
    body["@odata.nextLink"] = self.base_url .. path:gsub("%?.*$", "") .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:find_user(id)
  if type(id) == "table" then return id end
  local st = self.state
  local u = st.user_by_id[id] or st.user_by_upn[tostring(id):lower()]
  if u and not u.deleted then return u end
end

function MS:graph_404(req, what)
  return self:graph_err(404, "Request_ResourceNotFound", "Resource '" .. tostring(what) .. "' does not exist or one of its queried reference-property objects are not present.", req)
end

local function body_json(req)
  local b = json().decode(req.body or "")
  if type(b) ~= "table" then return nil end
  return b
end

---------------------------------------------------------------------------------------------------
-- Graph: users
---------------------------------------------------------------------------------------------------
function MS:h_users(req)
  return self:graph_collection(req, { list = self.state.users, full = function(u) return self:user_full(u) end,
    where = function(u) return not u.deleted end, props = USER_PROPS, defaults = USER_DEFAULT, type = "user",
    context = "users", top_default = 100, top_max = 999 })
end

function MS:h_user(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  if req.method == "GET" then
    local sel, serr = self:graph_select(req, USER_PROPS, "user")
    if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
    local o = project(self:user_full(u), sel or USER_DEFAULT)
    o["@odata.context"] = self.base_url .. "/v1.0/$metadata#users/$entity"
    return 200, o
  elseif req.method == "DELETE" then
    u.deleted = self:now_ms()
    self:user_changed(u)
    self:audit{ activity = "Delete user", category = "UserManagement", operationType = "Delete", target = u, req = req }
    self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Delete user.", ObjectId = u.upn, RecordType = 8, target = u })
    self:notify_change("users", "deleted", u.id, "#Microsoft.Graph.User", "Users/" .. u.id)
    return 204, ""
  end
  -- PATCH
  local b = body_json(req)
  if not b then return self:graph_err(400, "Request_BadRequest", "Invalid request body.", req) end
  local allowed = { accountEnabled = "boolean", passwordProfile = "table", displayName = "string", jobTitle = "string",
                    department = "string", officeLocation = "string", mobilePhone = "string", usageLocation = "string" }
  for k, v in pairs(b) do
    if not allowed[k] then return self:graph_err(400, "Request_BadRequest", "Property '" .. k .. "' is read-only or does not exist on type 'microsoft.graph.user'.", req) end
    if type(v) ~= allowed[k] then return self:graph_err(400, "Request_BadRequest", "Invalid value specified for property '" .. k .. "' of resource 'User'.", req) end
  end
  local mods = {}
  if b.accountEnabled ~= nil and b.accountEnabled ~= u.accountEnabled then
    mods[#mods + 1] = { displayName = "AccountEnabled", oldValue = "[" .. tostring(u.accountEnabled) .. "]", newValue = "[" .. tostring(b.accountEnabled) .. "]" }
    u.accountEnabled = b.accountEnabled
  end
  if b.passwordProfile then
    local pp = b.passwordProfile
    if pp.forceChangePasswordNextSignIn ~= nil then u.forceChange = pp.forceChangePasswordNextSignIn and true or false end
    if type(pp.password) == "string" then u.lastPasswordChange = self:now_ms() end
    mods[#mods + 1] = { displayName = "PasswordProfile", oldValue = jnull(), newValue = jnull() }
  end
  for _, k in ipairs({ "displayName", "jobTitle", "department", "officeLocation", "mobilePhone" }) do
    if b[k] ~= nil then mods[#mods + 1] = { displayName = k, oldValue = json().encode({ u[k] }), newValue = json().encode({ b[k] }) }; u[k] = b[k] end
  end
  self:user_changed(u)
  local act = "Update user"
  if b.accountEnabled == false then act = "Disable account" elseif b.accountEnabled == true then act = "Enable account" end
  self:audit{ activity = act, category = "UserManagement", operationType = "Update", target = u, modified = mods, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = act .. ".", ObjectId = u.upn, RecordType = 8, target = u })
  self:notify_change("users", "updated", u.id, "#Microsoft.Graph.User", "Users/" .. u.id)
  return 204, ""
end

function MS:h_revoke_sessions(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  u.sessionsValidFrom = self:now_ms()
  self:user_changed(u)
  for _, rt in pairs(self.refresh) do if rt.user == u.id then rt.revoked = true end end
  self:audit{ activity = "Invalidate all refresh tokens for a user", category = "UserManagement", operationType = "Update", target = u, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Invalidate all refresh tokens for a user.", ObjectId = u.upn, RecordType = 8, target = u })
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#Edm.Boolean", value = true }
end

local PASSWORD_METHOD = "28c10230-6103-485e-b985-444c60001490"
function MS:h_reset_password(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  if req.params.mid ~= PASSWORD_METHOD then return self:graph_404(req, req.params.mid) end
  if req.token and req.token.app_only then
    return self:graph_err(403, "accessDenied", "Request Authorization failed", req)
  end
  local b = body_json(req) or {}
  u.lastPasswordChange = self:now_ms()
  u.forceChange = true
  self:audit{ activity = "Reset password (by admin)", category = "UserManagement", operationType = "Update", target = u, req = req }
  local op = T.uuid(self.seed, "pwop", self:seq())
  local body = b.newPassword and {} or { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#microsoft.graph.passwordResetResponse",
                                         newPassword = "Sbx" .. T.b62(9, self.seed, "pw", op) }
  return 202, body, { Location = self.base_url .. "/v1.0/users/" .. u.id .. "/authentication/operations/" .. op, ["Retry-After"] = "5" }
end

function MS:h_member_of(req)
  local u = self:find_user(req.params.id)
  if not u then return self:graph_404(req, req.params.id) end
  local out = {}
  for _, g in ipairs(self.state.groups) do
    if g.member_set[u.id] then local o = self:group_full(g); o["@odata.type"] = "#microsoft.graph.group"; out[#out + 1] = o end
  end
  for _, r in ipairs(self:directory_roles()) do
    if r.members[u.id] then out[#out + 1] = self:dirrole_json(r, true) end
  end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#directoryObjects", value = A(out) }
end

-- users/delta(): full enumeration then changes; removed users carry @removed
function MS:user_changed(u)
  self.user_seq = (self.user_seq or 0) + 1
  u.cseq = self.user_seq
end

function MS:h_users_delta(req)
  local q = req.query
  local top = math.min(math.tointeger(tonumber(q["$top"] or "")) or 100, 999)
  local sel, serr = self:graph_select(req, USER_PROPS, "user")
  if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
  local base = self.base_url .. "/v1.0/users/delta()"
  -- token: "epoch:mode:since:after"; mode n = initial enumeration (snapshot since), d = changes after since
  local mode, since, after = "n", self.user_seq or 0, ""
  local tok = q["$deltatoken"] or q["$skiptoken"]
  if tok then
    local e, m, s2, a2 = (dec_skip(tok) or ""):match("^(%d+):([nd]):(%d+):(.*)$")
    if not e then return self:graph_err(400, "Request_BadRequest", "Invalid delta token.", req) end
    if tonumber(e) ~= self.delta_epoch then
      return self:graph_err(410, "syncStateNotFound", "The sync state generation is not found. Please restart the delta query without a token.", req)
    end
    mode, since, after = m, math.tointeger(tonumber(s2)), a2
  end
  local out, last, more = {}, nil, false
  for _, u in ipairs(self.state.users) do
    local want
    if mode == "d" then want = (u.cseq or 0) > since else want = not u.deleted end
    if want and u.id > after then
      if #out >= top then more = true; break end
      local o
      if u.deleted then o = { id = u.id, ["@removed"] = { reason = "changed" } }
      else o = project(self:user_full(u), sel or USER_DEFAULT); o.id = u.id end
      out[#out + 1] = o; last = u.id
    end
  end
  local body = { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#users", value = A(out) }
  local selq = q["$select"] and ("$select=" .. T.urlencode(q["$select"]) .. "&") or ""
  if more then
    body["@odata.nextLink"] = base .. "?" .. selq .. "$skiptoken=" .. enc_skip(table.concat({ self.delta_epoch, mode, since, last }, ":"))
  else
    local nxt = mode == "n" and since or (self.user_seq or 0)
    body["@odata.deltaLink"] = base .. "?" .. selq .. "$deltatoken=" .. enc_skip(table.concat({ self.delta_epoch, "d", nxt, "" }, ":"))
  end
  return 200, body
end

---------------------------------------------------------------------------------------------------
-- Graph: groups and members
---------------------------------------------------------------------------------------------------
function MS:h_groups(req)
  return self:graph_collection(req, { list = self.state.groups, full = function(g) return self:group_full(g) end,
    props = GROUP_PROPS, type = "group", context = "groups", top_default = 100, top_max = 999 })
end

function MS:h_group(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:graph_404(req, req.params.gid) end
  local sel, serr = self:graph_select(req, GROUP_PROPS, "group")
  if serr then return self:graph_err(400, "Request_BadRequest", serr, req) end
  local o = sel and project(self:group_full(g), sel) or self:group_full(g)
  o["@odata.context"] = self.base_url .. "/v1.0/$metadata#groups/$entity"
  return 200, o
end

function MS:h_group_members(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:graph_404(req, req.params.gid) end
  local list = {}
  local ids = req.path:find("/owners$") and { g.owner } or g.members
  for _, id in ipairs(ids) do
    local u = self.state.user_by_id[id]
    if u and not u.deleted then list[#list + 1] = { id = id } end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return self:graph_collection(req, { list = list, full = function(x) return (self:dirobj(x.id)) end,
    props = USER_PROPS, type = "directoryObject", context = "directoryObjects", top_default = 100, top_max = 999 })
end

function MS:h_group_member_ref(req)
  local g = self.state.group_by_id[req.params.gid]
  if not g then return self:graph_404(req, req.params.gid) end
  if req.method == "POST" then
    local b = body_json(req)
    local id = b and type(b["@odata.id"]) == "string" and b["@odata.id"]:match("([%x%-]+)$")
    if not id or not self.state.user_by_id[id] then return self:graph_err(400, "Request_BadRequest", "Invalid object identifier.", req) end
    if g.member_set[id] then
      return self:graph_err(400, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.", req)
    end
    g.members[#g.members + 1] = id; g.member_set[id] = true
    self:audit{ activity = "Add member to group", category = "GroupManagement", operationType = "Assign", target = self.state.user_by_id[id], group = g, req = req }
    self:notify_change("groups", "updated", g.id, "#Microsoft.Graph.Group", "Groups/" .. g.id)
    return 204, ""
  end
  local id = req.params.oid
  if not g.member_set[id] then return self:graph_404(req, id) end
  g.member_set[id] = nil
  for i, m in ipairs(g.members) do if m == id then table.remove(g.members, i) break end end
  local u = self.state.user_by_id[id]
  self:audit{ activity = "Remove member from group", category = "GroupManagement", operationType = "Unassign", target = u, group = g, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Remove member from group.", ObjectId = u and u.upn or id, RecordType = 8, target = u })
  self:notify_change("groups", "updated", g.id, "#Microsoft.Graph.Group", "Groups/" .. g.id)
  return 204, ""
end

---------------------------------------------------------------------------------------------------
-- Graph: directory roles and role management
---------------------------------------------------------------------------------------------------
-- activated directory roles: Global Administrator plus every role with an assignment
function MS:directory_roles()
  local by_t, out = {}, {}
  for _, r in ipairs(DIR_ROLES) do
    by_t[r[2]] = { def = r, id = T.uuid(self.seed, "dirrole", r[2]), members = {}, order = {}, active = r[1] == "Global Administrator" }
  end
  for _, a in ipairs(self.state.role_assignments) do
    local r = by_t[a.roleDefinitionId]
    if r then r.active = true; if not r.members[a.principalId] then r.members[a.principalId] = a; r.order[#r.order + 1] = a.principalId end end
  end
  for _, r in ipairs(DIR_ROLES) do if by_t[r[2]].active then out[#out + 1] = by_t[r[2]] end end
  return out
end

function MS:dirrole_json(r, typed)
  local o = { id = r.id, displayName = r.def[1], description = r.def[3], roleTemplateId = r.def[2], deletedDateTime = jnull() }
  if typed then o["@odata.type"] = "#microsoft.graph.directoryRole" end
  return o
end

function MS:h_directory_roles(req)
  local out = {}
  local pred
  if req.query["$filter"] then
    local err
    pred, err = M.odata_filter(req.query["$filter"])
    if not pred then return self:graph_err(400, "Request_UnsupportedQuery", "Invalid filter clause: " .. err, req) end
  end
  for _, r in ipairs(self:directory_roles()) do
    local o = self:dirrole_json(r)
    if not pred or pred(o) then out[#out + 1] = o end
  end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#directoryRoles", value = A(out) }
end

function MS:find_dirrole(id)
  for _, r in ipairs(self:directory_roles()) do
    if r.id == id or r.def[2] == id then return r end
  end
end

function MS:h_directory_role_members(req)
  local r = self:find_dirrole(req.params.rid)
  if not r then return self:graph_404(req, req.params.rid) end
  local out = {}
  for _, pid in ipairs(r.order) do
    local o = self:dirobj(pid)
    if o then out[#out + 1] = o end
  end
  return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#directoryObjects", value = A(out) }
end

function MS:h_directory_role_member_delete(req)
  local r = self:find_dirrole(req.params.rid)
  if not r or not r.members[req.params.oid] then return self:graph_404(req, req.params.oid) end
  return self:remove_role_assignment(r.members[req.params.oid], req)
end

function MS:remove_role_assignment(a, req)
  for i, x in ipairs(self.state.role_assignments) do
    if x == a then table.remove(self.state.role_assignments, i) break end
  end
  local role = self:role_def(a.roleDefinitionId)
  local target = self.state.user_by_id[a.principalId]
  self:audit{ activity = "Remove member from role", category = "RoleManagement", operationType = "Unassign", target = target,
              role = role, req = req }
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Remove member from role.", ObjectId = target and target.upn or a.principalId, RecordType = 8, target = target })
  return 204, ""
end

function MS:role_def(tid) for _, r in ipairs(DIR_ROLES) do if r[2] == tid then return r end end end

local RDEF_PROPS = { "id", "displayName", "description", "isBuiltIn", "isEnabled", "templateId", "version", "rolePermissions", "resourceScopes" }
function MS:rdef_full(r)
  return { id = r[2], displayName = r[1], description = r[3], isBuiltIn = true, isEnabled = true, templateId = r[2], version = "1",
           resourceScopes = A({ "/" }),
           rolePermissions = A({ { allowedResourceActions = A({ r[1] == "Global Administrator" and "microsoft.directory/*/allTasks" or "microsoft.directory/*/read" }), condition = jnull() } }) }
end
function MS:h_role_definitions(req)
  local list = {}
  for _, r in ipairs(DIR_ROLES) do list[#list + 1] = { id = r[2], r = r } end
  table.sort(list, function(a, b) return a.id < b.id end)
  return self:graph_collection(req, { list = list, full = function(x) return self:rdef_full(x.r) end, props = RDEF_PROPS,
    type = "unifiedRoleDefinition", context = "roleManagement/directory/roleDefinitions", top_default = 100, top_max = 999 })
end

local RA_PROPS = { "id", "principalId", "roleDefinitionId", "directoryScopeId", "appScopeId", "condition", "principal", "roleDefinition" }
function MS:h_role_assignments(req)
  local list = {}
  for _, a in ipairs(self.state.role_assignments) do list[#list + 1] = a end
  table.sort(list, function(a, b) return a.id < b.id end)
  local expand = req.query["$expand"] or ""
  return self:graph_collection(req, { list = list, props = RA_PROPS, type = "unifiedRoleAssignment",
    context = "roleManagement/directory/roleAssignments", top_default = 100, top_max = 999,
    full = function(a)
      local o = { id = a.id, principalId = a.principalId, roleDefinitionId = a.roleDefinitionId, directoryScopeId = a.directoryScopeId,
                  appScopeId = jnull(), condition = jnull() }
      if expand:find("principal", 1, true) then o.principal = (self:dirobj(a.principalId)) or jnull() end
      if expand:find("roleDefinition", 1, true) then local r = self:role_def(a.roleDefinitionId); o.roleDefinition = r and self:rdef_full(r) or jnull() end
      return o
    end })
end

function MS:h_role_assignment(req)
  for _, a in ipairs(self.state.role_assignments) do
    if a.id == req.params.aid then
      if req.method == "DELETE" then return self:remove_role_assignment(a, req) end
      return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity",
                    id = a.id, principalId = a.principalId, roleDefinitionId = a.roleDefinitionId, directoryScopeId = a.directoryScopeId,
                    appScopeId = jnull(), condition = jnull() }
    end
  end
  return self:graph_404(req, req.params.aid)
end

---------------------------------------------------------------------------------------------------
-- Graph: service principals and delegated permission grants
---------------------------------------------------------------------------------------------------
function MS:h_sps(req)
  return self:graph_collection(req, { list = self.state.sps, full = function(sp) return self:sp_full(sp) end,
    props = SP_PROPS, type = "servicePrincipal", context = "servicePrincipals", top_default = 100, top_max = 999 })
end

function MS:h_sp(req)
  local sp = self.state.sp_by_id[req.params.spid]
  if not sp then return self:graph_404(req, req.params.spid) end
  if req.method == "PATCH" then
    local b = body_json(req)
    if not b or type(b.accountEnabled) ~= "boolean" then return self:graph_err(400, "Request_BadRequest", "Invalid request body.", req) end
    sp.accountEnabled = b.accountEnabled
    self:audit{ activity = "Update service principal", category = "ApplicationManagement", operationType = "Update", sp = sp, req = req,
                modified = { { displayName = "AccountEnabled", oldValue = "[" .. tostring(not b.accountEnabled) .. "]", newValue = "[" .. tostring(b.accountEnabled) .. "]" } } }
    return 204, ""
  end
  local o = self:sp_full(sp)
  o["@odata.context"] = self.base_url .. "/v1.0/$metadata#servicePrincipals/$entity"
  return 200, o
end

function MS:h_grants(req)
  local where
  if req.params.id then
    local u = self:find_user(req.params.id)
    if not u then return self:graph_404(req, req.params.id) end
    where = function(g) return g.principalId == u.id end
  elseif req.params.spid then
    local sp = self.state.sp_by_id[req.params.spid]
    if not sp then return self:graph_404(req, req.params.spid) end
    where = function(g) return g.clientId == sp.id end
  end
  return self:graph_collection(req, { list = self.state.grants, full = function(g) return self:grant_full(g) end, where = where,
    props = GRANT_PROPS, type = "oAuth2PermissionGrant", context = "oauth2PermissionGrants", top_default = 100, top_max = 999 })
end

function MS:h_grant(req)
  local st = self.state
  for i, g in ipairs(st.grants) do
    if g.id == req.params.grid then
      local sp = st.sp_by_id[g.clientId]
      if req.method == "DELETE" then
        table.remove(st.grants, i)
        self:audit{ activity = "Remove delegated permission grant", category = "ApplicationManagement", operationType = "Unassign", sp = sp, req = req,
                    modified = { { displayName = "DelegatedPermissionGrant.Scope", oldValue = '"' .. g.scope .. '"', newValue = '""' } } }
        self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = "Remove delegated permission grant.", ObjectId = sp and sp.displayName or g.clientId, RecordType = 8 })
        return 204, ""
      elseif req.method == "PATCH" then
        local b = body_json(req)
        if not b or type(b.scope) ~= "string" then return self:graph_err(400, "Request_BadRequest", "Invalid request body.", req) end
        local old = g.scope
        g.scope = b.scope
        self:audit{ activity = "Update delegated permission grant", category = "ApplicationManagement", operationType = "Update", sp = sp, req = req,
                    modified = { { displayName = "DelegatedPermissionGrant.Scope", oldValue = '"' .. old .. '"', newValue = '"' .. b.scope .. '"' } } }
        return 204, ""
      end
      local o = self:grant_full(g)
      o["@odata.context"] = self.base_url .. "/v1.0/$metadata#oauth2PermissionGrants/$entity"
      return 200, o
    end
  end
  return self:graph_404(req, req.params.grid)
end

---------------------------------------------------------------------------------------------------
-- Lazy logs: directory audits and sign-ins (newest first), stored records merged in
---------------------------------------------------------------------------------------------------
local function spread_ms(self, stream, n, i)
  local span = self.days * 86400000
  local bases = self._stream_base
  if not bases then bases = {}; self._stream_base = bases end
  local b = bases[stream]
  if not b then b = T.hash(self.seed, stream, "t"); bases[stream] = b end
  return self.t0_ms - span + math.floor((i + unit(sub(b, i))) * span / n)
end

local AUDIT_ACTS = {   -- activityDisplayName, category, loggedByService, operationType, target kind
  { "Update user", "UserManagement", "Core Directory", "Update", "user" },
  { "Add member to group", "GroupManagement", "Core Directory", "Assign", "group" },
  { "Add user", "UserManagement", "Core Directory", "Add", "user" },
  { "Reset password (by admin)", "UserManagement", "Core Directory", "Update", "user" },
  { "Consent to application", "ApplicationManagement", "Core Directory", "Assign", "app" },
  { "Add member to role", "RoleManagement", "Core Directory", "Assign", "user" },
  { "Change user password", "UserManagement", "Self-service Password Management", "Update", "user" },
  { "Add app role assignment to service principal", "ApplicationManagement", "Core Directory", "Assign", "app" },
  { "Update group", "GroupManagement", "Core Directory", "Update", "group" },
  { "GroupLifecyclePolicies_Get", "GroupManagement", "Self-service Group Management", "Update", "group" },
}

function MS:audit_json(e)
  local actor = e.actor
  local init
  if e.app then
    init = { user = jnull(), app = { appId = e.app.appId, displayName = e.app.displayName, servicePrincipalId = e.app.id,
                                     servicePrincipalName = e.app.displayName } }
  else
    init = { app = jnull(), user = { id = actor.id, displayName = jnull(), userPrincipalName = actor.upn, ipAddress = e.ip or actor.ip,
                                     userType = jnull(), homeTenantId = jnull(), homeTenantName = jnull() } }
  end
  local targets = {}
  for _, t in ipairs(e.targets or {}) do
    targets[#targets + 1] = { id = t.id, displayName = nz(t.displayName), type = t.type, userPrincipalName = nz(t.upn),
                              groupType = nz(t.groupType), modifiedProperties = A(t.modified) }
  end
  return { id = e.id, category = e.category, correlationId = e.correlationId, result = e.result or "success",
           resultReason = e.resultReason or "", activityDisplayName = e.activity, activityDateTime = iso7(e.ms),
           loggedByService = e.service or "Core Directory", operationType = e.operationType or "Update", initiatedBy = init,
           targetResources = A(targets), additionalDetails = A(e.additional or {}) }
end

local function user_target(u, mods)
  return { id = u.id, displayName = jnull(), type = "User", upn = u.upn, modified = mods or {} }
end
local function group_target(g, mods)
  return { id = g.id, displayName = g.displayName, type = "Group", groupType = #g.groupTypes > 0 and "unifiedGroups" or "azureAD", modified = mods or {} }
end

function MS:gen_audit(i)
  local seed = self.seed
  local h = T.hash(seed, "audit", i)
  local a = AUDIT_ACTS[T.below(h, #AUDIT_ACTS) + 1]
  local actor = self.gen_users[T.below(T.hash(h, 1), math.min(#self.gen_users, 5)) + 1]
  local target = self.gen_users[T.below(T.hash(h, 2), #self.gen_users) + 1]
  local targets
  if a[5] == "group" and #self.state.groups > 0 then
    local g = self.state.groups[T.below(T.hash(h, 3), #self.state.groups) + 1]
    targets = { group_target(g), user_target(target) }
  elseif a[5] == "app" then
    local sp = self.state.sps[T.below(T.hash(h, 3), #self.state.sps) + 1]
    targets = { { id = sp.id, displayName = sp.displayName, type = "ServicePrincipal", modified = {} } }
  else
    targets = { user_target(target) }
  end
  local corr = T.uuid(seed, "acorr", i)
  local fail = T.unit(T.hash(h, 4)) < 0.03
  return self:audit_json{ id = "Directory_" .. corr .. "_" .. T.b62(5, seed, "aid", i) .. "_" .. (T.hash(h, 5) >> 37),
    ms = spread_ms(self, "audit", self.naudits, i), activity = a[1], category = a[2], service = a[3], operationType = a[4],
    actor = actor, targets = targets, correlationId = corr, result = fail and "failure" or "success",
    resultReason = fail and "Microsoft.Online.Directory.Framework.DirectoryException" or "" }
end

-- a governance change or a test's record: stored, merged into the lazy log
function MS:audit(spec)
  local st = self.state
  local seq = self:seq()
  local ms = spec.ms or self:now_ms()
  local targets = {}
  if spec.target then targets[#targets + 1] = user_target(spec.target, spec.modified) end
  if spec.group then targets[#targets + 1] = group_target(spec.group) end
  if spec.sp then targets[#targets + 1] = { id = spec.sp.id, displayName = spec.sp.displayName, type = "ServicePrincipal", modified = spec.modified or {} } end
  if spec.role then targets[#targets + 1] = { id = spec.role[2], displayName = spec.role[1], type = "Role", modified = {} } end
  local caller = spec.req and spec.req.token
  local app = (not caller or caller.app_only) and self.sp_client or nil
  local actor = (caller and caller.user and st.user_by_id[caller.user]) or self.admin
  local corr = T.uuid(self.seed, "scorr", seq)
  local ev = self:audit_json{ id = "Directory_" .. corr .. "_S" .. seq, ms = ms, activity = spec.activity, category = spec.category,
    service = "Core Directory", operationType = spec.operationType, actor = actor, app = app, targets = targets,
    correlationId = corr, ip = spec.req and spec.req.remote and tostring(spec.req.remote):match("^[^:]+") }
  T.insert_sorted(st.audits, { ms = ms, seq = seq, ev = ev })
  return ev
end

function MS:signin_json(s)
  local c = s.city
  return {
    id = s.id, createdDateTime = iso7(s.ms), userDisplayName = s.user.displayName, userPrincipalName = s.user.upn, userId = s.user.id,
    appId = s.app[2], appDisplayName = s.app[1], ipAddress = s.ip, clientAppUsed = s.clientAppUsed or s.app[5],
    correlationId = s.correlationId, conditionalAccessStatus = s.errorCode == 53003 and "failure" or (s.ca and "success" or "notApplied"),
    isInteractive = s.isInteractive ~= false, riskDetail = "none", riskLevelAggregated = s.risk or "none",
    riskLevelDuringSignIn = s.risk or "none", riskState = s.risk and s.risk ~= "none" and "atRisk" or "none",
    riskEventTypes = A(s.riskEvents), riskEventTypes_v2 = A(s.riskEvents), resourceDisplayName = s.app[3], resourceId = s.app[4],
    status = { errorCode = s.errorCode or 0, failureReason = nz(s.failureReason), additionalDetails = nz(s.additionalDetails) },
    deviceDetail = { deviceId = "", displayName = jnull(), operatingSystem = s.device[1], browser = s.device[2], isCompliant = false,
                     isManaged = false, trustType = jnull() },
    location = { city = c[1], state = c[2], countryOrRegion = c[3], geoCoordinates = { altitude = jnull(), latitude = c[4], longitude = c[5] } },
    appliedConditionalAccessPolicies = A(s.ca and { { id = T.uuid(self.seed, "capolicy", 1), displayName = "Require MFA for admins",
      enforcedGrantControls = A({ "Mfa" }), enforcedSessionControls = A(), result = s.errorCode == 0 and "success" or "failure" } } or {}),
  }
end

function MS:gen_signin(i)
  local seed = self.seed
  local h = T.hash(seed, "signin", i)
  local u = self.gen_users[T.below(h, #self.gen_users) + 1]
  local app = SIGNIN_APPS[T.below(T.hash(h, 1), #SIGNIN_APPS) + 1]
  local s = { id = T.uuid(seed, "signinid", i), ms = spread_ms(self, "signin", self.nsignins, i), user = u, app = app,
              ip = u.ip, city = CITIES[u.city], device = DEVICES[u.device], correlationId = T.uuid(seed, "scorr", i),
              errorCode = 0, ca = T.unit(T.hash(h, 2)) < 0.3 }
  local x = T.unit(T.hash(h, 3))
  if not u.enabled0 then
    s.errorCode, s.failureReason = SIGNIN_FAIL[5][1], SIGNIN_FAIL[5][2]
  elseif x < 0.12 then
    local f = SIGNIN_FAIL[T.below(T.hash(h, 4), 4) + 1]
    s.errorCode, s.failureReason = f[1], f[2]
    if T.unit(T.hash(h, 5)) < 0.35 then    -- failures from elsewhere
      s.city = FOREIGN[T.below(T.hash(h, 6), #FOREIGN) + 1]
      s.ip = ip_of(T.hash(h, 7))
      s.risk = "medium"; s.riskEvents = { "unfamiliarFeatures" }
    end
  end
  return self:signin_json(s)
end

-- test helper: store one sign-in; spec {user=, ms=, errorCode=, failureReason=, city=, state=, countryOrRegion=,
-- latitude=, longitude=, ip=, clientAppUsed=, app= (appDisplayName), risk=}
function MS:add_signin(spec)
  spec = spec or {}
  local u = assert(self:find_user(spec.user or self.admin.id), "add_signin: no such user")
  local seq = self:seq()
  local app = SIGNIN_APPS[1]
  for _, a in ipairs(SIGNIN_APPS) do if a[1] == spec.app then app = a; break end end
  local city = CITIES[u.city]
  if spec.city or spec.countryOrRegion then
    city = { spec.city or city[1], spec.state or jnull(), spec.countryOrRegion or city[3], spec.latitude or city[4], spec.longitude or city[5] }
  end
  local ms = spec.ms or self:now_ms()
  local code = spec.errorCode or 0
  local reason = spec.failureReason
  if code ~= 0 and not reason then
    for _, f in ipairs(SIGNIN_FAIL) do if f[1] == code then reason = f[2] end end
    reason = reason or "Other."
  end
  local ev = self:signin_json{ id = T.uuid(self.seed, "ssignin", seq), ms = ms, user = u, app = app, ip = spec.ip or u.ip, city = city,
    device = DEVICES[u.device], correlationId = T.uuid(self.seed, "sscorr", seq), errorCode = code, failureReason = reason,
    clientAppUsed = spec.clientAppUsed, risk = spec.risk, riskEvents = spec.riskEventTypes }
  T.insert_sorted(self.state.signins, { ms = ms, seq = seq, ev = ev })
  if code == 0 and (not u.lastSignIn or ms > u.lastSignIn) then u.lastSignIn = ms end
  self:mgmt_state_record("Audit.AzureActiveDirectory", { Operation = code == 0 and "UserLoggedIn" or "UserLoginFailed", RecordType = 15,
    ObjectId = "00000003-0000-0ff1-ce00-000000000000", target = u, user = u, ErrorCode = tostring(code), ClientIP = ev.ipAddress,
    ResultStatus = code == 0 and "Success" or "Failed" }, ms)
  return ev
end

-- spec: {n, gen(i), stream, list, prop, context, top_default, top_max}
function MS:log_page(req, spec)
  local q = req.query
  local _, path = self:api_of(req.path)
  local top = spec.top_default
  if q["$top"] and q["$top"] ~= "" then
    local n = math.tointeger(tonumber(q["$top"]))
    if not n or n < 1 then return self:graph_err(400, "Request_BadRequest", "Invalid page size specified: '" .. q["$top"] .. "'.", req) end
    top = math.min(n, spec.top_max)
  end
  local filter = q["$filter"] ~= "" and q["$filter"] or nil
  local pred
  if filter then
    local err
    pred, err = M.odata_filter(filter)
    if not pred then return self:graph_err(400, "Request_UnsupportedQuery", "Invalid filter clause: " .. err, req) end
  end
  local lower = time_bound(filter, spec.prop, { "ge", "gt" })
  local upper = time_bound(filter, spec.prop, { "le", "lt" })
  local K = { upper and (upper + 1) or math.maxinteger, 0, 0 }
  if q["$skiptoken"] then
    local s = dec_skip(q["$skiptoken"])
    local a, b, c = (s or ""):match("^(%-?%d+)_(%d+)_(%-?%d+)$")
    if not a then return self:graph_err(400, "Request_BadRequest", "Invalid skip token.", req) end
    K = { math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c)) }
  end
  local out, last, more, scanned, peeked = {}, nil, false, 0, 0
  local n = spec.n
  local stream = spec.stream
  T.merged_scan(n, function(i) return spread_ms(self, stream, n, i) end, spec.gen, spec.list, K, -1, function(ms, key, get)
    if lower and ms < lower then return true end
    if #out >= top then
      peeked = peeked + 1
      if not pred or pred(get()) or peeked > 5000 then more = true; return true end
      return false
    end
    local ev = get()
    if not pred or pred(ev) then out[#out + 1] = ev end
    last = key
    scanned = scanned + 1
    if scanned >= 50000 then more = true; return true end
    return false
  end)
  local body = { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#" .. spec.context, value = A(out) }
  if more and last then
    local params = {}
    if q["$top"] then params[#params + 1] = { "$top", q["$top"] } end
    if filter then params[#params + 1] = { "$filter", filter } end
    params[#params + 1] = { "$skiptoken", enc_skip(string.format("%d_%d_%d", last[1], last[2], last[3])) }
    body["@odata.nextLink"] = self.base_url .. path .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:h_audits(req)
  return self:log_page(req, { n = self.naudits, stream = "audit", gen = function(i) return self:gen_audit(i) end,
    list = self.state.audits, prop = "activityDateTime", context = "auditLogs/directoryAudits", top_default = 100, top_max = 1000 })
end
function MS:h_signins(req)
  if not self.entra_premium then
    return self:graph_err(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
      "Neither tenant is B2C or tenant doesn't have premium license", req)
  end
  return self:log_page(req, { n = self.nsignins, stream = "signin", gen = function(i) return self:gen_signin(i) end,
    list = self.state.signins, prop = "createdDateTime", context = "auditLogs/signIns", top_default = 1000, top_max = 1000 })
end
function MS:h_log_item(req)
  local signin = req.path:find("/signIns/")
  local id = req.params.lid
  local n = signin and self.nsignins or self.naudits
  local gen = signin and function(i) return self:gen_signin(i) end or function(i) return self:gen_audit(i) end
  for _, r in ipairs(signin and self.state.signins or self.state.audits) do if r.ev.id == id then return 200, r.ev end end
  for i = 0, n - 1 do local ev = gen(i); if ev.id == id then return 200, ev end end
  return self:graph_404(req, id)
end

---------------------------------------------------------------------------------------------------
-- Office 365 Management Activity API: lazy records per content type, bucketed into content blobs
---------------------------------------------------------------------------------------------------
local CONTENT_TYPES = { "Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All" }
local CT_WEIGHT = { 0.25, 0.22, 0.33, 0.18, 0.02 }
local CT_INDEX = {}
for i, c in ipairs(CONTENT_TYPES) do CT_INDEX[c] = i end
M.CONTENT_TYPES = CONTENT_TYPES

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
local FILE_EXT = { "docx", "xlsx", "pptx", "pdf", "txt", "png", "csv" }

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

---------------------------------------------------------------------------------------------------
-- Azure Resource Manager: subscriptions, activity log (lazy, newest first), RBAC
---------------------------------------------------------------------------------------------------
local SUB_NAMES = { "Contoso Production", "Contoso Development", "Contoso Sandbox", "Contoso Shared Services" }
local RGS = { "rg-web", "rg-data", "rg-network" }
local ARM_OPS = {   -- operationName, provider, resource type, method, subStatus
  { "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute", "virtualMachines", "PUT", "Created", 201 },
  { "Microsoft.Storage/storageAccounts/listKeys/action", "Microsoft.Storage", "storageAccounts", "POST", "OK", 200 },
  { "Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization", "roleAssignments", "PUT", "Created", 201 },
  { "Microsoft.Network/networkSecurityGroups/securityRules/write", "Microsoft.Network", "networkSecurityGroups/securityRules", "PUT", "Created", 201 },
  { "Microsoft.Resources/deployments/write", "Microsoft.Resources", "deployments", "PUT", "Created", 201 },
  { "Microsoft.KeyVault/vaults/delete", "Microsoft.KeyVault", "vaults", "DELETE", "OK", 200 },
  { "Microsoft.Compute/virtualMachines/start/action", "Microsoft.Compute", "virtualMachines", "POST", "Accepted", 202 },
  { "Microsoft.Sql/servers/firewallRules/write", "Microsoft.Sql", "servers/firewallRules", "PUT", "Created", 201 },
}

function MS:generate_arm(r)
  local seed, st = self.seed, self.state
  local now = self.t0_ms
  for k = 1, self.nsubs do
    local sub = { id = T.uuid(seed, "armsub", k), index = k, displayName = SUB_NAMES[k] or ("Contoso Subscription " .. k) }
    st.arm_subs[k] = sub
    st.arm_sub_by_id[sub.id] = sub
    st.arm_events[k] = {}
  end
  local ai = 0
  local function assign(sub, scope, role, principal, ptype)
    ai = ai + 1
    local a = { name = T.uuid(seed, "armassign", ai), scope = scope, sub = sub.id, role = role, principalId = principal,
                principalType = ptype, created = now - r:int(5, 600) * 86400000, createdBy = self.admin.id }
    st.arm_assignments[#st.arm_assignments + 1] = a
    return a
  end
  for _, sub in ipairs(st.arm_subs) do
    local sscope = "/subscriptions/" .. sub.id
    assign(sub, sscope, "Owner", self.admin.id, "User")
    for _, u in ipairs(self.gen_users) do
      if u.index > 1 and u.userType == "Member" and r:chance(0.08) then
        local x = r:float()
        local role = x < 0.6 and "Contributor" or (x < 0.8 and "User Access Administrator" or "Owner")
        local scope = r:chance(0.3) and (sscope .. "/resourceGroups/" .. r:pick(RGS)) or sscope
        assign(sub, scope, role, u.id, "User")
      end
    end
    if st.groups[1] then assign(sub, sscope, "Reader", st.groups[1].id, "Group") end
    for _, rn in ipairs(self.arm_client_roles) do assign(sub, sscope, rn, self.sp_client.id, "ServicePrincipal") end
  end
  table.sort(st.arm_assignments, function(a, b) return a.name < b.name end)
end

function MS:arm_role_def_id(sub_id, role)
  local def = ARM_ROLE_BY_NAME[role]
  return (sub_id and ("/subscriptions/" .. sub_id) or "") .. "/providers/Microsoft.Authorization/roleDefinitions/" .. def[2]
end

function MS:arm_assignment_json(a)
  return { id = a.scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. a.name, name = a.name,
           type = "Microsoft.Authorization/roleAssignments",
           properties = { roleDefinitionId = self:arm_role_def_id(a.sub, a.role), principalId = a.principalId,
                          principalType = a.principalType, scope = a.scope, description = jnull(), condition = jnull(),
                          conditionVersion = jnull(), createdOn = iso7(a.created), updatedOn = iso7(a.updated or a.created),
                          createdBy = a.createdBy, updatedBy = a.createdBy, delegatedManagedIdentityResourceId = jnull() } }
end

function MS:arm_role_def_json(sub_id, def)
  return { id = self:arm_role_def_id(sub_id, def[1]), name = def[2], type = "Microsoft.Authorization/roleDefinitions",
           properties = { roleName = def[1], type = "BuiltInRole", description = def[3],
                          assignableScopes = A({ "/" }),
                          permissions = A({ { actions = A(T.deep(def[4])), notActions = A(T.deep(def[5])), dataActions = A(), notDataActions = A() } }),
                          createdOn = "2015-02-02T21:55:09.8806423Z", updatedOn = "2021-11-11T20:13:47.8628684Z",
                          createdBy = jnull(), updatedBy = jnull() } }
end

-- the caller's roles at a subscription (assignments to the calling principal or its groups)
function MS:arm_caller_roles(sub_id)
  local roles = {}
  for _, a in ipairs(self.state.arm_assignments) do
    if a.sub == sub_id and a.principalId == self.sp_client.id then roles[a.role] = true end
  end
  return roles
end

function MS:arm_authz(req, sub_id, action, write)
  local sub = self.state.arm_sub_by_id[sub_id]
  if not sub then
    return self:arm_err(404, "SubscriptionNotFound", "The subscription '" .. tostring(sub_id) .. "' could not be found.")
  end
  local roles = self:arm_caller_roles(sub_id)
  local ok = write and (roles.Owner or roles["User Access Administrator"]) or (not write and next(roles) ~= nil)
  if not ok then
    return self:arm_err(403, "AuthorizationFailed", "The client '" .. self.client_id .. "' with object id '" .. self.sp_client.id
      .. "' does not have authorization to perform action '" .. action .. "' over scope '/subscriptions/" .. sub_id
      .. "' or the scope is invalid. If access was recently granted, please refresh your credentials.")
  end
  return nil, sub
end

function MS:h_arm_subscriptions(req)
  local out = {}
  for _, sub in ipairs(self.state.arm_subs) do
    if next(self:arm_caller_roles(sub.id)) then
      out[#out + 1] = { id = "/subscriptions/" .. sub.id, authorizationSource = "RoleBased", managedByTenants = A(),
        subscriptionId = sub.id, tenantId = self.tenant_id, displayName = sub.displayName, state = "Enabled",
        subscriptionPolicies = { locationPlacementId = "Public_2014-09-01", quotaId = "EnterpriseAgreement_2014-09-01", spendingLimit = "Off" } }
    end
  end
  return 200, { value = A(out), count = { type = "Total", value = #out } }
end

function MS:h_arm_subscription(req)
  local err, sub = self:arm_authz(req, req.params.sid, "Microsoft.Resources/subscriptions/read")
  if err then return err, sub end
  return 200, { id = "/subscriptions/" .. sub.id, subscriptionId = sub.id, tenantId = self.tenant_id, displayName = sub.displayName,
                state = "Enabled", authorizationSource = "RoleBased", managedByTenants = A(),
                subscriptionPolicies = { locationPlacementId = "Public_2014-09-01", quotaId = "EnterpriseAgreement_2014-09-01", spendingLimit = "Off" } }
end

function MS:arm_event(sub, e)
  local op = e.op
  local rid = "/subscriptions/" .. sub.id .. "/resourceGroups/" .. e.rg .. "/providers/" .. op[2] .. "/" .. op[3] .. "/" .. e.resname
  local ticks = 621355968000000000 + e.ms * 10000
  local caller = e.caller
  return {
    authorization = { action = op[1], scope = rid },
    caller = caller.upn or caller.appId,
    channels = "Operation",
    claims = { aud = "https://management.core.windows.net/", iss = "https://sts.windows.net/" .. self.tenant_id .. "/",
               iat = tostring(e.ms // 1000 - 300), nbf = tostring(e.ms // 1000 - 300), exp = tostring(e.ms // 1000 + 3300), ver = "1.0",
               ["http://schemas.microsoft.com/identity/claims/tenantid"] = self.tenant_id,
               ["http://schemas.microsoft.com/identity/claims/objectidentifier"] = caller.id,
               ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = caller.upn,
               ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = caller.upn or caller.displayName,
               name = caller.displayName, appid = caller.appId or "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", appidacr = "2",
               ["http://schemas.microsoft.com/identity/claims/scope"] = "user_impersonation" },
    correlationId = e.corr, description = "", eventDataId = e.id,
    eventName = { value = "EndRequest", localizedValue = "End request" },
    category = { value = "Administrative", localizedValue = "Administrative" },
    httpRequest = { clientRequestId = T.uuid(self.seed, "armcrid", e.id), clientIpAddress = e.ip, method = op[4] },
    id = rid .. "/events/" .. e.id .. "/ticks/" .. ticks,
    level = e.failed and "Error" or "Informational",
    resourceGroupName = e.rg,
    resourceProviderName = { value = op[2], localizedValue = op[2] },
    resourceId = rid,
    resourceType = { value = op[2] .. "/" .. op[3], localizedValue = op[2] .. "/" .. op[3] },
    operationId = e.corr,
    operationName = { value = op[1], localizedValue = op[1] },
    properties = { statusCode = e.failed and "Forbidden" or op[5], serviceRequestId = jnull(), eventCategory = "Administrative",
                   entity = rid, message = op[1], hierarchy = self.tenant_id .. "/" .. sub.id },
    status = { value = e.failed and "Failed" or "Succeeded", localizedValue = e.failed and "Failed" or "Succeeded" },
    subStatus = { value = e.failed and "Forbidden" or op[5],
                  localizedValue = e.failed and "Forbidden (HTTP Status Code: 403)" or (op[5] .. " (HTTP Status Code: " .. op[6] .. ")") },
    eventTimestamp = iso7(e.ms), submissionTimestamp = iso7(e.ms + 12000 + (T.hash(self.seed, "sub", e.id) >> 50)),
    subscriptionId = sub.id, tenantId = self.tenant_id,
  }
end

function MS:gen_arm_event(k, i)
  local seed = self.seed
  local sub = self.state.arm_subs[k]
  local h = T.hash(seed, "armev", k, i)
  local op = ARM_OPS[T.below(h, #ARM_OPS) + 1]
  local u = self.gen_users[T.below(T.hash(h, 1), math.min(6, #self.gen_users)) + 1]
  return self:arm_event(sub, { op = op, rg = RGS[T.below(T.hash(h, 2), #RGS) + 1], resname = op[3]:match("([^/]+)$") .. "-" .. (T.hash(h, 3) >> 54),
    ms = spread_ms(self, "arm" .. k, self.arm_events, i), caller = u, id = T.uuid(seed, "armevid", k, i), corr = T.uuid(seed, "armcorr", k, i),
    ip = u.ip, failed = T.unit(T.hash(h, 4)) < 0.04 })
end

function MS:add_arm_event(sub, spec)
  local k = sub.index
  local seq = self:seq()
  local ms = spec.ms or self:now_ms()
  local caller = spec.caller or { id = self.sp_client.id, appId = self.client_id, displayName = self.client_name }
  local ev = self:arm_event(sub, { op = spec.op, rg = spec.rg or "rg-web", resname = spec.resname or "x", ms = ms, caller = caller,
    id = T.uuid(self.seed, "sarmev", seq), corr = T.uuid(self.seed, "sarmcorr", seq), ip = spec.ip or "127.0.0.1" })
  if spec.resource_id then
    ev.resourceId = spec.resource_id; ev.authorization.scope = spec.resource_id
    ev.id = spec.resource_id .. "/events/" .. ev.eventDataId .. "/ticks/" .. (621355968000000000 + ms * 10000)
  end
  T.insert_sorted(self.state.arm_events[k], { ms = ms, seq = seq, ev = ev })
  return ev
end

local EVENT_SELECT = { authorization = 1, claims = 1, correlationId = 1, description = 1, eventDataId = 1, eventName = 1, eventTimestamp = 1,
  httpRequest = 1, level = 1, operationId = 1, operationName = 1, properties = 1, resourceGroupName = 1, resourceProviderName = 1,
  resourceId = 1, status = 1, submissionTimestamp = 1, subStatus = 1, subscriptionId = 1, caller = 1, category = 1, id = 1,
  resourceType = 1, tenantId = 1, channels = 1 }

function MS:h_arm_activity(req)
  local err, sub = self:arm_authz(req, req.params.sid, "Microsoft.Insights/eventtypes/values/read")
  if err then return err, sub end
  local q = req.query
  local f = q["$filter"] or ""
  local ge = f:match("eventTimestamp%s+ge%s+'([^']+)'")
  local le = f:match("eventTimestamp%s+le%s+'([^']+)'")
  local lower, upper = ge and T.parse_iso(ge), le and T.parse_iso(le)
  if not lower or not upper then
    return self:arm_err(400, "BadRequest", "The $filter query parameter value is invalid: it must contain 'eventTimestamp ge' and 'eventTimestamp le' with ISO 8601 values.")
  end
  if upper < lower then
    return self:arm_err(400, "BadRequest", "The $filter query parameter value is invalid: eventTimestamp le is before eventTimestamp ge.")
  end
  lower = math.max(lower, self:now_ms() - 90 * 86400000)     -- retention: 90 days
  local extra = {}
  for _, k in ipairs({ "resourceGroupName", "resourceUri", "resourceProvider", "correlationId" }) do
    local v = f:match(k .. "%s+eq%s+'([^']*)'")
    if v then extra[k] = v:lower() end
  end
  local sel
  if q["$select"] and q["$select"] ~= "" then
    sel = {}
    for p in q["$select"]:gmatch("[^,%s]+") do
      if not EVENT_SELECT[p] then return self:arm_err(400, "BadRequest", "The $select query parameter value '" .. p .. "' is invalid.") end
      sel[#sel + 1] = p
    end
  end
  local K = { upper + 1, 0, 0 }
  if q["$skiptoken"] then
    local a, b, c = (dec_skip(q["$skiptoken"]) or ""):match("^(%-?%d+)_(%d+)_(%-?%d+)$")
    if not a then return self:arm_err(400, "BadRequest", "The $skiptoken query parameter value is invalid.") end
    K = { math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c)) }
  end
  local k = sub.index
  local size = self.opts.arm_page_size or 200
  local out, last, more = {}, nil, false
  local n = self.arm_events
  T.merged_scan(n, function(i) return spread_ms(self, "arm" .. k, n, i) end, function(i) return self:gen_arm_event(k, i) end,
    self.state.arm_events[k], K, -1, function(ms, key, get)
      if ms < lower then return true end
      if #out >= size then more = true; return true end
      local ev = get()
      local keep = true
      if extra.resourceGroupName and (ev.resourceGroupName or ""):lower() ~= extra.resourceGroupName then keep = false end
      if extra.resourceUri and ev.resourceId:lower() ~= extra.resourceUri then keep = false end
      if extra.resourceProvider and ev.resourceProviderName.value:lower() ~= extra.resourceProvider then keep = false end
      if extra.correlationId and ev.correlationId:lower() ~= extra.correlationId then keep = false end
      if keep then
        if sel then local o = {}; for _, p in ipairs(sel) do o[p] = ev[p] end; ev = o end
        out[#out + 1] = ev
      end
      last = key
      return false
    end)
  local body = { value = A(out) }
  if more and last then
    local path = select(2, self:api_of(req.path))
    local params = { { "api-version", q["api-version"] }, { "$filter", f } }
    if q["$select"] then params[#params + 1] = { "$select", q["$select"] } end
    params[#params + 1] = { "$skiptoken", enc_skip(string.format("%d_%d_%d", last[1], last[2], last[3])) }
    body.nextLink = self.base_url .. path .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:h_arm_categories(req)
  local out = {}
  for _, c in ipairs({ "Administrative", "Security", "ServiceHealth", "Alert", "Recommendation", "Policy", "Autoscale", "ResourceHealth" }) do
    out[#out + 1] = { value = c, localizedValue = c }
  end
  return 200, { value = A(out) }
end

-- scope of a request: /subscriptions/{sid}[/resourceGroups/{rg}]
local function arm_scope(req)
  local s = "/subscriptions/" .. req.params.sid
  if req.params.rg then s = s .. "/resourceGroups/" .. req.params.rg end
  return s
end

function MS:h_arm_assignments(req)
  local err, sub = self:arm_authz(req, req.params.sid, "Microsoft.Authorization/roleAssignments/read")
  if err then return err, sub end
  local scope = arm_scope(req):lower()
  local f = req.query["$filter"] or ""
  local at_scope = f:find("atScope%(%)") ~= nil
  local pid = f:match("principalId%s+eq%s+'([^']+)'")
  local assigned = f:match("assignedTo%('([^']+)'%)")
  if f ~= "" and not at_scope and not pid and not assigned then
    return self:arm_err(400, "InvalidFilter", "The filter '" .. f .. "' is not supported. Supported filters are 'atScope()', 'principalId eq {id}' and 'assignedTo('{id}')'.")
  end
  local groups_of = {}
  if assigned then
    for _, g in ipairs(self.state.groups) do if g.member_set[assigned] then groups_of[g.id] = true end end
  end
  local list = {}
  for _, a in ipairs(self.state.arm_assignments) do
    local s = a.scope:lower()
    local above_or_at = scope:sub(1, #s) == s and (#s == #scope or scope:sub(#s + 1, #s + 1) == "/")
    local below = s:sub(1, #scope) == scope and s:sub(#scope + 1, #scope + 1) == "/"
    local keep = a.sub == sub.id and (above_or_at or (not at_scope and below))
    if keep and pid and a.principalId ~= pid then keep = false end
    if keep and assigned and a.principalId ~= assigned and not groups_of[a.principalId] then keep = false end
    if keep then list[#list + 1] = a end
  end
  local size = self.opts.arm_page_size or 200
  local start = 1
  local tok = req.query["$skiptoken"] or req.query["$skipToken"]
  if tok then
    local after = dec_skip(tok)
    if not after then return self:arm_err(400, "BadRequest", "The $skipToken query parameter value is invalid.") end
    start = #list + 1
    for i, a in ipairs(list) do if a.name > after then start = i; break end end
  end
  local out = {}
  for i = start, math.min(#list, start + size - 1) do out[#out + 1] = self:arm_assignment_json(list[i]) end
  local body = { value = A(out) }
  if start + size - 1 < #list then
    local path = select(2, self:api_of(req.path))
    local params = { { "api-version", req.query["api-version"] } }
    if f ~= "" then params[#params + 1] = { "$filter", f } end
    params[#params + 1] = { "$skiptoken", enc_skip(list[start + size - 1].name) }
    body.nextLink = self.base_url .. path .. "?" .. odata_qs(params)
  end
  return 200, body
end

function MS:h_arm_assignment(req)
  local write = req.method ~= "GET"
  local action = "Microsoft.Authorization/roleAssignments/" .. (req.method == "GET" and "read" or (req.method == "DELETE" and "delete" or "write"))
  local err, sub = self:arm_authz(req, req.params.sid, action, write)
  if err then return err, sub end
  local scope = arm_scope(req)
  local st = self.state
  local idx, a
  for i, x in ipairs(st.arm_assignments) do
    if x.name == req.params.name and x.scope:lower() == scope:lower() then idx, a = i, x; break end
  end
  if req.method == "GET" then
    if not a then return self:arm_err(404, "RoleAssignmentNotFound", "The role assignment '" .. req.params.name .. "' is not found.") end
    return 200, self:arm_assignment_json(a)
  elseif req.method == "DELETE" then
    if not a then return 204, "" end
    table.remove(st.arm_assignments, idx)
    local body = self:arm_assignment_json(a)
    self:add_arm_event(sub, { op = { "Microsoft.Authorization/roleAssignments/delete", "Microsoft.Authorization", "roleAssignments", "DELETE", "OK", 200 },
                              resource_id = body.id, rg = req.params.rg })
    return 200, body
  end
  -- PUT
  local b = body_json(req)
  local p = b and b.properties
  if type(p) ~= "table" or type(p.roleDefinitionId) ~= "string" or type(p.principalId) ~= "string" then
    return self:arm_err(400, "InvalidRoleAssignmentRequest", "The request body must contain properties.roleDefinitionId and properties.principalId.")
  end
  local guid = p.roleDefinitionId:match("([%x%-]+)$")
  local def = guid and ARM_ROLE_BY_ID[guid]
  if not def then return self:arm_err(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID '" .. tostring(guid) .. "' does not exist.") end
  for _, x in ipairs(st.arm_assignments) do
    if x.scope:lower() == scope:lower() and x.principalId == p.principalId and x.role == def[1] and x.name ~= req.params.name then
      return self:arm_err(409, "RoleAssignmentExists", "The role assignment already exists.")
    end
  end
  local created = not a
  if not a then
    a = { name = req.params.name, scope = scope, sub = sub.id, created = self:now_ms(), createdBy = self.sp_client.id }
    st.arm_assignments[#st.arm_assignments + 1] = a
    table.sort(st.arm_assignments, function(x, y) return x.name < y.name end)
  end
  a.role, a.principalId, a.principalType, a.updated = def[1], p.principalId, p.principalType or "User", self:now_ms()
  local body = self:arm_assignment_json(a)
  self:add_arm_event(sub, { op = ARM_OPS[3], resource_id = body.id, rg = req.params.rg })
  return created and 201 or 200, body
end

function MS:h_arm_role_defs(req)
  local sid = req.params.sid
  if sid then
    local err, sub = self:arm_authz(req, sid, "Microsoft.Authorization/roleDefinitions/read")
    if err then return err, sub end
  end
  local f = req.query["$filter"] or ""
  local name = f:match("roleName%s+eq%s+'([^']+)'")
  local typ = f:match("type%s+eq%s+'([^']+)'")
  local out = {}
  for _, def in ipairs(ARM_ROLES) do
    if (not name or name:lower() == def[1]:lower()) and (not typ or typ == "BuiltInRole") then out[#out + 1] = self:arm_role_def_json(sid, def) end
  end
  return 200, { value = A(out) }
end

function MS:h_arm_role_def(req)
  local sid = req.params.sid
  if sid then
    local err, sub = self:arm_authz(req, sid, "Microsoft.Authorization/roleDefinitions/read")
    if err then return err, sub end
  end
  local def = ARM_ROLE_BY_ID[req.params.rdid]
  if not def then return self:arm_err(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID '" .. req.params.rdid .. "' does not exist.") end
  return 200, self:arm_role_def_json(sid, def)
end

function MS:arm_routes()
  local R = {
    { "GET", "/subscriptions", MS.h_arm_subscriptions, {} },
    { "GET", "/subscriptions/:sid", MS.h_arm_subscription, {} },
    { "GET", "/providers/microsoft.insights/eventcategories", MS.h_arm_categories, {} },
    { "GET", "/providers/Microsoft.Insights/eventcategories", MS.h_arm_categories, {} },
    { "GET", "/providers/Microsoft.Authorization/roleDefinitions/:rdid", MS.h_arm_role_def, {} },
  }
  for _, ns in ipairs({ "microsoft.insights", "Microsoft.Insights" }) do
    R[#R + 1] = { "GET", "/subscriptions/:sid/providers/" .. ns .. "/eventtypes/management/values", MS.h_arm_activity, {} }
  end
  for _, base in ipairs({ "/subscriptions/:sid", "/subscriptions/:sid/resourceGroups/:rg" }) do
    local p = base .. "/providers/Microsoft.Authorization"
    R[#R + 1] = { "GET", p .. "/roleAssignments", MS.h_arm_assignments, {} }
    R[#R + 1] = { "GET", p .. "/roleAssignments/:name", MS.h_arm_assignment, {} }
    R[#R + 1] = { "DELETE", p .. "/roleAssignments/:name", MS.h_arm_assignment, {} }
    R[#R + 1] = { "PUT", p .. "/roleAssignments/:name", MS.h_arm_assignment, {} }
  end
  R[#R + 1] = { "GET", "/subscriptions/:sid/providers/Microsoft.Authorization/roleDefinitions", MS.h_arm_role_defs, {} }
  R[#R + 1] = { "GET", "/subscriptions/:sid/providers/Microsoft.Authorization/roleDefinitions/:rdid", MS.h_arm_role_def, {} }
  return R
end

function MS:arm_count(what, arg)
  local st = self.state
  if what == "arm_subscriptions" then return #st.arm_subs
  elseif what == "arm_role_assignments" then
    local n = 0
    for _, a in ipairs(st.arm_assignments) do if not arg or a.sub == arg or a.role == arg then n = n + 1 end end
    return n
  elseif what == "arm_events" then
    local n = 0
    for k, sub in ipairs(st.arm_subs) do if not arg or sub.id == arg then n = n + self.arm_events + #st.arm_events[k] end end
    return n
  end
end

---------------------------------------------------------------------------------------------------
-- OneDrive / SharePoint: drives, items, permissions, delta
---------------------------------------------------------------------------------------------------
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

function MS:item_json(it, deleted)
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
  local eff = self:effective_perms(it)
  if #eff > 0 then
    local scope = "users"
    for _, e in ipairs(eff) do
      if e.p.scope == "anonymous" then scope = "anonymous" elseif e.p.scope == "organization" and scope ~= "anonymous" then scope = "organization" end
    end
    o.shared = { scope = scope, owner = identity(d.owner_user) }
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
        out[#out + 1] = self:item_json(it); last = it.order
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
    out[#out + 1] = self:item_json(it, it.deleted)
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
    -- moved descendants change path: they show up in delta too
    local function touch_desc(x) for _, c in ipairs(d.items) do if c.parent == x.id and not c.deleted then self:touch(c); touch_desc(c) end end end
    if moved and it.folder then touch_desc(it) end
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
        self:touch(it)
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
        self:touch(it)
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

---------------------------------------------------------------------------------------------------
-- Graph change notifications: subscriptions with the validation handshake, notifications with clientState
---------------------------------------------------------------------------------------------------
local SUB_MAX_MIN = { users = 41760, groups = 41760, drive = 42300 }

-- normalise a subscription resource: "users", "groups", or {drive=id}
function MS:sub_resource(res)
  local r = (res or ""):gsub("^/", "")
  if r == "users" or r == "groups" then return r end
  local did = r:match("^drives/([^/]+)/root$")
  if did and self.state.drive_by_id[did] then return "drive", did end
  local uid = r:match("^users/([^/]+)/drive/root$")
  local u = uid and self:find_user(uid)
  local d = u and self:user_drive(u)
  if d then return "drive", d.id end
  return nil
end

function MS:gsub_json(s)
  return { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#subscriptions/$entity", id = s.id, resource = s.resource,
           applicationId = self.client_id, changeType = s.changeType, clientState = nz(s.clientState),
           notificationUrl = s.notificationUrl, notificationQueryOptions = jnull(), lifecycleNotificationUrl = nz(s.lifecycleNotificationUrl),
           expirationDateTime = iso7(s.exp), creatorId = self.sp_client.id, includeResourceData = false,
           latestSupportedTlsVersion = s.tls or "v1_2", encryptionCertificate = jnull(), encryptionCertificateId = jnull(),
           notificationUrlAppId = jnull() }
end

-- POST {notificationUrl}?validationToken=...; the endpoint must echo the token as text/plain within 10 s
function MS:validate_endpoint(url)
  local token = "Validation: Testing client application reachability for subscription Request-Id: " .. self:request_id()
  local sep = url:find("?", 1, true) and "&" or "?"
  local res, err = T.host("http").request{ method = "POST", url = url .. sep .. "validationToken=" .. T.urlencode(token),
    headers = { ["Content-Type"] = "text/plain; charset=utf-8" }, body = "", timeout = 10 }
  if not res then return nil, "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. (" .. tostring(err) .. ")" end
  if res.status ~= 200 then return nil, "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request." end
  local ct = (res.headers["content-type"] or ""):lower()
  if not ct:find("text/plain", 1, true) then return nil, "Subscription validation request failed. Must respond with 200 OK and a text/plain content type." end
  if res.body ~= token then return nil, "Subscription validation request failed. Response must exactly match validationToken query parameter." end
  return true
end

function MS:check_expiration(req, kind, v)
  local ex = type(v) == "string" and T.parse_iso(v)
  if not ex then return nil, { self:graph_err(400, "ValidationError", "expirationDateTime is required and must be a valid DateTimeOffset.", req) } end
  local now = self:now_ms()
  if ex <= now then return nil, { self:graph_err(400, "ValidationError", "Subscription expiration can only be in the future.", req) } end
  local max = SUB_MAX_MIN[kind] * 60000
  if ex > now + max then
    return nil, { self:graph_err(400, "ValidationError", "Subscription expiration can only be " .. SUB_MAX_MIN[kind] .. " minutes in the future.", req) }
  end
  return ex
end

function MS:h_subscriptions(req)
  local st = self.state
  if req.method == "GET" then
    local out = {}
    for _, s in ipairs(st.subscriptions) do local o = self:gsub_json(s); o["@odata.context"] = nil; out[#out + 1] = o end
    return 200, { ["@odata.context"] = self.base_url .. "/v1.0/$metadata#subscriptions", value = A(out) }
  end
  local b = body_json(req)
  if not b then return self:graph_err(400, "InvalidRequest", "Invalid request body.", req) end
  local kind, did = self:sub_resource(b.resource)
  if not kind then return self:graph_err(400, "InvalidRequest", "Resource '" .. tostring(b.resource) .. "' is not supported.", req) end
  if type(b.changeType) ~= "string" or b.changeType == "" then return self:graph_err(400, "ValidationError", "changeType is required.", req) end
  for ct in b.changeType:gmatch("[^,]+") do
    local okct = (kind == "drive" and ct == "updated") or (kind ~= "drive" and (ct == "updated" or ct == "deleted"))
    if not okct then return self:graph_err(400, "ValidationError", "The changeType '" .. ct .. "' is not supported for resource '" .. b.resource .. "'.", req) end
  end
  local url = b.notificationUrl
  if type(url) ~= "string" or not (url:match("^https://") or url:match("^http://127%.") or url:match("^http://localhost")) then
    return self:graph_err(400, "ValidationError", "The notificationUrl must be an HTTPS URL.", req)
  end
  if b.clientState ~= nil and (type(b.clientState) ~= "string" or #b.clientState > 128) then
    return self:graph_err(400, "ValidationError", "clientState must be a string of at most 128 characters.", req)
  end
  local ex, e = self:check_expiration(req, kind, b.expirationDateTime)
  if not ex then return table.unpack(e) end
  local ok, verr = self:validate_endpoint(url)
  if not ok then return self:graph_err(400, "ValidationError", verr, req) end
  local s = { id = T.uuid(self.seed, "gsub", self:seq()), resource = b.resource, kind = kind, drive = did, changeType = b.changeType,
              notificationUrl = url, clientState = b.clientState, exp = ex, lifecycleNotificationUrl = b.lifecycleNotificationUrl,
              tls = b.latestSupportedTlsVersion }
  st.subscriptions[#st.subscriptions + 1] = s
  return 201, self:gsub_json(s)
end

function MS:h_subscription(req)
  local st = self.state
  for i, s in ipairs(st.subscriptions) do
    if s.id == req.params.subid then
      if req.method == "DELETE" then table.remove(st.subscriptions, i); return 204, "" end
      if req.method == "PATCH" then
        local b = body_json(req)
        local ex, e = self:check_expiration(req, s.kind, b and b.expirationDateTime)
        if not ex then return table.unpack(e) end
        local ok, verr = self:validate_endpoint(s.notificationUrl)
        if not ok then return self:graph_err(400, "ValidationError", verr, req) end
        s.exp = ex
      end
      return 200, self:gsub_json(s)
    end
  end
  return self:graph_err(404, "ResourceNotFound", "The object was not found.", req)
end

function MS:send_notification(s, n)
  local now = self:now_ms()
  if s.exp <= now then return end
  local want = false
  for ct in s.changeType:gmatch("[^,]+") do if ct == n.changeType then want = true end end
  if not want then return end
  n.id = T.b62(16, self.seed, "notif", self:seq())
  n.subscriptionId = s.id
  n.subscriptionExpirationDateTime = iso7(s.exp)
  n.clientState = nz(s.clientState)
  n.tenantId = self.tenant_id
  self:deliver{ url = s.notificationUrl, headers = { ["Content-Type"] = "application/json" },
                body = json().encode{ value = A({ n }) }, event = n.changeType, retries = 2, timeout = 3, subscription = s.id }
end

function MS:notify_change(kind, changeType, id, otype, oid)
  for _, s in ipairs(self.state.subscriptions) do
    if s.kind == kind then
      self:send_notification(s, { changeType = changeType, resource = oid,
        resourceData = { ["@odata.type"] = otype, ["@odata.id"] = oid, id = id } })
    end
  end
end

-- drive changes: one notification per change, without resource data (clients run a delta query)
function MS:notify_drive(d)
  for _, s in ipairs(self.state.subscriptions) do
    if s.kind == "drive" and s.drive == d.id then
      self:send_notification(s, { changeType = "updated", resource = s.resource })
    end
  end
end

function MS:sub_routes()
  local V, G = "/v1.0", {}
  return {
    { "GET", V .. "/subscriptions", MS.h_subscriptions, G },
    { "POST", V .. "/subscriptions", MS.h_subscriptions, G },
    { "GET", V .. "/subscriptions/:subid", MS.h_subscription, G },
    { "PATCH", V .. "/subscriptions/:subid", MS.h_subscription, G },
    { "DELETE", V .. "/subscriptions/:subid", MS.h_subscription, G },
  }
end

---------------------------------------------------------------------------------------------------
-- Route assembly and ground truth for the other surfaces
---------------------------------------------------------------------------------------------------
function MS:more_routes()
  local R = {}
  for _, part in ipairs({ self:file_routes(), self:sub_routes(), self:mgmt_routes(), self:arm_routes() }) do
    for _, r in ipairs(part) do R[#R + 1] = r end
  end
  return R
end

function MS:count_more(what, arg)
  if what == "mgmt_records" then return self:mgmt_count(arg) end
  if what == "mgmt_stored" then return #self.state.mgmt_stored end
  if what == "mgmt_available" then return self:mgmt_available(arg) end
  local n = self:arm_count(what, arg)
  if n then return n end
  n = self:files_count(what, arg)
  if n then return n end
  if what == "graph_subscriptions" then return #self.state.subscriptions end
  error("count: unknown " .. tostring(what))
end

---------------------------------------------------------------------------------------------------
-- Ground truth
---------------------------------------------------------------------------------------------------
function MS:count(what, arg)
  local st = self.state
  local function n_if(list, f) local n = 0; for _, x in ipairs(list) do if f(x) then n = n + 1 end end; return n end
  if what == "users" then return n_if(st.users, function(u) return not u.deleted end)
  elseif what == "users_enabled" then return n_if(st.users, function(u) return not u.deleted and u.accountEnabled end)
  elseif what == "users_disabled" then return n_if(st.users, function(u) return not u.deleted and not u.accountEnabled end)
  elseif what == "guests" then return n_if(st.users, function(u) return not u.deleted and u.userType == "Guest" end)
  elseif what == "groups" then return #st.groups
  elseif what == "members" then
    local n = 0
    for _, g in ipairs(st.groups) do if not arg or g.id == arg then n = n + #g.members end end
    return n
  elseif what == "directory_roles" then return #self:directory_roles()
  elseif what == "role_assignments" then return #st.role_assignments
  elseif what == "service_principals" then return #st.sps
  elseif what == "grants" then return #st.grants
  elseif what == "audits" then return self.naudits + #st.audits
  elseif what == "signins" then return self.nsignins + #st.signins
  elseif self.count_more then return self:count_more(what, arg) end
  error("count: unknown " .. tostring(what))
end

---------------------------------------------------------------------------------------------------
-- Mount
---------------------------------------------------------------------------------------------------
function MS:routes()
  local G = {}
  local V = "/v1.0"
  local routes = {
    { "POST", "/:tenant/oauth2/v2.0/token", MS.h_token, { public = true } },
    { "POST", "/:tenant/oauth2/token", MS.h_token, { public = true } },
    { "GET", "/:tenant/oauth2/v2.0/authorize", MS.h_authorize, { public = true } },
    { "GET", "/:tenant/oauth2/authorize", MS.h_authorize, { public = true } },
    { "GET", "/:tenant/adminconsent", MS.h_adminconsent, { public = true } },
    { "GET", "/:tenant/v2.0/adminconsent", MS.h_adminconsent, { public = true } },
    { "GET", V .. "/users", MS.h_users, G },
    { "GET", V .. "/users/delta()", MS.h_users_delta, G },
    { "GET", V .. "/users/delta", MS.h_users_delta, G },
    { "GET", V .. "/users/:id", MS.h_user, G },
    { "PATCH", V .. "/users/:id", MS.h_user, G },
    { "DELETE", V .. "/users/:id", MS.h_user, G },
    { "POST", V .. "/users/:id/revokeSignInSessions", MS.h_revoke_sessions, G },
    { "POST", V .. "/users/:id/authentication/methods/:mid/resetPassword", MS.h_reset_password, G },
    { "GET", V .. "/users/:id/memberOf", MS.h_member_of, G },
    { "GET", V .. "/users/:id/oauth2PermissionGrants", MS.h_grants, G },
    { "GET", V .. "/groups", MS.h_groups, G },
    { "GET", V .. "/groups/:gid", MS.h_group, G },
    { "GET", V .. "/groups/:gid/members", MS.h_group_members, G },
    { "GET", V .. "/groups/:gid/transitiveMembers", MS.h_group_members, G },
    { "GET", V .. "/groups/:gid/owners", MS.h_group_members, G },
    { "POST", V .. "/groups/:gid/members/$ref", MS.h_group_member_ref, G },
    { "DELETE", V .. "/groups/:gid/members/:oid/$ref", MS.h_group_member_ref, G },
    { "GET", V .. "/directoryRoles", MS.h_directory_roles, G },
    { "GET", V .. "/directoryRoles/:rid/members", MS.h_directory_role_members, G },
    { "DELETE", V .. "/directoryRoles/:rid/members/:oid/$ref", MS.h_directory_role_member_delete, G },
    { "GET", V .. "/roleManagement/directory/roleDefinitions", MS.h_role_definitions, G },
    { "GET", V .. "/roleManagement/directory/roleAssignments", MS.h_role_assignments, G },
    { "GET", V .. "/roleManagement/directory/roleAssignments/:aid", MS.h_role_assignment, G },
    { "DELETE", V .. "/roleManagement/directory/roleAssignments/:aid", MS.h_role_assignment, G },
    { "GET", V .. "/servicePrincipals", MS.h_sps, G },
    { "GET", V .. "/servicePrincipals/:spid", MS.h_sp, G },
    { "PATCH", V .. "/servicePrincipals/:spid", MS.h_sp, G },
    { "GET", V .. "/servicePrincipals/:spid/oauth2PermissionGrants", MS.h_grants, G },
    { "GET", V .. "/oauth2PermissionGrants", MS.h_grants, G },
    { "GET", V .. "/oauth2PermissionGrants/:grid", MS.h_grant, G },
    { "PATCH", V .. "/oauth2PermissionGrants/:grid", MS.h_grant, G },
    { "DELETE", V .. "/oauth2PermissionGrants/:grid", MS.h_grant, G },
    { "GET", V .. "/auditLogs/directoryAudits", MS.h_audits, G },
    { "GET", V .. "/auditLogs/directoryAudits/:lid", MS.h_log_item, G },
    { "GET", V .. "/auditLogs/signIns", MS.h_signins, G },
    { "GET", V .. "/auditLogs/signIns/:lid", MS.h_log_item, G },
  }
  for _, r in ipairs(self.more_routes and self:more_routes() or {}) do routes[#routes + 1] = r end
  routes[#routes + 1] = { "*", V .. "/*", function(t, req)
    return t:graph_err(400, "BadRequest", "Resource not found for the segment '" .. (req.params.rest:match("^([^/]+)") or "") .. "'.", req) end, G }
  return routes
end

function MS:mount(srv, prefix)
  self:mount_routes(srv, prefix, self:routes())
  self.urls = { login = self.base_url, graph = self.base_url .. "/v1.0",
                mgmt = self.base_url .. "/api/v1.0/" .. self.tenant_id .. "/activity/feed", arm = self.base_url }
  return self
end

return M
