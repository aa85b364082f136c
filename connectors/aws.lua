-- Amazon Web Services: one AWS account per instance — IAM identities (users with their MFA and last
-- sign-in, roles, the root user; groups, memberships, administrators), access keys, CloudTrail management
-- events of every enabled region (console sign-ins, IAM changes; by LookupEvents or from a trail's bucket),
-- S3 buckets in their own regions and their objects, governance, and an organization's member accounts.
-- Reference: shared/api/aws.md.  IAM, STS and EC2 speak the query protocol (providers/aws.lua), CloudTrail
-- and Organizations JSON 1.1, S3 REST-XML; every request is signed with Signature Version 4.
local aws = provider("aws")

local c = connector "aws"
c.title = "Amazon Web Services"
c.settings = {
  { "role_arn", example = "arn:aws:iam::123456789012:role/CachostAudit",
    help = "the role cachost assumes through STS AssumeRole (the usual way to connect a security tool)" },
  { "external_id", help = "the external id the role's trust policy requires (sts:ExternalId)" },
  { "access_key_id", secret = true, help = "access key of the IAM user that assumes the role (or that cachost reads as)" },
  { "secret_access_key", secret = true, help = "its secret access key" },
  { "session_token", secret = true, help = "session token, when the keys above are temporary" },
  { "region", example = "us-east-1", help = "home region: its regional STS endpoint (default us-east-1)" },
  { "trail_bucket", example = "acme-cloudtrail-logs",
    help = "a trail's S3 bucket: CloudTrail's events are read from its log files instead of LookupEvents (large accounts)" },
  { "trail_prefix", help = "the trail's S3 key prefix, if it has one" },
  { "account_id", example = "123456789012", help = "the account's id, for S3 Control (default: the one in role_arn)" },
  { "member_role", example = "OrganizationAccountAccessRole",
    help = "an organization's management account: the role its member accounts' instances assume (cachost instance members)" },
}

-- IAM is global (us-east-1); a sandbox account serves every service at base_url.
c.base_url = "https://iam.amazonaws.com"
local function region(s) return str(s.region) or "us-east-1" end
local function sts_url(s) return provider_host(s, ("https://sts.%s.amazonaws.com"):format(region(s))) .. "/" end
local function cloudtrail_url(s, r) return provider_host(s, ("https://cloudtrail.%s.amazonaws.com"):format(r or region(s))) .. "/" end
local function ec2_url(s) return provider_host(s, ("https://ec2.%s.amazonaws.com"):format(region(s))) .. "/" end
local function organizations_url(s) return provider_host(s, "https://organizations.us-east-1.amazonaws.com") .. "/" end
-- S3 Control answers at the account's own endpoint: the account id is a setting, or the role's ARN says it
local function account_id(s) return str(s.account_id) or tostring(s.role_arn or ""):match("^arn:aws:iam::(%d+):") end
local function s3control_url(s)
  local a = account_id(s)
  return a and provider_host(s, ("https://%s.s3-control.%s.amazonaws.com"):format(a, region(s)))
end
-- S3 path-style on a region's endpoint (by default the home region's): one host for every bucket there
local function s3_url(s, r) return provider_host(s, ("https://s3.%s.amazonaws.com"):format(r or region(s))) end

