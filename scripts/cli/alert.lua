local runtime = require "runtime"

return {
  summary = "show or resolve one alert",
  usage = "usage: cachost alert show ID | resolve ID [--note TEXT]",
  options = { { "note", arg = true } },
  run = function(opts, args, ctx)
    local id = math.tointeger(tonumber(args[2] or ""))
    if not id or (args[1] ~= "show" and args[1] ~= "resolve") then
      return ctx.usage_error(ctx.load_command("alert"), "expected show ID or resolve ID")
    end
    local st = runtime.store()
    local a = st:alert(id)
    if not a then return ctx.fail("no alert %d", id) end
    if args[1] == "show" then
      for _, k in ipairs { "id", "created_at", "updated_at", "policy", "severity", "status", "title", "entity", "entity_id" } do
        ctx.out("%-11s %s\n", k, tostring(a[k]))
      end
      ctx.out("evidence    %s\n", json.pretty(json.decode(a.evidence or "{}") or {}))
      return 0
    end
    st:resolve_alert(id, opts.note and json.encode { note = opts.note } or nil)
    ctx.out("alert %d resolved\n", id)
    return 0
  end,
}
