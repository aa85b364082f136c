local runtime = require "runtime"
local instances = require "instances"
local policy = require "policy"
local format = require "format"

local function set_switch(name, fields) runtime.store():set_policy_switch(name, fields) end

-- Replays stored rows through one policy (a file, or a policy's name), in audit mode, and leaves no trace:
-- no alert, action, window or switch is written.  What it would have done is printed.
local function test(name, opts, ctx)
  local file, ferr = policy.find(name)
  if not file then return ctx.fail("%s", ferr) end
  local p, err = policy.load(file)
  if not p then return ctx.fail("%s", err) end
  p.enabled = true
  local st = runtime.store()
  local insts = instances.all(runtime.store())
  if opts.instance then
    local i, ierr = instances.instance(runtime.store(), opts.instance)
    if not i then return ctx.fail("%s", ierr) end
    insts = { i }
  end
  local entity = policy.ON[p.on]
  local since = opts.since and (tonumber(opts.since) and (sched.time() - tonumber(opts.since) * 86400))
  if opts.since and not since then since = require("sdk.util").parse_iso(opts.since) end
  if opts.since and not since then return ctx.usage_error(ctx.load_command("policy"), "--since takes DAYS or an ISO time") end
  local out = format.writer({ "instance", "severity", "title", "entity_id", "planned" }, opts.format or "table")
  local total, seen = 0, {}
  for _, inst in ipairs(insts) do
    local run = { mode = "audit", dry = true, seen = seen, state = policy.scratch_state(st, inst),
      ctx = require("sdk.context").new(st, inst, "policy-test"),
      on_alert = function(a)
        local planned = {}
        for _, x in ipairs(a.evidence.actions or {}) do planned[#planned + 1] = x.action .. " " .. tostring(x.target) end
        out:row { inst.name, a.severity, a.title, a.entity_id, table.concat(planned, ", ") }
      end }
    local batch = {}
    local function flush()
      total = total + policy.feed(st, inst, { p }, entity, batch, run)
      batch = {}
    end
    for row in st:each_row(entity, inst.id, since and require("sdk.util").iso(since)) do
      batch[#batch + 1] = { op = "added", row = row }
      if #batch >= policy.BATCH then flush() end
      if run.failed then break end
    end
    flush()
    if run.failed then
      out:finish()
      return ctx.fail("policy %s failed on %s and would be disabled: %s", p.id, inst.name, run.failed)
    end
  end
  out:finish()
  ctx.err("%d alert(s); actions were planned as dry runs; nothing was written\n", total)
  return 0
end

-- Loads a policy and says what is wrong with it, all at once.
local function validate(name, ctx)
  local file, ferr = policy.find(name)
  if not file then return ctx.fail("%s", ferr) end
  local p, err = policy.load(file)
  if not p then return ctx.fail("%s", err) end
  ctx.out("%s: ok (on %s, severity %s, mode %s, actions: %s)\n", p.id, p.on, p.severity, p.mode, table.concat(p.actions, ", "))
  return 0
end

return {
  summary = "list, enable, disable and test governance policies",
  usage = [[usage: cachost policy list [--format F]
       cachost policy enable|disable NAME
       cachost policy mode NAME audit|enforce
       cachost policy test FILE|NAME [--instance NAME] [--since DAYS|TIME] [--format F]
       cachost policy validate FILE|NAME
Policies are policies/*.lua and $CACHOST_HOME/policies/*.lua.  New policies run in audit mode: they
alert and plan, and act only once switched to enforce.  'test' replays stored data through a policy in
audit mode and prints each alert with the actions it would plan; it writes nothing.  'validate' loads a
policy and reports every problem in it at once.]],
  options = { { "format", arg = true, short = "f" }, { "instance", arg = true, short = "i" }, { "since", arg = true } },
  run = function(opts, args, ctx)
    local sub = args[1]
    if sub == "list" then
      local list, errors = policy.load_all(runtime.store())
      local status = runtime.store():policy_switches()
      local rows = {}
      for _, p in ipairs(list) do
        local s = status[p.id] or {}
        rows[#rows + 1] = { name = p.id, on = p.on, severity = p.severity, mode = p.mode,
          enabled = p.enabled and "yes" or "no", status = s.status or "ok", title = p.name, error = s.last_error }
      end
      format.rows(rows, { "name", "on", "severity", "mode", "enabled", "status", "title", "error" }, opts.format or "table")
      for _, e in ipairs(errors) do ctx.err("cachost: policy not loaded: %s\n", e) end
      return #errors > 0 and 1 or 0
    elseif sub == "enable" or sub == "disable" then
      if not args[2] then return ctx.usage_error(ctx.load_command("policy"), sub .. " needs a policy NAME") end
      set_switch(args[2], { enabled = sub == "enable" and 1 or 0 })
      ctx.out("policy %s %sd\n", args[2], sub)
    elseif sub == "mode" then
      if args[3] ~= "audit" and args[3] ~= "enforce" then return ctx.usage_error(ctx.load_command("policy"), "mode is audit or enforce") end
      set_switch(args[2], { mode = args[3] })
      ctx.out("policy %s now in %s mode\n", args[2], args[3])
    elseif sub == "test" or sub == "validate" then
      if not args[2] then return ctx.usage_error(ctx.load_command("policy"), sub .. " needs a policy FILE or NAME") end
      if sub == "validate" then return validate(args[2], ctx) end
      return test(args[2], opts, ctx)
    else
      return ctx.usage_error(ctx.load_command("policy"), "expected list, enable, disable, mode, test or validate")
    end
    return 0
  end,
}
