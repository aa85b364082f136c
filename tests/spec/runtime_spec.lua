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

  it("runs at most max_scans scans at once; the others wait their turn and all complete", function()
    local st = runtime.store()
    local now = store.now()
    for i = 1, 7 do
      assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('okta', ?, '{}', ?, ?)",
        "o" .. i, now, now))
    end
    local running, most, done = 0, 0, 0
    sync.run = function()
      running = running + 1
      most = math.max(most, running)
      sched.sleep(0.01)
      running = running - 1
      return { added = 0 }
    end
    runtime.set_max_scans(3)
    local tasks = {}
    for i = 1, 7 do
      local inst = assert(runtime.instance("o" .. i))
      tasks[i] = sched.spawn(function()
        local _, ok = runtime.sync(inst, { streams = { "users" } })
        if ok then done = done + 1 end
      end)
    end
    for _, t in ipairs(tasks) do assert.is_true((t:join(5))) end
    assert.equal(3, most)
    assert.equal(7, done)
    -- a scan that raises gives its slot back
    sync.run = function() error("boom", 0) end
    local errors = {}
    local t = sched.spawn(function()
      for i = 1, 4 do
        local ok, err = pcall(runtime.sync, assert(runtime.instance("o" .. i)), { streams = { "users" } })
        errors[#errors + 1] = not ok and err
      end
    end)
    local finished = t:join(2)         -- the fourth would wait for ever on a leaked slot
    if not finished then t:cancel() end
    assert.is_true(finished)
    assert.same({ "boom", "boom", "boom", "boom" }, errors)
    runtime.set_max_scans(runtime.MAX_SCANS)
  end)
end)