-- The regions of the aws partition (AWS SDKs' partitions.json): where buckets and CloudTrail's events may
-- be.  Credentials go to these endpoints only (c.hosts); a region missing here is refused with one line.
local REGIONS = { "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
  "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
  "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
  "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1",
  "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2" }

local ASSUME = { role_arn = "role_arn", external_id = "external_id", url = sts_url, region = region }
c.auth = {
  default = "iam",
  iam = { type = "sigv4", service = "iam", region = "us-east-1", assume_role = ASSUME },
  sts = { type = "sigv4", service = "sts", region = region, assume_role = ASSUME },
  cloudtrail = { type = "sigv4", service = "cloudtrail", region = region, assume_role = ASSUME },
  ec2 = { type = "sigv4", service = "ec2", region = region, assume_role = ASSUME },
  organizations = { type = "sigv4", service = "organizations", region = "us-east-1", assume_role = ASSUME },
  -- (a body past 64 KiB goes as S3's chunked upload: STREAMING-AWS4-HMAC-SHA256-PAYLOAD)
  s3 = { type = "sigv4", service = "s3", region = region, s3 = true, chunk_size = 64 * 1024, assume_role = ASSUME },
}
c.hosts = function(s)
  local out = { sts_url(s), ec2_url(s), organizations_url(s), s3control_url(s) }
  for _, r in ipairs(REGIONS) do out[#out + 1] = s3_url(s, r); out[#out + 1] = cloudtrail_url(s, r) end
  return out
end

-- Each capability's IAM permissions (AWS's action names); the role's policy needs these.
-- S3 event notifications need an endpoint inside AWS (SNS, SQS, Lambda, EventBridge): the data scan is
-- periodic only.  CloudTrail has no push either: its events are polled.
c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = true,
  activities = { "signin", "admin" },
}
c.needs = {
  users = { "iam:ListUsers", "iam:GetLoginProfile", "iam:ListUserPolicies", "iam:GenerateCredentialReport",
            "iam:GetCredentialReport", "iam:ListRoles" },
  groups = { "iam:ListGroups", "iam:GetGroup" },
  privileges = { "iam:ListAttachedUserPolicies", "iam:ListUserPolicies", "iam:GetUserPolicy",
                 "iam:ListGroupsForUser", "iam:ListAttachedGroupPolicies", "iam:ListGroupPolicies", "iam:GetGroupPolicy",
                 "iam:ListRoles", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:GetRolePolicy" },
  app_grants = { "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed" },
  activities = { "cloudtrail:LookupEvents", "ec2:DescribeRegions",
                 "with trail_bucket: s3:ListBucket and s3:GetObject on the trail's bucket instead of LookupEvents" },
  files = { "s3:ListAllMyBuckets", "s3:GetBucketLocation", "s3:GetBucketAcl", "s3:GetBucketPublicAccessBlock",
            "s3:GetAccountPublicAccessBlock", "s3:ListBucket",
            "s3:GetObjectAcl", "s3:GetObject",
            "periodic only: S3 event notifications reach only SNS, SQS, Lambda or EventBridge inside AWS, not cachost" },
  make_private = { "s3:PutObjectAcl" }, quarantine_file = { "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl" },
  unquarantine_file = { "s3:GetObject", "s3:PutObject", "s3:DeleteObject" },
  overwrite_file = { "s3:PutObject" },
  suspend_user = { "iam:PutUserPolicy", "iam:PutRolePolicy" }, unsuspend_user = { "iam:DeleteUserPolicy", "iam:DeleteRolePolicy" },
  reset_password = { "iam:UpdateLoginProfile" },
  deactivate_user = { "iam:DeleteLoginProfile", "iam:ListAccessKeys", "iam:UpdateAccessKey" },
  remove_member = { "iam:ListGroupsForUser", "iam:RemoveUserFromGroup" },
  remove_admin_role = { "iam:ListAttachedUserPolicies", "iam:DetachUserPolicy", "iam:ListGroupsForUser",
                        "iam:ListAttachedGroupPolicies", "iam:ListGroupPolicies", "iam:GetGroupPolicy",
                        "iam:RemoveUserFromGroup", "iam:ListUserPolicies", "iam:GetUserPolicy", "iam:DeleteUserPolicy" },
  revoke_token = { "iam:UpdateAccessKey" }, revoke_grant = { "iam:DeleteAccessKey" },
  members = { "organizations:ListAccounts (the management account)", "sts:AssumeRole on each member account's member_role" },
}

c.error_message = aws.error_message
c.is_throttled = aws.is_throttled
c.dead_credential = aws.dead_credential

-- Who the keys (or the assumed role) are: STS GetCallerIdentity -> its result (Account, Arn, UserId).
local function caller(ctx)
  return aws.query(ctx, "GetCallerIdentity", nil, { url = sts_url(ctx.settings), auth = "sts", version = aws.STS_VERSION })
end

-- The connection test.
function c.test(ctx)
  local r = caller(ctx)
  return ("AWS account %s as %s"):format(xml.text(r, "Account"), xml.text(r, "Arn"))
end

---------------------------------------------------------------------------------------------- organization
-- AWS Organizations: connected to an organization's management account, an instance names the member
-- accounts (ListAccounts, JSON 1.1, 20 a page); `cachost instance members NAME --add` adds one instance for
-- each active one, with the same keys assuming its member_role (OrganizationAccountAccessRole: the role
-- Organizations creates in the accounts it creates, trusting the management account; no external id).
local ORG_TARGET = "AWSOrganizationsV20161128.ListAccounts"
function c.members(ctx)
  local me = xml.text(caller(ctx), "Account")
  local role = str(ctx.settings.member_role) or "OrganizationAccountAccessRole"
  local out, token = {}, nil
  repeat
    local d = ctx:request("POST", organizations_url(ctx.settings), { auth = "organizations", expect_json = true, idempotent = true,
      body = json.encode { MaxResults = 20, NextToken = token },
      headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = ORG_TARGET } })
    for _, a in ipairs(ctx:listing(d, "Accounts", "ListAccounts")) do
      if type(a) == "table" and a.Status == "ACTIVE" and a.Id ~= me then
        out[#out + 1] = { name = tostring(a.Id), title = str(a.Name), settings = { account_id = a.Id, external_id = false,
          role_arn = ("arn:aws:iam::%s:role/%s"):format(a.Id, role), member_role = false } }
      end
    end
    token = str(d.NextToken)
  until not token
  return out
end

---------------------------------------------------------------------------------------------- identities
-- cachost's suspension: an explicit deny of everything, as an inline policy (undone by deleting it).
local SUSPEND_POLICY = "cachost-deny-all"
local DENY_ALL = '{"Version":"2012-10-17","Statement":[{"Sid":"CachostSuspended","Effect":"Deny","Action":"*","Resource":"*"}]}'
local ADMIN_POLICIES = { ["arn:aws:iam::aws:policy/AdministratorAccess"] = true, ["arn:aws:iam::aws:policy/IAMFullAccess"] = true }

local function when(v) if v and v:match("^%d%d%d%d%-") then return v end end

-- IAM users have no e-mail: a user named like one is known by it.  report: the user's line of the
-- credential report (MFA, last console sign-in), when there is one.
local function user_row(u, inline, login, report)
  report = report or {}
  return {
    ext_id = u.UserName, display_name = u.UserName, email = u.UserName:find("@", 1, true) and u.UserName or nil,
    status = inline[SUSPEND_POLICY] and "suspended" or "active",
    last_login = str(u.PasswordLastUsed) or when(report.password_last_used), created_at = u.CreateDate, external = 0,
    raw = { User = u, ConsoleAccess = login ~= nil, InlinePolicies = inline,
            MFAActive = report.mfa_active and (report.mfa_active == "true"), CredentialReport = report.user and report or nil },
  }
end

local function inline_policies(ctx, name)
  local set = {}
  for _, n in ipairs(aws.all(ctx, "ListUserPolicies", { UserName = name }, "PolicyNames")) do set[n] = true end
  return set
end

-- The user's console password (its login profile), or nil: IAM answers 404 NoSuchEntity without one.
local function login_profile(ctx, name)
  local ok, r = pcall(aws.query, ctx, "GetLoginProfile", { UserName = name })
  if ok then return xml.record(xml.child(r, "LoginProfile")) end
  if token_of(r) == "not_found" then return nil end
  error(r, 0)
end

-- A user's row: its inline policies (cachost's suspension is one) and console password are separate calls.
-- A member without a UserName is handed over as it is: ctx:emit rejects it (no id).
local function user_with_details(ctx, u, report)
  if type(u) ~= "table" or type(u.UserName) ~= "string" then return u end
  return user_row(u, inline_policies(ctx, u.UserName), login_profile(ctx, u.UserName), report and report[u.UserName])
end

