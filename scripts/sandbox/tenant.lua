-- sandbox/tenant.lua — what every sandbox tenant (API emulator) shares:
-- a deterministic PRNG, time formatting, URL/query helpers, a SCIM filter evaluator, the tenant clock,
-- the rate budget, fault injection, and webhook delivery.  Each provider's emulator (sandbox/<provider>/,
-- e.g. sandbox/okta/) builds on it and owns only what that provider's API says.
local M = {}

-- Host modules are globals inside cachost; fall back to require for other loaders.
local function host(name)
  local m = rawget(_G, name)
  if m ~= nil then return m end
  return require(name)
end
M.host = host

---------------------------------------------------------------------------------------------------
-- Deterministic randomness: splitmix64.  Lua 5.4 integers wrap on overflow, `>>` is logical.
---------------------------------------------------------------------------------------------------
local function mix64(z)
  z = (z ~ (z >> 30)) * -4658895280553007687      -- 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * -7723592293110705685      -- 0x94d049bb133111eb
  return z ~ (z >> 31)
end
local GOLDEN = -7046029254386353131               -- 0x9e3779b97f4a7c15

-- hash(seed, ...) -> 64-bit integer, a pure function of its integer/string arguments.
function M.hash(seed, ...)
  local h = mix64((math.tointeger(seed) or 0) + GOLDEN)
  for k = 1, select("#", ...) do
    local v = select(k, ...)
    if type(v) == "string" then
      for c = 1, #v do h = mix64(h + v:byte(c) + GOLDEN) end
    else
      h = mix64(h + (math.tointeger(v) or 0) + GOLDEN)
    end
  end
  return h
end
-- uniform float in [0, 1)
function M.unit(h) return (h >> 11) * (1.0 / 9007199254740992.0) end
-- uniform integer in [0, n)
function M.below(h, n) return (h >> 1) % n end

local Rng = {}
Rng.__index = Rng
function M.rng(seed, salt)
  return setmetatable({ s = M.hash(seed, salt or "rng") }, Rng)
end
function Rng:next()
  self.s = self.s + GOLDEN
  return mix64(self.s)
end
function Rng:float() return M.unit(self:next()) end
-- integer in [a, b]
function Rng:int(a, b)
  if b == nil then a, b = 1, a end
  return a + M.below(self:next(), b - a + 1)
