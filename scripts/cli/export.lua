-- cachost export — alerts and activities for a SIEM, as OCSF events (one JSON object a line).
local runtime = require "runtime"
local instances = require "instances"
local ocsf = require "ocsf"
local util = require "sdk.util"

return {
  summary = "export alerts and activities as OCSF events for a SIEM",
  usage = [[usage: cachost export [--format ocsf] [--since 1d|12h|ISO-TIME] [--instance NAME] [--only alerts|activities] [--raw]
Writes one OCSF 1.1 event a line (JSON Lines) on stdout: alerts as Detection Finding (2004), sign-ins as
Authentication (3002), account lifecycle changes as Account Change (3001), file actions as File Hosting
Activity (6006).  Other activities have no OCSF class here and are skipped (their count goes to stderr).
--since defaults to 1d; --raw adds each provider's record under unmapped.raw.]],
  options = { { "format", arg = true, short = "f" }, { "since", arg = true }, { "instance", arg = true, short = "i" },
              { "only", arg = true }, { "raw" } },
  formats = { ocsf = true },
  run = function(opts, args, ctx)
    local usage = function(msg) return ctx.usage_error(ctx.load_command("export"), msg) end
    if args[1] then return usage("unexpected argument '" .. args[1] .. "'") end
    local since_s = opts.since or "1d"
    local n, unit = since_s:match("^(%d+)([dhm])$")
    local since = n and sched.time() - tonumber(n) * ({ d = 86400, h = 3600, m = 60 })[unit] or util.parse_iso(since_s)
    if not since then return usage("--since takes 1d, 12h, 30m or an ISO time") end
    if opts.only and opts.only ~= "alerts" and opts.only ~= "activities" then return usage("--only takes alerts or activities") end
    if opts.instance then
      local _, err = instances.instance(runtime.store(), opts.instance)
      if err then return ctx.fail("%s", err) end
    end
    local st = runtime.store()
    local written, skipped = 0, 0
    for _, what in ipairs { "alerts", "activities" } do
      if not opts.only or opts.only == what then
        local cur = assert(st:export_cursor(what, util.iso(since), opts.instance))
        while true do
          local row, err = cur:next()
          if not row then
            if err then return ctx.fail("%s", err) end
            break
          end
          local e = what == "alerts" and ocsf.finding(row) or ocsf.activity(row, { raw = opts.raw })
          if e then
            io.stdout:write(json.encode(e), "\n")
            written = written + 1
          else
            skipped = skipped + 1
          end
        end
      end
    end
    if skipped > 0 then ctx.err("%d event(s) written; %d activities have no OCSF class here and were skipped\n", written, skipped) end
    return 0
  end,
}
