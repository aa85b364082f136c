-- Sandbox tenants: emulators of the providers' APIs (scripts/sandbox/<provider>/, split by API surface) on
-- loopback, to try cachost, policies and governance safely, and for the tests and the demo.
local AVAILABLE = { okta = "sandbox.okta", github = "sandbox.github", box = "sandbox.box",
                    microsoft = "sandbox.microsoft", aws = "sandbox.aws", ["google-workspace"] = "sandbox.google",
                    gcp = "sandbox.google" }

-- One tenant of each app, from the command line's options.
local function tenant_for(app, name, mod, seed, size, opts)
  if app == "okta" then return mod.new { seed = seed, users = size, org_name = name, events = tonumber(opts.events) } end
  if app == "github" then
    return mod.new { seed = seed, members = size, org = name,
      oauth_app = { client_id = "sandbox-" .. name, client_secret = "sandbox-secret-" .. name, name = "cachost" } }
  end
  if app == "box" then return mod.new { seed = seed, users = size } end
  if app == "aws" then return mod.new { seed = seed, users = size } end
  if app == "google-workspace" then return mod.workspace { seed = seed, users = size, domain = name .. ".example.com" } end
  if app == "gcp" then return mod.gcp { seed = seed, domain = name .. ".example.com" } end
  return mod.new { seed = seed, users = size, mgmt_records = tonumber(opts.events) }
end

-- A Google service account's JSON key file goes to a private file: the printed command reads it into the vault.
local function key_file(t, suffix)
  local base = os.tmpname()
  os.remove(base)
  local path = base .. "-" .. suffix
  assert(host.write_new(path, t:key_file(t.sa), 384))            -- 0600, refused if it exists
  return path
end

-- The credential line printed for each tenant.
local function credential(app, t)
  if app == "microsoft" then return ("tenant_id=%s client_id=%s client_secret=%s"):format(t.tenant_id, t.client_id, t.client_secret) end
  if app == "aws" then return t:credential_line() end
  if app == "google-workspace" then
    t.key_path = t.key_path or key_file(t, "gws-sa.json")        -- make demo reads the key from there
    return ("service_account=%s admin=%s key_file=%s"):format(t.sa.email, t.admin.primaryEmail, t.key_path)
  end
  if app == "gcp" then return ("service_account=%s organization=%s"):format(t.sa.email, t.org.name) end
  if app == "box" then return ("client_id=%s client_secret=%s enterprise_id=%s"):format(t.client_id, t.client_secret, t.enterprise_id) end
  return t.token
end

-- The exact commands that connect cachost to a tenant (secrets through the environment, never argv).
local function add_lines(app, name, url, t)
  name = name == app and "sandbox" or name
  local loop = (" --set base_url=%s --set insecure_loopback=true"):format(url)
  if app == "okta" then
    return { ("CACHOST_SET_API_TOKEN=%s cachost instance add okta --name %s-okta --set domain=%s.okta.com%s")
      :format(t.token, name, name, loop) }
  elseif app == "github" then
    return { ("CACHOST_SET_TOKEN=%s cachost instance add github --name %s-github --set org=%s%s")
      :format(t.token, name, name, loop) }
  elseif app == "box" then
    return { ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add box --name %s-box --set auth=client_credentials"
      .. " --set client_id=%s --set enterprise_id=%s --set base_url=%s/2.0 --set upload_base_url=%s/api/2.0"
      .. " --set oauth_base_url=%s --set insecure_loopback=true")
      :format(t.client_secret, name, t.client_id, t.enterprise_id, url, url, url) }
  end
  if app == "google-workspace" then
    local path = t.key_path or key_file(t, name .. "-sa.json")
    return { ("CACHOST_SET_SERVICE_ACCOUNT_KEY=\"$(cat %s)\" cachost instance add google-workspace --name %s-gws"
      .. " --set admin_email=%s --set oauth_base_url=%s%s"):format(path, name, t.admin.primaryEmail, url, loop) }
  end
  if app == "gcp" then
    local path = key_file(t, name .. "-gcp-sa.json")
    return { ("CACHOST_SET_SERVICE_ACCOUNT_KEY=\"$(cat %s)\" cachost instance add gcp --name %s-gcp"
      .. " --set organization_id=%s --set oauth_base_url=%s%s"):format(path, name, t.org_number, url, loop) }
  end
  if app == "aws" then
    return { ("CACHOST_SET_ACCESS_KEY_ID=%s CACHOST_SET_SECRET_ACCESS_KEY=%s cachost instance add aws --name %s-aws"
      .. " --set role_arn=%s --set external_id=%s --set base_url=%s --set insecure_loopback=true")
      :format(t.audit_key.id, t.audit_key.secret, name, t.role.Arn, t.role.external_id, url) }
  end
  local common = ("--set tenant_id=%s --set client_id=%s%s"):format(t.tenant_id, t.client_id, loop)
  return {
    ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add office365 --name %s-365 %s"):format(t.client_secret, name, common),
    ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add azure --name %s-azure %s"):format(t.client_secret, name, common),
  }
