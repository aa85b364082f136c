-- sandbox/aws/auth.lua — every request's Signature Version 4, checked as AWS does: the key must exist
-- (long-term, or a live STS session with its token), the clock within 15 minutes, the signature the one
-- recomputed from what arrived (constant-time compare); then the service's rate budget.  The signing
-- algorithm is sdk/sigv4.lua's, itself held to AWS's official test suite.
local C = require "sandbox.aws.core"
local sigv4 = require "sdk.sigv4"
local Aws = C.Aws

-- Which error codes each kind of service uses for the same refusals.
local CODES = {
  s3 = { unknown = "InvalidAccessKeyId", mismatch = "SignatureDoesNotMatch", skew = "RequestTimeTooSkewed",
         missing = "AccessDenied", throttle = { 503, "SlowDown" } },
  cloudtrail = { unknown = "UnrecognizedClientException", mismatch = "InvalidSignatureException",
                 skew = "InvalidSignatureException", missing = "MissingAuthenticationTokenException",
                 throttle = { 400, "ThrottlingException" } },
  organizations = { unknown = "UnrecognizedClientException", mismatch = "InvalidSignatureException",
                    skew = "InvalidSignatureException", missing = "MissingAuthenticationTokenException",
                    throttle = { 400, "TooManyRequestsException" } },
  ec2 = { unknown = "AuthFailure", mismatch = "AuthFailure", skew = "RequestExpired", missing = "AuthFailure",
          throttle = { 503, "RequestLimitExceeded" } },
  query = { unknown = "InvalidClientTokenId", mismatch = "SignatureDoesNotMatch", skew = "RequestTimeTooSkewed",
            missing = "MissingAuthenticationToken", throttle = { 400, "Throttling" } },
}

local function codes(svc) return CODES[svc] or CODES.query end

-- The secret (and the token it needs) of an access key id.
function Aws:credential(id)
  local k = self.keys[id]
  if k then
    if k.status ~= "Active" then return nil end
    return { secret = k.secret, user = k.user, key = k }
  end
  local s = self.sessions[id]
  if s then return { secret = s.secret, token = s.token, expires = s.expires, session = s } end
end

