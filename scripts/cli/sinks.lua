-- cachost sinks — where alerts go ($CACHOST_HOME/sinks.json): each sink's health, and a test message.
local runtime = require "runtime"
local sinks = require "sinks"
local format = require "format"

return {
  summary = "alert sinks (webhook, Slack, syslog, email): health and a test message",
  usage = [[usage: cachost sinks [list] [--format table|json|csv]
       cachost sinks test NAME
Sinks are configured in $CACHOST_HOME/sinks.json (see README: a JSON array; secrets are named by the
environment variables that hold them).  cachost run delivers every alert raised after a sink was first
configured, from a persistent outbox, retrying with backoff while the sink is down.  'list' shows per sink
the deliveries waiting and done and the last error; 'test' sends a test message now.]],
  options = { { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local list, err = sinks.load(host.home)
    if not list then return ctx.fail("%s", err) end
    local sub = args[1] or "list"
    if sub == "test" then
      for _, s in ipairs(list) do
        if s.name == args[2] then
          local ok, terr = sinks.test(s)
          if not ok then return ctx.fail("sink %s: %s", s.name, terr) end
          ctx.out("sent a test message to %s (%s)\n", s.name, s.kind)
          return 0
        end
      end
      local names = {}
      for i, s in ipairs(list) do names[i] = s.name end
      return ctx.fail("no sink named '%s'%s", tostring(args[2]), format.did_you_mean(args[2] or "", names))
    elseif sub ~= "list" then
      return ctx.usage_error(ctx.load_command("sinks"), "unknown subcommand '" .. sub .. "'")
    end
    local health = {}
    for _, h in ipairs(runtime.store():sink_health()) do health[h.sink] = h end
    local rows = {}
    for _, s in ipairs(list) do
      local h = health[s.name] or {}
      rows[#rows + 1] = { name = s.name, kind = s.kind, min_severity = s.min_severity, waiting = h.waiting or 0,
                          delivered = h.delivered or 0, last_error = h.last_error }
    end
    format.rows(rows, { "name", "kind", "min_severity", "waiting", "delivered", "last_error" }, opts.format or "table")
    return 0
  end,
}
