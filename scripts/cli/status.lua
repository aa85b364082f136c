-- Health of every instance and stream: "no new data" is told apart from "broken".
local runtime = require "runtime"
local instances = require "instances"
local format = require "format"
local sync = require "sync"

return {
  summary = "health of each instance and stream",
  usage = [[usage: cachost status [INSTANCE] [--format table|json|csv]
One row per instance and stream: status (ok; reconnect needed: the credential is dead; permission
missing: <what>: this stream may not be read, the others go on; unavailable (needs <plan>): the
tenant's plan does not offer it; error; running; never run; disabled), last successful scan, last error, and the
counts of the last scan.]],
  options = { { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local st = runtime.store()
    if args[1] then
      local _, err = instances.instance(runtime.store(), args[1])
      if err then return ctx.fail("%s", err) end
    end
    local rows = {}
    for _, inst in ipairs(instances.all(runtime.store())) do
      if not args[1] or args[1] == inst.name then
        local states = st:stream_states(inst.id)
        if #states == 0 then
          rows[#rows + 1] = { instance = inst.name, app = inst.app, stream = "-", status = inst.enabled and "never run" or "disabled" }
        end
        for _, s in ipairs(states) do
          local err = s.last_error and sync.redact(st, inst, s.last_error) or nil
          local status = not inst.enabled and "disabled" or sync.health(err)
            or (s.last_success and "ok") or "running"
          local counts = json.decode(s.counts or "null")
          local summary = {}
          if type(counts) == "table" then
            for entity, c in pairs(counts) do summary[#summary + 1] = ("%s +%d ~%d -%d"):format(entity, c.added or 0, c.changed or 0, c.removed or 0) end
            table.sort(summary)
          end
          rows[#rows + 1] = { instance = inst.name, app = inst.app, stream = s.stream, status = status,
            last_success = s.last_success, error = err,
            last_scan = table.concat(summary, ", ") }
        end
      end
    end
    format.rows(rows, { "instance", "app", "stream", "status", "last_success", "last_scan", "error" }, opts.format or "table")
    return 0
  end,
}
