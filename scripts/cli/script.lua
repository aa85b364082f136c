-- Runs a Lua file as a task (trusted: full standard library) until it and the tasks it spawned finish.
return {
  summary = "run a Lua file as a task",
  usage = [[usage: cachost script FILE [ARGS...]
Runs FILE as a task with every host module (sched, http, server, json, crypto, log, store...).
The global `arg` holds ARGS (arg[0] = FILE); the script's return value, if an integer, is the exit status.
An error is one line with its file:line (the traceback with cachost --debug script ...); exit status 1.]],
  raw = true,
  run = function(_, args, ctx)
    local file = args[1]
    if not file or file == "--help" or file == "-h" then
      if file then ctx.out("%s\n", ctx.load_command("script").usage); return 0 end
      return ctx.usage_error(ctx.load_command("script"), "missing FILE")
    end
    local fh, err = io.open(file, "rb")
    if not fh then return ctx.fail("%s", err) end
    local src = fh:read("a")
    fh:close()
    src = src:gsub("^#![^\n]*", "")          -- allow a shebang line
    local chunk, perr = load(src, "@" .. file, "t")
    if not chunk then return ctx.fail("%s", perr) end
    _G.arg = { [0] = file, table.unpack(args, 2) }
    local ok, res = xpcall(chunk, function(e)
      if host.getenv("CACHOST_DEBUG") == "1" then return debug.traceback(tostring(e), 2) end
      return tostring(e):match("^[^\n]*") .. " (cachost --debug script shows the trace)"
    end, table.unpack(args, 2))
    if not ok then return ctx.fail("%s", res) end
    -- wait for the tasks it spawned: the loop ends when no task is alive
    return math.type(res) == "integer" and res or 0
  end,
}
