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

-- The role's session credentials, assumed with the external id.
local function assume(srv, t, creds)
  local _, r = sts(srv, creds, { Action = "AssumeRole", RoleArn = t.role.Arn, RoleSessionName = "cachost",
                                 ExternalId = t.role.external_id })
  local c = X.record(X.find(r, "AssumeRoleResult/Credentials"))
  return { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken }
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
    local role = assume(srv, t, audit)
    res = iam(srv, role, { Action = "UpdateAccessKey", UserName = "ops-automation", AccessKeyId = key.id, Status = "Inactive" })
    assert.equal(200, res.status)
    local _, r3 = iam(srv, audit, { Action = "ListAccessKeys", UserName = "ops-automation" })
    assert.equal("Inactive", X.text(X.all(r3, "ListAccessKeysResult/AccessKeyMetadata", "member")[1], "Status"))
  end)

  it("generates the credential report, then serves it as base64 CSV with the root account's line", function()
    local res, root = iam(srv, audit, { Action = "GetCredentialReport" })
    assert.equal(410, res.status)
    assert.equal("ReportNotPresent", X.error(root).code)
    _, root = iam(srv, audit, { Action = "GenerateCredentialReport" })
    assert.equal("STARTED", X.text(root, "GenerateCredentialReportResult/State"))
    _, root = iam(srv, audit, { Action = "GenerateCredentialReport" })
    assert.equal("COMPLETE", X.text(root, "GenerateCredentialReportResult/State"))
    res, root = iam(srv, audit, { Action = "GetCredentialReport" })
    assert.equal(200, res.status)
    local csv = assert(crypto.unb64(X.text(root, "GetCredentialReportResult/Content")))
    local header, first = csv:match("^([^\n]+)\n([^\n]+)")
    assert.matches("^user,arn,user_creation_time,password_enabled,", header)
    assert.matches("^<root_account>,arn:aws:iam::" .. t.account .. ":root,", first)
    assert.equal(t:count("users") + 2, select(2, csv:gsub("\n", "")) + 1)
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
  local function lookup(body, creds, region)
    tick = tick + 1
    t.second = function() return tick end    -- each call in a second of its own: never throttled
    local req = { method = "POST", url = srv.url .. "/", body = json.encode(body),
                  headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = TARGET } }
    sigv4.sign(req, creds or audit, { service = "cloudtrail", region = region or "us-east-1" })
    local res = assert(http.request(req))
    return res, json.decode(res.body)
  end

  it("pages the console sign-ins newest first with NextToken, each region its own, each carrying its record", function()
    local seen = {}
    for _, region in ipairs { "us-east-1", "eu-west-1" } do
      local token, last, n = nil, math.huge, 0
      repeat
        local res, d = lookup({ LookupAttributes = { { AttributeKey = "EventName", AttributeValue = "ConsoleLogin" } },
                                MaxResults = 7, NextToken = token }, nil, region)
        assert.equal(200, res.status)
        assert.is_true(#d.Events <= 7)
        for _, e in ipairs(d.Events) do
          assert.is_true(e.EventTime <= last)
          last = e.EventTime
          local rec = assert(json.decode(e.CloudTrailEvent))
          assert.equal("ConsoleLogin", rec.eventName)
          assert.equal(region, rec.awsRegion)
          assert.matches("^[SF]", rec.responseElements.ConsoleLogin)
          seen[#seen + 1] = e.EventId
          n = n + 1
        end
        token = d.NextToken
      until not token
      assert.is_true(n > 0, region)
    end
    assert.equal(t:count("signins"), #seen)
    local res, d = lookup({}, nil, "ap-south-1")          -- an enabled region where nobody signed in
    assert.same({ 200, 0 }, { res.status, #d.Events })
  end)

  it("names the account's enabled regions (EC2 DescribeRegions); a region not enabled refuses the keys", function()
    local req = { method = "POST", url = srv.url .. "/", body = http.form { Action = "DescribeRegions", Version = "2016-11-15" },
                  headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" } }
    sigv4.sign(req, audit, { service = "ec2", region = "us-east-1" })
    local res = assert(http.request(req))
    assert.equal(200, res.status)
    local root = X.decode(res.body)
    local names, status = {}, {}
    for _, it in ipairs(X.all(root, "regionInfo", "item")) do
      names[#names + 1] = X.text(it, "regionName")
      status[X.text(it, "regionName")] = X.text(it, "optInStatus")
    end
    assert.equal(18, #names)                     -- the 17 that need no opt-in, and me-central-1 opted in
    assert.equal("opted-in", status["me-central-1"])
    assert.equal("opt-in-not-required", status["us-east-1"])
    assert.is_nil(status["af-south-1"])
    local res2, d = lookup({}, nil, "af-south-1")
    assert.equal(403, res2.status)
    assert.equal("UnrecognizedClientException", d.__type)
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
    local role = assume(srv, t, audit)
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

describe("sandbox aws S3", function()
  local t, srv, audit, role
  before_each(function()
    t = aws.new { seed = 6, users = 6 }
    srv = start(t)
    audit = { access_key = t.audit_key.id, secret_key = t.audit_key.secret }
    role = assume(srv, t, audit)
  end)
  after_each(function() srv:close() end)

  local function s3(creds, method, path, o)
    o = o or {}
    local req = { method = method, url = srv.url .. path, headers = o.headers or {}, body = o.body }
    sigv4.sign(req, creds, { service = "s3", region = o.region or "us-east-1", s3 = true, unsigned_payload = o.unsigned })
    if o.tamper then req.headers["X-Amz-Content-Sha256"] = sigv4.hex_sha256("other") end
    local res = assert(http.request(req))
    return res, res.body ~= "" and X.decode(res.body) or nil
  end

  it("lists buckets, and pages ListObjectsV2 with continuation tokens", function()
    local res, root = s3(audit, "GET", "/")
    assert.equal(200, res.status)
    local names = {}
    for _, b in ipairs(X.all(root, "Buckets", "Bucket")) do names[#names + 1] = X.text(b, "Name") end
    assert.same(t:truth().buckets, names)
    local keys, token = {}, nil
    repeat
      local q = "?list-type=2&max-keys=2" .. (token and ("&continuation-token=" .. http.urlencode(token)) or "")
      local r2, l = s3(audit, "GET", "/" .. names[#names] .. q)
      assert.equal(200, r2.status)
      for _, c in ipairs(X.all(l, "", "Contents")) do keys[#keys + 1] = X.text(c, "Key") end
      token = X.text(l, "NextContinuationToken")
      assert.equal(token and "true" or "false", X.text(l, "IsTruncated"))
    until not token
    local n = 0
    for _ in pairs(t.buckets[names[#names]].objects) do n = n + 1 end
    assert.is_true(n > 2)                                 -- the trail's log files: several pages
    assert.equal(n, #keys)
  end)

  it("answers a bucket in its own region only (301 PermanentRedirect elsewhere), GetBucketLocation in us-east-1", function()
    local res, root = s3(audit, "GET", "/acme-eu-exports?list-type=2")
    assert.equal(301, res.status)
    assert.equal("PermanentRedirect", X.error(root).code)
    assert.equal("eu-west-1", res.headers["x-amz-bucket-region"])
    assert.equal("s3.eu-west-1.amazonaws.com", X.text(root, "Endpoint"))
    res, root = s3(audit, "GET", "/acme-eu-exports?list-type=2", { region = "eu-west-1" })
    assert.equal(200, res.status)
    assert.equal(2, #X.all(root, "", "Contents"))
    res, root = s3(audit, "GET", "/acme-eu-exports?location")
    assert.equal(200, res.status)
    assert.same({ "LocationConstraint", "eu-west-1" }, { root.name, root.text })
    res, root = s3(audit, "GET", "/acme-data?location")
    assert.equal("", root.text)                      -- us-east-1 has an empty LocationConstraint
    res = s3(audit, "GET", "/acme-data?location", { region = "eu-west-1" })
    assert.equal(301, res.status)
    res = s3(audit, "GET", "/", { region = "eu-west-1" })          -- ListBuckets answers in every region
    assert.equal(200, res.status)
  end)

  it("serves the account's Block Public Access (S3 Control) to the account only", function()
    local path = "/v20180820/configuration/publicAccessBlock"
    local res, root = s3(audit, "GET", path, { headers = { ["x-amz-account-id"] = t.account } })
    assert.equal(404, res.status)
    assert.equal("NoSuchPublicAccessBlockConfiguration", X.error(root).code)
    t.account_bpa = { BlockPublicAcls = true, IgnorePublicAcls = true }
    res, root = s3(audit, "GET", path, { headers = { ["x-amz-account-id"] = t.account } })
    assert.equal(200, res.status)
    assert.same({ "true", "true", "false" }, { X.text(root, "BlockPublicAcls"), X.text(root, "IgnorePublicAcls"),
      X.text(root, "RestrictPublicBuckets") })
    assert.is_false(t:is_public("acme-data", "backup/credentials.csv"))     -- ignored, whatever the object's ACL
    res = s3(audit, "GET", path, { headers = { ["x-amz-account-id"] = "000000000000" } })
    assert.equal(403, res.status)
  end)

  it("takes a chunked upload only with every chunk's signature right, and the length it announced", function()
    local data = ("x"):rep(70000)
    local function put(tamper)
      local req = { method = "PUT", url = srv.url .. "/acme-data/big.bin", headers = {}, body = data }
      sigv4.sign(req, role, { service = "s3", region = "us-east-1", s3 = true, chunk_size = 65536 })
      if tamper then req.body = tamper(req) end
      local res = assert(http.request(req))
      return res, res.body ~= "" and X.decode(res.body) or nil
    end
    local res = put()
    assert.equal(200, res.status)
    assert.equal(data, t.buckets["acme-data"].objects["big.bin"].body)
    local r2, e2 = put(function(req) return (req.body:gsub("xxxx\r\n", "xxxy\r\n", 1)) end)
    assert.equal(403, r2.status)
    assert.equal("SignatureDoesNotMatch", X.error(e2).code)
    local r3, e3 = put(function(req) req.headers["X-Amz-Decoded-Content-Length"] = "69999"; return req.body end)
    assert.equal(403, r3.status)                     -- a signed header changed: the seed signature no longer holds
    assert.equal("SignatureDoesNotMatch", X.error(e3).code)
  end)

  it("checks the payload hash and the path as sent, in S3's words", function()
    local res, root = s3(audit, "GET", "/", { tamper = true })
    assert.equal(400, res.status)
    assert.equal("XAmzContentSHA256Mismatch", X.error(root).code)
    res, root = s3({ access_key = audit.access_key, secret_key = "nope" }, "GET", "/acme-data?acl")
    assert.equal(403, res.status)
    assert.equal("SignatureDoesNotMatch", X.error(root).code)
    assert.equal("Error", root.name)
    res, root = s3({ access_key = "AKIANOBODY0000000000", secret_key = "x" }, "GET", "/")
    assert.equal("InvalidAccessKeyId", X.error(root).code)
    res, root = s3(audit, "GET", "/nope?list-type=2")
    assert.equal(404, res.status)
    assert.equal("NoSuchBucket", X.error(root).code)
  end)

  it("makes a public object private, and refuses public ACLs once Block Public Access is on", function()
    local path = "/acme-data/backup/credentials.csv"
    local _, acl = s3(audit, "GET", path .. "?acl")
    local uris = {}
    for _, g in ipairs(X.all(acl, "AccessControlList", "Grant")) do uris[#uris + 1] = X.text(g, "Grantee/URI") end
    assert.truthy(table.concat(uris, " "):find("AllUsers", 1, true))
    local res = s3(audit, "PUT", path .. "?acl", { headers = { ["x-amz-acl"] = "private" } })
    assert.equal(403, res.status)                    -- the read-only user may not
    res = s3(role, "PUT", path .. "?acl", { headers = { ["x-amz-acl"] = "private" } })
    assert.equal(200, res.status)
    assert.is_false(t:is_public("acme-data", "backup/credentials.csv"))
    local body = '<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><BlockPublicAcls>true</BlockPublicAcls>'
      .. '<IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>'
    local r2, e2 = s3(role, "PUT", "/acme-data?publicAccessBlock", { body = body })
    assert.equal(400, r2.status)                     -- no checksum
    assert.equal("InvalidRequest", X.error(e2).code)
    r2 = s3(role, "PUT", "/acme-data?publicAccessBlock", { body = body,
      headers = { ["x-amz-checksum-sha256"] = crypto.b64(crypto.sha256(body)) } })
    assert.equal(200, r2.status)
    local r3, e3 = s3(role, "PUT", path .. "?acl", { headers = { ["x-amz-acl"] = "public-read" } })
    assert.equal(403, r3.status)
    assert.equal("AccessDenied", X.error(e3).code)
    local _, cfg = s3(audit, "GET", "/acme-data?publicAccessBlock")
    assert.equal("true", X.text(cfg, "BlockPublicAcls"))
  end)

  it("copies an object with server-side encryption and deletes the original (a quarantine)", function()
    local res = s3(role, "PUT", "/cachost-" .. t.account .. "-logs/quarantine/q1.csv",
      { headers = { ["x-amz-copy-source"] = "/acme-data/reports/q1.csv", ["x-amz-server-side-encryption"] = "AES256" }, unsigned = true })
    assert.equal(200, res.status)
    res = s3(role, "DELETE", "/acme-data/reports/q1.csv")
    assert.equal(204, res.status)
    local r2, e2 = s3(audit, "GET", "/acme-data/reports/q1.csv")
    assert.equal(404, r2.status)
    assert.equal("NoSuchKey", X.error(e2).code)
    local r3 = s3(audit, "GET", "/cachost-" .. t.account .. "-logs/quarantine/q1.csv")
    assert.equal("region,revenue\nemea,100\n", r3.body)
    assert.equal("AES256", r3.headers["x-amz-server-side-encryption"])
  end)
end)

describe("sandbox aws Organizations", function()
  local TARGET = "AWSOrganizationsV20161128.ListAccounts"
  local t, srv, audit
  before_each(function()
    t = aws.new { seed = 8, users = 4, members = 3 }
    srv = start(t)
    audit = { access_key = t.audit_key.id, secret_key = t.audit_key.secret }
  end)
  after_each(function() srv:close() end)

  local function list(creds, body)
    local req = { method = "POST", url = srv.url .. "/", body = json.encode(body or {}),
                  headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = TARGET } }
    sigv4.sign(req, creds, { service = "organizations", region = "us-east-1" })
    local res = assert(http.request(req))
    return res, json.decode(res.body)
  end

  it("lists the organization's accounts to the management account, 20 a page at most, and lets it into each member", function()
    local ids, token = {}, nil
    repeat
      local res, d = list(audit, { MaxResults = 2, NextToken = token })
      assert.equal(200, res.status)
      for _, a in ipairs(d.Accounts) do ids[#ids + 1] = a.Id; assert.equal("ACTIVE", a.Status) end
      token = d.NextToken
    until not token
    assert.equal(4, #ids)
    assert.equal(t.account, ids[1])
    local res, d = list(audit, { MaxResults = 21 })
    assert.same({ 400, "InvalidInputException" }, { res.status, d.__type })
    -- the member's OrganizationAccountAccessRole trusts the management account: its session is that account's
    local _, root = sts(srv, audit, { Action = "AssumeRole", RoleArn = ("arn:aws:iam::%s:role/OrganizationAccountAccessRole"):format(ids[2]),
                                      RoleSessionName = "cachost" })
    local c = X.record(X.find(root, "AssumeRoleResult/Credentials"))
    local member = { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken }
    local r2, who = sts(srv, member, { Action = "GetCallerIdentity" })
    assert.equal(200, r2.status)
    assert.equal(ids[2], X.text(who, "GetCallerIdentityResult/Account"))
    local r3, users = iam(srv, member, { Action = "ListUsers" })
    assert.equal(200, r3.status)
    assert.equal(#t.org.by_account[ids[2]].user_order, #X.all(users, "ListUsersResult/Users", "member"))
    -- and a member account may not list the organization
    local r4, e = list(member)
    assert.same({ 400, "AccessDeniedException" }, { r4.status, e.__type })
    -- nor may a role of another account be assumed that does not trust this one
    local r5 = sts(srv, audit, { Action = "AssumeRole", RoleArn = ("arn:aws:iam::%s:role/ci-deploy"):format(ids[2]),
                                 RoleSessionName = "cachost" })
    assert.equal(403, r5.status)
  end)

  it("says an account outside any organization is not in one", function()
    local lone = aws.new { seed = 9, users = 2 }
    local s2 = start(lone)
    local req = { method = "POST", url = s2.url .. "/", body = "{}",
                  headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = TARGET } }
    sigv4.sign(req, { access_key = lone.audit_key.id, secret_key = lone.audit_key.secret }, { service = "organizations", region = "us-east-1" })
    local res = assert(http.request(req))
    s2:close()
    assert.equal("AWSOrganizationsNotInUseException", json.decode(res.body).__type)
  end)
end)
