-- metrics.lua — what `cachost run` exposes at /metrics, in the Prometheus text format (version 0.0.4).
--
-- Two sources.  Counters kept in memory by the code that sees the event (HTTP requests by app and
-- status, rate-limit waits, policy evaluations): metrics.inc(name, labels[, n]).  And the store, read at
-- each scrape: per instance and stream the last success, rows and errors, the lag of activity streams,
-- alerts and governance actions by outcome; the store is the truth whichever process wrote it.
local M = {}

-- name -> { help, type }, in the order they are listed
local FAMILIES = {
  { "cachost_http_requests_total", "counter", "HTTP requests to providers, by app and status (or error token)" },
  { "cachost_rate_limit_wait_seconds_total", "counter", "seconds spent waiting on providers' rate limits, by app" },
  { "cachost_policy_evaluations_total", "counter", "rows evaluated by policies, by policy" },
  { "cachost_scan_slots_in_use", "gauge", "scans running now (cachost run --max-scans bounds them)" },
  { "cachost_scan_slots", "gauge", "the scan slots of this process" },
  { "cachost_stream_last_success_timestamp_seconds", "gauge", "end of the last successful scan, by instance and stream" },
  { "cachost_stream_error", "gauge", "1 if the last scan of the stream failed, by instance and stream" },
  { "cachost_stream_state", "gauge", "1 for the stream's health (state: ok, reconnect_needed, permission_missing, "
    .. "unavailable, error), by instance and stream" },
  { "cachost_stream_rows", "gauge", "rows added, changed and removed by the last scan, by instance, stream and op" },
  { "cachost_activity_lag_seconds", "gauge", "age of the newest stored activity, by instance" },
  { "cachost_alerts", "gauge", "alerts by policy, severity and status" },
  { "cachost_governance_actions", "gauge", "governance actions by action, mode and result" },
  { "cachost_alert_deliveries_waiting", "gauge", "alerts not yet taken by a sink (it is down, or they are new), by sink" },
  { "cachost_up", "gauge", "1 while the daemon runs" },
}

local counters = {}     -- name -> { [label text] = value }

local function escape(v)
  return (tostring(v):gsub("[\\\n\"]", { ["\\"] = "\\\\", ["\n"] = "\\n", ['"'] = '\\"' }))
end

-- {k = v} -> '{k="v",...}' with keys sorted, so one label set is one series
local function label_text(labels)
  if not labels or next(labels) == nil then return "" end
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = ('%s="%s"'):format(k, escape(labels[k])) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function add(name, key, n)
  local series = counters[name]
  if not series then series = {}; counters[name] = series end
  series[key] = (series[key] or 0) + (n or 1)
end

function M.inc(name, labels, n) add(name, label_text(labels), n) end

-- The counter of one label set, for a hot path (its label text made once) -> inc(n)
function M.counter(name, labels)
  local key = label_text(labels)
  return function(n) add(name, key, n) end
end

function M.reset() counters = {} end

local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "NaN" end
  return ("%.17g"):format(v)
end

-- Gauges read from the store and the process at scrape time -> { name = { [label text] = value } }
local function gauges(st, slots)
  local g = {}
  local function set(name, labels, v)
    g[name] = g[name] or {}
    g[name][label_text(labels)] = v
  end
  set("cachost_up", nil, 1)
  if slots then
    set("cachost_scan_slots_in_use", nil, slots.in_use)
    set("cachost_scan_slots", nil, slots.size)
  end
  local parse = require("sdk.util").parse_iso
  local snap = st:health_snapshot()
  for _, r in ipairs(snap.streams) do
    local l = { instance = r.instance, stream = r.stream }
    if r.last_success then set("cachost_stream_last_success_timestamp_seconds", l, parse(r.last_success) or 0) end
    set("cachost_stream_error", l, (r.last_error and r.last_error ~= "") and 1 or 0)
    set("cachost_stream_state", { instance = r.instance, stream = r.stream, state = require("sync").state(r.last_error) }, 1)
    local counts = json.decode(r.counts or "null")
    if type(counts) == "table" then
      for _, c in pairs(counts) do
        for _, op in ipairs { "added", "changed", "removed" } do
          local lo = { instance = r.instance, stream = r.stream, op = op }
          local key = label_text(lo)
          g.cachost_stream_rows = g.cachost_stream_rows or {}
          g.cachost_stream_rows[key] = (g.cachost_stream_rows[key] or 0) + (tonumber(c[op]) or 0)
        end
      end
    end
  end
  local now = sched.time()
  for _, r in ipairs(snap.newest) do
    local t = r.newest and parse(r.newest)
    if t then set("cachost_activity_lag_seconds", { instance = r.instance }, math.max(0, now - t)) end
  end
  for _, r in ipairs(snap.alerts) do
    set("cachost_alerts", { policy = r.policy, severity = r.severity, status = r.status }, r.n)
  end
  for _, r in ipairs(snap.actions) do
    set("cachost_governance_actions", { action = r.action, mode = r.mode, result = r.result or "" }, r.n)
  end
  for _, r in ipairs(snap.deliveries) do set("cachost_alert_deliveries_waiting", { sink = r.sink }, r.n) end
  return g
end

-- The exposition text.  st: the store (store.lua's health_snapshot), slots: {in_use, size} or nil.
function M.render(st, slots)
  local g = gauges(st, slots)
  local out = {}
  for _, f in ipairs(FAMILIES) do
    local name, kind, help = f[1], f[2], f[3]
    local series = counters[name] or g[name]
    if series and next(series) then
      out[#out + 1] = ("# HELP %s %s\n# TYPE %s %s\n"):format(name, help, name, kind)
      local keys = {}
      for k in pairs(series) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do out[#out + 1] = ("%s%s %s\n"):format(name, k, num(series[k])) end
    end
  end
  return table.concat(out)
end

return M
