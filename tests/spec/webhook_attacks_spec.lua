-- webhook_attacks_spec.lua — hostile deliveries to the daemon's webhook server, for every connector with
-- webhooks (issue 10): forged, unsigned, replayed, oversized, wrongly typed, malformed, for an unknown
-- instance, and signed with another instance's secret.  Each is refused with its status, and nothing is
-- processed: the instances point at a recorder standing in for the provider, which must see no request
-- (a re-fetch is what processing a delivery means) while the store gains no row.  A genuine delivery
-- (the control) is then processed, which shows the recorder would have seen the attacks; sent again it
-- is acknowledged and not processed twice.
local helpers = require "helpers"

local MGMT_SALT = "cachost office365 Management Activity webhook authId"   -- connectors/office365.lua
local TENANT = "6f3e1a52-0000-4000-8000-00000000000a"

local function iso_now(offset) return (iso8601.format(sched.time() + (offset or 0)):gsub("%.%d+Z$", "Z")) end

-- Per app: the instance's settings and secrets (variant "a" or "b"), how a provider signs a delivery with
-- those secrets (headers, body) and how it is forged, a genuine body naming target `id`, and the path the
-- re-fetch of `id` asks the provider for.
local APPS = {
  box = {
    settings = function(base) return { auth = "client_credentials", client_id = "cid", enterprise_id = "1", oauth_base_url = base, upload_base_url = base } end,
    secrets = function(v) return { client_secret = "cs", webhook_primary_key = "prim-" .. v, webhook_secondary_key = "sec-" .. v } end,
    body = function(id) return json.encode { type = "webhook_event", id = "evt-" .. id, trigger = "FILE.UPLOADED",
                                             source = { id = id, type = "file" } } end,
    sign = function(s, h, body, opts)
      local ts = h["BOX-DELIVERY-TIMESTAMP"] or iso_now(opts.age and -opts.age)
      h["BOX-DELIVERY-TIMESTAMP"] = ts
      h["BOX-DELIVERY-ID"] = h["BOX-DELIVERY-ID"] or crypto.hex(crypto.random(8))
      local key1, key2 = opts.forge and "forged" or s.webhook_primary_key, opts.forge and "forged" or s.webhook_secondary_key
      h["BOX-SIGNATURE-PRIMARY"] = crypto.b64(crypto.hmac_sha256(key1, body .. ts))
      h["BOX-SIGNATURE-SECONDARY"] = crypto.b64(crypto.hmac_sha256(key2, body .. ts))
    end,
    -- the re-fetch's last request: the file is not found, so its trash is asked next (waiting for the
    -- first would let the second arrive after the count the replay check starts from)
    target = function(id) return "/files/" .. id .. "/trash" end,
  },
  github = {
    settings = function() return { org = "acme" } end,
    secrets = function(v) return { token = "ghp_x", webhook_secret = "gh-secret-" .. v } end,
    body = function(id) return json.encode { action = "member_added", membership = { user = { login = id } } } end,
    sign = function(s, h, body, opts)
      h["X-GitHub-Event"] = "organization"
      h["X-GitHub-Delivery"] = h["X-GitHub-Delivery"] or crypto.hex(crypto.random(16))
      h["X-Hub-Signature-256"] = "sha256=" .. crypto.hex(crypto.hmac_sha256(opts.forge and "forged" or s.webhook_secret, body))
    end,
    target = function(id) return "/" .. id end,
  },
  okta = {
    settings = function() return { domain = "acme.okta.com" } end,
    secrets = function(v) return { api_token = "00x", hook_secret = "okta-hook-" .. v } end,
    body = function(id) return json.encode { eventType = "com.okta.event_hook", data = { events = {
      { uuid = "uuid-" .. id, eventType = "user.lifecycle.suspend", target = { { id = id, type = "User" } } } } } } end,
    sign = function(s, h, _, opts) h["Authorization"] = opts.forge and "forged" or s.hook_secret end,
    target = function(id) return "/users/" .. id end,
  },
  graph = {
    app = "office365",
    settings = function() return { tenant_id = TENANT, client_id = "cid", components = "users" } end,
    secrets = function(v) return { client_secret = "cs", client_state = "graph-state-" .. v } end,
    -- the clientState travels in the body: signing writes it there
    body = function(id) return json.encode { value = { { clientState = "@STATE@", changeType = "updated",
                                                         resource = "Users/" .. id, resourceData = { id = id } } } } end,
    sign = function(s, _, body, opts)
      return (body:gsub("@STATE@", opts.forge and "forged" or s.client_state))
    end,
    unsigned = function(body) return (body:gsub('"clientState":"@STATE@",', "")) end,
    target = function(id) return "/users/" .. id end,
    -- a Graph notification carries no id and two identical ones may mean two changes: not de-duplicated (a
    -- replay can only make us re-read the user it names)
    no_replay = true,
  },
  management = {
    app = "office365",
    settings = function() return { tenant_id = TENANT, client_id = "cid", components = "activities" } end,
    secrets = function(v) return { client_secret = "cs", client_state = "mgmt-state-" .. v } end,
    body = function(id, base) return json.encode { { contentType = "Audit.Exchange", contentId = id, tenantId = TENANT,
      contentUri = base .. "/api/v1.0/" .. TENANT .. "/activity/feed/audit/" .. id } } end,
    sign = function(s, h, _, opts)
      h["Webhook-AuthID"] = crypto.b64url(crypto.hmac_sha256(opts.forge and "forged" or s.client_state, MGMT_SALT))
    end,
    target = function(id) return "/activity/feed/audit/" .. id end,
  },
  webex = {
    settings = function() return { client_id = "cid", org_id = "org-1" } end,
    secrets = function(v) return { client_secret = "cs", access_token = "tok", refresh_token = "rt",
                                   token_expires_at = tostring(sched.time() + 3600), webhook_secret = "wx-" .. v } end,
    body = function(id) return json.encode { id = "hook-1", resource = "messages", event = "created",
                                             data = { id = id, roomId = "room-1" } } end,
    sign = function(s, h, body, opts)
      h["X-Spark-Signature"] = crypto.hex(crypto.hmac_sha1(opts.forge and "forged" or s.webhook_secret, body))
    end,
    target = function(id) return "/messages/" .. id end,
  },
}
local ORDER = { "box", "github", "okta", "graph", "management", "webex" }

