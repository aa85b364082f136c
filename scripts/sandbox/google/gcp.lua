-- sandbox/google/gcp.lua — a Google Cloud organization: Resource Manager v3 (organizations, folders,
-- projects, getIamPolicy / setIamPolicy with the policy's etag), IAM v1 (service accounts and their keys,
-- disable), Cloud Logging v2 entries:list (Cloud Audit Logs), and the service-account token endpoint
-- (common.lua: the JWT-bearer assertion verified; no `sub` here).  Reference: shared/api/gcp.md and the
-- discovery documents cloudresourcemanager:v3, iam:v1, logging:v2.
--
--   local t = require("sandbox.google").gcp{seed=1, projects=3, entries=120}
--   t:mount(srv)          -- one server plays cloudresourcemanager, iam, logging and oauth2.googleapis.com
--   t:key_file(t.sa)      -- the reader service account's JSON key file
local T = require "sandbox.tenant"
local C = require "sandbox.google.common"
local json = C.json

local P = setmetatable({}, { __index = C.G })
P.__index = P
local M = { P = P }

M.AUDIT_LOGS = { activity = "cloudaudit.googleapis.com%2Factivity", data_access = "cloudaudit.googleapis.com%2Fdata_access",
                 system_event = "cloudaudit.googleapis.com%2Fsystem_event", policy = "cloudaudit.googleapis.com%2Fpolicy" }
local READ = { "cloud-platform", "cloud-platform.read-only" }
local WRITE = { "cloud-platform" }
local LOG_READ = { "cloud-platform", "cloud-platform.read-only", "logging.read", "logging.admin" }

-- Errors of Google's newer APIs (AIP-193): the status names gRPC's code (409 ABORTED, not ALREADY_EXISTS).
function P:rpc_err(code, status, message)
  return code, { error = { code = code, message = message, status = status } }
end

---------------------------------------------------------------------------------------------------
-- IAM as Google enforces it: what the caller (its member string, "serviceAccount:<email>") may do on a
-- resource is what the roles bound to it there or on any ancestor grant (policies are inherited down the
-- organization > folder > project hierarchy).  The predefined roles the emulator knows, with the
-- permissions among them that its API checks, as Google lists them (IAM "roles and permissions"
-- reference); a role it does not know grants nothing here.
---------------------------------------------------------------------------------------------------
local RM = "resourcemanager."
local READS = { RM .. "organizations.getIamPolicy", RM .. "folders.getIamPolicy", RM .. "projects.getIamPolicy",
  RM .. "folders.list", RM .. "projects.list", "iam.serviceAccounts.list", "iam.serviceAccounts.get", "iam.serviceAccountKeys.list" }
local function set(...)
  local out = {}
  for _, list in ipairs { ... } do for _, p in ipairs(list) do out[p] = true end end
  return out
end
M.ROLE_PERMISSIONS = {
  ["roles/iam.securityReviewer"] = set(READS, { "logging.logEntries.list", "logging.privateLogEntries.list" }),
  ["roles/viewer"] = set(READS, { RM .. "projects.get", RM .. "folders.get", RM .. "organizations.get", "logging.logEntries.list" }),
  ["roles/browser"] = set { RM .. "projects.get", RM .. "projects.list", RM .. "folders.get", RM .. "folders.list", RM .. "organizations.get" },
  ["roles/resourcemanager.folderViewer"] = set { RM .. "folders.get", RM .. "folders.list" },
  ["roles/logging.viewer"] = set { "logging.logEntries.list", RM .. "projects.get" },
  ["roles/logging.privateLogViewer"] = set { "logging.logEntries.list", "logging.privateLogEntries.list", RM .. "projects.get" },
  ["roles/resourcemanager.organizationAdmin"] = set { RM .. "organizations.get", RM .. "organizations.getIamPolicy", RM .. "organizations.setIamPolicy",
    RM .. "folders.get", RM .. "folders.list", RM .. "folders.getIamPolicy", RM .. "folders.setIamPolicy",
    RM .. "projects.get", RM .. "projects.list", RM .. "projects.getIamPolicy", RM .. "projects.setIamPolicy" },
  ["roles/resourcemanager.folderIamAdmin"] = set { RM .. "folders.get", RM .. "folders.getIamPolicy", RM .. "folders.setIamPolicy" },
  ["roles/resourcemanager.projectIamAdmin"] = set { RM .. "projects.get", RM .. "projects.getIamPolicy", RM .. "projects.setIamPolicy" },
  ["roles/iam.serviceAccountAdmin"] = set { "iam.serviceAccounts.list", "iam.serviceAccounts.get", "iam.serviceAccounts.disable",
    "iam.serviceAccounts.enable", RM .. "projects.get", RM .. "projects.list" },
  ["roles/iam.serviceAccountKeyAdmin"] = set { "iam.serviceAccountKeys.list", "iam.serviceAccountKeys.disable", "iam.serviceAccountKeys.enable",
    "iam.serviceAccounts.list", "iam.serviceAccounts.get", RM .. "projects.get", RM .. "projects.list" },
}
M.ROLE_PERMISSIONS["roles/owner"] = setmetatable({}, { __index = function() return true end })

