return {
  summary = "the daemon: scheduled scans, webhooks, policies",
  usage = [[usage: cachost run [--listen HOST:PORT] [--public-url URL] [--max-scans N] [--metrics-listen HOST:PORT]
                   [--max-connections N] [--request-timeout SECONDS] [--console HOST:PORT|off]
                   [--console-cert PEM --console-key PEM]
Schedules every enabled instance (a full scan every 12 hours, activity polling every 5 minutes; per
instance settings full_scan_interval and poll_interval, in seconds) and serves webhooks at
http://HOST:PORT/webhooks/<instance>.  SIGINT/SIGTERM stop gracefully (twice: at once); SIGHUP reloads
the policies.  --public-url is how the providers reach that server (e.g. https://cachost.example.com,
through a reverse proxy): apps that push changes only to subscribers (Office 365) are subscribed there.
--max-scans bounds the scans running at once (default 16): each holds pages in flight, so memory grows
with it; the other instances wait their turn.
--metrics-listen (default 127.0.0.1:9787) serves the operator's endpoints, apart from the webhooks:
/healthz, /readyz (503 while stopping or when the store does not answer) and /metrics (Prometheus text).
--max-connections (default 256) bounds the webhook listener's open connections (past it, the one whose
request has been arriving longest makes room); --request-timeout (default 30) is how long a request may
take to arrive whole, headers and body.
--console (default 127.0.0.1:8788) serves the web console; off: no console.  On an address other than
loopback only over TLS: --console-cert (a PEM certificate chain) and --console-key (its PEM key); cookies
are then Secure.  Accounts: cachost console user add NAME.]],
  options = { { "listen", arg = true, short = "l" }, { "public-url", arg = true }, { "max-scans", arg = true },
              { "metrics-listen", arg = true }, { "max-connections", arg = true }, { "request-timeout", arg = true },
              { "console", arg = true }, { "console-cert", arg = true }, { "console-key", arg = true } },
  run = function(opts, args, ctx)
    local function address(v, name)
      local h, p = v:match("^%[?([^%]]*)%]?:(%d+)$")
      if not h then return nil, ctx.usage_error(ctx.load_command("run"), name .. " wants HOST:PORT") end
      return h, tonumber(p)
    end
    local host_, port = "127.0.0.1", 8787
    if opts.listen then
      host_, port = address(opts.listen, "--listen")
      if not host_ then return port end
    end
    local mhost, mport
    if opts["metrics-listen"] then
      mhost, mport = address(opts["metrics-listen"], "--metrics-listen")
      if not mhost then return mport end
    end
    if opts["max-scans"] then
      local n = math.tointeger(tonumber(opts["max-scans"]))
      if not n or n < 1 then return ctx.usage_error(ctx.load_command("run"), "--max-scans wants a number >= 1") end
      require("runtime").set_max_scans(n)
    end
    local max_conns = opts["max-connections"] and math.tointeger(tonumber(opts["max-connections"]))
    if opts["max-connections"] and not (max_conns and max_conns >= 1) then
      return ctx.usage_error(ctx.load_command("run"), "--max-connections wants a number >= 1")
    end
    local req_timeout = opts["request-timeout"] and tonumber(opts["request-timeout"])
    if opts["request-timeout"] and not (req_timeout and req_timeout > 0 and req_timeout <= 3600) then
      return ctx.usage_error(ctx.load_command("run"), "--request-timeout wants seconds, more than 0 and at most 3600")
    end
    local console
    if (opts["console-cert"] == nil) ~= (opts["console-key"] == nil) then
      return ctx.usage_error(ctx.load_command("run"), "--console-cert and --console-key go together")
    end
    if opts.console == "off" then
      console = false
    elseif opts.console or opts["console-cert"] then
      local chost, cport = "127.0.0.1", 8788
      if opts.console then
        chost, cport = address(opts.console, "--console")
        if not chost then return cport end
      end
      console = { host = chost, port = cport, cert = opts["console-cert"], key = opts["console-key"] }
    end
    local ok, err = require("daemon").run { host = host_, port = port, public_url = opts["public-url"],
                                            metrics_host = mhost, metrics_port = mport, console = console,
                                            max_connections = max_conns, request_timeout = req_timeout }
    if not ok then return ctx.fail("%s", err) end
    return 0
  end,
}
