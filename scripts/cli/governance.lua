local runtime = require "runtime"
local governance = require "governance"
local format = require "format"

local function by_id(id)
  for _, i in ipairs(runtime.instances()) do if i.id == id then return i end end
  error("instance " .. tostring(id) .. " no longer exists", 0)
end

return {
  summary = "kill switch, log, retry and undo of governance actions",
  usage = [[usage: cachost governance pause | resume | status | log [--limit N] [--format F] | retry ID | undo ID
  pause    stop every automatic action at once (policies keep planning and alerting)
  resume   let automatic actions run again
  log      every action planned, held or taken, newest first
  retry    run a held or failed action again
  undo     reverse an executed action where the API allows]],
  options = { { "limit", arg = true }, { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local sub = args[1]
    if sub == "pause" then
      local ok, err = governance.pause(host.getenv("USER"))
      if not ok then return ctx.fail("%s", err) end
      ctx.out("governance paused: automatic actions are held until 'cachost governance resume'\n")
    elseif sub == "resume" then
      governance.resume()
      ctx.out("governance resumed\n")
    elseif sub == "status" then
      ctx.out("%s\n", governance.paused() and "paused" or "active")
    elseif sub == "log" then
      local n = tonumber(opts.limit or 50)
      if not n then return ctx.usage_error(ctx.load_command("governance"), "--limit takes a number") end
      local rows = assert(runtime.store().db:query([[SELECT g.id, g.created_at, i.name AS instance, g.action, g.target,
          coalesce(g.policy, g.operator) AS by, g.mode, g.result, g.provider_status, g.error
        FROM governance_actions g LEFT JOIN instances i ON i.id = g.instance_id ORDER BY g.id DESC LIMIT ?]], n))
      format.rows(rows, { "id", "created_at", "instance", "action", "target", "by", "mode", "result", "provider_status", "error" },
        opts.format or "table")
    elseif sub == "retry" or sub == "undo" then
      local id = math.tointeger(tonumber(args[2] or ""))
      if not id then return ctx.usage_error(ctx.load_command("governance"), sub .. " needs an action ID") end
      local rec, err = governance[sub](runtime.store(), by_id, id)
      if not rec then return ctx.fail("%s", err) end
      format.rows({ rec }, { "id", "action", "target", "mode", "result", "error" }, opts.format or "table")
      return rec.result == "ok" and 0 or 1
    else
      return ctx.usage_error(ctx.load_command("governance"), "expected pause, resume, status, log, retry or undo")
    end
    return 0
  end,
}
