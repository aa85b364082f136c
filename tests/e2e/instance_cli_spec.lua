-- instance_cli_spec.lua — `cachost instance`, `cachost query` and `cachost vault` end to end, on the built
-- binary with a temporary CACHOST_HOME: every subcommand, the single-instance rule, secrets never in the
-- output nor in the database bytes, and the bad inputs (unknown app, duplicate name, missing / mistyped
-- settings, wrong master key, foreign and newer databases, SQL errors, writes through query).
local root = (host and host.root) or "."
local bin = os.getenv("CACHOST_BIN") or (root .. "/cachost")

local SECRET = "tok-" .. tostring(os.time()) .. "-Zq8v"

local function slurp(path)
  local f = io.open(path, "rb"); if not f then return "" end
  local s = f:read("a"); f:close(); return s
end

local home
-- run(args, {stdin=, env=}) -> rc, stdout, stderr
local function run(args, o)
  o = o or {}
  local out, err = home .. "/.out", home .. "/.err"
  local env = "CACHOST_HOME='" .. home .. "' " .. require("helpers").FIXTURE_APPS .. " "
  for k, v in pairs(o.env or {}) do env = env .. k .. "='" .. v .. "' " end
  local input = "/dev/null"
  if o.stdin then
    input = home .. "/.in"
    local f = assert(io.open(input, "wb")); f:write(o.stdin); f:close()
  end
  local ok, how, rc = os.execute(("env -u CACHOST_MASTER_KEY %s %s %s <%s >%s 2>%s"):format(env, bin, args, input, out, err))
  return rc, slurp(out), slurp(err)
end

local function add_a()
  local rc, out, err = run("instance add test --name prod --set domain=acme.test --set api_token=" .. SECRET)
  assert.equal(0, rc, err)
  return out
end

