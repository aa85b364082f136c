return {
  summary = "print the version",
  usage = "usage: cachost version",
  run = function(opts, args, ctx) ctx.out("cachost %s\n", host.version) end,
}
