-- Health of every instance and stream: "no new data" is told apart from "broken".
local runtime = require "runtime"
local instances = require "instances"
local format = require "format"
local sync = require "sync"

return {
  summary = "health of each instance and stream",
  usage = [[usage: cachost status [INSTANCE] [--size] [--format table|json|csv]
One row per instance and stream: status (ok; reconnect needed: the credential is dead; permission
missing: <what>: this stream may not be read, the others go on; unavailable (needs <plan>): the
tenant's plan does not offer it; error; running; never run; disabled), last successful scan, last error, and the
counts of the last scan.  Then (or, with --size, alone: in every format) the space each table takes per
instance: rows and bytes (its pages and its indexes' pages, shared among instances by their rows).]],
  options = { { "format", arg = true, short = "f" }, { "size" } },
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
    local fmt = opts.format or "table"
    if not opts.size then
      format.rows(rows, { "instance", "app", "stream", "status", "last_success", "last_scan", "error" }, fmt)
      if fmt ~= "table" then return 0 end
      io.stdout:write("\n")
    end
    local names = {}
    for _, inst in ipairs(instances.all(st)) do names[inst.id] = inst.name end
    local sizes = {}
    for _, r in ipairs(st:table_sizes()) do
      local name = r.instance_id and (names[r.instance_id] or ("#" .. r.instance_id .. " (removed)")) or "-"
      if not args[1] or args[1] == name then
        sizes[#sizes + 1] = { instance = name, table = r.table, rows = r.rows, bytes = r.bytes }
      end
    end
    format.rows(sizes, { "instance", "table", "rows", "bytes" }, fmt)
    return 0
  end,
}
