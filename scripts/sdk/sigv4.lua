-- sdk/sigv4.lua — AWS Signature Version 4 (AWS4-HMAC-SHA256), for signing requests (the "sigv4" auth
-- scheme, sdk/auth.lua) and for checking them (the AWS sandbox).  Checked against every vector of AWS's
-- test suite (tests/spec/sigv4_spec.lua on tests/fixtures/aws/sigv4).
--   canonical request = method \n canonical path \n canonical query \n canonical headers \n
--                       signed header names \n payload hash
--   string to sign    = "AWS4-HMAC-SHA256" \n amz date \n date/region/service/aws4_request \n sha256(creq)
--   signing key       = HMAC chain "AWS4"..secret -> date -> region -> service -> "aws4_request"
-- S3's chunked upload (payload STREAMING-AWS4-HMAC-SHA256-PAYLOAD, Content-Encoding aws-chunked): the body is
-- sent as chunks "<hex size>;chunk-signature=<sig>\r\n<data>\r\n" ending with an empty one, each signature
-- chained to the previous one from the request's own (the seed): AWS's S3 API reference, sigv4-streaming.
local M = {}

M.ALGORITHM = "AWS4-HMAC-SHA256"
M.UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
M.STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
M.EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
-- headers a proxy or the HTTP library may change or add on the way: never signed (as the AWS SDKs do)
local UNSIGNABLE = { ["user-agent"] = true, expect = true, ["x-amzn-trace-id"] = true, ["content-length"] = true,
                     authorization = true, connection = true, ["accept-encoding"] = true }

-- RFC 3986: unreserved characters kept, every other byte %XX (upper case): AWS's UriEncode.
M.encode = http.urlencode

function M.decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.hex_sha256(s) return crypto.hex(crypto.sha256(s or "")) end

