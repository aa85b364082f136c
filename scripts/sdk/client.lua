-- sdk/client.lua — every request a connector makes for an instance goes through here: base URL, auth,
-- one rate budget per instance (shared by sync, actions and the REPL), retries with capped exponential
-- backoff and jitter, and a circuit breaker so one failing instance never starves the others.
local util = require "sdk.util"
local soap = require "sdk.soap"
local metrics = require "metrics"

local Client = {}
Client.__index = Client

local MAX_ATTEMPTS = 6
-- Retry timing; the fault suite shortens it (a stalled body waits for `timeout`).
Client.BACKOFF_BASE, Client.BACKOFF_CAP, Client.TIMEOUT = 0.25, 30, 60
-- what every request says it is (a worker on a shared store adds its id: workers.lua)
Client.USER_AGENT = "cachost/" .. host.version
local BREAKER_THRESHOLD, BREAKER_COOLDOWN = 8, 60
local MAX_WAIT = 300            -- never sleep longer than this on a provider's say-so

local clients = {}              -- instance id -> client: the budget is per instance, not per caller

-- Client.for_instance(inst, connector, auth) -- auth(client, req) adds credentials to req.headers and
-- may refresh tokens; it returns nil, err when the credentials are unusable.
function Client.for_instance(inst, connector, auth)
  local c = clients[inst.id]
  if c and c.connector == connector then c.inst, c.auth = inst, auth; return c end
  c = setmetatable({
    inst = inst, connector = connector, auth = auth,
    blocked_until = 0,          -- rate limit: no request before this (sched.time)
    paced = {},                 -- URL -> no request before this (sched.now; opts.per_second)
    failures = 0, open_until = 0,
    stats = { requests = 0, retries = 0, throttled = 0 },
  }, Client)
  clients[inst.id] = c
  return c
end

function Client:url(path)
  if path:match("^https?://") then return path end
  return util.trim_slash(self.base) .. path
end

---------------------------------------------------------------------------------------------- where credentials go
local function origin(u) return (u.scheme .. "://" .. u.host .. ":" .. u.port):lower() end

local function is_loopback(h)
  h = h:lower():gsub("^%[(.*)%]$", "%1")
  return h == "localhost" or host.ip_in(h, "127.0.0.0/8") == true or host.ip_in(h, "::1") == true
end
Client.is_loopback = is_loopback

-- Credentials travel over TLS only: plain http is for a loopback address (a sandbox tenant) and only
-- when the instance says so (insecure_loopback).  -> parsed url | nil, "insecure: ...", "insecure"
function Client.check_transport(url, insecure_loopback)
  local u, err, token = http.parse_url(url)
  if not u then return nil, err, token end
  if u.scheme == "https" then return u end
  if u.scheme == "http" and is_loopback(u.host) then
    if insecure_loopback then return u end
    return nil, ("insecure: %s is plain http; a loopback sandbox needs insecure_loopback=true"):format(origin(u)), "insecure"
  end
  return nil, ("insecure: %s is not https: credentials are only sent over TLS"):format(origin(u)), "insecure"
end

-- The instance's own hosts (its API base URL and the URLs the connector and its auth schemes declare):
-- the only places a request of this client goes, so a next link, a notification or a provider's answer
-- can never send the credentials elsewhere.
function Client:set_hosts(urls)
  self.origins = {}
  for _, url in ipairs(urls) do
    local u = type(url) == "string" and http.parse_url(url)
    if u then self.origins[origin(u)] = true end
  end
end

