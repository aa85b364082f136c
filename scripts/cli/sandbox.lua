-- Sandbox tenants: emulators of the providers' APIs (scripts/sandbox/<provider>/, split by API surface) on
-- loopback, to try cachost, policies and governance safely, and for the tests and the demo.
--
-- Each provider folder with a cli.lua offers apps to this command: cli.lua returns { [app] = { new =
-- function(name, seed, size, opts) -> tenant, credential = function(tenant) -> the line printed,
-- add_lines = function(name, url, tenant) -> { `cachost instance add ...` } } } (secrets through the
-- environment, never argv).
local function available()
  local apps = {}
  for _, dir in ipairs(host.listdir(host.root .. "/scripts/sandbox") or {}) do
    if host.stat(("%s/scripts/sandbox/%s/cli.lua"):format(host.root, dir)) then
      for app, entry in pairs(require("sandbox." .. dir .. ".cli")) do apps[app] = entry end
    end
  end
  local names = {}
  for app in pairs(apps) do names[#names + 1] = app end
  table.sort(names)
  return apps, table.concat(names, ", ")
end

local APPS, HAVE = available()

return {
  summary = "start sandbox tenants (API emulators) and print their URLs",
  usage = ([=[usage: cachost sandbox [APP[:NAME]]... [--port P] [--seed N] [--size N]
Starts one emulated tenant per APP (%s; the same app twice for two tenants, e.g.
github:acme github:globex) on loopback ports P, P+1, ... (default: free ports) and prints one line
per tenant: app, name, url and the credential to use (GitHub tenants also accept the OAuth web flow
for client id sandbox-NAME, client secret sandbox-secret-NAME), and on stderr the `cachost instance add`
command that connects an instance to it.  Serves until SIGINT/SIGTERM.
  --seed N   deterministic data (default 1)     --size N   users per tenant (default 50)
  --events N  System Log events of an Okta tenant (default 200 a day over 8 days), Management Activity
              records of a Microsoft tenant (default 2,000 a day over 7 days)
  --rate-limit N  requests a minute per API bucket (default: the provider's usual)
  --page-max N    items a page at most, whatever the client asks (default: the provider's maximum)
  --people FILE   e-mail addresses (one a line) an HR tenant (workday) employs first, e.g. an Okta
                  tenant's users: the same person in both apps
  --frozen        the tenants' clocks stay at their start: no content becomes available as time passes
Controls (not part of the providers' APIs): POST /_sandbox/bruteforce (form: login, failures) appends
failed sign-ins then a success; GET /_sandbox/count/WHAT (users, events...) the ground truth;
GET /_sandbox/truth the provider ids of every entity a complete sync holds ({"users": [...], ...});
POST /_sandbox/fault {"kind": "429"|"500"|"reset"|..., "count": N}.]=]):format(HAVE),
  options = { { "port", arg = true, short = "p" }, { "seed", arg = true }, { "size", arg = true }, { "events", arg = true }, { "rate-limit", arg = true }, { "page-max", arg = true }, { "people", arg = true }, { "frozen" } },
  run = function(opts, args, ctx)
    if #args == 0 then args = { "okta", "github" } end
    local port = tonumber(opts.port or 0)
    local seed, size = tonumber(opts.seed or 1), tonumber(opts.size or 50)
    if not port or not seed or not size then return ctx.usage_error(ctx.load_command("sandbox"), "--port, --seed and --size take numbers") end
    local servers, pumps, stops = {}, {}, {}
    for i, spec in ipairs(args) do
      local app, name = spec:match("^([%w_%-]+):?([%w_%-]*)$")
      local entry = APPS[app or ""]
      if not entry then return ctx.fail("no sandbox tenant for '%s' (have: %s)", spec, HAVE) end
      name = name ~= "" and name or app
      local tenant = entry.new(name, seed + i, size, opts)
      local srv, err = server.listen { host = "127.0.0.1", port = port > 0 and port + i - 1 or 0 }
      if not srv then return ctx.fail("cannot listen: %s", err) end
      -- controls of the emulator itself (not part of the provider's API), for demos and manual tests
      srv:route("POST", "/_sandbox/bruteforce", function(req)
        local q = {}
        for k, v in req.body:gmatch("([^&=]+)=([^&]*)") do q[k] = v:gsub("%%40", "@") end
        if not q.login or not tenant.simulate_bruteforce then return 400, { error = "login required (okta tenants)" } end
        tenant:simulate_bruteforce(q.login, tonumber(q.failures) or 10)
        return 200, json.encode { ok = true }
      end)
      srv:route("GET", "/_sandbox/count/:what", function(req)
        local ok, n = pcall(tenant.count, tenant, req.params.what)
        if not ok then return 404, json.encode { error = tostring(n) } end
        return 200, json.encode { count = n }
      end)
      srv:route("GET", "/_sandbox/truth", function()
        if not tenant.truth then return 404, json.encode { error = "no ground truth for " .. app } end
        return 200, json.encode(tenant:truth())
      end)
      srv:route("POST", "/_sandbox/fault", function(req)
        local f = json.decode(req.body)
        if type(f) ~= "table" or not f.kind then return 400, json.encode { error = 'body: {"kind": "429", "count": 3}' } end
        tenant:fault(f)
        return 200, json.encode { ok = true }
      end)
      if opts["rate-limit"] then tenant:set_rate_limit(tonumber(opts["rate-limit"]), 60) end
      tenant.page_max = tonumber(opts["page-max"])
      tenant.frozen = opts.frozen and true or false
      tenant:mount(srv)
      servers[#servers + 1] = srv
      -- content that becomes available as real time passes is pushed to Management webhooks (microsoft)
      if tenant.mgmt_pump then pumps[#pumps + 1] = sched.every(30, function() tenant:mgmt_pump() end) end
      ctx.out("%s\t%s\t%s\t%s\n", app, name, srv.url, entry.credential(tenant))
      -- entry.stop(tenant): what a tenant leaves behind goes when the sandbox stops (Google's key files)
      if entry.stop then stops[#stops + 1] = function() entry.stop(tenant) end end
      for _, line in ipairs(entry.add_lines(name == app and "sandbox" or name, srv.url, tenant)) do ctx.err("  %s\n", line) end
    end
    io.stdout:flush()
    sched.wait_stop()
    for _, p in ipairs(pumps) do p:cancel() end
    for _, s in ipairs(servers) do s:close() end
    for _, stop in ipairs(stops) do stop() end
    return 0
  end,
}
