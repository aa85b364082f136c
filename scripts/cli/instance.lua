-- cachost instance — manage app instances (add, list, show, edit, rename, enable, disable, remove).
local store = require "store"
local inst = require "instances"
local format = require "format"
local vault = require "store.vault"

local usage = [[usage: cachost instance COMMAND [OPTIONS]
  add APP --name NAME [--set KEY=VALUE]... [--test]
                                             connect a new instance of APP; --test tries the credentials
                                             first and keeps the instance only if they work
  list [--format table|json|csv]             every instance: name, app, status, last scan, counts
  show NAME [--format table|json]            one instance; secrets shown as ********
  edit NAME --set KEY=VALUE...               change settings (secrets too)
  rename NAME NEW_NAME
  enable NAME | disable NAME                 a disabled instance is not scanned; data and credentials stay
  connect NAME [--port P]                    run the provider's authorization (OAuth consent in a browser,
                                             redirect to 127.0.0.1:P), then fetch the users
  test NAME                                  check the credentials now (a real call to the provider)
  members NAME [--add]                       the instances NAME stands for (an AWS organization's member
                                             accounts); --add adds each as NAME-<member> with NAME's
                                             settings and credentials and the member's own
  remove NAME [--purge] [--yes]              forget the instance and its credentials; --purge also deletes
                                             its data (asks for confirmation on a terminal unless --yes)
Settings are validated against what the app's connector declares (required, type, secret).  Missing
values come from the environment (CACHOST_SET_<KEY>, e.g. CACHOST_SET_API_TOKEN), then from a prompt on a
terminal (secrets without echo), else from KEY=VALUE lines on stdin.  Prefer those to --set for secrets:
command lines are visible to other users of the machine.
Any number of instances of an app, except apps that allow one (Microsoft Azure, Office 365).]]

local function env_name(key) return "CACHOST_SET_" .. key:upper():gsub("[^%w]", "_") end

local function parse_sets(list)
  local values = {}
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then return nil, ("--set expects KEY=VALUE, not '%s'"):format(kv) end
    values[k] = v
  end
  return values
end

-- Where missing settings come from: env, terminal prompt, or stdin KEY=VALUE lines (read once).
local function asker(ctx)
  local stdin_values
  return function(s)
    local key = s[1]
    local v = host.getenv(env_name(key))
    if v and v ~= "" then return v end
    if not s.required then return nil end
    if host.isatty(0) then
      local prompt = ("%s%s: "):format(key, s.example and (" (e.g. " .. s.example .. ")") or "")
      if s.secret then return (host.readpass(key .. " (secret, not echoed): ")) end
      io.stderr:write(prompt)
      local line = io.read("l")
      if line and line ~= "" then return line end
      return nil
    end
    if not stdin_values then
      stdin_values = {}
      for line in io.lines() do
        local k, val = line:match("^%s*([^=%s]+)%s*=(.*)$")
        if k then stdin_values[k] = val:match("^%s*(.-)%s*$") end
      end
    end
    return stdin_values[key]
  end
end

local function open(ctx)
  local ok, err = ctx.ensure_home()
  if not ok then return nil, err end
  return store.open(host.home)
end

