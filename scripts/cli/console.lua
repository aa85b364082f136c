-- cachost console — the web console's accounts (cachost run serves the console itself).
local runtime = require "runtime"
local format = require "format"

local USAGE = [[usage: cachost console user add NAME [--role viewer|admin]
       cachost console user password NAME
       cachost console user remove NAME
       cachost console user list [--format table|json|csv]
The web console is served by `cachost run` (http://127.0.0.1:8788/ by default: --console).  Accounts are
local: a viewer reads everything (and may run read-only SQL), an admin also acts (resolve alerts, undo
actions, switch policies to enforce, pause instances).  The password comes from CACHOST_CONSOLE_PASSWORD,
or is asked on the terminal without echo; at least 12 characters.  Passwords are kept as scrypt hashes.]]

local function password(ctx, name)
  local pw = host.getenv("CACHOST_CONSOLE_PASSWORD")
  if not pw then
    pw = host.readpass(("password for %s (not echoed): "):format(name))
    local again = pw and host.readpass("again: ")
    if pw and again ~= pw then return nil, "the two passwords differ" end
  end
  if not pw then return nil, "no password: set CACHOST_CONSOLE_PASSWORD or run on a terminal" end
  local auth = require "console.auth"
  local ok, why = auth.acceptable(pw)
  if not ok then return nil, "the console wants " .. why end
  return auth.hash(pw)
end

return {
  summary = "the web console's accounts",
  usage = USAGE,
  options = { { "role", arg = true }, { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local sub, name = args[2], args[3]
    if args[1] ~= "user" or not sub then return ctx.usage_error(ctx.load_command("console"), "expected user add|password|remove|list") end
    local st = runtime.store()
    if sub == "list" then
      format.rows(st:console_users(), { "name", "role", "created_at", "last_login" }, opts.format or "table")
      return 0
    end
    if not name or not name:match("^[%w][%w._@-]*$") or #name > 64 then
      return ctx.usage_error(ctx.load_command("console"), "a NAME of letters, digits, '.', '_', '@' and '-'")
    end
    local u = st:console_user(name)
    if sub == "remove" then
      if not st:console_user_remove(name) then return ctx.fail("no console account '%s'", name) end
      ctx.out("console account %s removed (its sessions ended)\n", name)
      return 0
    end
    if sub ~= "add" and sub ~= "password" then return ctx.usage_error(ctx.load_command("console"), "expected user add|password|remove|list") end
    if sub == "add" and u then return ctx.fail("console account '%s' exists (cachost console user password %s)", name, name) end
    if sub == "password" and not u then return ctx.fail("no console account '%s'", name) end
    local role = opts.role or (u and u.role) or "viewer"
    if not require("console.auth").ROLES[role] then return ctx.usage_error(ctx.load_command("console"), "--role is viewer or admin") end
    local hash, err = password(ctx, name)
    if not hash then return ctx.fail("%s", err) end
    st:console_user_set(name, role, hash)
    ctx.out("console account %s (%s) %s\n", name, role, sub == "add" and "added" or "has a new password")
    return 0
  end,
}
