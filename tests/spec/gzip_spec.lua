-- gzip_spec.lua — zip.gunzip and zip.gzip (host/zip.c over zlib): what providers hand over gzipped (AWS
-- CloudTrail's log files), read with a limit on the output, damage reported with one line and a token.
local function fixture(name) return require("helpers").fixture("../fuzz/corpus/gunzip/" .. name) end

describe("zip.gunzip", function()
  it("reads a gzip file written by gzip(1)'s format, and every member of a concatenation", function()
    local text = assert(zip.gunzip(fixture("cloudtrail.json.gz")))
    assert.equal("ConsoleLogin", json.decode(text).Records[1].eventName)
    assert.equal("hello world\n", zip.gunzip(fixture("two-members.gz")))
    assert.equal("", zip.gunzip(fixture("empty-member.gz")))
  end)

  it("round-trips what zip.gzip writes, at every level", function()
    local s = ("lorem ipsum %d "):rep(1000):format(table.unpack((function() local t = {} for i = 1, 1000 do t[i] = i end return t end)()))
    for level = 1, 9 do assert.equal(s, zip.gunzip(zip.gzip(s, level))) end
    assert.equal("", zip.gunzip(zip.gzip("")))
    assert.equal(0x1f, zip.gzip("x"):byte(1)); assert.equal(0x8b, zip.gzip("x"):byte(2))
  end)

  it("stops at its output limit (a gzip bomb) and says why", function()
    local bomb = zip.gzip(("\0"):rep(10 * 1024 * 1024), 9)
    assert.is_true(#bomb < 20000)
    local v, err, tok = zip.gunzip(bomb, 1024 * 1024)
    assert.is_nil(v)
    assert.equal("too_large", tok)
    assert.equal("too_large: gzip: the output passes its limit", err)
    assert.equal(10 * 1024 * 1024, #assert(zip.gunzip(bomb)))    -- the default, 64 MiB, holds it
    assert.equal(5000, #assert(zip.gunzip(fixture("repeated.gz"), 5000)))
  end)

  it("refuses what is not gzip, damaged or cut short, with one line", function()
    local good = fixture("cloudtrail.json.gz")
    local damaged = good:sub(1, 20) .. string.char((good:byte(21) + 1) % 256) .. good:sub(22)
    for _, case in ipairs {
      { "", "corrupt: gzip: empty input" },
      { "plain text", "corrupt: gzip: incorrect header check" },
      { good:sub(1, #good - 10), "corrupt: gzip: cut short" },
      { good .. "trailing", "corrupt: gzip: " },
      { damaged, "corrupt: gzip: " },
    } do
      local v, err, tok = zip.gunzip(case[1])
      assert.is_nil(v)
      assert.equal("corrupt", tok)
      assert.equal(case[2], err:sub(1, #case[2]))
      assert.is_nil(err:find("\n"))
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() zip.gunzip({}) end)
    assert.has_error(function() zip.gunzip("x", -1) end)
    assert.has_error(function() zip.gzip("x", 10) end)
  end)
end)
