-- bench/http_server.lua — the loopback server both clients of bench/http.sh fetch from (the host's own
-- evhttp server, in its own process).  Prints its port, serves until SIGTERM.
local srv = assert(server.listen{ host = "127.0.0.1", port = 0 })
local body = ("x"):rep(tonumber(arg and arg[1]) or 256)
srv:route("GET", "/item/:id", function(req) return 200, body, { ["content-type"] = "text/plain" } end)
io.stdout:write(srv.port, "\n")
io.stdout:flush()
sched.wait_stop()
srv:close()
