-- cachost query — run SQL on a read-only connection to the store and stream the result.
local store = require "store"
local format = require "format"

return {
  summary = "run a read-only SQL query on the store",
  usage = [[usage: cachost query "SQL" [--format table|json|csv] [--timeout SECONDS] [PARAM...]
Runs one SQL statement on a read-only connection (nothing can be written) and streams the rows, so a
result of any size prints in constant memory.  PARAMs bind the statement's ? placeholders, as text.
Tables: instances, users, groups, group_members, privileges, activities, files, file_permissions,
app_grants, alerts, governance_actions, stream_state, changes (secrets are encrypted and never shown).
Every table's raw (the provider's JSON) is stored zstd-compressed and reads as its JSON text, e.g.
json_extract(raw, '$.eventType') or raw LIKE '%admin%' (main.<table>.raw: the stored frames).
--timeout bounds the work SQLite does for the query (default 60 s; 0: no bound); SIGINT/SIGTERM stop it.
Example: cachost query "SELECT email, last_login FROM users WHERE is_admin AND deleted_at IS NULL"]],
  options = { { "format", arg = true, short = "f" }, { "timeout", arg = true, short = "t" } },
  run = function(opts, args, ctx)
    local sql = args[1]
    if not sql then return ctx.usage_error(ctx.load_command("query"), "missing SQL") end
    local fmt = opts.format or "table"
    local timeout = tonumber(opts.timeout or "60")
    if not timeout or timeout < 0 or timeout ~= timeout then
      return ctx.usage_error(ctx.load_command("query"), "--timeout wants seconds (0: no bound)")
    end
    -- A statement can work forever (an endless recursive CTE): bounded, and stopped by a signal.
    local function stopped(e, token)
      if token == "timeout" then
        return ("query stopped: it worked longer than %g s (--timeout SECONDS, 0 for no bound)"):format(timeout)
      elseif token == "interrupt" then
        return "query stopped by a signal"
      end
      return tostring(e)
    end
    local rd, err = store.open_readonly(host.home, { timeout = timeout })
    if not rd then return ctx.fail("%s", err) end
    -- The SQL and its parameters are the user's input: a statement the cursor refuses as misuse (two
    -- statements, a wrong number of parameters) is a usage error here, not a crash.
    local ok, cur, cerr, ctoken = pcall(rd.cursor, rd, sql, table.unpack(args, 2))
    if not ok then cur, cerr = nil, tostring(cur):gsub("^.-:%d+: ", "") end
    if not cur then
      rd:close()
      if ctoken == "auth" or ctoken == "readonly" then
        cerr = "read-only: cachost query can only read (" .. cerr .. ")"
      end
      return ctx.fail("%s", stopped(cerr, ctoken))
    end
    -- The writer starts at the first row or at the end, so a statement refused when it runs (VACUUM INTO
    -- is authorized at its first step) prints nothing but its error.
    local w
    local function writer()
      w = w or format.writer(cur:columns(), fmt, function(s) io.stdout:write(s) end)
      return w
    end
    local code = 0
    while true do
      local row, rerr, rtoken = cur:next(true)
      if not row then
        if rerr then code = ctx.fail("%s", stopped(rerr, rtoken)) end
        break
      end
      writer():row(row)
    end
    if code == 0 then writer():finish() end
    cur:close()
    rd:close()
    return code
  end,
}
