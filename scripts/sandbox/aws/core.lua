-- sandbox/aws/core.lua — the emulated AWS account: its generated IAM data, the credentials it accepts,
-- XML rendering of query-protocol replies and AWS's error bodies (query XML, S3 XML, JSON 1.1), following
-- /work/shared/api/aws.md.
local T = require "sandbox.tenant"

local C = {}
local Aws = setmetatable({}, { __index = T.Base })
Aws.__index = Aws
C.Aws = Aws

C.IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
C.STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
C.ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
C.READONLY_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"

-- The regions of the aws partition; those in OPT_IN are enabled only for accounts that opted in.
C.REGIONS = { "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
  "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6",
  "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
  "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1",
  "us-east-1", "us-east-2", "us-west-1", "us-west-2" }
C.OPT_IN = {}
for _, r in ipairs { "af-south-1", "ap-east-1", "ap-east-2", "ap-south-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
  "ap-southeast-6", "ap-southeast-7", "ca-west-1", "eu-central-2", "eu-south-1", "eu-south-2", "il-central-1", "me-central-1",
  "me-south-1", "mx-central-1" } do C.OPT_IN[r] = true end

---------------------------------------------------------------------------------------------------
-- XML out: a list is marked with C.list{...} and rendered as <member> items (the query protocol)
---------------------------------------------------------------------------------------------------
local LIST = {}
function C.list(t) return setmetatable(t or {}, LIST) end

function C.esc(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                                         ["'"] = "&apos;" }))
end

-- value -> XML text: scalars escaped, C.list -> <member>s, records as elements in key order (an `_order`
-- list when the provider's order is wanted, else sorted)
function C.render(v)
  if type(v) ~= "table" then return C.esc(v) end
  local out = {}
  if getmetatable(v) == LIST then
    for _, item in ipairs(v) do out[#out + 1] = "<member>" .. C.render(item) .. "</member>" end
    return table.concat(out)
  end
  local keys = {}
  for k in pairs(v) do if k ~= "_order" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = ("<%s>%s</%s>"):format(k, C.render(v[k]), k) end
  return table.concat(out)
end

function Aws:request_id(req)
  self.req_seq = (self.req_seq or 0) + 1
  return T.uuid(self.seed, "req", self.req_seq)
end

-- A query-protocol answer: <OpResponse><OpResult>...</OpResult><ResponseMetadata/></OpResponse>
function Aws:query_ok(req, action, ns, result)
  local body = ('<%sResponse xmlns="%s">%s<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>')
    :format(action, ns, result and ("<%sResult>%s</%sResult>"):format(action, C.render(result), action) or "",
            self:request_id(req), action)
  return 200, body, { ["Content-Type"] = "text/xml" }
end

-- Query-protocol error (IAM, STS): <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>
function Aws:query_error(req, status, code, message, ns)
  local body = ('<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>'
    .. '<RequestId>%s</RequestId></ErrorResponse>'):format(ns or C.IAM_NS, status >= 500 and "Receiver" or "Sender",
    code, C.esc(message), self:request_id(req))
  return status, body, { ["Content-Type"] = "text/xml" }
end

-- S3 error: a bare <Error>
function Aws:s3_error(req, status, code, message, extra)
  local body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>%s'
    .. '<RequestId>%s</RequestId><HostId>%s</HostId></Error>'):format(code, C.esc(message),
    extra and C.render(extra) or "", T.hexs(16, self.seed, "s3req", self.requests):upper(), T.b62(56, self.seed, "host"))
  return status, body, { ["Content-Type"] = "application/xml" }
end

-- JSON 1.1 error (CloudTrail): {"__type": ..., "message": ...} and x-amzn-ErrorType
function Aws:json_error(req, status, code, message)
  return status, ('{"__type":"%s","message":%s}'):format(code, require("json").encode(message)),
    { ["Content-Type"] = "application/x-amz-json-1.1", ["x-amzn-ErrorType"] = code }
end

-- EC2 error: <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
function Aws:ec2_error(req, status, code, message)
  return status, ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
    .. '</Error></Errors><RequestID>%s</RequestID></Response>'):format(code, C.esc(message), self:request_id(req)),
    { ["Content-Type"] = "text/xml;charset=UTF-8" }
end

-- The error in the form the service of the request speaks.
function Aws:error(req, status, code, message)
  local svc = req.aws_service or "iam"
  if svc == "s3" then return self:s3_error(req, status, code, message) end
  if svc == "ec2" then return self:ec2_error(req, status, code, message) end
  if svc == "cloudtrail" or svc == "organizations" then return self:json_error(req, status, code, message) end
  return self:query_error(req, status, code, message, svc == "sts" and C.STS_NS or C.IAM_NS)
end

---------------------------------------------------------------------------------------------------
-- The generated account
---------------------------------------------------------------------------------------------------
local FIRST = { "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara" }