-- The roles the tenant's own service account holds on the organization unless told otherwise: the
-- least-privileged ones for what cachost reads and does.
M.CALLER_ROLES = { "roles/iam.securityReviewer", "roles/logging.viewer", "roles/iam.serviceAccountKeyAdmin",
                   "roles/iam.serviceAccountAdmin", "roles/resourcemanager.organizationAdmin" }

-- May the request's caller do `permission` on resource r?
function P:allowed(req, r, permission)
  local member = "serviceAccount:" .. req.token.sa.email
  while r do
    for _, b in ipairs(r.policy.bindings) do
      local perms = M.ROLE_PERMISSIONS[b.role]
      if perms and perms[permission] then
        for _, m in ipairs(b.members) do if m == member then return true end end
      end
    end
    r = r.parent and self.state.by_name[r.parent]
  end
  return false
end

-- Google's 403 for a permission the caller lacks: Resource Manager's and IAM's own words, and the
-- ErrorInfo that names the permission (AIP-193).
local DOMAIN = { resourcemanager = "cloudresourcemanager.googleapis.com", iam = "iam.googleapis.com", logging = "logging.googleapis.com" }
function P:denied(permission, r)
  if permission:match("IamPolicy$") then
    return self:rpc_err(403, "PERMISSION_DENIED", "The caller does not have permission")
  end
  local domain = DOMAIN[permission:match("^(%a+)%.")]
  local on = domain == DOMAIN.resourcemanager and r and (" '//" .. domain .. "/" .. r.name .. "'") or ""
  local st, body = self:rpc_err(403, "PERMISSION_DENIED", ("Permission '%s' denied on resource%s (or it may not exist)."):format(permission, on))
  body.error.details = json().array({ { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "IAM_PERMISSION_DENIED",
    domain = domain, metadata = { permission = permission, resource = r and r.name or nil } } })
  return st, body
end

-- nil when allowed, else the 403 to answer
function P:check(req, r, permission)
  if not self:allowed(req, r, permission) then return self:denied(permission, r) end
end

---------------------------------------------------------------------------------------------------
-- The seeded organization
---------------------------------------------------------------------------------------------------
local function etag(self, salt) self.netag = (self.netag or 0) + 1 return "BwY" .. T.b62(9, self.seed, "etag", salt, self.netag) end

