-- sandbox/aws/s3.lua — S3 (REST-XML, path-style /bucket/key; the signature's path is the path as sent):
-- ListBuckets, GetBucketLocation, GetBucketAcl, GetBucketPolicyStatus, Get/PutPublicAccessBlock (a request
-- checksum required), ListObjectsV2 (max-keys <= 1000, continuation-token), GetObject, PutObject,
-- CopyObject (x-amz-copy-source, server-side encryption), DeleteObject, Get/PutObjectAcl (canned x-amz-acl;
-- a public ACL refused under BlockPublicAcls), S3's <Error> bodies and 503 SlowDown.
-- Buckets live in regions: every service answers at one address here, so the region a request was sent
-- to is the one it is signed for (clients sign for the endpoint they call).  A bucket asked in another
-- region answers 301 PermanentRedirect with x-amz-bucket-region, as S3's path-style regional endpoints do;
-- GetBucketLocation is answered in us-east-1 for every bucket, and elsewhere for the region's own.
local C = require "sandbox.aws.core"
local T = require "sandbox.tenant"
local X = require "sdk.xml"

local S3 = {}
local NS = "http://s3.amazonaws.com/doc/2006-03-01/"
C.ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
C.AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
local XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
local CANNED = { private = true, ["public-read"] = true, ["public-read-write"] = true, ["authenticated-read"] = true,
                 ["bucket-owner-read"] = true, ["bucket-owner-full-control"] = true, ["aws-exec-read"] = true }
local BPA = { "BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets" }

local esc = C.esc
-- a path segment or header, percent-decoded ("+" is itself in a path)
local function decode(s) return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end

-- canned ACL -> grants (beyond the owner's FULL_CONTROL)
local function canned_grants(acl)
  if acl == "public-read" then return { { uri = C.ALL_USERS, perm = "READ" } } end
  if acl == "public-read-write" then return { { uri = C.ALL_USERS, perm = "READ" }, { uri = C.ALL_USERS, perm = "WRITE" } } end
  if acl == "authenticated-read" then return { { uri = C.AUTH_USERS, perm = "READ" } } end
  return {}
end

function C.Aws:add_bucket(name, o)
  o = o or {}
  self.buckets = self.buckets or {}
  self.bucket_order = self.bucket_order or {}
  local b = { name = name, region = o.region or "us-east-1", created = T.iso_s(math.floor(self:now_ms() / 1000) - 300 * 86400),
              grants = canned_grants(o.acl), objects = {}, bpa = o.bpa }
  self.buckets[name] = b
  self.bucket_order[#self.bucket_order + 1] = name
  table.sort(self.bucket_order)
  return b
end

function C.Aws:put_object(bucket, key, body, o)
  o = o or {}
  local b = self.buckets[bucket]
  b.objects[key] = { key = key, body = body, etag = '"' .. crypto.hex(crypto.sha256(body)):sub(1, 32) .. '"',
                     modified = T.iso_s(math.floor(self:now_ms() / 1000)), grants = canned_grants(o.acl), sse = o.sse }
  return b.objects[key]
end

-- Whether anyone may read: an AllUsers/AuthenticatedUsers grant that Block Public Access does not ignore.
function C.Aws:is_public(bucket, key)
  local b = self.buckets[bucket]
  if b.bpa and b.bpa.IgnorePublicAcls then return false end
  if self.account_bpa and self.account_bpa.IgnorePublicAcls then return false end
  local grants = key and b.objects[key].grants or b.grants
  for _, g in ipairs(grants) do
    if g.uri == C.ALL_USERS or g.uri == C.AUTH_USERS then return true end
  end
  return false
end

-- The generated buckets: logs (private), a public website bucket, and a data bucket holding a key file
-- someone made public.
function C.Aws:seed_buckets()
  self.owner_id = T.hexs(64, self.seed, "canonical")
  -- the trail's bucket (see cloudtrail.lua: seed_trail)
  self.trail_bucket = "cachost-" .. self.account .. "-logs"
  self:add_bucket(self.trail_bucket, { bpa = { BlockPublicAcls = true, IgnorePublicAcls = true, BlockPublicPolicy = true,
    RestrictPublicBuckets = true } })
  self:add_bucket("acme-public-site", { acl = "public-read" })
  self:put_object("acme-public-site", "index.html", "<html><body>Acme</body></html>", { acl = "public-read" })
  self:add_bucket("acme-data")
  self:put_object("acme-data", "reports/q1.csv", "region,revenue\nemea,100\n")
  local key = self.keys[self.users["ops-automation"].keys[1]]
  self:put_object("acme-data", "backup/credentials.csv",
    ("User name,Access key ID,Secret access key\nops-automation,%s,%s\n"):format(key.id, key.secret), { acl = "public-read" })
  -- a bucket in another region, with an export someone shared publicly
  self:add_bucket("acme-eu-exports", { region = "eu-west-1" })
  self:put_object("acme-eu-exports", "exports/2025-01.csv", "order,amount\n1001,20\n")
  self:put_object("acme-eu-exports", "share/cards.csv", "name,card\nJane Roe,4111 1111 1111 1111\n", { acl = "public-read" })
end

local function xml_ok(body, status, hdr)
  hdr = hdr or {}
  hdr["Content-Type"] = "application/xml"
  return status or 200, '<?xml version="1.0" encoding="UTF-8"?>\n' .. body, hdr
end

local function grants_xml(self, grants)
  local out = { ('<Grant><Grantee %s xsi:type="CanonicalUser"><ID>%s</ID><DisplayName>owner</DisplayName></Grantee>'
    .. '<Permission>FULL_CONTROL</Permission></Grant>'):format(XSI, self.owner_id) }
  for _, g in ipairs(grants) do
    out[#out + 1] = ('<Grant><Grantee %s xsi:type="Group"><URI>%s</URI></Grantee><Permission>%s</Permission></Grant>')
      :format(XSI, g.uri, g.perm)
  end
  return ('<AccessControlPolicy xmlns="%s"><Owner><ID>%s</ID><DisplayName>owner</DisplayName></Owner>'
    .. '<AccessControlList>%s</AccessControlList></AccessControlPolicy>'):format(NS, self.owner_id, table.concat(out))
end

local function can_write(self, req)
  if req.caller.session then return true end
  for _, g in ipairs(self.users[req.caller.user].groups) do if g == "Admins" then return true end end
  return false
end

local function denied(self, req) return self:s3_error(req, 403, "AccessDenied", "Access Denied") end

local function list_buckets(self, req)
  local out = {}
  for _, n in ipairs(self.bucket_order) do
    out[#out + 1] = ("<Bucket><Name>%s</Name><CreationDate>%s</CreationDate></Bucket>"):format(esc(n), self.buckets[n].created)
  end
  return xml_ok(('<ListAllMyBucketsResult xmlns="%s"><Owner><ID>%s</ID><DisplayName>owner</DisplayName></Owner>'
    .. '<Buckets>%s</Buckets></ListAllMyBucketsResult>'):format(NS, self.owner_id, table.concat(out)))
end

local function list_objects(self, req, b)
  local q = req.query
  local max = math.tointeger(tonumber(q["max-keys"] or "1000"))
  if not max or max < 0 then return self:s3_error(req, 400, "InvalidArgument", "Provided max-keys not an integer or within integer range") end
  max = math.min(max, 1000)
  local prefix = q.prefix or ""
  local after = q["start-after"] or ""
  if q["continuation-token"] then
    after = crypto.unb64(q["continuation-token"])
    if not after then return self:s3_error(req, 400, "InvalidArgument", "The continuation token provided is incorrect") end
  end
  local keys = {}
  for k in pairs(b.objects) do
    if k:sub(1, #prefix) == prefix and k > after then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local out = {}
  for i = 1, math.min(max, #keys) do
    local o = b.objects[keys[i]]
    out[#out + 1] = ("<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>%s</ETag><Size>%d</Size>"
      .. "<StorageClass>STANDARD</StorageClass></Contents>"):format(esc(o.key), o.modified, esc(o.etag), #o.body)
  end
  local truncated = #keys > max
  local extra = ""
  if q["continuation-token"] then extra = extra .. "<ContinuationToken>" .. esc(q["continuation-token"]) .. "</ContinuationToken>" end
  if truncated and max > 0 then extra = extra .. "<NextContinuationToken>" .. crypto.b64(keys[max]) .. "</NextContinuationToken>" end
  return xml_ok(('<ListBucketResult xmlns="%s"><Name>%s</Name><Prefix>%s</Prefix><KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys>'
    .. '<IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>'):format(NS, esc(b.name), esc(prefix), #out, max,
    tostring(truncated), extra, table.concat(out)))
end

local function put_bpa(self, req, b)
  if not can_write(self, req) then return denied(self, req) end
  -- PutPublicAccessBlock requires a checksum of its body: Content-MD5 or x-amz-checksum-*
  local sum = req.headers["x-amz-checksum-sha256"]
  if not sum and not req.headers["content-md5"] then
    return self:s3_error(req, 400, "InvalidRequest", "Missing required header for this request: Content-MD5")
  end
  if sum and sum ~= crypto.b64(crypto.sha256(req.body)) then
    return self:s3_error(req, 400, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")
  end
  local root = X.decode(req.body)
  if not root or root.name ~= "PublicAccessBlockConfiguration" then
    return self:s3_error(req, 400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
  end
  local cfg = {}
  for _, k in ipairs(BPA) do cfg[k] = X.text(root, k) == "true" end
  b.bpa = cfg
  return 200, "", {}
end

local function bucket_op(self, req, b)
  local q, m = req.query, req.method
  if q.location and m == "GET" then
    return xml_ok(('<LocationConstraint xmlns="%s">%s</LocationConstraint>'):format(NS, b.region == "us-east-1" and "" or b.region))
  elseif q.acl and m == "GET" then
    return xml_ok(grants_xml(self, b.grants))
  elseif q.policyStatus and m == "GET" then
    return self:s3_error(req, 404, "NoSuchBucketPolicy", "The bucket policy does not exist", { BucketName = b.name })
  elseif q.publicAccessBlock and m == "GET" then
    if not b.bpa then
      return self:s3_error(req, 404, "NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found",
        { BucketName = b.name })
    end
    local out = {}
    for _, k in ipairs(BPA) do out[#out + 1] = ("<%s>%s</%s>"):format(k, tostring(b.bpa[k] == true), k) end
    return xml_ok(('<PublicAccessBlockConfiguration xmlns="%s">%s</PublicAccessBlockConfiguration>'):format(NS, table.concat(out)))
  elseif q.publicAccessBlock and m == "PUT" then
    return put_bpa(self, req, b)
  elseif m == "GET" and q["list-type"] == "2" then
    return list_objects(self, req, b)
  elseif m == "GET" or m == "HEAD" then
    return self:s3_error(req, 400, "InvalidRequest", "This emulator serves ListObjectsV2 (list-type=2) only")
  end
  return self:s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
end

local function object_op(self, req, b, key)
  local q, m = req.query, req.method
  local o = b.objects[key]
  if q.acl then
    if not o then return self:s3_error(req, 404, "NoSuchKey", "The specified key does not exist.", { Key = key }) end
    if m == "GET" then return xml_ok(grants_xml(self, o.grants)) end
    if m ~= "PUT" then return self:s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.") end
    if not can_write(self, req) then return denied(self, req) end
    local acl = req.headers["x-amz-acl"]
    if not CANNED[acl or ""] then return self:s3_error(req, 400, "InvalidArgument", "Invalid canned ACL " .. tostring(acl)) end
    local grants = canned_grants(acl)
    if #grants > 0 and b.bpa and b.bpa.BlockPublicAcls then return denied(self, req) end
    o.grants = grants
    return 200, "", {}
  end
  if m == "GET" or m == "HEAD" then
    if not o then return self:s3_error(req, 404, "NoSuchKey", "The specified key does not exist.", { Key = key }) end
    return 200, m == "GET" and o.body or "", { ["Content-Type"] = "binary/octet-stream", ETag = o.etag,
      ["Last-Modified"] = o.modified, ["x-amz-server-side-encryption"] = o.sse }
  elseif m == "PUT" then
    if not can_write(self, req) then return denied(self, req) end
    local acl = req.headers["x-amz-acl"]
    if acl and #canned_grants(acl) > 0 and b.bpa and b.bpa.BlockPublicAcls then return denied(self, req) end
    local src = req.headers["x-amz-copy-source"]
    local body = req.body
    if src then
      local sb, sk = decode(src):match("^/?([^/]+)/(.+)$")
      local so = sb and self.buckets[sb] and self.buckets[sb].objects[sk]
      if not so then return self:s3_error(req, 404, "NoSuchKey", "The specified key does not exist.", { Key = tostring(sk) }) end
      body = so.body
    end
    local obj = self:put_object(b.name, key, body, { acl = acl, sse = req.headers["x-amz-server-side-encryption"] })
    if src then
      return xml_ok(('<CopyObjectResult><LastModified>%s</LastModified><ETag>%s</ETag></CopyObjectResult>'):format(obj.modified, esc(obj.etag)))
    end
    return 200, "", { ETag = obj.etag }
  elseif m == "DELETE" then
    if not can_write(self, req) then return denied(self, req) end
    b.objects[key] = nil
    return 204, "", {}
  end
  return self:s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
end

-- S3 Control's account-level Block Public Access (GET /v20180820/configuration/publicAccessBlock with the
-- x-amz-account-id header; the account's own s3-control endpoint): 404 NoSuchPublicAccessBlockConfiguration
-- when none is set.
local function account_bpa(self, req)
  if req.method ~= "GET" then return self:s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.") end
  if req.headers["x-amz-account-id"] ~= self.account then
    return self:s3_error(req, 403, "AccessDenied", "Access Denied")
  end
  if not self.account_bpa then
    return self:s3_error(req, 404, "NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found",
      { AccountId = self.account })
  end
  local out = {}
  for _, k in ipairs(BPA) do out[#out + 1] = ("<%s>%s</%s>"):format(k, tostring(self.account_bpa[k] == true), k) end
  return xml_ok(('<PublicAccessBlockConfiguration xmlns="%s">%s</PublicAccessBlockConfiguration>'):format(NS, table.concat(out)))
end

-- Any request whose credential scope names s3: / lists the buckets, /bucket and /bucket/key the rest.
function S3.handle(self, req)
  if req.path == "/v20180820/configuration/publicAccessBlock" then return account_bpa(self, req) end
  if req.path == "/" then
    if req.method ~= "GET" then return self:s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.") end
    return list_buckets(self, req)
  end
  local name, key = req.path:match("^/([^/]+)/?(.*)$")
  local b = name and self.buckets[decode(name)]
  if not b then return self:s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", { BucketName = name }) end
  local location = key == "" and req.query.location and req.method == "GET"
  if b.region ~= req.aws_region and not (location and req.aws_region == "us-east-1") then
    local st, body, hdr = self:s3_error(req, 301, "PermanentRedirect", "The bucket you are attempting to access must be "
      .. "addressed using the specified endpoint. Please send all future requests to this endpoint.",
      { Bucket = b.name, Endpoint = ("s3.%s.amazonaws.com"):format(b.region) })
    hdr["x-amz-bucket-region"] = b.region
    return st, body, hdr
  end
  if location and self.location_denied then return denied(self, req) end
  if key == "" then return bucket_op(self, req, b) end
  return object_op(self, req, b, decode(key))
end

return S3
