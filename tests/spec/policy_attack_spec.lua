-- policy_attack_spec.lua — hostile policies.  Each attack is refused at load (with its reason) or disabled
-- with an alert at its first page, and the engine goes on: a witness policy in its own state still alerts
-- on every row of the same page.  Prints "policy attacks: N tried, N held" (make test gathers it).
-- The sync test runs the backtracking pattern of issue 10 through a real sync of a sandbox tenant.
local helpers = require "helpers"
local policy = require "policy"
local util = require "sdk.util"

local function write(dir, name, text)
  local f = assert(io.open(dir .. "/" .. name .. ".lua", "w")); f:write(text); f:close()
  return dir .. "/" .. name .. ".lua"
end

local HOSTILE = [[("a"):rep(4000):find(("a-"):rep(12) .. "b")]]    -- the pattern of the audit
local function matching(body) return ('return policy { name = "x", on = "activity", match = function(r) %s end }'):format(body) end
local function loading(body) return body .. '\nreturn policy { name = "x", on = "activity" }' end

-- name, policy text, what must happen ("load": refused, "disable", "harmless": runs and hurts nobody),
-- and what the refusal or the disabling says.
local ATTACKS = {
  { "loop", matching "while true do end", "disable", "^budget: .* instructions$" },
  { "recursion", 'local function f(n) return f(n + 1) + 1 end\n' .. matching "return f(1)", "disable", "^memory: " },
  { "rep_bomb", matching 'return #("x"):rep(1 << 40) > 0', "disable", "too large" },
  { "doubling", matching 'local s = "x" while true do s = s .. s end', "disable", "^memory: " },
  { "table_growth", matching 'local t = {} while true do t[#t + 1] = {} end', "disable", "^memory: " },
  { "backtrack_find", matching("return " .. HOSTILE), "disable", "pattern too complex" },
  { "backtrack_match", matching 'return string.match(("a"):rep(4000), ("a-"):rep(12) .. "b")', "disable", "pattern too complex" },
  { "backtrack_gmatch", matching 'for _ in ("a"):rep(4000):gmatch(("a-"):rep(12) .. "b") do end', "disable", "pattern too complex" },
  { "backtrack_gsub", matching 'return ("a"):rep(4000):gsub(("a-"):rep(12) .. "b", "")', "disable", "pattern too complex" },
  { "quadratic_find", matching 'return ("x"):rep(1 << 20):find(".-y")', "disable", "pattern too complex" },
  { "plain_find_loop", matching 'local s = ("a"):rep(1 << 22) for i = 1, 1e9 do s:find("b", 1, true) end', "disable", "pattern too complex" },
  { "gsub_callback", matching '("aaa"):gsub("a", function() while true do end end)', "disable", "^budget: " },
  { "pcall_swallow", matching 'while true do pcall(function() while true do end end) end', "disable", "^budget: " },
  { "xpcall_handler", matching 'xpcall(function() while true do end end, function() while true do end end)', "disable", "^budget: " },
  { "load_reader", matching 'return load(function() while true do end end)', "disable", "^budget: " },
  { "tostring_loop", matching 'return ("%s"):format(setmetatable({}, { __tostring = function() while true do end end }))', "disable", "^budget: " },
  { "table_move", matching 'return table.move({}, 1, 1 << 53, 1, {})', "disable", "table operation too long" },
  { "table_insert_len", matching 'table.insert(setmetatable({}, { __len = function() return 1 << 53 end }), 1, "x")', "disable", "table operation too long" },
  { "table_sort_len", matching 'table.sort(setmetatable({}, { __len = function() return 1 << 30 end, __index = rawlen }))', "disable", "table operation too long" },
  { "empty_rep", matching 'return #string.rep("", math.maxinteger) == 0', "harmless" },
  { "long_compare", matching 'local a, b = ("x"):rep(1 << 22), ("x"):rep((1 << 22) - 1) .. "x" while true do local _ = a == b end',
    "disable", "time limit", seconds = 1 },
  { "coroutine_load", loading "coroutine.wrap(function() end)()", "load", "undefined global 'coroutine'" },
  { "coroutine_match", matching "return coroutine.running()", "disable", "undefined global 'coroutine'" },
  { "io", loading 'io.open("/etc/passwd")', "load", "undefined global 'io'" },
  { "os", matching "os.exit(1)", "disable", "undefined global 'os'" },
  { "debug", matching "debug.sethook()", "disable", "undefined global 'debug'" },
  { "package", loading 'require("os")', "load", "undefined global 'require'" },
  { "dofile", loading 'dofile("/etc/passwd")', "load", "undefined global 'dofile'" },
  { "collectgarbage", matching 'collectgarbage("stop")', "disable", "undefined global 'collectgarbage'" },
  { "dump", loading "load(string.dump(function() end))", "load", "dump" },
  { "bytecode", matching 'return assert(load("\\27LuaT\\0\\25\\147\\r\\n\\26\\n"))', "disable", "binary chunk" },
  { "bytecode_file", string.dump(function() end), "load", "binary" },
  { "string_mt", loading 'getmetatable("").__index = {}', "load", "boolean" },
  { "string_mt_set", loading 'setmetatable("", {})', "load", "table expected" },
  { "string_lib_swap", 'rawset(string, "find", function() while true do end end)\n' .. matching 'return ("x"):find("x")',
    "disable", "^budget: " },
  { "gc_finalizer", loading 'setmetatable({}, { __gc = function() while true do end end })', "load", "__gc is not allowed" },
  { "error_object", matching 'error(setmetatable({}, { __tostring = function() while true do end end }))', "disable",
    "error object is a table value" },
  { "huge_alert", 'return policy { name = "x", on = "activity", alert = ("x"):rep(1 << 20) }', "load", "alert: longer than" },
  { "alert_number", 'return policy { name = "x", on = "activity", alert = 12345 }', "load", "alert: must be a string" },
  { "kmh_string", 'return policy { name = "x", on = "activity", travel = { max_kmh = "fast" } }', "load", "travel.max_kmh:" },
  { "nan_match", 'return policy { name = "x", on = "activity", match = { kind = { 0/0 } } }', "load", "match.kind:" },
  { "huge_count", 'return policy { name = "x", on = "activity", repeated = { count = 1 << 40, within = "1d" } }', "load", "repeated.count:" },
  { "nested_data", 'local t = {} for i = 1, 200 do t = { t } end return policy { name = "x", on = "activity", description = t }',
    "load", "plain data" },
  { "match_returns_string", "function __match() return 'yes' end\n" .. matching "return true", "disable", "__match returned a string" },
  { "describe_garbage", loading "function __describe() return { name = {}, on = 7 } end", "load", "name: a non%-empty string" },
  { "describe_loop", loading "function __describe() while true do end end", "load", "^.-: budget: " },
  { "load_loop", loading "while true do end", "load", "budget: " },
  { "load_bomb", loading 'local t = {} while true do t[#t + 1] = ("x"):rep(4096) end', "load", "memory: " },
  { "syntax_depth", "return " .. ("("):rep(100000), "load", "error: " },
  { "dlp_backtrack", 'return policy { name = "x", on = "file", dlp = { detectors = {}, custom = { { name = "aaa", pattern = '
      .. '("a-"):rep(12) .. "b" } } } }', "disable", "custom pattern 'aaa': pattern too complex", entity = "files" },
}

