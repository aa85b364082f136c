-- Google Workspace push notifications end to end: the connector makes a changes.watch channel for each
-- user's Drive, pointing at the daemon's /webhooks/<instance> (the tenant sends each its "sync" at once);
-- a sharing change in the tenant arrives as "change" and is re-fetched (that user's changes.list, nothing
-- else) into the same files tables as the scan; an unknown channel, a forged token, another resource and
-- a replayed message fetch nothing; renewal makes new channels and stops the old ones, well before
-- Drive's week is out.
local google = require "sandbox.google"
local helpers = require "helpers"
local sync = require "sync"
local context = require "sdk.context"
local runtime

describe("google workspace push notifications", function()
  local tenant, srv, hooks, inst, url, ctx
  local function wait_for(fn)
    for _ = 1, 200 do if fn() then return true end sched.sleep(0.05) end
    return fn()
  end
  local function requests(pattern)
    local n = 0
    for _, r in ipairs(tenant.log) do if r.path:find(pattern) then n = n + 1 end end
    return n
  end
  local function live_channels()
    local out = {}
    for _, ch in pairs(tenant.state.channels) do if not ch.stopped then out[#out + 1] = ch end end
    return out
  end
  local function post(h)
    return assert(http.request { method = "POST", url = url, headers = h, body = "" })
  end
  local function headers(ch, over)
    local h = { ["X-Goog-Channel-ID"] = ch.id, ["X-Goog-Channel-Token"] = ch.token, ["X-Goog-Resource-ID"] = ch.resourceId,
                ["X-Goog-Resource-State"] = "change", ["X-Goog-Message-Number"] = tostring(ch.n + 1) }
    for k, v in pairs(over or {}) do h[k] = v end
    return h
  end

  setup(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    runtime = require "runtime"
    tenant = google.workspace { seed = 11, users = 8, groups = 2, files = 12, events = 10, days = 2 }
    srv = helpers.serve(tenant)
    hooks = assert(server.listen { port = 0 })
    hooks:route("*", "/webhooks/:instance", require("daemon").webhook)
    url = hooks.url .. "/webhooks/gw-push"
    inst = helpers.instance("google-workspace", "gw-push", { admin_email = tenant.admin.primaryEmail, base_url = srv.url,
      oauth_base_url = srv.url, insecure_loopback = true }, { service_account_key = tenant:key_file(tenant.sa) })
    helpers.sync_ok(inst)
    ctx = sync.context(runtime.store(), inst, "spec")
  end)
  teardown(function() srv:close(); hooks:close() end)

  it("watches every user's Drive and turns a change into a re-fetch of that user's changes", function()
    assert.equal(#tenant.state.users, context.connector(ctx).subscribe(ctx, url))
    local chans = live_channels()
    assert.equal(#tenant.state.users, #chans)
    tenant:flush()
    for _, d in ipairs(tenant.deliveries) do assert.equal(200, d.status, d.event) end      -- every "sync" acknowledged
    local week = sched.time() * 1000 + 604800 * 1000
    for _, ch in ipairs(chans) do
      assert.is_true(ch.expiration < week - 86400 * 1000, "asked well within Drive's week")
      assert.is_true(#ch.token >= 32)
    end
    -- a private file of the second user is shared with anyone with the link
    local owner = tenant.state.users[2]
    local f
    for _, x in ipairs(tenant.state.files) do
      if x.owner == owner.id and #x.perms == 0 and not x.trashed and x.mimeType ~= "application/vnd.google-apps.folder" then f = x break end
    end
    assert(f, "a private file")
    local function level()
      return runtime.store().db:query("SELECT access_level FROM files WHERE instance_id = ? AND ext_id = ?", inst.id, f.id)[1].access_level
    end
    assert.equal("private", level())
    local lists, changes = requests("^/drive/v3/files$"), requests("^/drive/v3/changes$")
    tenant:add_permission(f, { type = "anyone", role = "reader", allowFileDiscovery = false })
    tenant:flush()
    assert.is_true(wait_for(function() return level() == "public" end), "the change was re-fetched")
    assert.equal(1, helpers.count("SELECT count(*) n FROM file_permissions WHERE instance_id = ? AND file_id = ? AND principal = 'anyone' AND deleted_at IS NULL",
      inst.id, f.id))
    assert.equal(lists, requests("^/drive/v3/files$"))                 -- no listing: the changes only
    assert.is_true(requests("^/drive/v3/changes$") > changes)
  end)

  it("refuses an unknown channel, a forged token and another resource, and acts once on a replayed message", function()
    local ch                                        -- the channel of the user whose file changed above
    for _, x in ipairs(live_channels()) do if x.user == tenant.state.users[2].id then ch = x end end
    assert.is_true(ch.n >= 2)
    local before = requests("^/drive/v3/changes$")
    assert.equal(404, post(headers(ch, { ["X-Goog-Channel-ID"] = "a-channel-of-someone-else" })).status)
    assert.equal(401, post(headers(ch, { ["X-Goog-Channel-Token"] = ch.token:sub(1, -2) .. "x" })).status)
    assert.equal(401, post(headers(ch, { ["X-Goog-Resource-ID"] = "another-resource" })).status)
    assert.equal(400, post(headers(ch, { ["X-Goog-Resource-State"] = "exists" })).status)
    assert.equal(400, post { ["X-Goog-Channel-ID"] = ch.id }.status)
    assert.equal(before, requests("^/drive/v3/changes$"))
    -- the tenant's own last message again: acknowledged, nothing re-read
    local r = post(headers(ch, { ["X-Goog-Message-Number"] = tostring(ch.n) }))
    assert.equal(200, r.status)
    assert.matches('"duplicate":true', r.body)
  end)

  it("keeps the channels it has when a renewal fails midway", function()
    local have = live_channels()
    tenant:fault { path = "/changes/watch$", kind = "html", status = 400, count = 1 }
    assert.is_false(pcall(context.connector(ctx).subscribe, ctx, url))
    assert.equal(#have, #live_channels())
    local ch = have[1]
    assert.equal(200, post(headers(ch, { ["X-Goog-Resource-State"] = "sync", ["X-Goog-Message-Number"] = "1" })).status)
  end)

  it("renews: new channels for every user first, then the old ones stopped", function()
    local old = live_channels()
    context.connector(ctx).subscribe(ctx, url)
    tenant:flush()
    for _, ch in ipairs(old) do assert.is_true(ch.stopped, ch.id) end
    local now = live_channels()
    assert.equal(#old, #now)
    -- an old channel's notification is no longer ours
    assert.equal(404, post(headers(old[1])).status)
  end)
end)
