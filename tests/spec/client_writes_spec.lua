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
    srv:route("*", "/api/v1/xml", function(req)
      if count(req.method .. " xml") == 1 then return 200, "<ListUsersResponse><ListUsersResult><Us" end   -- cut short
      return 200, "<ListUsersResponse><ListUsersResult/></ListUsersResponse>", { ["Content-Type"] = "text/xml" }
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

  it("reads an XML answer (expect_xml) and asks again for one that cannot be parsed", function()
    local r = assert(context.client(ctx):request("POST", "/api/v1/xml", { expect_xml = true, raw = true, idempotent = true }))
    assert.equal("ListUsersResponse", r.xml.name)
    assert.equal("ListUsersResult", r.xml[1].name)
    assert.equal(2, hits["POST xml"])
    -- a write is not sent again: its unreadable answer is the error
    local resp, err, token = context.client(ctx):request("PUT", "/api/v1/xml", { expect_xml = true, raw = true })
    hits["PUT xml"] = 0
    assert.is_nil(resp)
    assert.equal("bad_json", token)
    assert.matches("^bad_xml: HTTP 200 from ", err)
  end)

  it("spaces the requests to an endpoint with a documented rate (per_second), retries included", function()
    -- on a clock of its own: sleeping moves it, so the spacing is exact whatever the machine's load
    local clock, sent = 1000, {}
    local now, sleep, request = sched.now, sched.sleep, http.request
    sched.now = function() return clock end
    sched.sleep = function(d) clock = clock + (d or 0) end
    http.request = function(req) sent[#sent + 1] = clock; return request(req) end
    local ok, err = pcall(function()
      for _ = 1, 3 do assert(context.client(ctx):request("GET", "/api/v1/flaky?x=1", { per_second = 5 })) end
      -- a pace_key (a region: CloudTrail's rate is per account and region) has a pace of its own, whatever the URL
      assert(context.client(ctx):request("GET", "/api/v1/flaky?x=1", { per_second = 5, pace_key = "eu-west-1" }))
    end)
    sched.now, sched.sleep, http.request = now, sleep, request
    assert(ok, err)
    assert.equal(5, #sent)          -- the first answer is a 503, asked again
    for i = 2, 4 do assert.is_true(sent[i] - sent[i - 1] >= 0.2, ("%.3f"):format(sent[i] - sent[i - 1])) end
    assert.equal(sent[4], sent[5])  -- not held by the URL's pace
  end)
end)
