-- policy — governance policies: loading them confined, and evaluating them on the change feed.
--
-- The engine is split along its concerns:
--   policy/load.lua      loading a policy file in its own state (the `vm` module) and checking it
--   policy/match.lua     which rows of a batch a policy matches (generated scanners, function matches)
--   policy/window.lua    windows (repeated, followed_by, travel), saved in policy_state
--   policy/enrich.lua    what policies see beyond the row (GeoIP coordinates, actor status, app users)
--   policy/dlp_step.lua  file content downloaded and scanned
--   policy/outcome.lua   alerts and actions of a hit; a failing policy disabled
--   policy/limits.lua    the limits and hooks they all read (this module's table: policy.SECONDS = ...)
-- This module runs them on the feed (feed), keeps track of the pages still to evaluate (note, resume),
-- and is the API the rest of cachost uses.
local L = require "policy.limits"
local loader = require "policy.load"
local match = require "policy.match"
local window = require "policy.window"
local enrich = require "policy.enrich"
local dlp_step = require "policy.dlp_step"
local outcome = require "policy.outcome"
local people = require "policy.people"
local metrics = require "metrics"
local schema = require "store.schema"
local ON, state_for = loader.ON, window.state_for
local repeated_step, travel_step = window.repeated_step, window.travel_step
local fire = outcome.fire

local M = L
M.ON = ON
M.load, M.find, M.load_all = loader.load, loader.find, loader.load_all
M.scratch_state, M.flush = window.scratch_state, window.flush
-- forgets what this process holds in memory (windows, evaluated pages, recent alerts), as a restart would
function M.forget(...)
  outcome.forget()
  return window.forget(...)
end

---------------------------------------------------------------------------------------------- evaluating

-- The step of one policy for its scan (see policy.match): what it makes of a row that matches or follows
-- -> step(row, hit) -> evidence | nil, or false for a policy whose match is all it asks | nil, err
local function stepper(st, inst, p, state, opts, downloads)
  -- what the policy's kind of step needs (downloads: file contents the batch's DLP policies share)
  local run = { st = st, inst = inst, opts = opts, downloads = downloads }
  if p.repeated or p.travel then run.wins, run.dirty, run.open = state:windows(p.id) end
  if p.followed_by then run.armed = state:armed(p.id) end
  if p.travel and p.travel.geoip then     -- opened at load; only a policy table changed since can fail here
    local err
    run.geo, err = enrich.geo_db(p.travel.geoip)
    if not run.geo then return nil, "travel.geoip: " .. err end
  end
  if p.repeated then return repeated_step(p, run) end
  if p.travel then return travel_step(p, run) end
  if p.dlp then return function(row) return dlp_step.step(p, run, row) end end
  return false
end

