return {
  summary = "show the commands, or the manual of one",
  usage = "usage: cachost help [COMMAND]",
  run = function(opts, args, ctx)
    if args[1] then
      local cmd, why = ctx.load_command(args[1])
      if not cmd then return ctx.fail("%s: '%s'%s", why, args[1], require("format").did_you_mean(args[1], ctx.commands)) end
      ctx.out("%s\n", cmd.usage or cmd.summary)
      return 0
    end
    ctx.out("usage: cachost [--home DIR] [--log-level LEVEL] [--log-format logfmt|json] [--trace-http FILE] [--debug]\n" ..
            "               COMMAND [ARGS]\n\ncommands:\n")
    for _, name in ipairs(ctx.commands) do
      local cmd = ctx.load_command(name)
      if cmd then ctx.out("  %-12s %s\n", name, cmd.summary or "") end
    end
    ctx.out("\nRun 'cachost COMMAND --help' for the options of a command.\n")
    return 0
  end,
}
