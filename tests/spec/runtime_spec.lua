-- runtime_spec.lua — scripts/runtime.lua: scans of many instances share a bounded number of slots.
local helpers = require "helpers"
local store = require "store"

describe("runtime.sync", function()
  local runtime, sync, real_run
  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    runtime = require "runtime"
    sync = require "sync"
    real_run = sync.run
  end)
  after_each(function() sync.run = real_run end)

  -- No wall clock: every scan parks until the spec lets it go, and the spec only counts loop turns.
  it("runs at most max_scans scans at once; the others wait their turn and all complete", function()
    local st = runtime.store()
    local now = store.now()
    for i = 1, 7 do
      assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('okta', ?, '{}', ?, ?)",
        "o" .. i, now, now))
    end
    local parked, most, done = {}, 0, 0
    sync.run = function()
      parked[#parked + 1] = sched.current()
      most = math.max(most, #parked)
      sched.suspend()                       -- until the spec wakes it
      return { added = 0 }
    end
    -- let the loop run (at most `turns` turns) until cond() holds
    local function settle(cond, turns)
      for _ = 1, turns or 1000 do
        if cond() then return true end
        sched.sleep(0)
      end
      return cond()
    end
    runtime.set_max_scans(3)
    local tasks = {}
    finally(function()                      -- a failure must not leave scans parked for ever
      for _, t in ipairs(tasks) do if t:status() ~= "done" then t:cancel() end end
      runtime.set_max_scans(runtime.MAX_SCANS)
    end)
    for i = 1, 7 do
      local inst = assert(require("instances").instance(runtime.store(), "o" .. i))
      tasks[i] = sched.spawn(function()
        local _, ok = runtime.sync(inst, { streams = { "users" } })
        if ok then done = done + 1 end
      end)
    end
    -- three scans start; however many turns the loop takes, a fourth does not
    assert.is_true(settle(function() return #parked == 3 end))
    settle(function() return #parked > 3 end, 200)
    assert.equal(3, #parked)
    -- each scan that ends hands its slot to exactly one waiting scan
    local finished = 0
    while finished < 7 do
      local t = table.remove(parked, 1)
      assert.is_not_nil(t, "a scan waits while a slot is free")
      sched.wake(t)
      finished = finished + 1
      local want = math.min(3, 7 - finished)
      assert.is_true(settle(function() return #parked == want and done == finished end))
    end
    for _, t in ipairs(tasks) do assert.equal("done", t:status()) end
    assert.equal(3, most)
    assert.equal(7, done)
    -- a scan that raises gives its slot back: the fourth of four failing scans still gets a slot
    sync.run = function() error("boom", 0) end
    local errors = {}
    tasks[#tasks + 1] = sched.spawn(function()
      for i = 1, 4 do
        local ok, err = pcall(runtime.sync, assert(require("instances").instance(runtime.store(), "o" .. i)), { streams = { "users" } })
        errors[#errors + 1] = not ok and err
      end
    end)
    assert.is_true(settle(function() return tasks[#tasks]:status() == "done" end), "the fourth waits on a leaked slot")
    assert.same({ "boom", "boom", "boom", "boom" }, errors)
  end)
end)
