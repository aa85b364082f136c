-- governance.lua — the one path of every action, whoever asks (a policy, `cachost act`, the REPL):
-- capability check, target, plan, limits, execute through the connector, record, re-fetch.
--
-- Safety by default: automatic actions (from policies) are held by the kill switch and by limits per
-- policy and globally (count per hour, share of an instance's users); held actions raise an alert.
-- Every action is recorded in governance_actions with who asked, the mode (dry-run / executed / held),
-- the result, the provider's status and how to undo it where the API allows.
local sdk = require "sdk"
local sync = require "sync"
local store = require "store"
local util = require "sdk.util"

local M = {}

-- What each action acts on.
local ENTITY = {}
for _, a in ipairs(sdk.ACTIONS.account) do ENTITY[a] = "users" end
for _, a in ipairs(sdk.ACTIONS.data) do ENTITY[a] = "files" end
for _, a in ipairs(sdk.ACTIONS.app_permission) do ENTITY[a] = "app_grants" end
M.ENTITY = ENTITY

M.limits = {
  per_policy_per_hour = 10,   -- automatic actions of one policy
  global_per_hour = 50,       -- automatic actions of all policies
  max_user_share = 0.10,      -- of an instance's users acted on by automatic account actions in an hour
}

local function paused_file() return host.home .. "/governance.paused" end
function M.paused() return host.stat(paused_file()) ~= nil end
function M.pause(who)
  if M.paused() then return true end
  return host.write_new(paused_file(), ("paused by %s at %s\n"):format(who or "operator", util.iso()), 384)
end
function M.resume() os.remove(paused_file()); return true end

local function can(c)
  local list = {}
  for a in pairs(c.actions) do list[#list + 1] = a end
  table.sort(list)
  return #list > 0 and table.concat(list, ", ") or "nothing"
end

-- The store row an action targets: by ext_id, or for users by email, for files by path or name.
function M.find_target(st, inst, entity, target)
  if type(target) == "table" then return target end
  local db = st.db
  local row = db:query(("SELECT * FROM %s WHERE instance_id = ? AND ext_id = ?"):format(entity), inst.id, tostring(target))[1]
  if row then return row end
  if entity == "users" then
    row = db:query("SELECT * FROM users WHERE instance_id = ? AND lower(email) = lower(?)", inst.id, tostring(target))[1]
  elseif entity == "files" then
    row = db:query("SELECT * FROM files WHERE instance_id = ? AND (path = ? OR name = ?) ORDER BY deleted_at IS NOT NULL LIMIT 1",
      inst.id, tostring(target), tostring(target))[1]
  end
  return row
end

local function count(st, sql, ...) return st.db:query(sql, ...)[1].n end

-- Which limit, if any, holds an automatic action back.
local function limit_hit(st, inst, req)
  if M.paused() then return "governance is paused (cachost governance resume)" end
  local since = util.iso(sched.time() - 3600)
  local L = M.limits
  local n = count(st, [[SELECT count(*) n FROM governance_actions WHERE policy = ? AND mode = 'executed'
    AND created_at >= ?]], req.policy, since)
  if n >= L.per_policy_per_hour then return ("policy limit: %d actions in the last hour"):format(n) end
  n = count(st, "SELECT count(*) n FROM governance_actions WHERE policy IS NOT NULL AND mode = 'executed' AND created_at >= ?", since)
  if n >= L.global_per_hour then return ("global limit: %d automatic actions in the last hour"):format(n) end
  if ENTITY[req.action] == "users" then
    local users = count(st, "SELECT count(*) n FROM users WHERE instance_id = ? AND deleted_at IS NULL", inst.id)
    local acted = count(st, [[SELECT count(DISTINCT target_id) n FROM governance_actions WHERE instance_id = ?
      AND policy IS NOT NULL AND mode = 'executed' AND created_at >= ?]], inst.id, since)
    if users > 0 and (acted + 1) / users > L.max_user_share then
      return ("share limit: %d of %d users already acted on in the last hour"):format(acted, users)
    end
  end
  return nil
end

local function record(st, inst, req, row, fields)
  local now = store.now()
  local ext = req.correlation_id
  assert(st.db:exec([[INSERT INTO governance_actions (instance_id, ext_id, action, target, target_id, policy, operator,
      mode, result, provider_status, error, undo, created_at, finished_at, raw)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (instance_id, ext_id) DO UPDATE SET mode = excluded.mode, result = excluded.result,
      provider_status = excluded.provider_status, error = excluded.error, undo = excluded.undo,
      finished_at = excluded.finished_at]],
    inst.id, ext, req.action, row and (row.email or row.path or row.name or row.ext_id) or tostring(req.target),
    row and row.ext_id or tostring(req.target), req.policy, req.operator, fields.mode, fields.result,
    fields.provider_status, fields.error, fields.undo and json.encode(fields.undo) or nil, now,
    fields.mode ~= "planned" and now or nil, req.params and json.encode(req.params) or nil))
  return st.db:query("SELECT * FROM governance_actions WHERE instance_id = ? AND ext_id = ?", inst.id, ext)[1]
end

-- Raises an alert through the policy engine's table (held actions, failures the operator must see).
function M.alert(st, inst, policy, severity, title, entity, entity_id, evidence)
  local now = store.now()
  local key = ("%s:%s:%s:%s"):format(policy, entity or "", entity_id or "", title)
  assert(st.db:exec([[INSERT INTO alerts (instance_id, ext_id, policy, severity, title, entity, entity_id, evidence,
      status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)
    ON CONFLICT (instance_id, ext_id) DO UPDATE SET updated_at = excluded.updated_at, evidence = excluded.evidence]],
    inst and inst.id or nil, key, policy, severity, title, entity, entity_id, json.encode(evidence or {}), now, now))
end

-- governance.act{instance=, action=, target=, params=, policy= | operator=, dry_run=}
--   -> record (a governance_actions row) | nil, err
-- Misuse (unknown action, an app that cannot do it, no such target) returns nil, err too: the caller
-- may be a CLI user.
function M.act(req)
  local st, inst = req.store, req.instance
  local c, err = sdk.load(inst.app)
  if not c then return nil, err end
  local action = req.action
  if not ENTITY[action] then return nil, ("unknown action '%s'"):format(tostring(action)) end
  if not c.actions[action] then
    return nil, ("%s (%s) cannot %s; it can: %s"):format(inst.name, c.title, action, can(c))
  end
  local entity = ENTITY[action]
  local row = M.find_target(st, inst, entity, req.target)
  if not row then return nil, ("no %s '%s' in %s (scan it first?)"):format(entity:gsub("s$", ""), tostring(req.target), inst.name) end
  req.correlation_id = req.correlation_id or crypto.hex(crypto.random(8))
  req.params = req.params or {}
  req.params.correlation_id = req.params.correlation_id or req.correlation_id

  -- idempotent on retry: the same action on the same target already done, and not undone since
  local done = st.db:query([[SELECT * FROM governance_actions WHERE instance_id = ? AND action = ? AND target_id = ?
    AND mode = 'executed' AND result = 'ok' ORDER BY id DESC LIMIT 1]], inst.id, action, row.ext_id)[1]
  if done and not req.force then
    local undone = c.undo and c.undo[action] and st.db:query([[SELECT 1 FROM governance_actions WHERE instance_id = ?
      AND action = ? AND target_id = ? AND mode = 'executed' AND id > ? LIMIT 1]], inst.id, c.undo[action], row.ext_id, done.id)[1]
    if not undone then done.already = true; return done end
  end

  if req.dry_run then return record(st, inst, req, row, { mode = "dry-run", result = "planned" }) end
  if req.policy then
    -- an operator undid this very action on this target: a policy does not simply do it again
    local undone = st.db:query([[SELECT u.operator, u.created_at FROM governance_actions u
      JOIN governance_actions a ON u.operator LIKE 'undo of #' || a.id || ' by %'
      WHERE a.instance_id = ? AND a.action = ? AND a.target_id = ? AND u.result = 'ok' ORDER BY u.id DESC LIMIT 1]],
      inst.id, action, row.ext_id)[1]
    if undone then
      return record(st, inst, req, row, { mode = "held", result = "held",
        error = ("an operator undid %s on this target at %s; not repeated automatically"):format(action, undone.created_at) })
    end
    local why = limit_hit(st, inst, req)
    if why then
      local rec = record(st, inst, req, row, { mode = "held", result = "held", error = why })
      M.alert(st, inst, req.policy, "high", "governance action held: " .. why, entity, row.ext_id,
        { action = action, target = rec.target, reason = why })
      return rec
    end
  end

  local ctx = sync.context(st, inst, "governance")
  local ok, res = pcall(c.actions[action], ctx, row, req.params)
  if not ok then
    local msg = tostring(res)
    local status = tonumber(msg:match("HTTP (%d%d%d)"))
    local rec = record(st, inst, req, row, { mode = "executed", result = "failed", error = msg, provider_status = status })
    if req.policy then
      M.alert(st, inst, req.policy, "medium", "governance action failed", entity, row.ext_id, { action = action, error = msg })
    end
    return rec
  end
  local undo = type(res) == "table" and res.undo or (c.undo and c.undo[action] and { action = c.undo[action] }) or nil
  local rec = record(st, inst, req, row, { mode = "executed", result = "ok", undo = undo,
    provider_status = type(res) == "table" and res.status or nil })
  if action == "quarantine_file" or action == "unquarantine_file" then
    assert(st.db:exec("UPDATE files SET quarantined = ? WHERE instance_id = ? AND ext_id = ?",
      action == "quarantine_file" and 1 or 0, inst.id, row.ext_id))
  end
  -- the store follows the provider: re-fetch what changed, where the connector can
  local fetch = c.fetch[entity]
  if fetch then
    local fok, ferr = pcall(fetch, sync.context(st, inst, "governance"), row.ext_id)
    if not fok then log.warn("re-fetch after action failed", { instance = inst.name, action = action, error = ferr }) end
  end
  return rec
end

-- Retry a held or failed action (the same correlation id), or undo an executed one.
function M.retry(st, instances, id)
  local r = st.db:query("SELECT * FROM governance_actions WHERE id = ?", id)[1]
  if not r then return nil, "no governance action " .. tostring(id) end
  if r.result == "ok" then return nil, ("action %d already succeeded"):format(id) end
  local inst = instances(r.instance_id)
  return M.act { store = st, instance = inst, action = r.action, target = r.target_id, policy = nil,
    operator = "retry of #" .. id, params = json.decode(r.raw or "{}"), correlation_id = r.ext_id, force = true }
end

function M.undo(st, instances, id, operator)
  local r = st.db:query("SELECT * FROM governance_actions WHERE id = ?", id)[1]
  if not r then return nil, "no governance action " .. tostring(id) end
  if r.result ~= "ok" or r.mode ~= "executed" then return nil, ("action %d was not executed successfully"):format(id) end
  local undo = json.decode(r.undo or "null")
  if type(undo) ~= "table" or not undo.action then return nil, ("%s cannot be undone through the API"):format(r.action) end
  local inst = instances(r.instance_id)
  return M.act { store = st, instance = inst, action = undo.action, target = r.target_id,
    operator = ("undo of #%d by %s"):format(id, operator or "operator"), params = undo.params, force = true }
end

return M
