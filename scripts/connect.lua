-- connect.lua — connecting an instance: the provider's own authorization flow, then a first fetch of
-- the users.  Token schemes are tested with a real call; OAuth authorization code runs the consent in
-- the user's browser with a redirect to a loopback server of ours (state and PKCE checked).
local sdk = require "sdk"
local auth = require "sdk.auth"
local runtime = require "runtime"
local context = require "sdk.context"
local util = require "sdk.util"

local M = {}

-- A round trip through the user's browser: a loopback listener takes the redirect to
-- <listener>/callback.  url_for(callback) -> the URL to open; on_callback(req) -> ok, why, page (the text
-- the browser shows; why when not ok).  -> true | nil, why ("timeout" after opts.timeout, default 600 s)
local function browser_redirect(opts, say, prompt, url_for, on_callback)
  local srv, lerr = server.listen { host = "127.0.0.1", port = opts.port or 0 }
  if not srv then return nil, "cannot listen for the redirect: " .. tostring(lerr) end
  local url = url_for(srv.url .. "/callback")
  local done = sched.cond()
  srv:route("GET", "/callback", function(req)
    local ok, why, page = on_callback(req)
    done:signal(ok, why)
    return ok and 200 or 400, (page or why) .. "\n", { ["Content-Type"] = "text/plain" }
  end)
  say(prompt)
  say(url)
  local ok, why = done:wait(opts.timeout or 600)
  sched.sleep(0.5)        -- let the browser receive its answer before the listener goes away
  srv:close()
  if not ok then return nil, why end
  return true
end

-- connect.run(inst, {say = fn(line), port = n, timeout = s}) -> true | nil, err
function M.run(inst, opts)
  opts = opts or {}
  local say = opts.say or function() end
  local c, err = sdk.load(inst.app)
  if not c then return nil, err end
  local scheme = auth.scheme(c, inst)
  if scheme.type == "oauth2" and scheme.grant == "device_code" then
    local d, poll = auth.device_code(context.client(context.new(runtime.store(), inst, "connect")), scheme)
    if not d then return nil, poll end
    say(("Open %s and enter the code %s to authorize cachost."):format(d.verification_uri, d.user_code))
    local t, perr = poll()
    if not t then return nil, perr end
    say("authorized.")
  elseif scheme.type == "oauth2" and (scheme.grant or "authorization_code") == "authorization_code" then
    local exchange
    local ok, why = browser_redirect(opts, say, "Open this URL in a browser to authorize cachost:", function(callback)
      local url
      url, exchange = auth.authorization_code(context.client(context.new(runtime.store(), inst, "connect")), scheme, callback)
      return url
    end, function(req)
      local t, xerr = exchange(req.query)
      if not t then return false, xerr, "cachost could not connect: " .. tostring(xerr) end
      return true, nil, "cachost is connected. You can close this window."
    end)
    if not ok then return nil, why == "timeout" and "no authorization within the time allowed" or why end
    say("authorized.")
  end
  -- admin consent (Microsoft): an administrator grants the app its permissions for the whole tenant
  -- in the browser once; app-only tokens (client credentials) work from then on
  if scheme.admin_consent then
    local state = crypto.b64url(crypto.random(16))
    local ok, why = browser_redirect(opts, say, "Open this URL as an administrator to grant cachost its permissions:",
      function(callback)
        return scheme.admin_consent(inst.settings) .. "?" .. http.form {
          client_id = inst.settings[scheme.client_id or "client_id"], redirect_uri = callback, state = state }
      end, function(req)
        local q = req.query
        if not (q.state and crypto.equal(q.state, state)) then return false, "auth: state mismatch (forged redirect?)" end
        if q.admin_consent ~= "True" then
          return false, "auth: consent refused: " .. tostring(q.error_description or q.error or "no admin_consent")
        end
        return true, nil, "cachost has the administrator's consent. You can close this window."
      end)
    if not ok then return nil, why == "timeout" and "no consent within the time allowed" or why end
    say("consent granted.")
  end

  -- the credentials work when the connector's test (or a first listing of users) does
  if c.test then
    local ok, terr = pcall(c.test, context.new(runtime.store(), inst, "connect"))
    if not ok then inst:set_status(context.status_of(util.token_of(terr))); return nil, tostring(terr) end
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
