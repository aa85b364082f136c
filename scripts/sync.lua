-- sync.lua — the sync engine: runs one stream of one instance, committing each page with its cursor.
--
-- A stream is a connector function c.streams.NAME(ctx, cursor).  It reads pages through ctx and hands
-- them to ctx:emit(entity, items, map); each emit is one transaction: the rows, the stream's cursor and
-- watermark together, so killing the process at any instant loses nothing and duplicates nothing.
-- When a stream returns normally its listing was complete: inventory rows it no longer saw are marked
-- deleted (never before).  A stream that calls ctx:checkpoint(cursor) is incremental (activities).
local sdk = require "sdk"
local util = require "sdk.util"
local Client = require "sdk.client"
local auth = require "sdk.auth"

local M = {}
local gc_mark = 16 * 1024      -- KB of Lua heap after the last collection (see Ctx:emit)

local Ctx = {}
Ctx.__index = Ctx

-- ctx for running connector code on behalf of an instance (streams, actions, webhooks).
function M.context(st, inst, stream)
  local c = assert(sdk.load(inst.app))
  local client = Client.for_instance(inst, c, auth.for_connector(c))
  client.base = sdk.base_url(c, inst.settings)
  client.insecure = inst.settings.insecure_loopback == true or inst.settings.insecure_loopback == "true"
  -- where this instance's requests may go: its API, its auth endpoints, the hosts its connector names
  local hosts = auth.hosts(c, inst.settings)
  hosts[#hosts + 1] = client.base
  for _, u in ipairs(type(c.hosts) == "function" and c.hosts(inst.settings) or {}) do hosts[#hosts + 1] = u end
  client:set_hosts(hosts)
  return setmetatable({
    st = st, inst = inst, connector = c, client = client, stream = stream,
    settings = inst.settings, instance = inst.name,
    emitted = {}, counts = {}, cursor = nil, pending_cursor = false,
  }, Ctx)
end

-- HTTP for connectors: raise on failure (the engine records it), return the decoded body and response.
function Ctx:request(method, path, opts)
  local resp, err = self.client:request(method, path, opts)
  if not resp then error(err, 0) end
  return resp.data, resp
end
function Ctx:get(path, query) return self:request("GET", path, { query = query, expect_json = true }) end
function Ctx:post(path, body, query) return self:request("POST", path, { json = body, query = query }) end
function Ctx:put(path, body) return self:request("PUT", path, { json = body }) end
function Ctx:patch(path, body) return self:request("PATCH", path, { json = body }) end
function Ctx:delete(path, query) return self:request("DELETE", path, { query = query }) end
function Ctx:pages(path, query, opts) return self.client:pages(path, query, opts) end
-- The items of a listing answered in one body, checked against the documented shape (`where`: the
-- array field of an object body, nil: the body is the array; see Client.listing); raises if it is not.
function Ctx:listing(data, where, path)
  local items, err = Client.listing(data, where)
  if not items then error(("%s (GET %s)"):format(err, (tostring(path):gsub("%?.*", ""))), 0) end
  return items
end
function Ctx:list(path, query, where, opts)
  opts = opts or {}
  opts.query, opts.expect_json = query, true
  local data, resp = self:request("GET", path, opts)
  return self:listing(data, where, path), resp
end
function Ctx:secret(name) return self.inst:secret(name) end

-- The users of this instance as last stored: {ext_id, email}, for per-user listings.
function Ctx:known_users()
  return assert(self.st:query("SELECT ext_id, email FROM users WHERE instance_id = ? AND deleted_at IS NULL ORDER BY ext_id",
    self.inst.id))
end

-- users.is_admin follows the privileges the connector found (a set of user ext_ids).
function Ctx:set_admins(ids)
  local ok, err = self.st:transaction(function()
    assert(self.st.db:exec("UPDATE users SET is_admin = 0 WHERE instance_id = ? AND is_admin = 1", self.inst.id))
    for uid in pairs(ids) do
      assert(self.st.db:exec("UPDATE users SET is_admin = 1 WHERE instance_id = ? AND ext_id = ?", self.inst.id, uid))
    end
    return true
  end)
  if not ok then error("store: " .. tostring(err), 0) end
end

function Ctx:checkpoint(cursor, watermark)
  self.cursor, self.watermark, self.pending_cursor = cursor, watermark or self.watermark, true
  self.incremental = true
end

-- An item of a listing that could not be understood (no id, a field of the wrong type): counted, and
-- the run is then not a complete listing (sync.run marks no deletions and reports the error).
function Ctx:reject(entity, why)
  self.rejected = (self.rejected or 0) + 1
  if self.rejected == 1 then
    self.rejected_first = ("%s: %s"):format(entity, tostring(why))
    log.warn("skipped a malformed item", { instance = self.instance, entity = entity, error = why })
  end
  local c = self.counts[entity] or { added = 0, changed = 0, unchanged = 0, removed = 0, bad = 0 }
  c.bad = c.bad + 1
  self.counts[entity] = c
end

-- Normalise and commit one page.  map(item) -> row (with ext_id) or nil to skip; an item map() fails
-- on, or whose row has no ext_id, is rejected (Ctx:reject), the page's other rows still commit.
function Ctx:emit(entity, items, map)
  local rows = {}
  for _, item in ipairs(items) do
    local ok, row = pcall(map or function(x) return x end, item)
    if ok and row and (row.ext_id == nil or row.ext_id == json.null or row.ext_id == "") then
      ok, row = false, "no id"
    end
    if ok and row then
      if row.raw == nil then row.raw = json.source(item) or item end   -- the provider's own text
      rows[#rows + 1] = row
    elseif not ok then
      self:reject(entity, row)
    end
  end
  local res, mark
  local ok, err = self.st:transaction(function()
    res = assert(self.st:upsert(entity, self.inst.id, rows))
    -- what policies have to evaluate is noted with the page (M.on_commit, policy.note): a crash before
    -- they did loses nothing
    if M.on_feed and M.on_commit then mark = M.on_commit(self, entity, res) end
    if self.pending_cursor then
      assert(self.st:save_stream(self.inst.id, self.stream, { cursor = self.cursor or json.null,
        watermark = self.watermark or json.null }))
      self.pending_cursor = false
    end
    return true
  end)
  if not ok then error("store: " .. tostring(err), 0) end
  self.emitted[entity] = true
  local c = self.counts[entity] or { added = 0, changed = 0, unchanged = 0, removed = 0, bad = 0 }
  for _, k in ipairs { "added", "changed", "unchanged" } do c[k] = c[k] + res[k] end
  self.counts[entity] = c
  -- the change feed: new events, and inventory rows added or changed (policies watch it)
  local feed = res.changes or {}
  if #feed == 0 and res.status then
    for i, s in ipairs(res.status) do if s == "added" then feed[#feed + 1] = { op = "added", row = rows[i] } end end
  end
  if M.on_feed and #feed > 0 then M.on_feed(self, entity, feed, mark) end
  if M.on_page then M.on_page(self, entity, #rows) end          -- progress on a terminal (cachost sync)
  -- the page is garbage now: collect once the heap has grown by half since the last collection (a
  -- listing's pages are large and short-lived; Lua's default waits for it to double)
  if collectgarbage("count") > gc_mark * 1.5 then
    collectgarbage()
    gc_mark = math.max(collectgarbage("count"), 16 * 1024)
  end
  return res
end

-- A stream's health from its error's leading token: "auth:" the credential is dead (the instance needs
-- reconnecting), "permission:" this credential may not read this stream (a 403: the other streams go
-- on), "unavailable:" the tenant's plan does not offer it (the connector says what it needs).
local STATUS = { auth = "reconnect_needed", permission = "permission_missing", unavailable = "unavailable" }
local function status_of(err)
  return STATUS[tostring(err):match("^([%a_]+):")] or "error"
end
M.status_of = status_of

-- How `cachost status` and /metrics name a stream's health from its stored error (nil: none):
-- "reconnect needed", "permission missing: <what>", "unavailable (needs <what>)" or "error".  <what> is
-- the rest of the message: the connector's "unavailable: needs X: detail", the provider's 403 text.
function M.health(err)
  if err == nil or err == "" then return nil end
  local status, rest = status_of(err), tostring(err):gsub("^[%a_]+:%s*", "", 1)
  if status == "reconnect_needed" then return "reconnect needed" end
  if status == "permission_missing" then return "permission missing: " .. rest:gsub("^HTTP %d+: ", "", 1) end
  if status == "unavailable" then return ("unavailable (needs %s)"):format(rest:match("^needs ([^:]+)") or rest) end
  return "error"
end

-- An error of an instance as it may be stored or printed: one bounded line without any of the
-- instance's secrets (every value of its vault: API tokens, client secrets, the tokens its auth
-- obtained) or anything shaped like a credential (Client.redact).
function M.redact(st, inst, text)
  local secrets = {}
  pcall(function()                -- a vault that cannot be read leaves the pattern rules
    for _, r in ipairs(st.db:query("SELECT name FROM secrets WHERE instance_id = ?", inst.id)) do
      secrets[#secrets + 1] = inst:secret(r.name)
    end
  end)
  return Client.redact(text, secrets)
end

-- sync.run(st, inst, stream, {full = bool}) -> counts | nil, err
function M.run(st, inst, stream, opts)
  opts = opts or {}
  local ctx = M.context(st, inst, stream)
  local fn = ctx.connector.streams[stream]
  if not fn then return nil, ("%s has no stream '%s'"):format(inst.app, stream) end
  -- c.enabled(stream, settings) -> true | false (switched off: skipped, nothing changes) | nil, err
  if ctx.connector.enabled then
    local on, why = ctx.connector.enabled(stream, inst.settings)
    if on == nil then return nil, why, "error" end
    if not on then return {}, nil, "skipped" end
  end
  local state = st:stream(inst.id, stream) or {}
  local cursor = not opts.full and state.cursor or nil
  local started = require("store").scan_start(state.scan_started)    -- after the last, whatever the clock
  ctx.watermark = state.watermark
  ctx.first_scan = state.last_success == nil
  -- a store that cannot be written (locked by another process, full) is an error of the sync, not a crash
  local saved, serr = st:save_stream(inst.id, stream, { scan_started = started })
  if not saved then return nil, "store: " .. tostring(serr), "error" end
  local ok, err = xpcall(fn, function(e)
    if type(e) == "string" and e:match("cancelled$") then return "cancelled" end
    if type(e) == "string" and (e:match("^[%w_]+: ") or e:match("^endless") or e:match("^malformed")) then return e end
    return debug.traceback(tostring(e), 2)
  end, ctx, cursor)
  -- stopped, not broken: what was committed stays, the task goes on ending
  if not ok and err == "cancelled" then error("cancelled", 0) end
  -- items it could not understand: what they stood for may still exist, so this was no complete
  -- listing (nothing is marked deleted) and the stream's health says so
  if ok and ctx.rejected then
    ok, err = false, ("malformed items: %d item(s) could not be read (first: %s); %s")
      :format(ctx.rejected, ctx.rejected_first,
        (ctx.incremental and not ctx.complete_listing) and "they were skipped" or "nothing was marked deleted")
  end
  if not ok then
    err = M.redact(st, inst, err)
    log.warn("sync failed", { instance = inst.name, stream = stream, error = err })
    st:save_stream(inst.id, stream, { last_error = tostring(err), last_error_at = sched.time(),
      counts = ctx.counts })
    return nil, err, status_of(err)
  end
  local done = st:transaction(function()
    -- a complete listing: what it no longer saw is gone (an incremental stream may say that a run of
    -- it was complete: ctx.complete_listing, e.g. delta queries started afresh)
    if not ctx.incremental or ctx.complete_listing then
      for entity in pairs(ctx.emitted) do
        local res = assert(st:upsert(entity, inst.id, {}, { complete = true, scan_started = started }))
        local c = ctx.counts[entity]
        c.removed = c.removed + res.removed
      end
    end
    assert(st:save_stream(inst.id, stream, { last_success = sched.time(), last_error = json.null,
      counts = ctx.counts, cursor = ctx.incremental and (ctx.cursor or json.null) or nil,
      watermark = ctx.incremental and (ctx.watermark or json.null) or util.iso(started) }))
    return true
  end)
  if not done then return nil, "store: could not finish the scan" end
  return ctx.counts
end

-- Streams of a connector, full listings first (activities need users to resolve actors).  With the
-- instance's settings, only the streams c.enabled leaves on (an error from it keeps the stream listed:
-- running it reports the error).
function M.streams(c, settings)
  local list = {}
  for name in pairs(c.streams) do
    if not (settings and c.enabled and c.enabled(name, settings) == false) then list[#list + 1] = name end
  end
  table.sort(list, function(a, b)
    local oa, ob = (c.stream_order or {})[a] or 50, (c.stream_order or {})[b] or 50
    if oa ~= ob then return oa < ob end
    return a < b
  end)
  return list
end

return M
