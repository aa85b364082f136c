-- procs.lua — other processes for the end-to-end specs: the built binary in the background (a daemon, a
-- sandbox tenant, a sync), waiting for what it writes, stopping it.  Required as "procs".
local M = {}

M.BIN = os.getenv("CACHOST_BIN") or "./build/cachost"

-- sh(cmd) -> output (stdout and stderr), exit code
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- spawn(cmd, log) -> pid: cmd in the background, its output to the file log.
function M.spawn(cmd, log)
  return assert(M.sh(("%s >%s 2>&1 & echo $!"):format(cmd, log)):match("%d+"), "could not start " .. cmd)
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

-- wait_for(path, pattern, seconds) -> the file's content once it matches pattern; raises after seconds
-- (a bound for a hung process, not a measure: everything waited for happens much sooner).
function M.wait_for(path, pattern, seconds)
  local deadline = sched.now() + (seconds or 30)
  while true do
    local s = slurp(path)
    if s:match(pattern) then return s end
    if sched.now() > deadline then error(("timed out waiting for %q in %s, which ends:\n%s"):format(pattern, path, s:sub(-1500)), 2) end
    sched.sleep(0.05)
  end
end

function M.alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

-- stop(pid[, signal][, seconds]) -> true once the process has ended (kill -9 after seconds: false).
function M.stop(pid, signal, seconds)
  os.execute(("kill -%s %s 2>/dev/null"):format(signal or "TERM", pid))
  local deadline = sched.now() + (seconds or 30)
  while M.alive(pid) do
    if sched.now() > deadline then os.execute("kill -9 " .. pid); return false end
    sched.sleep(0.05)
  end
  return true
end

-- Seconds of CPU the process has used (user + system): a process that computes shows it is at work.
function M.cpu(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local fields = {}
  for w in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100     -- utime, stime in clock ticks (USER_HZ)
end

-- sandbox(dir, "okta --size 50") -> url, pid: one sandbox tenant serving in the background.
function M.sandbox(dir, args)
  local pid = M.spawn(("%s sandbox %s"):format(M.BIN, args), dir .. "/tenants.txt")
  return M.wait_for(dir .. "/tenants.txt", "http://[%d%.:]+", 30):match("(http://[%d%.:]+)"), pid
end

-- A home for a spec that drives `cachost sandbox APP` as a newcomer does:
--   home = procs.home(dir); home:run(args) -> output, code of `cachost ARGS` there;
--   home:connect_line(sandbox_args, var) -> the `VAR=... cachost instance add ...` line the sandbox prints,
--     ready to run (with this binary); home:stop() stops that sandbox.
local Home = {}
Home.__index = Home
function M.home(dir) return setmetatable({ dir = dir }, Home) end
function Home:run(args) return M.sh(("CACHOST_HOME='%s' %s %s </dev/null"):format(self.dir, M.BIN, args)) end
function Home:connect_line(sandbox_args, var)
  self.pid = M.spawn(("CACHOST_HOME='%s' %s sandbox %s"):format(self.dir, M.BIN, sandbox_args), self.dir .. "/sandbox")
  local out = M.wait_for(self.dir .. "/sandbox", var .. "=[^\n]+instance add[^\n]+\n")
  return (out:match("(" .. var .. "=[^\n]+)"):gsub(" cachost ", " " .. M.BIN .. " ", 1))
end
function Home:stop() if self.pid then M.stop(self.pid) end end

-- start(args[, env]) -> pid, job: `cachost ARGS` in the background, with its exit status kept (job.rc,
-- written by the shell that waited for it; job.out, job.err).  env: "NAME=value ..." before it.
local jobs = 0
function M.start(args, env)
  jobs = jobs + 1
  local job = ("%s-job%d"):format(os.tmpname(), jobs)
  os.execute(("(%s sh -c 'echo $$ >%s.pid; exec %s %s' >%s.out 2>%s.err </dev/null; echo $? >%s.rc) &")
    :format(env or "", job, M.BIN, args, job, job, job))
  return M.wait_for(job .. ".pid", "%d+\n", 30):match("%d+"), job
end

-- finish(job[, pid, seconds]) -> exit status, stdout .. stderr, stdout.  With pid, a job still running
-- after seconds is killed (status 137).
function M.finish(job, pid, seconds)
  local function done() return slurp(job .. ".rc"):match("%d+") end
  if pid then
    local deadline = sched.now() + seconds
    while not done() and sched.now() < deadline do sched.sleep(0.02) end
    if not done() then os.execute("kill -9 " .. pid) end
  end
  M.wait_for(job .. ".rc", "%d+", 30)
  local rc, out = tonumber(done()), slurp(job .. ".out")
  local both = out .. slurp(job .. ".err")
  os.execute(("rm -f %s.pid %s.out %s.err %s.rc"):format(job, job, job, job))
  return rc, both, out
end

return M
