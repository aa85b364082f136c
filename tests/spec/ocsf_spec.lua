-- ocsf_spec.lua — cachost export: alerts and synced activities (Okta sign-ins and admin events, Box file
-- events) as OCSF 1.1 events, each with the attributes its class requires.
local helpers = require "helpers"
local ocsf = require "ocsf"

-- What every OCSF event needs, and what its class needs besides.
local function valid(e)
  for _, k in ipairs { "class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id" } do
    assert.equal("number", type(e[k]), k)
  end
  assert.equal(math.type(e.time), "integer")
  assert.equal(e.class_uid * 100 + e.activity_id, e.type_uid)
  assert.equal(e.class_uid // 1000, e.category_uid)
  assert.equal("1.1.0", e.metadata.version)
  assert.equal("cachost", e.metadata.product.name)
  if e.class_uid == 2004 then assert.truthy(e.finding_info.uid and e.finding_info.title)
  elseif e.class_uid == 3002 or e.class_uid == 3001 then assert.truthy(e.user)
  elseif e.class_uid == 6006 then assert.truthy(e.actor and e.file)
  else error("unexpected class " .. e.class_uid) end
end

describe("OCSF export", function()
  it("maps alerts and activities to their classes", function()
    local f = ocsf.finding { id = 7, created_at = "2026-01-02T03:04:05.000Z", updated_at = "2026-01-02T03:04:05.000Z",
      policy = "bruteforce", severity = "high", title = "Brute force", entity = "users", entity_id = "u1", status = "open",
      evidence = '{"failures": 12}', instance = "acme", app_name = "okta" }
    valid(f)
    assert.same({ 2004, 4, 1, "New" }, { f.class_uid, f.severity_id, f.status_id, f.status })
    assert.equal(1767323045000, f.time)
    assert.same({ failures = 12 }, f.evidences[1].data)
    local function act(kind, action, outcome)
      return ocsf.activity { kind = kind, action = action, outcome = outcome, time = "2026-01-02T03:04:05.000Z",
        actor = "admin@acme.com", target = "jane@acme.com", ext_id = "e1", instance = "acme", app_name = "okta" }
    end
    local cases = {
      { act("signin", "user.session.start", "failure"), 3002, 1, 2 },
      { act("signin", "user.session.end", "success"), 3002, 2, 1 },
      { act("admin", "user.lifecycle.suspend", "success"), 3001, 5, 1 },
      { act("admin", "user.account.reset_password", "success"), 3001, 4, 1 },
      { act("admin", "user.account.unlock", "success"), 3001, 12, 1 },
      { act("user", "FileDownloaded", "success"), 6006, 2, 1 },
      { act("user", "SharingLinkCreated", "success"), 6006, 12, 1 },
    }
    for i, c in ipairs(cases) do
      valid(c[1])
      assert.same({ c[2], c[3], c[4] }, { c[1].class_uid, c[1].activity_id, c[1].status_id }, "case " .. i)
    end
    assert.is_nil(act("user", "app.oauth2.token.grant", "success"))
  end)

  it("exports what a sync stored, one valid event a line", function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    local okta = require("sandbox.okta").new { seed = 5, users = 10, events_per_day = 40, days = 2 }
    local box = require("sandbox.box").new { seed = 6, users = 6, folders = 3, files = 10, events = 200, days = 2,
      client_id = "c", client_secret = "s", enterprise_id = "1" }
    local so <close> = helpers.serve(okta)
    local sb <close> = helpers.serve(box)
    helpers.sync_ok(helpers.instance("okta", "o", { domain = "o.okta.com", base_url = so.url, insecure_loopback = true },
      { api_token = okta.token }))
    helpers.sync_ok(helpers.instance("box", "b", { client_id = "c", enterprise_id = "1", auth = "client_credentials",
      base_url = sb.url .. "/2.0", upload_base_url = sb.url .. "/api/2.0", oauth_base_url = sb.url, insecure_loopback = true,
      initial_days = 30 }, { client_secret = "s" }))
    local bin = os.getenv("CACHOST_BIN") or (host.root .. "/cachost")
    local p = assert(io.popen(("CACHOST_HOME='%s' %s export --format ocsf --since 30d 2>/dev/null"):format(host.home, bin)))
    local classes, n = {}, 0
    for line in p:lines() do
      local e = assert(json.decode(line))
      valid(e)
      classes[e.class_uid] = (classes[e.class_uid] or 0) + 1
      n = n + 1
    end
    p:close()
    assert.truthy(classes[3002], "sign-ins")
    assert.truthy(classes[6006], "file activity")
    assert.is_true(n > 20)
    local r = io.popen(("CACHOST_HOME='%s' %s export --format cef 2>&1; echo rc=$?"):format(host.home, bin)):read("a")
    assert.matches("unknown format 'cef' %(ocsf%)", r)
    assert.matches("rc=2", r)
  end)
end)
