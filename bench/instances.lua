-- N instances of three apps (Okta, GitHub, Box, in turn) asked to sync at once in one process, against
-- one sandbox tenant of each in another process (the lines `cachost sandbox` printed, in the file arg[1]);
-- runtime.sync lets runtime.MAX_SCANS of them scan at a time, as the daemon does.  Prints how long all
-- took, the spread of completion times (none starved), and peak memory (target: 128 MB for 1,000).
local tenants, n = arg[1], tonumber(arg[2] or 1000)
local runtime = require "runtime"
local instances = require "instances"
local measure = dofile((arg[0]:match("^(.*)/") or ".") .. "/measure.lua")
local st = runtime.store()
local by = {}
for line in io.lines(tenants) do
  local app, _, url, cred = line:match("^(%S+)\t(%S+)\t(%S+)\t(.*)$")
  if app then by[app] = { url = url, cred = cred } end
end
local function kv(cred, k) return cred:match(k .. "=(%S+)") end
local SETTINGS = {
  okta = function(t) return { domain = "bench.okta.com", base_url = t.url, insecure_loopback = "true", api_token = t.cred } end,
  github = function(t) return { org = "acme", base_url = t.url, insecure_loopback = "true", token = t.cred } end,
  box = function(t)
    return { auth = "client_credentials", client_id = kv(t.cred, "client_id"), client_secret = kv(t.cred, "client_secret"),
      enterprise_id = kv(t.cred, "enterprise_id"), base_url = t.url .. "/2.0", upload_base_url = t.url .. "/api/2.0",
      oauth_base_url = t.url, insecure_loopback = "true" }
  end,
}
local APPS = { "okta", "github", "box" }
for i = 1, n do
  local app = APPS[(i - 1) % #APPS + 1]
  assert(instances.add(st, app, ("%s-%04d"):format(app, i), SETTINGS[app](assert(by[app], "no " .. app .. " tenant"))))
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
local rows = st.db:query("SELECT count(*) AS n FROM users")[1].n
print(("%d instances (Okta, GitHub, Box), at most %d scanning at once: all done in %.1f s (%d failed); first finished at %.1f s, median %.1f s, last %.1f s; %d user rows")
  :format(#done, runtime.MAX_SCANS, sched.now() - t0, failed, done[1], done[#done // 2 + 1], done[#done], rows))
local peak = measure.peak_rss_mb()
print(("cachost CPU %.1f s of that (the rest waits for the sandbox tenant, one Lua process); peak memory %.1f MB (target 128 MB: %s); load average %s")
  :format(os.clock(), peak, peak <= 128 and "met" or "NOT met", measure.load()))
