-- bench/replay_server.lua UPSTREAM — the static server of bench/o365.sh: it first records what a client
-- asks of UPSTREAM (the sandbox), passing each request on and keeping the answer in memory (UPSTREAM's URL
-- in bodies and headers rewritten to its own, so links lead back here); then it answers the same requests
-- from memory only, so neither side of the bench waits on the emulator generating them.
-- The connector asks for time windows computed from the clock (the content listings' startTime and
-- endTime, Graph's $filter): a request is known by its method, path and query with every timestamp left
-- out, and the answers to one such key are given in the order they were recorded.
-- Controls (not the API's): POST /_replay/replay stops recording; POST /_replay/rewind lets every
-- recorded answer be asked again from the first; GET /_replay/gets lists the GET URLs recorded, in order
-- (what the floor's curl fetches).  Prints its URL, serves until SIGTERM.
local upstream = assert(arg and arg[1], "usage: replay_server.lua UPSTREAM")
local srv = assert(server.listen { host = "127.0.0.1", port = 0, max_connections = 1024 })

local recording = true
local answers, next_of, gets = {}, {}, {}   -- key -> {answer...}; key -> index of the next; GET URLs

local function key_of(req)
  local parts = {}
  for k, v in pairs(req.query) do
    parts[#parts + 1] = k .. "=" .. v:gsub("%d%d%d%d%-%d%d%-%d%dT[%d:%.]+Z?", "T")
  end
  table.sort(parts)
  return req.method .. " " .. req.path .. "?" .. table.concat(parts, "&")
end

local function own(s) return (s:gsub(upstream:gsub("%p", "%%%0"), (srv.url:gsub("%%", "%%%%")))) end

local SKIP = { ["content-length"] = true, connection = true, ["transfer-encoding"] = true, date = true }
local function record(req, key)
  local r, err = http.request { method = req.method, url = upstream .. req.path .. (req.raw_query ~= "" and "?" .. req.raw_query or ""),
                                headers = { authorization = req.headers.authorization, ["content-type"] = req.headers["content-type"] },
                                body = req.body ~= "" and req.body or nil, timeout = 300, max_size = 1 << 30 }
  if not r then return 502, json.encode { error = "upstream: " .. tostring(err) } end
  local headers = {}
  for k, v in pairs(r.headers) do if not SKIP[k] then headers[k] = own(v) end end
  local a = { status = r.status, body = own(r.body), headers = headers }
  local list = answers[key] or {}
  answers[key] = list
  list[#list + 1] = a
  if req.method == "GET" then gets[#gets + 1] = srv.url .. req.path .. (req.raw_query ~= "" and "?" .. req.raw_query or "") end
  return a.status, a.body, a.headers
end

srv:route("POST", "/_replay/replay", function() recording = false; return 200, "{}" end)
srv:route("POST", "/_replay/rewind", function() next_of = {}; return 200, "{}" end)
srv:route("GET", "/_replay/gets", function() return 200, table.concat(gets, "\n") .. "\n", { ["content-type"] = "text/plain" } end)
srv:route("*", "/*", function(req)
  local key = key_of(req)
  if recording then return record(req, key) end
  local list = answers[key]
  if not list then return 404, json.encode { error = "not recorded: " .. key } end
  local i = next_of[key] or 1
  next_of[key] = i + 1
  local a = list[math.min(i, #list)]
  return a.status, a.body, a.headers
end)

io.stdout:write(srv.url, "\n")
io.stdout:flush()
sched.wait_stop()
srv:close()