end

return {
  summary = "start sandbox tenants (API emulators) and print their URLs",
  usage = [=[usage: cachost sandbox [APP[:NAME]]... [--port P] [--seed N] [--size N]
Starts one emulated tenant per APP (okta, github, box, microsoft, aws, google-workspace, gcp; the same app twice for two tenants, e.g.
github:acme github:globex) on loopback ports P, P+1, ... (default: free ports) and prints one line
per tenant: app, name, url and the credential to use (GitHub tenants also accept the OAuth web flow
for client id sandbox-NAME, client secret sandbox-secret-NAME), and on stderr the `cachost instance add`
command that connects an instance to it.  Serves until SIGINT/SIGTERM.
  --seed N   deterministic data (default 1)     --size N   users per tenant (default 50)
  --events N  System Log events of an Okta tenant (default 200 a day over 8 days), Management Activity
              records of a Microsoft tenant (default 2,000 a day over 7 days)
  --rate-limit N  requests a minute per API bucket (default: the provider's usual)
  --page-max N    items a page at most, whatever the client asks (default: the provider's maximum)
  --frozen        the tenants' clocks stay at their start: no content becomes available as time passes
Controls (not part of the providers' APIs): POST /_sandbox/bruteforce (form: login, failures) appends
failed sign-ins then a success; GET /_sandbox/count/WHAT (users, events...) the ground truth;
GET /_sandbox/truth the provider ids of every entity a complete sync holds ({"users": [...], ...});
POST /_sandbox/fault {"kind": "429"|"500"|"reset"|..., "count": N}.]=],
  options = { { "port", arg = true, short = "p" }, { "seed", arg = true }, { "size", arg = true }, { "events", arg = true }, { "rate-limit", arg = true }, { "page-max", arg = true }, { "frozen" } },
  run = function(opts, args, ctx)
    if #args == 0 then args = { "okta", "github" } end
    local port = tonumber(opts.port or 0)
    local seed, size = tonumber(opts.seed or 1), tonumber(opts.size or 50)
    if not port or not seed or not size then return ctx.usage_error(ctx.load_command("sandbox"), "--port, --seed and --size take numbers") end
    local servers, pumps = {}, {}
    for i, spec in ipairs(args) do
      local app, name = spec:match("^([%w_%-]+):?([%w_%-]*)$")
      if not app or not AVAILABLE[app] then return ctx.fail("no sandbox tenant for '%s' (have: aws, box, gcp, github, google-workspace, microsoft, okta)", spec) end
      name = name ~= "" and name or app
      local mod = require(AVAILABLE[app])
      local tenant = tenant_for(app, name, mod, seed + i, size, opts)
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
      ctx.out("%s\t%s\t%s\t%s\n", app, name, srv.url, credential(app, tenant))
      for _, line in ipairs(add_lines(app, name, srv.url, tenant)) do ctx.err("  %s\n", line) end
    end
    io.stdout:flush()
    sched.wait_stop()
    for _, p in ipairs(pumps) do p:cancel() end
    for _, s in ipairs(servers) do s:close() end
    return 0
  end,
}
