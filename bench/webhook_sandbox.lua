-- bench/webhook_sandbox.lua — the provider's side of bench/webhook.sh, in its own process (as the static server
-- of bench/sync.sh), so its state (every file and event it keeps) is not in cachost's Lua heap: a Box
-- enterprise on loopback, its routes wrapped to note when the first write (the governance call) of each
-- notification reaches it.  Prints its URL, serves until SIGTERM.  Controls for the bench (not Box's API):
--   GET  /_bench/setup         the webhook keys (to store in cachost's vault) and the enterprise's ids
--   POST /_bench/notification  a new publicly shared file holding an SSN, and the FILE.UPLOADED notification
--                              Box would send of it (body and signed headers); arms the watch for a write
--   GET  /_bench/wait[?quiet=S] answers once a write reached the sandbox since the last notification and then
--                              the sandbox was quiet for S s (0.02; the quarantine done): {hit = when the first
--                              write arrived (sched.now(), CLOCK_MONOTONIC: the bench's clock too)}
--   GET  /_bench/report        CPU of this process: Box's routes (each, with `profile`), the controls, the rest
local box_tenant = require "sandbox.box"
local measure = dofile((arg[0]:match("^(.*)/") or ".") .. "/measure.lua")
local profile = arg and arg[1] == "profile"
local clock = os.clock

local tenant = box_tenant.new { seed = 7, users = 10, groups = 2, folders = 4, files = 8, events = 20, days = 30,
                                client_id = "box-client", client_secret = "box-secret", enterprise_id = "777001",
                                rate_limit = { limit = 100000000 },   -- Box's 1,000 a minute would throttle the bench
                                log_max = 1000 }                      -- the sandbox's request log, for tests only
local srv = assert(server.listen { host = "127.0.0.1", port = 0, max_connections = 1024 })

-- CPU per route (Box's), from the first notification on
local cost = measure.tally()

-- hit: when the first write since the last notification arrived (false: none yet); last: the last request
local hit, last, arrived = false, 0, sched.semaphore(0)
local proxy = {}
function proxy.route(_, method, pattern, handler)
  srv:route(method, pattern, function(req, ...)
    last = sched.now()
    if req.method ~= "GET" and hit == false then hit = last; arrived:release() end
    local c0 = clock()
    local status, body, headers = handler(req, ...)
    cost.add("box " .. method .. " " .. pattern, clock() - c0)
    return status, body, headers
  end)
  return proxy
end
setmetatable(proxy, { __index = function(_, k) return srv[k] end })
tenant:mount(proxy)

-- a folder of a real (not service) user, where the new files go
local folder
for _, id in ipairs(tenant.state.order) do
  local x = tenant:find_file(id)
  local u = tenant:find_user(x.owner)
  if not folder and x.type == "folder" and id ~= "0" and not tenant:in_trash(x) and u and not u.service then folder = x end
end

-- the CPU of the controls that do not wait (the span of one that waits holds the other tasks' CPU too)
local controls, cpu0 = 0, nil
local gc_base, gc_cpu, gc_runs = 0, 0, 0     -- the sandbox's collections, made between notifications
local function control(method, path, fn, waits)
  srv:route(method, path, function(req)
    local c0 = clock()
    local status, body = fn(req)
    if cost.on and not waits then controls = controls + clock() - c0 end
    return status, json.encode(body), { ["content-type"] = "application/json" }
  end)
end

control("GET", "/_bench/setup", function()
  return 200, { primary = tenant.keys.primary, secondary = tenant.keys.secondary, client_id = tenant.client_id,
                client_secret = tenant.client_secret, enterprise_id = tenant.enterprise_id }
end)

local seq = 0
control("POST", "/_bench/notification", function()
  if not cost.on then cost.on, cpu0, gc_base = true, clock(), collectgarbage("count"); collectgarbage("stop") end
  seq = seq + 1
  local f = tenant:add_item { type = "file", name = ("bench-%d.txt"):format(seq), parent = folder.id, owner = folder.owner,
                              created = tenant:now_ms(), content = "notes\n" .. box_tenant.SENSITIVE.ssn .. "\n" }
  f.link = tenant:make_link(f, "open")
  local body = json.encode { type = "webhook_event", id = "bench-evt-" .. seq, trigger = "FILE.UPLOADED",
                             source = { id = f.id, type = "file", name = f.name, owned_by = { id = f.owner } } }
  local ts = box_tenant.btime(math.floor(sched.time()) * 1000)
  hit, arrived = false, sched.semaphore(0)
  return 200, { body = body, headers = {
    ["Content-Type"] = "application/json", ["BOX-DELIVERY-TIMESTAMP"] = ts,
    ["BOX-SIGNATURE-PRIMARY"] = box_tenant.sign(tenant.keys.primary, body, ts),
    ["BOX-SIGNATURE-SECONDARY"] = box_tenant.sign(tenant.keys.secondary, body, ts) } }
end)

control("GET", "/_bench/wait", function(req)
  if not hit then arrived:acquire(10) end
  if not hit then return 504, { error = "no write reached the sandbox within 10 s" } end
  -- the rest of this quarantine finishes (the sandbox quiet for 20 ms) before the next notification
  local quiet = tonumber(req.query.quiet) or 0.02
  while sched.now() - last < quiet do sched.sleep(0.005) end
  -- the emulator's garbage is collected here, between notifications: its collections, whose cost grows with
  -- all it keeps (every file and event: tens of MB), would otherwise land in the requests being timed
  if collectgarbage("count") > gc_base * 1.5 then
    local c0 = clock()
    collectgarbage()
    gc_cpu, gc_runs, gc_base = gc_cpu + clock() - c0, gc_runs + 1, collectgarbage("count")
  end
  return 200, { hit = hit }
end, true)

control("GET", "/_bench/report", function()
  local cpu, rss_peak_mb = clock() - (cpu0 or clock()), measure.peak_rss_mb()
  collectgarbage(); collectgarbage()
  return 200, { notifications = seq, cpu = cpu, routes = cost.total(), controls = controls, gc_cpu = gc_cpu, gc_runs = gc_runs,
                per = profile and cost.list() or nil, rss_peak_mb = rss_peak_mb, heap_mb = collectgarbage("count") / 1024 }
end)

io.stdout:write(srv.url, "\n")
io.stdout:flush()
sched.wait_stop()
srv:close()
