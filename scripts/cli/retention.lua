-- cachost retention — apply the retention once (cachost run does it every hour).
local runtime = require "runtime"
local instances = require "instances"
local format = require "format"
local retention = require "retention"

return {
  summary = "delete events and change history older than each instance's retention",
  usage = ([[usage: cachost retention [INSTANCE] [--dry-run] [--format table|json|csv]
Deletes the activities and changes rows older than the instance's retention, in small transactions (a
sync running meanwhile waits one batch at most), and prints what it deleted per instance and table.
Settings: retention_days (default %d; 0 keeps forever), retention_days_activities, retention_days_changes.
Nothing else is deleted: inventory, alerts, governance records and policy state are kept, and so are the
rows of pages the policies have not evaluated yet.  cachost run applies it every hour.  Then the free
pages beyond a quarter of the file are given back to the file system (databases created since the
compressed storage, which have incremental auto-vacuum).
--dry-run counts what would go.]]):format(retention.DEFAULT_DAYS),
  options = { { "dry-run" }, { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local st = runtime.store()
    local list
    if args[1] then
      local inst, err = instances.instance(st, args[1])
      if not inst then return ctx.fail("%s", err) end
      list = { inst }
    else
      list = instances.all(st)
    end
    local rows = {}
    for _, inst in ipairs(list) do
      local r, err = retention.run(st, inst, { dry_run = opts["dry-run"] })
      if not r then return ctx.fail("%s", err) end
      for _, x in ipairs(r) do rows[#rows + 1] = x end
    end
    -- then the free pages beyond a quarter of the file go back to the file system
    if not opts["dry-run"] then retention.release(st) end
    format.rows(rows, { "instance", "table", "days", "before", "deleted" }, opts.format or "table")
    return 0
  end,
}