function P:resource(name, parent, kind, extra)
  local r = extra or {}
  r.name, r.parent, r.kind = name, parent, kind
  r.policy = { version = 1, bindings = {}, etag = etag(self, name) }
  self.state.resources[#self.state.resources + 1] = r
  self.state.by_name[name] = r
  return r
end

function P:bind(res, role, member)
  for _, b in ipairs(res.policy.bindings) do
    if b.role == role then
      for _, m in ipairs(b.members) do if m == member then return end end      -- a member appears once in a binding
      b.members[#b.members + 1] = member
      return
    end
  end
  res.policy.bindings[#res.policy.bindings + 1] = { role = role, members = { member } }
end

local ROLES = { "roles/owner", "roles/editor", "roles/viewer", "roles/iam.securityAdmin", "roles/iam.serviceAccountTokenCreator",
                "roles/iam.serviceAccountKeyAdmin", "roles/logging.viewer", "roles/storage.objectViewer" }

function P:gen(rng)
  local st = self.state
  local t0 = self.t0_ms
  local org = self:resource("organizations/" .. self.org_number, nil, "organization",
    { displayName = self.domain, directoryCustomerId = "C0" .. T.hexs(7, self.seed, "cust"), state = "ACTIVE",
      createTime = C.time(t0 - 900 * 86400000) })
  self.org = org
  self:bind(org, "roles/resourcemanager.organizationAdmin", "user:admin@" .. self.domain)
  for _, role in ipairs(self.caller_roles) do self:bind(org, role, "serviceAccount:" .. self.sa.email) end
  self:bind(org, "roles/viewer", "group:security@" .. self.domain)
  local folders = {}
  for i, n in ipairs { "Production", "Sandbox" } do
    local f = self:resource("folders/" .. tostring(1000000000 + T.below(T.hash(self.seed, "folder", i), 899999999)), org.name, "folder",
      { displayName = n, state = "ACTIVE", createTime = C.time(t0 - 600 * 86400000) })
    folders[i] = f
    self:bind(f, "roles/editor", "group:" .. n:lower() .. "-eng@" .. self.domain)
  end
  for i = 1, self.nprojects do
    local pid = ("%s-%s-%d"):format(self.domain:match("^[^.]+"), ({ "web", "data", "ml", "ops" })[(i - 1) % 4 + 1], i)
    local parent = i == 1 and org or folders[(i - 2) % #folders + 1]
    local p = self:resource("projects/" .. tostring(400000000000 + T.below(T.hash(self.seed, "proj", i), 99999999999)), parent.name, "project",
      { projectId = pid, displayName = pid, state = "ACTIVE", createTime = C.time(t0 - (500 - i) * 86400000), sas = {} })
    st.projects[#st.projects + 1] = p
    st.by_pid[pid] = p
    self:bind(p, "roles/owner", ("user:owner%d@%s"):format(i, self.domain))
    for j = 1, 3 do
      self:bind(p, ROLES[rng:int(2, #ROLES)], ("user:dev%d@%s"):format(rng:int(1, 8), self.domain))
    end
    self:bind(p, "roles/editor", "user:contractor@outside.example.net")
    -- service accounts: a deployer with user-managed keys (one old, one disabled), a runtime one
    for j, n in ipairs { "deployer", "runtime" } do
      local email = ("%s@%s.iam.gserviceaccount.com"):format(n, pid)
      local sa = { name = ("projects/%s/serviceAccounts/%s"):format(pid, email), projectId = pid, email = email,
        uniqueId = "1" .. ("%020d"):format(T.below(T.hash(self.seed, "sa", pid, j), 90000000000000000000 // 10)),
        displayName = n, description = n .. " of " .. pid, disabled = false, etag = "MDEwMjE5MjA=", keys = {} }
      sa.oauth2ClientId = sa.uniqueId
      local function key(typ, age_days, disabled)
        local id = T.hexs(40, self.seed, "key", email, #sa.keys)
        sa.keys[#sa.keys + 1] = { name = sa.name .. "/keys/" .. id, id = id, keyType = typ, keyAlgorithm = "KEY_ALG_RSA_2048",
          keyOrigin = "GOOGLE_PROVIDED", validAfterTime = T.iso_s((t0 - age_days * 86400000) // 1000),
          validBeforeTime = typ == "SYSTEM_MANAGED" and T.iso_s((t0 + 30 * 86400000) // 1000) or "9999-12-31T23:59:59Z",
          disabled = disabled or false }
      end
      key("SYSTEM_MANAGED", 3)
      if n == "deployer" then key("USER_MANAGED", 400); key("USER_MANAGED", 20, i == 1) end
      p.sas[#p.sas + 1] = sa
      st.sas[email] = sa
      self:bind(p, n == "deployer" and "roles/editor" or "roles/storage.objectViewer", "serviceAccount:" .. email)
    end
  end
  -- a public bucket reader on the first project, everyone signed in on the second; Data Access on for one
  self:bind(st.projects[1], "roles/storage.objectViewer", "allUsers")
  if st.projects[2] then self:bind(st.projects[2], "roles/viewer", "allAuthenticatedUsers") end
  st.projects[1].policy.auditConfigs = { { service = "allServices", auditLogConfigs = { { logType = "DATA_READ" } } } }
end

-- A log entry (LogEntry with an AuditLog protoPayload, like fixtures/gcp/audit-log-entry.json).
-- opts: log (key of AUDIT_LOGS or a plain log name), res (resource), ms, method, who, denied
function P:add_entry(opts)
  local st = self.state
  st.nentry = st.nentry + 1
  local res = opts.res or st.projects[1]
  local ms = opts.ms or self:now_ms()
  local lname = res.kind == "project" and ("projects/" .. res.projectId) or res.name
  lname = lname .. "/logs/" .. (M.AUDIT_LOGS[opts.log] or opts.log)
  local e = {
    logName = lname, insertId = T.b62(12, self.seed, "ins", st.nentry):lower(), timestamp = C.time(ms),
    receiveTimestamp = C.time(ms + 800), severity = opts.denied and "ERROR" or "NOTICE",
    resource = { type = res.kind == "project" and "project" or res.kind, labels = { project_id = res.projectId } },
    ms = ms, seq = st.nentry,
  }
  if M.AUDIT_LOGS[opts.log] then
    e.protoPayload = {
      ["@type"] = "type.googleapis.com/google.cloud.audit.AuditLog", serviceName = opts.service or "cloudresourcemanager.googleapis.com",
      methodName = opts.method or "SetIamPolicy", resourceName = res.name,
      authenticationInfo = { principalEmail = opts.who or ("dev1@" .. self.domain) },
      requestMetadata = { callerIp = ("198.51.100.%d"):format(st.nentry % 250 + 1), callerSuppliedUserAgent = "google-cloud-sdk gcloud/470.0.0" },
      status = opts.denied and { code = 7, message = "PERMISSION_DENIED" } or nil,
    }
  else
    e.textPayload = "kernel: eth0 link up"
  end
  st.entries[#st.entries + 1] = e
  return e
end

local METHODS = {
  activity = { "SetIamPolicy", "google.iam.admin.v1.CreateServiceAccountKey", "CreateProject" },
  data_access = { "storage.objects.get", "google.iam.admin.v1.GetServiceAccount" },
  system_event = { "compute.instances.migrateOnHostMaintenance" },
  policy = { "storage.buckets.get" },
}
function P:gen_entries(rng)
  local span = self.days * 86400000
  for i = 1, self.nentries do
    local p = self.state.projects[rng:int(1, #self.state.projects)]
    local kinds = { "activity", "activity", "system_event", "policy", "syslog" }
    if p.policy.auditConfigs then kinds[#kinds + 1] = "data_access" end
    local log = kinds[rng:int(1, #kinds)]
    local m = METHODS[log] or { "" }
    self:add_entry { log = log == "syslog" and "syslog" or log, res = p, ms = self.t0_ms - math.floor(span * i / self.nentries),
                     method = m[rng:int(1, #m)], denied = log == "policy", who = ("dev%d@%s"):format(rng:int(1, 8), self.domain) }
  end
  local org = self.org
  self:add_entry { log = "activity", res = org, ms = self.t0_ms - 3600000, who = "admin@" .. self.domain }
  local folder = self:of_kind("folder")[1]
  self:add_entry { log = "activity", res = folder, ms = self.t0_ms - 7200000, who = "admin@" .. self.domain }
end

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, P)
  T.Base.init(self, opts)
  self.domain = opts.domain or "acme.example.com"
  self.org_number = tostring(opts.org_number or (100000000000 + T.below(T.hash(self.seed, "org"), 899999999999)))
  self.nprojects, self.nentries, self.days = opts.projects or 3, opts.entries or 120, opts.days or 5
  self.tokens = {}
  self.state = { resources = {}, by_name = {}, projects = {}, by_pid = {}, sas = {}, entries = {}, nentry = 0 }
  self.sa = self:new_service_account(opts.service_account or "cachost-audit", opts.project or "acme-security")
  self.caller_roles = opts.roles or M.CALLER_ROLES          -- bound to self.sa on the organization
  local rng = T.rng(self.seed, "gcp")
  self:gen(rng)
  self:gen_entries(rng)
  return self
end

-- No domain-wide delegation in Cloud: an assertion with a `sub` is refused.
function P:delegate() return nil, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method." end

---------------------------------------------------------------------------------------------------
-- Resource Manager v3
---------------------------------------------------------------------------------------------------
local function render_res(r)
  local out = {}
  for k, v in pairs(r) do
    if k ~= "policy" and k ~= "kind" and k ~= "sas" and k ~= "parent" then out[k] = v end
  end
  if r.parent then out.parent = r.parent end
  out.etag = "W/\"" .. T.hexs(12, 1, r.name) .. "\""
  return out
end

-- pageSize default and maximum per the discovery docs (projects.list/search: max 1000 ... default 50 here)
local function listing(self, req, list, key)
  local page, nxt, body = self:paged(req, list, 1000, 50, "pageSize")
  if not page then return nxt, body end
  local out = {}
  for i, r in ipairs(page) do out[i] = render_res(r) end
  return 200, { [key] = json().array(out), nextPageToken = nxt }
end

function P:of_kind(kind, parent)
  local out = {}
  for _, r in ipairs(self.state.resources) do
    if r.kind == kind and (not parent or r.parent == parent) then out[#out + 1] = r end
  end
  return out
end

function P:h_orgs_search(req) return listing(self, req, self:of_kind("organization"), "organizations") end
function P:h_folders_search(req) return listing(self, req, self:of_kind("folder"), "folders") end
function P:h_projects_search(req) return listing(self, req, self:of_kind("project"), "projects") end
-- projects.list / folders.list need parent=organizations/{id} or folders/{id}: direct children only
function P:h_list(kind, key)
  return function(self_, req)
    local parent = req.query.parent
    if not parent or not self_.state.by_name[parent] then
      return self_:rpc_err(400, "INVALID_ARGUMENT", "Request contains an invalid argument: parent")
    end
    local st, body = self_:check(req, self_.state.by_name[parent], RM .. key .. ".list")
    if st then return st, body end
    return listing(self_, req, self_:of_kind(kind, parent), key)
  end
end

P.h_folders_list = P:h_list("folder", "folders")
P.h_projects_list = P:h_list("project", "projects")

-- GET /v3/projects/{id or number}
function P:h_project_get(req)
  local r = self:find("projects", req.params.rid or "")
  if not r then return self:denied(RM .. "projects.get") end
  local st, body = self:check(req, r, RM .. "projects.get")
  if st then return st, body end
  return 200, render_res(r)
end

-- POST /v3/{+resource}:getIamPolicy | :setIamPolicy   (resource: organizations/N, folders/N, projects/ID or N)
function P:find(kind, id)
  local r = self.state.by_name[kind .. "/" .. id]
  if not r and kind == "projects" then r = self.state.by_pid[id] end
  return r
end

local function render_policy(p)
  local b = {}
  for i, x in ipairs(p.bindings) do b[i] = { role = x.role, members = json().array(T.deep(x.members)) } end
  return { version = p.version, etag = p.etag, bindings = json().array(b), auditConfigs = p.auditConfigs and T.deep(p.auditConfigs) or nil }
end

function P:h_policy(req)
  local kind = req.path:match("^/v3/(%a+)/")
  local id, verb = (req.params.rid or ""):match("^([^:]+):(%a+)$")
  local r = id and self:find(kind, id)
  if not r then
    -- Google answers 403 for a resource that does not exist or that the caller cannot see
    return self:rpc_err(403, "PERMISSION_DENIED", ("The caller does not have permission"))
  end
  if verb ~= "getIamPolicy" and verb ~= "setIamPolicy" then return self:rpc_err(404, "NOT_FOUND", "Method not found.") end
  if verb == "setIamPolicy" and not C.has_scope(req.token, WRITE) then return self:insufficient_scopes() end
  local st, denied = self:check(req, r, RM .. kind .. "." .. verb)
  if st then return st, denied end
  if verb == "getIamPolicy" then return 200, render_policy(r.policy) end
  local body = C.body_of(req)
  local pol = body and body.policy
  if type(pol) ~= "table" or type(pol.bindings) ~= "table" then
    return self:rpc_err(400, "INVALID_ARGUMENT", "Request contains an invalid argument: policy")
  end
  -- read-modify-write: an etag that is not the current one means someone changed the policy meanwhile
  if pol.etag ~= nil and pol.etag ~= r.policy.etag then
    return self:rpc_err(409, "ABORTED", "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.")
  end
  local bindings = {}
  for _, b in ipairs(pol.bindings) do
    if type(b) ~= "table" or type(b.role) ~= "string" or type(b.members) ~= "table" then
      return self:rpc_err(400, "INVALID_ARGUMENT", "Request contains an invalid argument: bindings")
    end
    if #b.members > 0 then bindings[#bindings + 1] = { role = b.role, members = T.deep(b.members) } end
  end
  r.policy.bindings = bindings
  r.policy.etag = etag(self, r.name)
  self.state.sets = (self.state.sets or 0) + 1
  return 200, render_policy(r.policy)
end

---------------------------------------------------------------------------------------------------
-- IAM v1: service accounts and keys
---------------------------------------------------------------------------------------------------
local function render_sa(sa)
  return { name = sa.name, projectId = sa.projectId, uniqueId = sa.uniqueId, email = sa.email, displayName = sa.displayName,
           description = sa.description, oauth2ClientId = sa.oauth2ClientId, disabled = sa.disabled or nil, etag = sa.etag }
end

function P:h_sa_list(req)
  local p = self.state.by_pid[req.params.project]
  if not p then return self:denied("iam.serviceAccounts.list") end
  local st, denied = self:check(req, p, "iam.serviceAccounts.list")
  if st then return st, denied end
  local page, nxt, body = self:paged(req, p.sas, 100, 20, "pageSize")
  if not page then return nxt, body end
  local out = {}
  for i, sa in ipairs(page) do out[i] = render_sa(sa) end
  return 200, { accounts = json().array(out), nextPageToken = nxt }
end

-- serviceAccountsId: the email or the unique id ("projects/-/serviceAccounts/{id}" is allowed)
function P:sa_of(id)
  if self.state.sas[id] then return self.state.sas[id] end
  for _, sa in pairs(self.state.sas) do if sa.uniqueId == id then return sa end end
end

function P:h_sa_verb(req)
  local id, verb = (req.params.sa or ""):match("^(.-):(%a+)$")
  local sa = id and self:sa_of(id)
  if not sa then return self:rpc_err(404, "NOT_FOUND", "Service account " .. tostring(req.params.sa) .. " does not exist.") end
  if verb ~= "disable" and verb ~= "enable" then return self:rpc_err(404, "NOT_FOUND", "Method not found.") end
  if not C.has_scope(req.token, WRITE) then return self:insufficient_scopes() end
  local st, denied = self:check(req, self.state.by_pid[sa.projectId], "iam.serviceAccounts." .. verb)
  if st then return st, denied end
  sa.disabled = verb == "disable"
  return 200, {}
end

local KEY_TYPES = { USER_MANAGED = true, SYSTEM_MANAGED = true }
function P:h_keys(req)
  local sa = self:sa_of(req.params.sa)
  if not sa then return self:rpc_err(404, "NOT_FOUND", "Service account " .. tostring(req.params.sa) .. " does not exist.") end
  local st, denied = self:check(req, self.state.by_pid[sa.projectId], "iam.serviceAccountKeys.list")
  if st then return st, denied end
  local want = req.query.keyTypes
  if want and not KEY_TYPES[want] then return self:rpc_err(400, "INVALID_ARGUMENT", "Invalid value at 'key_types'") end
  local out = {}
  for _, k in ipairs(sa.keys) do
    if not want or k.keyType == want then
      out[#out + 1] = { name = k.name, validAfterTime = k.validAfterTime, validBeforeTime = k.validBeforeTime, keyAlgorithm = k.keyAlgorithm,
                        keyOrigin = k.keyOrigin, keyType = k.keyType, disabled = k.disabled or nil }
    end
  end
  return 200, { keys = json().array(out) }
end

function P:h_key_verb(req)
  local sa = self:sa_of(req.params.sa)
  local id, verb = (req.params.key or ""):match("^(.-):(%a+)$")
  local key
  for _, k in ipairs(sa and sa.keys or {}) do if k.id == id then key = k end end
  if not key then return self:rpc_err(404, "NOT_FOUND", "Service account key " .. tostring(id) .. " does not exist.") end
  if verb ~= "disable" and verb ~= "enable" then return self:rpc_err(404, "NOT_FOUND", "Method not found.") end
  if not C.has_scope(req.token, WRITE) then return self:insufficient_scopes() end
  local st, denied = self:check(req, self.state.by_pid[sa.projectId], "iam.serviceAccountKeys." .. verb)
  if st then return st, denied end
  if key.keyType ~= "USER_MANAGED" then return self:rpc_err(400, "FAILED_PRECONDITION", "Only user-managed keys can be disabled.") end
  key.disabled = verb == "disable"
  return 200, {}
end

---------------------------------------------------------------------------------------------------
-- Logging v2 entries:list
---------------------------------------------------------------------------------------------------
-- The filter subset the emulator understands (Logging query language): clauses joined by AND, each
-- timestamp (>=, >, <=, <, =) "RFC 3339", logName="...", logName:"substring".  Anything else: 400.
local function parse_filter(s)
  local preds = {}
  for clause in ((s or "") .. " AND "):gmatch("(.-)%s+AND%s+") do
    clause = clause:gsub("^%s+", ""):gsub("%s+$", "")
    if clause ~= "" then
      local field, op, val = clause:match('^([%w%.]+)%s*([<>=:]=?)%s*"(.-)"$')
      if field == "timestamp" and op ~= ":" then
        local t = T.parse_iso(val)
        if not t then return nil, "Unparseable timestamp: " .. val end
        preds[#preds + 1] = function(e)
          if op == ">=" then return e.ms >= t elseif op == ">" then return e.ms > t elseif op == "<=" then return e.ms <= t
          elseif op == "<" then return e.ms < t else return e.ms == t end
        end
      elseif field == "logName" and op == "=" then
        preds[#preds + 1] = function(e) return e.logName == val end
      elseif field == "logName" and op == ":" then
        preds[#preds + 1] = function(e) return e.logName:find(val, 1, true) ~= nil end
      else
        return nil, "Unparseable filter: " .. clause
      end
    end
  end
  return preds
end

local function render_entry(e)
  local out = {}
  for k, v in pairs(e) do if k ~= "ms" and k ~= "seq" then out[k] = T.deep(v) end end
  return out
end

-- POST /v2/entries:list {resourceNames, filter, orderBy, pageSize (default 50, max 1000), pageToken}.
-- Like the real search, a page may come back EMPTY with a nextPageToken (the search has not finished):
-- here every page of entries is preceded by an empty one.
function P:h_entries(req)
  if not C.has_scope(req.token, LOG_READ) then return self:insufficient_scopes() end
  local b = C.body_of(req)
  if not b or type(b.resourceNames) ~= "table" or #b.resourceNames == 0 then
    return self:rpc_err(400, "INVALID_ARGUMENT", "resourceNames: At least one resource name is required")
  end
  local order = b.orderBy or "timestamp asc"
  if order ~= "timestamp asc" and order ~= "timestamp desc" then
    return self:rpc_err(400, "INVALID_ARGUMENT", "Invalid orderBy: " .. tostring(order))
  end
  local preds, perr = parse_filter(b.filter)
  if not preds then return self:rpc_err(400, "INVALID_ARGUMENT", perr) end
  local names = {}
  for _, n in ipairs(b.resourceNames) do
    local kind, id = tostring(n):match("^(%a+)/([^/]+)$")
    local r = kind and self:find(kind, id)
    if not r then return self:denied("logging.logEntries.list") end
    local st, denied = self:check(req, r, "logging.logEntries.list")
    if st then return st, denied end
    names[#names + 1] = r.kind == "project" and ("projects/" .. r.projectId .. "/") or (r.name .. "/")
  end
  local n = math.tointeger(b.pageSize or 50)
  if not n or n < 0 then return self:rpc_err(400, "INVALID_ARGUMENT", "Invalid pageSize") end
  if n == 0 then n = 50 end
  n = math.min(n, 1000, self.page_max or 1000)
  local list = {}
  for _, e in ipairs(self.state.entries) do
    local mine = false
    for _, pre in ipairs(names) do if e.logName:sub(1, #pre) == pre then mine = true end end
    if mine then for _, p in ipairs(preds) do if not p(e) then mine = false break end end end
    if mine then list[#list + 1] = e end
  end
  local asc = order == "timestamp asc"
  table.sort(list, function(x, y) if x.ms ~= y.ms then return (x.ms < y.ms) == asc end return (x.seq < y.seq) == asc end)
  -- the token: offset and whether the entries' page was served after its empty one, tied to the query
  local salt = json().encode { b.resourceNames, b.filter or "", order, n }
  local function token(off, ready) return C.crypto().b64url(("%d:%d:%s"):format(off, ready, T.hexs(8, self.seed, "lt", salt, off, ready))) end
  local off, ready = 0, 0
  if b.pageToken and b.pageToken ~= "" then
    local raw = C.crypto().unb64url(b.pageToken) or ""
    local o, r = raw:match("^(%d+):(%d):")
    if not o or token(tonumber(o), tonumber(r)) ~= b.pageToken then
      return self:rpc_err(400, "INVALID_ARGUMENT", "page_token doesn't match arguments from the request")
    end
    off, ready = tonumber(o), tonumber(r)
  end
  if ready == 0 and off < #list then
    self.state.empty_pages = (self.state.empty_pages or 0) + 1
    return 200, { nextPageToken = token(off, 1) }                  -- still searching: no entries yet
  end
  local out = {}
  for i = off + 1, math.min(#list, off + n) do out[#out + 1] = render_entry(list[i]) end
  local body = { entries = #out > 0 and json().array(out) or nil }
  if off + n < #list then body.nextPageToken = token(off + n, 0) end
  return 200, body
end

---------------------------------------------------------------------------------------------------
-- Ground truth
---------------------------------------------------------------------------------------------------
-- privileges: resource|role|member of every binding of the organization, its folders and its projects
function P:truth()
  local t = { privileges = {}, users = {}, app_grants = {}, groups = {} }
  local seen_u, seen_g = {}, {}
  for _, r in ipairs(self.state.resources) do
    for _, b in ipairs(r.policy.bindings) do
      for _, m in ipairs(b.members) do
        t.privileges[#t.privileges + 1] = r.name .. "|" .. b.role .. "|" .. m
        local kind, who = m:match("^(%a+):(.+)$")
        if not kind and (m == "allUsers" or m == "allAuthenticatedUsers") then kind, who = "user", m end
        if (kind == "user" or kind == "serviceAccount") and not seen_u[who] then seen_u[who] = true; t.users[#t.users + 1] = who end
        if kind == "group" and not seen_g[who] then seen_g[who] = true; t.groups[#t.groups + 1] = who end
      end
    end
  end
  for _, p in ipairs(self.state.projects) do
    for _, sa in ipairs(p.sas) do
      if not seen_u[sa.email] then seen_u[sa.email] = true; t.users[#t.users + 1] = sa.email end
      for _, k in ipairs(sa.keys) do if k.keyType == "USER_MANAGED" then t.app_grants[#t.app_grants + 1] = k.name end end
    end
  end
  return t
end

-- The audit entries (not other logs) of these resources: their insertIds
function P:audit_ids(resources)
  local out = {}
  for _, e in ipairs(self.state.entries) do
    if e.protoPayload then
      for _, r in ipairs(resources) do
        local pre = r.kind == "project" and ("projects/" .. r.projectId .. "/") or (r.name .. "/")
        if e.logName:sub(1, #pre) == pre then out[#out + 1] = e.insertId end
      end
    end
  end
  return out
end

function P:mount(srv, prefix)
  local routes = { { "POST", "/token", C.G.h_token, { noauth = true, bucket = "token" } } }
  -- handlers by name: a test may replace one on the tenant (a concurrent writer, say)
  for _, r in ipairs(M.ROUTES) do
    local name = r[3]
    routes[#routes + 1] = { r[1], r[2], function(t, req) return t[name](t, req) end, r[4] }
  end
  for _, p in ipairs { "/v1/*", "/v2/*", "/v3/*" } do
    routes[#routes + 1] = { "*", p, function(t, req) return t:rpc_err(404, "NOT_FOUND", "Not Found: " .. req.path) end, {} }
  end
  self:mount_routes(srv, prefix, routes)
  return self
end

M.ROUTES = {
  { "GET", "/v3/organizations:search", "h_orgs_search", { scopes = READ } },
  { "GET", "/v3/folders:search", "h_folders_search", { scopes = READ } },
  { "GET", "/v3/projects:search", "h_projects_search", { scopes = READ } },
  { "GET", "/v3/folders", "h_folders_list", { scopes = READ } },
  { "GET", "/v3/projects", "h_projects_list", { scopes = READ } },
  { "GET", "/v3/projects/:rid", "h_project_get", { scopes = READ } },
  { "POST", "/v3/organizations/:rid", "h_policy", { scopes = READ } },
  { "POST", "/v3/folders/:rid", "h_policy", { scopes = READ } },
  { "POST", "/v3/projects/:rid", "h_policy", { scopes = READ } },
  { "GET", "/v1/projects/:project/serviceAccounts", "h_sa_list", { scopes = READ } },
  { "POST", "/v1/projects/:project/serviceAccounts/:sa", "h_sa_verb", { scopes = READ } },
  { "GET", "/v1/projects/:project/serviceAccounts/:sa/keys", "h_keys", { scopes = READ } },
  { "POST", "/v1/projects/:project/serviceAccounts/:sa/keys/:key", "h_key_verb", { scopes = READ } },
  { "POST", "/v2/entries:list", "h_entries", { scopes = LOG_READ } },
}

return M
