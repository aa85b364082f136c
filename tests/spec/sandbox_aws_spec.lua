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

describe("sandbox aws CloudTrail LookupEvents", function()
  local TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
  local t, srv, audit
  before_each(function()
    t = aws.new { seed = 4, users = 12 }
    srv = start(t)
    audit = { access_key = t.audit_key.id, secret_key = t.audit_key.secret }
  end)
  after_each(function() srv:close() end)

  local tick = 1
  local function lookup(body, creds)
    tick = tick + 1
    t.second = function() return tick end    -- each call in a second of its own: never throttled
    local req = { method = "POST", url = srv.url .. "/", body = json.encode(body),
                  headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = TARGET } }
    sigv4.sign(req, creds or audit, { service = "cloudtrail", region = "us-east-1" })
    local res = assert(http.request(req))
    return res, json.decode(res.body)
  end

  it("pages the console sign-ins newest first with NextToken, each carrying its CloudTrail record", function()
    local seen, token, last = {}, nil, math.huge
    repeat
      local res, d = lookup { LookupAttributes = { { AttributeKey = "EventName", AttributeValue = "ConsoleLogin" } },
                              MaxResults = 7, NextToken = token }
      assert.equal(200, res.status)
      assert.is_true(#d.Events <= 7)
      for _, e in ipairs(d.Events) do
        assert.is_true(e.EventTime <= last)
        last = e.EventTime
        local rec = assert(json.decode(e.CloudTrailEvent))
        assert.equal("ConsoleLogin", rec.eventName)
        assert.matches("^[SF]", rec.responseElements.ConsoleLogin)
        seen[#seen + 1] = e.EventId
      end
      token = d.NextToken
    until not token
    assert.equal(t:count("signins"), #seen)
  end)

  it("refuses two attributes, MaxResults over 50, a reversed range and a foreign NextToken", function()
    local two = { { AttributeKey = "EventName", AttributeValue = "ConsoleLogin" }, { AttributeKey = "Username", AttributeValue = "alice" } }
    for _, case in ipairs {
      { { LookupAttributes = two }, "InvalidLookupAttributesException" },
      { { MaxResults = 51 }, "InvalidMaxResultsException" },
      { { StartTime = 2000000000, EndTime = 1000000000 }, "InvalidTimeRangeException" },
      { { NextToken = crypto.b64("0000000000000000:5") }, "InvalidNextTokenException" },
    } do
      local res, d = lookup(case[1])
      assert.equal(400, res.status)
      assert.equal(case[2], d.__type)
      assert.equal(case[2], res.headers["x-amzn-errortype"])
    end
  end)

  it("allows 2 requests a second, then ThrottlingException", function()
    local results = {}
    for i = 1, 3 do
      local req = { method = "POST", url = srv.url .. "/", body = "{}",
                    headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = TARGET } }
      sigv4.sign(req, audit, { service = "cloudtrail", region = "us-east-1" })
      t.second = function() return 99 end
      results[i] = assert(http.request(req))
    end
    assert.equal(200, results[2].status)
    assert.equal(400, results[3].status)
    assert.equal("ThrottlingException", json.decode(results[3].body).__type)
  end)

  it("records the IAM calls made on the account", function()
    local key = t.keys[t.users["ops-automation"].keys[1]]
    local _, r = sts(srv, audit, { Action = "AssumeRole", RoleArn = t.role.Arn, RoleSessionName = "cachost",
                                   ExternalId = t.role.external_id })
    local c = X.record(X.find(r, "AssumeRoleResult/Credentials"))
    local role = { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken }
    assert.equal(200, (iam(srv, role, { Action = "UpdateAccessKey", UserName = "ops-automation", AccessKeyId = key.id,
                                        Status = "Inactive" })).status)
    local res, d = lookup { LookupAttributes = { { AttributeKey = "EventName", AttributeValue = "UpdateAccessKey" } } }
    assert.equal(200, res.status)
    assert.equal(1, #d.Events)
    assert.equal(key.id, d.Events[1].Resources[1].ResourceName)
    local rec = json.decode(d.Events[1].CloudTrailEvent)
    assert.equal("AssumedRole", rec.userIdentity.type)
    assert.equal("Inactive", rec.requestParameters.status)
  end)
end)
