-- 200 instances asked to sync at once in one process (against one sandbox tenant in another process);
-- runtime.sync lets runtime.MAX_SCANS of them scan at a time, as the daemon does.  Prints how long all
-- took, the spread of completion times (none starved), and peak memory.
local url, n = arg[1], tonumber(arg[2] or 200)
local runtime = require "runtime"
local instances = require "instances"
local st = runtime.store()
for i = 1, n do
  assert(instances.add(st, "okta", ("okta-%03d"):format(i), { domain = "bench.okta.com", base_url = url,
    insecure_loopback = "true", api_token = "00sandbox-okta-api-token" }))
end
local t0 = sched.now()
local done, failed = {}, 0
local tasks = {}
for _, inst in ipairs(instances.all(runtime.store())) do
  tasks[#tasks + 1] = sched.spawn(function()
    local _, ok = runtime.sync(inst)
    if not ok then failed = failed + 1 end
    done[#done + 1] = sched.now() - t0
  end)
end
for _, t in ipairs(tasks) do t:join() end
table.sort(done)
local f = io.open("/proc/self/status"); local status = f:read("a"); f:close()
local rows = st.db:query("SELECT count(*) AS n FROM users")[1].n
print(("%d instances, at most %d scanning at once: all done in %.1f s (%d failed); first finished at %.1f s, median %.1f s, last %.1f s; %d user rows")
  :format(#done, runtime.MAX_SCANS, sched.now() - t0, failed, done[1], done[#done // 2 + 1], done[#done], rows))
print(("cachost CPU %.1f s of that (the rest waits for the sandbox tenant, one Lua process); peak memory %s")
  :format(os.clock(), status:match("VmHWM:%s*(%d+ kB)")))
