-- retention.lua — deletes the events and the change history older than each instance's retention, in
-- small transactions (one batch of BATCH rows each), yielding between batches, so a sync is never held
-- up by more than one batch; `cachost retention` runs it once, `cachost run` every hour.
--
-- What it deletes: rows of activities and changes (store.RETAINED) whose time is older than the
-- retention, and nothing else: inventory rows (deleted ones included), alerts, governance records and
-- policy state are kept.  Policies do not need old rows: their windows live in policy_state and an
-- alert copies its evidence; rows of pages the policies have not evaluated yet (policy_pending) are kept
-- until they are.  Settings (per instance): retention_days (both tables), retention_days_activities and
-- retention_days_changes (one table); default DEFAULT_DAYS; 0 keeps forever.
local store = require "store"

local M = {}
M.DEFAULT_DAYS = 365
M.BATCH = 500
M.EVERY = 3600
M.KEEP_FREE = 0.25     -- free pages kept for new rows, as a fraction of the file (release_space)
M.RELEASE_STEP = 2000  -- pages given back per transaction (8 MB)

local function tables()
  local list = {}
  for t in pairs(store.RETAINED) do list[#list + 1] = t end
  table.sort(list)
  return list
end

-- The days tbl keeps for inst | nil, err.
function M.days(inst, tbl)
  local s = inst.settings or {}
  local key = s["retention_days_" .. tbl] ~= nil and "retention_days_" .. tbl or "retention_days"
  local v = s[key]
  if v == nil then -- After the deletions: give back to the file system the free pages beyond KEEP_FREE -> pages released.
function M.release(st)
  return st:release_space(M.KEEP_FREE, M.RELEASE_STEP)
end

return M.DEFAULT_DAYS end
  local n = math.tointeger(tonumber(v))
  if not n or n < 0 then return nil, ("%s: %s must be a whole number of days >= 0 (0 keeps forever), not %s"):format(inst.name, key, tostring(v)) end
  return n
end

local function now() return (sched and sched.time and sched.time()) or os.time() end

-- M.run(st, inst, {dry_run =}) -> {{instance =, table =, days =, before =, deleted =}, ...} | nil, err.
function M.run(st, inst, opts)
  opts = opts or {}
  local out = {}
  for _, tbl in ipairs(tables()) do
    local days, err = M.days(inst, tbl)
    if not days then return nil, err end
    local r = { instance = inst.name, table = tbl, days = days, deleted = 0 }
    if days > 0 then
      r.before = store.iso(now() - days * 86400)
      if opts.dry_run then
        r.deleted = st:retention_count(tbl, inst.id, r.before)
      else
        while true do
          local n, derr, token = st:retention_batch(tbl, inst.id, r.before, M.BATCH)
          if not n then return nil, derr, token end
          r.deleted = r.deleted + n
          if n < M.BATCH then break end
          if sched.current and sched.current() then sched.sleep(0) end   -- let the others' pages in
        end
      end
    end
    out[#out + 1] = r
  end
  return out
end

-- After the deletions: give back to the file system the free pages beyond KEEP_FREE -> pages released.
function M.release(st)
  return st:release_space(M.KEEP_FREE, M.RELEASE_STEP)
end

return M
