-- Issue 10, defect 4: a malformed 200 must never mass-delete.  A listing that is not what the provider
-- documents (an object where the list was, {"error":"maintenance"}) or whose items cannot be read is no
-- complete listing: every stored user stays, and the stream's health carries a clear error.
local runtime = require "runtime"
local tenants = require "tenants"
local helpers = require "helpers"

local function last_error(inst, stream)
  return runtime.store():stream(inst.id, stream).last_error
end

describe("a malformed 200 on a listing", function()
  local running = {}
  setup(function() host.home = helpers.tmp_dir() end)
  teardown(function() for _, r in pairs(running) do r.srv:close() end end)

  for _, app in ipairs(tenants.APPS) do
    describe(app, function()
      local r, live
      setup(function()
        r = tenants.start(app, app .. "-m")
        running[app] = r
        helpers.sync_ok(r.inst, { streams = { "users" } })
        live = helpers.n_of("users", r.inst)
        assert.is_true(live >= 2, app .. " has users: " .. live)
      end)

      for _, case in ipairs {
        { kind = "shape", says = "malformed listing: expected" },   -- {"error":"maintenance"} where the list was
        { kind = "garbled", says = "malformed items: " },          -- every item unreadable
      } do
        it(("keeps every user and reports it (%s)"):format(case.kind), function()
          r.tenant:fault { kind = case.kind, path = tenants.USERS_PATH[app], count = 1 }
          local results, ok = runtime.sync(r.inst, { streams = { "users" } })
          assert.is_false(ok)
          assert.matches(case.says, results[1].error, 1, true)
          assert.is_nil(results[1].error:find("\n"), "one line")
          assert.equal(live, helpers.n_of("users", r.inst))
          assert.equal(0, helpers.count("SELECT count(*) n FROM users WHERE instance_id = ? AND deleted_at IS NOT NULL", r.inst.id))
          assert.matches(case.says, last_error(r.inst, "users"), 1, true)
          -- a clean listing afterwards completes and clears the error
          helpers.sync_ok(r.inst, { streams = { "users" } })
          assert.equal(live, helpers.n_of("users", r.inst))
          assert.is_nil(last_error(r.inst, "users"))
        end)
      end
    end)
  end

  it("box: an offset page without total_count does not end the listing", function()
    local r = running.box
    helpers.sync_ok(r.inst, { streams = { "groups" } })
    local groups = helpers.n_of("groups", r.inst)
    assert.is_true(groups >= 2)
    -- one real-looking group and no total_count: read as the last page, the other groups would go
    r.tenant:fault { kind = "malformed", path = "/groups$", count = 1,
      body = '{"entries":[{"id":"9001","type":"group","name":"Maintenance"}],"limit":1000,"offset":0}' }
    local results, ok = runtime.sync(r.inst, { streams = { "groups" } })
    assert.is_false(ok)
    assert.matches("^malformed listing: no total_count", results[1].error)
    assert.equal(groups, helpers.n_of("groups", r.inst))
  end)

  it("refuses a body of the wrong shape whatever the listing (SDK)", function()
    local Client = require "sdk.client"
    local function dec(s) return json.decode(s) end
    assert.same({}, Client.listing(dec("[]")))
    assert.equal(2, #Client.listing(dec('{"value":[1,2]}'), "value"))
    local cases = {
      { '{"error":"maintenance"}', nil, "expected a JSON array, got an object" },
      { '"maintenance"', nil, "expected a JSON array, got a string" },
      { '[]', "value", "expected an object with a 'value' array, got an array" },
      { '{"error":"maintenance"}', "entries", "expected 'entries' to be a JSON array, got nothing" },
      { '{"value":{"error":"x"}}', "value", "expected 'value' to be a JSON array, got an object" },
      { '{"value":null}', "value", "expected 'value' to be a JSON array, got null" },
    }
    for _, c in ipairs(cases) do
      local items, err = Client.listing(dec(c[1]), c[2])
      assert.is_nil(items)
      assert.equal("malformed listing: " .. c[3], err)
    end
  end)
end)
