-- sdk/csv.lua: RFC 4180 reading (quoted fields with commas, doubled quotes and line breaks; CRLF or LF
-- records; an optional final line break) and one clear error for what is not CSV.
local csv = require "sdk.csv"

describe("sdk.csv", function()
  it("reads RFC 4180's examples", function()
    assert.same({ { "aaa", "bbb", "ccc" }, { "zzz", "yyy", "xxx" } }, csv.rows("aaa,bbb,ccc\r\nzzz,yyy,xxx\r\n"))
    assert.same({ { "aaa", "bbb", "ccc" }, { "zzz", "yyy", "xxx" } }, csv.rows("aaa,bbb,ccc\r\nzzz,yyy,xxx"))
    assert.same({ { "aaa", "b\r\nbb", "ccc" }, { "zzz", "yyy", "xxx" } }, csv.rows('"aaa","b\r\nbb","ccc"\r\nzzz,yyy,xxx'))
    assert.same({ { "aaa", 'b"bb', "ccc" } }, csv.rows('"aaa","b""bb","ccc"'))
  end)

  it("keeps empty fields, commas inside quotes, LF records and a lone CR inside a field", function()
    assert.same({ { "", "a", "" }, { "" } }, csv.rows(",a,\n\n"))
    assert.same({ { "x,y", "" } }, csv.rows('"x,y",""\n'))
    assert.same({ { "a\rb", "c" } }, csv.rows("a\rb,c\r\n"))
    assert.same({}, csv.rows(""))
  end)

  it("refuses what is not CSV, saying where", function()
    assert.same({ nil, "csv: a quoted field is not closed (it starts at line 2)" }, { csv.rows('a\n"b,c\n') })
    assert.same({ nil, "csv: text after a closing quote at line 1" }, { csv.rows('"a"b,c') })
    assert.same({ nil, "csv: a quote inside an unquoted field at line 3" }, { csv.rows('a\nb\nc"d') })
    assert.has_error(function() csv.rows(nil) end, "csv.rows: text must be a string")
  end)

  it("names the fields of each record after the header, and refuses a ragged record", function()
    local recs, header = csv.records('"EVENT_TYPE","USER_ID","URI"\r\n"Logout","005x","/home"\r\n"API","005y",""\r\n')
    assert.same({ "EVENT_TYPE", "USER_ID", "URI" }, header)
    assert.same({ { EVENT_TYPE = "Logout", USER_ID = "005x", URI = "/home" }, { EVENT_TYPE = "API", USER_ID = "005y", URI = "" } }, recs)
    assert.same({ nil, "csv: record 2 has 2 fields, the header 3" }, { csv.records("a,b,c\n1,2,3\n4,5\n") })
    assert.same({ {}, {} }, { csv.records("") })
  end)
end)
