-- sandbox/box/events.lua — enterprise events: one chronological list ({ms, type, id}); a stream position
-- is POS_BASE + how many come before it.  The events' JSON texts are kept apart, every CHUNK of them in one
-- zstd frame: a long run (the webhook bench: several events a notification) holds tens of thousands, and
-- in the bench's one process their bytes were most of the heap (the collector's pauses grow with it).
local T = require "sandbox.tenant"
local C = require "sandbox.box.common"
local Box = C.Box
local json, jnull, btime, is_admin, POS_BASE = C.json, C.jnull, C.btime, C.is_admin, C.POS_BASE
local CHUNK = 256

function Box:add_event(event_type, actor, source, extra)
  extra = extra or {}
  self.nseq = self.nseq + 1
  local ms = extra.ms or self:now_ms()
  local src = jnull()
  if source then
    if source.type == "file" or source.type == "folder" then
      local p = source.parent and self.state.items[source.parent]
      src = { item_type = source.type, item_id = source.id, item_name = source.name,
              parent = p and { type = "folder", name = p.name, id = p.id } or jnull(), owned_by = self:user_mini(self.state.by_id[source.owner]) }
    elseif source.login then
      src = { type = "user", id = source.id, name = source.name, login = source.login }
    elseif source.group_type or source.group then
      src = { type = "group", id = source.id, name = source.name, group_type = "managed_group" }
    end
  end
  local ev = { type = "event", event_id = T.hexs(8, self.seed, "ev", self.nseq) .. "-" .. T.hexs(4, self.seed, "ev2", self.nseq) .. "-" ..
               T.hexs(4, self.seed, "ev3", self.nseq) .. "-" .. T.hexs(12, self.seed, "ev4", self.nseq),
               created_at = btime(ms), recorded_at = btime(ms + 1000), created_by = self:user_mini(actor), event_type = event_type,
               session_id = jnull(), source = src, ip_address = extra.ip or "10.0.0.1",
               additional_details = extra.details or jnull(), action_by = jnull() }
  local list, texts = self.state.events, self.state.event_texts
  list[#list + 1] = { ms = ms, type = event_type, id = ev.event_id }
  texts.open[#texts.open + 1] = json().encode(ev)
  if #texts.open == CHUNK then                -- JSON text holds no raw newline: one separates them
    texts.sealed[#texts.sealed + 1] = T.host("zstd").compress(table.concat(texts.open, "\n"))
    texts.open = {}
  end
  return ev
end

-- the JSON text of event i (the last chunk read out of its frame is kept)
function Box:event_text(i)
  local texts = self.state.event_texts
  local k, j = (i - 1) // CHUNK + 1, (i - 1) % CHUNK + 1
  if k > #texts.sealed then return texts.open[j] end
  if texts.read ~= k then
    local out = {}
    for line in T.host("zstd").decompress(texts.sealed[k]):gmatch("[^\n]+") do out[#out + 1] = line end
    texts.read, texts.read_list = k, out
  end
  return texts.read_list[j]
end

-- a chunk of GET /events, its entries being the events' texts as kept
local function chunk(texts, next_position)
  return 200, ('{"chunk_size":%d,"next_stream_position":"%s","entries":[%s]}'):format(#texts, next_position,
    table.concat(texts, ",")), { ["Content-Type"] = "application/json" }
end


function Box:h_events(req)
  local q = req.query
  local stype = q.stream_type or "all"
  if stype ~= "admin_logs" and stype ~= "admin_logs_streaming" then
    -- user streams are not emulated: an empty chunk at the current position
    return chunk({}, tostring(POS_BASE + #self.state.events))
  end
  if not is_admin(req.actor) then return self:err(403, "access_denied_insufficient_permissions", "Access denied - insufficient permission") end
  self.event_reads[stype] = (self.event_reads[stype] or 0) + 1           -- for tests: which stream is read
  local limit = T.intparam(q.limit, 100, 1, 500)
  if not limit then return self:err(400, "invalid_parameter", "Invalid value for 'limit'") end
  local list = self.state.events
  local pos = 0
  local sp = q.stream_position
  if sp == "now" then
    return chunk({}, tostring(POS_BASE + #list))
  elseif sp and sp ~= "" and sp ~= "0" then
    local n = math.tointeger(tonumber(sp))
    if not n or n < POS_BASE or n > POS_BASE + #list then return self:err(400, "invalid_parameter", "Invalid value for 'stream_position'") end
    pos = n - POS_BASE
  end
  local after, before
  if stype == "admin_logs" then
    if q.created_after and q.created_after ~= "" then after = T.parse_iso(q.created_after)
      if not after then return self:err(400, "invalid_parameter", "Invalid value for 'created_after'") end end
    if q.created_before and q.created_before ~= "" then before = T.parse_iso(q.created_before)
      if not before then return self:err(400, "invalid_parameter", "Invalid value for 'created_before'") end end
  else
    after = self:now_ms() - 14 * 86400000       -- streaming: the last two weeks
  end
  local types
  if q.event_type and q.event_type ~= "" then
    types = {}
    for t in q.event_type:gmatch("[^,%s]+") do types[t] = true end
  end
  local function wanted(e) return (not after or e.ms >= after) and (not types or types[e.type]) end
  local out = {}
  -- admin_logs_streaming delivers at least once: a chunk that starts a new processing batch repeats the
  -- event the last batch ended with (consumers dedupe by event_id)
  local batch = self.event_batch
  if stype == "admin_logs_streaming" and pos > 0 and pos % batch == 0 and wanted(list[pos]) then out[1] = self:event_text(pos) end
  local i = pos
  while i < #list and #out < limit do
    i = i + 1
    local e = list[i]
    if before and e.ms >= before then i = #list; break end
    if wanted(e) then out[#out + 1] = self:event_text(i) end
    -- "events less than the limit requested can be returned even when there may be more events
    -- remaining" (GET /events, limit): a chunk ends with its processing batch
    if i % batch == 0 and #out > 0 then break end
  end
  -- admin_logs_streaming returns events "in roughly the order they are processed", not chronologically:
  -- here each pair of neighbours comes swapped
  if stype == "admin_logs_streaming" then
    for k = 1, #out - 1, 2 do out[k], out[k + 1] = out[k + 1], out[k] end
  end
  return chunk(out, tostring(POS_BASE + i))
end

return Box
