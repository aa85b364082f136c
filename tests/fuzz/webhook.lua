-- webhook.lua — the fuzz driver of one connector's webhook entry (fuzz_webhook_<app>.c passes the app).
-- The input is a request: header lines "name: value", an empty line, the body.  Pseudo-headers steer it:
-- "x-fuzz-method: GET", "x-fuzz-query: k=v&k2=v2", and "x-fuzz-sign: 1", which makes the driver sign the
-- request with the instance's secrets as the provider would (so the fuzzer gets past the verifier and
-- into the handler); Box's "box-delivery-timestamp: now" becomes the current time.
-- Findings (raised): the handler raises, or answers anything but a status, a body the daemon can send,
-- and a list of {entity = string, id = string} to re-fetch.
local app = ...
local sync = require "sync"

local SECRETS = {
  webhook_primary_key = "fuzz-primary", webhook_secondary_key = "fuzz-secondary",   -- box
  webhook_secret = "fuzz-github-secret",                                              -- github
  hook_secret = "fuzz-okta-secret",                                                   -- okta
  client_state = "fuzz-client-state",                                                 -- office365
}
local inst = {
  id = 1, name = "fuzz", app = app, enabled = true,
  settings = { domain = "fuzz.okta.com", org = "fuzz", tenant_id = "fuzz-tenant", components = "users,files,activities" },
}
function inst.secret(_, k) return SECRETS[k] end
function inst.set_secret(_, k, v) SECRETS[k] = v end
local ctx = sync.context(nil, inst, "webhook")
local c = require("sdk.context").connector(ctx)
assert(c.webhook, app .. " has no webhook entry")

local function iso_now() return iso8601.format(sched.time()):gsub("%.%d+Z$", "Z") end

local SIGN = {
  box = function(req)
    local h = req.headers
    if h["box-delivery-timestamp"] == "now" then h["box-delivery-timestamp"] = iso_now() end
    h["box-signature-primary"] = crypto.b64(crypto.hmac_sha256(SECRETS.webhook_primary_key, req.body .. (h["box-delivery-timestamp"] or "")))
  end,
  github = function(req)
    req.headers["x-hub-signature-256"] = "sha256=" .. crypto.hex(crypto.hmac_sha256(SECRETS.webhook_secret, req.body))
  end,
  okta = function(req) req.headers["authorization"] = SECRETS.hook_secret end,
  office365 = function(req)
    if req.headers["webhook-authid"] then
      req.headers["webhook-authid"] = crypto.b64url(crypto.hmac_sha256(SECRETS.client_state,
        "cachost office365 Management Activity webhook authId"))
    end
  end,
}

local function parse(input)
  local head, body = input:match("^(.-)\r?\n\r?\n(.*)$")
  if not head then head, body = "", input end
  local req = { method = "POST", path = "/webhooks/fuzz", headers = {}, query = {}, raw_query = "", body = body,
                params = { instance = "fuzz" }, remote = "127.0.0.1:1" }
  for line in head:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then
      k = k:lower()
      -- repeated headers are joined with ", " (server.c)
      req.headers[k] = req.headers[k] and req.headers[k] .. ", " .. v or v
    end
  end
  local h = req.headers
  -- every provider sends JSON as application/json (a missing type is refused with 415: the seeds and the
  -- fuzzer reach the parsers with this default; "content-type: x" still tries others)
  h["content-type"] = h["content-type"] or "application/json"
  if h["x-fuzz-method"] then req.method = h["x-fuzz-method"]:upper() end
  if h["x-fuzz-query"] then
    req.raw_query = h["x-fuzz-query"]
    for k, v in req.raw_query:gmatch("([^&=]+)=?([^&]*)") do req.query[k] = v end
  end
  if h["x-fuzz-sign"] then SIGN[app](req) end
  return req
end

local function check_answer(status, body, refetch, headers)
  assert(math.type(status) == "integer" and status >= 100 and status <= 599, "bad status " .. tostring(status))
  if type(body) == "table" then
    local s, err = json.encode(body)
    assert(s, "body cannot be encoded: " .. tostring(err))
  else
    assert(body == nil or type(body) == "string", "bad body type " .. type(body))
  end
  assert(refetch == nil or type(refetch) == "table", "bad refetch list")
  for i, r in ipairs(refetch or {}) do
    assert(type(r) == "table" and type(r.entity) == "string", ("refetch[%d]: no entity"):format(i))
    assert(type(r.id) == "string" and r.id ~= "", ("refetch[%d]: the id (%s %q) is not a non-empty string"):format(i, type(r.id), tostring(r.id)))
    assert(status >= 200 and status < 300, "refetch with status " .. status)
  end
  assert(headers == nil or type(headers) == "table", "bad headers")
end

-- -> the handler's status, body, refetch (for the regression specs)
return function(input)
  local status, body, refetch, headers = c.webhook(ctx, parse(input))
  check_answer(status, body, refetch, headers)
  return status, body, refetch
end
