-- providers/aws.lua — what connectors to AWS services share: the query protocol (IAM, STS): a form POST
-- of Action, Version and the parameters, an XML answer <ActionResponse><ActionResult>..., lists of
-- <member>s, Marker/IsTruncated paging, errors as <ErrorResponse><Error><Code/><Message/>; and how AWS
-- says "slow down".  Reference: shared/api/aws.md §1, §7, §8.
local P = {}

P.IAM_VERSION = "2010-05-08"
P.STS_VERSION = "2011-06-15"

-- One call -> the <ActionResult> element (an sdk.xml tree; the whole answer for outputs without one).
-- o: {version=, url= (default the base URL "/"), auth= (scheme name)}.  Raises on failure.
function P.query(ctx, action, params, o)
  o = o or {}
  local form = { Action = action, Version = o.version or P.IAM_VERSION }
  for k, v in pairs(params or {}) do form[k] = v end
  -- reads may be sent again after a timeout or a 5xx; writes only when they cannot have been carried out
  -- (GenerateCredentialReport only starts a report when none is recent)
  local read = action:match("^List") or action:match("^Get") or action == "GenerateCredentialReport"
  local _, resp = ctx:request("POST", o.url or "/", { form = form, auth = o.auth, raw = true, expect_xml = true,
    headers = { Accept = "text/xml" }, idempotent = read and true or nil })
  if not resp.xml then fail(("malformed: %s answered nothing"):format(action), "malformed") end
  return xml.child(resp.xml, action .. "Result") or resp.xml
end

-- The pages of a Marker-paged listing, each an array of the list's <member> elements as plain records
-- (sdk.xml record: leaves are text).  `list` is the list element's name below the result ("Users").
function P.pages(ctx, action, params, list, o)
  local marker, done = nil, false
  return function()
    if done then return nil end
    local p = {}
    for k, v in pairs(params or {}) do p[k] = v end
    p.MaxItems, p.Marker = p.MaxItems or "1000", marker
    local result = P.query(ctx, action, p, o)
    -- the list is required in every listing's answer, and holds <member>s only: anything else is no
    -- complete listing (nothing may be marked deleted for it)
    local el = xml.find(result, list)
    if not el then fail(("malformed listing: expected %s in the %s answer"):format(list, action), "malformed") end
    local items = {}
    for i, m in ipairs(el) do
      if m.name ~= "member" then
        fail(("malformed listing: expected %s to hold <member> items, got <%s> (%s)"):format(list, tostring(m.name), action), "malformed")
      end
      items[i] = xml.record(m)
    end
    marker = xml.text(result, "IsTruncated") == "true" and xml.text(result, "Marker") or nil
    done = marker == nil
    return items, result
  end
end

-- Every member of a listing, all pages.
function P.all(ctx, action, params, list, o)
  local out = {}
  for page in P.pages(ctx, action, params, list, o) do
    for _, it in ipairs(page) do out[#out + 1] = it end
  end
  return out
end

-- The message of an AWS error answer: XML (query, S3) or JSON 1.1 ({"__type", "message"}).
function P.error_message(resp)
  local root = xml.decode(resp.body or "")
  local e = root and xml.error(root)
  if e and e.code then return ("%s: %s"):format(e.code, tostring(e.message)) end
  local d = resp.data
  if type(d) == "table" and d.__type then return ("%s: %s"):format(tostring(d.__type):match("[^#]+$"), tostring(d.message or d.Message)) end
  return (resp.body or ""):sub(1, 200)
end

-- AWS's throttling answers (no Retry-After): Throttling (query, 400), ThrottlingException (JSON),
-- SlowDown (S3, 503), RequestLimitExceeded, TooManyRequestsException.
local THROTTLE = { Throttling = true, ThrottlingException = true, SlowDown = true, RequestLimitExceeded = true,
                   TooManyRequestsException = true }
-- The code of an AWS error answer: XML (<Error><Code>) or JSON 1.1 ("__type": "...#Code").
local function error_code(resp)
  local root = xml.decode(resp.body or "")
  local e = root and xml.error(root)
  if e then return e.code end
  local d = json.decode(resp.body or "")
  return type(d) == "table" and tostring(d.__type or ""):match("[^#]+$") or nil
end

function P.is_throttled(resp)
  return (resp.status == 400 or resp.status == 503) and THROTTLE[error_code(resp)] == true
end

-- The answers that say the keys themselves are no good (AWS sends them as 403): an unknown access key, a
-- wrong secret, an expired session.  The instance needs new credentials, not another permission.
local DEAD = { InvalidClientTokenId = true, InvalidAccessKeyId = true, SignatureDoesNotMatch = true,
               ExpiredToken = true, ExpiredTokenException = true, UnrecognizedClientException = true }
function P.dead_credential(resp)
  return (resp.status == 403 or resp.status == 400) and DEAD[error_code(resp)] == true
end

-- A policy document (IAM sends them URL-encoded) -> true when it allows every action on every resource.
local function list_of(v) return type(v) == "table" and v or { v } end
function P.allows_everything(doc)
  if type(doc) == "string" then
    doc = json.decode((doc:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
  end
  if type(doc) ~= "table" then return false end
  for _, st in ipairs(list_of(doc.Statement)) do
    if type(st) == "table" and st.Effect == "Allow" then
      local any_action, any_resource = false, false
      for _, a in ipairs(list_of(st.Action)) do any_action = any_action or a == "*" or a == "*:*" end
      for _, r in ipairs(list_of(st.Resource)) do any_resource = any_resource or r == "*" end
      if any_action and any_resource then return true end
    end
  end
  return false
end

return P
