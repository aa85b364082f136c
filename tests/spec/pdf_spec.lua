-- pdf_spec.lua — PDF text extraction in a child process, seen from tasks: the loop goes on meanwhile,
-- and a cancelled extraction leaves no child behind.
local function fixture(name) return require("helpers").fixture("pdf/" .. name) end

-- the pids of this process's children, zombies included
local function children()
  local me = tostring(host.pid())
  local out = {}
  for _, d in ipairs(host.listdir("/proc") or {}) do
    if d:match("^%d+$") then
      local f = io.open("/proc/" .. d .. "/stat")
      local stat = f and f:read("a")
      if f then f:close() end
      -- pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis
      local ppid = stat and stat:match("%) %a (%d+)")
      if ppid == me then out[#out + 1] = d end
    end
  end
  return out
end

describe("pdf.text in a task", function()
  it("extracts in a child while other tasks keep running", function()
    local big = fixture("big.pdf")
    local ticks, done = 0, false
    local ticker = sched.spawn(function() while not done do ticks = ticks + 1; sched.sleep(0) end end)
    local tasks = {}
    for i = 1, 4 do tasks[i] = sched.spawn(function() return pdf.text(big) end) end
    for i = 1, 4 do
      local ok, text = tasks[i]:join(10)
      assert.is_true(ok)
      assert.equal(1000, select(2, text:gsub("card 4111 1111 1111 1111", "")))
    end
    done = true
    ticker:join(1)
    assert.is_true(ticks > 4)     -- the loop turned while the children parsed
    assert.same({}, children())
  end)

  it("a cancelled extraction kills and reaps its child", function()
    local big = fixture("big.pdf")
    local tasks = {}
    for i = 1, 6 do tasks[i] = sched.spawn(function() return pdf.text(big) end) end
    sched.sleep(0)                 -- they have forked and wait on their pipes
    assert.equal(6, #children())
    for _, t in ipairs(tasks) do t:cancel() end
    assert.same({}, children())     -- killed and reaped at once
    for _, t in ipairs(tasks) do assert.same({ false, "cancelled" }, { t:join(1) }) end
    -- and extraction still works afterwards
    assert.matches("4111 1111 1111 1111", pdf.text(fixture("cards.pdf")))
  end)
end)
