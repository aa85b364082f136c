-- bench/dlp.lua DIR — scan every file under DIR with all detectors (streamed, 1 MiB reads); prints
-- "dlp_bytes N", "dlp_seconds S" and the counts per type.
package.path = host.root .. "/scripts/?.lua;" .. package.path
local dlp = require "dlp"
local dir = assert(arg[1], "usage: bench/dlp.lua DIR")
local files = {}
local p = assert(io.popen("find '" .. dir:gsub("'", "'\\''") .. "' -type f | sort"))
for line in p:lines() do files[#files + 1] = line end
p:close()
local totals, bytes = {}, 0
local t0 = os.clock()
for _, f in ipairs(files) do
  local fh = assert(io.open(f, "rb"))
  local s = dlp.stream()
  while true do
    local chunk = fh:read(1 << 20)
    if not chunk then break end
    s:feed(chunk)
  end
  fh:close()
  local r = s:finish()
  bytes = bytes + r.bytes
  for k, m in pairs(r.matches) do totals[k] = (totals[k] or 0) + m.count end
end
local secs = os.clock() - t0
print(("dlp_bytes %d"):format(bytes))
print(("dlp_seconds %.3f"):format(secs))
local kinds = {}
for k in pairs(totals) do kinds[#kinds + 1] = k end
table.sort(kinds)
for _, k in ipairs(kinds) do print(("dlp_count %s %d"):format(k, totals[k])) end
