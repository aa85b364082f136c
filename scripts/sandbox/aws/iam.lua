-- sandbox/aws/iam.lua — IAM (query protocol, Version 2010-05-08): users, groups and memberships, roles, access
-- keys and their last use, login profiles, MFA devices, attached and inline policies, with Marker/MaxItems
-- paging (1-1000, default 100), and the governance writes (UpdateAccessKey, DeleteAccessKey, UpdateLoginProfile,
-- DeleteLoginProfile, PutUserPolicy/DeleteUserPolicy, DetachUserPolicy, RemoveUserFromGroup, and the roles').  Writes need a caller with
-- write permissions: the assumed role or an administrator (the read-only audit user gets AccessDenied).
local C = require "sandbox.aws.core"
local T = require "sandbox.tenant"

local A = {}
local NS = C.IAM_NS

local function deny(self, req, action)
  local who = req.caller.session and req.caller.session.arn or self.users[req.caller.user].Arn
  return self:query_error(req, 403, "AccessDenied", ("User: %s is not authorized to perform: iam:%s"):format(who, action))
end

local function can_write(self, req)
  if req.caller.session then return true end
  local u = self.users[req.caller.user]
  for _, g in ipairs(u.groups) do if g == "Admins" then return true end end
  return false
end

local function no_user(self, req, name)
  return self:query_error(req, 404, "NoSuchEntity", ("The user with name %s cannot be found."):format(name))
end

-- One page of items: p.Marker (opaque: the next index), p.MaxItems 1..1000 (default 100).
-- -> page fields {[list_name] = C.list, IsTruncated, Marker?} | nil, error answer
local function page(self, req, p, items, list_name)
  local max = p.MaxItems and math.tointeger(tonumber(p.MaxItems)) or 100
  if not max or max < 1 or max > 1000 then
    return nil, { self:query_error(req, 400, "ValidationError", "1 validation error detected: Value at 'maxItems' failed "
      .. "to satisfy constraint: Member must have value between 1 and 1000") }
  end
  local from = 1
  if p.Marker then
    from = math.tointeger(tonumber((crypto.unb64(p.Marker) or ""):match("^i:(%d+)$") or ""))
    if not from then return nil, { self:query_error(req, 400, "InvalidInput", "Invalid Marker.") } end
  end
  local out = C.list()
  for i = from, math.min(#items, from + max - 1) do out[#out + 1] = items[i] end
  local res = { [list_name] = out, IsTruncated = tostring(from + max - 1 < #items) }
  if from + max - 1 < #items then res.Marker = crypto.b64("i:" .. (from + max)) end
  return res
end

local function listing(self, req, p, action, items, list_name, extra)
  local res, err = page(self, req, p, items, list_name)
  if not res then return table.unpack(err) end
  for k, v in pairs(extra or {}) do res[k] = v end
  return self:query_ok(req, action, NS, res)
end

local function user_view(u)
  return { Path = u.Path, UserName = u.UserName, UserId = u.UserId, Arn = u.Arn, CreateDate = u.CreateDate,
           PasswordLastUsed = u.PasswordLastUsed }
end
local function group_view(g)
  return { Path = g.Path, GroupName = g.GroupName, GroupId = g.GroupId, Arn = g.Arn, CreateDate = g.CreateDate }
end
local function policy_view(arn) return { PolicyArn = arn, PolicyName = arn:match("[^/]+$") } end

function A.ListUsers(self, req, p)
  local items = {}
  for _, n in ipairs(self.user_order) do
    local u = self.users[n]
    if not p.PathPrefix or u.Path:sub(1, #p.PathPrefix) == p.PathPrefix then items[#items + 1] = user_view(u) end
  end
  return listing(self, req, p, "ListUsers", items, "Users")
end

function A.GetUser(self, req, p)
  local name = p.UserName or req.caller.user
  local u = name and self.users[name]
  if not u then return no_user(self, req, tostring(name)) end
  return self:query_ok(req, "GetUser", NS, { User = user_view(u) })
end

function A.ListGroups(self, req, p)
  local items = {}
  for _, n in ipairs(self.group_order) do items[#items + 1] = group_view(self.groups[n]) end
  return listing(self, req, p, "ListGroups", items, "Groups")
end

function A.GetGroup(self, req, p)
  local g = p.GroupName and self.groups[p.GroupName]
  if not g then return self:query_error(req, 404, "NoSuchEntity", ("The group with name %s cannot be found."):format(tostring(p.GroupName))) end
  local items = {}
  for _, n in ipairs(g.members) do items[#items + 1] = user_view(self.users[n]) end
  return listing(self, req, p, "GetGroup", items, "Users", { Group = group_view(g) })
end

function A.ListGroupsForUser(self, req, p)
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local items = {}
  for _, n in ipairs(u.groups) do items[#items + 1] = group_view(self.groups[n]) end
  return listing(self, req, p, "ListGroupsForUser", items, "Groups")
end

function A.ListAccessKeys(self, req, p)
  local u = self.users[p.UserName or req.caller.user or ""]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local items = {}
  for _, id in ipairs(u.keys) do
    local k = self.keys[id]
    items[#items + 1] = { UserName = u.UserName, AccessKeyId = id, Status = k.status, CreateDate = k.created }
  end
  return listing(self, req, p, "ListAccessKeys", items, "AccessKeyMetadata", { UserName = u.UserName })
end

function A.GetAccessKeyLastUsed(self, req, p)
  local k = p.AccessKeyId and self.keys[p.AccessKeyId]
  if not k then return self:query_error(req, 403, "AccessDenied", "The access key does not belong to this account.") end
  local last = k.last_used and { LastUsedDate = k.last_used.date, ServiceName = k.last_used.service, Region = k.last_used.region }
    or { ServiceName = "N/A", Region = "N/A" }
  return self:query_ok(req, "GetAccessKeyLastUsed", NS, { UserName = k.user, AccessKeyLastUsed = last })
end

function A.GetLoginProfile(self, req, p)
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  if not u.login then
    return self:query_error(req, 404, "NoSuchEntity", ("Login Profile for User %s cannot be found."):format(u.UserName))
  end
  return self:query_ok(req, "GetLoginProfile", NS, { LoginProfile = { UserName = u.UserName, CreateDate = u.login.CreateDate,
    PasswordResetRequired = tostring(u.login.PasswordResetRequired) } })
end

function A.ListMFADevices(self, req, p)
  local u = self.users[p.UserName or req.caller.user or ""]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local items = {}
  if u.mfa then items[1] = { UserName = u.UserName, SerialNumber = u.mfa.SerialNumber, EnableDate = u.mfa.EnableDate } end
  return listing(self, req, p, "ListMFADevices", items, "MFADevices")
end

function A.ListAttachedUserPolicies(self, req, p)
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local items = {}
  for _, arn in ipairs(u.attached) do items[#items + 1] = policy_view(arn) end
  return listing(self, req, p, "ListAttachedUserPolicies", items, "AttachedPolicies")
end

function A.ListAttachedGroupPolicies(self, req, p)
  local g = p.GroupName and self.groups[p.GroupName]
  if not g then return self:query_error(req, 404, "NoSuchEntity", ("The group with name %s cannot be found."):format(tostring(p.GroupName))) end
  local items = {}
  for _, arn in ipairs(g.policies) do items[#items + 1] = policy_view(arn) end
  return listing(self, req, p, "ListAttachedGroupPolicies", items, "AttachedPolicies")
end

function A.ListUserPolicies(self, req, p)
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local names = {}
  for n in pairs(u.inline) do names[#names + 1] = n end
  table.sort(names)
  return listing(self, req, p, "ListUserPolicies", names, "PolicyNames")
end

function A.GetUserPolicy(self, req, p)
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local doc = p.PolicyName and u.inline[p.PolicyName]
  if not doc then
    return self:query_error(req, 404, "NoSuchEntity", ("The user policy with name %s cannot be found."):format(tostring(p.PolicyName)))
  end
  -- IAM sends policy documents URL-encoded (RFC 3986)
  return self:query_ok(req, "GetUserPolicy", NS, { UserName = u.UserName, PolicyName = p.PolicyName,
    PolicyDocument = http.urlencode(doc) })
end

local function no_group(self, req, name)
  return self:query_error(req, 404, "NoSuchEntity", ("The group with name %s cannot be found."):format(tostring(name)))
end

function A.ListGroupPolicies(self, req, p)
  local g = p.GroupName and self.groups[p.GroupName]
  if not g then return no_group(self, req, p.GroupName) end
  local names = {}
  for n in pairs(g.inline or {}) do names[#names + 1] = n end
  table.sort(names)
  return listing(self, req, p, "ListGroupPolicies", names, "PolicyNames")
end

function A.GetGroupPolicy(self, req, p)
  local g = p.GroupName and self.groups[p.GroupName]
  if not g then return no_group(self, req, p.GroupName) end
  local doc = p.PolicyName and (g.inline or {})[p.PolicyName]
  if not doc then
    return self:query_error(req, 404, "NoSuchEntity", ("The group policy with name %s cannot be found."):format(tostring(p.PolicyName)))
  end
  return self:query_ok(req, "GetGroupPolicy", NS, { GroupName = g.GroupName, PolicyName = p.PolicyName,
    PolicyDocument = http.urlencode(doc) })
end

-- Roles: ListRoles (its trust policy URL-encoded), their attached and inline policies.
local function no_role(self, req, name)
  return self:query_error(req, 404, "NoSuchEntity", ("The role with name %s cannot be found."):format(tostring(name)))
end

function A.ListRoles(self, req, p)
  local items = {}
  for _, n in ipairs(self.role_order) do
    local r = self.roles[n]
    if not p.PathPrefix or r.Path:sub(1, #p.PathPrefix) == p.PathPrefix then
      items[#items + 1] = { Path = r.Path, RoleName = r.RoleName, RoleId = r.RoleId, Arn = r.Arn, CreateDate = r.CreateDate,
                            AssumeRolePolicyDocument = http.urlencode(r.trust), MaxSessionDuration = r.MaxSessionDuration }
    end
  end
  return listing(self, req, p, "ListRoles", items, "Roles")
end

function A.GetRole(self, req, p)
  local r = p.RoleName and self.roles[p.RoleName]
  if not r then return no_role(self, req, p.RoleName) end
  return self:query_ok(req, "GetRole", NS, { Role = { Path = r.Path, RoleName = r.RoleName, RoleId = r.RoleId, Arn = r.Arn,
    CreateDate = r.CreateDate, AssumeRolePolicyDocument = http.urlencode(r.trust), MaxSessionDuration = r.MaxSessionDuration } })
end

-- An inline policy on a role (cachost's suspension of a role is one), and its removal.
function A.PutRolePolicy(self, req, p)
  if not can_write(self, req) then return deny(self, req, "PutRolePolicy") end
  local r = p.RoleName and self.roles[p.RoleName]
  if not r then return no_role(self, req, p.RoleName) end
  local doc = p.PolicyDocument and json.decode(p.PolicyDocument)
  if not p.PolicyName or type(doc) ~= "table" or not doc.Statement then
    return self:query_error(req, 400, "MalformedPolicyDocument", "Syntax errors in policy.")
  end
  r.inline[p.PolicyName] = p.PolicyDocument
  self:api_event(req, "PutRolePolicy", { roleName = r.RoleName, policyName = p.PolicyName, policyDocument = p.PolicyDocument },
    { ResourceType = "AWS::IAM::Role", ResourceName = r.RoleName })
  return self:query_ok(req, "PutRolePolicy", NS, nil)
end

function A.DeleteRolePolicy(self, req, p)
  if not can_write(self, req) then return deny(self, req, "DeleteRolePolicy") end
  local r = p.RoleName and self.roles[p.RoleName]
  if not r then return no_role(self, req, p.RoleName) end
  if not (p.PolicyName and r.inline[p.PolicyName]) then
    return self:query_error(req, 404, "NoSuchEntity", ("The role policy with name %s cannot be found."):format(tostring(p.PolicyName)))
  end
  r.inline[p.PolicyName] = nil
  self:api_event(req, "DeleteRolePolicy", { roleName = r.RoleName, policyName = p.PolicyName },
    { ResourceType = "AWS::IAM::Role", ResourceName = r.RoleName })
  return self:query_ok(req, "DeleteRolePolicy", NS, nil)
end

function A.ListAttachedRolePolicies(self, req, p)
  local r = p.RoleName and self.roles[p.RoleName]
  if not r then return no_role(self, req, p.RoleName) end
  local items = {}
  for _, a in ipairs(r.attached) do items[#items + 1] = policy_view(a) end
  return listing(self, req, p, "ListAttachedRolePolicies", items, "AttachedPolicies")
end

function A.ListRolePolicies(self, req, p)
  local r = p.RoleName and self.roles[p.RoleName]
  if not r then return no_role(self, req, p.RoleName) end
  local names = {}
  for n in pairs(r.inline) do names[#names + 1] = n end
  table.sort(names)
  return listing(self, req, p, "ListRolePolicies", names, "PolicyNames")
end

function A.GetRolePolicy(self, req, p)
  local r = p.RoleName and self.roles[p.RoleName]
  if not r then return no_role(self, req, p.RoleName) end
  local doc = p.PolicyName and r.inline[p.PolicyName]
  if not doc then
    return self:query_error(req, 404, "NoSuchEntity", ("The role policy with name %s cannot be found."):format(tostring(p.PolicyName)))
  end
  return self:query_ok(req, "GetRolePolicy", NS, { RoleName = r.RoleName, PolicyName = p.PolicyName,
    PolicyDocument = http.urlencode(doc) })
end

-- The credential report (CSV, base64 in the XML): one line per user and one for the root account.
local REPORT_COLUMNS = { "user", "arn", "user_creation_time", "password_enabled", "password_last_used",
  "password_last_changed", "password_next_rotation", "mfa_active", "access_key_1_active", "access_key_1_last_rotated",
  "access_key_1_last_used_date", "access_key_1_last_used_region", "access_key_1_last_used_service",
  "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date", "access_key_2_last_used_region",
  "access_key_2_last_used_service", "cert_1_active", "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated" }

local function report_csv(self)
  local lines = { table.concat(REPORT_COLUMNS, ",") }
  local function key_fields(k)
    if not k then return { "false", "N/A", "N/A", "N/A", "N/A" } end
    local lu = k.last_used
    return { tostring(k.status == "Active"), k.created, lu and lu.date or "N/A", lu and lu.region or "N/A", lu and lu.service or "N/A" }
  end
  local function line(f) lines[#lines + 1] = table.concat(f, ",") end
  local root = self.root
  local f = { "<root_account>", ("arn:aws:iam::%s:root"):format(self.account), root.created, "not_supported",
              root.password_last_used or "no_information", "not_supported", "not_supported", tostring(root.mfa) }
  for _, v in ipairs(key_fields(root.key)) do f[#f + 1] = v end
  for _, v in ipairs(key_fields(nil)) do f[#f + 1] = v end
  for _, v in ipairs { "false", "N/A", "false", "N/A" } do f[#f + 1] = v end
  line(f)
  for _, n in ipairs(self.user_order) do
    local u = self.users[n]
    f = { u.UserName, u.Arn, u.CreateDate, tostring(u.login ~= nil), u.PasswordLastUsed or (u.login and "no_information" or "N/A"),
          u.login and u.login.CreateDate or "N/A", "N/A", tostring(u.mfa ~= nil) }
    for i = 1, 2 do
      for _, v in ipairs(key_fields(u.keys[i] and self.keys[u.keys[i]])) do f[#f + 1] = v end
    end
    for _, v in ipairs { "false", "N/A", "false", "N/A" } do f[#f + 1] = v end
    line(f)
  end
  return table.concat(lines, "\n")
end

-- The first call starts the report (STARTED), the next ones find it COMPLETE.
function A.GenerateCredentialReport(self, req, p)
  local state = self.report_at and "COMPLETE" or "STARTED"
  self.report_at = self.report_at or self:wall_s()
  return self:query_ok(req, "GenerateCredentialReport", NS, { State = state,
    Description = state == "STARTED" and "No report exists. Starting a new report generation task" or nil })
end

function A.GetCredentialReport(self, req, p)
  if not self.report_at then
    return self:query_error(req, 410, "ReportNotPresent", "Credential report not present. Use GenerateCredentialReport to generate a report.")
  end
  return self:query_ok(req, "GetCredentialReport", NS, { Content = crypto.b64(report_csv(self)), ReportFormat = "text/csv",
    GeneratedTime = T.iso_s(self.report_at) })
end

-- governance writes ------------------------------------------------------------------------------

function A.UpdateAccessKey(self, req, p)
  if not can_write(self, req) then return deny(self, req, "UpdateAccessKey") end
  local k = p.AccessKeyId and self.keys[p.AccessKeyId]
  if not k or (p.UserName and k.user ~= p.UserName) then
    return self:query_error(req, 404, "NoSuchEntity", ("The Access Key with id %s cannot be found."):format(tostring(p.AccessKeyId)))
  end
  if p.Status ~= "Active" and p.Status ~= "Inactive" then
    return self:query_error(req, 400, "ValidationError", "Value at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]")
  end
  k.status = p.Status
  self:api_event(req, "UpdateAccessKey", { userName = k.user, accessKeyId = k.id, status = p.Status }, { ResourceType = "AWS::IAM::AccessKey", ResourceName = k.id })
  return self:query_ok(req, "UpdateAccessKey", NS, nil)
end

function A.DeleteAccessKey(self, req, p)
  if not can_write(self, req) then return deny(self, req, "DeleteAccessKey") end
  local k = p.AccessKeyId and self.keys[p.AccessKeyId]
  if not k or (p.UserName and k.user ~= p.UserName) then
    return self:query_error(req, 404, "NoSuchEntity", ("The Access Key with id %s cannot be found."):format(tostring(p.AccessKeyId)))
  end
  self.keys[k.id] = nil
  local u = self.users[k.user]
  for i, id in ipairs(u.keys) do if id == k.id then table.remove(u.keys, i) break end end
  self:api_event(req, "DeleteAccessKey", { userName = k.user, accessKeyId = k.id }, { ResourceType = "AWS::IAM::AccessKey", ResourceName = k.id })
  return self:query_ok(req, "DeleteAccessKey", NS, nil)
end

function A.DeleteLoginProfile(self, req, p)
  if not can_write(self, req) then return deny(self, req, "DeleteLoginProfile") end
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  if not u.login then
    return self:query_error(req, 404, "NoSuchEntity", ("Login Profile for User %s cannot be found."):format(u.UserName))
  end
  u.login = nil
  self:api_event(req, "DeleteLoginProfile", { userName = u.UserName }, { ResourceType = "AWS::IAM::User", ResourceName = u.UserName })
  return self:query_ok(req, "DeleteLoginProfile", NS, nil)
end

function A.UpdateLoginProfile(self, req, p)
  if not can_write(self, req) then return deny(self, req, "UpdateLoginProfile") end
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  if not u.login then
    return self:query_error(req, 404, "NoSuchEntity", ("Login Profile for User %s cannot be found."):format(u.UserName))
  end
  if p.PasswordResetRequired then u.login.PasswordResetRequired = p.PasswordResetRequired == "true" end
  self:api_event(req, "UpdateLoginProfile", { userName = u.UserName, passwordResetRequired = p.PasswordResetRequired == "true" }, { ResourceType = "AWS::IAM::User", ResourceName = u.UserName })
  return self:query_ok(req, "UpdateLoginProfile", NS, nil)
end

function A.PutUserPolicy(self, req, p)
  if not can_write(self, req) then return deny(self, req, "PutUserPolicy") end
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local doc = p.PolicyDocument and json.decode(p.PolicyDocument)
  if not p.PolicyName or type(doc) ~= "table" or not doc.Statement then
    return self:query_error(req, 400, "MalformedPolicyDocument", "Syntax errors in policy.")
  end
  u.inline[p.PolicyName] = p.PolicyDocument
  self:api_event(req, "PutUserPolicy", { userName = u.UserName, policyName = p.PolicyName, policyDocument = p.PolicyDocument }, { ResourceType = "AWS::IAM::User", ResourceName = u.UserName })
  return self:query_ok(req, "PutUserPolicy", NS, nil)
end

function A.DeleteUserPolicy(self, req, p)
  if not can_write(self, req) then return deny(self, req, "DeleteUserPolicy") end
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  if not (p.PolicyName and u.inline[p.PolicyName]) then
    return self:query_error(req, 404, "NoSuchEntity", ("The user policy with name %s cannot be found."):format(tostring(p.PolicyName)))
  end
  u.inline[p.PolicyName] = nil
  self:api_event(req, "DeleteUserPolicy", { userName = u.UserName, policyName = p.PolicyName }, { ResourceType = "AWS::IAM::User", ResourceName = u.UserName })
  return self:query_ok(req, "DeleteUserPolicy", NS, nil)
end

function A.DetachUserPolicy(self, req, p)
  if not can_write(self, req) then return deny(self, req, "DetachUserPolicy") end
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  for i, arn in ipairs(u.attached) do
    if arn == p.PolicyArn then
      table.remove(u.attached, i)
      self:api_event(req, "DetachUserPolicy", { userName = u.UserName, policyArn = arn }, { ResourceType = "AWS::IAM::User", ResourceName = u.UserName })
      return self:query_ok(req, "DetachUserPolicy", NS, nil)
    end
  end
  return self:query_error(req, 404, "NoSuchEntity", ("Policy %s was not found."):format(tostring(p.PolicyArn)))
end

function A.RemoveUserFromGroup(self, req, p)
  if not can_write(self, req) then return deny(self, req, "RemoveUserFromGroup") end
  local u = p.UserName and self.users[p.UserName]
  if not u then return no_user(self, req, tostring(p.UserName)) end
  local g = p.GroupName and self.groups[p.GroupName]
  if not g then return self:query_error(req, 404, "NoSuchEntity", ("The group with name %s cannot be found."):format(tostring(p.GroupName))) end
  for i, n in ipairs(u.groups) do if n == g.GroupName then table.remove(u.groups, i) break end end
  for i, n in ipairs(g.members) do if n == u.UserName then table.remove(g.members, i) break end end
  self:api_event(req, "RemoveUserFromGroup", { userName = u.UserName, groupName = g.GroupName }, { ResourceType = "AWS::IAM::Group", ResourceName = g.GroupName })
  return self:query_ok(req, "RemoveUserFromGroup", NS, nil)
end

return A
