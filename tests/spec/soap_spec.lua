-- Writing XML (sdk/xml.lua element/encode/escape), namespaces resolved on reading, SOAP 1.1 envelopes and
-- faults (sdk/soap.lua), and the client's SOAP calls: the envelope built after the auth (WS-Security), a
-- Fault that is an answer not asked again, a Server fault and a garbled body asked again.
local X = require "sdk.xml"
local soap = require "sdk.soap"
local helpers = require "helpers"

describe("xml writing", function()
  it("escapes text and attribute values, so any string round-trips through decode", function()
    local nasty = [[a < b & c > d "q" 'a' ]] .. "tab\there\r\nline é ☃"
    local doc = X.encode(X.element("p:Root", { X.element("p:Leaf", nasty, { ["p:attr"] = nasty }), X.element("Empty") },
      { ["xmlns:p"] = "urn:x" }))
    local root = assert(X.decode(doc))
    assert.equal(nasty, X.text(root, "p:Leaf"))
    assert.equal(nasty, X.child(root, "p:Leaf").attrs["p:attr"])
    assert.equal("", X.text(root, "Empty"))
    assert.matches("<Empty/>", doc)
    assert.equal('<?xml version="1.0" encoding="UTF-8"?><a b="1" c="2">x</a>', X.encode(X.element("a", "x", { c = "2", b = "1" })))
    assert.equal("<n>42</n>", X.encode(X.element("n", 42), false))
    assert.equal("a &lt;b&gt; &amp;amp; &#13;", X.escape("a <b> &amp; \r"))
  end)

  it("refuses what XML cannot carry and names that are not XML names (misuse raises)", function()
    for _, bad in ipairs { "bell\7", "nul\0x", "\255\254" } do
      assert.has_error(function() X.encode(X.element("a", bad)) end)
    end
    for _, name in ipairs { "1a", "a b", "a:b:c", "<a>", "" } do
      assert.has_error(function() X.encode(X.element(name)) end)
    end
    assert.has_error(function() X.encode(X.element("a", nil, { ["x y"] = "1" })) end)
    assert.has_error(function() X.encode("a") end)
  end)

  it("resolves namespaces: local names, the element's URI, prefixed attributes by {uri}name", function()
    local root = X.namespaces(assert(X.decode(
      '<s:E xmlns:s="urn:s" xmlns="urn:d"><B x:t="v" xmlns:x="urn:x"><s:C/><D xmlns=""/></B></s:E>')))
    assert.same({ "E", "urn:s", "s:E" }, { root.name, root.ns, root.qname })
    local b = X.child(root, "B")
    assert.equal("urn:d", b.ns)
    assert.equal("v", b.attrs["{urn:x}t"])
    assert.equal("urn:s", X.find(root, "B/C").ns)
    assert.is_nil(X.find(root, "B/D").ns)
    local ok, err = X.namespaces(assert(X.decode("<q:a/>")))
    assert.is_nil(ok)
    assert.equal("bad_xml: prefix 'q' of <q:a> is not declared", err)
  end)
end)

describe("soap", function()
  it("wraps a body and a WS-Security header in a SOAP 1.1 envelope", function()
    local doc = soap.envelope(X.element("w:Op", "x", { ["xmlns:w"] = "urn:w" }), { soap.username_token("isu@t", "p<&>w") })
    local root = X.namespaces(assert(X.decode(doc)))
    assert.same({ "Envelope", soap.ENVELOPE }, { root.name, root.ns })
    local tok = X.find(root, "Header/Security/UsernameToken")
    assert.equal(soap.WSSE, tok.ns)
    assert.equal("isu@t", X.text(tok, "Username"))
    assert.equal("p<&>w", X.text(tok, "Password"))
    assert.equal(soap.PASSWORD_TEXT, X.child(tok, "Password").attrs.Type)
    assert.equal("Op", assert(soap.body(doc))[1].name)
  end)

  it("reads a Fault: its code without prefix, its string, its detail's texts", function()
    local f = soap.fault([[<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
      <SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Client.validationError</faultcode><faultstring>Validation error occurred.</faultstring>
      <detail><wd:Validation_Fault xmlns:wd="urn:com.workday/bsvc"><wd:Validation_Error><wd:Message>Invalid ID value.</wd:Message>
      <wd:Xpath>/bsvc:Get_Workers_Request[1]</wd:Xpath></wd:Validation_Error></wd:Validation_Fault></detail></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>]])
    assert.same({ code = "Client.validationError", string = "Validation error occurred.",
                  details = { "Invalid ID value.", "/bsvc:Get_Workers_Request[1]" } }, f)
    assert.is_nil(soap.fault('{"error":"x"}'))
    assert.is_nil(soap.fault(soap.envelope(X.element("Op"))))
    local _, why = soap.body('<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body/></Envelope>')
    assert.equal("not a SOAP 1.1 envelope (<Envelope>)", why)
  end)
end)