function Aws:precheck(req)
  local a, why = sigv4.parse_authorization(req.headers["authorization"])
  local svc = a and a.service or (req.headers["x-amz-target"] and "cloudtrail") or "iam"
  req.aws_service = svc
  local E = codes(svc)
  if not a then
    if not req.headers["authorization"] then return self:error(req, 403, E.missing, "Request is missing Authentication Token") end
    return self:error(req, 400, "IncompleteSignature", why)
  end
  -- a member account's session (an organization on one port): that account answers
  local owner = self.org and self.org.owner_of[a.access_key]
  if owner and owner ~= self then
    local st, body, hdr = owner:precheck(req)
    if st then return st, body, hdr end
    return C.dispatch(owner, req)
  end
  local cred = self:credential(a.access_key)
  if not cred then
    return self:error(req, 403, E.unknown, "The security token included in the request is invalid.")
  end
  -- a region the account has not enabled knows none of its credentials
  if not self.enabled_regions[a.region] then
    return self:error(req, 403, E.unknown, "The security token included in the request is invalid.")
  end
  local amz = req.headers["x-amz-date"]
  local t = sigv4.parse_amz_date(amz)
  if not t then return self:error(req, 400, "IncompleteSignature", "Missing or malformed X-Amz-Date header") end
  local now = self:wall_s()
  if math.abs(now - t) > self.skew_limit then
    return self:error(req, 403, E.skew, ("Signature expired: %s is now earlier than %s (%s - 15 min.)")
      :format(amz, sigv4.amz_date(now - self.skew_limit), sigv4.amz_date(now)))
  end
  if a.date ~= amz:sub(1, 8) then
    return self:error(req, 403, E.mismatch, "Credential should be scoped to a valid date: " .. amz:sub(1, 8))
  end
  local signed = {}
  for _, n in ipairs(a.signed) do signed[n] = true end
  if not (signed.host and signed["x-amz-date"]) then
    return self:error(req, 403, E.mismatch, "Signed headers must include host and x-amz-date")
  end
  if cred.token then
    if req.headers["x-amz-security-token"] ~= cred.token then
      return self:error(req, 403, E.unknown, "The security token included in the request is invalid.")
    end
    if cred.expires <= now then
      return self:error(req, 400, "ExpiredToken", "The security token included in the request is expired")
    end
  end
  local payload = sigv4.hex_sha256(req.body)
  if svc == "s3" then
    local claimed = req.headers["x-amz-content-sha256"]
    if not claimed then return self:error(req, 400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256") end
    if claimed ~= sigv4.UNSIGNED_PAYLOAD and claimed ~= sigv4.STREAMING_PAYLOAD and claimed ~= payload then
      return self:error(req, 400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    end
    payload = claimed
  end
  local creq = sigv4.canonical_request { method = req.method, path = req.path, query = req.raw_query,
    headers = sigv4.header_values(req.headers), signed = a.signed, payload_hash = payload, s3 = svc == "s3" }
  local sts = sigv4.string_to_sign(amz, a.scope, creq)
  local key = sigv4.signing_key(cred.secret, a.date, a.region, a.service)
  local want = sigv4.signature(key, sts)
  local MISMATCH = "The request signature we calculated does not match the signature you provided. Check your AWS "
    .. "Secret Access Key and signing method. Consult the service documentation for details."
  if not crypto.equal(want, a.signature) then return self:error(req, 403, E.mismatch, MISMATCH) end
  -- a chunked upload: every chunk's signature, chained from the request's; the data is the body from here on
  if svc == "s3" and payload == sigv4.STREAMING_PAYLOAD then
    local data, why = sigv4.dechunk(req.body, key, amz, a.scope, a.signature)
    if not data then return self:error(req, 403, E.mismatch, MISMATCH .. " (" .. why .. ")") end
    if tostring(#data) ~= req.headers["x-amz-decoded-content-length"] then
      return self:error(req, 400, "IncompleteBody", "You did not provide the number of bytes specified by the x-amz-decoded-content-length header")
    end
    req.body = data
  end
  req.caller, req.access_key = cred, a.access_key
  req.aws_region = a.region               -- the region whose endpoint the request was sent to (see s3.lua)
  if cred.key then                          -- IAM keeps when and where each access key was last used
    cred.key.last_used = { date = require("sandbox.tenant").iso_s(now), service = svc, region = a.region }
  end
  local _, _, _, exceeded = self:rate_take(svc)
  if exceeded then return self:error(req, E.throttle[1], E.throttle[2], "Rate exceeded") end
end

-- Injected faults answer in the service's own words.
function Aws:fault_response(f, req)
  local svc = (sigv4.parse_authorization(req.headers["authorization"]) or {}).service or "iam"
  req.aws_service = svc
  local k = f.kind
  if k == "429" then
    local E = codes(svc)
    return self:error(req, E.throttle[1], E.throttle[2], "Rate exceeded")
  elseif k == "403" then
    return self:error(req, 403, "AccessDenied", "User is not authorized to perform this action")
  end
  local st = tonumber(k) or tonumber(f.status) or 500
  if svc == "s3" then return self:s3_error(req, st, st == 503 and "SlowDown" or "InternalError", "We encountered an internal error. Please try again.") end
  return self:error(req, st, svc == "cloudtrail" and "InternalFailure" or "ServiceFailure", "Service failure")
end

-- What a fault's path pattern is matched against: IAM and STS (query protocol) and CloudTrail (JSON 1.1)
-- send every operation as POST /, so there "/" followed by the operation's name ("/ListUsers$",
-- "/LookupEvents$"); S3's own path otherwise.
local T = require "sandbox.tenant"
local function operation(req)
  local target = req.headers["x-amz-target"]
  if target then return "/" .. target:match("[^.]*$") end
  local action = req.query.Action
  if not action and req.method == "POST" and req.path == "/" then action = T.parse_form(req.body).Action end
  return action and "/" .. action or req.path
end

function Aws:take_fault(req)
  local path = req.path
  req.path = operation(req)
  local f = T.Base.take_fault(self, req)
  req.path = path
  return f
end

-- Faults `shape` and `garbled` on XML answers: every list of <member>s (and S3's <Buckets>) holds a
-- maintenance message instead of its items, or keeps its items with none of their fields.  Flattened
-- lists (ListObjectsV2's <Contents>) have no wrapper to replace: only garbled applies to them.
local X = require "sdk.xml"
local ITEMS = { member = true, Bucket = true, Contents = true }
local function render(el)
  local attrs = {}
  for k, v in pairs(el.attrs or {}) do attrs[#attrs + 1] = (' %s="%s"'):format(k, C.esc(v)) end
  table.sort(attrs)
  local inner = {}
  for i, c in ipairs(el) do inner[i] = render(c) end
  return ("<%s%s>%s%s</%s>"):format(el.name, table.concat(attrs), #el == 0 and C.esc(el.text or "") or "",
    table.concat(inner), el.name)
end
local function mangle(el, how)
  local n = #el
  if n > 0 and how == "shape" and (el[1].name == "member" or el.name == "Buckets") then
    for i = n, 1, -1 do el[i] = nil end
    el[1] = { name = "Message", text = "The service is under maintenance." }
    return
  end
  for _, c in ipairs(el) do
    if how == "garbled" and ITEMS[c.name] then
      for i = #c, 1, -1 do c[i] = nil end
      c[1] = { name = "Error", text = "maintenance" }
    else
      mangle(c, how)
    end
  end
end

function Aws:rewrite(body, how)
  local root = body:match("^%s*<") and X.decode(body)
  if not root then return T.rewrite(body, how) end
  mangle(root, how)
  return '<?xml version="1.0" encoding="UTF-8"?>\n' .. render(root)
end

function Aws:decorate(req, st, hdr)
  hdr["x-amzn-RequestId"] = hdr["x-amzn-RequestId"] or self:request_id(req)
end

return true
