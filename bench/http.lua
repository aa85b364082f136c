-- bench/http.lua URLFILE [INFLIGHT] — GET every URL of URLFILE (one per line) with INFLIGHT requests in
-- flight, from one Lua script.  Prints "cachost http: N requests in S s = R req/s (errors E)".
local file, inflight = arg[1], tonumber(arg[2] or 64)
local urls = {}
for l in assert(io.open(file)):lines() do urls[#urls + 1] = l end
local next_i, errors, bytes = 0, 0, 0
local t0 = sched.now()
local workers = {}
for w = 1, inflight do
  workers[w] = sched.spawn(function()
    while true do
      next_i = next_i + 1
      local u = urls[next_i]
      if not u then return end
      local r, err = http.request{ url = u }
      if not r or r.status ~= 200 then errors = errors + 1 else bytes = bytes + #r.body end
    end
  end)
end
for _, w in ipairs(workers) do w:join() end
local s = sched.now() - t0
print(("cachost http: %d requests in %.3f s = %.0f req/s (errors %d, %d body bytes)"):format(#urls, s, #urls / s, errors, bytes))
return errors > 0 and 1 or 0
