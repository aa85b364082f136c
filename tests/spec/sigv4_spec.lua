-- Signature Version 4 against AWS's official test suite (tests/fixtures/aws/sigv4, see its SOURCES.md):
-- every case folder's request is signed by sdk/sigv4.lua and the canonical request, string to sign,
-- Authorization header and signed request must be the suite's, byte for byte.
local helpers = require "helpers"
local sigv4 = require "sdk.sigv4"

local ROOT = host.root .. "/tests/fixtures/aws/sigv4"
local CREDS = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
local OPTS = { service = "service", region = "us-east-1" }
-- the tokens the suite's two session cases use (from its .creq / readme)
local TOKENS = {
  ["get-vanilla-with-session-token"] = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
  ["post-sts-header-before"] = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
}
TOKENS["post-sts-header-after"] = TOKENS["post-sts-header-before"]

local function read(path)
  local fh = io.open(path, "rb")
  if not fh then return nil end
  local s = fh:read("a")
  fh:close()
  return s
end

-- Every case folder: a directory holding <name>.req (nested ones too: normalize-path/*, post-sts-token/*).
local function cases()
  local out = {}
  local function walk(dir, rel)
    local names = assert(host.listdir(dir))
    table.sort(names)
    for _, n in ipairs(names) do
      local d = dir .. "/" .. n
      if read(d .. "/" .. n .. ".req") then out[#out + 1] = { name = n, rel = rel .. n, dir = d }
      elseif host.listdir(d) then walk(d, rel .. n .. "/") end
    end
  end
  walk(ROOT, "")
  return out
end

-- A raw .req: request line, headers (a line starting with white space continues the previous one;
-- repeated names kept as a list, in order), blank line, body.
local function parse_req(text)
  local head, body = text:match("^(.-)\n\n(.*)$")
  head = head or text:gsub("\n+$", "")     -- two of the files end in a newline, the others do not
  local lines = {}
  for l in (head .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local method, target = lines[1]:match("^(%S+) (.*) HTTP/1%.1$")
  local headers, order, last = {}, {}, nil
  for i = 2, #lines do
    local l = lines[i]
    if l:match("^%s") and last then
      local v = headers[last]
      v[#v] = v[#v] .. "\n" .. l
    else
      local k, v = l:match("^([^:]+):(.*)$")
      if not headers[k] then headers[k] = {}; order[#order + 1] = k end
      table.insert(headers[k], v)
      last = k
    end
  end
  return { method = method, target = target, headers = headers, order = order, body = body }
end

-- The signed request as the suite writes it: the request's header lines, then what signing added
-- (X-Amz-Security-Token, Authorization), then the body.
local function signed_text(r, req)
  local out = { r.method .. " " .. r.target .. " HTTP/1.1" }
  for _, k in ipairs(r.order) do
    for _, v in ipairs(r.headers[k]) do out[#out + 1] = k .. ":" .. v end
  end
  local tok = req.headers["X-Amz-Security-Token"]
  if tok and not r.headers["X-Amz-Security-Token"] then out[#out + 1] = "X-Amz-Security-Token:" .. tok end
  out[#out + 1] = "Authorization: " .. req.headers.Authorization
  local s = table.concat(out, "\n")
  if r.body then s = s .. "\n\n" .. r.body end
  return s
end

describe("sigv4", function()
  local all = cases()

  it("finds the whole suite", function()
    assert.equal(34, #all)
  end)

  local passed = 0

  for _, c in ipairs(all) do
    it(c.rel .. ": canonical request, string to sign, Authorization and signed request", function()
      local r = parse_req(assert(read(c.dir .. "/" .. c.name .. ".req")))
      local headers = {}
      for k, v in pairs(r.headers) do headers[k] = #v == 1 and v[1] or v end
      local req = { method = r.method, url = "https://example.amazonaws.com" .. r.target, headers = headers,
                    body = r.body }
      local creds = { access_key = CREDS.access_key, secret_key = CREDS.secret_key, session_token = TOKENS[c.name] }
      local opts = { service = OPTS.service, region = OPTS.region, token_after = c.name == "post-sts-header-after" }
      local got = sigv4.sign(req, creds, opts)
      assert.equal(read(c.dir .. "/" .. c.name .. ".creq"), got.canonical_request)
      assert.equal(read(c.dir .. "/" .. c.name .. ".sts"), got.string_to_sign)
      assert.equal(read(c.dir .. "/" .. c.name .. ".authz"), got.authorization)
      local sreq = read(c.dir .. "/" .. c.name .. ".sreq")
      if sreq and c.name == "get-vanilla-with-session-token" then
        -- this one file of the suite carries get-vanilla's signature, not the one of its own .authz (which
        -- the assertion above holds): compare all but the signature
        local strip = function(s) return (s:gsub("Signature=%x+", "Signature=")) end
        assert.equal(strip(sreq), strip(signed_text(r, req)))
      elseif sreq then
        assert.equal(sreq, signed_text(r, req))
      end
      passed = passed + 1
    end)
  end

  it("reports the suite's figure", function()
    helpers.figure("sigv4: %d of %d official test vectors (canonical request, string to sign, Authorization, signed request)",
      passed, #all)
    assert.equal(#all, passed)
  end)

  it("derives the suite's signing key", function()
    assert.equal("938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75",
      crypto.hex(sigv4.signing_key(CREDS.secret_key, "20150830", "us-east-1", "service")))
  end)

  it("signs S3's way: the path as sent, x-amz-content-sha256, UNSIGNED-PAYLOAD", function()
    local req = { method = "PUT", url = "https://b.s3.amazonaws.com/my-object//example//photo.user", headers = {},
                  body = "hello" }
    local got = sigv4.sign(req, CREDS, { service = "s3", region = "us-east-1", time = 1440938160, s3 = true })
    local lines = {}
    for l in (got.canonical_request .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
    assert.equal("/my-object//example//photo.user", lines[2])
    assert.equal(sigv4.hex_sha256("hello"), req.headers["X-Amz-Content-Sha256"])
    assert.equal(sigv4.hex_sha256("hello"), lines[#lines])
    assert.matches("x%-amz%-content%-sha256", got.authorization)
    local un = { method = "PUT", url = "https://b.s3.amazonaws.com/k", headers = {}, body = "hello" }
    local g2 = sigv4.sign(un, CREDS, { service = "s3", region = "us-east-1", time = 1440938160, s3 = true,
                                       unsigned_payload = true })
    assert.equal("UNSIGNED-PAYLOAD", un.headers["X-Amz-Content-Sha256"])
    assert.matches("\nUNSIGNED%-PAYLOAD$", g2.canonical_request)
    assert.equal("20150830T123600Z", un.headers["X-Amz-Date"])
  end)

  -- AWS's own chunked-upload example (S3 API reference, sigv4-streaming: "Example: PUT Object"): 66,560
  -- bytes of 'a' in 64 KiB chunks, its seed and chunk signatures
  it("signs S3's chunked upload as AWS's example does, and checks one chunk by chunk", function()
    local creds = { access_key = "AKIAIOSFODNN7EXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }
    local headers = { host = "s3.amazonaws.com", ["x-amz-date"] = "20130524T000000Z", ["x-amz-storage-class"] = "REDUCED_REDUNDANCY",
      ["x-amz-content-sha256"] = sigv4.STREAMING_PAYLOAD, ["content-encoding"] = "aws-chunked",
      ["x-amz-decoded-content-length"] = "66560", ["content-length"] = "66824" }
    local signed = { "content-encoding", "content-length", "host", "x-amz-content-sha256", "x-amz-date",
                     "x-amz-decoded-content-length", "x-amz-storage-class" }
    local creq = sigv4.canonical_request { method = "PUT", path = "/examplebucket/chunkObject.txt", query = "", headers = headers,
      signed = signed, payload_hash = sigv4.STREAMING_PAYLOAD, s3 = true }
    local scope = sigv4.scope("20130524", "us-east-1", "s3")
    local key = sigv4.signing_key(creds.secret_key, "20130524", "us-east-1", "s3")
    local seed = sigv4.signature(key, sigv4.string_to_sign("20130524T000000Z", scope, creq))
    assert.equal("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", seed)
    local data = ("a"):rep(66560)
    local body = sigv4.chunked_body(data, 65536, key, "20130524T000000Z", scope, seed)
    assert.equal(66824, #body)
    local sigs = {}
    for s in body:gmatch(";chunk%-signature=(%x+)\r\n") do sigs[#sigs + 1] = s end
    assert.same({ "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9" }, sigs)
    assert.equal(data, sigv4.dechunk(body, key, "20130524T000000Z", scope, seed))
    -- a chunk changed, reordered or cut, or a chain from another seed: refused
    local swapped = body:gsub("aaaa\r\n400;", "aaab\r\n400;", 1)
    for _, case in ipairs {
      { swapped, seed, "chunk signature" }, { body:sub(1, -3), seed, "chunk cut short" }, { body:sub(1, 66000), seed, "chunk cut short" },
      { body, ("0"):rep(64), "chunk signature" }, { body .. "x", seed, "data after the final chunk" },
    } do
      local got, why = sigv4.dechunk(case[1], key, "20130524T000000Z", scope, case[2])
      assert(got == nil, "refused: " .. case[3])
      assert.equal(case[3], why:sub(1, #case[3]))
    end
    -- sign() sends a body past chunk_size that way; a shorter one as usual
    local req = { method = "PUT", url = "https://s3.amazonaws.com/b/k", headers = {}, body = data }
    sigv4.sign(req, creds, { service = "s3", region = "us-east-1", time = 1369353600, s3 = true, chunk_size = 65536 })
    assert.equal(sigv4.STREAMING_PAYLOAD, req.headers["X-Amz-Content-Sha256"])
    assert.equal("aws-chunked", req.headers["Content-Encoding"])
    assert.equal("66560", req.headers["X-Amz-Decoded-Content-Length"])
    assert.equal(66824, #req.body)
    local small = { method = "PUT", url = "https://s3.amazonaws.com/b/k", headers = {}, body = "hello" }
    sigv4.sign(small, creds, { service = "s3", region = "us-east-1", time = 1369353600, s3 = true, chunk_size = 65536 })
    assert.equal(sigv4.hex_sha256("hello"), small.headers["X-Amz-Content-Sha256"])
    assert.equal("hello", small.body)
  end)

  it("folds a query table into the URL it signs, and leaves a default port out of Host", function()
    local req = { method = "GET", url = "http://127.0.0.1:8443/", query = { Action = "ListUsers", Version = "2010-05-08",
                  Marker = "a b/c" }, headers = {} }
    local got = sigv4.sign(req, CREDS, { service = "iam", region = "us-east-1", time = 1440938160 })
    assert.equal("http://127.0.0.1:8443/?Action=ListUsers&Marker=a%20b%2Fc&Version=2010-05-08", req.url)
    assert.is_nil(req.query)
    assert.equal("127.0.0.1:8443", req.headers.Host)
    assert.matches("\nAction=ListUsers&Marker=a%%20b%%2Fc&Version=2010%-05%-08\n", got.canonical_request)
    local r2 = { method = "GET", url = "https://iam.amazonaws.com:443/", headers = {} }
    sigv4.sign(r2, CREDS, { service = "iam", region = "us-east-1", time = 1440938160 })
    assert.equal("iam.amazonaws.com", r2.headers.Host)
  end)

  it("reads an Authorization header back, and refuses a malformed one", function()
    local a = assert(sigv4.parse_authorization(read(ROOT .. "/get-vanilla/get-vanilla.authz")))
    assert.same({ access_key = "AKIDEXAMPLE", date = "20150830", region = "us-east-1", service = "service",
                  scope = "20150830/us-east-1/service/aws4_request", signed = { "host", "x-amz-date" },
                  signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" }, a)
    for _, bad in ipairs { "AWS4-HMAC-SHA1 Credential=a/20150830/r/s/aws4_request, SignedHeaders=host, Signature=x",
                           "AWS4-HMAC-SHA256 Credential=a/2015/r/s/aws4_request, SignedHeaders=host, Signature=x",
                           "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=x", "Bearer x" } do
      local v, why = sigv4.parse_authorization(bad)
      assert.is_nil(v, bad)
      assert.is_string(why)
    end
    assert.equal(1440938160, sigv4.parse_amz_date("20150830T123600Z"))
    assert.is_nil(sigv4.parse_amz_date("2015-08-30T12:36:00Z"))
  end)
end)

describe("the sigv4 auth scheme", function()
  local auth = require "sdk.auth"
  local function client(secrets)
    return { inst = { name = "acct", settings = { region = "eu-west-1" },
                      secret = function(_, n) if secrets[n] then return secrets[n] end return nil, "missing: " .. n end } }
  end
  local connector = { app = "aws", auth = { default = "iam", iam = { type = "sigv4", service = "iam", region = "us-east-1" },
    s3 = { type = "sigv4", service = "s3", s3 = true, unsigned_payload = true,
           region = function(settings) return settings.region end } } }

  it("signs with the instance's keys and session token, per scheme (service, region, S3's way)", function()
    local hook = auth.for_connector(connector)
    local c = client { access_key_id = "AKIDEXAMPLE", secret_access_key = CREDS.secret_key, session_token = "tok" }
    local req = { method = "GET", url = "https://iam.amazonaws.com/", query = { Action = "ListUsers" }, headers = {} }
    assert.is_true(hook(c, req, "iam"))
    assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/%d+/us%-east%-1/iam/aws4_request, " ..
      "SignedHeaders=host;x%-amz%-date;x%-amz%-security%-token, Signature=%x+$", req.headers.Authorization)
    assert.equal("tok", req.headers["X-Amz-Security-Token"])
    local s3 = { method = "GET", url = "https://b.s3.eu-west-1.amazonaws.com/k", headers = {} }
    assert.is_true(hook(c, s3, "s3"))
    assert.matches("/eu%-west%-1/s3/aws4_request", s3.headers.Authorization)
    assert.equal("UNSIGNED-PAYLOAD", s3.headers["X-Amz-Content-Sha256"])
  end)

  it("says which secret is missing", function()
    local ok, err = auth.for_connector(connector)(client { access_key_id = "AKIDEXAMPLE" },
      { method = "GET", url = "https://iam.amazonaws.com/", headers = {} }, "iam")
    assert.is_nil(ok)
    assert.equal("auth: secret 'secret_access_key' is not set (cachost instance edit acct)", err)
  end)
end)

describe("the sigv4 scheme's assumed role (STS AssumeRole with an external id), against the AWS sandbox", function()
  local auth = require "sdk.auth"
  local Client = require "sdk.client"
  local aws = require "sandbox.aws"
  local X = require "sdk.xml"
  local t, srv, vault, inst, client

  local function url_of(s) return s.base_url .. "/" end
  local connector = { app = "aws-test", auth = { default = "iam",
    iam = { type = "sigv4", service = "iam", region = "us-east-1",
            assume_role = { role_arn = "role_arn", external_id = "external_id", url = url_of } } } }

  before_each(function()
    t = aws.new { seed = 5, users = 4 }
    srv = require("helpers").serve(t)
    vault = { access_key_id = t.audit_key.id, secret_access_key = t.audit_key.secret }
    inst = { id = -77, name = "acct", settings = { base_url = srv.url, role_arn = t.role.Arn, external_id = t.role.external_id },
             secret = function(_, n) if vault[n] then return vault[n] end return nil, "missing: " .. n end,
             set_secret = function(_, n, v) vault[n] = v; return true end }
    client = Client.for_instance(inst, connector, auth.for_connector(connector))
    client.base, client.insecure = srv.url, true
  end)
  after_each(function() srv:close() end)

  local function list_users()
    return client:request("POST", "/", { form = { Action = "ListUsers", Version = "2010-05-08" }, raw = true })
  end

  it("signs as the role's session, assumed once and kept in the vault until shortly before it expires", function()
    local resp = assert(list_users())
    assert.equal(200, resp.status)
    assert.matches("^ASIA", vault.sts_access_key_id)
    assert.truthy(t.sessions[vault.sts_access_key_id])
    local first = vault.sts_access_key_id
    assert(list_users())
    assert.equal(first, vault.sts_access_key_id)           -- not assumed again
    local n = 0
    for _ in pairs(t.sessions) do n = n + 1 end
    assert.equal(1, n)
    vault.sts_expires_at = tostring(sched.time() + 60)    -- within the refresh margin: assumed again
    assert(list_users())
    assert.are_not.equal(first, vault.sts_access_key_id)
  end)

  it("says the role refused when the external id is wrong, and reads with the keys when no role is set", function()
    inst.settings.external_id = "guess"
    local resp, err = list_users()
    assert.is_nil(resp)
    assert.matches("^auth: STS AssumeRole refused: .*AccessDenied", err)
    assert.is_nil(vault.sts_access_key_id)
    inst.settings.role_arn = nil
    resp = assert(list_users())
    assert.equal(200, resp.status)
    assert.equal("cachost-audit", X.text(assert(X.decode(resp.body)), "ListUsersResult/Users/member/UserName"))
    assert.is_nil(vault.sts_access_key_id)
  end)
end)
