-- `cachost repl`: lua.c's read-eval-print loop on the host's event loop.  Each entry runs as its own task
-- (so http.request and sched.sleep work interactively); the loop keeps serving other tasks while the user
-- types.  Line input, history, completion and Ctrl-C are host/repl.c (the global `repl`); printing,
-- compiling and completion lists are scripts/repl.lua.
local usage = [[usage: cachost repl [--no-history]
Interactive Lua 5.4 with every host module (sched, http, server, json, crypto, log, store, ...).
An expression prints its value (tables pretty-printed); a statement runs; an incomplete chunk
continues on the next line (prompt '>>').  `sql "SELECT ..."` queries the store and prints a table.
Each entry runs as a task: Ctrl-C interrupts it, Ctrl-C at the prompt clears the line, Ctrl-D exits.
Tab completes globals and fields (`string.fo<TAB>`, `s:up<TAB>`), and inside sql "..." SQL keywords,
tables and columns.  .tables lists the store's tables, .schema TABLE its columns, .help the dot commands.
History: $CACHOST_HOME/repl_history.
With stdin not a terminal, lines are read without prompts (`cachost repl < script.lua`); errors go to
stderr and the session goes on; the exit status is 0.
  --no-history   neither read nor write the history file]]

local function load_helpers()
  local fn = assert(loadfile(host.root .. "/scripts/repl.lua", "t"))
  return fn()
end

-- The entry environment: every global (host modules included), plus the REPL's helpers.  Assignments
-- land here, so they persist from one entry to the next.
local function make_env(R)
  local env = setmetatable({}, { __index = _G })
  env.pretty = R.pretty
  local ok, store = pcall(require, "store")
  if ok then env.store = store end
  function env.sql(q, ...)
    if not ok then error("sql: the store is not available in this build (" .. tostring(store) .. ")", 2) end
    if type(store.sql) ~= "function" then error("sql: store.sql is not available in this build", 2) end
    local okq, rows, columns = pcall(store.sql, q, ...)
    if not okq then error("sql: " .. tostring(rows):gsub("^[^\n]-:%d+: ", ""), 0) end
    if type(rows) == "table" then R.mark_grid(rows, columns) end
    return rows
  end
  return env
end

return {
  summary = "interactive Lua with every host module, on the event loop",
  usage = usage,
  options = { { "no-history" } },
  run = function(opts, args, ctx)
    if args[1] then return ctx.usage_error(ctx.load_command("repl"), "unexpected argument '" .. args[1] .. "'") end
    local C = repl
    if type(C) ~= "table" or not C.open then return ctx.fail("repl: not available in this build") end
    local R = load_helpers()
    local env = make_env(R)

    local history
    if not opts["no-history"] then
      local home = ctx.ensure_home()
      if home then history = home .. "/repl_history" end
    end
    -- The store's tables and columns, read once when first needed (for .tables, .schema, completion).
    local reader
    local function store_reader()
      if not reader then
        local rd, err = require("store").open_readonly(host.home)
        if not rd then error(err, 0) end
        reader = rd
      end
      return reader
    end
    local names
    local function sql_names()
      if not names then
        names = {}
        local ok = pcall(function()
          local rd, seen = store_reader(), {}
          for _, t in ipairs(rd:tables()) do
            names[#names + 1] = t
            for _, c in ipairs(rd:columns(t)) do
              if not seen[c.name] then seen[c.name] = true; names[#names + 1] = c.name end
            end
          end
        end)
        if not ok then names = {} end
      end
      return names
    end
    local DOT = {
      help = function()
        io.stdout:write(".tables           the store's tables, described\n.schema TABLE     its columns, described\n" ..
                        ".help             this list\nsql \"SELECT ...\"  query the store (read-only)\n")
      end,
      tables = function()
        require("format").rows(require("store.docs").tables(store_reader()), { "table", "description" }, "table")
      end,
      schema = function(arg)
        if arg == "" then error(".schema TABLE (.tables lists them)", 0) end
        local rows, err = require("store.docs").columns(store_reader(), arg)
        if not rows then error(err, 0) end
        require("format").rows(rows, { "column", "type", "description" }, "table")
      end,
    }
    local tty = C.open { history = history, complete = function(word, before) return R.complete(word, env, before, sql_names) end }

    local entry
    -- A graceful stop (SIGTERM) leaves the prompt and interrupts the running entry.
    local watcher = sched.spawn(function()
      if sched.wait_stop() then
        if entry then entry:cancel() end
        C.abort()
      end
    end)
    watcher.name, watcher.quiet = "repl-stop", true

    local function report(err, interrupted)
      io.stdout:flush()
      err = tostring(err)
      if interrupted and not err:find("interrupted", 1, true) then
        -- cancelled while waiting: say so at the place it waited
        local where = err:match("^(stdin:%d+): ") or err:match("\n%s*(stdin:%d+): in ")
        err = (where and where .. ": " or "") .. "interrupted" .. (err:match("\nstack traceback:.*$") or "")
      end
      if interrupted and tty then io.stderr:write("\n") end
      io.stderr:write(R.trim_traceback(err), "\n")
      io.stderr:flush()
    end

    local function execute(fn)
      local t = sched.spawn(function()
        local ok, err = xpcall(function()
          local r = table.pack(fn())
          local text = R.format_results(r, 1, r.n)
          if text then io.stdout:write(text, "\n") end
        end, C.traceback)
        io.stdout:flush()
        return ok, err
      end)
      t.name, t.quiet = "repl-entry", true
      entry = t
      C.set_entry(t)
      local joined, ok, err = t:join()
      local interrupted = C.set_entry(nil)
      entry = nil
      if not joined then ok, err = false, ok end   -- the task itself failed or was cancelled
      if not ok then report(err, interrupted) end
      return ok
    end

    -- Read one entry: lines until they compile (or fail for another reason than an early end).
    -- -> fn, nil, src | false, err, src[, ended] | nil, why ("eof", "stopped", "interrupted")
    local function read_entry()
      local line, why = C.readline("> ")
      if not line then return nil, why end
      local dot, arg = line:match("^%s*%.(%a+)%s*(.-)%s*$")
      if dot then
        if not DOT[dot] then return false, ("unknown command .%s (.help lists them)"):format(dot), line end
        return function() DOT[dot](arg) end, nil, line
      end
      local src, first = line, true
      while true do
        local fn, err, incomplete = R.compile(src, env, first)
        if fn then return fn, nil, src end
        if not incomplete then return false, err, src end
        first = false
        local more, why2 = C.readline(">> ")
        if not more then
          if why2 == "interrupted" then return nil, why2 end
          return false, err, src, why2     -- input ended inside a chunk: report it, then stop
        end
        src = src .. "\n" .. more
      end
    end

    if tty then
      ctx.out("cachost %s (%s) - Ctrl-D exits, Ctrl-C interrupts, Tab completes\n", host.version, _VERSION)
    end
    local ok, err = pcall(function()
      while not sched.stopping() do
        local fn, err2, src, ended = read_entry()
        if fn == nil then
          if err2 ~= "interrupted" then break end
        else
          if tty and src then C.add_history(src) end
          if fn then execute(fn) else report(err2) end
          if ended then break end
        end
      end
    end)
    C.close()
    if reader then reader:close() end
    watcher:cancel()
    if not ok then error(err, 0) end
    sched.sleep(0)                                   -- let the watcher end
    if sched.alive() > 1 then C.exit(0) end          -- tasks started in the session do not hold the exit
    return 0
  end,
}