describe("cachost instance", function()
  before_each(function()
    home = os.tmpname(); os.remove(home); os.execute("mkdir -p '" .. home .. "'")
  end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)

  it("adds, lists, shows — secrets only as ******** and never in plaintext in the database", function()
    assert.matches("added instance prod %(test%)", add_a())
    local rc, out = run("instance list")
    assert.equal(0, rc)
    assert.matches("NAME%s+APP%s+STATUS", out)
    assert.matches("prod%s+test%s+new", out)
    rc, out = run("instance show prod")
    assert.equal(0, rc)
    assert.matches("settings.api_token%s+%*%*%*%*%*%*%*%*", out)
    assert.matches("settings.domain%s+acme.test", out)
    rc, out = run("instance show prod --format json")
    assert.equal("********", json.decode(out).settings.api_token)
    for _, args in ipairs { "instance list", "instance list -f json", "instance list -f csv", "instance show prod",
                            "query 'SELECT * FROM instances' -f json", "vault status" } do
      local r, o, e = run(args)
      assert.equal(0, r, args .. ": " .. e)
      assert.is_nil((o .. e):find(SECRET, 1, true), args)
    end
    local bytes = slurp(home .. "/cachost.db") .. slurp(home .. "/cachost.db-wal")
    assert.truthy(#bytes > 4096)
    assert.is_nil(bytes:find(SECRET, 1, true))
    assert.equal("384", tostring(host.stat(home .. "/master.key").mode))
    os.execute(("CACHOST_HOME='%s/new/home' %s instance list >/dev/null"):format(home, bin))
    assert.equal(448, host.stat(home .. "/new/home").mode)
  end)

  it("describes the store with cachost schema, without the vault's table", function()
    add_a()
    local rc, out = run("schema")
    assert.equal(0, rc)
    assert.matches("users%s+accounts of each instance", out)
    assert.is_nil(out:find("secrets", 1, true))
    rc, out = run("schema users -f csv")
    assert.equal(0, rc)
    assert.matches("\nstatus,TEXT,active, suspended", out:gsub('"', ""))
    local err
    rc, out, err = run("schema secrets")
    assert.equal(1, rc); assert.matches("no table 'secrets'", err)
    rc, out, err = run("query 'PRAGMA table_info(users)' -f csv")
    assert.equal(0, rc, err); assert.matches("email", out)
  end)

  it("lists as json and csv", function()
    add_a()
    assert.equal(0, (run("instance add test --name dev --set domain=d --set api_token=x --set page_size=50")))
    local rc, out = run("instance list --format json")
    assert.equal(0, rc)
    local list = json.decode(out)
    assert.equal(2, #list)
    assert.same({ "dev", "prod" }, { list[1].name, list[2].name })
    assert.equal(0, list[1].users)
    rc, out = run("instance list --format csv")
    assert.equal("name,app,status,last_scan,users,activities,files\ndev,test,new,,0,0,0\nprod,test,new,,0,0,0\n", out)
    rc = run("instance list --format xml")
    assert.equal(2, rc)
  end)

  it("validates settings against the connector and names what is wrong", function()
    local rc, _, err = run("instance add test --name x --set domain=d")
    assert.equal(1, rc); assert.matches("missing setting 'api_token'", err)
    rc, _, err = run("instance add test --name x --set domain=d --set api_token=t --set page_size=many")
    assert.equal(1, rc); assert.matches("setting 'page_size' must be an integer, not 'many'", err)
    rc, _, err = run("instance add test --name x --set domain=d --set api_token=t --set verbose=maybe")
    assert.equal(1, rc); assert.matches("'verbose' must be true or false", err)
    rc, _, err = run("instance add test --name x --set domain=d --set api_token=t --set colour=red")
    assert.equal(1, rc); assert.matches("unknown setting 'colour' for app test", err)
    rc, _, err = run("instance add no-such-app --name x")
    assert.equal(1, rc); assert.matches("unknown app 'no%-such%-app'", err)
    rc, _, err = run("instance add test --name 'bad name' --set domain=d --set api_token=t")
    assert.equal(1, rc); assert.matches("invalid instance name", err)
    rc, _, err = run("instance add test --set domain=d")
    assert.equal(2, rc); assert.matches("missing %-%-name", err)
    rc, _, err = run("instance add test --name y --set novalue")
    assert.equal(2, rc); assert.matches("KEY=VALUE", err)
    rc, _, err = run("instance frobnicate")
    assert.equal(2, rc); assert.matches("unknown subcommand", err)
    assert.equal(0, (run("instance --help")))
    add_a()
    rc, _, err = run("instance add test --name prod --set domain=d --set api_token=t")
    assert.equal(1, rc); assert.matches("already exists", err)
    local _, out = run("query 'SELECT count(*) AS n FROM instances' -f csv")
    assert.equal("n\n1\n", out)
  end)

  it("knows the fixture apps only through CACHOST_CONNECTORS: production code has no test app", function()
    local out = home .. "/.plain"
    local ok = os.execute(("env -u CACHOST_CONNECTORS CACHOST_HOME='%s' %s instance add test --name t --set domain=d "
      .. "--set api_token=x >%s 2>&1"):format(home, bin, out))
    assert.is_not_true(ok)
    assert.matches("unknown app 'test'", slurp(out))
    local rc, list = run("connectors --format json")
    assert.equal(0, rc)
    assert.truthy(list:find('"app":"test-single"', 1, true))
    assert.truthy(list:find('"app":"okta"', 1, true))      -- the shipped connectors are still found
  end)

  it("takes missing values from the environment or stdin", function()
    local rc, _, err = run("instance add test --name e --set domain=d", { env = { CACHOST_SET_API_TOKEN = SECRET } })
    assert.equal(0, rc, err)
    rc, _, err = run("instance add test --name s", { stdin = "domain = from-stdin\napi_token=" .. SECRET .. "2\n" })
    assert.equal(0, rc, err)
    local _, out = run("instance show s -f json")
    assert.equal("from-stdin", json.decode(out).settings.domain)
    -- the secrets decrypt to what was given (checked inside the host, never printed)
    local f = assert(io.open(home .. "/check.lua", "w"))
    f:write(([[
      local st = assert(require("store").open(host.home))
      local inst = require "instances"
      local a = inst.settings(st, inst.get(st, "e"))
      local b = inst.settings(st, inst.get(st, "s"))
      print(a.api_token == %q, b.api_token == %q)
    ]]):format(SECRET, SECRET .. "2"))
    f:close()
    rc, out, err = run("script " .. home .. "/check.lua")
    assert.equal(0, rc, err)
    assert.equal("true\ttrue\n", out)
  end)

  it("allows one instance of a single-instance app, any number of others", function()
    assert.equal(0, (run("instance add test-single --name one --set tenant_id=t --set client_secret=c")))
    local rc, _, err = run("instance add test-single --name two --set tenant_id=t2 --set client_secret=c")
    assert.equal(1, rc)
    assert.matches("allows a single instance, and 'one' already is one", err)
    for i = 1, 3 do
      assert.equal(0, (run("instance add test --name t" .. i .. " --set domain=d --set api_token=x")))
    end
    -- once the first is removed, a new one may be added
    assert.equal(0, (run("instance remove one --yes")))
    assert.equal(0, (run("instance add test-single --name two --set tenant_id=t2 --set client_secret=c")))
  end)

  it("edits, renames, disables and enables", function()
    add_a()
    local rc, _, err = run("instance edit prod --set page_size=100 --set api_token=new-" .. SECRET)
    assert.equal(0, rc, err)
    rc, _, err = run("instance edit prod --set page_size=x")
    assert.equal(1, rc); assert.matches("page_size", err)
    rc = run("instance edit prod")
    assert.equal(2, rc)
    local _, out = run("instance show prod -f json")
    local s = json.decode(out)
    assert.equal(100, s.settings.page_size)
    assert.equal("acme.test", s.settings.domain)
    assert.equal("********", s.settings.api_token)
    assert.equal(0, (run("instance rename prod production")))
    rc, _, err = run("instance show prod")
    assert.equal(1, rc); assert.matches("no instance named 'prod'", err)
    assert.equal(0, (run("instance disable production")))
    _, out = run("instance list -f json")
    assert.equal("disabled", json.decode(out)[1].status)
    _, out = run("vault status")
    assert.matches("secrets:%s+1\n", out)                -- credentials kept
    assert.equal(0, (run("instance enable production")))
    _, out = run("instance list -f json")
    assert.equal("new", json.decode(out)[1].status)
    rc, _, err = run("instance rename production 'no good'")
    assert.equal(1, rc)
  end)

  it("removes an instance keeping its data, or purges it", function()
    add_a()
    assert.equal(0, (run("instance add test --name other --set domain=d --set api_token=x")))
    local f = assert(io.open(home .. "/seed.lua", "w"))
    f:write([[
      local st = assert(require("store").open(host.home))
      local inst = require "instances"
      for _, n in ipairs { "prod", "other" } do
        local id = inst.get(st, n).id
        assert(st:upsert("users", id, { { ext_id = "u1", email = "a@" .. n }, { ext_id = "u2", email = "b@" .. n } }))
        assert(st:upsert("activities", id, { { ext_id = "e1", time = "2024-01-01T00:00:00Z", action = "login" } }))
      end
    ]])
    f:close()
    local rc, _, err = run("script " .. home .. "/seed.lua")
    assert.equal(0, rc, err)
    local _, out = run("instance list -f json")
    assert.equal(2, json.decode(out)[1].users)
    assert.equal(0, (run("instance remove prod")))      -- not a terminal: no question asked
    _, out = run("query 'SELECT count(*) AS n FROM users' -f csv")
    assert.equal("n\n4\n", out)
    _, out = run("vault status")
    assert.matches("secrets:%s+1\n", out)                 -- its credentials are gone
    assert.equal(0, (run("instance add test --name prod --set domain=d --set api_token=x")))   -- name free again
    assert.equal(0, (run("instance remove other --purge --yes")))
    _, out = run("query \"SELECT count(*) AS n FROM users WHERE email LIKE '%@other'\" -f csv")
    assert.equal("n\n0\n", out)
    _, out = run("query 'SELECT count(*) AS n FROM activities' -f csv")
    assert.equal("n\n1\n", out)
    rc, _, err = run("instance remove nobody")
    assert.equal(1, rc); assert.matches("no instance named 'nobody'", err)
  end)
end)

describe("cachost query", function()
  before_each(function()
    home = os.tmpname(); os.remove(home); os.execute("mkdir -p '" .. home .. "'")
  end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)

  it("prints tables, json and csv, and binds parameters", function()
    add_a()
    local rc, out = run("query \"SELECT name, app, 1 + 1 AS two, NULL AS empty FROM instances\"")
    assert.equal(0, rc)
    assert.equal("NAME  APP   TWO  EMPTY\nprod  test  2\n", out)
    rc, out = run("query 'SELECT name, NULL AS n, 1.5 AS f FROM instances' --format json")
    assert.same({ { name = "prod", n = json.null, f = 1.5 } }, json.decode(out))
    rc, out = run("query \"SELECT 'a,b' AS x, 'say ' || char(34) || 'hi' || char(34) AS y\" -f csv")
    assert.equal('x,y\n"a,b","say ""hi"""\n', out)
    rc, out = run("query 'SELECT ? AS p' -f csv hello")
    assert.equal("p\nhello\n", out)
    rc, out = run("query 'SELECT * FROM instances WHERE 0' -f json")
    assert.equal("[]\n", out)
  end)

  it("reports SQL errors and refuses writes", function()
    add_a()
    local rc, _, err = run("query 'SELEKT 1'")
    assert.equal(1, rc); assert.matches("syntax error", err)
    rc, _, err = run("query 'SELECT * FROM nope'")
    assert.equal(1, rc); assert.matches("no such table: nope", err)
    for _, sql in ipairs { "DELETE FROM instances", "UPDATE instances SET name = 'x'", "DROP TABLE users",
                           "PRAGMA query_only = 0", "ATTACH '" .. home .. "/x.db' AS x" } do
      rc, _, err = run('query "' .. sql .. '"')
      assert.equal(1, rc, sql); assert.matches("read%-only", err)
    end
    local _, out = run("query 'SELECT name FROM instances' -f csv")
    assert.equal("name\nprod\n", out)
    rc = run("query")
    assert.equal(2, rc)
    rc = run("query 'SELECT 1' -f yaml")
    assert.equal(2, rc)
  end)

  it("refuses a foreign or newer database and leaves it as it was", function()
    local junk = ("my notes, not a database\n"):rep(200)
    local f = assert(io.open(home .. "/cachost.db", "wb")); f:write(junk); f:close()
    local rc, _, err = run("instance list")
    assert.equal(1, rc); assert.matches("not a SQLite database", err)
    rc, _, err = run("query 'SELECT 1'")
    assert.equal(1, rc); assert.matches("notadb", err)
    assert.equal(junk, slurp(home .. "/cachost.db"))
    os.remove(home .. "/cachost.db")
    add_a()
    os.execute("sqlite3 '" .. home .. "/cachost.db' 'PRAGMA user_version = 99'")
    rc, _, err = run("instance list")
    assert.equal(1, rc); assert.matches("newer than this cachost", err)
  end)
end)

describe("cachost vault", function()
  before_each(function()
    home = os.tmpname(); os.remove(home); os.execute("mkdir -p '" .. home .. "'")
  end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)

  it("rotates the master key and keeps every secret readable", function()
    add_a()
    local key1 = slurp(home .. "/master.key")
    local rc, out, err = run("vault rotate")
    assert.equal(0, rc, err)
    assert.matches("re%-encrypted 1 secret under key", out)
    assert.are_not.equal(key1, slurp(home .. "/master.key"))
    local f = assert(io.open(home .. "/check.lua", "w"))
    f:write(("local st = assert(require('store').open(host.home)); local i = require 'instances'\n"
      .. "print(assert(i.settings(st, i.get(st, 'prod'))).api_token == %q)"):format(SECRET))
    f:close()
    rc, out, err = run("script " .. home .. "/check.lua")
    assert.equal(0, rc, err); assert.equal("true\n", out)
  end)

  it("fails clearly with a wrong master key and changes nothing", function()
    local key = crypto.hex(crypto.random(32))
    local rc, _, err = run("instance add test --name k --set domain=d --set api_token=" .. SECRET,
      { env = { CACHOST_MASTER_KEY = key } })
    assert.equal(0, rc, err)
    assert.is_nil(host.stat(home .. "/master.key"))     -- the env key: no key file written
    local before = slurp(home .. "/cachost.db")
    rc, _, err = run("instance edit k --set api_token=other", { env = { CACHOST_MASTER_KEY = crypto.hex(crypto.random(32)) } })
    assert.equal(1, rc); assert.matches("wrong master key", err)
    rc, _, err = run("vault status")                    -- no env key, no key file: refuses to mint one
    assert.equal(1, rc); assert.matches("no master key", err)
    assert.is_nil(host.stat(home .. "/master.key"))
    rc, _, err = run("vault rotate", { env = { CACHOST_MASTER_KEY = key } })
    assert.equal(1, rc); assert.matches("CACHOST_NEW_MASTER_KEY", err)
    local new = crypto.hex(crypto.random(32))
    rc, _, err = run("vault rotate", { env = { CACHOST_MASTER_KEY = key, CACHOST_NEW_MASTER_KEY = new } })
    assert.equal(0, rc, err)
    rc, _, err = run("vault status", { env = { CACHOST_MASTER_KEY = new } })
    assert.equal(0, rc, err)
    rc, _, err = run("vault status", { env = { CACHOST_MASTER_KEY = key } })
    assert.equal(1, rc); assert.matches("wrong master key", err)
    assert.truthy(#before > 0)
  end)
end)
