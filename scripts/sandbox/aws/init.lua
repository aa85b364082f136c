-- sandbox/aws — an AWS account emulator on loopback, following /work/shared/api/aws.md: STS and IAM (query
-- protocol, XML), CloudTrail LookupEvents (JSON 1.1), S3 (REST-XML, path-style), every request's Signature Version 4 verified
-- (SignatureDoesNotMatch, RequestTimeTooSkewed, InvalidClientTokenId), AWS's XML and JSON error bodies,
-- Throttling / ThrottlingException, Marker and NextToken paging.
--
--   local aws = require "sandbox.aws"
--   local t = aws.new{seed=1, users=20, external_id=...}
--   t:mount(srv)     -- every service on one port; the credential scope of the signature says which
--
-- One file per API surface: core.lua (the account, XML and error bodies), auth.lua (signatures, rate
-- budget, faults), sts.lua, iam.lua, cloudtrail.lua, s3.lua.
local C = require "sandbox.aws.core"
require "sandbox.aws.auth"
local T = require "sandbox.tenant"
local cloudtrail = require "sandbox.aws.cloudtrail"
local s3 = require "sandbox.aws.s3"
local organizations = require "sandbox.aws.organizations"

local QUERY = { sts = { actions = require "sandbox.aws.sts", version = "2011-06-15", ns = C.STS_NS },
                iam = { actions = require "sandbox.aws.iam", version = "2010-05-08", ns = C.IAM_NS },
                ec2 = { actions = require "sandbox.aws.ec2", version = "2016-11-15", ns = "http://ec2.amazonaws.com/doc/2016-11-15/" } }

-- The query protocol: Action and Version in the form body (POST) or the query string (GET); CloudTrail's
-- JSON protocol on the same path, told apart by the signature's credential scope.
local function query_protocol(self, req)
  if req.aws_service == "cloudtrail" then return cloudtrail.handle(self, req) end
  if req.path ~= "/" then return self:error(req, 404, "NotFound", "no such resource " .. req.path) end
  local svc = QUERY[req.aws_service]
  if not svc then
    return self:error(req, 400, "InvalidAction", ("service %s is not emulated here"):format(tostring(req.aws_service)))
  end
  local p = {}
  for k, v in pairs(req.query) do p[k] = v end
  if req.method == "POST" then
    local ct = req.headers["content-type"] or ""
    if not ct:match("^application/x%-www%-form%-urlencoded") then
      return self:error(req, 400, "InvalidParameterValue", "Content-Type must be application/x-www-form-urlencoded")
    end
    for k, v in pairs(T.parse_form(req.body)) do p[k] = v end
  end
  local fn = p.Action and svc.actions[p.Action]
  if not fn then
    return self:error(req, 400, "InvalidAction", ("Could not find operation %s for version %s")
      :format(tostring(p.Action), tostring(p.Version)), svc.ns)
  end
  if p.Version ~= svc.version then
    return self:error(req, 400, "InvalidAction", ("Could not find operation %s for version %s")
      :format(p.Action, tostring(p.Version)), svc.ns)
  end
  return fn(self, req, p)
end

-- Every service on one port: the signature's credential scope says which one a request is for.
local function dispatch(self, req)
  if req.aws_service == "s3" then return s3.handle(self, req) end
  if req.aws_service == "organizations" then return organizations.handle(self, req) end
  return query_protocol(self, req)
end
C.dispatch = dispatch

local ROUTES = {
  { "*", "/*", dispatch, {} },
}

function C.Aws:mount(srv, prefix)
  return self:mount_routes(srv, prefix, ROUTES)
end

-- The credential line of `cachost sandbox aws`.
function C.Aws:credential_line()
  return ("access_key_id=%s secret_access_key=%s role_arn=%s external_id=%s"):format(self.audit_key.id,
    self.audit_key.secret, self.role.Arn, self.role.external_id)
end

-- aws.new{seed=, users=, account=, external_id=, event_days=14, now=, frozen=, members=N}: members: the
-- account manages an organization of N member accounts (emulated too, each smaller), reached through
-- their OrganizationAccountAccessRole.
local function new(opts)
  opts = opts or {}
  local t = C.new(opts)
  t:seed_events(opts.event_days or 14)
  t:seed_buckets()
  t:seed_trail()
  local n = math.tointeger(opts.members or 0) or 0
  if n > 0 then
    local org = { id = "o-" .. T.b62(10, t.seed, "org"):lower(), management = t, accounts = { t }, by_account = {}, owner_of = {} }
    local function join(a, name, days_ago)
      a.org, a.org_name, a.org_email = org, name, ("aws+%s@example.com"):format(name)
      a.org_joined = math.floor(t:now_ms() / 1000) - days_ago * 86400
      org.by_account[a.account] = a
      if a ~= t then org.accounts[#org.accounts + 1] = a end
    end
    join(t, "acme-management", 900)
    for i = 1, n do
      local m = new { seed = t.seed * 100 + i, users = opts.member_users or 4, event_days = 2, now = opts.now, frozen = opts.frozen }
      m.roles.OrganizationAccountAccessRole.trust = json.encode { Version = "2012-10-17", Statement = { { Effect = "Allow",
        Principal = { AWS = ("arn:aws:iam::%s:root"):format(t.account) }, Action = "sts:AssumeRole" } } }
      join(m, ("acme-member-%d"):format(i), 300 - i)
    end
  end
  return t
end

return { new = new }
