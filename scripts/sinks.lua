-- sinks.lua — alerts leave the machine.  Sinks are configured in $CACHOST_HOME/sinks.json, each with
-- a minimum severity; `cachost run` delivers every alert raised after a sink was first configured, from a
-- persistent outbox (store: deliveries), retried with capped exponential backoff, so an alert is never
-- lost while a sink is down.  Secrets are never in the file: it names environment variables holding them.
--
--   [ { "name": "soc",   "kind": "webhook", "url": "https://siem.example.com/cachost", "secret_env": "SOC_HMAC_KEY" },
--     { "name": "chat",  "kind": "slack",   "url_env": "SLACK_WEBHOOK_URL", "min_severity": "high" },
--     { "name": "log",   "kind": "syslog",  "address": "unix:/dev/log" | "tcp://host:514" | "tls://host:6514",
--       "facility": "authpriv", "ca_file": "/etc/ssl/siem-ca.pem" },
--     { "name": "mail",  "kind": "email",   "url": "smtps://smtp.example.com:465", "from": "cachost@example.com",
--       "to": ["soc@example.com"], "user": "cachost", "password_env": "SMTP_PASSWORD" } ]
--
-- webhook: POST of the alert as JSON, signed: X-Cachost-Timestamp (unix seconds) and X-Cachost-Signature
-- "v1=" .. hex HMAC-SHA256(secret, timestamp .. "." .. body); X-Cachost-Delivery names the delivery
-- (sink:alert id) for receivers that de-duplicate.  syslog: RFC 5424, octet-counted over TCP/TLS (RFC 6587,
-- 5425), one datagram on a local socket.  email: SMTP through libcurl (STARTTLS required off loopback).
local M = { FILE = "sinks.json", BATCH = 50, MAX_BACKOFF = 3600 }

local SEVERITY = { low = 1, medium = 2, high = 3, critical = 4 }
local FACILITY = { kern = 0, user = 1, mail = 2, daemon = 3, auth = 4, syslog = 5, authpriv = 10,
                   local0 = 16, local1 = 17, local2 = 18, local3 = 19, local4 = 20, local5 = 21, local6 = 22, local7 = 23 }
local SYSLOG_SEVERITY = { critical = 2, high = 3, medium = 4, low = 5 }   -- crit, err, warning, notice

local KINDS = {
  webhook = { required = { "url", "secret_env" } },
  slack = { required = { "url_env" } },
  syslog = { required = { "address" } },
  email = { required = { "url", "from", "to" } },
}

-- (a field, so that specs can give sinks an environment of their own)
M.getenv = function(name) return host.getenv(name) end

local function env(name)
  local v = M.getenv(name)
  if not v or v == "" then return nil, ("the environment variable %s is not set"):format(name) end
  if log and log.redact then log.redact(v) end
  return v
end

-- Checks one sink's settings -> sink | nil, err
local function check(s, i)
  local where = ("sink %s"):format(type(s) == "table" and type(s.name) == "string" and ("'" .. s.name .. "'") or ("#" .. i))
  if type(s) ~= "table" then return nil, where .. ": must be an object" end
  if type(s.name) ~= "string" or not s.name:match("^[%w_.-]+$") then return nil, where .. ": 'name' must be letters, digits, _ . -" end
  local kind = KINDS[s.kind]
  if not kind then return nil, ("%s: unknown kind %s (webhook, slack, syslog, email)"):format(where, tostring(s.kind)) end
  for _, k in ipairs(kind.required) do
    if s[k] == nil then return nil, ("%s: '%s' is required for a %s sink"):format(where, k, s.kind) end
  end
  s.min_severity = s.min_severity or "low"
  if not SEVERITY[s.min_severity] then return nil, where .. ": 'min_severity' must be low, medium, high or critical" end
  if s.kind == "webhook" and not tostring(s.url):match("^https://") and not tostring(s.url):match("^http://127%.") then
    return nil, where .. ": 'url' must be https:// (plain http only to 127.x)"
  end
  if s.kind == "syslog" then
    local scheme, rest = tostring(s.address):match("^(%a+)://(.+)$")
    if tostring(s.address):match("^unix:/") then s.transport, s.path = "unix", s.address:sub(6)
    elseif (scheme == "tcp" or scheme == "tls") and rest:match("^[^:]+:%d+$") then
      s.transport, s.host, s.port = scheme, rest:match("^([^:]+):(%d+)$")
      s.port = tonumber(s.port)
    else return nil, where .. ": 'address' must be unix:/path, tcp://host:port or tls://host:port" end
    s.facility = s.facility or "authpriv"
    if not FACILITY[s.facility] then return nil, where .. ": unknown 'facility' " .. tostring(s.facility) end
  end
  if s.kind == "email" then
    if type(s.to) == "string" then s.to = { s.to } end
    if type(s.to) ~= "table" or #s.to == 0 then return nil, where .. ": 'to' must list addresses" end
    if not tostring(s.url):match("^smtps?://") then return nil, where .. ": 'url' must be smtps:// or smtp://" end
  end
  return s
