-- cli.lua — the command dispatcher.  Global options were handled in C (host/main.c); each command is a
-- module scripts/cli/<name>.lua returning { summary, usage, options, run(opts, args, ctx) -> exit code }.
local root = host.root
package.path = root .. "/scripts/?.lua;" .. root .. "/scripts/?/init.lua;" .. package.path
require "prelude"

local COMMANDS = {
  "help", "version", "run", "repl", "script", "test", "instance", "connectors", "sync", "status",
  "query", "schema", "act", "policy", "alerts", "alert", "identity", "console", "sinks", "workers", "export", "governance", "vault", "retention", "sandbox", "demo",
}

local ctx = {}
function ctx.out(fmt, ...) io.stdout:write(select("#", ...) > 0 and fmt:format(...) or fmt) end
function ctx.err(fmt, ...) io.stderr:write(select("#", ...) > 0 and fmt:format(...) or fmt) end
function ctx.fail(fmt, ...) ctx.err("cachost: " .. fmt .. "\n", ...); return 1 end
function ctx.usage_error(cmd, msg)
  ctx.err("cachost %s: %s\n%s\n", cmd.name, msg, cmd.usage or "")
  return 2
end

local function load_command(name)
  for _, c in ipairs(COMMANDS) do
    if c == name then
      local ok, cmd = pcall(require, "cli." .. name)
      if ok then cmd.name = name; return cmd end
      if tostring(cmd):find("module 'cli%." .. name .. "' not found") then return nil, "not available in this build" end
      if host.getenv("CACHOST_DEBUG") == "1" then error(cmd, 0) end
      return nil, "cannot load (" .. tostring(cmd):gsub("%s+", " ") .. ")"
    end
  end
  return nil, "unknown command"
end
ctx.load_command = load_command
ctx.commands = COMMANDS

-- $CACHOST_HOME (or --home), default $XDG_DATA_HOME/cachost; created 0700.
local function decide_home()
  local home = host.getenv("CACHOST_HOME")
  if not home or home == "" then
    local xdg = host.getenv("XDG_DATA_HOME")
    if not xdg or xdg == "" then xdg = (host.getenv("HOME") or ".") .. "/.local/share" end
    home = xdg .. "/cachost"
  end
  host.home = home
  return home
end
function ctx.ensure_home()
  local home = host.home
  local parent = home:match("^(.*)/[^/]+$")
  if parent and parent ~= "" then
    local acc = ""
    for part in parent:gmatch("[^/]+") do acc = acc .. "/" .. part; host.mkdir(acc, 448) end
  end
  local ok, err = host.mkdir(home, 448)   -- 0700
  if not ok then return nil, err end
  return home
end

-- A command that raises (a bug, or a failure nobody turned into a message) is one line for the user; the
-- trace is for --debug.  xpcall is yieldable in Lua 5.4, so commands still wait on I/O inside it.
local function run(cmd, opts, args)
  local ok, code = xpcall(cmd.run, function(e)
    if host.getenv("CACHOST_DEBUG") == "1" then return debug.traceback(tostring(e), 2) end
    return (tostring(e):match("^[^\n]*"):gsub("^[%w_./-]+%.lua:%d+: ", ""))
  end, opts, args, ctx)
  if ok then return code or 0 end
  local hint = host.getenv("CACHOST_DEBUG") == "1" and "" or " (cachost --debug shows the trace)"
  ctx.err("cachost %s: %s%s\n", cmd.name, code, hint)
  return 1
end

return function()
  local argv = host.args
  local name = argv[1]
  local rest = table.move(argv, 2, #argv, 1, {})
  decide_home()
  local cmd, why = load_command(name)
  if not cmd then
    ctx.err("cachost: %s: '%s'%s\nRun 'cachost help' for the list of commands.\n", why, name,
      require("format").did_you_mean(name, COMMANDS))
    return 2
  end
  ctx.argv = rest
  if cmd.raw then return run(cmd, nil, rest) end
  local spec = { { "help", short = "h" } }
  for _, o in ipairs(cmd.options or {}) do spec[#spec + 1] = o end
  local opts, args = host.getopt(rest, spec)
  if not opts then return ctx.usage_error(cmd, args) end
  if opts.help then ctx.out("%s\n", cmd.usage or ("cachost " .. name)); return 0 end
  local formats = cmd.formats or require("format").FORMATS    -- a command may offer formats of its own
  if opts.format and not formats[opts.format] then
    local names = {}
    for k in pairs(formats) do names[#names + 1] = k end
    table.sort(names)
    return ctx.usage_error(cmd, "unknown format '" .. opts.format .. "' (" .. table.concat(names, ", ") .. ")")
  end
  return run(cmd, opts, args)
end
