-- Policies: the shipped ones (positive and negative), confinement of broken ones, windows across a
-- restart, and the governance limits and kill switch they go through.
local policy = require "policy"
local runtime = require "runtime"
local instances = require "instances"
local governance = require "governance"
local store = require "store"
local util = require "sdk.util"

local tmp_home = require("helpers").tmp_dir

local T0 = math.floor(sched.time()) + 60     -- after the accounts were first seen
local function at(s) return util.iso(T0 + s) end
local seq = 0
local function signin(actor, outcome, s, extra)
  seq = seq + 1
  local r = { ext_id = "ev" .. seq, time = at(s), kind = "signin", action = "user.session.start", actor = actor,
              actor_id = actor, outcome = outcome, ip = "198.51.100.7" }
  for k, v in pairs(extra or {}) do r[k] = v end
  return { op = "added", row = r }
end

local function write(dir, name, text)
  local f = assert(io.open(dir .. "/" .. name .. ".lua", "w")); f:write(text); f:close()
  return dir .. "/" .. name .. ".lua"
end

describe("policies", function()
  local st, inst, shipped
  local function alerts(p) return st.db:query("SELECT * FROM alerts WHERE policy = ? ORDER BY id", p) end
  local function only(name)
    for _, p in ipairs(shipped) do if p.id == name then return { p } end end
    error("no policy " .. name)
  end

  before_each(function()
    host.home = tmp_home()
    package.loaded.runtime = nil
    runtime = require "runtime"
    st = runtime.store()
    local now = store.now()
    assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('okta', 'o', '{}', ?, ?)", now, now))
    inst = assert(instances.instance(runtime.store(), "o"))
    local users = {}
    for i = 1, 30 do users[i] = { ext_id = "u" .. i, email = "u" .. i .. "@example.com", status = "active" } end
    users[30].status = "suspended"
    assert(st:upsert("users", inst.id, users))
    shipped = assert(policy.load_all(st))
  end)

  it("ships policies that all load", function()
    local names = {}
    for _, p in ipairs(shipped) do names[#names + 1] = p.id end
    table.sort(names)
    assert.same({ "bruteforce", "impossible_travel", "leaked_access_key", "mass_download", "new_admin", "offboarding",
                  "risky_oauth_grant",
                  "sensitive_file_shared", "suspended_user_activity" }, names)
  end)

  it("bruteforce: failures then a success alert and plan a suspension (audit mode)", function()
    local feed = {}
    for i = 1, 5 do feed[#feed + 1] = signin("u1", "failure", i * 10) end
    feed[#feed + 1] = signin("u1", "success", 70)
    assert.equal(1, policy.feed(st, inst, only("bruteforce"), "activities", feed))
    local a = alerts("bruteforce")
    assert.equal(1, #a)
    assert.matches("u1 signed in after 5 failed attempts", a[1].title)
    local g = st.db:query("SELECT * FROM governance_actions WHERE policy = 'bruteforce'")
    assert.equal(1, #g); assert.equal("dry-run", g[1].mode); assert.equal("suspend_user", g[1].action)
  end)

  it("bruteforce: too few failures, or failures outside the window, do not fire", function()
    local feed = {}
    for i = 1, 4 do feed[#feed + 1] = signin("u2", "failure", i) end
    feed[#feed + 1] = signin("u2", "success", 10)
    for i = 1, 5 do feed[#feed + 1] = signin("u3", "failure", i * 300) end   -- 5 over 25 minutes
    feed[#feed + 1] = signin("u3", "success", 1600)
    assert.equal(0, policy.feed(st, inst, only("bruteforce"), "activities", feed))
  end)

  it("keeps windows across a restart", function()
    local feed = {}
    for i = 1, 3 do feed[#feed + 1] = signin("u4", "failure", i) end
    assert.equal(0, policy.feed(st, inst, only("bruteforce"), "activities", feed))
    policy.flush()                                      -- what a graceful stop writes
    policy.forget()                                     -- what a restart loses: all that is in memory
    local again = assert(policy.load_all(st))
    local p
    for _, x in ipairs(again) do if x.id == "bruteforce" then p = x end end
    feed = { signin("u4", "failure", 4), signin("u4", "failure", 5), signin("u4", "success", 6) }
    assert.equal(1, policy.feed(st, inst, { p }, "activities", feed))
    -- all the failures before the restart, only the success after it
    feed = {}
    for i = 1, 5 do feed[#feed + 1] = signin("u5", "failure", i) end
    assert.equal(0, policy.feed(st, inst, { p }, "activities", feed))
    policy.flush()
    policy.forget()
    for _, x in ipairs(assert(policy.load_all(st))) do if x.id == "bruteforce" then p = x end end
    assert.equal(0, policy.feed(st, inst, { p }, "activities", { signin("u6", "success", 7) }))
    assert.equal(1, policy.feed(st, inst, { p }, "activities", { signin("u5", "success", 8) }))
  end)

  it("table matches: sets, non-string keys, and more tests than Lua has locals", function()
    local dir = tmp_home()
    local p = assert(policy.load(write(dir, "wide", [[return policy { name = "wide", on = "activity",
      match = { action = { "a", "b\n\"c" } } }]])))
    -- fields no activity has (a loaded policy may not name them): set after loading, to push the
    -- generated matcher past Lua's limits
    for i = 1, 120 do p.match["f" .. i] = i end
    p.match[1] = "first"
    local row = { [1] = "first", action = 'b\n"c' }
    for i = 1, 120 do row["f" .. i] = i end
    local function one(changes)
      local r = {}
      for k, v in pairs(row) do r[k] = v end
      for k, v in pairs(changes) do r[k] = v end
      return signin("w", "success", 1, r)
    end
    assert.equal(1, policy.feed(st, inst, { p }, "activities", { one {} }))
    assert.equal(0, policy.feed(st, inst, { p }, "activities", { one { f120 = 0 }, one { f1 = 0 }, one { [1] = "x" }, one { action = "c" } }))
  end)

  it("dlp: each file row records its scan's outcome and why a scan did not complete", function()
    local dir = tmp_home()
    local p = assert(policy.load(write(dir, "scan", [[return policy { name = "scan", on = "file",
      dlp = { detectors = { "credit_card" } } }]])))
    local bodies = {
      ["cards.txt"] = "card 4111 1111 1111 1111 and 5555555555554444",
      ["clean.txt"] = "nothing to see",
      ["broken.pdf"] = "%PDF-1.4\n1 0 obj <<",
    }
    local ctx = { content = function(_, row, max)
      if row.name == "huge.bin" then return nil, "too_large: over " .. max .. " bytes" end
      if row.name == "gone.txt" then error("http 404: item_not_found") end
      return bodies[row.name]
    end }
    local files, items = {}, {}
    for _, name in ipairs { "cards.txt", "clean.txt", "broken.pdf", "huge.bin", "gone.txt" } do
      files[#files + 1] = { ext_id = name, name = name }
      items[#items + 1] = { op = "added", row = files[#files] }
    end
    assert(st:upsert("files", inst.id, files))
    assert.equal(1, policy.feed(st, inst, { p }, "files", items, { ctx = ctx }))
    local got = {}
    for _, f in ipairs(st.db:query("SELECT * FROM files WHERE instance_id = ?", inst.id)) do got[f.name] = f end
    assert.equal("completed", got["cards.txt"].scan_status)
    assert.same({ credit_card = { count = 2, samples = { "4111********1111", "5555********4444" } } },
      json.decode(got["cards.txt"].scan_matches))
    assert.equal("completed", got["clean.txt"].scan_status)
    assert.equal("{}", got["clean.txt"].scan_matches)
    assert.equal("failed", got["broken.pdf"].scan_status)
    assert.matches("damaged", got["broken.pdf"].scan_reason)
    assert.equal("too_large", got["huge.bin"].scan_status)
    assert.equal("failed", got["gone.txt"].scan_status)
    assert.matches("item_not_found", got["gone.txt"].scan_reason)
    for _, f in pairs(got) do assert.is_string(f.scanned_at) end
  end)

  it("dlp: the DLP policies of one batch download each file once, within each one's size cap", function()
    local dir = tmp_home()
    local cards = assert(policy.load(write(dir, "cards", [[return policy { name = "cards", on = "file",
      dlp = { detectors = { "credit_card" } } }]])))
    local ssns = assert(policy.load(write(dir, "ssns", [[return policy { name = "ssns", on = "file",
      dlp = { detectors = { "ssn" } } }]])))
    local small = assert(policy.load(write(dir, "small", [[return policy { name = "small", on = "file",
      dlp = { detectors = { "ssn" }, max_size = 32 } }]])))
    local bodies = { ["a.txt"] = "card 4111 1111 1111 1111", ["b.txt"] = "ssn 536-22-1234 and a longer tail of text" }
    local calls = {}
    local ctx = { content = function(_, row, max)
      calls[row.name] = (calls[row.name] or 0) + 1
      local body = bodies[row.name]
      if #body > max then return nil, "too_large: over " .. max .. " bytes" end
      return body
    end }
    local files, items = {}, {}
    for _, name in ipairs { "a.txt", "b.txt" } do
      files[#files + 1] = { ext_id = name, name = name }
      items[#items + 1] = { op = "added", row = files[#files] }
    end
    assert(st:upsert("files", inst.id, files))
    assert.equal(2, policy.feed(st, inst, { cards, ssns }, "files", items, { ctx = ctx }))
    assert.same({ ["a.txt"] = 1, ["b.txt"] = 1 }, calls)
    assert.equal(1, #alerts("cards"))
    assert.equal(1, #alerts("ssns"))
    -- a.txt fits the small policy's cap (the body at hand is scanned); b.txt does not: asked again, too large
    calls = {}
    items[1].op, items[2].op = "changed", "changed"
    policy.feed(st, inst, { cards, small }, "files", items, { ctx = ctx })
    assert.same({ ["a.txt"] = 1, ["b.txt"] = 2 }, calls)
    -- one DLP policy alone keeps nothing
    calls = {}
    policy.feed(st, inst, { ssns }, "files", items, { ctx = ctx })
    assert.same({ ["a.txt"] = 1, ["b.txt"] = 1 }, calls)
  end)

  it("forgets a window once it is empty: no row, and the key starts afresh", function()
    local p = only("bruteforce")[1]
    local feed = {}
    for i = 1, 5 do feed[#feed + 1] = signin("u8", "failure", i) end
    feed[#feed + 1] = signin("u9", "failure", 6)
    feed[#feed + 1] = signin("u8", "success", 7)
    assert.equal(1, policy.feed(st, inst, { p }, "activities", feed))
    policy.flush()
    local function stored(key)
      return st.db:query("SELECT data FROM policy_state WHERE policy = 'bruteforce' AND key = ?", key)[1]
    end
    assert.is_nil(stored("u8"))                                   -- fired: closed and gone
    assert.equal(1, #json.decode(stored("u9").data).times)        -- still open: kept
    -- u8 starts from nothing: four more failures and a success do not fire
    feed = {}
    for i = 8, 11 do feed[#feed + 1] = signin("u8", "failure", i) end
    feed[#feed + 1] = signin("u8", "success", 12)
    assert.equal(0, policy.feed(st, inst, { p }, "activities", feed))
  end)

  it("followed_by: followers of keys with no window, or with non-string keys, are judged alike", function()
    local dir = tmp_home()
    local p = assert(policy.load(write(dir, "byid", [[return policy { name = "by id", on = "activity",
      match = { outcome = "failure" }, repeated = { count = 2, within = "1h", by = "n" }, followed_by = { outcome = "success" } }]])))
    local function ev(n, outcome, t) return signin("x", outcome, t, { n = n }) end
    assert.equal(1, policy.feed(st, inst, { p }, "activities", { ev(7, "failure", 1), ev(7, "failure", 2), ev(8, "success", 3), ev(7, "success", 4) }))
    assert.equal(0, policy.feed(st, inst, { p }, "activities", { ev(7, "success", 5) }))    -- the window was closed
  end)

  it("impossible travel: Paris then New York twenty minutes later, but not a VPN range", function()
    local feed = {
      signin("u5", "success", 0, { lat = 48.85, lon = 2.35, location = "Paris" }),
      signin("u5", "success", 1200, { lat = 40.71, lon = -74.0, location = "New York" }),
      signin("u6", "success", 0, { lat = 48.85, lon = 2.35, location = "Paris" }),
      signin("u6", "success", 9 * 3600, { lat = 40.71, lon = -74.0, location = "New York" }),   -- a plane can
    }
    assert.equal(1, policy.feed(st, inst, only("impossible_travel"), "activities", feed))
    assert.matches("u5 signed in from New York", alerts("impossible_travel")[1].title)
    local p = only("impossible_travel")[1]
    p.travel.exclude = { "198.51.100.0/24" }
    assert.equal(0, policy.feed(st, inst, { p }, "activities", {
      signin("u7", "success", 0, { lat = 48.85, lon = 2.35 }), signin("u7", "success", 60, { lat = 40.71, lon = -74.0 }) }))
  end)

  it("travel excludes IPv4 and IPv6 ranges, and refuses a range that is not one", function()
    local dir = tmp_home()
    local function load(exclude)
      return policy.load(write(dir, "t", ([[return policy { name = "t", on = "activity", match = { kind = "signin" },
        travel = { min_km = 500, exclude = %s } }]]):format(exclude)))
    end
    local p = assert(load('{ "10.0.0.0/8", "2001:db8:1::/48" }'))
    local function trip(actor, ip2)
      return policy.feed(st, inst, { p }, "activities", {
        signin(actor, "success", 0, { lat = 48.85, lon = 2.35, ip = "192.0.2.1" }),
        signin(actor, "success", 60, { lat = 40.71, lon = -74.0, ip = ip2 }) })
    end
    assert.equal(0, trip("v4", "10.9.9.9"))
    assert.equal(0, trip("v6", "2001:db8:1:ff::1"))
    assert.equal(0, trip("mapped", "::ffff:10.1.1.1"))
    assert.equal(1, trip("outside6", "2001:db8:2::1"))
    assert.equal(1, trip("outside4", "11.0.0.1"))
    for _, bad in ipairs { '{ "10.0.0.0/33" }', '{ "corp-vpn" }', '{ 42 }', '{ "2001:db8::/129" }' } do
      local q, err = load(bad)
      assert.is_nil(q, bad)
      assert.matches("travel.exclude: .* is not an address range", err)
    end
  end)

  it("activity of a suspended account alerts; of an active one does not", function()
    local feed = { signin("u30", "success", 1), signin("u1", "success", 2) }
    assert.equal(1, policy.feed(st, inst, only("suspended_user_activity"), "activities", feed))
    assert.matches("u30 %(suspended%)", alerts("suspended_user_activity")[1].title)
  end)

  it("mass download fires at the threshold within the window only", function()
    local feed = {}
    for i = 1, 50 do seq = seq + 1; feed[i] = { op = "added", row = { ext_id = "d" .. seq, time = at(i), action = "DOWNLOAD", actor = "u8" } } end
    assert.equal(1, policy.feed(st, inst, only("mass_download"), "activities", feed))
    feed = {}
    for i = 1, 49 do seq = seq + 1; feed[i] = { op = "added", row = { ext_id = "d" .. seq, time = at(i), action = "DOWNLOAD", actor = "u9" } } end
    assert.equal(0, policy.feed(st, inst, only("mass_download"), "activities", feed))
  end)

  it("risky OAuth grant: a function match in the policy's own state", function()
    local feed = {
      { op = "added", row = { ext_id = "g1", client_id = "c1", app_name = "Shady", user = "u1", user_id = "u1", scopes = "Mail.Send openid" } },
      { op = "added", row = { ext_id = "g2", client_id = "c2", app_name = "Calendar", user = "u1", user_id = "u1", scopes = "openid profile" } },
      -- a ServiceNow token: the useraccount scope is the whole account
      { op = "added", row = { ext_id = "g3", client_id = "c3", app_name = "Tableau", user = "u2", user_id = "u2",
        scopes = "useraccount (refresh_token)" } },
    }
    assert.equal(2, policy.feed(st, inst, only("risky_oauth_grant"), "app_grants", feed))
    local ids = {}
    for _, a in ipairs(alerts("risky_oauth_grant")) do ids[#ids + 1] = a.entity_id end
    table.sort(ids)
    assert.same({ "g1", "g3" }, ids)
  end)

  it("new admin alerts on a new privilege but not on the first scan's baseline", function()
    local feed = { { op = "added", row = { ext_id = "u1:r1", user_id = "u1", role = "SUPER_ADMIN" } } }
    assert.equal(0, policy.feed(st, inst, only("new_admin"), "privileges", feed, { first_scan = true }))
    assert.equal(1, policy.feed(st, inst, only("new_admin"), "privileges", feed))
  end)

  it("disables a broken policy with an alert and keeps evaluating the others", function()
    local dir = tmp_home()
    for name, text in pairs {
      loop = 'return policy { name = "loop", on = "activity", match = function(r) while true do end end }',
      bomb = 'return policy { name = "bomb", on = "activity", match = function(r) local t = {} while true do t[#t+1] = ("x"):rep(4096) end end }',
      crash = 'return policy { name = "crash", on = "activity", match = function(r) return r.nope.deeper end }',
    } do write(dir, name, text) end
    local list = {}
    for _, name in ipairs { "loop", "bomb", "crash" } do list[#list + 1] = assert(policy.load(dir .. "/" .. name .. ".lua")) end
    list[#list + 1] = only("suspended_user_activity")[1]
    assert.equal(1, policy.feed(st, inst, list, "activities", { signin("u30", "success", 1) }))
    local failed = st.db:query("SELECT name, last_error FROM policies WHERE status = 'failed' ORDER BY name")
    assert.equal(3, #failed)
    assert.same({ "bomb", "crash", "loop" }, { failed[1].name, failed[2].name, failed[3].name })
    assert.matches("^memory: policy bomb exceeded", failed[1].last_error)
    assert.matches("^error: crash.lua:1: attempt to index a nil value", failed[2].last_error)
    assert.matches("^budget: policy loop exceeded", failed[3].last_error)
    assert.equal(3, #st.db:query("SELECT * FROM alerts WHERE policy = 'cachost'"))
  end)

  it("refuses malformed policy files with a clear message", function()
    local dir = tmp_home()
    local cases = {
      syntax = { "return policy { name = ", "expected" },
      field = { 'return policy { name = "x", on = "activity", colour = "red" }', "unknown field 'colour'" },
      on = { 'return policy { name = "x", on = "weather" }', "on: must be one of" },
      action = { 'return policy { name = "x", on = "activity", actions = { "explode" } }', "unknown action 'explode'" },
      ops = { 'return policy { name = "x", on = "file", ops = { "renamed" } }', "ops: unknown op 'renamed'" },
      ops_type = { 'return policy { name = "x", on = "file", ops = "added" }', "ops: must be a list" },
      io = { 'io.open("/etc/passwd") return policy { name = "x", on = "activity" }', "io" },
      bytecode = { string.dump(function() end), "binary" },
    }
    for name, c in pairs(cases) do
      local p, err = policy.load(write(dir, name, c[1]))
      assert.is_nil(p, name)
      assert.matches(c[2], err, 1, true)
    end
  end)

  it("checks the type of every field at load, naming the file and each wrong field at once", function()
    local dir = tmp_home()
    local cases = {
      alert = { 'return policy { name = "a", on = "activity", alert = 12345 }', { "alert: must be a string" } },
      kmh = { 'return policy { name = "k", on = "activity", travel = { max_kmh = "fast" } }',
              { "travel.max_kmh: must be a positive number, got string 'fast'" } },
      many = { [[return policy { name = 7, on = "activity", severity = "dire", alert = {}, new_only = "yes",
                   repeated = { count = 2.5, within = "soon", by = 1 }, travel = { min_km = -1, exclude = "10.0.0.0/8" },
                   match = { kind = { x = 1 }, outcome = {} }, dlp = { detectors = { "dna" }, custom = { { name = "c", pattern = "[a" } },
                   min_counts = { ssn = "two" }, max_size = "big" }, actions = { "alert", "explode" }, colour = "red" }]],
              { "name: a non-empty string", "severity: must be low", "alert: must be a string", "new_only: must be true or false",
                "repeated.within: a duration", "repeated.count: must be a whole number", "repeated.by: names a field",
                "travel.min_km: must be a number of at least 0", "travel.exclude: must be a list", "match.kind: a set of values",
                "match.outcome: a set of values", "dlp.detectors: unknown detector 'dna'", "dlp.custom[1]: pattern 'c'",
                "dlp.min_counts.ssn: must be a whole number", "dlp.max_size: must be a positive", "actions: unknown action 'explode'",
                "colour: unknown field 'colour'" } },
      fn = { 'return policy { name = "f", on = "activity", alert = function() end, travel = { max_kmh = function() end } }',
             { "alert: must be plain data", "travel.max_kmh: must be plain data" } },
      nan = { 'return policy { name = "n", on = "activity", match = { kind = { 0/0 } } }', { "match.kind: values are strings" } },
      huge = { 'return policy { name = "h", on = "activity", alert = ("x"):rep(5000) }', { "alert: longer than 1000" } },
    }
    for name, c in pairs(cases) do
      local path = write(dir, name, c[1])
      local p, err = policy.load(path)
      assert.is_nil(p, name)
      assert.equal(path .. ": ", err:sub(1, #path + 2), name)
      assert.is_nil(err:find("\n"), name)
      for _, want in ipairs(c[2]) do assert.truthy(err:find(want, 1, true), name .. ": " .. want .. " not in " .. err) end
    end
  end)

  it("runs each policy protected: one that raises in the engine is disabled with an alert, the others run", function()
    local dir = tmp_home()
    local bad = assert(policy.load(write(dir, "travel2", 'return policy { name = "t", on = "activity", travel = { min_km = 1 } }')))
    local titled = assert(policy.load(write(dir, "titled", 'return policy { name = "t", on = "activity", alert = "{actor}" }')))
    bad.travel.max_kmh = "fast"          -- what a check at load would refuse: the engine raises on it
    titled.alert = 12345
    local list = { bad, titled, only("suspended_user_activity")[1] }
    -- (one alert an hour per account: the second sign-in is an hour later)
    local feed = { signin("u30", "success", 1, { lat = 48.85, lon = 2.35 }), signin("u30", "success", 3602, { lat = 40.71, lon = -74.0 }) }
    assert.equal(2, policy.feed(st, inst, list, "activities", feed))
    assert.equal(2, #alerts("suspended_user_activity"))
    local failed = st.db:query("SELECT name, last_error FROM policies WHERE status = 'failed' ORDER BY name")
    assert.equal(2, #failed)
    assert.equal("titled", failed[1].name); assert.equal("travel2", failed[2].name)
    assert.matches("^error: ", failed[2].last_error)
    assert.equal(2, #st.db:query("SELECT * FROM alerts WHERE policy = 'cachost' AND title LIKE 'policy % disabled: %'"))
    -- disabled: the next page runs the others only
    assert.equal(1, policy.feed(st, inst, list, "activities", { signin("u30", "success", 3600 * 3) }))
    assert.equal(2, #st.db:query("SELECT * FROM alerts WHERE policy = 'cachost'"))
    assert.equal(3, #alerts("suspended_user_activity"))
  end)

  it("enforce mode goes through the limits and the kill switch", function()
    local p = only("suspended_user_activity")[1]
    p.actions = { "alert", "suspend_user" }
    p.mode = "enforce"
    governance.pause("test")
    policy.feed(st, inst, { p }, "activities", { signin("u30", "success", 1) })
    local g = st.db:query("SELECT * FROM governance_actions WHERE policy = 'suspended_user_activity'")
    assert.equal("held", g[1].mode)
    assert.matches("paused", g[1].error)
    assert.equal(1, #st.db:query("SELECT * FROM alerts WHERE title LIKE 'governance action held%'"))
    governance.resume()
    local saved = governance.limits.max_user_share
    governance.limits.max_user_share = 0.01       -- 1 of 30 users is already over it
    policy.feed(st, inst, { p }, "activities", { signin("u30", "success", 3600 * 5) })   -- the next hour's alert
    governance.limits.max_user_share = saved
    g = st.db:query("SELECT * FROM governance_actions WHERE policy = 'suspended_user_activity' ORDER BY id")
    assert.equal("held", g[2].mode)
    assert.matches("share limit", g[2].error)
  end)
end)
