local runtime = require "runtime"
local store = require "store"

return {
  summary = "show or resolve one alert",
  usage = "usage: cachost alert show ID | resolve ID [--note TEXT]",
  options = { { "note", arg = true } },
  run = function(opts, args, ctx)
    local id = math.tointeger(tonumber(args[2] or ""))
    if not id or (args[1] ~= "show" and args[1] ~= "resolve") then
      return ctx.usage_error(ctx.load_command("alert"), "expected show ID or resolve ID")
    end
    local db = runtime.store().db
    local a = db:query("SELECT * FROM alerts WHERE id = ?", id)[1]
    if not a then return ctx.fail("no alert %d", id) end
    if args[1] == "show" then
      for _, k in ipairs { "id", "created_at", "updated_at", "policy", "severity", "status", "title", "entity", "entity_id" } do
        ctx.out("%-11s %s\n", k, tostring(a[k]))
      end
      ctx.out("evidence    %s\n", json.pretty(json.decode(a.evidence or "{}") or {}))
      return 0
    end
    assert(db:exec("UPDATE alerts SET status = 'resolved', updated_at = ?, raw = ? WHERE id = ?", store.now(),
      opts.note and json.encode { note = opts.note } or nil, id))
    ctx.out("alert %d resolved\n", id)
    return 0
  end,
}
