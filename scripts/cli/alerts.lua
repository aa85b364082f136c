local runtime = require "runtime"
local format = require "format"

return {
  summary = "what policies found",
  usage = [[usage: cachost alerts [--open] [--limit N] [--format table|json|csv]
Alerts newest first, deduplicated per policy, entity and hour.  Resolve one: cachost alert resolve ID.]],
  options = { { "open" }, { "limit", arg = true }, { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local n = tonumber(opts.limit or 100)
    if not n then return ctx.usage_error(ctx.load_command("alerts"), "--limit takes a number") end
    local rows = runtime.store():alert_list(n, opts.open)
    format.rows(rows, { "id", "created_at", "instance", "policy", "severity", "status", "title", "entity_id" }, opts.format or "table")
    return 0
  end,
}
