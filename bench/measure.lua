-- bench/measure.lua — what several benches read the same way.  Benches run under `cachost script`, whose
-- require path is scripts/, so they load this with dofile beside their own file (arg[0]).
local M = {}

-- the process's peak resident memory (VmHWM), in MB
function M.peak_rss_mb()
  local f = assert(io.open("/proc/self/status")); local status = f:read("a"); f:close()
  return tonumber(status:match("VmHWM:%s*(%d+) kB")) / 1024
end

-- the load average's three figures ("0.12 0.30 0.25"): a busy machine makes every figure worse
function M.load()
  local f = assert(io.open("/proc/loadavg")); local line = f:read("l"); f:close()
  return line:match("^(%S+ %S+ %S+)")
end

-- CPU seconds and calls per key (an SQL statement, a route), counted only while `on`: tally.add(key, seconds);
-- tally.list() gives { key =, t =, n = } each, tally.total() their seconds
function M.tally()
  local by, t = {}, { on = false }
  function t.add(k, s)
    if not t.on then return end
    local e = by[k]
    if not e then e = { t = 0, n = 0 }; by[k] = e end
    e.t, e.n = e.t + s, e.n + 1
  end
  function t.list()
    local rows = {}
    for k, e in pairs(by) do rows[#rows + 1] = { key = k, t = e.t, n = e.n } end
    return rows
  end
  function t.total()
    local s = 0
    for _, e in pairs(by) do s = s + e.t end
    return s
  end
  return t
end

return M
