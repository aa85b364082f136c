-- geoip: MaxMind DB lookups, the test writer checked against libmaxminddb's own mmdblookup, and the
-- impossible-travel policy locating sign-ins that carry an address but no coordinates.
local policy = require "policy"
local store = require "store"
local util = require "sdk.util"
local helpers = require "helpers"
local mmdb = require "mmdb_writer"

local C = mmdb.CITIES
local NETWORKS = {
  { "81.2.69.0/24", mmdb.city(C.paris) },
  { "81.2.69.128/25", mmdb.city(C.versailles) },          -- splits the /24 above
  { "175.16.199.0/24", mmdb.city(C.new_york) },
  { "2001:db8:1::/48", mmdb.city(C.tokyo) },
  { "89.160.20.0/24", mmdb.city(C.tokyo) },
  { "10.0.0.0/8", { country = { iso_code = "ZZ" } } },     -- a record without a location
  { "5.5.5.0/24", mmdb.city { lat = 51.1657, lon = 10.4515, accuracy = 1000, country = "DE" } },  -- country level
}

local function shell(cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local out = f:read("a")
  f:close()
  return out
end

describe("geoip module", function()
  local dir
  setup(function() dir = helpers.tmp_dir() end)

  for _, rs in ipairs { 24, 28, 32 } do
    it(("writes databases that mmdblookup and geoip read alike (%d-bit records)"):format(rs), function()
      local path = mmdb.write(dir .. "/c" .. rs .. ".mmdb", { record_size = rs, networks = NETWORKS })
      assert.matches('"Versailles" <utf8_string>', shell("mmdblookup -f " .. path .. " -i 81.2.69.200 city names en"), 1, true)
      assert.matches('"IDF" <utf8_string>', shell("mmdblookup -f " .. path .. " -i 81.2.69.5 subdivisions 0 iso_code"), 1, true)
      assert.matches("Record size:   " .. rs .. " bits", shell("mmdblookup -v -f " .. path .. " -i 81.2.69.5"), 1, true)
      assert.matches("Could not find an entry", shell("mmdblookup -f " .. path .. " -i 1.1.1.1"), 1, true)
      local db = assert(geoip.open(path))
      assert.same({ lat = 48.8566, lon = 2.3522, accuracy_km = 20, city = "Paris", country = "FR", subdivision = "IDF" },
        db:lookup("81.2.69.5"))
      assert.equal("Versailles", db:lookup("81.2.69.200").city)
      assert.equal("Tokyo", db:lookup("2001:db8:1:2::7").city)
      assert.same({ country = "ZZ" }, db:lookup("10.9.8.7"))
      assert.is_nil(db:lookup("1.1.1.1"))
      assert.is_nil(db:lookup("2001:db8:2::1"))
      local meta = db:metadata()
      assert.equal("GeoLite2-City", meta.database_type)
      assert.equal(1700000000, meta.build_epoch)
      assert.equal(rs, meta.record_size)
      db:close()
    end)
  end

  it("refuses malformed addresses and closed databases", function()
    local db <close> = assert(geoip.open(mmdb.write(dir .. "/m.mmdb", { networks = NETWORKS })))
    for _, bad in ipairs { "nope", "127.1", "", "81.2.69.5/24", "::g", "host.example.com" } do
      local r, err = db:lookup(bad)
      assert.is_nil(r, bad)
      assert.equal("bad_address", err)
    end
    assert.has_error(function() db:lookup({}) end)
    db:close()
    db:close()                              -- closing twice is harmless
    assert.has_error(function() db:lookup("81.2.69.5") end, "geoip: attempt to use a closed database")
    assert.has_error(function() db:metadata() end, "geoip: attempt to use a closed database")
  end)

  it("says why a database cannot be opened", function()
    local r, err = geoip.open(dir .. "/missing.mmdb")
    assert.is_nil(r)
    assert.matches("^geoip: Error opening the specified MaxMind DB file: .*missing%.mmdb %(No such file or directory%)$", err)
    local f = assert(io.open(dir .. "/junk.mmdb", "wb")); f:write(("junk"):rep(100)); f:close()
    r, err = geoip.open(dir .. "/junk.mmdb")
    assert.is_nil(r)
    assert.matches("^geoip: The MaxMind DB file contains invalid metadata", err)
  end)
end)

describe("impossible travel from a MaxMind database", function()
  local st, inst, dir, db_path
  local T0 = math.floor(sched.time()) - 86400
  local seq = 0
  local function signin(actor, ip, s, extra)
    seq = seq + 1
    local r = { ext_id = "g" .. seq, time = util.iso(T0 + s), kind = "signin", outcome = "success", actor = actor,
                actor_id = actor, ip = ip }
    for k, v in pairs(extra or {}) do r[k] = v end
    return { op = "added", row = r }
  end
  local function load(travel)
    local f = assert(io.open(dir .. "/travel.lua", "w"))
    f:write(([[return policy { name = "travel", on = "activity", severity = "high",
      match = { kind = "signin", outcome = "success" }, travel = %s,
      alert = "{actor} signed in from {to} {km} km from {from} ({kmh} km/h)" }]]):format(travel))
    f:close()
    return policy.load(dir .. "/travel.lua")
  end
  local function alerts() return st.db:query("SELECT * FROM alerts WHERE policy = 'travel' ORDER BY id") end

  before_each(function()
    host.home = helpers.tmp_dir()
    package.loaded.runtime = nil
    st = require("runtime").store()
    local now = store.now()
    assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('okta', 'o', '{}', ?, ?)", now, now))
    inst = assert(require("instances").instance(st, "o"))
    dir = helpers.tmp_dir()
    db_path = mmdb.write(dir .. "/GeoLite2-City.mmdb", { networks = NETWORKS })
  end)

  it("fires between the addresses of far-apart cities, with their names in the alert", function()
    local p = assert(load(('{ min_km = 500, geoip = %q }'):format(db_path)))
    assert.equal(1, policy.feed(st, inst, { p }, "activities", {
      signin("ann", "81.2.69.5", 0), signin("ann", "89.160.20.7", 1200) }))
    local a = alerts()
    assert.equal(1, #a)
    assert.matches("^ann signed in from Tokyo, JP 97%d%d km from Paris, FR %(", a[1].title)
    local ev = json.decode(a[1].evidence)
    assert.equal("81.2.69.5", ev.from_ip)
    assert.equal("89.160.20.7", ev.to_ip)
    assert.equal("Tokyo, JP", ev.row.location)
    -- IPv6 too, and a provider's own coordinates still win over the database
    assert.equal(1, policy.feed(st, inst, { p }, "activities", {
      signin("bob", "2001:db8:1::9", 0), signin("bob", "81.2.69.5", 1800, { lat = 40.71, lon = -74.0, location = "NYC" }) }))
    assert.matches("^bob signed in from NYC 108%d%d km from Tokyo, JP", alerts()[2].title)
  end)

  it("does not fire for near cities, slow journeys, unknown or malformed addresses", function()
    local p = assert(load(('{ min_km = 100, geoip = %q }'):format(db_path)))
    assert.equal(0, policy.feed(st, inst, { p }, "activities", {
      signin("cy", "81.2.69.5", 0), signin("cy", "81.2.69.200", 60),                 -- Paris, then Versailles
      signin("di", "81.2.69.5", 0), signin("di", "175.16.199.9", 9 * 3600),         -- a plane can
      signin("ed", "81.2.69.5", 0), signin("ed", "1.1.1.1", 60), signin("ed", "10.1.2.3", 120),
      signin("ed", "not-an-ip", 180), signin("ed", nil, 240) }))
    assert.equal(0, #alerts())
    assert.is_true(p.enabled ~= false)
  end)

  it("takes the accuracy radii off the distance: a country-level location is not a journey", function()
    local p = assert(load(('{ min_km = 500, geoip = %q }'):format(db_path)))
    -- Paris to the middle of Germany is ~600 km, but that record is only good to 1,000 km
    assert.equal(0, policy.feed(st, inst, { p }, "activities", {
      signin("hal", "81.2.69.5", 0), signin("hal", "5.5.5.5", 60) }))
    -- Tokyo is far enough whatever the radii
    assert.equal(1, policy.feed(st, inst, { p }, "activities", { signin("hal", "89.160.20.7", 120) }))
  end)

  it("a database that cannot be opened any more disables the policy with an alert", function()
    local p = assert(load(('{ min_km = 500, geoip = %q }'):format(db_path)))
    p.travel.geoip = dir .. "/gone.mmdb"
    assert.equal(0, policy.feed(st, inst, { p }, "activities", { signin("ivy", "81.2.69.5", 0) }))
    assert.is_false(p.enabled)
    local row = st.db:query("SELECT * FROM policies WHERE name = 'travel'")[1]
    assert.equal("failed", row.status)
    assert.matches("travel.geoip: geoip: Error opening", row.last_error, 1, true)
    assert.equal(1, #st.db:query("SELECT * FROM alerts WHERE policy = 'cachost' AND entity_id = 'travel'"))
  end)

  it("skips excluded ranges", function()
    local p = assert(load(('{ min_km = 500, exclude = { "89.160.20.0/24" }, geoip = %q }'):format(db_path)))
    assert.equal(0, policy.feed(st, inst, { p }, "activities", {
      signin("fay", "81.2.69.5", 0), signin("fay", "89.160.20.7", 600) }))
    -- the excluded sign-in did not become fay's last location either
    assert.equal(1, policy.feed(st, inst, { p }, "activities", { signin("fay", "175.16.199.9", 1200) }))
    assert.matches("from New York, US %d+ km from Paris, FR", alerts()[1].title)
  end)

  it("refuses at load a policy whose database cannot be opened", function()
    local p, err = load(('{ geoip = %q }'):format(dir .. "/nowhere.mmdb"))
    assert.is_nil(p)
    assert.matches("/travel%.lua: travel%.geoip: geoip: Error opening the specified MaxMind DB file: .*nowhere%.mmdb %(No such file", err)
    local f = assert(io.open(dir .. "/bad.mmdb", "wb")); f:write("not a database"); f:close()
    p, err = load(('{ geoip = %q }'):format(dir .. "/bad.mmdb"))
    assert.is_nil(p)
    assert.matches("travel.geoip: geoip: The MaxMind DB file contains invalid metadata", err, 1, true)
    p, err = load("{ geoip = 42 }")
    assert.is_nil(p)
    assert.matches("travel.geoip: a path to a MaxMind DB file expected", err, 1, true)
  end)

  it("a database changed on disk is opened again when the policies are loaded again", function()
    assert(load(('{ min_km = 500, geoip = %q }'):format(db_path)))
    mmdb.write(db_path, { networks = { { "81.2.69.0/24", mmdb.city(C.new_york) }, { "89.160.20.0/24", mmdb.city(C.tokyo) } } })
    local p = assert(load(('{ min_km = 500, geoip = %q }'):format(db_path)))
    assert.equal(1, policy.feed(st, inst, { p }, "activities", {
      signin("gus", "81.2.69.5", 0), signin("gus", "89.160.20.7", 600) }))
    assert.matches("from Tokyo, JP %d+ km from New York, US", alerts()[1].title)
  end)
end)
