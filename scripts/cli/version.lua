-- cachost version — the fast path is in host/main.c; this answers `version --help` and `help version`.
return {
  summary = "print cachost's version",
  usage = "usage: cachost version\nPrints the version of cachost (also: cachost --version).",
  run = function(_, _, ctx) ctx.out("cachost %s\n", host.version) return 0 end,
}
