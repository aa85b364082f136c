-- connect.lua — connecting an instance: the provider's own authorization flow, then a first fetch of
-- the users.  Token schemes are tested with a real call; OAuth authorization code runs the consent in
-- the user's browser with a redirect to a loopback server of ours (state and PKCE checked).
local sdk = require "sdk"
local auth = require "sdk.auth"
local runtime = require "runtime"
local sync = require "sync"

local M = {}

-- connect.run(inst, {say = fn(line), port = n, timeout = s}) -> true | nil, err
function M.run(inst, opts)
  opts = opts or {}
  local say = opts.say or function() end
  local c, err = sdk.load(inst.app)
  if not c then return nil, err end
  local scheme = auth.scheme(c, inst)
  if scheme.type == "oauth2" and scheme.grant == "device_code" then
    local ctx = sync.context(runtime.store(), inst, "connect")
    local d, poll = auth.device_code(ctx.client, scheme)
    if not d then return nil, poll end
    say(("Open %s and enter the code %s to authorize cachost."):format(d.verification_uri, d.user_code))
    local t, perr = poll()
    if not t then return nil, perr end
    say("authorized.")
  elseif scheme.type == "oauth2" and (scheme.grant or "authorization_code") == "authorization_code" then
    local srv, lerr = server.listen { host = "127.0.0.1", port = opts.port or 0 }
    if not srv then return nil, "cannot listen for the redirect: " .. tostring(lerr) end
    local ctx = sync.context(runtime.store(), inst, "connect")
    local url, exchange = auth.authorization_code(ctx.client, scheme, srv.url .. "/callback")
    local done = sched.cond()
    srv:route("GET", "/callback", function(req)
      local t, xerr = exchange(req.query)
      done:signal(t ~= nil, xerr)
      if not t then return 400, "cachost could not connect: " .. tostring(xerr) .. "\n" end
      return 200, "cachost is connected. You can close this window.\n", { ["Content-Type"] = "text/plain" }
    end)
    say("Open this URL in a browser to authorize cachost:")
    say(url)
    local ok, xerr = done:wait(opts.timeout or 600)
    sched.sleep(0.5)        -- let the browser receive its answer before the listener goes away
    srv:close()
    if not ok then return nil, xerr == "timeout" and "no authorization within the time allowed" or xerr end
    say("authorized.")
  end
  -- admin consent (Microsoft): an administrator grants the app its permissions for the whole tenant
  -- in the browser once; app-only tokens (client credentials) work from then on
  if scheme.admin_consent then
    local srv, lerr = server.listen { host = "127.0.0.1", port = opts.port or 0 }
    if not srv then return nil, "cannot listen for the redirect: " .. tostring(lerr) end
    local state = crypto.b64url(crypto.random(16))
    local url = scheme.admin_consent(inst.settings) .. "?" .. http.form {
      client_id = inst.settings[scheme.client_id or "client_id"], redirect_uri = srv.url .. "/callback", state = state }
    local done = sched.cond()
    srv:route("GET", "/callback", function(req)
      local q = req.query
      local ok = q.state and crypto.equal(q.state, state) and q.admin_consent == "True"
      local why = not (q.state and crypto.equal(q.state, state)) and "auth: state mismatch (forged redirect?)"
        or not ok and ("auth: consent refused: " .. tostring(q.error_description or q.error or "no admin_consent"))
      done:signal(ok, why)
      return ok and 200 or 400, ok and "cachost has the administrator's consent. You can close this window.\n" or (why .. "\n"),
        { ["Content-Type"] = "text/plain" }
    end)
    say("Open this URL as an administrator to grant cachost its permissions:")
    say(url)
    local ok, why = done:wait(opts.timeout or 600)
    sched.sleep(0.5)        -- let the browser receive its answer before the listener goes away
    srv:close()
    if not ok then return nil, why == "timeout" and "no consent within the time allowed" or why end
    say("consent granted.")
  end

  -- the credentials work when the connector's test (or a first listing of users) does
  if c.test then
    local ok, terr = pcall(c.test, sync.context(runtime.store(), inst, "connect"))
    if not ok then inst:set_status(sync.status_of(terr)); return nil, tostring(terr) end
  end
  local streams = c.streams.users and { "users" } or nil
  if streams then
    local results, ok = runtime.sync(inst, { streams = streams })
    if not ok then return nil, tostring(results[#results].error) end
    say(("connected: %s users fetched"):format(results[1].counts.users and (results[1].counts.users.added + results[1].counts.users.changed + results[1].counts.users.unchanged) or 0))
  end
  inst:set_status("connected")
  return true
end

return M
