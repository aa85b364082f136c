-- client_writes_spec.lua — a write (a governance action) is never sent twice by the client: after a
-- timeout, a reset or a 5xx it may have been carried out, so the error goes up (governance records the
-- action as unknown and settles it by a re-fetch); a 429 or a connection that never opened is retried.
-- Reads are retried as before.
local context = require "sdk.context"
local helpers = require "helpers"
local Client = require "sdk.client"

describe("client retries", function()
  local srv, hits, ctx, base
  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    hits = {}
    srv = assert(server.listen { port = 0 })
    local function count(path) hits[path] = (hits[path] or 0) + 1; return hits[path] end
    srv:route("*", "/api/v1/error", function(req) count(req.method .. " error"); return 500, "{}" end)
    srv:route("*", "/api/v1/flaky", function(req)
      if count(req.method .. " flaky") == 1 then return 503, "{}" end
      return 200, "{}"
    end)
    srv:route("*", "/api/v1/busy", function(req)
      if count(req.method .. " busy") == 1 then return 429, "{}", { ["Retry-After"] = "0" } end
      return 200, "{}"
    end)
    local inst = helpers.instance("okta", "w", { domain = "w.okta.com", base_url = srv.url, insecure_loopback = true },
      { api_token = "t" })
    ctx = require("sync").context(require("runtime").store(), inst, "spec")
    base = Client.BACKOFF_BASE
    Client.BACKOFF_BASE = 0.001
  end)
  after_each(function()
    Client.BACKOFF_BASE = base
    srv:close()
  end)

  it("sends a write once after a 5xx, and retries a read", function()
    local r, err = context.client(ctx):request("POST", "/api/v1/error")
    assert.is_nil(r); assert.matches("HTTP 500", err)
    assert.equal(1, hits["POST error"])
    r, err = context.client(ctx):request("POST", "/api/v1/flaky")
    assert.is_nil(r); assert.matches("HTTP 503", err)
    assert.equal(1, hits["POST flaky"])
    assert(context.client(ctx):request("GET", "/api/v1/flaky"))
    assert.equal(2, hits["GET flaky"])
  end)

  it("retries a write the provider refused with 429, and one whose connection never opened", function()
    assert(context.client(ctx):request("POST", "/api/v1/busy"))
    assert.equal(2, hits["POST busy"])
    local port = srv.url:match(":(%d+)$")
    srv:close()
    local before = context.client(ctx).stats.requests
    local r, err = context.client(ctx):request("POST", "/api/v1/error")
    assert.is_nil(r); assert.matches("^connect", err)
    assert.is_true(context.client(ctx).stats.requests - before > 1, "a connection that never opened is tried again")
    srv = assert(server.listen { port = tonumber(port) })
  end)
end)