end

-- The sinks of $CACHOST_HOME/sinks.json -> list (empty when there is no file) | nil, err
function M.load(home)
  local path = (home or host.home) .. "/" .. M.FILE
  local f = io.open(path, "rb")
  if not f then return {} end
  local text = f:read("a")
  f:close()
  local list, jerr = json.decode(text)
  if type(list) ~= "table" or not json.is_array(list) then
    return nil, ("%s: not a JSON array of sinks%s"):format(path, jerr and (" (" .. jerr .. ")") or "")
  end
  local seen = {}
  for i, s in ipairs(list) do
    local ok, err = check(s, i)
    if not ok then return nil, path .. ": " .. err end
    if seen[s.name] then return nil, ("%s: two sinks named '%s'"):format(path, s.name) end
    seen[s.name] = true
  end
  return list
end

---------------------------------------------------------------------------------------------- formats

-- The alert as sinks show it (a stored alert row joined with its instance's name).
function M.payload(a)
  return { id = a.id, created_at = a.created_at, instance = a.instance, policy = a.policy, severity = a.severity,
           title = a.title, entity = a.entity, entity_id = a.entity_id, status = a.status,
           evidence = json.decode(a.evidence or "null") }
end

local function one_line(s) return (tostring(s or ""):gsub("[%c]", " ")) end

function M.summary(a)
  return ("[%s] %s (policy %s, %s %s on %s)"):format(a.severity:upper(), one_line(a.title), a.policy,
    one_line(a.entity), one_line(a.entity_id), one_line(a.instance))
end

local hostname
local function my_hostname()
  if not hostname then
    local f = io.open("/proc/sys/kernel/hostname", "rb")
    hostname = f and f:read("l") or "-"
    if f then f:close() end
    hostname = hostname:gsub("[^%w.-]", "")
    if hostname == "" then hostname = "-" end
  end
  return hostname
end

-- RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ELEMENT] MSG
function M.syslog_line(s, a)
  local function sd(v) return (one_line(v):gsub('[\\"%]]', "\\%0")) end
  local pri = FACILITY[s.facility] * 8 + (SYSLOG_SEVERITY[a.severity] or 5)
  return ('<%d>1 %s %s cachost %d alert [cachost@32473 alert="%d" policy="%s" severity="%s" instance="%s" entity="%s" entity_id="%s"] %s')
    :format(pri, a.created_at, my_hostname(), host.pid(), a.id, sd(a.policy), sd(a.severity), sd(a.instance),
      sd(a.entity), sd(a.entity_id), one_line(a.title))
end

local function mail_header(v)                     -- RFC 2047 for anything but printable ASCII
  v = one_line(v)
  if v:match("^[\32-\126]*$") then return v end
  return "=?UTF-8?B?" .. crypto.b64(v) .. "?="
end

function M.mail_message(s, a)
  local lines = {
    "From: " .. one_line(s.from),
    "To: " .. one_line(table.concat(s.to, ", ")),
    "Subject: " .. mail_header("[cachost] " .. a.severity:upper() .. ": " .. (a.title or a.policy)),
    "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S +0000", math.floor(sched.time())),
    ("Message-ID: <cachost-%s-%d@%s>"):format(s.name, a.id, my_hostname()),
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "",
    M.summary(a),
    "",
    json.pretty(M.payload(a)),
  }
  return (table.concat(lines, "\r\n"):gsub("\r?\n", "\r\n")) .. "\r\n"
end

---------------------------------------------------------------------------------------------- senders

local SEND = {}

