-- sandbox/aws/sts.lua — STS (query protocol, Version 2011-06-15): GetCallerIdentity and AssumeRole with an
-- external id, issuing temporary credentials (ASIA... key, secret, session token, expiry) that the
-- signature check then accepts until they expire.
local C = require "sandbox.aws.core"
local T = require "sandbox.tenant"

local A = {}

function A.GetCallerIdentity(self, req, p)
  local c = req.caller
  if c.session then
    return self:query_ok(req, "GetCallerIdentity", C.STS_NS, { UserId = c.session.role.RoleId .. ":" .. c.session.name,
      Account = self.account, Arn = c.session.arn })
  end
  local u = self.users[c.user]
  return self:query_ok(req, "GetCallerIdentity", C.STS_NS, { UserId = u.UserId, Account = self.account, Arn = u.Arn })
end

function A.AssumeRole(self, req, p)
  if not p.RoleArn or not p.RoleSessionName then
    return self:query_error(req, 400, "ValidationError", "RoleArn and RoleSessionName are required", C.STS_NS)
  end
  if not p.RoleSessionName:match("^[%w+=,.@%-]+$") or #p.RoleSessionName < 2 or #p.RoleSessionName > 64 then
    return self:query_error(req, 400, "ValidationError", "1 validation error detected: Value at 'roleSessionName' "
      .. "failed to satisfy constraint", C.STS_NS)
  end
  local dur = math.tointeger(tonumber(p.DurationSeconds or "3600"))
  if not dur or dur < 900 or dur > 43200 then
    return self:query_error(req, 400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", C.STS_NS)
  end
  -- whose role: this account's audit role, whose trust policy wants one of this account's users and the
  -- external id; or, in an organization, a member account's OrganizationAccountAccessRole, which trusts the
  -- management account
  local acct, name = tostring(p.RoleArn):match("^arn:aws:iam::(%d+):role/(.+)$")
  local owner = acct == self.account and self or (self.org and self.org.by_account[acct])
  local role = owner and owner.roles[name or ""]
  local trusted
  if owner == self then
    trusted = role == self.role and req.caller.user ~= nil and p.ExternalId == role.external_id
  else
    trusted = role ~= nil and name == "OrganizationAccountAccessRole" and self.org.management == self and req.caller.user ~= nil
  end
  if not trusted then
    local who = req.caller.user and self.users[req.caller.user].Arn or "unknown"
    return self:query_error(req, 403, "AccessDenied", ("User: %s is not authorized to perform: sts:AssumeRole on resource: %s")
      :format(who, p.RoleArn), C.STS_NS)
  end
  self.session_seq = (self.session_seq or 0) + 1
  local id = "ASIA" .. T.b62(16, self.seed, "session", self.session_seq):upper():gsub("[^A-Z0-9]", "7")
  local expires = self:wall_s() + dur
  local s = { secret = T.b62(40, self.seed, "ssecret", self.session_seq), name = p.RoleSessionName,
              token = "FwoGZXIvYXdzE" .. T.b62(200, self.seed, "token", self.session_seq), expires = expires, role = role,
              arn = ("arn:aws:sts::%s:assumed-role/%s/%s"):format(owner.account, role.RoleName, p.RoleSessionName) }
  owner.sessions[id] = s
  if owner ~= self then self.org.owner_of[id] = owner end      -- its requests are that account's
  return self:query_ok(req, "AssumeRole", C.STS_NS, {
    Credentials = { AccessKeyId = id, SecretAccessKey = s.secret, SessionToken = s.token, Expiration = T.iso_s(expires) },
    AssumedRoleUser = { AssumedRoleId = role.RoleId .. ":" .. p.RoleSessionName, Arn = s.arn } })
end

return A
