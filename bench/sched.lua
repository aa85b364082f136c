local t0 = sched.now()
for _ = 1, 1000000 do sched.sleep(0) end
local t1 = sched.now()
local n = 0
local t2 = sched.now()
for _ = 1, 1000000 do n = n + 1 end   -- floor: the same loop without yielding
local t3 = sched.now()
print(("1M sleep(0): %.3f s   floor (bare loop): %.3f s"):format(t1 - t0, t3 - t2))
