-- repl_spec.lua — `cachost repl` driven from outside: through a pipe (no terminal: no prompts, results on
-- stdout, errors on stderr, exit 0 at the end of input) and, when tmux is installed, in a real terminal
-- (readline, Tab completion, Ctrl-C, Ctrl-D, history).
local root = (host and host.root) or "."
local bin = os.getenv("CACHOST_BIN")
if not bin or bin == "" then
  bin = root .. "/cachost"
  local f = io.open(bin)
  if f then f:close() else bin = root .. "/build/cachost" end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, "rb"); if not f then return "" end
  local s = f:read("a"); f:close(); return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end

local function pause(s)
  if sched and sched.current and sched.current() then sched.sleep(s) else os.execute("sleep " .. s) end
end

local dir = os.tmpname(); os.remove(dir)
os.execute("mkdir -p " .. q(dir))
local home = dir .. "/home"

-- Pipe `input` into `cachost repl` (stdin a pipe); -> exit code, stdout, stderr.
local function repl(input, opts)
  opts = opts or {}
  local out, err = dir .. "/out", dir .. "/err"
  local cmd = ("CACHOST_HOME=%s %s repl >%s 2>%s"):format(q(home), q(bin), q(out), q(err))
  if opts.from_file then
    spit(dir .. "/in", input)
    cmd = cmd .. " <" .. q(dir .. "/in")
  end
  local p = assert(io.popen(cmd, "w"))
  if not opts.from_file then p:write(input) end
  local _, _, code = p:close()
  return code, slurp(out), slurp(err)
end