-- -> true | nil, err, token (no request is sent)
function Client:check_url(url)
  local u, err, token = Client.check_transport(url, self.insecure)
  if not u then return nil, err, token end
  if self.origins and not self.origins[origin(u)] then
    local own = {}
    for o in pairs(self.origins) do own[#own + 1] = o end
    table.sort(own)
    return nil, ("refused: %s is not a host of this instance (%s); nothing was sent there")
      :format(origin(u), table.concat(own, ", ")), "refused"
  end
  return true
end

---------------------------------------------------------------------------------------------- redaction
local MASK = "********"
local MAX_ERROR = 400            -- an error is one line; a provider's body is cut to fit

local function ci(word)          -- a case-insensitive Lua pattern for a plain word
  return (word:gsub("%a", function(c) return "[" .. c:upper() .. c:lower() .. "]" end))
end
local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- A credential after its scheme (Bearer, Basic, SSWS): long, with a digit, a token68 sign or a capital
-- inside, so that words ("Basic authentication failed") stay.
local function cred(prefix, value)
  if #value >= 8 and (value:find("[%d%+/=_%-%.~]") or value:sub(2):find("%u")) then return prefix .. MASK end
end
local SECRET_NAMES = { "authorization", "token", "secret", "password", "passwd", "api_key", "apikey", "assertion",
  "signature", "cookie" }
local RULES = {
  -- an echoed header or field named Authorization, its value up to the end of it
  { "(" .. ci("authorization") .. "[\"']?%s*[:=]%s*[\"']?)[^\"'\r\n,;}]+", "%1" .. MASK },
  { "%f[%w](" .. ci("bearer") .. "%s+)([%w%-%._~%+/]+=*)", cred },
  { "%f[%w](" .. ci("basic") .. "%s+)([%w%-%._~%+/]+=*)", cred },
  { "%f[%w](" .. ci("ssws") .. "%s+)([%w%-%._~%+/]+=*)", cred },
  -- JWTs, GitHub tokens, Okta API tokens
  { "eyJ[%w_%-]+%.[%w_%-]+%.?[%w_%-]*", MASK },
  { "%f[%w]gh[pousr]_%w+", MASK }, { "%f[%w]github_pat_[%w_]+", MASK },
  { "%f[%w](00[%w_]+%-[%w_%-]+)", function(v) if #v >= 20 then return MASK end end },
}
for _, name in ipairs(SECRET_NAMES) do
  local n = "[%w_%-]*" .. ci(name) .. "[%w_%-]*"
  RULES[#RULES + 1] = { '("' .. n .. '"%s*:%s*")[^"]*', "%1" .. MASK }        -- "access_token": "..."
  RULES[#RULES + 1] = { "(%f[%w_]" .. n .. "=)[^&%s\"']+", "%1" .. MASK }    -- access_token=...
end

-- Client.redact(text, secrets) -> one bounded line without credentials: every value of `secrets`
-- (the instance's vault, the credentials a request carried) and anything shaped like a credential.
function Client.redact(text, secrets)
  text = tostring(text)
  local list = {}
  for _, s in pairs(secrets or {}) do
    if type(s) == "string" and #s >= 4 then list[#list + 1] = s end
  end
  table.sort(list, function(a, b) return #a > #b end)        -- a secret containing another goes first
  for _, s in ipairs(list) do text = text:gsub(escape(s), MASK) end
  for _, r in ipairs(RULES) do text = text:gsub(r[1], r[2]) end
  text = text:gsub("[%c]+", " ")
  if #text > MAX_ERROR then text = text:sub(1, MAX_ERROR) .. "... (cut)" end
  return text
end

local function header_number(h, name) return tonumber(h[name] or "") end

-- How long the provider asks us to wait, from Retry-After or X-RateLimit-Reset style headers.
local function wait_hint(resp)
  local h = resp.headers
  local ra = h["retry-after"]
  if ra then
    local n = tonumber(ra)
    if n then return n end
    local t = util.parse_iso(ra)     -- an HTTP date is rare here; treat unknown formats as 1 s
    return t and math.max(0, t - sched.time()) or 1
  end
  local reset = header_number(h, "x-rate-limit-reset") or header_number(h, "x-ratelimit-reset")
  if reset then return math.max(0, reset - sched.time()) end
  return nil
end

-- The connector decides what a throttled answer looks like beyond 429 (e.g. GitHub's 403 secondary limit).
function Client:throttled(resp)
  if resp.status == 429 then return true end
  local fn = self.connector.is_throttled
  return fn and fn(resp) or false
end

local function backoff(attempt)
  local d = math.min(Client.BACKOFF_CAP, Client.BACKOFF_BASE * 2 ^ (attempt - 1))
  return d / 2 + math.random() * d / 2          -- "equal jitter"
end

-- Remember the budget the provider reports, so the next request waits before hitting the wall.
function Client:note_budget(resp)
  local h = resp.headers
  local remaining = header_number(h, "x-rate-limit-remaining") or header_number(h, "x-ratelimit-remaining")
  if remaining and remaining <= 0 then
    local w = wait_hint(resp)
    if w then self.blocked_until = math.max(self.blocked_until, sched.time() + math.min(w, MAX_WAIT)) end
  end
end

-- c.fault_token(resp) -> "auth" | "permission" | "not_found" | "http" | nil: the connector's reading of an
-- error answer whose status does not say what it is (SOAP 1.1 sends every Fault as HTTP 500: a refused
-- credential or an invalid request is no outage, and asking again would not change it).
local function answered(self, resp)
  local fn = self.connector.fault_token
  return fn and resp.status >= 400 and fn(resp) or nil
end

local RETRYABLE = { timeout = true, connect = true, reset = true, resolve = false, http2 = true, error = true }

-- client:request(method, path, {query=, headers=, header_json=, body=, json=, form=, timeout=, auth=})
--   -> resp | nil, "token: detail", token, resp
-- resp.data is the decoded JSON body when the answer is JSON.  The token is one of
-- auth (401: the credential is dead, reconnect needed), permission (403: this credential may not do
-- this; other requests go on), unavailable (the connector's c.unavailable recognised the provider's
-- "your plan does not offer this"), not_found, http (other 4xx), server (5xx after retries),
-- throttled (429 after retries), bad_json, circuit_open, insecure, refused, or an http.request token.
-- resp.data from a JSON body, resp.xml from an XML one (opts.expect_xml).  -> nil, or the error when the
-- body cannot be read ("bad_json: ..." or "bad_xml: ...", token bad_json either way).
local function decode(resp, opts, req)
  local ctype = resp.headers["content-type"] or ""
  local where = (req.url:gsub("%?.*", ""))
  if opts.soap then                    -- a SOAP call: resp.soap is its answer's Body element
    local el, err = soap.body(resp.body)
    if not el then return ("bad_xml: HTTP %d from %s: %s"):format(resp.status, where, err) end
    resp.soap = el
  elseif resp.body ~= "" and (ctype:find("json", 1, true) or opts.expect_json) then
    -- items keep their exact text (raw); a listing's declared fields (opts.fields, Client:pages) are all
    -- its items are built with, on a success (an error body is read whole, by c.error_message)
    local fields = resp.status < 300 and opts.fields or nil
    local origin = fields and ("the fields of %s %s (declared at %s)"):format(req.method, where, opts.fields_origin or "?")
    local data, jerr = json.decode(resp.body, { sources = true, fields = fields, origin = origin })
    if data == nil then return ("bad_json: HTTP %d from %s: %s"):format(resp.status, where, jerr) end
    resp.data = data
  elseif opts.expect_xml and resp.body ~= "" then      -- an XML API (AWS): resp.xml, the document's tree
    local root, xerr = xml.decode(resp.body)
    if not root then return ("bad_xml: HTTP %d from %s: %s"):format(resp.status, where, xerr) end
    resp.xml = root
  elseif resp.status < 300 and resp.body ~= "" and not opts.raw and ctype:find("html", 1, true) then
    return ("bad_json: HTTP %d from %s answered HTML, not JSON"):format(resp.status, where)
  end
end

local request

-- Credentials a request carries (its Authorization header, a token request's secrets): masked in its errors.
local function carried(req, form)
  local out = {}
  for k, v in pairs(req.headers) do
    if k:lower() == "authorization" and type(v) == "string" then out[#out + 1] = v; out[#out + 1] = v:match("%S+%s+(.+)") end
  end
  for k, v in pairs(form or {}) do
    if type(v) == "string" and (k:find("secret") or k:find("token") or k:find("assertion") or k:find("code")) then
      out[#out + 1] = v
    end
  end
  return out
end

-- -> resp | nil, message, token, resp (the provider's answer, when there was one)
-- A 401 to an OAuth (or exchanged) token that has not expired (revoked, or the provider's session ended)
-- gets a new token, shared by the instance's requests in flight (auth.lua), and the request is sent once
-- more with it; a second 401 is a dead credential.  Sending a write again is safe here: a 401 says the
-- provider did not authorize the request, so it cannot have acted on it.
function Client:request(method, path, opts)
  opts = opts or {}
  local resp, err, token, raw, req, sent = request(self, method, path, opts)
  -- (a 401 the connector reads as something else, c.fault_token: Dropbox's missing_scope, is not renewed)
  if not resp and sent and raw and raw.status == 401 and token == "auth" then
    resp, err, token, raw, req = request(self, method, path, opts, sent)
  end
  if resp then return resp end
  return nil, Client.redact(err, req and carried(req, opts.form)), token, raw
end

-- -> resp | nil, err, token, resp, req, sent (the token the request carried, when a 401 may renew it);
-- `refused`: the token a first attempt carried, which the provider refused
function request(self, method, path, opts, refused)
  local now = sched.time()
  if now < self.open_until then
    return nil, ("circuit_open: %d consecutive failures, retrying after %s"):format(self.failures, util.iso(self.open_until)), "circuit_open"
  end
  local url = self:url(path)
  local okurl, uerr, utoken = self:check_url(url)
  if not okurl then return nil, uerr, utoken end
  local req = {
    method = method, url = url, query = opts.query, headers = {}, body = opts.body,
    timeout = opts.timeout or Client.TIMEOUT, instance = self.inst.name, app = self.inst.app,
    max_size = opts.max_size, proxy = self.inst.settings.proxy,
    insecure = self.insecure, refresh = opts.refresh,
  }
  for k, v in pairs(opts.headers or {}) do req.headers[k] = v end
  -- opts.header_json = {name = value}: a JSON argument carried in a header (Dropbox-API-Arg), ASCII-safe
  for k, v in pairs(opts.header_json or {}) do req.headers[k] = assert(util.header_json(v)) end
  req.headers["Accept"] = req.headers["Accept"] or "application/json"
  req.headers["User-Agent"] = Client.USER_AGENT
  if opts.json ~= nil then
    req.body = assert(json.encode(opts.json))
    req.headers["Content-Type"] = "application/json"
  elseif opts.form then
    req.body = http.form(opts.form)
    req.headers["Content-Type"] = "application/x-www-form-urlencoded"
  elseif opts.multipart then                    -- ordered parts, see util.multipart
    req.body, req.headers["Content-Type"] = util.multipart(opts.multipart)
  end
  if opts.soap then req.soap = true end          -- the auth may add a SOAP header (WS-Security)
  local sent
  if not opts.no_auth then
    local ok, err, token = self.auth(self, req, opts.auth, refused)   -- opts.auth: another of the app's auth schemes
    if not ok then return nil, err, token or "auth", nil, req end
    sent = not refused and err or nil           -- on success auth's second value is the token it added
  end
  if opts.soap then
    req.body = soap.envelope(opts.soap, req.soap_header)
    req.headers["Content-Type"] = "text/xml; charset=utf-8"
    req.headers["Accept"] = "text/xml"
  end

  -- Asking again is harmless for a GET, or a request that says so (a client-credentials token): those
  -- are retried after a timeout, a reset, a 5xx or a body that cannot be read.  A write is sent again
  -- only when it cannot have been carried out (the connection never opened, or a 429): after the others
  -- it may have been, and governance settles it by a re-fetch rather than acting twice.
  local again = method == "GET" or method == "HEAD" or opts.idempotent
  local resp, err, token, unread
  for attempt = 1, MAX_ATTEMPTS do
    local wait = self.blocked_until - sched.time()
    if wait > 0 then
      metrics.inc("cachost_rate_limit_wait_seconds_total", { app = self.inst.app }, wait)
      sched.sleep(wait)
    end
    -- opts.per_second: an endpoint's documented request rate (CloudTrail's LookupEvents: 2 a second per
    -- account and region): this instance's requests to that URL (or of that opts.pace_key: a region) are
    -- spaced to stay under it
    if opts.per_second then
      local key = opts.pace_key or req.url:gsub("%?.*", "")
      -- monotonic time; checked again after each sleep (another task may have gone first; timers may
      -- fire a little early), and taken with nothing that yields between the check and the send
      while (self.paced[key] or 0) > sched.now() do sched.sleep(math.max(self.paced[key] - sched.now(), 0.001)) end
      self.paced[key] = sched.now() + 1 / opts.per_second
    end
    self.stats.requests = self.stats.requests + 1
    if attempt > 1 and req.refresh then req.refresh(req) end     -- e.g. a new DPoP proof (auth.lua)
    resp, err, token = http.request(req)
    unread = nil
    metrics.inc("cachost_http_requests_total", { app = self.inst.app, status = resp and resp.status or token })
    local retry_in
    if not resp then
      if not RETRYABLE[token] or not (again or token == "connect") then break end
      retry_in = backoff(attempt)
    else
      self:note_budget(resp)
      if self:throttled(resp) then
        self.stats.throttled = self.stats.throttled + 1
        retry_in = math.min(wait_hint(resp) or backoff(attempt), MAX_WAIT)
        self.blocked_until = math.max(self.blocked_until, sched.time() + retry_in)
        metrics.inc("cachost_rate_limit_wait_seconds_total", { app = self.inst.app }, retry_in)
        err, token = "throttled: " .. resp.status, "throttled"
      elseif resp.status >= 500 and not answered(self, resp) then
        retry_in = backoff(attempt)
        err, token = "server: HTTP " .. resp.status, "server"
        if not again then break end
      else
        unread = decode(resp, opts, req)
        -- an error whose body cannot be read is still that error: its status says what happened
        if unread and resp.status >= 400 then unread = nil end
        if not (unread and again) then break end
        retry_in, err, token = backoff(attempt), unread, "bad_json"
      end
    end
    if attempt == MAX_ATTEMPTS then break end
    self.stats.retries = self.stats.retries + 1
    log.debug("retrying", { instance = self.inst.name, url = (req.url:gsub("%?.*", "")), error = err,
      wait = ("%.2f"):format(retry_in) })
    sched.sleep(retry_in)
    resp = nil
  end

  if not resp or (resp.status >= 500 and not answered(self, resp)) or self:throttled(resp) or (unread and again) then
    self.failures = self.failures + 1
    if self.failures >= BREAKER_THRESHOLD then self.open_until = sched.time() + BREAKER_COOLDOWN end
    return nil, err, token, resp, req
  end
  self.failures = 0
  if unread then return nil, unread, "bad_json", resp, req end
  if resp.status >= 400 then
    local msg = self.connector.error_message and self.connector.error_message(resp) or resp.body:sub(1, 200)
    -- c.unavailable(resp) -> "<plan or licence>" | nil: the provider's own answer for "the tenant's plan
    -- does not offer this" (e.g. Graph's sign-in logs without Entra ID P1/P2)
    local needs = self.connector.unavailable and self.connector.unavailable(resp)
    if needs then return nil, ("unavailable: needs %s: HTTP %d: %s"):format(needs, resp.status, msg), "unavailable", resp, req end
    -- c.dead_credential(resp) -> true: the provider says the credential itself is no good whatever its
    -- status (AWS answers an unknown key or a wrong secret with 403): reconnect needed, not a permission
    local dead = self.connector.dead_credential and self.connector.dead_credential(resp)
    token = answered(self, resp) or (resp.status == 401 or dead) and "auth" or resp.status == 403 and "permission"
      or resp.status == 404 and "not_found" or "http"
    return nil, ("%s: HTTP %d: %s"):format(token, resp.status, msg), token, resp, req, sent
  end
  return resp
end

function Client:get(path, query, opts)
  opts = opts or {}
  opts.query = query
  return self:request("GET", path, opts)
end

-- What a value is, for error messages about a listing's shape.
local function shape(v)
  if v == nil then return "nothing" end
  if v == json.null then return "null" end
  if type(v) == "table" then return json.is_array(v) and "an array" or "an object" end
  return "a " .. type(v)
end

-- The items of a listing page, checked against the provider's documented shape: `where` names the
-- array field of an object body ("value", "entries"), or is nil when the body itself is the array.
-- Anything else (a maintenance notice answered with 200, an HTML page, an array where an object was
-- documented) is refused: it must never read as an empty listing, whose end marks every row deleted.
-- -> items | nil, "malformed listing: ..."
function Client.listing(data, where)
  if where == nil then
    if type(data) == "table" and json.is_array(data) then return data end
    return nil, ("malformed listing: expected a JSON array, got %s"):format(shape(data))
  end
  if type(data) ~= "table" or json.is_array(data) then
    return nil, ("malformed listing: expected an object with a '%s' array, got %s"):format(where, shape(data))
  end
  local items = data[where]
  if type(items) == "table" and json.is_array(items) then return items end
  return nil, ("malformed listing: expected '%s' to be a JSON array, got %s"):format(where, shape(items))
end

-- Iterates the pages of a listing: for items, resp in client:pages(path, query, opts) do ... end.
-- opts.items names the field of the body holding the items (nil: the body is the array); the page must
-- have that shape (Client.listing; with opts.absent_empty an object without the field is an empty page).
-- The next page comes from the Link header (rel="next"), or with opts.page_token = {field, param} it is
-- the same request with the query parameter `param` set to the body's `field` (Box's next_marker /
-- marker, Google's nextPageToken / pageToken; none or "": the last page), or opts.next(resp, items)
-- returns the next path, query (and body).
-- RPC-style listings (Dropbox: POST a JSON argument, then POST {"cursor"} to a /continue route) set
-- opts.method = "POST" and opts.body (the first page's JSON argument); their opts.next returns the next
-- path, nil, body.  Such a read is asked again after a timeout, a reset or a 5xx like a GET.
-- opts.fields: the members of each item the caller reads (a name: its whole value; "a.b": only member b
-- of object a, or of each object in array a), the only ones decoded; reading another raises
-- (json.decode's fields; opts.fields_origin, where they were declared, goes in that error).  Client:request takes them too (a listing in one body).
-- An endless next link (the same URL again) or more than opts.max_pages pages ends with an error.
-- The next page is requested while the caller works on this one (the provider's latency and our
-- processing overlap); leaving the loop early cancels that request.
function Client:pages(path, query, opts)
  opts = opts or {}
  local seen, n = {}, 0
  local max_pages = opts.max_pages or 100000
  local method = opts.method or "GET"
  local function fetch(p, q, b)
    -- the request as sent: a next link (or cursor) naming a page already read (itself, or an earlier
    -- one) ends the loop
    local key = self:url(p)
    if q and next(q) then key = key .. (key:find("?", 1, true) and "&" or "?") .. http.form(q) end
    if b ~= nil then key = key .. " " .. assert(json.encode(b)) end
    if seen[key] then return nil, ("endless pagination: %s was already fetched"):format((p:gsub("%?.*", ""))), "endless" end
    seen[key] = true
    n = n + 1
    if n > max_pages then return nil, "pagination: more than " .. max_pages .. " pages", "pagination" end
    local resp, err, token, answer = self:request(method, p, { query = q, json = b, expect_json = true, auth = opts.auth,
      headers = opts.headers, idempotent = method ~= "GET" or nil, fields = opts.fields, fields_origin = opts.fields_origin })
    if not resp then return nil, err, token, answer end
    local items, lerr
    -- opts.absent_empty: the provider omits an empty array (Google leaves out empty repeated fields),
    -- so an object body without the field is an empty page; any other shape is still refused
    local d = resp.data
    if opts.absent_empty and opts.items and type(d) == "table" and not json.is_array(d) and d[opts.items] == nil then
      items = {}
    else
      items, lerr = Client.listing(d, opts.items)
    end
    if not items then return nil, ("%s (%s %s)"):format(lerr, method, (p:gsub("%?.*", ""))), "malformed" end
    local np, nq, nb
    if opts.page_token then
      local t = type(d) == "table" and d[opts.page_token[1]]
      if type(t) == "string" and t ~= "" then
        np, nq = p, {}
        for k, v in pairs(q or {}) do nq[k] = v end
        nq[opts.page_token[2]] = t
      end
    elseif opts.next then
      -- the connector's reading of where the next page is may refuse the page (malformed listing)
      local ok, a, b2, c = pcall(opts.next, resp, items)
      if not ok and util.undeclared(a) then error(a, 0) end    -- a misuse, not the provider's doing
      if not ok then return nil, tostring(a), util.token_of(a) or "malformed" end
      np, nq, nb = a, b2, c
    else
      np = util.links(resp.headers["link"]).next
    end
    return { items = items, resp = resp, path = np, query = nq, body = nb }
  end
  local ahead = sched.spawn(fetch, path, query, opts.body)
  local closer = setmetatable({}, { __close = function() if ahead then ahead:cancel() end end })
  local function iter()
    if not ahead then return nil end
    local ok, page, err, token, answer = ahead:join()
    ahead = nil
    if not ok then error(page, 0) end          -- the fetch task itself failed
    if not page then error(util.failure(err, token, answer), 0) end   -- with the provider's answer, as ctx:request's
    if page.path then
      ahead = sched.spawn(fetch, page.path, page.query, page.body)
      -- a spawned task only runs when we yield: give it a moment to send its request before the caller
      -- starts its (non-yielding) work on this page, so the provider works while we do
      sched.sleep(0.001)
    end
    return page.items, page.resp
  end
  return iter, nil, nil, closer
end

return Client
