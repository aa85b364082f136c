-- store_format_spec.lua — scripts/format.lua, the shared --format table|json|csv writer.
local format = require "format"

local function render(rows, cols, fmt)
  local buf = {}
  format.rows(rows, cols, fmt, function(s) buf[#buf + 1] = s end)
  return table.concat(buf)
end

describe("format", function()
  local rows = { { name = "a", n = 1, ok = true }, { name = "longer name", n = 22.0 }, { name = 'q"u,o\nte', n = json.null } }

  it("aligns a table under upper-case headers, NULL as empty, newlines escaped", function()
    assert.equal("NAME         N   OK\na            1   true\nlonger name  22\nq\"u,o\\nte\n",
      render(rows, { "name", "n", "ok" }, "table"))
  end)

  it("writes csv quoted as RFC 4180 says, with LF line ends, or CRLF when asked", function()
    assert.equal('name,n,ok\na,1,true\nlonger name,22,\n"q""u,o\nte",,\n', render(rows, { "name", "n", "ok" }, "csv"))
    assert.equal('name,n,ok\r\na,1,true\r\nlonger name,22,\r\n"q""u,o\nte",,\r\n', render(rows, { "name", "n", "ok" }, "csv-crlf"))
  end)

  it("writes a json array of objects with keys in column order", function()
    local out = render(rows, { "name", "n" }, "json")
    assert.same({ { name = "a", n = 1 }, { name = "longer name", n = 22 }, { name = 'q"u,o\nte', n = json.null } }, json.decode(out))
    assert.matches('^%[\n{"name":"a","n":1}', out)
    assert.equal("[]\n", render({}, { "x" }, "json"))
  end)

  it("streams a table after its first rows, in constant memory", function()
    local saved = format.BUFFER
    format.BUFFER = 2
    local lines = {}
    local w = format.writer({ "v" }, "table", function(s) lines[#lines + 1] = s end)
    w:row({ "x" }); assert.equal(0, #lines)
    w:row({ "y" }); assert.equal(3, #lines)           -- header + the two buffered rows
    w:row({ "much wider" }); assert.equal("much wider\n", lines[4])
    w:finish()
    format.BUFFER = saved
  end)

  it("refuses an unknown format", function()
    assert.has_error(function() format.writer({ "a" }, "xml") end)
  end)
end)
