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
  return query_protocol(self, req)
end

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

-- aws.new{seed=, users=, account=, external_id=, event_days=14, now=, frozen=}
local function new(opts)
  local t = C.new(opts)
  t:seed_events((opts or {}).event_days or 14)
  t:seed_buckets()
  t:seed_trail()
  return t
end

return { new = new }
