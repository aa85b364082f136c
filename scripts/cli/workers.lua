-- cachost workers — the workers sharing this store (PostgreSQL): their heartbeats and leases.
local runtime = require "runtime"
local format = require "format"
local util = require "sdk.util"

return {
  summary = "the workers sharing a PostgreSQL store: heartbeats and leases",
  usage = [[usage: cachost workers [--leases] [--format table|json|csv]
Lists every `cachost run` worker of the shared store (CACHOST_STORE=postgresql://...): its heartbeat (how
many seconds ago, by the database's clock), whether it is running, and how many instances it holds a
lease on.  --leases lists each instance's lease instead: which worker holds it, until when.]],
  options = { { "leases" }, { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local st = runtime.store()
    if opts.leases then
      format.rows(st:lease_rows(), { "instance", "worker", "acquired_at", "expires_at", "expired" }, opts.format or "table")
      return 0
    end
    local rows = {}
    for _, w in ipairs(st:worker_rows()) do
      local ago = util.parse_iso(w.now) - util.parse_iso(w.heartbeat)
      rows[#rows + 1] = { worker = w.id, state = w.stopped_at and "stopped" or "running", heartbeat = w.heartbeat,
                          seconds_ago = math.floor(ago * 10 + 0.5) / 10, leases = w.leases, metrics = w.metrics }
    end
    format.rows(rows, { "worker", "state", "heartbeat", "seconds_ago", "leases", "metrics" }, opts.format or "table")
    return 0
  end,
}