end
function Rng:pick(list) return list[self:int(1, #list)] end
function Rng:chance(p) return self:float() < p end
function Rng:shuffle(t)
  for i = #t, 2, -1 do local j = self:int(1, i); t[i], t[j] = t[j], t[i] end
  return t
end

local B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
-- n base62 characters drawn from hash stream (seed, ...)
function M.b62(n, seed, ...)
  local out, h = {}, M.hash(seed, ...)
  for i = 1, n do
    h = mix64(h + i)
    local k = M.below(h, 62) + 1
    out[i] = B62:sub(k, k)
  end
  return table.concat(out)
end
function M.hexs(n, seed, ...)
  local out, h = {}, M.hash(seed, ...)
  for i = 1, math.ceil(n / 16) do
    h = mix64(h + i)
    out[i] = string.format("%016x", h)
  end
  return table.concat(out):sub(1, n)
end
function M.uuid(seed, ...)
  local x = M.hexs(32, seed, ...)
  return x:sub(1, 8) .. "-" .. x:sub(9, 12) .. "-4" .. x:sub(14, 16) .. "-a" .. x:sub(18, 20) .. "-" .. x:sub(21, 32)
end

---------------------------------------------------------------------------------------------------
-- Time (no os.*): epoch <-> ISO-8601 UTC, via Howard Hinnant's civil-date algorithms.
---------------------------------------------------------------------------------------------------
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end
local function civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- ms since epoch -> "2024-08-13T15:58:20.353Z" (Okta style)
function M.iso_ms(ms)
  ms = math.floor(ms)
  local s, frac = ms // 1000, ms % 1000
  local days, rem = s // 86400, s % 86400
  local y, mo, d = civil_from_days(days)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, rem // 3600, rem % 3600 // 60, rem % 60, frac)
end
-- seconds since epoch -> "2011-01-26T19:06:43Z" (GitHub style)
function M.iso_s(sec)
  sec = math.floor(sec)
  local days, rem = sec // 86400, sec % 86400
  local y, mo, d = civil_from_days(days)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, rem // 3600, rem % 3600 // 60, rem % 60)
end
-- ISO-8601 (date, or date-time with optional fraction and Z / ±hh:mm) -> ms since epoch, or nil
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local ms = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400000
  if rest == "" then return ms end
  local hh, mi, ss, tail = rest:match("^[Tt ](%d%d):(%d%d):?(%d?%d?)(.*)$")
  if not hh then return nil end
  ms = ms + (tonumber(hh) * 3600 + tonumber(mi) * 60 + (tonumber(ss) or 0)) * 1000
  local frac
  frac, tail = tail:match("^%.?(%d*)(.*)$")
  if frac ~= "" then ms = ms + math.floor(tonumber("0." .. frac) * 1000 + 0.5) end
  if tail == "" or tail == "Z" or tail == "z" then return ms end
  local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local off = (tonumber(oh) * 60 + tonumber(om)) * 60000
  return sign == "+" and ms - off or ms + off
end

---------------------------------------------------------------------------------------------------
-- URLs and forms
---------------------------------------------------------------------------------------------------
function M.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
function M.urldecode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
-- ordered query string from a list of {key, value} pairs (nil values skipped)
function M.qs(pairs_list)
  local out = {}
  for _, kv in ipairs(pairs_list) do
    if kv[2] ~= nil then out[#out + 1] = M.urlencode(kv[1]) .. "=" .. M.urlencode(kv[2]) end
  end
  return table.concat(out, "&")
end
function M.parse_form(body)
  local t = {}
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[M.urldecode(k)] = M.urldecode(v)
  end
  return t
end
function M.form(t, order)
  local l = {}
  for _, k in ipairs(order) do l[#l + 1] = { k, t[k] } end
  return M.qs(l)
end

---------------------------------------------------------------------------------------------------
-- SCIM-style filter expressions (Okta `filter`/`search`, System Log `filter`):
--   attr op value, ops eq ne gt ge lt le sw co ew pr; and / or / not; parentheses.
--   attr is a dotted path (profile.login, outcome.result).  Values: "string", number, true/false/null.
-- Returns predicate(obj) -> bool, or nil, err.
---------------------------------------------------------------------------------------------------
local function tokenize(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "(" or c == ")" then
      toks[#toks + 1] = { t = c }; i = i + 1
    elseif c == '"' then
      local j, buf = i + 1, {}
      while j <= n and s:sub(j, j) ~= '"' do
        if s:sub(j, j) == "\\" then j = j + 1 end
        buf[#buf + 1] = s:sub(j, j); j = j + 1
      end
      if j > n then return nil, "unterminated string" end
      toks[#toks + 1] = { t = "val", v = table.concat(buf) }; i = j + 1
    else
      local w = s:match("^[^%s()\"]+", i)
      i = i + #w
      local lw = w:lower()
      if lw == "and" or lw == "or" or lw == "not" then toks[#toks + 1] = { t = lw }
      elseif lw == "true" then toks[#toks + 1] = { t = "val", v = true }
      elseif lw == "false" then toks[#toks + 1] = { t = "val", v = false }
      elseif lw == "null" then toks[#toks + 1] = { t = "val", v = M.NULL }
      elseif tonumber(w) then toks[#toks + 1] = { t = "val", v = tonumber(w) }
      else toks[#toks + 1] = { t = "word", v = w } end
    end
  end
  return toks
end
M.NULL = setmetatable({}, { __tostring = function() return "null" end })

local function getpath(obj, path)
  local v = obj
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end
M.getpath = getpath

local function isnull(v) return v == nil or v == M.NULL or (type(v) == "userdata") end

local function compare(op, a, b)
  if op == "pr" then return not isnull(a) end
  if b == M.NULL then
    if op == "eq" then return isnull(a) elseif op == "ne" then return not isnull(a) end
    return false
  end
  if isnull(a) then return op == "ne" end
  -- timestamps compare as strings (same ISO format); everything else by type
  if type(a) ~= type(b) then
    if type(b) == "string" then a = tostring(a) elseif type(b) == "number" then a = tonumber(a) end
    if a == nil then return op == "ne" end
  end
  if type(a) == "string" and type(b) == "string" then
    local ta, tb = M.parse_iso(a), M.parse_iso(b)
    if ta and tb and op ~= "sw" and op ~= "co" and op ~= "ew" then a, b = ta, tb end
  end
  if op == "eq" then
    if type(a) == "string" then return a:lower() == b:lower() end
    return a == b
  elseif op == "ne" then
    if type(a) == "string" then return a:lower() ~= b:lower() end
    return a ~= b
  elseif op == "gt" then return a > b
  elseif op == "ge" then return a >= b
  elseif op == "lt" then return a < b
  elseif op == "le" then return a <= b
  elseif op == "sw" then return tostring(a):lower():sub(1, #b) == tostring(b):lower()
  elseif op == "ew" then return #b == 0 or tostring(a):lower():sub(- #b) == tostring(b):lower()
  elseif op == "co" then return tostring(a):lower():find(tostring(b):lower(), 1, true) ~= nil
  end
  return false
end

local OPS = { eq = true, ne = true, gt = true, ge = true, lt = true, le = true, sw = true, co = true, ew = true, pr = true }

function M.scim_filter(expr, allowed)
  local toks, err = tokenize(expr or "")
  if not toks then return nil, err end
  local pos = 1
  local function peek() return toks[pos] end
  local function take() pos = pos + 1; return toks[pos - 1] end
  local parse_or
  local function parse_atom()
    local t = take()
    if not t then return nil, "unexpected end of filter" end
    if t.t == "(" then
      local f, e = parse_or()
      if not f then return nil, e end
      local c = take()
      if not c or c.t ~= ")" then return nil, "missing )" end
      return f
    elseif t.t == "not" then
      local f, e = parse_atom()
      if not f then return nil, e end
      return function(o) return not f(o) end
    elseif t.t == "word" then
      local attr = t.v
      if allowed and not allowed[attr] then return nil, "unsupported attribute " .. attr end
      local o = take()
      if not o or o.t ~= "word" or not OPS[o.v:lower()] then return nil, "bad operator after " .. attr end
      local op = o.v:lower()
      if op == "pr" then return function(x) return compare("pr", getpath(x, attr)) end end
      local v = take()
      if not v or v.t ~= "val" then return nil, "missing value for " .. attr end
      local val = v.v
      return function(x) return compare(op, getpath(x, attr), val) end
    end
    return nil, "unexpected token"
  end
  local function parse_and()
    local f, e = parse_atom()
    if not f then return nil, e end
    while peek() and peek().t == "and" do
      take()
      local g, e2 = parse_atom()
      if not g then return nil, e2 end
      local a = f
      f = function(o) return a(o) and g(o) end
    end
    return f
  end
  parse_or = function()
    local f, e = parse_and()
    if not f then return nil, e end
    while peek() and peek().t == "or" do
      take()
      local g, e2 = parse_and()
      if not g then return nil, e2 end
      local a = f
      f = function(o) return a(o) or g(o) end
    end
    return f
  end
  local f, e = parse_or()
  if not f then return nil, e end
  if pos <= #toks then return nil, "trailing tokens in filter" end
  return f
end

---------------------------------------------------------------------------------------------------
-- The tenant base: clock, rate budget, faults, route wrapping, webhooks.
---------------------------------------------------------------------------------------------------
local Base = {}
Base.__index = Base
M.Base = Base

-- init(self, opts): called by each app's constructor.
function Base.init(self, opts)
  local sched = rawget(_G, "sched")
  self.opts = opts
  self.seed = math.tointeger(opts.seed or 1) or 1
  self.t0_ms = math.floor((opts.now or (sched and sched.time()) or 1735689600) * 1000)
  self.mono0 = sched and sched.now() or 0
  self.frozen = opts.frozen or false
  self.faults = {}
  self.requests = 0            -- requests served (after auth and faults), for tests and benches
  self.log = {}                -- the requests, oldest first: {method, path, status} (Base:note)
  self.log_max = opts.log_max or 100000
  local rl = opts.rate_limit or {}
  self.rate = { limit = rl.limit or self.default_rate_limit or 600, window = rl.window or 60, used = 0, window_start = nil }
  self.deliveries = {}         -- webhook delivery records {url, event, status, err}
  self.tasks = {}
end

-- tenant clock in ms: opts.now plus the monotonic time elapsed since creation (unless frozen)
function Base:now_ms()
  if self.frozen then return self.t0_ms + (self.skew_ms or 0) end
  local sched = rawget(_G, "sched")
  local el = sched and (sched.now() - self.mono0) or 0
  return self.t0_ms + math.floor(el * 1000) + (self.skew_ms or 0)
end
-- move the tenant clock forward (tests of polling)
function Base:advance(seconds) self.skew_ms = (self.skew_ms or 0) + math.floor(seconds * 1000) end

-- Rate budget: one fixed window per bucket (providers count per endpoint family).
function Base:wall_s()
  local sched = rawget(_G, "sched")
  return math.floor(sched and sched.time() or self:now_ms() / 1000)
end
-- rate_take(bucket) -> limit, remaining, reset_epoch_s, exceeded, used
function Base:rate_take(bucket)
  bucket = bucket or "default"
  -- reset times are compared by clients with their own wall clock, so the budget runs on wall time
  -- (the tenant clock may be pinned in the past for deterministic data)
  local sched = rawget(_G, "sched")
  local now_s = math.floor(sched and sched.time() or self:now_ms() / 1000)
  self.rates = self.rates or {}
  local r = self.rates[bucket]
  if not r then r = { used = 0 }; self.rates[bucket] = r end
  local limit, window = self.rate.limit, self.rate.window
  if not r.window_start or now_s >= r.window_start + window then
    r.window_start = now_s - (now_s % window); r.used = 0
  end
  r.used = r.used + 1
  local exceeded = r.used > limit
  return limit, math.max(0, limit - r.used), r.window_start + window, exceeded, math.min(r.used, limit)
end
function Base:set_rate_limit(limit, window)
  self.rate.limit = limit; self.rate.window = window or self.rate.window; self.rates = {}
end

-- fault{kind=, count=1, path=lua pattern, retry_after=, status=, delay=, body=}
--   429 / 5xx / 403 / primary / secondary: the provider's own error (its fault_response)
--   reset: the connection is dropped; slow: the answer waits `delay` seconds
--   malformed: 200 with invalid JSON (or `body`); truncated: the real answer cut in half
--   stall: the real answer's first half, then nothing: it is sent chunked without its last chunk, so
--     the client waits in the middle of the body until its own timeout
--   html: an HTML error page (status `status`, default 502)
--   shape: 200 with valid JSON of the wrong shape: the real answer with its items replaced by an object
--     ({"error":"maintenance"} where the list of users was)
--   garbled: 200 with the real answer's shape, but every item an object without any expected field
--   echo: an error (status `status`, default 400) whose text body echoes the request's Authorization
--     header, as some gateways do
--   next: the real answer with a next link to `url` (default: the request's own URL, a self-link) in
--     every form a provider uses (Link header, NextPageUri, @odata.nextLink and nextLink of an object,
--     nextRecordsUrl of a query answer that has `done`)
function Base:fault(f)
  assert(type(f) == "table" and f.kind, "fault: kind required")
  local known = { ["429"] = 1, ["500"] = 1, ["502"] = 1, ["503"] = 1, reset = 1, slow = 1, malformed = 1,
                  truncated = 1, html = 1, ["403"] = 1, secondary = 1, primary = 1, shape = 1, garbled = 1,
                  echo = 1, next = 1, stall = 1 }
  assert(known[tostring(f.kind)], "fault: unknown kind " .. tostring(f.kind))
  local rec = { kind = tostring(f.kind), count = f.count or 1, path = f.path, retry_after = f.retry_after,
                status = f.status, delay = f.delay or f.seconds, method = f.method, hits = 0,
                body = f.body, url = f.url }
  self.faults[#self.faults + 1] = rec
  return rec
end
function Base:clear_faults() self.faults = {} end

-- Random faults: chaos{rate = 0.1, seed =, kinds = {...}, retry_after = 0} makes each request a fault
-- with probability rate, of a kind drawn from kinds (a fixed seed: the same sequence every run);
-- chaos(nil) stops.  self.injected counts them by kind.
M.CHAOS_KINDS = { "429", "500", "502", "503", "reset", "stall", "truncated", "malformed", "html", "next" }
function Base:chaos(opts)
  if not opts then self.chaos_cfg = nil; return end
  self.chaos_cfg = { rate = opts.rate or 0.1, rng = M.rng(opts.seed or 1, "chaos"), kinds = opts.kinds or M.CHAOS_KINDS,
                     retry_after = opts.retry_after or 0 }
  self.injected = self.injected or {}
end

function Base:take_fault(req)
  for i, f in ipairs(self.faults) do
    if f.count > 0 and (not f.path or req.path:find(f.path)) and (not f.method or f.method == req.method) then
      f.count = f.count - 1; f.hits = f.hits + 1
      if f.count == 0 then table.remove(self.faults, i) end
      return f
    end
  end
  local c = self.chaos_cfg
  if c and c.rng:chance(c.rate) then
    local kind = c.rng:pick(c.kinds)
    self.injected[kind] = (self.injected[kind] or 0) + 1
    -- an HTML page answered with 200 (a captive portal, a proxy), not an error status
    return { kind = kind, count = 0, hits = 1, retry_after = c.retry_after, status = kind == "html" and 200 or nil }
  end
end

local HTML_PAGE = [[<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>Bad Gateway</h1><p>The server encountered a temporary error and could not complete your request.</p></body></html>
]]

-- A JSON answer made plausible but wrong (faults `shape` and `garbled`): the arrays of the body (the
-- body itself, or the arrays among its fields) become an object, or keep their length with every item
-- an object without any of the expected fields.
local MAINTENANCE = { error = "maintenance", message = "The service is under maintenance." }
function M.rewrite(body, how)
  local json = host("json")
  local d = json.decode(body)
  if type(d) ~= "table" then return body end
  local function wrong(list)
    if how == "shape" then return M.deep(MAINTENANCE) end
    local out = {}
    for i = 1, #list do out[i] = M.deep(MAINTENANCE) end
    return json.array(out)
  end
  if json.is_array(d) then
    d = wrong(d)
  else
    for k, v in pairs(d) do
      if type(v) == "table" and json.is_array(v) then d[k] = wrong(v) end
    end
  end
  return json.encode(d)
end

-- A tenant that answers in another format than JSON (XML) rewrites its own bodies for `shape`/`garbled`.
function Base:rewrite(body, how) return M.rewrite(body, how) end

-- The next link of an answer set to url, in every form providers use (fault `next`).
function M.set_next(body, hdr, url)
  for k in pairs(hdr) do
    if k:lower() == "link" or k:lower() == "nextpageuri" then hdr[k] = nil end
  end
  hdr["Link"] = "<" .. url .. '>; rel="next"'
  hdr["NextPageUri"] = url
  local json = host("json")
  local d = body and json.decode(body)
  if type(d) == "table" and not json.is_array(d) then
    d["@odata.nextLink"], d.nextLink = url, url
    if d.done ~= nil then d.done, d.nextRecordsUrl = false, url end     -- a Salesforce query answer
    body = json.encode(d)
  end
  return body
end

-- wrap(handler, opts) -> server handler.  Order: fault injection, then the app's pre-check (auth,
-- rate budget) which may answer, then the handler; the app's decorate() adds headers to every answer.
function Base:wrap(handler, ropts)
  ropts = ropts or {}
  local server = rawget(_G, "server")
  return function(req)
    req.path = req.path or "/"
    req.query = req.query or {}
    req.headers = req.headers or {}
    req.params = req.params or {}
    if self.page_max and not (self.page_exempt and req.path:find(self.page_exempt)) then self:clamp_page(req) end
    local f = self:take_fault(req)
    local truncate, rewrite, next_url, stall = false, nil, nil, false
    if f then
      local k = f.kind
      if k == "reset" then
        self:note { method = req.method, path = req.path, status = "reset" }
        return server and server.DROP
      elseif k == "slow" then
        host("sched").sleep(f.delay or 2)
      elseif k == "malformed" then
        return 200, f.body or '{"id": "00u1", "status": "ACT', { ["Content-Type"] = "application/json" }
      elseif k == "html" then
        return f.status or 502, HTML_PAGE, { ["Content-Type"] = "text/html; charset=utf-8" }
      elseif k == "truncated" then
        truncate = true
      elseif k == "stall" then
        stall = true
      elseif k == "shape" or k == "garbled" then
        rewrite = k
      elseif k == "echo" then
        local auth = req.headers["authorization"] or ""
        self:note { method = req.method, path = req.path, status = f.status or 400 }
        return f.status or 400, ("Bad Request\r\nRequest: %s %s\r\nAuthorization: %s\r\nCredential: %s\r\n")
          :format(req.method, req.path, auth, auth:match("%S+%s+(.+)") or ""), { ["Content-Type"] = "text/plain" }
      elseif k == "next" then
        next_url = f.url or ((self.base_url:match("^(https?://[^/]+)") or "") .. req.path
          .. ((req.raw_query and req.raw_query ~= "") and ("?" .. req.raw_query) or ""))
      else
        local st, body, hdr = self:fault_response(f, req)
        self:note { method = req.method, path = req.path, status = st }
        return st, body, hdr
      end
    end
    local st, body, hdr
    if not ropts.public then
      st, body, hdr = self:precheck(req, ropts)
    end
    if not st then
      st, body, hdr = handler(req)
    end
    hdr = hdr or {}
    if type(body) == "table" then
      body = host("json").encode(body)
      hdr["Content-Type"] = hdr["Content-Type"] or "application/json"
    end
    if not ropts.public then self:decorate(req, st, hdr) end
    if truncate and body then body = body:sub(1, #body // 2) end
    if rewrite and body then body = self:rewrite(body, rewrite); st = 200 end
    if next_url then body = M.set_next(body, hdr, next_url) end
    if stall and body then
      local half = body:sub(1, #body // 2)
      body = ("%x\r\n%s\r\n"):format(#half, half)
      hdr["Transfer-Encoding"] = "chunked"
    end
    self.requests = self.requests + 1
    -- agent and time: which cachost worker asked when (workers_spec: never two on one tenant at once)
    self:note { method = req.method, path = req.path, status = st, agent = M.header(req, "user-agent"),
                 at = sched.now() }
    return st, body or "", hdr
  end
end

-- The request log keeps the last log_max requests (opts.log_max; the older half goes when it is full): a
-- long run (the webhook bench) would otherwise grow it without end.
function Base:note(rec)
  local log = self.log
  log[#log + 1] = rec
  if #log > self.log_max then
    local keep = self.log_max // 2
    table.move(log, #log - keep + 1, #log, 1)
    for i = #log, keep + 1, -1 do log[i] = nil end
  end
end

-- A tenant with page_max serves at most that many items a page, whatever the client asks (providers cap
-- page sizes too): the kill suite uses it for many commit points in a small tenant.  page_exempt: a path
-- pattern of listings whose short page means the end (a cap there would end them early).
local PAGE_PARAMS = { "limit", "per_page", "$top" }
function Base:clamp_page(req)
  for _, k in ipairs(PAGE_PARAMS) do
    local n = math.tointeger(tonumber(req.query[k] or ""))
    if n and n > self.page_max then req.query[k] = tostring(self.page_max) end
  end
end

-- Register routes: list of {method, pattern, fn, opts}; fn(self, req) -> status, body, headers.
function Base:mount_routes(srv, prefix, routes)
  prefix = prefix or ""
  if prefix:sub(-1) == "/" then prefix = prefix:sub(1, -2) end
  self.prefix = prefix
  self.base_url = self.opts.base_url or ((srv.url or ("http://127.0.0.1:" .. tostring(srv.port))) .. prefix)
  for _, r in ipairs(routes) do
    local fn = r[3]
    srv:route(r[1], prefix .. r[2], self:wrap(function(req) return fn(self, req) end, r[4]))
  end
  self.servers = self.servers or {}
  self.servers[#self.servers + 1] = srv
  return self
end

-- Outgoing webhook delivery as a task: POST body with headers, retries per policy.
-- rec = {url=, headers=, body=, event=, retries=1}
function Base:deliver(rec)
  local sched = host("sched")
  self.deliveries[#self.deliveries + 1] = rec
  rec.status = "pending"
  local t = sched.spawn(function()
    local attempts = 1 + (rec.retries or 0)
    for a = 1, attempts do
      local res, err = host("http").request { method = "POST", url = rec.url, headers = rec.headers,
                                              body = rec.body, timeout = rec.timeout or 10 }
      rec.attempts = a
      if res then
        rec.status = res.status
        if res.status >= 200 and res.status < 300 then return true end
        if res.status >= 400 and res.status < 500 and rec.no_retry_4xx then return false end
      else
        rec.status, rec.err = "error", err
      end
      if a < attempts then sched.sleep(rec.retry_delay or 0.2) end
    end
    return false
  end)
  self.tasks[#self.tasks + 1] = t
  return t
end

-- wait for every delivery spawned so far (tests)
function Base:flush(timeout)
  local tasks = self.tasks
  self.tasks = {}
  for _, t in ipairs(tasks) do t:join(timeout or 10) end
end

-- Link header helper: list of {url, rel}
function M.link(list)
  local out = {}
  for _, l in ipairs(list) do out[#out + 1] = "<" .. l[1] .. '>; rel="' .. l[2] .. '"' end
  return table.concat(out, ", ")
end

function M.shallow(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end
function M.deep(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = M.deep(v) end
  return setmetatable(c, getmetatable(t))
end

-- header lookup (server gives lowercase names)
function M.header(req, name) return req.headers[name:lower()] end

-- parse a positive integer query parameter with default and clamp; returns n or nil, err
function M.intparam(v, default, min, max)
  if v == nil or v == "" then return default end
  local n = math.tointeger(tonumber(v))
  if not n then return nil, "invalid" end
  if min and n < min then return nil, "range" end
  if max and n > max then n = max end
  return n
end

---------------------------------------------------------------------------------------------------
-- A log made of lazily generated events (index i -> ms, monotonic) merged with stored records
-- {ms=, seq=, ev=}, sorted by (ms, seq).  Order key: (ms, 0, i) for generated, (ms, 1, seq) stored.
-- scan(K, dir, visit): visits events strictly after K (dir=1) or strictly before K (dir=-1), in
-- order; visit(ms, key3, get_event) returns true to stop.
---------------------------------------------------------------------------------------------------
local function key_lt(a1, b1, c1, a2, b2, c2)
  if a1 ~= a2 then return a1 < a2 end
  if b1 ~= b2 then return b1 < b2 end
  return c1 < c2
end
M.key_lt = key_lt

function M.merged_scan(n, gen_ms, gen_event, list, K, dir, visit)
  local kms, ksrc, kidx = K[1], K[2], K[3]
  local gi, si
  if dir > 0 then
    local lo, hi = 0, n
    while lo < hi do local mid = (lo + hi) // 2
      if key_lt(kms, ksrc, kidx, gen_ms(mid), 0, mid) then hi = mid else lo = mid + 1 end end
    gi = lo
    lo, hi = 1, #list + 1
    while lo < hi do local mid = (lo + hi) // 2
      if key_lt(kms, ksrc, kidx, list[mid].ms, 1, list[mid].seq) then hi = mid else lo = mid + 1 end end
    si = lo
  else
    local lo, hi = 0, n
    while lo < hi do local mid = (lo + hi) // 2
      if key_lt(gen_ms(mid), 0, mid, kms, ksrc, kidx) then lo = mid + 1 else hi = mid end end
    gi = lo - 1
    lo, hi = 1, #list + 1
    while lo < hi do local mid = (lo + hi) // 2
      if key_lt(list[mid].ms, 1, list[mid].seq, kms, ksrc, kidx) then lo = mid + 1 else hi = mid end end
    si = lo - 1
  end
  while true do
    local gms = (gi >= 0 and gi < n) and gen_ms(gi) or nil
    local s = list[si]
    local take_gen
    if gms and s then
      if dir > 0 then take_gen = key_lt(gms, 0, gi, s.ms, 1, s.seq) else take_gen = key_lt(s.ms, 1, s.seq, gms, 0, gi) end
    elseif gms then take_gen = true
    elseif s then take_gen = false
    else return end
    local stop
    if take_gen then
      local i = gi
      stop = visit(gms, { gms, 0, i }, function() return gen_event(i) end)
      gi = gi + dir
    else
      local rec = s
      stop = visit(rec.ms, { rec.ms, 1, rec.seq }, function() return rec.ev end)
      si = si + dir
    end
    if stop then return end
  end
end

-- insert a stored record keeping (ms, seq) order
function M.insert_sorted(list, rec)
  local pos = #list + 1
  while pos > 1 and list[pos - 1].ms > rec.ms do pos = pos - 1 end
  table.insert(list, pos, rec)
end

return M
