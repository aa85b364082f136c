-- sdk/auth: HTTP Basic with an account's name and password, and the OAuth resource owner password grant
-- (obtained without a browser, refreshed, asked for again with the password when the refresh is refused).
local Client = require "sdk.client"
local auth = require "sdk.auth"

-- An instance as the client sees it: settings and a vault in memory.
local n = 0
local function instance(settings, secrets)
  n = n + 1
  return { id = -1000 - n, name = "auth-" .. n, app = "x", settings = settings,
    secret = function(_, k) if secrets[k] then return secrets[k] end return nil, "missing: " .. k end,
    set_secret = function(_, k, v) secrets[k] = v end, set_granted = function() end }
end

local function client(connector, inst, url)
  local c = Client.for_instance(inst, connector, auth.for_connector(connector))
  c.base, c.insecure = url, true
  return c
end

describe("sdk auth: basic and the password grant", function()
  local srv, seen, refuse_refresh
  setup(function()
    srv = assert(server.listen { port = 0 })
    srv:route("POST", "/token", function(req)
      local f = {}
      for k, v in req.body:gmatch("([^&=]+)=([^&]*)") do f[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end):gsub("+", " ") end
      seen[#seen + 1] = { form = f, ctype = req.headers["content-type"] }
      if f.grant_type == "refresh_token" and refuse_refresh then return 401, json.encode { error = "invalid_grant" } end
      return 200, json.encode { access_token = "at-" .. #seen, refresh_token = f.refresh_token or ("rt-" .. #seen), expires_in = 1799,
        token_type = "Bearer" }
    end)
    srv:route("GET", "/echo", function(req) return 200, json.encode { authorization = req.headers["authorization"] } end)
  end)
  teardown(function() srv:close() end)
  before_each(function() seen, refuse_refresh = {}, false end)

  it("basic: the account's name and password on every request", function()
    local c = { app = "x", auth = { type = "basic" } }
    local r = assert(client(c, instance({ username = "svc.user" }, { password = "p:w d" }), srv.url):request("GET", "/echo"))
    assert.equal("Basic " .. crypto.b64("svc.user:p:w d"), r.data.authorization)
    local _, err = client(c, instance({ username = "svc" }, {}), srv.url):request("GET", "/echo")
    assert.matches("^auth: secret 'password' is not set", err)
    _, err = client(c, instance({ username = "a:b" }, { password = "x" }), srv.url):request("GET", "/echo")
    assert.matches("^auth: setting 'username' must name the account", err)
  end)

  it("password grant: obtained at once, refreshed, and asked again when the refresh is refused", function()
    local c = { app = "x", auth = { type = "oauth2", grant = "password", token_url = "/token" } }
    local secrets = { password = "pw", client_secret = "cs" }
    local cl = client(c, instance({ username = "svc", client_id = "cid" }, secrets), srv.url)
    local r = assert(cl:request("GET", "/echo"))
    assert.equal("Bearer at-1", r.data.authorization)
    assert.equal("application/x-www-form-urlencoded", seen[1].ctype)
    assert.same({ grant_type = "password", username = "svc", password = "pw", client_id = "cid", client_secret = "cs" }, seen[1].form)
    assert.equal("rt-1", secrets.refresh_token)
    secrets.token_expires_at = tostring(sched.time() + 5)          -- about to expire: refreshed
    r = assert(cl:request("GET", "/echo"))
    assert.equal("refresh_token", seen[2].form.grant_type)
    assert.equal("rt-1", seen[2].form.refresh_token)
    assert.equal("Bearer at-2", r.data.authorization)
    refuse_refresh = true                                           -- the refresh token expired
    secrets.token_expires_at = tostring(sched.time() + 5)
    r = assert(cl:request("GET", "/echo"))
    assert.equal("password", seen[4].form.grant_type)
    assert.equal("Bearer at-4", r.data.authorization)
  end)
end)
