-- The fuzz corpora as regression tests: every committed seed of the Lua-level fuzz targets
-- (tests/fuzz/corpus/<target>/, crashes the fuzzers found included) goes through the target's driver in
-- the ordinary build, so what `make fuzz` once found stays fixed even where clang is not installed.
local root = host.root

local function seeds(target)
  local dir = root .. "/tests/fuzz/corpus/" .. target
  local names = assert(host.listdir(dir))
  table.sort(names)
  local out = {}
  for _, n in ipairs(names) do
    local fh = assert(io.open(dir .. "/" .. n, "rb"))
    out[#out + 1] = { name = n, input = fh:read("a") }
    fh:close()
  end
  assert(#out > 0, "no seeds for " .. target)
  return out
end

local function driver(name, arg) return assert(loadfile(root .. "/tests/fuzz/" .. name .. ".lua"))(arg) end

-- target (tests/fuzz/corpus/<target>/) -> its driver and the driver's argument
local TARGETS = {
  { "webhook_box", "webhook", "box" }, { "webhook_github", "webhook", "github" }, { "webhook_okta", "webhook", "okta" },
  { "webhook_office365", "webhook", "office365" }, { "policy", "policy" }, { "dlp", "dlp" }, { "pdf", "pdf" }, { "client", "client" },
}

describe("fuzz corpus", function()
  for _, t in ipairs(TARGETS) do
    it(t[1] .. ": every seed passes the driver's checks", function()
      -- the policy driver makes a store in a home of its own: this spec's process keeps its own
      local home, rt = host.home, package.loaded.runtime
      local ok, err = pcall(function()
        local run = driver(t[2], t[3])
        for _, s in ipairs(seeds(t[1])) do
          local ok1, err1 = pcall(run, s.input)
          assert(ok1, s.name .. ": " .. tostring(err1))
        end
      end)
      host.home, package.loaded.runtime = home, rt
      assert(ok, err)
    end)
  end

  it("webhooks ask to re-fetch only ids that are non-empty strings (or Box's integers)", function()
    local function refetched(app, input)
      local status, _, refetch = driver("webhook", app)(input)
      assert.equal(200, status)
      return refetch or {}
    end
    local gh = "x-fuzz-sign: 1\nx-github-event: member\n\n"
    assert.same({}, refetched("github", gh .. '{"member":{"login":""}}'))
    assert.same({ { entity = "users", id = "octo" } }, refetched("github", gh .. '{"member":{"login":"octo"}}'))
    local okta = "x-fuzz-sign: 1\n\n"
    local function targets(...)
      local t = {}
      for i, id in ipairs { ... } do t[i] = { type = "User", id = id } end
      return okta .. json.encode { data = { events = { { target = t } } } }
    end
    assert.same({ { entity = "users", id = "00u1" } }, refetched("okta", targets("", 12, { x = 1 }, true, "00u1")))
    -- events and targets that are not objects (found by fuzz_webhook_okta: they raised, a 500)
    assert.same({ { entity = "users", id = "00u2" } }, refetched("okta",
      okta .. '{"data":{"events":[1,null,"x",{"target":[2,false,{"type":"User","id":"00u2"}]}]}}'))
    for i, id in ipairs { '""', '{"a":1}', "[]", "true", "7" } do
      local box = ("x-fuzz-sign: 1\nbox-delivery-id: id-%d\nbox-delivery-timestamp: now\n\n"):format(i)
      local want = id == "7" and { { entity = "files", id = "7" } } or {}
      assert.same(want, refetched("box", box .. '{"source":{"type":"file","id":' .. id .. '}}'))
    end
  end)

  it("a policy that does not load says why in one line", function()
    local dir = require("helpers").tmp_dir()
    -- a runtime error whose message has a newline, a syntax error quoting one (the seed the fuzzer found)
    for i, text in ipairs { [[error("first\nsecond")]], [[return policy { match = { ["a\"]\nb"] } }]],
                            'return policy { name = 1, on = 2 }' } do
      local path = dir .. "/p" .. i .. ".lua"
      local fh = assert(io.open(path, "w")); fh:write(text); fh:close()
      local p, err = require("policy").load(path)
      assert.is_nil(p)
      assert.is_nil(err:find("\n"), err)
      assert.truthy(err:find(path, 1, true), err)
    end
  end)

  it("okta: a verification challenge that is not UTF-8 is refused, not answered 200 with an empty body", function()
    local run = driver("webhook", "okta")
    local status = run("x-fuzz-sign: 1\nx-fuzz-method: GET\nx-okta-verification-challenge: \0\0UX\xa0\xcc\x8c\x9babc\n\n")
    assert.equal(400, status)
    assert.equal(200, (run("x-fuzz-sign: 1\nx-fuzz-method: GET\nx-okta-verification-challenge: abc\n\n")))
  end)
end)