-- The canonical URI.  Every service but S3 normalises the path (dot segments and empty segments out, a
-- trailing slash kept) and encodes it again, as it is on the wire; S3 signs the path exactly as sent.
function M.canonical_path(path, s3)
  if path == "" then path = "/" end
  if s3 then return path end
  local out = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then out[#out] = nil
    elseif seg ~= "." then out[#out + 1] = seg end
  end
  local p = "/" .. table.concat(out, "/")
  if #out > 0 and (path:match("/$") or path:match("/%.%.?$")) then p = p .. "/" end
  return (p:gsub("[^/]+", M.encode))
end

-- The canonical query string of a raw one ("b=2&a=1"): each name and value decoded then encoded, a
-- missing "=" an empty value, sorted by name then value.
function M.canonical_query(qs)
  local pairs_ = {}
  for piece in (qs or ""):gmatch("[^&]+") do
    local k, v = piece:match("^([^=]*)=?(.*)$")
    pairs_[#pairs_ + 1] = { M.encode(M.decode(k)), M.encode(M.decode(v)) }
  end
  table.sort(pairs_, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
  local out = {}
  for i, p in ipairs(pairs_) do out[i] = p[1] .. "=" .. p[2] end
  return table.concat(out, "&")
end

-- headers {Name = value | {value, ...}} -> {lowercase name = canonical value}: values trimmed, runs of
-- white space (folded lines included) one space, repeated headers joined with ",".
function M.header_values(headers)
  local out = {}
  local names = {}
  for k in pairs(headers) do names[#names + 1] = k end
  table.sort(names)          -- a stable order when two spellings of one name are both present
  for _, k in ipairs(names) do
    local v = headers[k]
    local lk = k:lower()
    for _, one in ipairs(type(v) == "table" and v or { v }) do
      one = tostring(one):gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " ")
      out[lk] = out[lk] and (out[lk] .. "," .. one) or one
    end
  end
  return out
end

-- {method=, path=, query= raw string, headers= {lower = value} (header_values), signed = {lower names},
--  payload_hash=, s3=} -> canonical request, "a;b;c"
function M.canonical_request(r)
  local signed = {}
  for _, n in ipairs(r.signed) do signed[#signed + 1] = n:lower() end
  table.sort(signed)
  local lines = {}
  for i, n in ipairs(signed) do lines[i] = n .. ":" .. (r.headers[n] or "") .. "\n" end
  local names = table.concat(signed, ";")
  return table.concat({ r.method, M.canonical_path(r.path, r.s3), M.canonical_query(r.query),
                        table.concat(lines), names, r.payload_hash }, "\n"), names
end

function M.scope(date, region, service) return table.concat({ date, region, service, "aws4_request" }, "/") end

function M.string_to_sign(amz_date, scope, creq)
  return table.concat({ M.ALGORITHM, amz_date, scope, M.hex_sha256(creq) }, "\n")
end

function M.signing_key(secret, date, region, service)
  local k = crypto.hmac_sha256("AWS4" .. secret, date)
  k = crypto.hmac_sha256(k, region)
  k = crypto.hmac_sha256(k, service)
  return crypto.hmac_sha256(k, "aws4_request")
end

function M.signature(key, sts) return crypto.hex(crypto.hmac_sha256(key, sts)) end

function M.amz_date(t) return os.date("!%Y%m%dT%H%M%SZ", math.floor(t)) end

-- "20150830T123600Z" -> epoch seconds | nil
function M.parse_amz_date(s)
  local y, mo, d, h, mi, sec = tostring(s):match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  if not y then return nil end
  return iso8601.parse(("%s-%s-%sT%s:%s:%sZ"):format(y, mo, d, h, mi, sec))
end

local function get(headers, name)
  for k, v in pairs(headers) do
    if k:lower() == name then return k, v end
  end
end

local function set(headers, name, value)
  local k = get(headers, name:lower())
  headers[k or name] = value
end

-- One chunk's signature, chained to the previous one (the first chunk's: the request's own signature).
function M.chunk_signature(key, amz_date, scope, previous, data)
  return M.signature(key, table.concat({ "AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, M.EMPTY_SHA256,
    M.hex_sha256(data) }, "\n"))
end

-- The aws-chunked body of data: chunks of chunk_size (the last one shorter), then an empty one.
function M.chunked_body(data, chunk_size, key, amz_date, scope, seed)
  local out, prev, i = {}, seed, 1
  repeat
    local part = data:sub(i, i + chunk_size - 1)
    prev = M.chunk_signature(key, amz_date, scope, prev, part)
    out[#out + 1] = ("%x;chunk-signature=%s\r\n%s\r\n"):format(#part, prev, part)
    i = i + chunk_size
  until part == ""
  return table.concat(out)
end

-- The data of an aws-chunked body, every chunk's signature checked (constant time) -> data | nil, why.
function M.dechunk(body, key, amz_date, scope, seed)
  local out, prev, pos = {}, seed, 1
  while true do
    local size, sig, at = body:match("^(%x+);chunk%-signature=(%x+)\r\n()", pos)
    if not size or #size > 8 then return nil, "malformed chunk header" end
    local n = tonumber(size, 16)
    local data = body:sub(at, at + n - 1)
    if #data ~= n or body:sub(at + n, at + n + 1) ~= "\r\n" then return nil, "chunk cut short" end
    if not crypto.equal(M.chunk_signature(key, amz_date, scope, prev, data), sig) then return nil, "chunk signature" end
    out[#out + 1], prev, pos = data, sig, at + n + 2
    if n == 0 then break end
  end
  if pos <= #body then return nil, "data after the final chunk" end
  return table.concat(out)
end

-- Sign a request in place (the client side).
--   req   {method=, url=, query={k=v} (folded into url), headers={}, body=}
--   creds {access_key=, secret_key=, session_token=}
--   opts  {service=, region=, time= epoch (default now), s3= (path as sent, x-amz-content-sha256 header),
--          unsigned_payload= (S3: the body is not hashed), token_after= (token added once signed: the
--          services that want it so), chunk_size= (S3: a body longer than that goes as a chunked upload)}
-- Adds Host, X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256 and Authorization.
-- -> {canonical_request=, string_to_sign=, signature=, authorization=}
function M.sign(req, creds, opts)
  assert(creds.access_key and creds.secret_key, "sigv4: credentials need access_key and secret_key")
  assert(opts.service and opts.region, "sigv4: service and region are required")
  req.headers = req.headers or {}
  if req.query and next(req.query) then     -- sign exactly what is sent: the query goes into the URL now
    req.url = req.url .. (req.url:find("?", 1, true) and "&" or "?") .. http.form(req.query)
    req.query = nil
  end
  -- split by hand, not http.parse_url: the path is signed exactly as it is written
  local scheme, authority, path, query = req.url:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)%??([^#]*)")
  assert(scheme, "sigv4: not an absolute URL")
  authority = authority:gsub("^.*@", "")
  if not get(req.headers, "host") then       -- as libcurl writes it: the port only when not the default
    local h, port = authority:match("^(.*):(%d+)$")
    if h and ((scheme == "https" and port == "443") or (scheme == "http" and port == "80")) then authority = h end
    set(req.headers, "Host", authority)
  end
  local _, amz = get(req.headers, "x-amz-date")
  if not amz then
    amz = M.amz_date(opts.time or sched.time())
    set(req.headers, "X-Amz-Date", amz)
  end
  if creds.session_token and not opts.token_after then
    set(req.headers, "X-Amz-Security-Token", creds.session_token)
  end
  local chunked = opts.s3 and opts.chunk_size and req.body and #req.body > opts.chunk_size
  local payload = chunked and M.STREAMING_PAYLOAD or opts.unsigned_payload and M.UNSIGNED_PAYLOAD or M.hex_sha256(req.body)
  if opts.s3 then set(req.headers, "X-Amz-Content-Sha256", payload) end
  if chunked then
    local _, enc = get(req.headers, "content-encoding")
    set(req.headers, "Content-Encoding", enc and ("aws-chunked," .. enc) or "aws-chunked")
    set(req.headers, "X-Amz-Decoded-Content-Length", tostring(#req.body))
  end

  local values = M.header_values(req.headers)
  local signed = {}
  for n in pairs(values) do
    if not UNSIGNABLE[n] then signed[#signed + 1] = n end
  end
  local creq, names = M.canonical_request {
    method = req.method, path = path, query = query, headers = values, signed = signed,
    payload_hash = payload, s3 = opts.s3 }
  local date = amz:sub(1, 8)
  local scope = M.scope(date, opts.region, opts.service)
  local sts = M.string_to_sign(amz, scope, creq)
  local key = M.signing_key(creds.secret_key, date, opts.region, opts.service)
  local sig = M.signature(key, sts)
  if chunked then req.body = M.chunked_body(req.body, opts.chunk_size, key, amz, scope, sig) end
  local authz = ("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s"):format(M.ALGORITHM, creds.access_key,
    scope, names, sig)
  set(req.headers, "Authorization", authz)
  if creds.session_token and opts.token_after then set(req.headers, "X-Amz-Security-Token", creds.session_token) end
  return { canonical_request = creq, string_to_sign = sts, signature = sig, authorization = authz }
end

-- An Authorization header -> {access_key=, date=, region=, service=, scope=, signed={names}, signature=}
-- | nil, why (the checking side).
function M.parse_authorization(value)
  if type(value) ~= "string" then return nil, "missing Authorization header" end
  local alg, rest = value:match("^(%S+)%s+(.*)$")
  if alg ~= M.ALGORITHM then return nil, "unsupported algorithm " .. tostring(alg) end
  local f = {}
  for k, v in rest:gmatch("(%w+)=([^,%s]*)") do f[k] = v end
  if not (f.Credential and f.SignedHeaders and f.Signature) then
    return nil, "Authorization header requires Credential, SignedHeaders and Signature"
  end
  local key, date, region, service, term = f.Credential:match("^([^/]+)/(%d%d%d%d%d%d%d%d)/([^/]+)/([^/]+)/([^/]+)$")
  if not key or term ~= "aws4_request" then return nil, "malformed Credential " .. f.Credential end
  local signed = {}
  for n in f.SignedHeaders:gmatch("[^;]+") do signed[#signed + 1] = n end
  return { access_key = key, date = date, region = region, service = service,
           scope = M.scope(date, region, service), signed = signed, signature = f.Signature }
end

return M
