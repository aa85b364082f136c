-- sdk/context.lua — the connector context: everything a connector's code may touch of cachost.
--
-- Streams, actions, re-fetches, webhooks and connection tests all run with a ctx as their first argument.
-- It offers HTTP to the instance's own hosts (auth, rate budget and retries are the client's), the
-- listing helpers, the store through named operations (emit, stored, retire, known_users, ...), the
-- stream's state and the instance's secrets.  It holds no database handle and no raw client: those stay
-- in a table connectors cannot reach, read by the engine (sync, governance, daemon, connect) through
-- context.engine(ctx).
--
-- Operational failures are data: ctx:try returns `nil, message, token, resp`; the raising helpers
-- (ctx:get, ...) raise a util.failure carrying the same token, which the engine reads.
local sdk = require "sdk"
local util = require "sdk.util"
local Client = require "sdk.client"
local auth = require "sdk.auth"
local entities = require("store.schema").entities

local M = {}

-- A listing's pages are large and short-lived (a body of megabytes, its items, their rows): the collector
-- starts a cycle once the heap has grown by half since the last one (Lua's default waits for it to double)
-- and does it in steps while the next page is read.  One full collection after each page cost more CPU
-- (bench/sync.sh) for a higher peak; the generational mode kept old pages' strings far longer (3x the peak).
collectgarbage("incremental", 150, 200)

local Ctx = {}
Ctx.__index = Ctx

-- ctx -> what only the engine sees: {st, inst, client, connector, counts, emitted, rejected, cursor, ...}
local engine = setmetatable({}, { __mode = "k" })
function M.engine(ctx) return engine[ctx] end

-- The client of an instance: its own hosts only (its API, its auth endpoints, the hosts its connector
-- names), so a next link or a notification can never send the credentials elsewhere.
local function client_for(inst, c)
  local client = Client.for_instance(inst, c, auth.for_connector(c))
  local base, err = sdk.base_url(c, inst.settings)
  if not base then error(util.failure(("settings: %s: %s"):format(inst.name, err:gsub("^settings: ", "")), "settings"), 0) end
  client.base = base
  client.insecure = inst.settings.insecure_loopback == true or inst.settings.insecure_loopback == "true"
  local hosts = auth.hosts(c, inst.settings)
  hosts[#hosts + 1] = client.base
  for _, u in ipairs(type(c.hosts) == "function" and c.hosts(inst.settings) or {}) do hosts[#hosts + 1] = u end
  client:set_hosts(hosts)
  return client
end

-- context.new(st, inst, stream) -> ctx for running connector code on behalf of an instance.
function M.new(st, inst, stream)
  local c = assert(sdk.load(inst.app))
  -- public fields: settings, instance (its name), stream; sync.run adds watermark (where the last run
  -- left off) and first_scan
  local ctx = setmetatable({ settings = inst.settings, instance = inst.name, stream = stream }, Ctx)
  engine[ctx] = {
    st = st, inst = inst, connector = c, client = client_for(inst, c),
    emitted = {}, counts = {}, cursor = nil, pending_cursor = false,
  }
  return ctx
end
function M.connector(ctx) return engine[ctx].connector end
function M.client(ctx) return engine[ctx].client end

-- The health of a failure's token (sdk.util.failure; nil: a plain error): "auth" the credential is dead
-- (reconnect needed), "permission" this credential may not read this (a 403: the other streams go on),
-- "unavailable" the tenant's plan does not offer it.
local STATUS = { auth = "reconnect_needed", permission = "permission_missing", unavailable = "unavailable" }
function M.status_of(token) return STATUS[token] or "error" end

-- An error of an instance as it may be stored or printed: one bounded line without any of the
-- instance's secrets (every value of its vault: API tokens, client secrets, the tokens its auth
-- obtained) or anything shaped like a credential (Client.redact).
function M.redact(st, inst, text)
  local secrets = {}
  pcall(function()                -- a vault that cannot be read leaves the pattern rules
    for _, name in ipairs(st:secret_names(inst.id)) do secrets[#secrets + 1] = inst:secret(name) end
  end)
  return Client.redact(text, secrets)
end

local function raise(message, token, resp) error(util.failure(message, token, resp), 0) end

---------------------------------------------------------------------------------------------- HTTP
-- opts.fields (see Client:pages): the members of each item of a listing the connector reads, the only ones
-- decoded; the error on reading another names the line of the connector's call that declared them.
local function declared(opts)
  if not (opts and opts.fields) or opts.fields_origin then return opts end
  local level, at = 3, nil
  repeat at = debug.getinfo(level, "Sl"); level = level + 1 until not at or not at.short_src:find("sdk/context.lua", 1, true)
  return setmetatable({ fields_origin = at and ("%s:%d"):format(at.short_src, at.currentline) }, { __index = opts })
end

-- ctx:try(method, path, opts) -> resp | nil, message, token, resp.  Never raises on an operational failure.
function Ctx:try(method, path, opts)
  return engine[self].client:request(method, path, declared(opts))
end

-- ctx:request(method, path, opts) -> data, resp; raises a failure (its token for the engine).
function Ctx:request(method, path, opts)
  local resp, err, token, r = self:try(method, path, opts)
  if not resp then raise(err, token, r) end
  return resp.data, resp
end
function Ctx:get(path, query, opts)
  opts = opts or {}
  opts.query, opts.expect_json = query, true
  return self:request("GET", path, opts)
end
function Ctx:post(path, body, query) return self:request("POST", path, { json = body, query = query }) end
function Ctx:put(path, body) return self:request("PUT", path, { json = body }) end
function Ctx:patch(path, body) return self:request("PATCH", path, { json = body }) end
function Ctx:delete(path, query) return self:request("DELETE", path, { query = query }) end

-- A GET of something that may be gone: data, resp | nil when the provider answers 404 (raises otherwise).
function Ctx:try_get(path, query, opts)
  opts = opts or {}
  opts.query, opts.expect_json = query, true
  local resp, err, token, r = self:try("GET", path, opts)
  if resp then return resp.data, resp end
  if token == "not_found" then return nil end
  raise(err, token, r)
end

function Ctx:pages(path, query, opts) return engine[self].client:pages(path, query, declared(opts)) end
-- The items of a listing answered in one body, checked against the documented shape (`where`: the
-- array field of an object body, nil: the body is the array; see Client.listing); raises if it is not.
function Ctx:listing(data, where, path)
  local items, err = Client.listing(data, where)
  if not items then raise(("%s (GET %s)"):format(err, (tostring(path):gsub("%?.*", ""))), "malformed") end
  return items
end
function Ctx:list(path, query, where, opts)
  local data, resp = self:get(path, query, opts)
  return self:listing(data, where, path), resp
end

-- A file's content through the app's connector (the DLP step): body[, nil, content type when not the
-- file's own, e.g. a Google Doc exported as text] | nil, err | nil, nil when the app offers no content.
function Ctx:content(row, max_size)
  local c = engine[self].connector
  if not c.content then return nil, nil end
  return c.content(self, row, max_size)
end

---------------------------------------------------------------------------------------------- the instance
function Ctx:secret(name) return engine[self].inst:secret(name) end
function Ctx:set_secret(name, value) return engine[self].inst:set_secret(name, value) end

-- A store operation's result, or a raised failure with the store's token (busy, full, ...).
local function store_op(ok, err, token)
  if ok == nil then raise("store: " .. tostring(err), token or "store") end
  return ok
end

-- The users of this instance as last stored: {ext_id, email, external}, for per-user listings.  Read once
-- for the ctx (one notification's re-fetch, one action, one stream's run: a Box quarantine asked nine
-- times), again after the ctx itself emitted or retired users.  Not to be changed by the caller.
function Ctx:known_users()
  local e = engine[self]
  if not e.users then e.users = store_op(e.st:known_users(e.inst.id)) end
  return e.users
end

-- The stored row of an entity by the provider's id | nil (deleted rows too: deleted_at says so).
function Ctx:stored(entity, ext_id)
  local e = engine[self]
  local row, err, token = e.st:stored(entity, e.inst.id, ext_id)
  if row == nil and err then store_op(nil, err, token) end
  return row
end

-- The ids of the live rows of an entity whose `field` is `value` (a file's permissions: "file_id", id).
function Ctx:stored_ids(entity, field, value)
  local e = engine[self]
  return store_op(e.st:stored_ids(entity, e.inst.id, field, value))
end

-- Rows the provider says are gone (a targeted re-fetch found them missing): marked deleted now.
function Ctx:retire(entity, ext_ids)
  local e = engine[self]
  if entity == "users" then e.users = nil end
  return store_op(e.st:retire(entity, e.inst.id, ext_ids)).removed
end

-- users.is_admin follows the privileges the connector found (a set of user ext_ids).
function Ctx:set_admins(ids)
  local e = engine[self]
  store_op(e.st:set_admins(e.inst.id, ids))
end

-- A stream's saved state {cursor, watermark, last_success, ...} (this one's by default) | {}.
function Ctx:state(stream)
  local e = engine[self]
  return e.st:stream(e.inst.id, stream or self.stream) or {}
end
-- Saves another stream's cursor (a webhook moving the files stream's delta links forward).
function Ctx:save_cursor(stream, cursor)
  local e = engine[self]
  store_op(e.st:save_stream(e.inst.id, stream, { cursor = cursor }))
end

---------------------------------------------------------------------------------------------- a stream's run
-- The stream read up to `cursor` (and `watermark`): saved with the next emitted page, or at the end.
function Ctx:checkpoint(cursor, watermark)
  local e = engine[self]
  e.cursor, e.watermark, e.pending_cursor = cursor, watermark or e.watermark, true
  e.incremental = true
end
-- An incremental stream says this run was a complete listing (a delta started afresh): what it did not
-- see is gone.
function Ctx:complete() engine[self].complete_listing = true end

local function count(e, entity)
  local c = e.counts[entity] or { added = 0, changed = 0, unchanged = 0, removed = 0, bad = 0 }
  e.counts[entity] = c
  return c
end

-- An item of a listing that could not be understood (no id, a field of the wrong type): counted, and
-- the run is then not a complete listing (sync.run marks no deletions and reports the error).
function Ctx:reject(entity, why)
  local e = engine[self]
  e.rejected = (e.rejected or 0) + 1
  if e.rejected == 1 then
    e.rejected_first = ("%s: %s"):format(entity, tostring(why))
    log.warn("skipped a malformed item", { instance = self.instance, entity = entity, error = why })
  end
  local c = count(e, entity)
  c.bad = c.bad + 1
end

local function missing(v) return v == nil or v == json.null or v == "" end

-- Normalise and commit one page.  map(item) -> row (with ext_id) or nil to skip; an item map() fails
-- on, or whose row has no ext_id (an event's: or no time), is rejected (Ctx:reject), the page's other rows
-- still commit.  Each emit is one transaction: the rows, the stream's cursor and watermark together.
function Ctx:emit(entity, items, map)
  local e = engine[self]
  local st, inst = e.st, e.inst
  local event = entities[entity] and not entities[entity].inventory
  local rows = {}
  for _, item in ipairs(items) do
    local ok, row = pcall(map or function(x) return x end, item)
    if ok and row and missing(row.ext_id) then
      ok, row = false, "no id"
    elseif ok and row and event and missing(row.time) then
      ok, row = false, "no time"
    end
    if ok and row then
      if row.raw == nil then row.raw = json.source(item) or item end   -- the provider's own text
      rows[#rows + 1] = row
    elseif not ok then
      if util.undeclared(row) then error(row, 0) end       -- the connector's misuse, not a malformed item
      self:reject(entity, row)
    end
  end
  local res, mark
  store_op(st:transaction(function()
    -- inside a scan, rows are seen "at the scan's start": always after the previous scan's, whatever the
    -- wall clock does, so the end of a complete listing marks deleted exactly what this scan did not see
    res = assert(st:upsert(entity, inst.id, rows, { scan_started = e.started }))
    -- what policies have to evaluate is noted with the page (M.on_commit, policy.note): a crash before
    -- they did loses nothing
    if M.on_feed and M.on_commit then mark = M.on_commit(self, entity, res) end
    if e.pending_cursor then
      assert(st:save_stream(inst.id, self.stream, { cursor = e.cursor or json.null,
        watermark = e.watermark or json.null }))
      e.pending_cursor = false
    end
    return true
  end))
  e.emitted[entity] = true
  if entity == "users" then e.users = nil end
  local c = count(e, entity)
  for _, k in ipairs { "added", "changed", "unchanged" } do c[k] = c[k] + res[k] end
  -- the change feed: new events, and inventory rows added or changed (policies watch it)
  local feed = res.changes or {}
  if M.on_feed and #feed == 0 and res.status then
    for i, s in ipairs(res.status) do if s == "added" then feed[#feed + 1] = { op = "added", row = rows[i] } end end
  end
  if M.on_feed and #feed > 0 then M.on_feed(self, entity, feed, mark) end
  if M.on_page then M.on_page(self, entity, #rows) end          -- progress on a terminal (cachost sync)
  return res
end

return M