describe("the client's SOAP calls", function()
  local srv, answers, seen, inst
  local Client = require "sdk.client"
  local base = Client.BACKOFF_BASE
  setup(function()
    Client.BACKOFF_BASE = 0.001
    host.home = helpers.tmp_dir()
    srv = assert(server.listen { port = 0 })
    srv:route("POST", "/*", function(req)
      seen[#seen + 1] = req
      local a = table.remove(answers, 1)
      return a[1], a[2], { ["Content-Type"] = "text/xml" }
    end)
    inst = helpers.instance("workday", "soap-client", { host = "x", tenant = "t", base_url = srv.url, insecure_loopback = true,
      auth = "isu", isu_user = "ISU_x@t", accounts_report = "o/r" }, { isu_password = "s3cret-isu-password" })
  end)
  teardown(function() srv:close(); Client.BACKOFF_BASE = base end)

  local function fault(code, text)
    return soap.envelope(X.element("SOAP-ENV:Fault", { X.element("faultcode", "SOAP-ENV:" .. code), X.element("faultstring", text) },
      { ["xmlns:SOAP-ENV"] = soap.ENVELOPE }))
  end
  local function call(idempotent)
    local ctx = require("sync").context(require("runtime").store(), inst, "test")
    return require("sdk.context").client(ctx):request("POST", "/ccx/service/t/Human_Resources/v42.0",
      { soap = X.element("wd:Get_Workers_Request", nil, { ["xmlns:wd"] = "urn:com.workday/bsvc" }), idempotent = idempotent })
  end

  it("sends the envelope with the UsernameToken; reads the answer's Body", function()
    seen, answers = {}, { { 200, soap.envelope(X.element("wd:Get_Workers_Response", nil, { ["xmlns:wd"] = "urn:com.workday/bsvc" })) } }
    local resp = assert(call(true))
    assert.equal("Get_Workers_Response", resp.soap[1].name)
    local sent = X.namespaces(assert(X.decode(seen[1].body)))
    assert.equal("s3cret-isu-password", X.text(sent, "Header/Security/UsernameToken/Password"))
    assert.equal("Get_Workers_Request", X.child(sent, "Body")[1].name)
    assert.matches("^text/xml", seen[1].headers["content-type"])
    assert.is_nil(seen[1].headers["authorization"])
  end)

  it("takes a Client Fault sent as HTTP 500 as the answer (not asked again); a Server Fault and a garbled body are asked again", function()
    seen, answers = {}, { { 500, fault("Client.validationError", "Validation error occurred. The task submitted is not authorized.") } }
    local resp, err, token = call(true)
    assert.is_nil(resp)
    assert.equal(1, #seen)
    assert.equal("permission", token)
    assert.equal("permission: HTTP 500: Client.validationError: Validation error occurred. The task submitted is not authorized.", err)
    seen, answers = {}, { { 500, fault("Client.authenticationError", "invalid username or password") } }
    resp, err, token = call(true)
    assert.same({ 1, "auth" }, { #seen, token })
    seen, answers = {}, { { 500, fault("Server.processingError", "try again") }, { 200, "<env:Envelope" },
      { 200, soap.envelope(X.element("wd:Get_Workers_Response", nil, { ["xmlns:wd"] = "urn:com.workday/bsvc" })) } }
    resp = assert(call(true))
    assert.equal(3, #seen)
    -- a write is not sent again after a Server Fault: it may have been carried out
    seen, answers = {}, { { 500, fault("Server.processingError", "try again") } }
    resp, err, token = call(nil)
    assert.same({ 1, "server" }, { #seen, token })
  end)
end)
