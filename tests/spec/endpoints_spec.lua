-- endpoints_spec.lua — tests/endpoints.lua, the check that every request of the demo's HTTP trace is one its
-- provider documents (demo_spec runs it on the trace).
local endpoints = require "endpoints"
local helpers = require "helpers"

describe("documented endpoints", function()
  it("match a template's segments, its method, and nothing beyond it", function()
    assert.equal("/api/v1/users/{id}/lifecycle/suspend",
      endpoints.documented("okta", "POST", "/api/v1/users/00u1abc/lifecycle/suspend"))
    assert.is_nil(endpoints.documented("okta", "GET", "/api/v1/users/00u1abc/lifecycle/suspend"))
    assert.is_nil(endpoints.documented("okta", "POST", "/api/v1/users/00u1abc/lifecycle/suspend/extra"))
    assert.is_nil(endpoints.documented("okta", "GET", "/api/v1/made/up"))
    assert.truthy(endpoints.documented("office365", "GET", "/api/v1.0/t-1/activity/feed/audit/a$b$c"))
    assert.is_nil(endpoints.load("no-such-app"))
    -- {Key+}: one segment or more
    assert.equal("/{Bucket}/{Key+}", endpoints.documented("aws", "GET", "/acme-data/backup/2025/credentials.csv"))
    assert.equal("/{Bucket}/{Key+}", endpoints.documented("aws", "DELETE", "/acme-data/credentials.csv"))
    assert.is_nil(endpoints.documented("aws", "DELETE", "/acme-data/"))
    assert.is_nil(endpoints.documented("aws", "DELETE", "/acme-data"))
  end)

  it("lists a trace's undocumented requests of apps it knows, once each", function()
    local path = helpers.tmp_dir() .. "/trace"
    local fh = assert(io.open(path, "wb"))
    for _, r in ipairs {
      { method = "GET", url = "http://127.0.0.1:1/api/v1/users?limit=200", app = "okta" },
      { method = "GET", url = "http://127.0.0.1:1/api/v1/secret/backdoor", app = "okta" },
      { method = "GET", url = "http://127.0.0.1:1/api/v1/secret/backdoor?x=1", app = "okta" },
      { method = "GET", url = "http://127.0.0.1:1/anything", app = "no-list" },
      { method = "GET", url = "http://127.0.0.1:1/anything" },
    } do fh:write(json.encode(r), "\n") end
    fh:close()
    local bad, checked = endpoints.undocumented(path)
    assert.equal(3, checked)
    assert.same({ "okta GET /api/v1/secret/backdoor" }, bad)
  end)
end)