-- The credential report (a CSV, §3): asked for until IAM says it is COMPLETE, then read.
local ROOT = "<root_account>"
local function credential_report(ctx)
  for _ = 1, 30 do
    local r = aws.query(ctx, "GenerateCredentialReport")
    if xml.text(r, "State") == "COMPLETE" then break end
    sched.sleep(2)
  end
  local r = aws.query(ctx, "GetCredentialReport")
  local text = crypto.unb64(xml.text(r, "Content") or "")
  if not text then fail("GetCredentialReport: Content is not base64", "malformed") end
  local lines = {}
  for l in text:gmatch("[^\r\n]+") do lines[#lines + 1] = l end
  local cols, out = {}, {}
  for f in (lines[1] or ""):gmatch("[^,]+") do cols[#cols + 1] = f end
  for i = 2, #lines do
    local row, k = {}, 0
    for f in (lines[i] .. ","):gmatch("([^,]*),") do k = k + 1; row[cols[k] or k] = f end
    out[row.user or ""] = row
  end
  return out
end

-- The root user, as the credential report shows it: an administrator by nature; MFA and keys in raw.
local function root_row(r)
  return { ext_id = ROOT, display_name = "root", status = "active", last_login = when(r.password_last_used),
           created_at = when(r.user_creation_time), external = 0,
           raw = { Root = true, MFAActive = r.mfa_active == "true", AccessKey1Active = r.access_key_1_active == "true",
                   AccessKey2Active = r.access_key_2_active == "true", Report = r } }
end

-- Roles are identities too (assumed by people, services and other accounts): users rows named role/<name>
-- (IAM user names cannot hold a "/"), their trust policy in raw.
-- A role is suspended by the same deny-all inline policy as a user.
local ROLE = "role/"
local function role_row(ctx, r)
  if type(r) ~= "table" or type(r.RoleName) ~= "string" then return r end
  local inline = {}
  for _, n in ipairs(aws.all(ctx, "ListRolePolicies", { RoleName = r.RoleName }, "PolicyNames")) do inline[n] = true end
  local trust = type(r.AssumeRolePolicyDocument) == "string" and json.decode((r.AssumeRolePolicyDocument:gsub("%%(%x%x)",
    function(h) return string.char(tonumber(h, 16)) end))) or nil
  return { ext_id = ROLE .. r.RoleName, display_name = r.RoleName, status = inline[SUSPEND_POLICY] and "suspended" or "active",
           created_at = r.CreateDate, external = 0, raw = { Role = r, TrustPolicy = trust, InlinePolicies = inline } }
end

-- Users, with each one's MFA and last console sign-in from the credential report (one call for all),
-- the root user, and the roles.
function c.streams.users(ctx)
  local report = credential_report(ctx)
  for page in aws.pages(ctx, "ListUsers", nil, "Users") do
    local rows = {}
    for i, u in ipairs(page) do rows[i] = user_with_details(ctx, u, report) end
    ctx:emit("users", rows)
  end
  if report[ROOT] then ctx:emit("users", { root_row(report[ROOT]) }) end
  for page in aws.pages(ctx, "ListRoles", nil, "Roles") do
    local rows = {}
    for i, r in ipairs(page) do rows[i] = role_row(ctx, r) end
    ctx:emit("users", rows)
  end
end

function c.fetch.users(ctx, name)
  if name:sub(1, #ROLE) == ROLE then
    local r = aws.query(ctx, "GetRole", { RoleName = name:sub(#ROLE + 1) })     -- not_found when the role is gone
    ctx:emit("users", { role_row(ctx, xml.record(xml.child(r, "Role"))) })
    return
  end
  if name == ROOT then
    local root = credential_report(ctx)[ROOT]
    if root then ctx:emit("users", { root_row(root) }) end
    return
  end
  local r = aws.query(ctx, "GetUser", { UserName = name })     -- raises not_found when the user is gone
  ctx:emit("users", { user_with_details(ctx, xml.record(xml.child(r, "User")), credential_report(ctx)) })
end

function c.streams.groups(ctx)
  for page in aws.pages(ctx, "ListGroups", nil, "Groups") do
    ctx:emit("groups", page, function(g)
      return { ext_id = g.GroupName, name = g.GroupName, description = g.Path ~= "/" and g.Path or nil }
    end)
    for _, g in ipairs(page) do
      for members in aws.pages(ctx, "GetGroup", { GroupName = g.GroupName }, "Users") do
        ctx:emit("group_members", members, function(u)
          return { ext_id = g.GroupName .. ":" .. u.UserName, group_id = g.GroupName, member_id = u.UserName, member_type = "user" }
        end)
      end
    end
  end
end

-- The policies that make a group's members administrators -> {names} (empty when none does).
local function group_admin_policies(ctx, group)
  local why = {}
  for _, p in ipairs(aws.all(ctx, "ListAttachedGroupPolicies", { GroupName = group }, "AttachedPolicies")) do
    if ADMIN_POLICIES[p.PolicyArn] then why[#why + 1] = p.PolicyName end
  end
  for _, n in ipairs(aws.all(ctx, "ListGroupPolicies", { GroupName = group }, "PolicyNames")) do
    local doc = aws.query(ctx, "GetGroupPolicy", { GroupName = group, PolicyName = n })
    if aws.allows_everything(xml.text(doc, "PolicyDocument")) then why[#why + 1] = n end
  end
  return why
end

-- Administrators: AdministratorAccess (or IAMFullAccess, which can grant it) attached to the user or one
-- of its groups, or an inline policy allowing "*" on "*".
function c.streams.privileges(ctx)
  local group_admin = {}        -- group name -> {policy names}
  for page in aws.pages(ctx, "ListGroups", nil, "Groups") do
    for _, g in ipairs(page) do
      local why = group_admin_policies(ctx, g.GroupName)
      if #why > 0 then group_admin[g.GroupName] = why end
    end
  end
  local admins = { [ROOT] = true }
  local rows
  local function add(name, role, scope)
    rows[#rows + 1] = { ext_id = name .. ":" .. scope .. ":" .. role, user_id = name, role = role, scope = scope,
                        raw = { UserName = name, Policy = role, Via = scope } }
    admins[name] = true
  end
  ctx:emit("privileges", { { ext_id = ROOT .. ":root", user_id = ROOT, role = "root", scope = "account", raw = { Root = true } } })
  for page in aws.pages(ctx, "ListUsers", nil, "Users") do
    rows = {}
    for _, u in ipairs(page) do
      local name = u.UserName
      for _, p in ipairs(aws.all(ctx, "ListAttachedUserPolicies", { UserName = name }, "AttachedPolicies")) do
        if ADMIN_POLICIES[p.PolicyArn] then add(name, p.PolicyName, "attached") end
      end
      for _, n in ipairs(aws.all(ctx, "ListUserPolicies", { UserName = name }, "PolicyNames")) do
        local doc = aws.query(ctx, "GetUserPolicy", { UserName = name, PolicyName = n })
        if aws.allows_everything(xml.text(doc, "PolicyDocument")) then add(name, n, "inline") end
      end
      for _, g in ipairs(aws.all(ctx, "ListGroupsForUser", { UserName = name }, "Groups")) do
        for _, p in ipairs(group_admin[g.GroupName] or {}) do add(name, p, "group:" .. g.GroupName) end
      end
    end
    ctx:emit("privileges", rows)
  end
  -- roles: the same, with their own attached and inline policies
  for page in aws.pages(ctx, "ListRoles", nil, "Roles") do
    rows = {}
    for _, r in ipairs(page) do
      local id = ROLE .. r.RoleName
      for _, p in ipairs(aws.all(ctx, "ListAttachedRolePolicies", { RoleName = r.RoleName }, "AttachedPolicies")) do
        if ADMIN_POLICIES[p.PolicyArn] then add(id, p.PolicyName, "attached") end
      end
      for _, n in ipairs(aws.all(ctx, "ListRolePolicies", { RoleName = r.RoleName }, "PolicyNames")) do
        local doc = aws.query(ctx, "GetRolePolicy", { RoleName = r.RoleName, PolicyName = n })
        if aws.allows_everything(xml.text(doc, "PolicyDocument")) then add(id, n, "inline") end
      end
    end
    ctx:emit("privileges", rows)
  end
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- access keys
-- Access keys are the account's long-lived tokens: one row per active key, with its age and last use.
local function key_row(ctx, k)
  if k.Status ~= "Active" then return nil end
  local r = aws.query(ctx, "GetAccessKeyLastUsed", { AccessKeyId = k.AccessKeyId })
  local last = xml.record(xml.child(r, "AccessKeyLastUsed") or { text = "" })
  return { ext_id = k.AccessKeyId, client_id = k.AccessKeyId, app_name = "access key", user_id = k.UserName,
           user = k.UserName, scopes = "programmatic access", created_at = k.CreateDate,
           last_used = type(last) == "table" and str(last.LastUsedDate) or nil, raw = { AccessKey = k, LastUsed = last } }
end

function c.streams.app_grants(ctx)
  for _, u in ipairs(ctx:known_users()) do
    -- the root user's keys have no API but the credential report (their state is in its users row); roles
    -- have no keys
    if u.ext_id == ROOT or u.ext_id:sub(1, #ROLE) == ROLE then goto next_user end
    for page in aws.pages(ctx, "ListAccessKeys", { UserName = u.ext_id }, "AccessKeyMetadata") do
      local rows = {}
      for _, k in ipairs(page) do rows[#rows + 1] = key_row(ctx, k) end
      ctx:emit("app_grants", rows)
    end
    ::next_user::
  end
end

-- One key: its owner from GetAccessKeyLastUsed, then that owner's keys (a deleted key: not_found).
function c.fetch.app_grants(ctx, id)
  local r = aws.query(ctx, "GetAccessKeyLastUsed", { AccessKeyId = id })
  local owner = xml.text(r, "UserName")
  for _, k in ipairs(aws.all(ctx, "ListAccessKeys", { UserName = owner }, "AccessKeyMetadata")) do
    if k.AccessKeyId == id then
      if k.Status == "Active" then ctx:emit("app_grants", { key_row(ctx, k) })
      else ctx:retire("app_grants", { id }) end
      return
    end
  end
  ctx:retire("app_grants", { id })
end

---------------------------------------------------------------------------------------------- S3
-- Buckets and objects (§5), path-style on each bucket's region's endpoint; an object is public when its ACL (or
-- its bucket's) grants AllUsers or AuthenticatedUsers and Block Public Access does not ignore such ACLs.
local QUARANTINE = "cachost-quarantine/"     -- where quarantined objects go, in their own bucket
local PUBLIC = { ["http://acs.amazonaws.com/groups/global/AllUsers"] = "public",
                 ["http://acs.amazonaws.com/groups/global/AuthenticatedUsers"] = "public" }

-- One S3 request at region r's endpoint, signed for r.
local function s3_at(ctx, r, method, path, o)
  return ctx:try(method, s3_url(ctx.settings, r) .. path, { auth = { scheme = "s3", region = r }, raw = true,
    expect_xml = not o.content, headers = o.headers, body = o.body, query = o.query, max_size = o.max_size,
    idempotent = o.idempotent })
end

-- Where S3 says a bucket is when it was asked elsewhere: 301 PermanentRedirect (path-style on another
-- region's endpoint) or 400 AuthorizationHeaderMalformed (signed for another region), with the
-- x-amz-bucket-region header or a <Region> in the error.
local function moved_to(resp)
  if not resp or (resp.status ~= 301 and resp.status ~= 400) then return nil end
  local h = resp.headers["x-amz-bucket-region"]
  if h then return h end
  local root = xml.decode(resp.body or "")
  return root and xml.text(root, "Region")
end

-- Each bucket lives in one region and is addressed there.  Its region comes from GetBucketLocation, which
-- us-east-1 answers for every bucket; only the bucket's owner may ask it, so where it is refused the home
-- region is tried and S3's redirect says the rest.  Known per context (one scan, one action).
local regions = setmetatable({}, { __mode = "k" })        -- ctx -> {bucket -> region}
local LOCATION = { [""] = "us-east-1", EU = "eu-west-1" } -- LocationConstraint's legacy names
local function bucket_region(ctx, bucket)
  local known = regions[ctx] or {}
  regions[ctx] = known
  if known[bucket] then return known[bucket] end
  local resp, err, token = s3_at(ctx, "us-east-1", "GET", "/" .. urlencode(bucket), { query = { location = "" } })
  local r
  if resp and resp.xml and resp.xml.name == "LocationConstraint" then
    r = LOCATION[resp.xml.text or ""] or resp.xml.text
  elseif resp then
    fail(("malformed: GetBucketLocation of %s answered HTTP %d without a LocationConstraint"):format(bucket, resp.status), "malformed")
  elseif token == "permission" then
    r = region(ctx.settings)
  else
    fail(err, token)
  end
  known[bucket] = r
  return r
end

-- An S3 call in the region of the bucket its path names (ListBuckets: the home region), following S3's
-- redirect once -> the answer's XML tree (nil for none, or for content), resp | nil, err, token, resp.
local function s3(ctx, method, path, o)
  o = o or {}
  local bucket = path:match("^/([^/]+)")
  local r = bucket and bucket_region(ctx, bucket) or region(ctx.settings)
  local resp, err, token, raw = s3_at(ctx, r, method, path, o)
  local moved = bucket and moved_to(resp or raw)
  if moved and moved ~= r then
    regions[ctx][bucket] = moved
    resp, err, token, raw = s3_at(ctx, moved, method, path, o)
  end
  if resp and resp.status >= 300 then          -- a redirect that was not followed: no answer here
    return nil, ("http: HTTP %d: %s"):format(resp.status, c.error_message(resp)), "http", resp
  end
  if not resp then return nil, err, token, raw end
  return resp.xml, resp
end

-- the S3 call or a raised failure
local function s3_ok(ctx, method, path, o)
  local root, resp, token = s3(ctx, method, path, o)
  if root == nil and type(resp) == "string" then fail(resp, token) end
  return root, resp
end

-- A listing's answer: its root element is the one S3 documents, or it is no listing at all.
local function s3_listing(ctx, path, query, root_name)
  local root = s3_ok(ctx, "GET", path, { query = query })
  if not root or root.name ~= root_name then
    fail(("malformed listing: expected <%s> from GET %s, got %s"):format(root_name, path,
      root and "<" .. tostring(root.name) .. ">" or "nothing"), "malformed")
  end
  return root
end

local function key_path(bucket, key)
  return "/" .. urlencode(bucket) .. "/" .. key:gsub("[^/]+", urlencode)
end

-- An ACL -> its file_permissions rows and the access level it gives.
local function acl_rows(root, file_id)
  local rows, level = {}, "private"
  for _, g in ipairs(xml.all(root, "AccessControlList", "Grant")) do
    local uri, id = xml.text(g, "Grantee/URI"), xml.text(g, "Grantee/ID")
    local perm = xml.text(g, "Permission")
    if uri and PUBLIC[uri] then level = "public" end
    rows[#rows + 1] = { ext_id = file_id .. ":" .. (uri or id or "?") .. ":" .. tostring(perm), file_id = file_id,
      principal = uri and uri:match("[^/]+$") or id, principal_type = uri and "group" or "user", role = perm,
      external = (uri and PUBLIC[uri]) and 1 or 0, raw = xml.record(g) }
  end
  return rows, level
end

-- Block Public Access settings: {IgnorePublicAcls = bool, ...}
local BPA = { "BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets" }
local function bpa_of(root)
  local out = {}
  for _, k in ipairs(BPA) do out[k] = xml.text(root, k) == "true" end
  return out
end

-- The account's Block Public Access (S3 Control GetPublicAccessBlock at the account's own endpoint), which
-- every bucket inherits: {} when none is set, or when the account's id is not known (neither account_id
-- nor role_arn says it).  Read once per context.
local account_bpa = setmetatable({}, { __mode = "k" })     -- ctx -> settings
local function account_public_access(ctx)
  if account_bpa[ctx] then return account_bpa[ctx] end
  local url, out = s3control_url(ctx.settings), {}
  if url then
    local resp, err, token = ctx:try("GET", url .. "/v20180820/configuration/publicAccessBlock", { auth = "s3", raw = true,
      expect_xml = true, headers = { ["x-amz-account-id"] = account_id(ctx.settings) } })
    if resp then out = bpa_of(resp.xml) elseif token ~= "not_found" then fail(err, token) end
  end
  account_bpa[ctx] = out
  return out
end

-- A bucket's Block Public Access as it applies (its own settings, or the account's) -> that, its own.
local function block_public_access(ctx, bucket)
  local root, resp, token = s3(ctx, "GET", "/" .. urlencode(bucket), { query = { publicAccessBlock = "" } })
  local own = {}
  if root == nil and type(resp) == "string" then
    if token ~= "not_found" then fail(resp, token) end
  else
    own = bpa_of(root)
  end
  local acct, applies = account_public_access(ctx), {}
  for _, k in ipairs(BPA) do applies[k] = own[k] == true or acct[k] == true end
  return applies, own
end

-- An object (a <Contents> of ListObjectsV2) -> its files row and its ACL's file_permissions rows.
local function object_rows(ctx, bucket, o, bpa)
  local key = xml.text(o, "Key")
  local id = bucket .. "/" .. key
  local acl = s3_ok(ctx, "GET", key_path(bucket, key), { query = { acl = "" } })
  local perms, level = acl_rows(acl, id)
  if bpa.IgnorePublicAcls then level = "private" end
  return { ext_id = id, name = key:match("[^/]+$"), path = "/" .. id, parent_id = bucket, is_folder = 0,
           size = math.tointeger(tonumber(xml.text(o, "Size"))), access_level = level,
           quarantined = key:sub(1, #QUARANTINE) == QUARANTINE and 1 or 0, modified_at = xml.text(o, "LastModified"),
           raw = xml.record(o) }, perms
end

local function bucket_rows(ctx, bucket, b)
  local bpa, own = block_public_access(ctx, bucket)
  local bacl = s3_ok(ctx, "GET", "/" .. urlencode(bucket), { query = { acl = "" } })
  local perms, level = acl_rows(bacl, bucket)
  if bpa.IgnorePublicAcls then level = "private" end
  return { ext_id = bucket, name = bucket, path = "/" .. bucket, is_folder = 1, access_level = level,
           created_at = b and xml.text(b, "CreationDate"),
           raw = { Bucket = b and xml.record(b), PublicAccessBlock = own, AccountPublicAccessBlock = account_public_access(ctx),
                   Region = bucket_region(ctx, bucket) } },
    perms, bpa
end

function c.streams.files(ctx)
  local root = s3_listing(ctx, "/", nil, "ListAllMyBucketsResult")
  for _, b in ipairs(xml.all(root, "Buckets", "Bucket")) do
    local bucket = xml.text(b, "Name")
    local brow, bperms, bpa = bucket_rows(ctx, bucket, b)
    ctx:emit("files", { brow })
    ctx:emit("file_permissions", bperms)
    local token
    repeat
      local l = s3_listing(ctx, "/" .. urlencode(bucket), { ["list-type"] = "2", ["max-keys"] = "1000",
        ["continuation-token"] = token }, "ListBucketResult")
      local rows, perms = {}, {}
      for _, o in ipairs(xml.all(l, "", "Contents")) do
        local row, p = object_rows(ctx, bucket, o, bpa)
        rows[#rows + 1] = row
        for _, x in ipairs(p) do perms[#perms + 1] = x end
      end
      ctx:emit("files", rows)
      ctx:emit("file_permissions", perms)
      token = xml.text(l, "NextContinuationToken")
    until not token
  end
end

-- Targeted re-fetch (after an action): a bucket, or one object found by listing its exact key.
function c.fetch.files(ctx, id)
  local bucket, key = tostring(id):match("^([^/]+)/?(.*)$")
  if key == "" then
    local row, perms = bucket_rows(ctx, bucket)
    ctx:emit("files", { row })
    ctx:emit("file_permissions", perms)
    return
  end
  local l = s3_listing(ctx, "/" .. urlencode(bucket), { ["list-type"] = "2", prefix = key, ["max-keys"] = "1" }, "ListBucketResult")
  local o = xml.all(l, "", "Contents")[1]
  if not o or xml.text(o, "Key") ~= key then ctx:retire("files", { id }); return end
  local row, perms = object_rows(ctx, bucket, o, block_public_access(ctx, bucket))
  ctx:emit("files", { row })
  ctx:emit("file_permissions", perms)
end

-- Content for the data scan: GetObject, capped at max_size.
function c.content(ctx, file, max_size)
  if file.is_folder == 1 then return nil, "unsupported: a bucket has no content" end
  local bucket, key = file.ext_id:match("^([^/]+)/(.+)$")
  local _, resp, token = s3(ctx, "GET", key_path(bucket, key), { max_size = max_size, content = true })
  if type(resp) == "string" then return nil, resp, token end
  return resp.body
end

c.stream_order = { users = 1, groups = 2, privileges = 3, app_grants = 4, activities = 5, files = 6 }

---------------------------------------------------------------------------------------------- CloudTrail
-- Management events (§4) of two sources: console sign-ins (signin.amazonaws.com), which land in the region
-- of the sign-in endpoint used, and IAM's changes (iam.amazonaws.com), a global service's, in us-east-1.
-- Every enabled region is read (EC2 DescribeRegions).  Two ways, both keyed by the event's id:
--  * LookupEvents: the last 90 days, newest first, 50 a page, one lookup attribute a call, 2 requests a
--    second per account and region (paced; the client backs off on ThrottlingException).  The watermark is
--    the newest event time read; the next poll starts OVERLAP before it (CloudTrail delivers an event
--    minutes after the call).
--  * a trail's bucket (trail_bucket; large accounts, where 2 lookups a second cannot keep up): CloudTrail
--    delivers each region's events every few minutes as a gzipped JSON file {"Records": [...]} under
--    [trail_prefix/]AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/, named in time order.  Each region is
--    listed after the last file read (the cursor), the first time from initial_days back.
local CT_TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
local SOURCES = { ["signin.amazonaws.com"] = "signin", ["iam.amazonaws.com"] = "admin" }
local OVERLAP = 15 * 60
local EC2_VERSION = "2016-11-15"
local TRAIL_FILE_MAX = 256 * 1024 * 1024       -- a log file's size, gzipped and read

-- A CloudTrail record -> its activities row (e: its LookupEvents summary, when it came that way).
local function record_row(rec, e)
  local who = type(rec.userIdentity) == "table" and rec.userIdentity or {}
  local outcome = "success"
  if type(rec.responseElements) == "table" and rec.responseElements.ConsoleLogin then
    outcome = tostring(rec.responseElements.ConsoleLogin):lower()
  elseif rec.errorCode then
    outcome = "failure"
  end
  local params = type(rec.requestParameters) == "table" and rec.requestParameters or {}
  local res = e and type(e.Resources) == "table" and e.Resources[1]
  local target = type(res) == "table" and str(res.ResourceName)
    or str(params.userName) or str(params.groupName) or str(params.accessKeyId) or str(params.roleName)
  return {
    -- the record's own eventTime first: the same event read from LookupEvents and from the trail's files
    -- has the same time, which with its id is an event's key (store/schema.lua)
    ext_id = e and e.EventId or rec.eventID, time = str(rec.eventTime) or e and iso(e.EventTime),
    kind = SOURCES[rec.eventSource] or "admin", action = rec.eventName,
    actor = e and str(e.Username) or str(who.userName) or who.arn, actor_id = str(who.userName) or str(who.principalId),
    target = target, target_id = target, ip = str(rec.sourceIPAddress), user_agent = str(rec.userAgent), outcome = outcome,
    app = "AWS", raw = rec,
  }
end

local function event_row(e) return record_row(json.decode(e.CloudTrailEvent or "") or {}, e) end

-- The account's enabled regions (EC2 DescribeRegions in the home region: without AllRegions, the enabled
-- ones only; a region not enabled refuses the credentials).
local function enabled_regions(ctx)
  local _, resp = ctx:request("POST", ec2_url(ctx.settings), { form = { Action = "DescribeRegions", Version = EC2_VERSION },
    auth = "ec2", raw = true, expect_xml = true, idempotent = true })
  local out = {}
  for _, it in ipairs(xml.all(resp.xml, "regionInfo", "item")) do out[#out + 1] = xml.text(it, "regionName") end
  if #out == 0 then fail("malformed listing: DescribeRegions named no region", "malformed") end
  return out
end

local function lookup_events(ctx, since)
  local newest = ctx.watermark
  local lookups = { { "us-east-1", "iam.amazonaws.com" } }
  for _, r in ipairs(enabled_regions(ctx)) do lookups[#lookups + 1] = { r, "signin.amazonaws.com" } end
  for _, l in ipairs(lookups) do
    local r, source = l[1], l[2]
    local token
    repeat
      local q = { LookupAttributes = { { AttributeKey = "EventSource", AttributeValue = source } },
                  StartTime = math.floor(since), MaxResults = 50, NextToken = token }
      local d = ctx:request("POST", cloudtrail_url(ctx.settings, r), { auth = { scheme = "cloudtrail", region = r },
        body = json.encode(q), headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = CT_TARGET },
        expect_json = true, idempotent = true, per_second = 2, pace_key = r })
      local events = ctx:listing(d, "Events", "LookupEvents")
      ctx:emit("activities", events, event_row)
      for _, e in ipairs(events) do
        local t = iso(e.EventTime)
        if not newest or t > newest then newest = t end
      end
      token = str(d.NextToken)
    until not token
  end
  ctx:checkpoint(nil, newest)
end

-- The records of one log file of the trail, or a raised failure (a file that is not what CloudTrail writes).
local function trail_records(ctx, bucket, key)
  local _, resp, token = s3(ctx, "GET", key_path(bucket, key), { content = true, max_size = TRAIL_FILE_MAX })
  if type(resp) == "string" then fail(resp, token) end
  local text, err, gtoken = gunzip(resp.body, TRAIL_FILE_MAX)
  if not text then fail(("%s: s3://%s/%s"):format(err, bucket, key), gtoken == "too_large" and "too_large" or "malformed") end
  local doc = json.decode(text)
  if type(doc) ~= "table" or type(doc.Records) ~= "table" then
    fail(("malformed listing: expected Records in s3://%s/%s"):format(bucket, key), "malformed")
  end
  return doc.Records
end

-- When a log file was delivered, from its name (..._CloudTrail_<region>_YYYYMMDDTHHmmZ_<unique>.json.gz).
local function file_time(key)
  local y, mo, d, h, mi = key:match("_(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)Z_[^/]*$")
  return y and parse_iso(("%s-%s-%sT%s:%s:00Z"):format(y, mo, d, h, mi))
end

-- Each region's files are listed from the day OVERLAP before the newest file read; files older than that,
-- or read already (the cursor keeps the names of those within OVERLAP), are skipped: names within one
-- minute sort by a random part, and a file may be delivered after a later-named one.
local function trail_events(ctx, bucket, since, cursor)
  local prefix = (str(ctx.settings.trail_prefix) and ctx.settings.trail_prefix:gsub("/+$", "") .. "/" or "")
    .. "AWSLogs/" .. xml.text(caller(ctx), "Account") .. "/CloudTrail/"
  local state = type(cursor) == "string" and json.decode(cursor) or {}
  local newest = ctx.watermark
  for _, r in ipairs(enabled_regions(ctx)) do
    local base = prefix .. r .. "/"
    local st = type(state[r]) == "table" and state[r] or {}
    local from = (tonumber(st.newest) or since + OVERLAP) - OVERLAP
    local read = type(st.read) == "table" and st.read or {}
    local token
    repeat
      local l = s3_listing(ctx, "/" .. urlencode(bucket), { ["list-type"] = "2", prefix = base, ["continuation-token"] = token,
        ["start-after"] = not token and base .. iso(from):sub(1, 10):gsub("%-", "/") .. "/" or nil }, "ListBucketResult")
      for _, o in ipairs(xml.all(l, "", "Contents")) do
        local key = xml.text(o, "Key")
        local t = file_time(key or "")
        if t and t >= from and not read[key] then
          local rows = {}
          for _, rec in ipairs(trail_records(ctx, bucket, key)) do
            if type(rec) ~= "table" or SOURCES[rec.eventSource] then rows[#rows + 1] = rec end
            local et = type(rec) == "table" and str(rec.eventTime)
            if et and SOURCES[rec.eventSource] and (not newest or et > newest) then newest = et end
          end
          read[key] = t
          st.newest = math.max(tonumber(st.newest) or 0, t)
          for k, kt in pairs(read) do if kt < st.newest - OVERLAP then read[k] = nil end end
          st.read, state[r] = read, st
          ctx:checkpoint(json.encode(state), newest)      -- committed with this file's rows
          ctx:emit("activities", rows, record_row)
        end
      end
      token = xml.text(l, "NextContinuationToken")
    until not token
  end
  ctx:checkpoint(json.encode(state), newest)
end

c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local days = math.min(tonumber(ctx.settings.initial_days) or c.initial_days, 90)
  local since = ctx.watermark and parse_iso(ctx.watermark) - OVERLAP or (sched.time() - days * 86400)
  local bucket = str(ctx.settings.trail_bucket)
  if bucket then return trail_events(ctx, bucket, since, cursor) end
  lookup_events(ctx, since)
end

---------------------------------------------------------------------------------------------- governance
-- The inline-policy call of a user, or of a role (role/<name>) -> action, params
local function inline_policy(user, verb, params)
  local role = tostring(user.ext_id):match("^role/(.+)$")
  if role then params.RoleName = role else params.UserName = user.ext_id end
  return verb .. (role and "RolePolicy" or "UserPolicy"), params
end
function c.actions.suspend_user(ctx, user)
  aws.query(ctx, inline_policy(user, "Put", { PolicyName = SUSPEND_POLICY, PolicyDocument = DENY_ALL }))
end
function c.actions.unsuspend_user(ctx, user)
  aws.query(ctx, inline_policy(user, "Delete", { PolicyName = SUSPEND_POLICY }))
end
-- the console password must be changed at the next sign-in
function c.actions.reset_password(ctx, user)
  aws.query(ctx, "UpdateLoginProfile", { UserName = user.ext_id, PasswordResetRequired = "true" })
end
-- (a role: these are for IAM users; a role is suspended by suspend_user)
local function iam_user(user, action)
  if tostring(user.ext_id):match("^role/") or user.ext_id == ROOT then
    fail(("%s: %s is not an IAM user (a role or the root user: suspend_user denies a role everything)"):format(action,
      tostring(user.ext_id)), "http")
  end
  return user.ext_id
end

-- No way in any more: the console password deleted (its login profile: it cannot be restored, a new one
-- can be made) and every active access key deactivated (they can be made Active again).
function c.actions.deactivate_user(ctx, user)
  local name = iam_user(user, "deactivate_user")
  local ok, err = pcall(aws.query, ctx, "DeleteLoginProfile", { UserName = name })
  if not ok and token_of(err) ~= "not_found" then error(err, 0) end          -- not_found: no console password
  for _, k in ipairs(aws.all(ctx, "ListAccessKeys", { UserName = name }, "AccessKeyMetadata")) do
    if k.Status == "Active" then aws.query(ctx, "UpdateAccessKey", { UserName = name, AccessKeyId = k.AccessKeyId, Status = "Inactive" }) end
  end
end

-- Out of its groups (params.group: of that one only).
function c.actions.remove_member(ctx, user, params)
  local name = iam_user(user, "remove_member")
  for _, g in ipairs(aws.all(ctx, "ListGroupsForUser", { UserName = name }, "Groups")) do
    if not (params and params.group) or params.group == g.GroupName then
      aws.query(ctx, "RemoveUserFromGroup", { UserName = name, GroupName = g.GroupName })
    end
  end
end

-- An administrator no more: AdministratorAccess and IAMFullAccess detached from the user, the user taken
-- out of the groups that grant them, and its inline policies allowing everything deleted (those cannot be
-- put back by cachost: the governance log keeps their names).
function c.actions.remove_admin_role(ctx, user)
  local name = iam_user(user, "remove_admin_role")
  for _, p in ipairs(aws.all(ctx, "ListAttachedUserPolicies", { UserName = name }, "AttachedPolicies")) do
    if ADMIN_POLICIES[p.PolicyArn] then aws.query(ctx, "DetachUserPolicy", { UserName = name, PolicyArn = p.PolicyArn }) end
  end
  for _, g in ipairs(aws.all(ctx, "ListGroupsForUser", { UserName = name }, "Groups")) do
    if #group_admin_policies(ctx, g.GroupName) > 0 then
      aws.query(ctx, "RemoveUserFromGroup", { UserName = name, GroupName = g.GroupName })
    end
  end
  for _, n in ipairs(aws.all(ctx, "ListUserPolicies", { UserName = name }, "PolicyNames")) do
    local doc = aws.query(ctx, "GetUserPolicy", { UserName = name, PolicyName = n })
    if aws.allows_everything(xml.text(doc, "PolicyDocument")) then
      aws.query(ctx, "DeleteUserPolicy", { UserName = name, PolicyName = n })
    end
  end
end

-- an access key stops working at once and can be made Active again
function c.actions.revoke_token(ctx, key)
  aws.query(ctx, "UpdateAccessKey", { UserName = key.user_id, AccessKeyId = key.ext_id, Status = "Inactive" })
end
function c.actions.revoke_grant(ctx, key)
  aws.query(ctx, "DeleteAccessKey", { UserName = key.user_id, AccessKeyId = key.ext_id })
end

-- Data governance on S3 objects.
local function object_of(file)
  local bucket, key = tostring(file.ext_id):match("^([^/]+)/(.+)$")
  if not bucket then fail("not an S3 object: " .. tostring(file.ext_id), "http") end
  return bucket, key
end

function c.actions.make_private(ctx, file)
  if file.is_folder == 1 then
    -- a bucket: Block Public Access, all four settings (PutPublicAccessBlock requires a body checksum)
    local body = '<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
      .. "<BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>"
      .. "<BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets>"
      .. "</PublicAccessBlockConfiguration>"
    s3_ok(ctx, "PUT", "/" .. urlencode(file.ext_id), { query = { publicAccessBlock = "" }, body = body,
      headers = { ["Content-Type"] = "application/xml", ["x-amz-checksum-sha256"] = crypto.b64(crypto.sha256(body)) } })
    return
  end
  local bucket, key = object_of(file)
  s3_ok(ctx, "PUT", key_path(bucket, key), { query = { acl = "" }, headers = { ["x-amz-acl"] = "private" } })
end

-- Quarantine: the object is copied (encrypted, private) under cachost-quarantine/ in its bucket, the
-- original deleted, and a tombstone object at its key says where it went and why.
function c.actions.quarantine_file(ctx, file, params)
  params = params or {}
  local bucket, key = object_of(file)
  if key:sub(1, #QUARANTINE) == QUARANTINE then fail("the object is already in quarantine", "http") end
  local dest = QUARANTINE .. key
  s3_ok(ctx, "PUT", key_path(bucket, dest), { headers = { ["x-amz-copy-source"] = key_path(bucket, key),
    ["x-amz-server-side-encryption"] = "AES256", ["x-amz-acl"] = "private" } })
  local note = ("This object was quarantined by your administrator.\n\nObject: s3://%s/%s\nMoved to: s3://%s/%s\n"
    .. "Correlation id: %s\n"):format(bucket, key, bucket, dest, tostring(params.correlation_id or "-"))
  s3_ok(ctx, "PUT", key_path(bucket, key .. ".quarantined.txt"), { body = note, headers = { ["Content-Type"] = "text/plain", ["x-amz-acl"] = "private" } })
  s3_ok(ctx, "DELETE", key_path(bucket, key))
  return { undo = { action = "unquarantine_file", params = { bucket = bucket, key = key, quarantined = dest } } }
end

function c.actions.unquarantine_file(ctx, file, params)
  params = params or {}
  local bucket, key = params.bucket, params.key
  if not (bucket and key) then fail("unquarantine_file needs the quarantine's undo record", "http") end
  local from = params.quarantined or (QUARANTINE .. key)
  s3_ok(ctx, "PUT", key_path(bucket, key), { headers = { ["x-amz-copy-source"] = key_path(bucket, from), ["x-amz-acl"] = "private" } })
  s3_ok(ctx, "DELETE", key_path(bucket, from))
  s3_ok(ctx, "DELETE", key_path(bucket, key .. ".quarantined.txt"))
end

-- A new content at the same key (a versioned bucket keeps the earlier version).
function c.actions.overwrite_file(ctx, file, params)
  local bucket, key = object_of(file)
  s3_ok(ctx, "PUT", key_path(bucket, key), { body = (params and params.notice) or "This object's content was removed by your administrator.",
    headers = { ["Content-Type"] = "text/plain", ["x-amz-acl"] = "private" } })
end

c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user" }

return c