describe("webhook attacks", function()
  local runtime, daemon, srv, rec, seen
  local tried, refused = 0, 0

  setup(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime, package.loaded.daemon = nil, nil
    runtime, daemon = require "runtime", require "daemon"
    seen = {}
    rec = assert(server.listen { port = 0 })           -- the provider: records what it is asked
    rec:route("*", "/*", function(req)
      seen[#seen + 1] = req.path
      if req.path:match("/token$") then           -- OAuth client credentials: so the re-fetch goes on
        return 200, json.encode { access_token = "tok", token_type = "Bearer", expires_in = 3600 }
      end
      return 404, '{"error":"recorder"}'
    end)
    srv = assert(daemon.listen {})
    for _, name in ipairs(ORDER) do
      local a = APPS[name]
      for _, v in ipairs { "a", "b" } do
        local settings = a.settings(rec.url)
        settings.base_url, settings.insecure_loopback = rec.url, true
        a[v] = a.secrets(v)
        helpers.instance(a.app or name, name .. "-" .. v, settings, a[v])
      end
    end
  end)

  teardown(function()
    runtime.watch(false)
    srv:close()
    rec:close()
    helpers.figure("webhook attacks: %d tried, %d refused", tried, refused)
  end)

  -- the daemon's answer to one delivery for instance `to`; the request is signed with `s` unless told
  local function deliver(name, to, body, opts)
    local a = APPS[name]
    opts = opts or {}
    local h = opts.headers or {}
    h["Content-Type"] = h["Content-Type"] or opts.content_type or "application/json"
    if opts.sign ~= false then body = a.sign(opts.secrets or a.a, h, body, opts) or body
    elseif a.unsigned then body = a.unsigned(body) end
    local r = assert(http.request { method = "POST", url = srv.url .. "/webhooks/" .. to, headers = h, body = body })
    return r.status, h, body
  end

  local function rows(inst_names)
    local n = 0
    for _, t in ipairs { "users", "files", "activities" } do
      for _, iname in ipairs(inst_names) do
        n = n + helpers.count("SELECT count(*) n FROM " .. t .. " t JOIN instances i ON i.id = t.instance_id WHERE i.name = ?", iname)
      end
    end
    return n
  end

  local function wait_for(pattern)
    for _ = 1, 250 do
      for _, p in ipairs(seen) do if p:find(pattern, 1, true) then return true end end
      sched.sleep(0.02)
    end
    return false
  end

  for _, name in ipairs(ORDER) do
    it(name .. ": refuses every attack, processes nothing, and keeps serving", function()
      local a = APPS[name]
      local inst = name .. "-a"
      seen = {}
      local body = a.body("t1-" .. name, rec.url)
      local attacks = {
        { "forged signature", 401, function() return deliver(name, inst, body, { forge = true }) end },
        { "missing signature", 401, function() return deliver(name, inst, body, { sign = false }) end },
        { "signed with another instance's secret", 401, function() return deliver(name, inst, body, { secrets = a.b }) end },
        { "unknown instance", 404, function() return deliver(name, "no-such-" .. name, body) end },
        { "oversized body", 413, function()
            return deliver(name, inst, body:sub(1, -2) .. (" "):rep(daemon.MAX_BODY) .. body:sub(-1)) end },
        { "wrong content type", 415, function() return deliver(name, inst, body, { content_type = "text/plain" }) end },
        { "malformed JSON", 400, function() return deliver(name, inst, body:sub(1, -3)) end },
      }
      if name == "box" then
        attacks[#attacks + 1] = { "replayed with an old timestamp", 401, function() return deliver(name, inst, body, { age = 1200 }) end }
      end
      for _, atk in ipairs(attacks) do
        tried = tried + 1
        local status = atk[3]()
        assert.equal(atk[2], status, atk[1])
        refused = refused + 1
      end
      -- the control: a genuine delivery is processed (its target re-fetched) ...
      local status, h, sent = deliver(name, inst, body)
      assert.is_true(status >= 200 and status < 300, "genuine delivery: " .. status)
      assert.is_true(wait_for(a.target("t1-" .. name)), "the genuine delivery was not processed: " .. table.concat(seen, " "))
      -- ... and no attack was (their re-fetches would have been queued before the control's): the recorder
      -- saw only the control's requests (and tokens), the store has no row
      for _, p in ipairs(seen) do
        assert.is_truthy(p:find("t1-" .. name, 1, true) or p:match("/token$"), p)
      end
      local before = #seen
      assert.equal(0, rows { name .. "-a", name .. "-b" })
      if not a.no_replay then
        -- the same delivery again (for Box under a new delivery id, which is not signed): acknowledged, not
        -- processed; a second genuine delivery queued behind it shows its re-fetch would have come by now
        tried = tried + 1
        local again = {}
        for k, v in pairs(h) do again[k] = v end
        if again["BOX-DELIVERY-ID"] then again["BOX-DELIVERY-ID"] = "replayed-" .. again["BOX-DELIVERY-ID"] end
        local r = assert(http.request { method = "POST", url = srv.url .. "/webhooks/" .. inst, headers = again, body = sent })
        assert.is_true(r.status >= 200 and r.status < 300, "replay: " .. r.status)
        assert.is_true(deliver(name, inst, a.body("t2-" .. name, rec.url)) < 300)
        assert.is_true(wait_for(a.target("t2-" .. name)), "the second genuine delivery was not processed")
        local first = 0
        for i = 1, #seen do if seen[i]:find(a.target("t1-" .. name), 1, true) and i > before then first = first + 1 end end
        assert.equal(0, first, "the replay was processed again")
        refused = refused + 1
      end
      assert.equal(0, rows { name .. "-a", name .. "-b" })
    end)
  end
end)

describe("sdk.webhook", function()
  local webhook = require "sdk.webhook"

  it("remembers a key for its window, per scope, and at most MAX_KEYS of them", function()
    assert.is_true(webhook.first("spec/a", "k1", 60))
    assert.is_false(webhook.first("spec/a", "k1", 60))
    assert.is_true(webhook.first("spec/b", "k1", 60))        -- another instance or kind
    assert.is_true(webhook.first("spec/short", "k", 0.01))
    sched.sleep(0.05)                                          -- past the window: a new delivery again
    assert.is_true(webhook.first("spec/short", "k", 0.01))
    local max = webhook.MAX_KEYS
    webhook.MAX_KEYS = 3
    for i = 1, 5 do assert.is_true(webhook.first("spec/cap", "k" .. i, 60)) end
    webhook.MAX_KEYS = max
    assert.is_true(webhook.first("spec/cap", "k1", 60))       -- the oldest made room
    assert.is_false(webhook.first("spec/cap", "k5", 60))
    assert.is_false(webhook.first("spec/cap", "k3", 60))      -- the three newest stayed
  end)

  it("takes JSON only as application/json", function()
    assert.same({ a = 1 }, (webhook.json { headers = { ["content-type"] = "Application/JSON; charset=utf-8" }, body = '{"a":1}' }))
    local function status(req) return select(2, webhook.json(req)) end
    assert.equal(415, status { headers = { ["content-type"] = "text/plain" }, body = "{}" })
    assert.equal(415, status { headers = {}, body = "{}" })
    assert.equal(400, status { headers = { ["content-type"] = "application/json" }, body = "{" })
  end)
end)
