-- bench/static_server.lua DIR — the floor's static server for bench/sync.sh: serves the System Log pages
-- pre-rendered from the sandbox (DIR/pageN.json, DIR/pageN.link: the Link header already rewritten to
-- this server: @STATIC@ stands for its URL, known once it listens), so neither side of the bench waits on the emulator generating them.  Pages are loaded
-- into memory at start so a request costs only the write.  Prints its port, serves until SIGTERM.
local dir = assert(arg and arg[1], "usage: static_server.lua DIR")
local srv = assert(server.listen{ host = "127.0.0.1", port = 0 })
local pages = {}
for n = 1, math.huge do
  local f = io.open(dir .. "/page" .. n .. ".json", "rb")
  if not f then break end
  local body = f:read("a"); f:close()
  local l = io.open(dir .. "/page" .. n .. ".link", "rb")
  local link = l and l:read("a"):gsub("%s+$", ""):gsub("@STATIC@", srv.url); if l then l:close() end
  pages[n] = { body = body, headers = { ["content-type"] = "application/json", link = link ~= "" and link or nil } }
end
-- the first request (the connector's own since= query) gets page 1; the rewritten links name ?page=N
srv:route("GET", "/api/v1/logs", function(req)
  local p = pages[tonumber(req.query.page) or 1]
  if not p then return 404, '{"error":"no such page"}' end
  return 200, p.body, p.headers
end)
io.stdout:write(srv.port, "\n")
io.stdout:flush()
sched.wait_stop()
srv:close()
