-- governance.lua — the one path of every action, whoever asks (a policy, `cachost act`, the REPL):
-- capability check, target, plan, limits, execute through the connector, record, re-fetch.
--
-- Safety by default: automatic actions (from policies) are held by the kill switch and by limits per
-- policy and globally (count per hour, share of an instance's users); held actions raise an alert.
-- Every action is recorded in governance_actions with who asked, the mode (dry-run / executed / held),
-- the result, the provider's status and how to undo it where the API allows.
local sdk = require "sdk"
local context = require "sdk.context"
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

-- The kill switch: a file in the home; on a shared store (PostgreSQL) a switch in the database too, so
-- that it stops every worker (read in the transaction of each action's limit check).
local function paused_file() return host.home .. "/governance.paused" end
local function shared() return store.url_of() and require("runtime").store() end
function M.paused()
  if host.stat(paused_file()) ~= nil then return true end
  local st = shared()
  return st and st:switch("governance_paused") ~= nil or false
end
function M.pause(who)
  if M.paused() then return true end
  local st = shared()
  if st then return st:set_switch("governance_paused", ("paused by %s at %s"):format(who or "operator", util.iso())) end
  return host.write_new(paused_file(), ("paused by %s at %s\n"):format(who or "operator", util.iso()), 384)
end
function M.resume()
  os.remove(paused_file())
  local st = shared()
  if st then return st:set_switch("governance_paused", nil) end
  return true
end

local function can(c)
  local list = {}
  for a in pairs(c.actions) do list[#list + 1] = a end
  table.sort(list)
  return #list > 0 and table.concat(list, ", ") or "nothing"
end

-- The store row an action targets: by ext_id, or for users by email, for files by path or name.
function M.find_target(st, inst, entity, target)
  if type(target) == "table" then return target end
  return st:action_target(inst.id, entity, tostring(target))
end

---------------------------------------------------------------------------------------------- owners
-- A pending row names the process sending it ("pid:start time" from /proc), so another process can
-- tell an action in flight from one whose sender died.  The start time tells a reused pid apart.  A
-- process that ended and is not reaped yet (a zombie: its parent, or an init that does not reap, has
-- not waited for it) has no start time here: it will never settle its rows.
local function start_time(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s and s:match("%)%s+(.*)$")    -- after the command name, which may hold spaces
  if not rest then return nil end
  local i = 2
  for v in rest:gmatch("%S+") do
    i = i + 1
    if i == 3 and (v == "Z" or v == "X") then return nil end    -- field 3: state
    if i == 22 then return v end              -- field 22: starttime
  end
end

-- The owner name of process pid ("pid:start time"; "pid:?" without /proc).
function M.process(pid) return ("%d:%s"):format(pid, start_time(pid) or "?") end

local me
function M.owner()
  if not me then me = M.process(host.pid()) end
  return me
end

-- Without /proc nothing tells: a pending row is taken for in flight for an hour.
M.STALE = 3600
local function owner_alive(r)
  local pid, start = tostring(r.owner or ""):match("^(%d+):(.*)$")
  if not pid then return false end
  if start == "?" then return util.parse_iso(r.created_at) > sched.time() - M.STALE end
  return start_time(pid) == start
end

local inflight = {}   -- ids of the actions this process is sending right now

---------------------------------------------------------------------------------------------- limits

-- Which limit, if any, holds an automatic action back.  Actions in flight (pending) and those whose
-- outcome is unknown count: they were sent, or may have been.
local function limit_hit(st, inst, req)
  st:serialize_limits()        -- workers sharing the store count one at a time (store/leases.lua)
  if M.paused() then return "governance is paused (cachost governance resume)" end
  local L = M.limits
  local accounts = ENTITY[req.action] == "users"
  local n = st:action_counts(inst.id, req.policy, util.iso(sched.time() - 3600), accounts)
  if n.policy >= L.per_policy_per_hour then return ("policy limit: %d actions in the last hour"):format(n.policy) end
  if n.global >= L.global_per_hour then return ("global limit: %d automatic actions in the last hour"):format(n.global) end
  if accounts and n.users > 0 and (n.targets + 1) / n.users > L.max_user_share then
    return ("share limit: %d of %d users already acted on in the last hour"):format(n.targets, n.users)
  end
  return nil
end

local function record(st, inst, req, row, fields)
  local now = store.now()
  return st:record_action {
    instance_id = inst.id, ext_id = req.correlation_id, action = req.action,
    target = row and (row.email or row.path or row.name or row.ext_id) or tostring(req.target),
    target_id = row and row.ext_id or tostring(req.target), policy = req.policy, operator = req.operator,
    mode = fields.mode, result = fields.result, provider_status = fields.provider_status, error = fields.error,
    undo = fields.undo, created_at = now, finished_at = fields.result ~= "planned" and fields.result ~= "pending" and now or nil,
    raw = req.params, owner = fields.owner,
  }
end

-- Raises an alert through the policy engine's table (held actions, failures the operator must see).
function M.alert(st, inst, policy, severity, title, entity, entity_id, evidence)
  st:raise_alert { instance_id = inst and inst.id or nil, ext_id = ("%s:%s:%s:%s"):format(policy, entity or "", entity_id or "", title),
    policy = policy, severity = severity, title = title, entity = entity, entity_id = entity_id, evidence = evidence }
end

-- In the transaction of the checks: the answer without acting (already done, dry run, held), or the
-- action's row recorded as pending before anything is sent.  Concurrent callers (tasks, processes)
-- pass these checks one at a time, each seeing the rows of those before it.
local function claim(st, inst, c, req, row)
  local action, entity = req.action, ENTITY[req.action]
  -- idempotent on retry: the same action on the same target done (or in flight), and not undone since
  local done = st:action_done(inst.id, action, row.ext_id, c.undo and c.undo[action])
  -- the same action on this target was interrupted and may or may not have taken effect: a policy's
  -- request waits for it (recorded, held), and is sent if it settles as not done (M.reconcile)
  if done and done.result == "unknown" and req.policy and not req.force and not req.dry_run then
    return record(st, inst, req, row, { mode = "held", result = "held",
      error = ("waiting: #%d %s this target and was interrupted; sent if it did not take effect"):format(done.id,
        action) })
  end
  if done and not req.force then done.already = true; return done end
  if req.dry_run then return record(st, inst, req, row, { mode = "dry-run", result = "planned" }) end
  if req.policy then
    -- an operator undid this very action on this target: a policy does not simply do it again
    local undone = st:action_undone_by_operator(inst.id, action, row.ext_id)
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
  return record(st, inst, req, row, { mode = "executed", result = "pending", owner = M.owner() })
end

---------------------------------------------------------------------------------------------- reconcile
-- An action interrupted after it was sent (or whose process died) is settled by a re-fetch of its
-- target: what the provider has now says whether it took effect.

local function quarantined(r)
  if r.path then return ("/" .. r.path .. "/"):find("/cachost quarantine/", 1, true) ~= nil end
  return r.quarantined == 1
end
-- The target as re-fetched, once the action took effect.  Actions missing here change nothing cachost
-- stores (sessions, passwords, one collaborator, content): a re-fetch cannot tell.
-- A provider whose only suspension is a lock-out (ServiceNow's locked_out) shows a suspended user locked.
local EFFECT = {
  suspend_user = function(r) return r.status == "suspended" or r.status == "disabled" or r.status == "locked" end,
  unsuspend_user = function(r) return r.status == "active" end,
  unlock_user = function(r) return r.status ~= "locked" end,
  deactivate_user = function(r) return r.status == "deprovisioned" or r.status == "disabled" end,
  quarantine_file = quarantined,
  unquarantine_file = function(r) return not quarantined(r) end,
  make_private = function(r) return r.access_level == "private" end,
  trash_file = function(r) return r.trashed == 1 end,
}
-- Actions whose effect is that the target is gone; an app adds those it carries out so (c.removes: Webex's
-- quarantine deletes the message that carries the file).
local GONE = { remove_member = true, trash_file = true, revoke_grant = true, revoke_token = true }
local function removes(c, action) return GONE[action] or (type(c.removes) == "table" and c.removes[action] == true) end

-- A provider may still be working on a request when its sender died: an effect not seen this soon
-- after the call is not a failure yet.
M.RECONCILE_GRACE = 120

-- The target as the provider has it now -> "row", row | "gone" | nil, why not known now.
local function refetch(st, inst, c, entity, r)
  local fetch = c.fetch[entity]
  if fetch then
    local ctx = context.new(st, inst, "governance")
    local ok, err = pcall(fetch, ctx, r.target_id)
    if not ok then
      if util.token_of(err) == "not_found" then return "gone" end
      if util.token_of(err) == "cancelled" then error(err, 0) end
      return nil, "re-fetch failed: " .. tostring(err)
    end
    local now = st:action_target(inst.id, entity, r.target_id)
    if not context.engine(ctx).emitted[entity] or not now or now.deleted_at then return "gone" end
    return "row", now
  end
  -- no targeted re-fetch: a complete listing that started after the action tells as much
  local s = st:stream(inst.id, entity)
  if s and s.scan_started and s.last_success and s.scan_started > r.created_at and s.last_success >= s.scan_started then
    local now = st:action_target(inst.id, entity, r.target_id)
    if not now or now.deleted_at then return "gone" end
    return "row", now
  end
  return nil, ("%s has no re-fetch of %s: known after its next complete scan"):format(c.title, entity)
end

-- -> true | false | nil (cannot tell now), why, sure (the answer will not change by waiting)
local function took_effect(st, inst, c, r)
  local entity = ENTITY[r.action]
  local kind, now = refetch(st, inst, c, entity, r)
  if not kind then return nil, now end
  if kind == "gone" then
    if removes(c, r.action) then return true, "the target is gone at the provider", true end
    return false, "the target no longer exists at the provider", true
  end
  local eff = EFFECT[r.action]
  if eff then
    if eff(now) then return true, "the re-fetched target shows it", true end
    return false, "the re-fetched target does not show it", false
  end
  if removes(c, r.action) then return false, "the target is still there at the provider", false end
  return false, ("a re-fetch cannot tell whether %s took effect: check at the provider (retry sends it again)")
    :format(r.action), true
end

local function settle(st, id, fields) return st:settle_action(id, fields) end

-- One unknown row -> the row, settled (ok / failed, with a note) or still unknown (why in its note).
local function reconcile_one(st, inst, c, r)
  local yes, why, sure = took_effect(st, inst, c, r)
  local at = util.iso()
  if yes == nil or (not yes and not sure and util.parse_iso(r.created_at) > sched.time() - M.RECONCILE_GRACE) then
    return settle(st, r.id, { note = ("not settled at %s: %s"):format(at, yes == nil and why or why .. " yet") })
  end
  if yes then
    local undo = c.undo and c.undo[r.action] and { action = c.undo[r.action] } or json.null
    if r.action == "quarantine_file" or r.action == "unquarantine_file" then
      st:set_quarantined(inst.id, r.target_id, r.action == "quarantine_file")
    end
    return settle(st, r.id, { result = "ok", undo = undo, finished_at = at,
      note = ("reconciled at %s: took effect (%s)"):format(at, why) })
  end
  return settle(st, r.id, { result = "failed", finished_at = at,
    error = (r.error and r.error .. "; " or "") .. "did not take effect",
    note = ("reconciled at %s: %s"):format(at, why) })
end

-- A policy's requests that waited on unknown row r (claim), once r settled: sent when it did not take
-- effect (through the whole path again: limits, pending row, call), noted when it did.  -> settled r
local function resume_waiting(st, inst, r, settled)
  for _, w in ipairs(st:waiting_on(inst.id, r.action, r.target_id, r.id)) do
    if settled.result == "ok" then
      settle(st, w.id, { note = ("not sent: #%d took effect"):format(r.id) })
    else
      local params = json.decode(w.raw or "null")
      local rec, err = M.act { store = st, instance = inst, action = w.action, target = w.target_id, policy = w.policy,
        params = type(params) == "table" and params or nil, correlation_id = w.ext_id }
      if not rec then log.warn("a waiting action could not be sent", { instance = inst.name, id = w.id, error = err }) end
    end
  end
  return settled
end

-- Pending rows whose process is gone become unknown (no network: `governance log` shows the truth).
function M.settle_orphans(st, inst_id)
  local n = 0
  for _, r in ipairs(st:unsettled_actions(inst_id)) do
    -- this process's own pending rows are in flight, or their task ended without settling them
    local mine = r.owner == M.owner()
    if r.result == "pending" and not inflight[r.id] and (mine or not owner_alive(r)) then
      settle(st, r.id, { result = "unknown", error = "interrupted: the process sending it ended before the answer",
        finished_at = util.iso() })
      n = n + 1
    end
  end
  return n
end

-- governance.reconcile(st, inst) -> {ok =, failed =, unknown =} for the actions of inst whose outcome
-- is not known (pending of a dead process, unknown).  Those in flight elsewhere are left alone.
function M.reconcile(st, inst)
  local counts = { ok = 0, failed = 0, unknown = 0 }
  M.settle_orphans(st, inst.id)
  local c
  for _, r in ipairs(st:unsettled_actions(inst.id)) do
    if r.result == "unknown" then
      local err
      if not c then c, err = sdk.load(inst.app) end
      if not c then return nil, err end
      local ok, res = pcall(reconcile_one, st, inst, c, r)
      if ok and res.result ~= "unknown" then ok, res = pcall(resume_waiting, st, inst, r, res) end
      if not ok then
        if tostring(res):match("cancelled$") then error(res, 0) end
        log.warn("reconcile failed", { instance = inst.name, id = r.id, error = res })
        counts.unknown = counts.unknown + 1
      else
        counts[res.result] = (counts[res.result] or 0) + 1
      end
    end
  end
  return counts
end

---------------------------------------------------------------------------------------------- act

-- Interrupted after it may have been sent: the provider may or may not have done it.
local STILL_RUNNING = { timeout = true, reset = true }    -- the connection ended, the process did not
local function interrupted(err)
  local token = util.token_of(err)
  return token == "cancelled" or STILL_RUNNING[token] or tostring(err):match("interrupted")
end

local function execute(st, inst, c, req, row, rec)
  local action, entity = req.action, ENTITY[req.action]
  inflight[rec.id] = true
  local ok, res = pcall(c.actions[action], context.new(st, inst, "governance"), row, req.params)
  inflight[rec.id] = nil
  -- what is recorded and shown of an error holds none of the instance's secrets
  if not ok and interrupted(res) then
    local msg = context.redact(st, inst, res)
    rec = settle(st, rec.id, { result = "unknown", finished_at = store.now(),
      error = "interrupted after it was sent: " .. msg })
    if not STILL_RUNNING[util.token_of(res)] then error(res, 0) end  -- the task goes on ending
    return reconcile_one(st, inst, c, rec)      -- still running: find out now
  end
  if not ok then
    local msg = context.redact(st, inst, res)
    local answer = type(res) == "table" and res.resp
    rec = settle(st, rec.id, { result = "failed", error = msg, provider_status = answer and answer.status or json.null,
      finished_at = store.now() })
    if req.policy then
      M.alert(st, inst, req.policy, "medium", "governance action failed", entity, row.ext_id, { action = action, error = msg })
    end
    return rec
  end
  local undo = type(res) == "table" and res.undo or (c.undo and c.undo[action] and { action = c.undo[action] }) or nil
  rec = settle(st, rec.id, { result = "ok", undo = undo or json.null, finished_at = store.now(),
    provider_status = type(res) == "table" and res.status or json.null })
  if action == "quarantine_file" or action == "unquarantine_file" then
    st:set_quarantined(inst.id, row.ext_id, action == "quarantine_file")
  end
  -- the store follows the provider: re-fetch what changed, where the connector can
  local fetch = c.fetch[entity]
  if fetch then
    local fok, ferr = pcall(fetch, context.new(st, inst, "governance"), row.ext_id)
    if not fok then log.warn("re-fetch after action failed", { instance = inst.name, action = action, error = ferr }) end
  end
  return rec
end

-- governance.act{instance=, action=, target=, params=, policy= | operator=, dry_run=}
--   -> record (a governance_actions row) | nil, err
-- Misuse (unknown action, an app that cannot do it, no such target) returns nil, err too: the caller
-- may be a CLI user.  Not inside a store transaction (the pending row must be committed before the call).
function M.act(req)
  local st, inst = req.store, req.instance
  local c, err = sdk.load(inst.app)
  if not c then return nil, err end
  local action = req.action
  if not ENTITY[action] then return nil, ("unknown action '%s'"):format(tostring(action)) end
  if not c.actions[action] then
    return nil, ("%s (%s) cannot %s; it can: %s"):format(inst.name, c.title, action, can(c))
  end
  if not req.dry_run and st:in_transaction() then
    error("governance.act: inside a store transaction the action's record would be committed after its call", 2)
  end
  local entity = ENTITY[action]
  local row = M.find_target(st, inst, entity, req.target)
  if not row then return nil, ("no %s '%s' in %s (scan it first?)"):format(entity:gsub("s$", ""), tostring(req.target), inst.name) end
  req.correlation_id = req.correlation_id or crypto.hex(crypto.random(8))
  req.params = req.params or {}
  req.params.correlation_id = req.params.correlation_id or req.correlation_id

  local rec, cerr = st:transaction(claim, inst, c, req, row)
  if not rec then return nil, cerr end
  if rec.already or rec.result ~= "pending" then return rec end
  return execute(st, inst, c, req, row, rec)
end

-- Retry a held or failed action (the same correlation id), or undo an executed one.  One whose outcome
-- is not known is reconciled first: it is sent again only if it did not take effect.
function M.retry(st, instances, id)
  local r = st:action(id)
  if not r then return nil, "no governance action " .. tostring(id) end
  local inst = instances(r.instance_id)
  if r.result == "pending" or r.result == "unknown" then
    local ok, err = M.reconcile(st, inst)
    if not ok then return nil, err end
    r = st:action(id)
    if r.result == "pending" or r.result == "unknown" then
      return nil, ("action %d is in flight or its outcome is not known yet (%s)"):format(id, r.note or r.result)
    end
  end
  if r.result == "ok" then return nil, ("action %d already succeeded"):format(id) end
  return M.act { store = st, instance = inst, action = r.action, target = r.target_id, policy = nil,
    operator = "retry of #" .. id, params = json.decode(r.raw or "{}"), correlation_id = r.ext_id, force = true }
end

function M.undo(st, instances, id, operator)
  local r = st:action(id)
  if not r then return nil, "no governance action " .. tostring(id) end
  if r.result ~= "ok" or r.mode ~= "executed" then return nil, ("action %d was not executed successfully"):format(id) end
  local undo = json.decode(r.undo or "null")
  if type(undo) ~= "table" or not undo.action then return nil, ("%s cannot be undone through the API"):format(r.action) end
  local inst = instances(r.instance_id)
  return M.act { store = st, instance = inst, action = undo.action, target = r.target_id,
    operator = ("undo of #%d by %s"):format(id, operator or "operator"), params = undo.params, force = true }
end

return M
