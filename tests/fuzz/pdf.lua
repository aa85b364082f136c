-- pdf.lua — the fuzz driver of the PDF extractor (host/pdf.c): the input is a document for pdf.text,
-- which parses it with poppler in a forked child under CPU and memory limits, as the daemon does.  The
-- fork is kept: it is what is under test (the child's limits and exit codes, the parent reading the pipe
-- and reaping it), and poppler itself is not instrumented (a system library), so in-process fuzzing would
-- only add poppler's own crashes, which the child exists to contain.
-- Findings (raised): pdf.text raises, returns text longer than asked, or an error outside its documented
-- tokens; "crashed: exit N" (our child code only exits 0, 10, 11 or 12: anything else is, e.g., a
-- sanitizer report in it).  "crashed: signal N" is poppler crashing in the child: contained, counted.
local MAX = 4096
local crashed = 0

local function known(err)
  return err == "encrypted" or err == "too_large" or err == "too_complex" or err == "timeout"
    or err:match("^damaged: ") or err:match("^crashed: signal %d+$")
end

return function(input)
  local text, err, why = pdf.text(input, MAX, { cpu_seconds = 2 })
  if text then
    assert(type(text) == "string" and #text <= MAX, "text past max")
    return
  end
  assert(err ~= "unavailable", "poppler cannot be loaded: " .. tostring(why))
  assert(type(err) == "string" and known(err), "unexpected error: " .. tostring(err))
  if err:match("^crashed") then
    crashed = crashed + 1
    if crashed <= 3 then io.stderr:write("fuzz pdf: poppler crashed in the child (contained): ", err, "\n") end
  end
end
