-- policy_resume_spec.lua — issue 10, defect 7: a page committed but not evaluated when the process dies
-- is evaluated after the restart, and every alert (with its planned actions) exists exactly once.
-- The crash is the process dying right after a page's commit (on_feed never runs for it, nor for
-- anything after); the restart forgets everything in memory, as a new process would.
local helpers = require "helpers"
local policy = require "policy"

local function write(dir, name, text)
  local f = assert(io.open(dir .. "/" .. name .. ".lua", "w")); f:write(text); f:close()
end

describe("policy evaluation after a crash", function()
  local t, srv, inst, runtime, sync
  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    runtime = require "runtime"
    sync = require "sync"
    t = require("sandbox.okta").new { seed = 21, users = 15, events_per_day = 700, days = 3 }
    srv = helpers.serve(t)
    inst = helpers.instance("okta", "o", { domain = "x", base_url = srv.url, insecure_loopback = true }, { api_token = t.token })
    assert(host.mkdir(host.home .. "/policies", 448))
    -- one alert (and one planned suspension) per event: every event must be evaluated exactly once
    write(host.home .. "/policies", "every_event", [[return policy { name = "every event", on = "activity",
      match = function(r) return r.actor ~= nil end, alert = "{action} by {actor}", actions = { "alert", "suspend_user" } }]])
    runtime.policies(true)
  end)
  after_each(function() runtime.watch(false); srv:close(); policy.forget() end)

  local function check_once()
    local events = helpers.count("SELECT count(*) n FROM activities WHERE instance_id = ? AND actor IS NOT NULL", inst.id)
    assert.is_true(events > 2000, "several pages of events")
    local missing = helpers.count([[SELECT count(*) n FROM activities a WHERE a.instance_id = ? AND a.actor IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM alerts WHERE policy = 'every_event' AND entity_id = a.ext_id)]], inst.id)
    assert.equal(0, missing, "events never evaluated")
    assert.equal(events, helpers.count("SELECT count(*) n FROM alerts WHERE policy = 'every_event'"))
    -- the actions planned for an alert were planned once: one dry run per alert
    assert.equal(events, helpers.count("SELECT count(*) n FROM governance_actions WHERE policy = 'every_event'"))
    assert.equal(0, helpers.count("SELECT count(*) n FROM policy_pending"))
    return events
  end

  it("evaluates the pages committed before the crash first, each alert raised once", function()
    runtime.watch(true)
    -- the first run dies right after the commit of its second page of events
    local context = require "sdk.context"
    local real, pages = context.on_feed, 0
    context.on_feed = function(ctx, entity, feed, mark)
      if entity == "activities" then
        pages = pages + 1
        if pages == 2 then error("killed", 0) end
      end
      return real(ctx, entity, feed, mark)
    end
    local results = runtime.sync(inst)
    local failed
    for _, r in ipairs(results) do if r.error then failed = r.error end end
    assert.matches("^killed", failed)
    local noted = helpers.count("SELECT count(*) n FROM policy_pending")
    assert.is_true(noted >= 1)
    -- the restart: nothing of the first process's memory survives (unsaved windows, evaluated notes)
    policy.forget()
    runtime.policies(true)
    runtime.watch(true)
    helpers.sync_ok(inst)
    local events = check_once()
    -- and a third run changes nothing
    policy.forget()
    helpers.sync_ok(inst)
    check_once()
    helpers.figure("policy crash: %d page(s) committed and not evaluated at the crash, %d events, each alert and action once, 0 lost, 0 duplicated",
      noted, events)
  end)

  it("evaluates pages already evaluated but not saved again: alerts and actions once each", function()
    runtime.watch(true)
    helpers.sync_ok(inst)
    -- as if the process died before the windows and notes of the last pages were saved
    local db = runtime.store().db
    local pages = db:query("SELECT min(id) lo, max(id) hi, count(*) n FROM activities WHERE instance_id = ?", inst.id)[1]
    assert(db:exec([[INSERT INTO policy_pending (instance_id, source, first_id, last_id, first_scan, created_at)
      VALUES (?, 'activities', ?, ?, 0, '2024-01-01T00:00:00.000Z')]], inst.id, pages.lo, pages.hi))
    -- and some died between their actions (recorded) and their alert (not written)
    assert(db:exec([[DELETE FROM alerts WHERE policy = 'every_event' AND entity_id IN
      (SELECT ext_id FROM activities WHERE instance_id = ? ORDER BY id DESC LIMIT 100)]], inst.id))
    policy.forget()
    helpers.sync_ok(inst)
    check_once()
  end)
end)
