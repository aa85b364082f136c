-- The governance path against sandbox tenants: what the provider refuses, targets that are gone, the DLP
-- policy quarantining a shared card-number file in Box, and undo.
local runtime = require "runtime"
local governance = require "governance"
local policy = require "policy"
local sync = require "sync"
local store = require "store"

local tmp_home = require("helpers").tmp_dir

local add = require("helpers").instance

describe("governance", function()
  local okta_t, box_t, srv_o, srv_b, okta, box
  setup(function()
    host.home = tmp_home()
    package.loaded.runtime = nil
    runtime = require "runtime"
    okta_t = require("sandbox.okta").new { seed = 11, users = 20, events_per_day = 20 }
    srv_o = assert(server.listen { port = 0 }); okta_t:mount(srv_o)
    okta = add("okta", "o", { domain = "x", base_url = srv_o.url, insecure_loopback = true }, { api_token = okta_t.token })
    box_t = require("sandbox.box").new { seed = 5, client_id = "bc", client_secret = "bs", enterprise_id = "4242" }
    srv_b = assert(server.listen { port = 0 }); box_t:mount(srv_b)
    box = add("box", "b", { client_id = "bc", enterprise_id = "4242", auth = "client_credentials", base_url = srv_b.url .. "/2.0",
      upload_base_url = srv_b.url .. "/api/2.0", oauth_base_url = srv_b.url, insecure_loopback = true }, { client_secret = "bs" })
    assert(select(2, runtime.sync(okta, { streams = { "users" } })))
  end)
  teardown(function() srv_o:close(); srv_b:close(); runtime.watch(false) end)

  it("records a provider's refusal with its status and message", function()
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'deprovisioned' LIMIT 1", okta.id)[1]
    assert(u, "the tenant has deprovisioned users")
    local rec = assert(governance.act { store = runtime.store(), instance = okta, action = "suspend_user", target = u.ext_id, operator = "t" })
    assert.equal("failed", rec.result)
    assert.is_number(rec.provider_status)
    assert.matches("E0000", rec.error)
  end)

  it("records a failure when the target no longer exists at the provider", function()
    local u = runtime.store().db:query("SELECT * FROM users WHERE instance_id = ? AND status = 'active' LIMIT 1", okta.id)[1]
    for _ = 1, 2 do   -- Okta: the first DELETE deactivates, the second deletes
      local r = assert(http.request { method = "DELETE", url = srv_o.url .. "/api/v1/users/" .. u.ext_id,
        headers = { Authorization = "SSWS " .. okta_t.token } })
      assert.equal(204, r.status)
    end
    local rec = assert(governance.act { store = runtime.store(), instance = okta, action = "suspend_user", target = u.ext_id, operator = "t" })
    assert.equal("failed", rec.result)
    assert.equal(404, rec.provider_status)
  end)

  it("refuses what the app cannot do, naming what it can", function()
    local rec, err = governance.act { store = runtime.store(), instance = okta, action = "quarantine_file", target = "x" }
    assert.is_nil(rec)
    assert.matches("cannot quarantine_file; it can: .*suspend_user", err)
  end)

  it("quarantines a card-number file shared publicly (DLP policy in enforce mode) and undoes it", function()
    runtime.watch(true)
    for _, p in ipairs(runtime.policies()) do if p.id == "sensitive_file_shared" then p.mode = "enforce" end end
    assert(select(2, runtime.sync(box, { streams = { "users", "files" } })))
    local db = runtime.store().db
    local q = db:query([[SELECT g.*, f.name FROM governance_actions g JOIN files f ON f.instance_id = g.instance_id
      AND f.ext_id = g.target_id WHERE g.instance_id = ? AND g.action = 'quarantine_file']], box.id)
    assert.is_true(#q >= 1)
    assert.equal("ok", q[1].result)
    local f = box_t:find_file(q[1].target_id)
    assert.equal("cachost quarantine", box_t:path_of(f):match("^/([^/]+)/"))
    local evidence = {}
    for _, a in ipairs(db:query("SELECT evidence FROM alerts WHERE policy = 'sensitive_file_shared'")) do
      evidence[#evidence + 1] = a.evidence
    end
    evidence = table.concat(evidence, "\n")
    assert.matches('"credit_card":{"count":', evidence)          -- the public card-number file was found
    assert.is_nil(evidence:find("4111111111111111", 1, true))   -- masked samples only
    assert.is_nil(evidence:find("4111 1111 1111 1111", 1, true))
    -- each quarantined file's row keeps the outcome of its scan, masked too
    for _, g in ipairs(q) do
      local f = db:query("SELECT * FROM files WHERE instance_id = ? AND ext_id = ?", box.id, g.target_id)[1]
      assert.equal("completed", f.scan_status)
      assert.is_nil(f.scan_reason)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", f.scanned_at)
      local kinds = 0
      for _, m in pairs(json.decode(f.scan_matches)) do
        kinds = kinds + 1
        assert.is_true(m.count >= 1)
        assert.matches("%*", m.samples[1])
      end
      assert.is_true(kinds >= 1)
      for _, raw in ipairs { "4111111111111111", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "MII" } do
        assert.is_nil(f.scan_matches:find(raw, 1, true))
      end
    end
    -- undo: back where it was, tombstone gone
    local undo = assert(governance.undo(runtime.store(), function() return box end, q[1].id, "t"))
    assert.equal("ok", undo.result)
    assert.is_nil(box_t:path_of(box_t:find_file(q[1].target_id)):match("^/cachost quarantine/"))
    -- and the policy does not quarantine it again on the next scan
    assert(select(2, runtime.sync(box, { streams = { "files" } })))
    assert.is_nil(box_t:path_of(box_t:find_file(q[1].target_id)):match("^/cachost quarantine/"))
  end)
end)
