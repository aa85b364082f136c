local runtime = require "runtime"
local instances = require "instances"
local governance = require "governance"
local format = require "format"

return {
  summary = "run a governance action on a target now",
  usage = [[usage: cachost act INSTANCE ACTION TARGET [--dry-run] [--param KEY=VALUE]...
ACTION is one of the instance's actions (cachost connectors APP lists them): suspend_user,
unsuspend_user, expire_password, reset_password, revoke_sessions, remove_member, quarantine_file,
unquarantine_file, remove_collaborator, remove_shared_link, make_private, trash_file, overwrite_file,
revoke_grant, revoke_token.  TARGET is the provider's id, or a user's email, or a file's path.
  --dry-run   plan and record it without acting
Every action is recorded, before it is sent: cachost governance log.  One interrupted after it was sent
(killed, two SIGTERMs) is settled by a re-fetch of its target at the next act, sync or
`cachost governance reconcile`.]],
  options = { { "dry-run", short = "n" }, { "param", arg = true, many = true, short = "p" }, { "format", arg = true } },
  run = function(opts, args, ctx)
    if #args ~= 3 then return ctx.usage_error(ctx.load_command("act"), "expected INSTANCE ACTION TARGET") end
    local inst, err = instances.instance(runtime.store(), args[1])
    if not inst then return ctx.fail("%s", err) end
    local params = {}
    for _, p in ipairs(opts.param or {}) do
      local k, v = p:match("^([%w_]+)=(.*)$")
      if not k then return ctx.usage_error(ctx.load_command("act"), "--param wants KEY=VALUE") end
      params[k] = v
    end
    -- an earlier run interrupted (killed, two SIGTERMs) left its action pending: settle it first
    local settled, rerr = governance.reconcile(runtime.store(), inst)
    if not settled then log.warn("reconcile failed", { instance = inst.name, error = rerr }) end
    local rec, aerr = governance.act { store = runtime.store(), instance = inst, action = args[2], target = args[3],
      params = params, operator = host.getenv("USER") or "cli", dry_run = opts["dry-run"] }
    if not rec then return ctx.fail("%s", aerr) end
    if rec.already then
      ctx.out("%s: #%d %s %s at %s (nothing sent)\n", rec.result == "ok" and "already done" or "already in flight, outcome "
        .. rec.result, rec.id, rec.action, rec.target, rec.created_at)
      return 0
    end
    format.rows({ rec }, { "id", "action", "target", "mode", "result", "provider_status", "error", "undo", "note" },
      opts.format or "table")
    return (rec.result == "failed" or rec.result == "unknown") and 1 or 0
  end,
}
