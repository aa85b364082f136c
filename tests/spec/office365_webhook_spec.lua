-- Office 365 Management Activity API webhooks end to end: the connector starts the content subscriptions
-- with the daemon's /webhooks/<instance> (the sandbox tenant validates it), the tenant's notifications
-- store the blobs' records through the poller's path and feed policies; forged, hostile and malformed
-- notifications fetch nothing; duplicates (webhook twice, then the poller) add no rows.
local context = require "sdk.context"
local ms = require "sandbox.microsoft"
local instances = require "instances"
local sync = require "sync"
local runtime

local TENANT = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
local CLIENT, SECRET = "0f1e2d3c-1111-4222-8333-a44455556666", "sandbox~o365hook.secret"
local CLIENT_STATE = "graph-client-state-webhook-spec-42"
local TYPES = { "Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General" }

local POLICY = [[
return policy {
  name = "Inbox rule created",
  severity = "high",
  on = "activity",
  match = { action = "New-InboxRule" },
  alert = "{actor} created an inbox rule",
  actions = { "alert" },
  mode = "audit",
}
]]

describe("office365 Management Activity webhooks", function()
  local tenant, srv, hooks, canary, inst, url, ctx
  local refused        -- the record of the refused notification: only the poller will store it
  local canary_hits = 0

  local function db() return runtime.store().db end
  local function rows_of(id)
    return db():query("SELECT count(*) n FROM activities WHERE instance_id = ? AND ext_id = ?", inst.id, id)[1].n
  end
  local function alerts_of(id)
    return db():query("SELECT count(*) n FROM alerts WHERE instance_id = ? AND policy = 'inbox_rule' AND entity_id = ?",
      inst.id, id)[1].n
  end
  local function blob_gets()
    local n = 0
    for _, r in ipairs(tenant.log) do if r.path:find("/activity/feed/audit/", 1, true) then n = n + 1 end end
    return n
  end
  local function wait_for(fn)
    for _ = 1, 100 do if fn() then return true end; sched.sleep(0.05) end
    return fn()
  end
  local function auth_id() return tenant.state.mgmt_subs["Audit.Exchange"].webhook.authId end
  local function post(headers, body)
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
    return assert(http.request { method = "POST", url = url, headers = headers, body = body })
  end
  -- a stored record whose blob the tenant does not notify (its webhook paused meanwhile), created a
  -- minute ago in real time so that the poller lists it too
  local function unnotified_record(spec)
    local w = tenant.state.mgmt_subs["Audit.Exchange"].webhook
    w.status = "disabled"
    spec.ms = math.floor(sched.time() * 1000) - 60000
    local rec, cid = tenant:add_record(spec)
    w.status = "enabled"
    local o = tenant:content_obj(2, cid, spec.ms)
    o.tenantId, o.clientId = TENANT, CLIENT
    return rec, o
  end

  setup(function()
    host.home = require("helpers").tmp_dir()
    package.loaded.runtime = nil
    runtime = require "runtime"
    assert(host.mkdir(host.home .. "/policies", 448))
    local fh = assert(io.open(host.home .. "/policies/inbox_rule.lua", "w"))
    fh:write(POLICY)
    fh:close()
    tenant = ms.new { seed = 9, users = 12, groups = 2, days = 1, signins = 30, audits = 20, mgmt_records_per_day = 200,
                      now = sched.time(), tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET }
    srv = assert(server.listen { port = 0 })
    tenant:mount(srv)
    -- the webhook endpoint as `cachost run` serves it
    hooks = assert(server.listen { port = 0 })
    hooks:route("*", "/webhooks/:instance", require("daemon").webhook)
    url = hooks.url .. "/webhooks/o365"
    -- where a hostile notification would send us
    canary = assert(server.listen { port = 0 })
    canary:route("*", "/*", function() canary_hits = canary_hits + 1; return 200, "[]" end)
    assert(instances.add(runtime.store(), "office365", "o365", {
      tenant_id = TENANT, client_id = CLIENT, client_secret = SECRET, client_state = CLIENT_STATE,
      components = "users,activities", base_url = srv.url, insecure_loopback = "true" }))
    inst = assert(instances.instance(runtime.store(), "o365"))
    ctx = sync.context(runtime.store(), inst, "spec")
    runtime.policies(true)
    runtime.watch(true)
  end)
  teardown(function()
    runtime.watch(false)
    srv:close(); hooks:close(); canary:close()
  end)

  it("starts every content subscription with the webhook, validated by the tenant, once", function()
    local starts = function()
      local n = 0
      for _, r in ipairs(tenant.log) do if r.path:find("/subscriptions/start", 1, true) then n = n + 1 end end
      return n
    end
    context.connector(ctx).subscribe(ctx, url)
    local first = auth_id()
    for _, ct in ipairs(TYPES) do
      local s = tenant.state.mgmt_subs[ct]
      assert.equal("enabled", s.status)
      -- the tenant keeps a webhook only after our endpoint answered its validation POST with 200
      assert.equal("enabled", s.webhook.status)
      assert.equal(url, s.webhook.address)
      assert.equal(first, s.webhook.authId)
    end
    assert.is_true(#first >= 32)
    assert.are_not.equal(CLIENT_STATE, first)
    assert.equal(4, starts())
    -- renewal: already there, nothing started again, same authId
    context.connector(ctx).subscribe(ctx, url)
    assert.equal(4, starts())
    -- a webhook the service disabled is started again
    tenant.state.mgmt_subs["Audit.General"].webhook.status = "disabled"
    context.connector(ctx).subscribe(ctx, url)
    assert.equal(5, starts())
    assert.equal("enabled", tenant.state.mgmt_subs["Audit.General"].webhook.status)
    -- the validation request itself: 200 with our authId, 401 without
    local code = "9c0c2a57-validation"
    local body = json.encode { validationCode = code }
    assert.equal(200, post({ ["Webhook-ValidationCode"] = code, ["Webhook-AuthID"] = first }, body).status)
    assert.equal(401, post({ ["Webhook-ValidationCode"] = code }, body).status)
    assert.equal(401, post({ ["Webhook-ValidationCode"] = code, ["Webhook-AuthID"] = first .. "x" }, body).status)
    -- the poller leaves the webhook alone
    local by = runtime.sync(inst, { streams = { "users", "activities" } })
    for _, r in ipairs(by) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
    for _, ct in ipairs(TYPES) do assert.equal(url, tenant.state.mgmt_subs[ct].webhook.address) end
  end)

  it("a notification stores the blob's records as the poller does and feeds policies", function()
    local rec = tenant:add_record { workload = "Exchange", operation = "New-InboxRule", record_type = 1,
                                    ClientIP = "203.0.113.9" }
    tenant:flush(5)
    assert.is_true(wait_for(function() return rows_of(rec.Id) == 1 end))
    local row = db():query("SELECT * FROM activities WHERE instance_id = ? AND ext_id = ?", inst.id, rec.Id)[1]
    assert.equal("admin", row.kind)
    assert.equal("New-InboxRule", row.action)
    assert.equal("Exchange", row.app)
    assert.equal("203.0.113.9", row.ip)
    assert.equal(rec.UserId, row.actor)
    assert.is_true(wait_for(function() return alerts_of(rec.Id) == 1 end))
    -- the notification the tenant sent was answered 200
    local last = tenant.deliveries[#tenant.deliveries]
    assert.equal(200, last.status)
  end)

  it("notifies generated blobs as they become available; each record stored", function()
    local n0 = #tenant.state.mgmt_notifications
    tenant:advance(3 * 3600)
    tenant:flush(5)
    local notified = {}
    for i = n0 + 1, #tenant.state.mgmt_notifications do notified[#notified + 1] = tenant.state.mgmt_notifications[i] end
    assert.is_true(#notified > 0)
    local ids = {}
    for _, n in ipairs(notified) do
      assert.equal(200, n.rec.status)
      local c, s = tenant:parse_blob_id(n.id)
      for _, r in ipairs(tenant:blob_records(c, s)) do ids[r.Id] = true end
    end
    assert.is_true(wait_for(function()
      for id in pairs(ids) do if rows_of(id) ~= 1 then return false end end
      return true
    end))
  end)

  it("a wrong or missing Webhook-AuthID gets 401 and nothing is fetched", function()
    local rec, o = unnotified_record { workload = "Exchange", operation = "New-InboxRule", record_type = 1 }
    local gets = blob_gets()
    local body = json.encode(json.array { o })
    assert.equal(401, post({ ["Webhook-AuthID"] = "o365activityapinotification" }, body).status)
    assert.equal(401, post({ ["Webhook-AuthID"] = auth_id():sub(1, -2) }, body).status)
    assert.equal(401, post({}, body).status)      -- an array without the header is still one of these
    sched.sleep(0.3)
    assert.equal(gets, blob_gets())
    assert.equal(0, rows_of(rec.Id))
    -- the same with the right authId is fetched
    assert.equal(200, post({ ["Webhook-AuthID"] = auth_id() }, body).status)
    assert.is_true(wait_for(function() return rows_of(rec.Id) == 1 end))
  end)

  it("refuses a contentUri outside this tenant's feed and fetches nothing of that notification", function()
    local rec, o = unnotified_record { workload = "Exchange", operation = "Set-Mailbox", record_type = 1 }
    refused = rec
    local gets = blob_gets()
    local feed = srv.url .. "/api/v1.0/" .. TENANT .. "/activity/feed"
    local hostile = {
      canary.url .. "/api/v1.0/" .. TENANT .. "/activity/feed/audit/" .. o.contentId,          -- another host
      srv.url .. "/api/v1.0/0b7e1c4d-5a6f-4b8c-9d0e-1f2a3b4c5d6e/activity/feed/audit/x",      -- another tenant
      feed .. "/audit/../subscriptions/list",                                                  -- out of audit/
      feed .. "/audit/%2e%2e%2fsubscriptions%2flist",
      feed .. "/audit/",
      feed .. "/audit/x?y=" .. canary.url,
      "file:///etc/passwd",
    }
    for _, h in ipairs(hostile) do
      local bad = { contentType = "Audit.Exchange", contentId = o.contentId, contentUri = h, tenantId = TENANT }
      -- alone, and after a good one: the whole notification is refused
      for _, list in ipairs { { bad }, { o, bad } } do
        local resp = post({ ["Webhook-AuthID"] = auth_id() }, json.encode(json.array(list)))
        assert.equal(400, resp.status, h)
      end
    end
    sched.sleep(0.3)
    assert.equal(0, canary_hits)
    assert.equal(gets, blob_gets())
    assert.equal(0, rows_of(rec.Id))
  end)

  it("answers 400 to a malformed notification", function()
    local gets = blob_gets()
    for _, body in ipairs { "not json", "[", '{"value": []}', "[1]", '["x"]', '[{"contentUri": 7}]', '[{}]', "" } do
      assert.equal(400, post({ ["Webhook-AuthID"] = auth_id() }, body).status, body)
    end
    -- an empty notification is fine and fetches nothing
    assert.equal(200, post({ ["Webhook-AuthID"] = auth_id() }, "[]").status)
    sched.sleep(0.2)
    assert.equal(gets, blob_gets())
  end)

  it("adds no duplicate rows or alerts: the same notification twice, then the poller", function()
    local rec, o = unnotified_record { workload = "Exchange", operation = "New-InboxRule", record_type = 1 }
    local body = json.encode(json.array { o, o })
    local n0 = db():query("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)[1].n
    for _ = 1, 2 do
      assert.equal(200, post({ ["Webhook-AuthID"] = auth_id() }, body).status)
      assert.is_true(wait_for(function() return rows_of(rec.Id) == 1 end))
      sched.sleep(0.2)
    end
    assert.equal(1, rows_of(rec.Id))
    assert.equal(1, alerts_of(rec.Id))
    assert.equal(n0 + 1, db():query("SELECT count(*) n FROM activities WHERE instance_id = ?", inst.id)[1].n)
    -- the poller lists the same blob and those the webhook stored before: nothing new but the record
    -- of the refused notification (the poller is the backstop)
    assert.equal(0, rows_of(refused.Id))
    local results = runtime.sync(inst, { streams = { "activities" } })
    assert(results[1].counts, tostring(results[1].error))
    assert.equal(1, results[1].counts.activities.added)
    assert.equal(1, rows_of(refused.Id))
    assert.equal(1, rows_of(rec.Id))
    assert.equal(1, alerts_of(rec.Id))
  end)

  it("still tells Graph change notifications apart", function()
    local resp = post({ ["Content-Type"] = "text/plain" }, "")
    assert.equal(415, resp.status)      -- not JSON: not a change notification
    resp = assert(http.request { method = "POST", url = url, query = { validationToken = "tok&1" }, body = "" })
    assert.equal(200, resp.status)
    assert.equal("tok&1", resp.body)
    resp = post({}, json.encode { value = { { clientState = "wrong", resource = "Users/x" } } })
    assert.equal(401, resp.status)
  end)
end)