local function key_id(prefix, seed, ...) return prefix .. T.b62(16, seed, ...):upper():gsub("[^A-Z0-9]", "7") end

function C.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Aws)
  self.default_rate_limit = 600
  T.Base.init(self, opts)
  local seed = self.seed
  self.account = opts.account or ("%012d"):format(T.below(T.hash(seed, "account"), 10 ^ 12))
  self.region = opts.region or "us-east-1"
  -- the account's enabled regions: every one that needs no opt-in, and those it opted in to
  self.enabled_regions = {}
  for _, r in ipairs(C.REGIONS) do if not C.OPT_IN[r] then self.enabled_regions[r] = true end end
  for _, r in ipairs(opts.opted_in or { "me-central-1" }) do self.enabled_regions[r] = true end
  self.skew_limit = 15 * 60                  -- seconds of clock difference AWS tolerates
  local t0 = math.floor(self:now_ms() / 1000)
  local function iso(s) return T.iso_s(s) end
  self.users, self.user_order = {}, {}
  self.groups, self.group_order = {}, {}
  self.keys = {}                             -- access key id -> {id, secret, user, status, created, last_used}
  self.sessions = {}                         -- STS access key id -> {secret, token, expires, role, arn}
  local function arn(kind, path, name) return ("arn:aws:iam::%s:%s%s%s"):format(self.account, kind, path, name) end

  local function add_group(name, policies)
    local g = { GroupName = name, GroupId = key_id("AGPA", seed, "group", name), Path = "/",
                Arn = arn("group", "/", name), CreateDate = iso(t0 - 400 * 86400), policies = policies, members = {} }
    self.groups[name] = g
    self.group_order[#self.group_order + 1] = name
    return g
  end
  add_group("Admins", { C.ADMIN_POLICY })
  add_group("Developers", {})
  add_group("Auditors", { C.READONLY_POLICY })

  local function add_key(user, i, status, age_days)
    local id = key_id("AKIA", seed, "key", user.UserName, i)
    local k = { id = id, secret = T.b62(40, seed, "secret", id), user = user.UserName, status = status,
                created = iso(t0 - age_days * 86400) }
    self.keys[id] = k
    user.keys[#user.keys + 1] = id
    return k
  end

  local function add_user(name, o)
    local u = { UserName = name, UserId = key_id("AIDA", seed, "user", name), Path = "/", Arn = arn("user", "/", name),
                CreateDate = iso(t0 - (o.age or 300) * 86400), PasswordLastUsed = o.console and iso(t0 - 86400) or nil,
                keys = {}, groups = {}, attached = {}, inline = {}, login = o.console and { CreateDate = iso(t0 - 200 * 86400),
                PasswordResetRequired = false } or nil, mfa = o.mfa and { SerialNumber = arn("mfa", "/", name),
                EnableDate = iso(t0 - 100 * 86400) } or nil }
    self.users[name] = u
    self.user_order[#self.user_order + 1] = name
    for _, g in ipairs(o.groups or {}) do
      u.groups[#u.groups + 1] = g
      table.insert(self.groups[g].members, name)
    end
    return u
  end

  -- the identity cachost connects as: read-only, plus the role it assumes with an external id
  local audit = add_user("cachost-audit", { groups = { "Auditors" } })
  self.audit_key = add_key(audit, 1, "Active", 30)
  self.roles, self.role_order = {}, {}
  local function add_role(name, trust, o)
    local r = { RoleName = name, RoleId = key_id("AROA", seed, "role", name), Path = o.path or "/", Arn = arn("role", o.path or "/", name),
                CreateDate = iso(t0 - 500 * 86400), MaxSessionDuration = 3600, trust = trust, attached = o.attached or {},
                inline = o.inline or {} }
    self.roles[name] = r
    self.role_order[#self.role_order + 1] = name
    return r
  end
  local function trust(principal, condition)
    return json.encode { Version = "2012-10-17", Statement = { { Effect = "Allow", Principal = principal,
      Action = "sts:AssumeRole", Condition = condition } } }
  end
  local external_id = opts.external_id or ("cachost-" .. T.b62(12, seed, "ext"))
  self.role = add_role("CachostAudit", trust({ AWS = arn("user", "/", "cachost-audit") },
    { StringEquals = { ["sts:ExternalId"] = external_id } }), { attached = { C.READONLY_POLICY } })
  self.role.external_id = external_id
  -- the roles an account has besides: one an organization's management account assumes (an administrator),
  -- a CI role made all-powerful by an inline policy, a Lambda function's
  add_role("OrganizationAccountAccessRole", trust { AWS = "arn:aws:iam::111122223333:root" }, { attached = { C.ADMIN_POLICY } })
  add_role("ci-deploy", trust { Federated = "arn:aws:iam::" .. self.account .. ":oidc-provider/token.actions.githubusercontent.com" },
    { inline = { deploy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' } })
  add_role("lambda-orders", trust { Service = "lambda.amazonaws.com" }, { path = "/service-role/",
    attached = { "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" } })

  local n = math.tointeger(opts.users or 20) or 20
  local rng = T.rng(seed, "users")
  for i = 1, n do
    local name = FIRST[(i - 1) % #FIRST + 1] .. (i > #FIRST and tostring(i // #FIRST) or "")
    local console = rng:chance(0.7)
    local groups = {}
    if i == 1 then groups = { "Admins" } elseif rng:chance(0.6) then groups = { "Developers" } end
    local u = add_user(name, { console = console, mfa = console and rng:chance(0.5), groups = groups,
                               age = rng:int(10, 900) })
    if i == 2 then u.attached[1] = C.ADMIN_POLICY end      -- an administrator by a policy attached to the user
    if rng:chance(0.6) then
      local k = add_key(u, 1, "Active", rng:int(1, 500))
      if rng:chance(0.7) then k.last_used = { date = iso(t0 - rng:int(1, 200) * 3600), service = "s3", region = "us-east-1" } end
    end
    if rng:chance(0.2) then add_key(u, 2, "Inactive", rng:int(100, 800)) end
  end
  -- the root user: no MFA, an access key of its own (both what the credential report shows)
  local rk = { id = key_id("AKIA", seed, "rootkey"), status = "Active", created = iso(t0 - 700 * 86400) }
  self.root = { created = iso(t0 - 900 * 86400), mfa = false, key = rk, password_last_used = iso(t0 - 5 * 86400) }
  -- a user made admin by an inline "*:*" policy rather than a managed one
  local ops = add_user("ops-automation", { age = 50 })
  ops.inline["full-access"] = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
  add_key(ops, 1, "Active", 400)
  return self
end

function Aws:count(what)
  if what == "users" then return #self.user_order end
  if what == "groups" then return #self.group_order end
  if what == "events" then return self:count_events() end
  if what == "signins" then return self:count_events("ConsoleLogin") end
  if what == "access_keys" then local n = 0; for _ in pairs(self.keys) do n = n + 1 end; return n end
  error("unknown count " .. tostring(what))
end

function Aws:active_keys()
  local out = {}
  for id, k in pairs(self.keys) do if k.status == "Active" then out[#out + 1] = id end end
  table.sort(out)
  return out
end

-- Who may do everything: the root user; AdministratorAccess attached to the user or a group of theirs (or
-- to a role), or an inline policy allowing "*" on "*" (the generated data has nothing else that amounts to it).
function Aws:admins()
  local out = {}
  for _, n in ipairs(self.user_order) do
    local u, admin = self.users[n], false
    for _, a in ipairs(u.attached) do admin = admin or a == C.ADMIN_POLICY end
    for _, g in ipairs(u.groups) do
      for _, a in ipairs(self.groups[g].policies) do admin = admin or a == C.ADMIN_POLICY end
    end
    for _, doc in pairs(u.inline) do admin = admin or (doc:find('"Effect":"Allow","Action":"*","Resource":"*"', 1, true) ~= nil) end
    if admin then out[#out + 1] = n end
  end
  for _, n in ipairs(self.role_order) do
    local r, admin = self.roles[n], false
    for _, a in ipairs(r.attached) do admin = admin or a == C.ADMIN_POLICY end
    for _, doc in pairs(r.inline) do admin = admin or (doc:find('"Effect":"Allow","Action":"*","Resource":"*"', 1, true) ~= nil) end
    if admin then out[#out + 1] = "role/" .. n end
  end
  out[#out + 1] = "<root_account>"
  return out
end

-- Ground truth of a complete sync: every user, group and access key.
function Aws:truth()
  local keys = {}
  for id in pairs(self.keys) do keys[#keys + 1] = id end
  table.sort(keys)
  local objects, public = {}, {}
  for _, b in ipairs(self.bucket_order or {}) do
    for k in pairs(self.buckets[b].objects) do
      objects[#objects + 1] = b .. "/" .. k
      if self:is_public(b, k) then public[#public + 1] = b .. "/" .. k end
    end
  end
  table.sort(objects)
  table.sort(public)
  local users = T.shallow(self.user_order)
  users[#users + 1] = "<root_account>"          -- the credential report's root user is a user row too
  for _, n in ipairs(self.role_order) do users[#users + 1] = "role/" .. n end      -- and roles, as role/<name>
  return { users = users, groups = T.shallow(self.group_order), access_keys = keys,
           active_keys = self:active_keys(), admins = self:admins(), buckets = T.shallow(self.bucket_order or {}),
           objects = objects, public_objects = public }
end

return C
