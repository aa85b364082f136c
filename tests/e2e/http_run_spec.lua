-- Minimal busted stand-in to run tests/spec/http_spec.lua with `cachost script` until `cachost test`
-- exists: describe/it/setup/teardown/before_each/after_each, luassert's assert.  Exit status 1 on failure.
local luassert = require "luassert"
local stack, root = {}, { name = "", items = {}, setups = {}, teardowns = {}, before = {}, after = {} }
local cur = root
local function ctx(name) return { name = name, items = {}, setups = {}, teardowns = {}, before = {}, after = {} } end
_G.assert = luassert
function describe(name, fn)
  local c = ctx(name); cur.items[#cur.items + 1] = c; stack[#stack + 1] = cur; cur = c; fn(); cur = table.remove(stack)
end
function it(name, fn) cur.items[#cur.items + 1] = { name = name, fn = fn } end
function setup(fn) cur.setups[#cur.setups + 1] = fn end
function teardown(fn) cur.teardowns[#cur.teardowns + 1] = fn end
function before_each(fn) cur.before[#cur.before + 1] = fn end
function after_each(fn) cur.after[#cur.after + 1] = fn end
local passed, failed = 0, 0
local function run(c, prefix, befores, afters)
  for _, f in ipairs(c.setups) do f() end
  local b, a = { table.unpack(befores) }, { table.unpack(afters) }
  for _, f in ipairs(c.before) do b[#b + 1] = f end
  for _, f in ipairs(c.after) do a[#a + 1] = f end
  for _, item in ipairs(c.items) do
    local name = prefix .. (prefix ~= "" and " " or "") .. item.name
    if item.fn then
      local ok, err = xpcall(function() for _, f in ipairs(b) do f() end; item.fn(); for _, f in ipairs(a) do f() end end,
                             debug.traceback)
      if ok then passed = passed + 1; print("ok    " .. name)
      else failed = failed + 1; print("FAIL  " .. name .. "\n" .. tostring(err)) end
    else
      run(item, name, b, a)
    end
  end
  for _, f in ipairs(c.teardowns) do f() end
end
for _, path in ipairs(arg and #arg > 0 and arg or { (host and host.root or ".") .. "/tests/spec/http_spec.lua" }) do
  dofile(path)
end
run(root, "", {}, {})
print(("%d passed, %d failed"):format(passed, failed))
if failed > 0 then (host and host.exit or os.exit)(1) end
