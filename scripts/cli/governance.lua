local runtime = require "runtime"
local instances = require "instances"
local governance = require "governance"
local format = require "format"

local function by_id(id)
  for _, i in ipairs(instances.all(runtime.store())) do if i.id == id then return i end end
  error("instance " .. tostring(id) .. " no longer exists", 0)
end

return {
  summary = "kill switch, log, retry and undo of governance actions",
  usage = [[usage: cachost governance pause | resume | status | log [--limit N] [--format F] | retry ID | undo ID
       | reconcile [INSTANCE]
  pause    stop every automatic action at once (policies keep planning and alerting)
  resume   let automatic actions run again
  log      every action planned, held or taken, newest first
  retry    run a held or failed action again
  undo     reverse an executed action where the API allows
  reconcile  settle actions whose outcome is unknown (interrupted after they were sent) by a
           re-fetch of their target: succeeded or failed, with a note]],
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
      local st = runtime.store()
      governance.settle_orphans(st)
      local open = #st:unsettled_actions()
      ctx.out("%s%s\n", governance.paused() and "paused" or "active", open > 0 and
        (", %d action(s) in flight or with an unknown outcome (cachost governance reconcile)"):format(open) or "")
    elseif sub == "log" then
      local n = tonumber(opts.limit or 50)
      if not n then return ctx.usage_error(ctx.load_command("governance"), "--limit takes a number") end
      local st = runtime.store()
      governance.settle_orphans(st)      -- pending rows of a process that is gone show as unknown
      format.rows(st:action_log(n), { "id", "created_at", "instance", "action", "target", "by", "mode", "result",
        "provider_status", "error", "note" }, opts.format or "table")
    elseif sub == "reconcile" then
      local list = instances.all(runtime.store())
      if args[2] then
        local inst, err = instances.instance(runtime.store(), args[2])
        if not inst then return ctx.fail("%s", err) end
        list = { inst }
      end
      local total, failed = { ok = 0, failed = 0, unknown = 0 }, false
      for _, inst in ipairs(list) do
        local counts, err = governance.reconcile(runtime.store(), inst)
        if not counts then ctx.err("cachost: %s: %s\n", inst.name, err); failed = true
        else for k, v in pairs(counts) do total[k] = (total[k] or 0) + v end end
      end
      ctx.out("reconciled: %d succeeded, %d failed, %d still unknown\n", total.ok, total.failed, total.unknown)
      if failed then return 1 end
    elseif sub == "retry" or sub == "undo" then
      local id = math.tointeger(tonumber(args[2] or ""))
      if not id then return ctx.usage_error(ctx.load_command("governance"), sub .. " needs an action ID") end
      local rec, err = governance[sub](runtime.store(), by_id, id)
      if not rec then return ctx.fail("%s", err) end
      format.rows({ rec }, { "id", "action", "target", "mode", "result", "error" }, opts.format or "table")
      return rec.result == "ok" and 0 or 1
    else
      return ctx.usage_error(ctx.load_command("governance"), "expected pause, resume, status, log, retry, undo or reconcile")
    end
    return 0
  end,
}
