-- sandbox_aws_spec.lua — the AWS sandbox account over real HTTP: every request's SigV4 checked, STS
-- AssumeRole with an external id, IAM listings with Marker paging, writes refused to the read-only user.
local aws = require "sandbox.aws"
local sigv4 = require "sdk.sigv4"
local X = require "sdk.xml"
local start = require("helpers").serve

local function call(srv, creds, service, params, o)
  o = o or {}
  local req = { method = "POST", url = srv.url .. "/", headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" },
                body = http.form(params) }
  sigv4.sign(req, creds, { service = service, region = "us-east-1", time = o.time })
  if o.tamper then req.body = req.body .. "&Extra=1" end
  local res = assert(http.request(req))
  return res, assert(X.decode(res.body))
end

local function iam(srv, creds, params, o)
  params.Version = "2010-05-08"
  return call(srv, creds, "iam", params, o)
end

local function sts(srv, creds, params, o)
  params.Version = "2011-06-15"
  return call(srv, creds, "sts", params, o)
end

describe("sandbox aws", function()
  local t, srv, audit
  before_each(function()
    t = aws.new { seed = 3, users = 23 }
    srv = start(t)
    audit = { access_key = t.audit_key.id, secret_key = t.audit_key.secret }
  end)
  after_each(function() srv:close() end)

  it("answers a correctly signed GetCallerIdentity", function()
    local res, root = sts(srv, audit, { Action = "GetCallerIdentity" })
    assert.equal(200, res.status)
    assert.equal(t.account, X.text(root, "GetCallerIdentityResult/Account"))
    assert.equal("arn:aws:iam::" .. t.account .. ":user/cachost-audit", X.text(root, "GetCallerIdentityResult/Arn"))
  end)

  it("refuses a wrong secret, a changed body, an unknown key and a skewed clock, in AWS's words", function()
    local res, root = sts(srv, { access_key = audit.access_key, secret_key = "wrong" }, { Action = "GetCallerIdentity" })
    assert.equal(403, res.status)
    assert.equal("SignatureDoesNotMatch", X.error(root).code)
    assert.equal("ErrorResponse", root.name)
    res, root = iam(srv, audit, { Action = "ListUsers" }, { tamper = true })
    assert.equal(403, res.status)
    assert.equal("SignatureDoesNotMatch", X.error(root).code)
    res, root = sts(srv, { access_key = "AKIAUNKNOWN000000000", secret_key = "x" }, { Action = "GetCallerIdentity" })
    assert.equal(403, res.status)
    assert.equal("InvalidClientTokenId", X.error(root).code)
    res, root = sts(srv, audit, { Action = "GetCallerIdentity" }, { time = sched.time() - 16 * 60 })
    assert.equal(403, res.status)
    assert.equal("RequestTimeTooSkewed", X.error(root).code)
    res = assert(http.request { method = "POST", url = srv.url .. "/", body = "Action=ListUsers&Version=2010-05-08",
                                headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    assert.equal(403, res.status)
    assert.equal("MissingAuthenticationToken", X.error(assert(X.decode(res.body))).code)
  end)

  it("assumes the role only with its external id, and accepts the session's keys only with its token", function()
    local res, root = sts(srv, audit, { Action = "AssumeRole", RoleArn = t.role.Arn, RoleSessionName = "cachost",
                                        ExternalId = "guess" })
    assert.equal(403, res.status)
    assert.equal("AccessDenied", X.error(root).code)
    res, root = sts(srv, audit, { Action = "AssumeRole", RoleArn = t.role.Arn, RoleSessionName = "cachost",
                                  ExternalId = t.role.external_id, DurationSeconds = "900" })
    assert.equal(200, res.status)
    local c = X.record(X.find(root, "AssumeRoleResult/Credentials"))
    assert.matches("^ASIA", c.AccessKeyId)
    local session = { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken }
    res, root = sts(srv, session, { Action = "GetCallerIdentity" })
    assert.equal(200, res.status)
    assert.equal(("arn:aws:sts::%s:assumed-role/CachostAudit/cachost"):format(t.account), X.text(root, "GetCallerIdentityResult/Arn"))
    res, root = sts(srv, { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey }, { Action = "GetCallerIdentity" })
    assert.equal(403, res.status)
    assert.equal("InvalidClientTokenId", X.error(root).code)
  end)

  it("pages ListUsers with Marker and MaxItems, and refuses a MaxItems out of range", function()
    local names, marker, pages = {}, nil, 0
    repeat
      local res, root = iam(srv, audit, { Action = "ListUsers", MaxItems = "5", Marker = marker })
      assert.equal(200, res.status)
      for _, m in ipairs(X.all(root, "ListUsersResult/Users", "member")) do names[#names + 1] = X.text(m, "UserName") end
      marker = X.text(root, "ListUsersResult/Marker")
      assert.equal(marker and "true" or "false", X.text(root, "ListUsersResult/IsTruncated"))
      pages = pages + 1
    until not marker
    assert.equal(t:count("users"), #names)
    assert.equal(math.ceil(#names / 5), pages)
    local res, root = iam(srv, audit, { Action = "ListUsers", MaxItems = "1001" })
    assert.equal(400, res.status)
    assert.equal("ValidationError", X.error(root).code)
  end)

  it("lets the assumed role deactivate a key but not the read-only user", function()
    local key = t.keys[t.users["ops-automation"].keys[1]]
    local res, root = iam(srv, audit, { Action = "UpdateAccessKey", UserName = "ops-automation", AccessKeyId = key.id,
                                        Status = "Inactive" })
    assert.equal(403, res.status)
    assert.equal("AccessDenied", X.error(root).code)
    assert.equal("Active", key.status)
    local _, r2 = sts(srv, audit, { Action = "AssumeRole", RoleArn = t.role.Arn, RoleSessionName = "cachost",
                                    ExternalId = t.role.external_id })
    local c = X.record(X.find(r2, "AssumeRoleResult/Credentials"))
    local role = { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken }
    res = iam(srv, role, { Action = "UpdateAccessKey", UserName = "ops-automation", AccessKeyId = key.id, Status = "Inactive" })
    assert.equal(200, res.status)
    local _, r3 = iam(srv, audit, { Action = "ListAccessKeys", UserName = "ops-automation" })
    assert.equal("Inactive", X.text(X.all(r3, "ListAccessKeysResult/AccessKeyMetadata", "member")[1], "Status"))
  end)

  it("throttles past the rate budget with the query protocol's Throttling", function()
    t:set_rate_limit(2, 60)
    for _ = 1, 2 do assert.equal(200, (iam(srv, audit, { Action = "ListGroups" })).status) end
    local res, root = iam(srv, audit, { Action = "ListGroups" })
    assert.equal(400, res.status)
    assert.equal("Throttling", X.error(root).code)
  end)
end)