function SEND.webhook(s, a)
  local secret, err = env(s.secret_env)
  if not secret then return nil, err end
  local body = json.encode(M.payload(a))
  local ts = tostring(math.floor(sched.time()))
  local r, rerr = http.request { method = "POST", url = s.url, body = body, timeout = 30, headers = {
    ["Content-Type"] = "application/json",
    ["X-Cachost-Timestamp"] = ts,
    ["X-Cachost-Signature"] = "v1=" .. crypto.hex(crypto.hmac_sha256(secret, ts .. "." .. body)),
    ["X-Cachost-Delivery"] = s.name .. ":" .. a.id } }
  if not r then return nil, rerr end
  if r.status >= 300 then return nil, ("http: HTTP %d from %s"):format(r.status, s.url) end
  return true
end

function SEND.slack(s, a)
  local url, err = env(s.url_env)
  if not url then return nil, err end
  local r, rerr = http.request { method = "POST", url = url, timeout = 30, headers = { ["Content-Type"] = "application/json" },
    body = json.encode { text = M.summary(a) } }
  if not r then return nil, rerr end
  if r.status >= 300 then return nil, ("http: HTTP %d from Slack"):format(r.status) end
  return true
end

function SEND.syslog(s, a, conn)
  local line = M.syslog_line(s, a)
  if s.transport == "unix" then return net.send_unix(s.path, line) end
  return conn:send(#line .. " " .. line)                   -- octet counting
end

function SEND.email(s, a)
  local password
  if s.password_env then
    local err
    password, err = env(s.password_env)
    if not password then return nil, err end
  end
  local r, err = http.mail { url = s.url, from = s.from, to = s.to, user = s.user, password = password,
                             body = M.mail_message(s, a), timeout = 60 }
  if not r then return nil, err end
  return true
end

local function backoff(attempts)
  local d = math.min(M.MAX_BACKOFF, 15 * 2 ^ attempts)
  return d * (0.8 + 0.4 * math.random())
end

-- One round of sending to a sink -> send(alert) -> true | nil, err, and close(): syslog over TCP/TLS opens
-- its connection once for the round.
local function open_round(s)
  local conn, err
  if s.kind == "syslog" and s.transport ~= "unix" then
    conn, err = net.connect { host = s.host, port = s.port, tls = s.transport == "tls", ca_file = s.ca_file, timeout = 10 }
  end
  local function send(a)
    if err then return nil, err end
    return SEND[s.kind](s, a, conn)
  end
  return send, function() if conn then conn:close() end end
end

-- Delivers what is due to one sink -> delivered, failed
function M.deliver(st, s)
  local due = assert(st:sink_due(s.name, SEVERITY[s.min_severity], M.BATCH))
  if #due == 0 then return 0, 0 end
  local send, close = open_round(s)
  local sent, failed = 0, 0
  for _, a in ipairs(due) do
    local ok, err = send(a)
    if ok then
      st:delivery_done(s.name, a.id)
      sent = sent + 1
    else
      -- stored and logged without the sink's secrets (a Slack URL is one)
      local secrets = {}
      for _, k in ipairs { "secret_env", "url_env", "password_env" } do
        if s[k] then secrets[#secrets + 1] = M.getenv(s[k]) end
      end
      err = require("sdk.client").redact(err, secrets)
      st:delivery_failed(s.name, a.id, err, sched.time() + backoff(a.attempts))
      failed = failed + 1
      log.warn("alert not delivered; will retry", { sink = s.name, alert = a.id, error = err })
      break                                    -- the sink is down: the rest wait with it
    end
  end
  close()
  return sent, failed
end

-- Sends a made-up alert to one sink now, outside the outbox (cachost sinks test).
function M.test(s)
  local a = { id = 0, created_at = require("sdk.util").iso(), instance = "-", policy = "cachost-sink-test", severity = "low",
              title = "cachost sink test: if you read this, alerts reach you", entity = "-", entity_id = "-", status = "open",
              evidence = "{}" }
  local send, close = open_round(s)
  local ok, err = send(a)
  close()
  return ok, err
end

-- The daemon's task: every `every` seconds, each sink gets what is due.
function M.run(st, sinks, every)
  for _, s in ipairs(sinks) do log.info("alert sink", { sink = s.name, kind = s.kind, min_severity = s.min_severity }) end
  while not sched.stopping() do
    for _, s in ipairs(sinks) do
      local ok, err = pcall(M.deliver, st, s)
      if not ok then
        if tostring(err):match("cancelled$") then error(err, 0) end
        log.error("alert sink failed", { sink = s.name, error = err })
      end
    end
    sched.sleep(every or 5)
  end
end

return M