describe("hostile policies", function()
  local st, inst, seq = nil, nil, 0
  local T0 = math.floor(sched.time()) - 3600

  local function rows(entity, n)
    local out = {}
    for i = 1, n do
      seq = seq + 1
      out[i] = { op = "added", row = entity == "files" and { ext_id = "f" .. seq, name = "f" .. seq .. ".txt", access_level = "public" }
        or { ext_id = "e" .. seq, time = util.iso(T0 + seq), kind = "signin", outcome = "success", actor = "u" .. seq } }
    end
    return out
  end
  -- a connector that serves every file's content: what DLP policies download
  local CTX = { content = function() return ("a"):rep(4000) end }

  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    st = require("runtime").store()
    inst = helpers.instance("okta", "o", { domain = "x.okta.com" })
  end)

  it("refuses or disables each one, and the others keep running", function()
    local dir = helpers.tmp_dir()
    local tried, held, failures = 0, 0, {}
    for _, a in ipairs(ATTACKS) do
      local name, text, expect, why = a[1], a[2], a[3], a[4]
      tried = tried + 1
      -- the wall-clock limit is the attack's own where it is the point (long_compare); elsewhere a minute, so
      -- that a loaded machine cannot make a budget's attack end on the clock instead of on its budget
      local saved = policy.SECONDS
      policy.SECONDS = a.seconds or 60
      local p, err = policy.load(write(dir, name, text))
      policy.SECONDS = saved
      local entity = a.entity or "activities"
      local witness = assert(policy.load(write(dir, "witness", ('return policy { name = "w", on = %q, match = function(r) return true end }')
        :format(entity == "files" and "file" or "activity"))))
      local outcome
      if not p then
        outcome = expect == "load" and err:find(why) and "held" or ("refused at load: " .. err)
      else
        local feed = rows(entity, 3)
        local before = helpers.count("SELECT count(*) n FROM alerts WHERE policy = 'witness'")
        local ok, ferr = pcall(policy.feed, st, inst, { p, witness }, entity, feed, { ctx = CTX })
        local witnessed = helpers.count("SELECT count(*) n FROM alerts WHERE policy = 'witness'") - before
        local row = st.db:query("SELECT * FROM policies WHERE name = ?", name)[1]
        local alert = helpers.count("SELECT count(*) n FROM alerts WHERE policy = 'cachost' AND entity_id = ?", name)
        if not ok then outcome = "the engine raised: " .. tostring(ferr)
        elseif witnessed ~= 3 then outcome = ("the witness alerted %d times of 3"):format(witnessed)
        elseif expect == "harmless" then outcome = p.enabled ~= false and "held" or "disabled: " .. tostring(row and row.last_error)
        elseif expect ~= "disable" then outcome = "loaded"
        elseif not (row and row.status == "failed" and p.enabled == false and alert == 1) then outcome = "not disabled with an alert"
        elseif not row.last_error:find(why) then outcome = "disabled for another reason: " .. row.last_error
        else outcome = "held" end
        p.vm:close()
      end
      witness.vm:close()
      if outcome == "held" then held = held + 1 else failures[#failures + 1] = name .. ": " .. outcome end
    end
    helpers.figure("policy attacks: %d tried, %d held", tried, held)
    assert.same({}, failures)
    assert.equal(#ATTACKS, held)
  end)

  it("the backtracking pattern of the audit in a user policy: the sync completes, the policy is disabled, the others ran", function()
    local t = require("sandbox.okta").new { seed = 3, users = 12, events_per_day = 40, days = 2 }
    local srv = helpers.serve(t)
    local o = helpers.instance("okta", "live", { domain = "x", base_url = srv.url, insecure_loopback = true }, { api_token = t.token })
    assert(host.mkdir(host.home .. "/policies", 448))
    write(host.home .. "/policies", "backtrack", ([[return policy { name = "backtracking", on = "activity",
      match = function(r) return %s ~= nil end }]]):format(HOSTILE))
    write(host.home .. "/policies", "every_event", [[return policy { name = "every event", on = "activity",
      match = function(r) return r.ext_id ~= nil end, alert = "{action} by {actor}" }]])
    local runtime = require "runtime"
    runtime.watch(true)
    local ok, err = pcall(helpers.sync_ok, o)
    runtime.watch(false)
    srv:close()
    assert(ok, err)
    local failed = st.db:query("SELECT * FROM policies WHERE name = 'backtrack'")[1]
    assert.equal("failed", failed.status)
    assert.matches("^budget: policy backtrack exceeded %d+ instructions %(pattern too complex%)$", failed.last_error)
    assert.equal(1, helpers.count("SELECT count(*) n FROM alerts WHERE policy = 'cachost' AND title LIKE 'policy backtrack disabled: %'"))
    local events = helpers.count("SELECT count(*) n FROM activities WHERE instance_id = ?", o.id)
    assert.is_true(events > 0)
    assert.equal(events, helpers.count("SELECT count(*) n FROM alerts WHERE policy = 'every_event' AND instance_id = ?", o.id))
  end)
end)
