local runtime = require "runtime"
local policy = require "policy"
local format = require "format"
local store = require "store"

local function set_switch(name, fields)
  local st = runtime.store()
  assert(st.db:exec([[INSERT INTO policies (name, enabled, mode, status, updated_at) VALUES (?, coalesce(?, 1), ?, 'ok', ?)
    ON CONFLICT (name) DO UPDATE SET enabled = coalesce(excluded.enabled, enabled), mode = coalesce(excluded.mode, mode),
      status = 'ok', last_error = NULL, updated_at = excluded.updated_at]],
    name, fields.enabled, fields.mode, store.now()))
end

-- Replays stored rows of one instance through one policy, in audit mode: what it would have done.
local ENTITY_TIME = { activities = "time" }
local function test(file, opts, ctx)
  local p, err = policy.load(file)
  if not p then return ctx.fail("%s", err) end
  p.enabled = true
  local st = runtime.store()
  local insts = opts.instance and { assert(runtime.instance(opts.instance)) } or runtime.instances()
  local entity = policy.ON[p.on]
  local since = opts.since and (tonumber(opts.since) and (sched.time() - tonumber(opts.since) * 86400))
  if opts.since and not since then since = require("sdk.util").parse_iso(opts.since) end
  if opts.since and not since then return ctx.usage_error(ctx.load_command("policy"), "--since takes DAYS or an ISO time") end
  local out = format.writer({ "instance", "severity", "title", "entity_id", "planned" }, opts.format or "table")
  local total = 0
  for _, inst in ipairs(insts) do
    local tcol = ENTITY_TIME[entity]
    local sql = ("SELECT * FROM %s WHERE instance_id = ?%s ORDER BY %s"):format(entity,
      since and tcol and (" AND " .. tcol .. " >= ?") or "", tcol or "id")
    local batch = {}
    local function flush()
      total = total + policy.feed(st, inst, { p }, entity, batch, { mode = "audit", replay = true,
        ctx = require("sync").context(st, inst, "policy-test"),
        on_alert = function(a)
          local planned = {}
          for _, x in ipairs(a.evidence.actions or {}) do planned[#planned + 1] = x.action .. " " .. tostring(x.target) end
          out:row { inst.name, a.severity, a.title, a.entity_id, table.concat(planned, ", ") }
        end })
      batch = {}
    end
    for row in st.db:rows(sql, inst.id, since and require("sdk.util").iso(since) or nil) do
      batch[#batch + 1] = { op = "added", row = row }
      if #batch >= policy.BATCH then flush() end
    end
    flush()
  end
  out:finish()
  policy.flush()
  ctx.err("%d alert(s); actions were planned as dry runs, nothing was changed\n", total)
  return 0
end

return {
  summary = "list, enable, disable and test governance policies",
  usage = [[usage: cachost policy list [--format F]
       cachost policy enable|disable NAME
       cachost policy mode NAME audit|enforce
       cachost policy test FILE [--instance NAME] [--since DAYS|TIME] [--format F]
Policies are policies/*.lua and $CACHOST_HOME/policies/*.lua.  New policies run in audit mode: they
alert and plan, and act only once switched to enforce.  'test' replays stored data through FILE in
audit mode and prints each alert with the actions it would plan.]],
  options = { { "format", arg = true, short = "f" }, { "instance", arg = true, short = "i" }, { "since", arg = true } },
  run = function(opts, args, ctx)
    local sub = args[1]
    if sub == "list" then
      local list, errors = policy.load_all(runtime.store())
      local status = {}
      for _, r in ipairs(runtime.store().db:query("SELECT * FROM policies")) do status[r.name] = r end
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
    elseif sub == "test" then
      if not args[2] then return ctx.usage_error(ctx.load_command("policy"), "test needs a policy FILE") end
      return test(args[2], opts, ctx)
    else
      return ctx.usage_error(ctx.load_command("policy"), "expected list, enable, disable, mode or test")
    end
    return 0
  end,
}
