-- policy/outcome.lua — what a policy's hit does: an alert, and the policy's actions through governance;
-- and what a policy's failure does: the policy disabled, with an alert.
local governance = require "governance"
local enrich = require "policy.enrich"
local row_time = enrich.row_time

local M = {}

-- Alerts this process raised or touched lately, per store: (instance, key) -> when (monotonic seconds)
local recent = setmetatable({}, { __mode = "k" })
-- What this process remembers of alerts goes (policy.forget: as after a restart).
function M.forget() recent = setmetatable({}, { __mode = "k" }) end

local function remember(st, ck)
  local r = recent[st]
  if not r or r.n > 10000 then r = { n = 0, at = {} }; recent[st] = r end
  if not r.at[ck] then r.n = r.n + 1 end
  r.at[ck] = sched.now()
end

local function alert_title(p, row, ev)
  local t = p.alert or p.name
  return (t:gsub("{([%w_]+)}", function(k) return tostring(row[k] or (ev and ev[k]) or "?") end))
end

local function target_of(entity, action, row)
  local target_entity = governance.ENTITY[action]
  if target_entity == entity then return row.ext_id end
  if target_entity == "users" then return row.actor_id or row.actor or row.user_id or row.member_id end
  return nil
end

-- One hit: an alert (deduplicated per policy, entity and hour: per row, or per value of the policy's
-- group_by field, e.g. one alert an hour per actor), and the policy's actions through the governance path
-- (audit mode plans them as dry runs).
function M.fire(st, inst, p, entity, row, evidence, opts)
  local bucket = math.floor(row_time(row) / 3600)
  local key = p.group_by and ("%s:%s:%s=%s:%d"):format(p.id, entity, p.group_by, tostring(row[p.group_by] or "?"), bucket)
    or ("%s:%s:%s:%d"):format(p.id, entity, row.ext_id or "?", bucket)
  -- An alert that exists was raised before (a page evaluated again after a crash, or the same row again
  -- within its window): nothing more, and nothing is built for it (most hits of a group_by policy are
  -- that).  Its actions carry correlation ids derived from the alert, which governance records (pending)
  -- before they go out; they are planned first and the alert written last, so after a crash between the
  -- two the page's second evaluation finds them and writes the alert without planning them again: alert
  -- and actions once each.
  -- opts.dry (policy test) writes nothing: alerts once per key in memory, actions only said.
  local ck
  if opts.dry then
    if opts.seen[key] then return 0 end
    opts.seen[key] = true
  else
    -- the same alert again within a minute of this process writing it: nothing to write (its updated_at
    -- moved then)
    ck = inst.id .. "\0" .. key
    if ((recent[st] and recent[st].at[ck]) or -math.huge) > sched.now() - 60 then return 0 end
    if st:touch_alert(inst.id, key) then remember(st, ck); return 0 end
  end
  local title = alert_title(p, row, evidence)
  evidence = evidence or {}
  evidence.row = { ext_id = row.ext_id, time = row.time, actor = row.actor, action = row.action, ip = row.ip,
                   location = row.location, email = row.email, name = row.name, path = row.path }
  -- what the hit asks for: {action, target} of each action that has a target in this row; an
  -- app-permission action of a file policy acts on the grants its content was found to hold (dlp.grants),
  -- each in its own instance
  local wanted = {}
  for _, action in ipairs(p.actions) do
    local target = action ~= "alert" and target_of(entity, action, row)
    if target then wanted[#wanted + 1] = { action = action, target = target } end
    if action ~= "alert" and not target and governance.ENTITY[action] == "app_grants" then
      for _, g in ipairs(evidence.grants or {}) do
        wanted[#wanted + 1] = { action = action, target = g.ext_id, instance_id = g.instance_id }
      end
    end
  end
  for _, g in ipairs(evidence.grants or {}) do g.ext_id, g.instance_id = nil, nil end   -- the alert keeps the masked id
  if opts.dry then
    local plans = {}
    for i, w in ipairs(wanted) do plans[i] = { action = w.action, target = w.target, mode = "dry-run", result = "planned" } end
    evidence.actions = plans
    if opts.on_alert then opts.on_alert { policy = p.id, severity = p.severity, title = title, entity = entity,
                                           entity_id = row.ext_id, evidence = evidence } end
    return 1
  end
  local plans = {}
  local mode = opts.mode or p.mode
  for _, w in ipairs(wanted) do
    local action, target = w.action, w.target
    local on, rec, err = inst, nil, nil
    local cid = crypto.hex(crypto.sha256(key .. "\0" .. action)):sub(1, 16)
    if w.instance_id then      -- another instance's grant: the id says which
      cid = crypto.hex(crypto.sha256(key .. "\0" .. action .. "\0" .. w.instance_id .. "\0" .. target)):sub(1, 16)
      on, err = require("instances").instance(st, w.instance_id)
    end
    if on then rec, err = st:action_of(on.id, cid) end
    if on and not rec then
      rec, err = governance.act { store = st, instance = on, action = action, target = target, policy = p.id,
        dry_run = mode ~= "enforce", params = { reason = title }, correlation_id = cid }
    end
    plans[#plans + 1] = { action = action, target = target, mode = rec and rec.mode or "error",
                          result = rec and rec.result or err, id = rec and rec.id }
  end
  evidence.actions = plans
  if not st:raise_alert { instance_id = inst.id, ext_id = key, policy = p.id, severity = p.severity, title = title,
      entity = entity, entity_id = row.ext_id, evidence = evidence, keep_evidence = true } then
    return 0          -- raised meanwhile by another task (an action yielded)
  end
  remember(st, ck)
  if opts.on_alert then opts.on_alert { policy = p.id, severity = p.severity, title = title, entity = entity,
                                         entity_id = row.ext_id, evidence = evidence } end
  return 1
end

-- A policy failed (error, budget, memory): disable it, say so with an alert, go on with the others.
function M.disable(st, inst, p, err, opts)
  p.enabled = false
  if opts.dry then opts.failed = err; return end
  log.error("policy disabled", { policy = p.id, error = err })
  st:policy_failed(p.id, err)
  governance.alert(st, inst, "cachost", "high", "policy " .. p.id .. " disabled: " .. err, "policy", p.id, { error = err })
end

return M
