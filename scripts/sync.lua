-- sync.lua — the sync engine: runs one stream of one instance, committing each page with its cursor.
--
-- A stream is a connector function c.streams.NAME(ctx, cursor).  It reads pages through ctx (sdk/context)
-- and hands them to ctx:emit(entity, items, map); each emit is one transaction: the rows, the stream's
-- cursor and watermark together, so killing the process at any instant loses nothing and duplicates nothing.
-- When a stream returns normally its listing was complete: inventory rows it no longer saw are marked
-- deleted (never before).  A stream that calls ctx:checkpoint(cursor) is incremental (activities).
local util = require "sdk.util"
local context = require "sdk.context"

local M = {}

-- The connector context (sdk/context.lua); sync.context stays the engine's name for it.
M.context = context.new

local status_of = context.status_of

-- A stored error's state: "ok" (none), "reconnect_needed", "permission_missing", "unavailable" or "error".
-- The stored text is all there is of an earlier run: sync.run stores a health state's failure starting
-- with its token.
function M.state(err)
  if err == nil or err == "" then return "ok" end
  return status_of(tostring(err):match("^([%a_]+):"))
end

-- How `cachost status` and /metrics name a stream's health from its stored error (nil: none):
-- "reconnect needed", "permission missing: <what>", "unavailable (needs <what>)" or "error".  <what> is
-- the rest of the message: the connector's "unavailable: needs X: detail", the provider's 403 text.
function M.health(err)
  if err == nil or err == "" then return nil end
  local status, rest = M.state(err), tostring(err):gsub("^[%a_]+:%s*", "", 1)
  if status == "reconnect_needed" then return "reconnect needed" end
  if status == "permission_missing" then return "permission missing: " .. rest:gsub("^HTTP %d+: ", "", 1) end
  if status == "unavailable" then return ("unavailable (needs %s)"):format(rest:match("^needs ([^:]+)") or rest) end
  return "error"
end

M.redact = context.redact

-- sync.run(st, inst, stream, {full = bool}) -> counts | nil, err, status, token
-- status: "reconnect_needed", "permission_missing", "unavailable" or "error"; token: the failure's
-- (sdk.util.failure), e.g. "full" or "busy" when the store could not be written.
function M.run(st, inst, stream, opts)
  opts = opts or {}
  local cok, ctx = pcall(M.context, st, inst, stream)       -- settings it cannot work with: that error
  if not cok then return nil, tostring(ctx), "error", util.token_of(ctx) end
  local e = context.engine(ctx)
  local c = e.connector
  local fn = c.streams[stream]
  if not fn then return nil, ("%s has no stream '%s'"):format(inst.app, stream) end
  -- c.enabled(stream, settings) -> true | false (switched off: skipped, nothing changes) | nil, err
  if c.enabled then
    local on, why = c.enabled(stream, inst.settings)
    if on == nil then return nil, why, "error" end
    if not on then return {}, nil, "skipped" end
  end
  local state = st:stream(inst.id, stream) or {}
  local cursor = not opts.full and state.cursor or nil
  local started = require("store").scan_start(state.scan_started)    -- after the last, whatever the clock
  ctx.watermark, e.watermark = state.watermark, state.watermark
  e.started = started         -- what this scan sees is stamped seen at its start (see Ctx:emit)
  ctx.first_scan = state.last_success == nil
  -- a store that cannot be written (locked by another process, full) is an error of the sync, not a crash
  local saved, serr, stoken = st:save_stream(inst.id, stream, { scan_started = started })
  if not saved then return nil, "store: " .. tostring(serr), "error", util.token_of(serr) or stoken end
  local ok, err = xpcall(fn, function(x)
    if util.token_of(x) then return x end                -- a failure, or "cancelled"
    -- a connector's own one-line error ("http: file is already in the quarantine folder")
    if type(x) == "string" and (x:match("^[%w_]+: ") or x:match("^endless") or x:match("^malformed")) then return x end
    return debug.traceback(tostring(x), 2)
  end, ctx, cursor)
  -- stopped, not broken: what was committed stays, the task goes on ending
  if not ok and util.token_of(err) == "cancelled" then error("cancelled", 0) end
  -- items it could not understand: what they stood for may still exist, so this was no complete
  -- listing (nothing is marked deleted) and the stream's health says so
  if ok and e.rejected then
    ok, err = false, ("malformed items: %d item(s) could not be read (first: %s); %s")
      :format(e.rejected, e.rejected_first,
        (e.incremental and not e.complete_listing) and "they were skipped" or "nothing was marked deleted")
  end
  if not ok then
    local token = util.token_of(err)
    err = M.redact(st, inst, err)
    -- stored, a health state's failure starts with its token: `cachost status` and /metrics read the
    -- state from it later (other tokens, e.g. a store's "full" under "store: ...", keep their message)
    if status_of(token) ~= "error" and err:sub(1, #token + 1) ~= token .. ":" then err = token .. ": " .. err end
    log.warn("sync failed", { instance = inst.name, stream = stream, error = err })
    st:save_stream(inst.id, stream, { last_error = err, last_error_at = sched.time(), counts = e.counts })
    return nil, err, status_of(token), token
  end
  local done, derr = st:transaction(function()
    -- a complete listing: what it no longer saw is gone (an incremental stream may say that a run of
    -- it was complete: ctx:complete(), e.g. delta queries started afresh)
    if not e.incremental or e.complete_listing then
      for entity in pairs(e.emitted) do
        local res = assert(st:upsert(entity, inst.id, {}, { complete = true, scan_started = started }))
        local n = e.counts[entity]
        n.removed = n.removed + res.removed
      end
    end
    assert(st:save_stream(inst.id, stream, { last_success = sched.time(), last_error = json.null,
      counts = e.counts, cursor = e.incremental and (e.cursor or json.null) or nil,
      watermark = e.incremental and (e.watermark or json.null) or util.iso(started) }))
    return true
  end)
  if not done then return nil, "store: could not finish the scan: " .. tostring(derr), "error", util.token_of(derr) end
  return e.counts
end

return M
