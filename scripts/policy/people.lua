-- policy/people.lua — what policies see of a person across apps, and the re-evaluation a departure
-- causes elsewhere.
--
-- Accounts are joined into people by the store's `identities` view (e-mail, or links an admin makes).  A
-- person has left when a source of truth says so: an HR app's terminated_at, or an identity provider (a
-- connector declaring c.identity = "provider") that deactivated, deleted or no longer lists their account.
-- A status cachost itself may set (suspended, disabled) does not count: a brute-force suspension in the
-- identity provider must not offboard someone everywhere.
--
-- Each users row of a policy's feed gets `person`, and for a person who left, `departed = true` and
-- `departed_via` (which source said so, and how).  When a source's page says someone left, the person's
-- accounts in the other instances are fed to those instances' policies (fan_out): the offboarding policy
-- acts there without waiting for their next scan.
local sdk = require "sdk"

local M = {}

M.DEPARTED = { "deprovisioned", "deleted" }

-- The apps whose connectors are identity providers (loaded once per process; connector files do not change
-- under a running cachost).
local providers
local function identity_providers()
  if not providers then
    providers = {}
    for _, app in ipairs(sdk.apps()) do
      local c = sdk.load(app)
      if c and c.identity == "provider" then providers[#providers + 1] = app end
    end
  end
  return providers
end

-- Who has left -> { [person] = {instance =, how = "terminated"|"deprovisioned"|"deleted", since =} }
function M.departures(st) return st:departures(identity_providers(), M.DEPARTED) end

-- Fills person, departed, departed_via of users rows of one instance, in place.
function M.enrich(st, inst, rows)
  local ids = {}
  for i, r in ipairs(rows) do ids[i] = r.ext_id end
  local people = st:people_of(inst.id, ids)
  local gone = M.departures(st)
  for _, r in ipairs(rows) do
    local person = people[r.ext_id]
    local d = person and gone[person]
    r.person, r.departed = person, d and true or nil
    r.departed_via = d and M.how(d) or nil
  end
end

-- "deprovisioned in acme-okta", "terminated in hr on 2026-01-31"
function M.how(d)
  return ("%s in %s%s"):format(d.how, d.instance, d.since and " on " .. d.since:sub(1, 10) or "")
end

-- Is this row of inst's feed a source of truth saying its person left?
local function says_left(inst, it)
  local r = it.row
  -- json.null: the HR app says the person has no termination (a rehire clears an earlier one)
  if r.terminated_at ~= nil and r.terminated_at ~= json.null then return true end
  local idp = false
  for _, app in ipairs(identity_providers()) do idp = idp or app == inst.app end
  if not idp then return false end
  if it.op == "removed" then return true end
  for _, s in ipairs(M.DEPARTED) do if r.status == s then return true end end
  return false
end

-- The people this page of inst's users says left -> { [person] = true }.  Removed rows are fed without
-- their person: it is looked up from the store (the row stays there, marked deleted).
function M.leavers(st, inst, items)
  local ids = {}
  for _, it in ipairs(items) do
    if says_left(inst, it) then ids[#ids + 1] = it.row.ext_id end
  end
  if #ids == 0 then return {} end
  local out = {}
  for _, person in pairs(st:people_of(inst.id, ids)) do out[person] = true end
  return out
end

-- Feeds each leaver's accounts in the other instances to those instances' policies (feed is
-- policy.feed, called with fan_out off) -> alerts raised.
function M.fan_out(st, inst, policies, leavers, feed, opts)
  local by_inst = {}
  for person in pairs(leavers) do
    for _, row in ipairs(st:accounts_of(person)) do
      if row.instance_id ~= inst.id then
        local list = by_inst[row.instance_id] or {}
        by_inst[row.instance_id] = list
        list[#list + 1] = { op = "changed", row = row }
      end
    end
  end
  local alerts = 0
  for id, items in pairs(by_inst) do
    local other = require("instances").instance(st, id)
    if other then
      alerts = alerts + feed(st, other, policies, "users", items, { ctx = nil, mode = opts.mode, fan_out = false })
    end
  end
  return alerts
end

return M
