-- Runs busted specs inside the host, so they see the real primitives (http, server, store...) and can
-- wait on them: the whole busted run is one task of the loop.
local SYSTEM_PATHS = "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;"
local SYSTEM_CPATHS = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/local/lib/lua/5.4/?.so;"

return {
  summary = "run busted specs inside the host",
  usage = [[usage: cachost test [BUSTED OPTIONS] [PATHS...]
Runs the busted specs under PATHS (default tests/spec) inside the host's event loop; every busted option
works (-o TAP, --filter, --pattern...; busted's own list: cachost test --busted-help).  Specs may call
blocking primitives (http.request, sched.sleep).]],
  raw = true,
  run = function(_, args, ctx)
    package.path = package.path .. ";" .. SYSTEM_PATHS .. host.root .. "/tests/?.lua;"
    package.cpath = package.cpath .. ";" .. SYSTEM_CPATHS .. host.root .. "/?.so"
    local ok_busted, runner = pcall(require, "busted.runner")
    if not ok_busted then return ctx.fail("busted is not installed (make deps): %s", runner) end
    if args[1] == "--help" or args[1] == "-h" then ctx.out("%s\n", ctx.load_command("test").usage); return 0 end
    if args[1] == "--busted-help" then args[1] = "--help" end
    if #args == 0 then args = { "tests/spec" } end
    _G.arg = { [0] = "busted", table.unpack(args) }
    -- busted ends with os.exit(code): turn that into a return so the host shuts down cleanly
    local exit_code, EXIT = nil, {}
    local real_exit = os.exit
    os.exit = function(code)
      exit_code = code == true and 0 or code == false and 1 or tonumber(code) or 0
      error(EXIT, 0)
    end
    local ok, err = pcall(runner, { standalone = false, output = "utfTerminal" })
    os.exit = real_exit
    if not ok and err ~= EXIT then return ctx.fail("%s", tostring(err)) end
    return exit_code or 0
  end,
}
