-- dlp.lua — the fuzz driver of the DLP extractors and detectors (scripts/dlp.lua, scripts/dlp/extract.lua,
-- host/zip.c, host/regex.c's matching, the bounded pattern matcher of custom patterns): the input's first
-- line is "name [mime] [| custom Lua pattern]" (e.g. "q3.xlsx", "blob application/zip | %d%d%d"), the
-- rest is the file.  PDF is fuzz_pdf's: here the pdf module is hidden, so a PDF is "unsupported".
-- Findings (raised): scan_file raises, or answers anything but a status the callers know, with a reason
-- when it is not "completed" and counted matches when it is.  A custom pattern may be refused, with
-- "dlp: custom pattern ..." (malformed, or too complex on this text: the policy is then disabled).
local dlp = require "dlp"
local STATUS = { completed = true, too_large = true, encrypted = true, unsupported = true, failed = true }

local function check(r)
  assert(type(r) == "table" and STATUS[r.status], "bad status " .. tostring(type(r) == "table" and r.status or r))
  assert(type(r.matches) == "table" and math.type(r.total) == "integer", "no matches or total")
  if r.status ~= "completed" then
    assert(type(r.reason) == "string" or r.status == "too_large", r.status .. " without a reason")
    return
  end
  local total = 0
  for kind, f in pairs(r.matches) do
    assert(type(kind) == "string" and math.type(f.count) == "integer" and f.count > 0, "bad match " .. tostring(kind))
    for _, s in ipairs(f.samples) do assert(type(s) == "string", "bad sample") end
    total = total + f.count
  end
  assert(total == r.total, "total is not the sum of the counts")
end

return function(input)
  local head, content = input:match("^([^\n]*)\n(.*)$")
  if not head then head, content = "", input end
  local file, pattern = head:match("^(.-)|(.*)$")
  local name, mime = (file or head):match("^(%S*)%s*(.-)%s*$")
  local saved = pdf
  pdf = nil
  local ok, r = pcall(dlp.scan_file, content, { name = name ~= "" and name or nil, mime = mime ~= "" and mime or nil,
    custom = pattern and { { name = "custom", pattern = pattern } } or nil })
  pdf = saved
  if not ok then
    if pattern and type(r) == "string" and r:match("dlp: custom") and not r:find("\n") then return end
    error(r, 0)
  end
  check(r)
end