describe("cachost repl through a pipe", function()
  teardown(function() os.execute("rm -rf " .. q(dir)) end)

  it("prints the value of an expression, without prompts", function()
    local code, out, err = repl("1+1\n")
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
    assert.are.equal("", err)
  end)

  it("reads a multi-line function definition as one chunk", function()
    local code, out = repl("function double(x)\n  local y = x * 2\n  return y\nend\ndouble(21)\n")
    assert.are.equal(0, code)
    assert.are.equal("42\n", out)
  end)

  it("keeps globals from one entry to the next; statements print nothing", function()
    local _, out = repl("x = 10\nlocal hidden = 1\nx + 1\nhidden\n")
    assert.are.equal("11\nnil\n", out)
  end)

  it("reports an error on stderr with a traceback trimmed to the chunk, then goes on", function()
    local code, out, err = repl("function f() error('boom') end\nf()\n'still here'\n")
    assert.are.equal(0, code)
    assert.are.equal('"still here"\n', out)
    assert.truthy(err:find("stdin:1: boom", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
    assert.truthy(err:find("\n\tstdin:1: in ", 1, true), err)
    assert.falsy(err:find("cli/repl.lua", 1, true), err)     -- the REPL's own frames are trimmed
    assert.falsy(err:find("xpcall", 1, true), err)
  end)

  it("reports syntax errors and goes on", function()
    local code, out, err = repl("x = = 1\n3\n")
    assert.are.equal(0, code)
    assert.are.equal("3\n", out)
    assert.truthy(err:find("stdin:1:", 1, true), err)
  end)

  it("reports a chunk cut short by the end of input", function()
    local code, out, err = repl("1\nfunction g()\n")
    assert.are.equal(0, code)
    assert.are.equal("1\n", out)
    assert.truthy(err:find("<eof>", 1, true), err)
  end)

  it("runs each entry as a task: blocking primitives work", function()
    local code, out, err = repl("sched.sleep(0.01) return 5\nsched.current() ~= nil\n")
    assert.are.equal(0, code, err)
    assert.are.equal("5\ntrue\n", out)
  end)

  it("keeps the loop running between entries: a background task runs while the REPL waits", function()
    local code, out = repl("sched.spawn(function() sched.sleep(0.02) print('background') end)\nsched.sleep(0.1)\n'done'\n")
    assert.are.equal(0, code)
    assert.truthy(out:find("background\n\"done\"\n", 1, true), out)
  end)

  it("serves its own webhook server while an entry waits on http.request", function()
    local code, out, err = repl('srv = assert(server.listen{port = 0})\n'
      .. '_ = srv:route("GET", "/x", function(req) return 200, "hi " .. req.path end)\n'
      .. 'http.request{url = srv.url .. "/x"}.body\nsrv:close()\n')
    assert.are.equal(0, code, err)
    assert.are.equal('"hi /x"\n', out)
  end)

  it("exits 0 at the end of input even with tasks still waiting", function()
    local code, out = repl("t = sched.spawn(function() sched.sleep(60) end)\n'bye'\n")
    assert.are.equal(0, code)
    assert.truthy(out:find('"bye"', 1, true))
  end)

  it("pretty-prints tables: sorted keys, nesting, cycles", function()
    local _, out = repl("t = {z = 1, a = {3, 2, 1}, [2] = 'two', m = {deep = true}}; t.self = t\nt\n")
    assert.are.equal('{ [2] = "two", a = { 3, 2, 1 }, m = { deep = true }, self = <cycle>, z = 1 }\n', out)
    _, out = repl("big = {}; for i = 1, 30 do big['k' .. i] = i end\nbig\n")
    assert.truthy(out:find('^{\n  k1 = 1,\n  k10 = 10,\n  k11 = 11,'), out)
  end)

  it("prints several results separated by tabs, strings quoted", function()
    local _, out = repl("1, 'a\\nb', nil, 2.0\n")
    assert.are.equal('1\t"a\\nb"\tnil\t2.0\n', out)
  end)

  it("reads from a regular file and from /dev/null (stdin that cannot be polled)", function()
    local code, out = repl("6 * 7\n", { from_file = true })
    assert.are.equal(0, code)
    assert.are.equal("42\n", out)
    code = os.execute(("CACHOST_HOME=%s %s repl </dev/null >/dev/null 2>&1"):format(q(home), q(bin)))
    assert.is_true(code == true or code == 0)
  end)

  it("accepts a last line without a newline and CRLF line ends", function()
    local _, out = repl("1\r\n2")
    assert.are.equal("1\n2\n", out)
  end)

  it("loads text only", function()
    local _, _, err2 = repl("\27Lua\n")
    assert.truthy(err2:find("binary chunk", 1, true), err2)
  end)

  it("has every host module and the sql helper", function()
    local _, out = repl("type(sched), type(http), type(json), type(crypto), type(log), type(sql)\n")
    assert.are.equal('"table"\t"table"\t"table"\t"table"\t"table"\t"function"\n', out)
  end)

  it("sql prints rows as a table, or fails clearly", function()
    local code, out, err = repl("s = store.open(host.home); s:close()\nsql 'select 1 as one, \"x\" as two'\n")
    assert.are.equal(0, code)
    if err == "" then
      assert.truthy(out:find("ONE  TWO\n1    x\n", 1, true), out)
      assert.truthy(out:find("(1 row)", 1, true), out)
      local _, _, err2 = repl("sql 'select * from no_such_table'\n")
      assert.truthy(err2:find("^sql: sqlite: no such table: no_such_table"), err2)
    else
      assert.truthy(err:find("sql", 1, true) or err:find("store", 1, true), err)
    end
  end)

  it("interrupts a busy entry on SIGINT and goes on with the next one", function()
    local pidf, out, err = dir .. "/pid", dir .. "/out2", dir .. "/err2"
    local p = assert(io.popen(("sh -c 'echo $$ > %s; exec env CACHOST_HOME=%s %s repl >%s 2>%s'"):format(
      q(pidf), q(home), q(bin), q(out), q(err)), "w"))
    p:write("io.stdout:write('busy\\n'); io.stdout:flush(); while true do end\n")
    p:flush()
    local pid
    for _ = 1, 250 do                               -- wait until the entry is really spinning
      pid = slurp(pidf):match("%d+")
      if pid and slurp(out) == "busy\n" then break end
      pause(0.02)
    end
    assert.truthy(pid)
    assert.are.equal("busy\n", slurp(out))
    pause(0.05)
    os.execute("kill -INT " .. pid)
    pause(0.1)
    p:write("'after'\n")
    local _, _, code = p:close()
    assert.are.equal(0, code, slurp(err))
    assert.truthy(slurp(err):find("stdin:1: interrupted", 1, true), slurp(err))
    assert.are.equal('busy\n"after"\n', slurp(out))
  end)
end)

local has_tmux = os.execute("command -v tmux >/dev/null 2>&1")
has_tmux = has_tmux == true or has_tmux == 0

local describe_tmux = has_tmux and describe or pending
describe_tmux("cachost repl in a terminal (tmux)", function()
  local sock = "cachost-repl-test-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e6))
  local tmux = "tmux -L " .. sock .. " "
  local thome = dir .. "/tty-home"

  local function screen()
    local p = io.popen(tmux .. "capture-pane -p -t r 2>/dev/null")
    local s = p:read("a"); p:close(); return s
  end
  local function keys(...)
    local args = {}
    for i = 1, select("#", ...) do args[i] = q(select(i, ...)) end
    os.execute(tmux .. "send-keys -t r " .. table.concat(args, " "))
  end
  -- Wait until the screen matches `pattern` (plain text), up to 5 s.
  local function wait_for(text, count)
    local s
    for _ = 1, 250 do
      s = screen()
      local n, from = 0, 1
      while true do
        local i = s:find(text, from, true)
        if not i then break end
        n, from = n + 1, i + 1
      end
      if n >= (count or 1) then return s end
      pause(0.02)
    end
    error(("screen never showed %q:\n%s"):format(text, s), 2)
  end

  setup(function()
    os.execute("mkdir -p " .. q(dir))
    local cmd = ("CACHOST_HOME=%s %s repl; echo EXIT=$?; sleep 60"):format(q(thome), q(bin))
    assert(os.execute(tmux .. "new-session -d -s r -x 120 -y 40 " .. q(cmd)))
  end)
  teardown(function() os.execute(tmux .. "kill-server 2>/dev/null") end)

  it("shows a prompt and prints results", function()
    wait_for("Tab completes\n>")
    keys("1+1", "Enter")
    wait_for("\n2\n")
  end)

  it("tab-completes globals and fields", function()
    keys("sch", "Tab")
    wait_for("> sched")
    keys(".sl", "Tab")
    wait_for("> sched.sleep")
    keys("(0.01) return 'slept'", "Enter")
    wait_for('"slept"')
    keys("s = 'abc'", "Enter")
    keys("s:upp", "Tab")
    wait_for("> s:upper")
    keys("()", "Enter")
    wait_for('"ABC"')
  end)

  it("continues an incomplete chunk with the >> prompt", function()
    keys("function tri(n)", "Enter")
    wait_for("\n>>")
    keys("return n * 3 end", "Enter")
    keys("tri(5)", "Enter")
    wait_for("\n15\n")
  end)

  it("Ctrl-C interrupts a busy entry and returns to the prompt", function()
    keys("while true do end", "Enter")
    pause(0.3)
    keys("C-c")
    wait_for("interrupted")
    keys("40 + 2", "Enter")
    wait_for("\n42\n")
  end)

  it("Ctrl-C interrupts a waiting entry", function()
    keys("sched.sleep(30)", "Enter")
    pause(0.2)
    keys("C-c")
    wait_for("interrupted", 2)
    keys("'awake'", "Enter")
    wait_for('"awake"')
  end)

  it("Ctrl-C at the prompt clears the line", function()
    keys("error('should not run')")
    wait_for("> error('should not run')")
    pause(0.05)
    keys("C-c")
    pause(0.1)
    keys("7 * 6", "Enter")
    local s = wait_for("\n42\n", 2)
    local _, n = s:gsub("should not run", "")
    assert.are.equal(1, n, s)                                -- typed once, never run
  end)

  it("Ctrl-D exits 0 and saves the history", function()
    keys("C-d")
    wait_for("EXIT=0")
    local hist = slurp(thome .. "/repl_history")
    assert.truthy(hist:find("1+1", 1, true), hist)
    assert.truthy(hist:find("function tri(n)\nreturn n * 3 end", 1, true), hist)
  end)
end)