-- One policy on one batch of the feed -> its alert count.  Raises when the policy fails.
local function run_policy(st, inst, p, entity, items, rows, ops_seen, state, opts, downloads)
  if not p.op_set then
    local set = {}
    for _, o in ipairs(p.ops or (entity == "activities" and { "added" } or { "added", "changed" })) do set[o] = true end
    p.scan = match.scanner(p, (p.repeated or p.travel or p.dlp) ~= nil)
    p.op_set = set
  end
  local mine, ops = rows, p.op_set
  for op in pairs(ops_seen) do
    if not ops[op] then       -- this policy skips some of these rows
      mine = {}
      for _, it in ipairs(items) do if ops[it.op] then mine[#mine + 1] = it.row end end
      break
    end
  end
  local hits, step, err
  if p.match_fn then hits, err = match.in_vm(p, mine) end
  if not err then step, err = stepper(st, inst, p, state, opts, downloads) end
  if step == nil then error(err, 0) end
  local function hit(row, ev) return fire(st, inst, p, entity, row, ev, opts) end
  return p.scan(mine, step, hit, hits, state.armed_keys[p.id])
end

-- What a failure says, whatever was raised (an error object of the main state is ours: no __tostring
-- of a policy's runs here).
local function reason(e)
  if type(e) ~= "string" then return ("error: (error object is a %s value)"):format(type(e)) end
  if e:match("^[%w_]+: ") then return e end
  return "error: " .. e
end

-- engine.feed(st, inst, entity, items, opts) evaluates every enabled policy on the change feed:
-- items = { {op = "added"|"changed"|"removed", row = {...}}, ... }.  opts.mode overrides every
-- policy's mode; opts.dry (policy test) writes nothing (give opts.seen = {} and opts.state =
-- M.scratch_state(...); a failure is left in opts.failed); opts.on_alert sees each alert; opts.ctx is the sync
-- context (content downloads); opts.first_scan skips new_only policies; opts.mark is the note of the
-- page (M.note), done once it is evaluated.  Returns the count of alerts raised (not raised before).
-- Each policy runs protected: one that fails (its state's limits, an error in the engine on its values)
-- is disabled with an alert and the others go on.  A store failure or a cancelled task is not the
-- policy's doing: it goes up to the caller.
function M.feed(st, inst, policies, entity, items, opts)
  opts = opts or {}
  local rows, n, ops_seen = {}, 0, {}
  for i = 1, #items do
    local it = items[i]
    local op = it.op
    if op ~= "removed" then n = n + 1; rows[n] = it.row; ops_seen[op] = true end
  end
  local state = opts.state or state_for(st, inst)
  local watched = false       -- is a policy watching users (people across apps cost a few lookups a page)
  for _, p in ipairs(policies) do watched = watched or entity == "users" and p.enabled ~= false and p.on == "user" end
  -- two DLP policies on the same files (sensitive_file_shared, leaked_access_key) share each download
  local dlps, downloads = 0, nil
  for _, p in ipairs(policies) do
    if p.dlp and p.enabled ~= false and ON[p.on] == entity and not (p.new_only and opts.first_scan) then dlps = dlps + 1 end
  end
  if dlps > 1 then downloads = dlp_step.downloads() end
  local alerts = 0
  -- a source of truth said someone left (a removed account too): their accounts elsewhere are evaluated
  -- now, not at their next scan
  if watched and opts.fan_out ~= false and not opts.dry then
    alerts = people.fan_out(st, inst, policies, people.leavers(st, inst, items), M.feed, opts)
  end
  if n == 0 then
    if opts.mark then state.done[opts.mark] = true end
    return alerts
  end
  if entity == "users" then state.actors = nil end   -- statuses may have changed
  enrich.rows(st, inst, entity, rows, state_for(st, inst))     -- in place: the items see it too
  if watched then people.enrich(st, inst, rows) end
  for _, p in ipairs(policies) do
    if p.enabled ~= false and ON[p.on] == entity and not (p.new_only and opts.first_scan) then
      local ok, res = pcall(run_policy, st, inst, p, entity, items, rows, ops_seen, state, opts, downloads)
      p.evaluated = p.evaluated or metrics.counter("cachost_policy_evaluations_total", { policy = p.id })
      p.evaluated(n)
      if ok then
        alerts = alerts + res
      elseif type(res) == "string" and (res:match("^store: ") or res:match("cancelled$")) then
        error(res, 0)
      else
        outcome.disable(st, inst, p, reason(res), opts)
      end
    end
  end
  if opts.mark then state.done[opts.mark] = true end
  state:save()
  return alerts
end

---------------------------------------------------------------------------------------------- resuming

-- policy.note(st, inst, entity, res, first_scan) -> note id | nil: in the transaction of a page
-- (sync's on_commit), what the policies have to evaluate of it: the rowids of its new events, or of the
-- changes its inventory rows made.  They are contiguous: the page's rows were inserted in this
-- transaction, the last ones of their table.
function M.note(st, inst, entity, res, first_scan)
  local spec = schema.entities[entity]
  if not spec then return nil end
  local source = spec.inventory and "changes" or entity
  local n = spec.inventory and #(res.changes or {}) or res.added
  if n == 0 then return nil end
  return st:note_pending(inst.id, source, n, first_scan)
end

-- policy.resume(st, inst, policies, opts) -> pages evaluated: the pages of this instance committed and
-- not evaluated (a crash, a stop), evaluated now from the store, oldest first.  Their alerts that were
-- raised already are not raised again (see fire).  opts.ctx: the sync context (content downloads).
function M.resume(st, inst, policies, opts)
  local state = state_for(st, inst)
  local n = 0
  for _, note in ipairs(st:pending_notes(inst.id)) do
    if not state.done[note.id] then      -- evaluated in this process, not saved yet
      local feeds = st:noted_feed(inst.id, note)
      local entities = {}
      for entity in pairs(feeds) do entities[#entities + 1] = entity end
      table.sort(entities)
      for _, entity in ipairs(entities) do
        M.feed(st, inst, policies, entity, feeds[entity], { ctx = opts and opts.ctx, first_scan = note.first_scan == 1 })
      end
      state.done[note.id] = true
      n = n + 1
    end
  end
  state:save(true)
  return n
end

return M
