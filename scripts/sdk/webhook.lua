-- sdk/webhook.lua — what every connector's webhook entry shares (the connector env's `webhook`): the JSON
-- body of a delivery, checked, and a replay cache.
--
-- The replay cache remembers the keys of deliveries already handled, per instance and kind, for a window.
-- A key must come from what the provider signs (a delivery id in an unsigned header can be changed by
-- whoever replays the request): Box's event id with its signed timestamp, Okta's event uuids; GitHub's
-- X-GitHub-Delivery, which a redelivery keeps, is only a courtesy against re-processing (the body is
-- signed, the GUID is not: a replay under a new GUID re-fetches current state, nothing more).  In memory:
-- a restart forgets it, which the providers' own windows (Box: 10 minutes) bound.
local M = {}

M.MAX_KEYS = 100000             -- per instance and kind: past it the oldest keys go first

local caches = {}               -- scope -> { window =, at = {key = time}, order = {keys...}, head = }

-- Is `key` new in `scope` (e.g. instance .. "/box")?  true the first time within `window` seconds (and
-- remembers it), false for a repeat.
function M.first(scope, key, window)
  local c = caches[scope]
  if not c then
    c = { window = window, at = {}, order = {}, head = 1, tail = 0 }
    caches[scope] = c
  end
  local now = sched.now()
  -- forget what is out of its window, oldest first (keys are appended in time order)
  while c.head <= c.tail do
    local k = c.order[c.head]
    if now - c.at[k] <= c.window and c.tail - c.head + 1 < M.MAX_KEYS then break end
    c.at[k], c.order[c.head], c.head = nil, nil, c.head + 1
  end
  if c.at[key] then return false end
  c.tail = c.tail + 1
  c.order[c.tail], c.at[key] = key, now
  return true
end

-- The JSON body of a delivery -> value | nil, status, message.  A delivery that is not
-- application/json gets 415, one that does not parse 400 (evhttp already answered 413 past max_body).
function M.json(req)
  local ct = ((req.headers or {})["content-type"] or ""):lower():match("^%s*([^;%s]+)")
  if ct ~= "application/json" then return nil, 415, "expected Content-Type: application/json" end
  local v = json.decode(req.body or "")
  if v == nil then return nil, 400, "body is not JSON" end
  return v
end

return M