local function print_instance(ctx, r, fmt)
  if fmt == "json" then ctx.out("%s\n", json.pretty and json.pretty(r) or json.encode(r)); return end
  local rows = {}
  for _, k in ipairs { "name", "app", "status", "enabled", "created_at", "updated_at" } do
    rows[#rows + 1] = { key = k, value = r[k] }
  end
  local keys = {}
  for k in pairs(r.settings) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do rows[#rows + 1] = { key = "settings." .. k, value = r.settings[k] } end
  for _, s in ipairs(r.streams) do
    rows[#rows + 1] = { key = "stream." .. s.stream,
      value = ("last success %s%s"):format(s.last_success or "never", s.last_error and (", last error: " .. s.last_error) or "") }
  end
  format.rows(rows, { "key", "value" }, fmt, function(s) ctx.out("%s", s) end)
end

local SUB = {}

function SUB.add(opts, args, ctx, st)
  local app = args[2]
  if not app then return 2, "missing APP" end
  if not opts.name then return 2, "missing --name NAME" end
  local values, err = parse_sets(opts.set)
  if not values then return 2, err end
  local r, aerr = inst.add(st, app, opts.name, values, { ask = asker(ctx) })
  if not r then return 1, aerr end
  if opts.test then
    local code, terr = SUB.test(opts, { "test", r.name }, ctx)
    if code ~= 0 then
      inst.remove(st, r.name, { purge = true })          -- made a moment ago, by us: nothing else in it
      return 1, terr .. " (the instance was not added)"
    end
  end
  ctx.out("added instance %s (%s)\n", r.name, r.app)
  return 0
end

function SUB.list(opts, args, ctx, st)
  local rows = inst.list(st)
  format.rows(rows, { "name", "app", "status", "last_scan", "users", "activities", "files" }, opts.format or "table",
    function(s) ctx.out("%s", s) end)
  return 0
end

function SUB.show(opts, args, ctx, st)
  if not args[2] then return 2, "missing NAME" end
  local r, err = inst.show(st, args[2])
  if not r then return 1, err end
  print_instance(ctx, r, opts.format or "table")
  return 0
end

function SUB.edit(opts, args, ctx, st)
  if not args[2] then return 2, "missing NAME" end
  local values, err = parse_sets(opts.set)
  if not values then return 2, err end
  if not next(values) then return 2, "nothing to change: give --set KEY=VALUE" end
  local r, eerr = inst.edit(st, args[2], values)
  if not r then return 1, eerr end
  ctx.out("updated instance %s\n", r.name)
  return 0
end

function SUB.rename(opts, args, ctx, st)
  if not args[2] or not args[3] then return 2, "usage: cachost instance rename NAME NEW_NAME" end
  local r, err = inst.rename(st, args[2], args[3])
  if not r then return 1, err end
  ctx.out("renamed instance %s to %s\n", args[2], r.name)
  return 0
end

local function toggle(on)
  return function(opts, args, ctx, st)
    if not args[2] then return 2, "missing NAME" end
    local r, err = inst.set_enabled(st, args[2], on)
    if not r then return 1, err end
    ctx.out("%s instance %s\n", on and "enabled" or "disabled", r.name)
    return 0
  end
end
SUB.enable, SUB.disable = toggle(true), toggle(false)

-- connect and test talk to the provider through the runtime (its own store connection).
local function connecting(test_only)
  return function(opts, args, ctx)
    if not args[2] then return 2, "missing NAME" end
    local runtime = require "runtime"
    local i, err = inst.instance(runtime.store(), args[2])
    if not i then return 1, err end
    local port = opts.port and tonumber(opts.port)
    if opts.port and not port then return 2, "--port takes a number" end
    local ok, cerr
    if test_only then
      local c = require("sdk").load(i.app)
      if c and c.test then
        -- the connector's own connection test (connect runs it too): the calls its streams make, once;
        -- a missing permission reads as `cachost status` names it
        local tok, res = pcall(c.test, require("sdk.context").new(runtime.store(), i, "connect"))
        ok = tok
        if ok then ctx.out("%s: credentials work (%s): %s\n", i.name, i.app, tostring(res)) end
        if not ok then
          cerr = require("sdk.util").token_of(res) == "permission" and require("sync").health(tostring(res)) or res
        end
      else
        local results, rok = runtime.sync(i, { streams = c and c.streams.users and { "users" } or {} })
        ok, cerr = rok, results[1] and results[1].error
        if ok then ctx.out("%s: credentials work (%s)\n", i.name, i.app) end
      end
    else
      ok, cerr = require("connect").run(i, { port = port, say = function(line) ctx.err("%s\n", line) end })
    end
    if not ok then return 1, ("%s: %s"):format(i.name, tostring(cerr)) end
    return 0
  end
end
SUB.connect, SUB.test = connecting(false), connecting(true)

-- The instances one stands for (its connector's c.members: an AWS organization's member accounts), listed
-- or added: each with the instance's settings and secrets, then the member's own (false unsets one).
function SUB.members(opts, args, ctx, st)
  local name = args[2]
  if not name then return 2, "missing NAME" end
  local runtime = require "runtime"
  local i, err = inst.instance(runtime.store(), name)
  if not i then return 1, err end
  local c = inst.connector(i.app)
  if not (c and c.members) then return 1, ("%s (%s) stands for no other instances"):format(i.name, i.app) end
  local ok, list = pcall(c.members, require("sdk.context").new(runtime.store(), i, "connect"))
  if not ok then return 1, ("%s: %s"):format(i.name, require("sync").redact(runtime.store(), i, tostring(list))) end
  for _, m in ipairs(list) do
    local child = ("%s-%s"):format(i.name, m.name)
    if not opts.add then
      ctx.out("%s\t%s\t%s\n", m.name, m.title or "", child)
    elseif inst.get(st, child) then
      ctx.out("%s exists\n", child)
    else
      local values = {}
      for k, v in pairs(i.settings) do values[k] = tostring(v) end
      for _, s in ipairs(c.settings) do if s.secret then values[s[1]] = i:secret(s[1]) end end
      for k, v in pairs(m.settings or {}) do values[k] = v ~= false and tostring(v) or nil end
      local r, aerr = inst.add(st, i.app, child, values)
      if not r then return 1, ("%s: %s"):format(child, aerr) end
      ctx.out("added instance %s (%s)%s\n", r.name, r.app, m.title and (": " .. m.title) or "")
    end
  end
  return 0
end

function SUB.remove(opts, args, ctx, st)
  local name = args[2]
  if not name then return 2, "missing NAME" end
  if not inst.get(st, name) then return 1, ("no instance named '%s'"):format(name) end
  if not opts.yes and host.isatty(0) then
    io.stderr:write(("Remove instance %s%s? [y/N] "):format(name,
      opts.purge and " and DELETE all its data" or " (its data is kept)"))
    local answer = io.read("l") or ""
    if not answer:match("^[yY]") then ctx.err("cancelled\n"); return 1 end
  end
  local r, err = inst.remove(st, name, { purge = opts.purge })
  if not r then return 1, err end
  ctx.out("removed instance %s%s\n", name, opts.purge and " and its data" or "")
  return 0
end

return {
  summary = "manage app instances (add, list, show, edit, rename, enable, disable, remove)",
  usage = usage,
  options = { { "name", arg = true }, { "set", arg = true, many = true }, { "format", arg = true, short = "f" },
              { "purge" }, { "yes", short = "y" }, { "port", arg = true }, { "test" }, { "add" } },
  run = function(opts, args, ctx)
    local sub = args[1]
    local fn = sub and SUB[sub]
    if not fn then
      local names = {}
      for k in pairs(SUB) do names[#names + 1] = k end
      ctx.err("cachost instance: %s\n%s\n", sub and ("unknown subcommand '" .. sub .. "'" .. format.did_you_mean(sub, names))
        or "missing subcommand", usage)
      return 2
    end
    local st, err = open(ctx)
    if not st then return ctx.fail("%s", err) end
    local ok, code, msg = pcall(fn, opts, args, ctx, st)
    st:close()
    if not ok then return ctx.fail("%s", tostring(code)) end
    if code == 2 then ctx.err("cachost instance %s: %s\n%s\n", sub, msg, usage); return 2 end
    if code ~= 0 then return ctx.fail("%s", msg) end
    return 0
  end,
}
