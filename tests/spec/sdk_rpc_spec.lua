-- sdk_rpc_spec.lua — what RPC-style APIs (Dropbox: every call a POST with a JSON argument, listings
-- continued by POSTing their cursor, content calls with their argument in a header) need of the SDK:
-- ctx:pages with method/body and a next that returns a body, JSON carried in a header (ASCII only),
-- c.fault_token reading the provider's own error (a 401 that is no dead credential), and more parameters
-- of the OAuth consent URL.
local context = require "sdk.context"
local helpers = require "helpers"
local util = require "sdk.util"
local Client = require "sdk.client"
local auth = require "sdk.auth"

describe("sdk for RPC-style APIs", function()
  local srv, ctx, seen, base
  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    seen = {}
    srv = assert(server.listen { port = 0 })
    -- a listing of 5 items, 2 a page: the first call takes {limit}, the next ones {cursor}
    srv:route("POST", "/2/list", function(req)
      seen[#seen + 1] = { path = req.path, body = json.decode(req.body), ctype = req.headers["content-type"] }
      return 200, json.encode { items = { 1, 2 }, cursor = "c2", has_more = true }
    end)
    local fail_once = true
    srv:route("POST", "/2/list/continue", function(req)
      local b = json.decode(req.body)
      seen[#seen + 1] = { path = req.path, body = b }
      if b.cursor == "c2" and fail_once then fail_once = false; return 503, "{}" end    -- a read: asked again
      if b.cursor == "c2" then return 200, json.encode { items = { 3, 4 }, cursor = "c3", has_more = true } end
      if b.cursor == "loop" then return 200, json.encode { items = { 9 }, cursor = "loop", has_more = true } end
      return 200, json.encode { items = { 5 }, cursor = "c4", has_more = false }
    end)
    srv:route("POST", "/2/arg", function(req) return 200, json.encode { arg = req.headers["dropbox-api-arg"] } end)
    srv:route("POST", "/2/denied", function()
      return 401, json.encode { error_summary = "missing_scope/..", error = { [".tag"] = "missing_scope", required_scope = "members.read" } }
    end)
    local inst = helpers.instance("okta", "rpc", { domain = "rpc.okta.com", base_url = srv.url, insecure_loopback = true },
      { api_token = "t" })
    ctx = require("sync").context(require("runtime").store(), inst, "spec")
    base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.001
  end)
  after_each(function()
    Client.BACKOFF_BASE = base
    srv:close()
  end)

  local function cursor_next(resp)
    if resp.data.has_more then return "/2/list/continue", nil, { cursor = resp.data.cursor } end
  end

  it("pages a POST listing by its cursor, each page's body as the next() said, reads retried", function()
    local got = {}
    for items in ctx:pages("/2/list", nil, { method = "POST", body = { limit = 2 }, items = "items", next = cursor_next }) do
      for _, v in ipairs(items) do got[#got + 1] = v end
    end
    assert.same({ 1, 2, 3, 4, 5 }, got)
    assert.same({ limit = 2 }, seen[1].body)
    assert.matches("^application/json", seen[1].ctype)
    assert.same({ cursor = "c2" }, seen[2].body)       -- 503: the same read again
    assert.same({ cursor = "c2" }, seen[3].body)
    assert.same({ cursor = "c3" }, seen[4].body)
    assert.equal(4, #seen)
  end)

  it("ends a listing whose cursor comes back unchanged with one 'endless' error", function()
    local ok, err = pcall(function()
      for _ in ctx:pages("/2/list/continue", nil, { method = "POST", body = { cursor = "loop" }, items = "items",
        next = function(resp) return "/2/list/continue", nil, { cursor = resp.data.cursor } end }) do end
    end)
    assert.is_false(ok)
    assert.matches("^endless pagination: /2/list/continue was already fetched", tostring(err))
  end)

  it("carries a JSON argument in a header as ASCII", function()
    assert.equal([["/caf\u00e9 \u007f \ud83d\ude00.txt"]], util.header_json("/café \127 😀.txt"))
    assert.equal([[{"path":"/a b"}]], util.header_json { path = "/a b" })
    local resp = assert(context.client(ctx):request("POST", "/2/arg", { header_json = { ["Dropbox-API-Arg"] = { path = "/Ünïcode/x.txt" } } }))
    assert.equal([[{"path":"/\u00dcn\u00efcode/x.txt"}]], resp.data.arg)
    assert.same({ path = "/Ünïcode/x.txt" }, json.decode(resp.data.arg))
  end)

  it("takes the token of a failure from c.fault_token when the connector reads the provider's error", function()
    local c = context.connector(ctx)
    local _, _, token = context.client(ctx):request("POST", "/2/denied")
    assert.equal("auth", token)                        -- a 401 by its status: the credential is dead
    c.fault_token = function(resp) if resp.data and resp.data.error[".tag"] == "missing_scope" then return "permission" end end
    local resp, err
    resp, err, token = context.client(ctx):request("POST", "/2/denied")
    c.fault_token = nil
    assert.is_nil(resp)
    assert.equal("permission", token)
    assert.matches("^permission: HTTP 401", err)
  end)

  it("adds a scheme's authorize_params to the consent URL, beside PKCE", function()
    local scheme = { type = "oauth2", authorize_url = "https://www.example.com/oauth2/authorize", token_url = "/oauth2/token",
      authorize_params = function(s) return { token_access_type = "offline", hint = s.domain } end }
    local url = auth.authorization_code(context.client(ctx), scheme, "http://127.0.0.1:1/callback")
    assert.matches("[?&]token_access_type=offline", url)
    assert.matches("[?&]hint=rpc%.okta%.com", url)
    assert.matches("[?&]code_challenge_method=S256", url)
  end)
end)
