-- dlp_spec.lua — detectors (positives and negatives), masking, min counts, custom patterns, file extractors,
-- streaming across chunk boundaries.
local dlp = require "dlp"

local function fixture(name) return require("helpers").fixture("dlp/" .. name) end

local function count(r, kind) return r.matches[kind] and r.matches[kind].count or 0 end

-- the result, serialised, must not contain any raw value (nor its digits without separators)
local function assert_masked(r, raws)
  local out = assert(json.encode(r))
  for _, raw in ipairs(raws) do
    assert.is_nil(out:find(raw, 1, true), "raw value in result: " .. raw)
    local digits = raw:gsub("[ %-]", "")
    if #digits >= 8 then assert.is_nil(out:find(digits, 1, true), "raw digits in result: " .. digits) end
  end
end

describe("dlp credit cards", function()
  it("finds Luhn-valid numbers with known prefixes, plain or grouped", function()
    local cards = { "4111111111111111", "5555 5555 5555 4444", "3782-822463-10005", "6011111111111117",
      "3530111333300000", "4222222222222", "2223003122003222" }
    local r = dlp.scan("cards: " .. table.concat(cards, " ; ") .. ".", { detectors = { "credit_card" } })
    assert.equal(#cards, count(r, "credit_card"))
    assert.same({ "4111********1111", "5555********4444", "3782*******0005" }, r.matches.credit_card.samples)
    assert_masked(r, cards)
    assert.equal("completed", r.status)
  end)
  it("refuses Luhn-invalid numbers, unknown prefixes, wrong lengths and mixed separators", function()
    local r = dlp.scan("4111111111111112 1234567812345670 41111111111111111 4111-1111 1111-1111 "
      .. "order 12345678901234567890123 3782822463100055")
    assert.equal(0, count(r, "credit_card"))
  end)
  it("splits two cards in one run of groups", function()
    local r = dlp.scan("4111 1111 1111 1111 5555 5555 5555 4444")
    assert.equal(2, count(r, "credit_card"))
  end)
end)

describe("dlp SSN", function()
  it("finds valid numbers with dashes or spaces", function()
    local r = dlp.scan("ssn 536-22-1234, also 536 22 1235 and 001-01-0001")
    assert.equal(3, count(r, "ssn"))
    assert.same({ "***-**-1234", "***-**-1235", "***-**-0001" }, r.matches.ssn.samples)
    assert_masked(r, { "536-22-1234", "536 22 1235", "001-01-0001" })
  end)
  it("excludes the invalid ranges, known fakes, bare digits and mixed separators", function()
    local r = dlp.scan("000-12-3456 666-12-3456 900-12-3456 999-99-9999 536-00-1234 536-22-0000 123-45-6789 "
      .. "078-05-1120 219-09-9999 536221234 536-22 1234 1536-22-1234 536-22-12345")
    assert.equal(0, count(r, "ssn"))
  end)
end)

describe("dlp IBAN", function()
  it("checks mod-97 and the country's length", function()
    local r = dlp.scan("GB82 WEST 1234 5698 7654 32 / DE89370400440532013000 / FR1420041010050500013M02606")
    assert.equal(3, count(r, "iban"))
    assert.equal("GB82**************5432", r.matches.iban.samples[1])
    assert_masked(r, { "GB82WEST12345698765432", "DE89370400440532013000", "WEST 1234 5698" })
    local bad = dlp.scan("GB82WEST12345698765433 GB82WEST1234569876543 DE89370400440532013000X ZZ82WEST12345698765432")
    assert.equal(0, count(bad, "iban"))
  end)
end)

describe("dlp AWS keys", function()
  it("finds access key ids and a secret near them", function()
    local text = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
      .. "temp ASIAY34FZKBOKMUTVV7A"
    local r = dlp.scan(text)
    assert.equal(2, count(r, "aws_access_key"))
    assert.equal("AKIA************MPLE", r.matches.aws_access_key.samples[1])
    assert.equal(1, count(r, "aws_secret_key"))
    assert_masked(r, { "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "IOSFODNN7EXA" })
  end)
  it("refuses wrong lengths, other prefixes and a 40-character word far from any key", function()
    local r = dlp.scan("AKIAIOSFODNN7EXAMPL AKIAIOSFODNN7EXAMPLEX xAKIAIOSFODNN7EXAMPLE AKIBIOSFODNN7EXAMPLE "
      .. string.rep("lorem ipsum ", 40) .. " wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert.equal(0, count(r, "aws_access_key"))
    assert.equal(0, count(r, "aws_secret_key"))
  end)
  it("returns the access key ids found when asked (values), each once, and no other type's", function()
    local text = "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY again AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A"
    local r = dlp.scan(text, { values = { "aws_access_key" } })
    assert.equal(3, count(r, "aws_access_key"))
    assert.same({ "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A" }, r.matches.aws_access_key.values)
    assert.is_nil(r.matches.aws_secret_key.values)
    assert.is_nil(r.matches.aws_access_key.seen)
    -- across chunk boundaries too, and bounded
    local parts = {}
    for i = 1, dlp.VALUES + 20 do parts[i] = ("AKIA%016d"):format(i) end
    local s = dlp.stream { values = { "aws_access_key" }, detectors = { "aws_access_key" } }
    local all = table.concat(parts, " " .. ("x"):rep(20000) .. " ")
    for i = 1, #all, 65536 do s:feed(all:sub(i, i + 65535)) end
    local r2 = s:finish()
    assert.equal(dlp.VALUES + 20, count(r2, "aws_access_key"))
    assert.equal(dlp.VALUES, #r2.matches.aws_access_key.values)
    assert.equal("AKIA0000000000000001", r2.matches.aws_access_key.values[1])
    assert.has_error(function() dlp.scan("x", { values = { "passwords" } }) end)
  end)
end)

describe("dlp private keys and JWTs", function()
  it("counts key blocks of every type", function()
    local r = dlp.scan("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3B\n"
      .. "-----BEGIN PUBLIC KEY-----\n-----BEGIN CERTIFICATE-----")
    assert.equal(2, count(r, "private_key"))
    assert.same({ "-----BEGIN PRIVATE KEY----- ***", "-----BEGIN OPENSSH PRIVATE KEY----- ***" }, r.matches.private_key.samples)
    assert_masked(r, { "MIIE", "b3B" })
  end)
  it("finds a JWT whose header has alg, never its payload or signature", function()
    local header = crypto.b64url('{"alg":"RS256","typ":"JWT"}')
    local payload, sig = crypto.b64url('{"sub":"alice@example.com"}'), crypto.b64url(("s"):rep(32))
    local tok = header .. "." .. payload .. "." .. sig
    local noalg = crypto.b64url('{"typ":"JWT"}') .. "." .. payload .. "." .. sig
    local r = dlp.scan("Authorization: Bearer " .. tok .. "\n" .. noalg .. " eyJub3QganNvbg.eyJ4.y")
    assert.equal(1, count(r, "jwt"))
    assert.equal(header .. ".***.***", r.matches.jwt.samples[1])
    assert_masked(r, { payload, sig })
  end)
end)

describe("dlp options", function()
  it("reports a type only at its minimum count", function()
    local one = dlp.scan("4111111111111111", { min_counts = { credit_card = 2 } })
    assert.is_nil(one.matches.credit_card)
    local two = dlp.scan("4111111111111111 5555555555554444", { min_counts = { credit_card = 2 } })
    assert.equal(2, count(two, "credit_card"))
    assert.equal(2, two.total)
  end)
  it("runs custom Lua patterns with their own minimum", function()
    local opts = { detectors = {}, custom = { { name = "employee_id", pattern = "EMP%-%d%d%d%d%d%d", min = 2 },
      { name = "project", pattern = "PROJECT%-ORION" } } }
    local r = dlp.scan("EMP-123456 and EMP-654321, codename PROJECT-ORION", opts)
    assert.equal(2, count(r, "employee_id"))
    assert.same({ "EM******56", "EM******21" }, r.matches.employee_id.samples)
    assert.equal(1, count(r, "project"))
    assert_masked(r, { "EMP-123456", "PROJECT-ORION" })
    assert.is_nil(dlp.scan("EMP-123456", opts).matches.employee_id)
    assert.is_nil(r.matches.credit_card)
    assert.has_error(function() dlp.scan("x", { custom = { { name = "bad", pattern = "[a" } } }) end)
    assert.has_error(function() dlp.scan("x", { detectors = { "nope" } }) end)
    -- a pattern that can match empty does not loop
    assert.equal(1, count(dlp.scan("abc", { detectors = {}, custom = { { name = "e", pattern = "b*" } } }), "e"))
    -- a pattern that backtracks for hours on this text gives up at once, naming itself
    local ok, err = pcall(dlp.scan, ("a"):rep(4000), { detectors = {}, custom = { { name = "aaa", pattern = ("a-"):rep(12) .. "b" } } })
    assert.is_false(ok)
    assert.equal("dlp: custom pattern 'aaa': pattern too complex", err)
  end)
  it("selects detectors", function()
    local r = dlp.scan("4111111111111111 536-22-1234", { detectors = { "ssn" } })
    assert.is_nil(r.matches.credit_card)
    assert.equal(1, count(r, "ssn"))
  end)
end)

describe("dlp streaming", function()
  it("counts every match once across chunk boundaries, whatever the feed sizes", function()
    local parts, n, filler = {}, 0, ("lorem ipsum dolor sit amet "):rep(40)
    local i, size = 0, 0
    while size < 3 * 1024 * 1024 do
      i = i + 1
      parts[#parts + 1] = filler:sub(1, 500 + (i * 7919) % 600)
      parts[#parts + 1] = i % 2 == 0 and " 4111 1111 1111 1111 " or " AKIAIOSFODNN7EXAMPLE "
      size = size + #parts[#parts - 1] + #parts[#parts]
      n = n + 1
    end
    local text = table.concat(parts)
    local r = dlp.scan(text, { detectors = { "credit_card", "aws_access_key" } })
    assert.equal(n, count(r, "credit_card") + count(r, "aws_access_key"))
    assert.equal(#text, r.bytes)
    local s, pos, k = dlp.stream { detectors = { "credit_card", "aws_access_key" } }, 1, 0
    while pos <= #text do
      k = k + 1
      local len = 1 + (k * 104729) % 70000
      s:feed(text:sub(pos, pos + len - 1))
      pos = pos + len
    end
    local r2 = s:finish()
    assert.equal(count(r, "credit_card"), count(r2, "credit_card"))
    assert.equal(count(r, "aws_access_key"), count(r2, "aws_access_key"))
  end)
  it("finds a card split exactly at a window edge", function()
    local s = dlp.stream { detectors = { "credit_card" } }
    local pad = ("x"):rep(dlp.CHUNK + dlp.OVERLAP + dlp.MARGIN - 8)
    s:feed(pad .. "4111 1111")
    s:feed(" 1111 1111 end")
    assert.equal(1, count(s:finish(), "credit_card"))
  end)
end)

describe("dlp files", function()
  it("extracts text from docx and xlsx", function()
    local r = dlp.scan_file(fixture("cards.docx"), { name = "Q3 cards.docx" })
    assert.equal("completed", r.status)
    assert.equal("docx", r.extractor)
    assert.equal(1, count(r, "credit_card")) -- split over two runs in the XML
    assert.equal(1, count(r, "aws_access_key"))
    assert.equal(1, count(r, "ssn"))
    local x = dlp.scan_file(fixture("ssn.xlsx"), { mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" })
    assert.equal("xlsx", x.extractor)
    assert.equal(2, count(x, "ssn"))
    assert.equal(1, count(x, "credit_card"))
    assert_masked(x, { "536-22-1234", "5555555555554444" })
  end)
  it("reports encrypted, too large, unsupported and failed files", function()
    assert.equal("encrypted", dlp.scan_file(fixture("encrypted.zip"), { name = "a.zip" }).status)
    local ole = "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1" .. ("\0"):rep(500)
    assert.equal("encrypted", dlp.scan_file(ole, { name = "locked.docx" }).status)
    local big = dlp.scan_file(("4111111111111111 "):rep(100), { name = "a.txt", max_size = 1000 })
    assert.equal("too_large", big.status)
    assert.is_nil(big.matches.credit_card)
    assert.equal("unsupported", dlp.scan_file("\x89PNG\r\n\26\n\0\0\0", { name = "x.png", mime = "image/png" }).status)
    local bad = dlp.scan_file("PK\3\4 not really a zip", { name = "broken.docx" })
    assert.equal("failed", bad.status)
    assert.matches("^zip: ", bad.reason)
    assert.equal("failed", dlp.scan_file("plain text", { name = "fake.xlsx" }).status)
  end)
  it("scans plain text by extension, mime or content", function()
    assert.equal(1, count(dlp.scan_file("x 536-22-1234", { name = "people.csv" }), "ssn"))
    assert.equal(1, count(dlp.scan_file("x 536-22-1234", { mime = "text/plain; charset=utf-8" }), "ssn"))
    assert.equal(1, count(dlp.scan_file("x 536-22-1234", {}), "ssn"))
  end)
end)

describe("dlp PDF files", function()
  local function pdf_fixture(name) return require("helpers").fixture("pdf/" .. name) end

  it("finds the card number and the AWS key in a PDF's text, samples masked", function()
    local r = dlp.scan_file(pdf_fixture("cards.pdf"), { name = "vendors.pdf" })
    assert.equal("completed", r.status)
    assert.equal("pdf", r.extractor)
    assert.equal(1, count(r, "credit_card"))
    assert.same({ "4111********1111" }, r.matches.credit_card.samples)
    assert.equal(1, count(r, "aws_access_key"))
    assert.same({ "AKIA************MPLE" }, r.matches.aws_access_key.samples)
    assert.equal(1, count(r, "aws_secret_key"))
    assert_masked(r, { "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" })
  end)

  it("reads every page, and knows a PDF by mime type or magic bytes as well as by name", function()
    local content = pdf_fixture("multipage.pdf")
    for _, opts in ipairs({ { name = "Payroll.PDF" }, { mime = "application/pdf" }, { name = "payroll.bin" }, {} }) do
      local r = dlp.scan_file(content, opts)
      assert.equal("completed", r.status)
      assert.equal("pdf", r.extractor)
      assert.equal(1, count(r, "credit_card")) -- page 2
      assert.equal(1, count(r, "ssn"))         -- page 3
    end
    local text = pdf.text(content)
    assert.matches("^Page one:.*\nPage two:.*\nPage three:", text)
  end)

  it("reports encrypted, damaged and too large PDFs", function()
    local enc = dlp.scan_file(pdf_fixture("encrypted.pdf"), { name = "locked.pdf" })
    assert.equal("encrypted", enc.status)
    assert.same({}, enc.matches)
    local bad = dlp.scan_file(pdf_fixture("damaged.pdf"), { name = "cut.pdf" })
    assert.equal("failed", bad.status)
    assert.matches("^damaged: ", bad.reason)
    assert.equal("failed", dlp.scan_file("plain text, not a PDF", { name = "fake.pdf" }).status)
    -- big.pdf: 9 KB of deflated streams, ~35 KB of text; the cap applies to the text too
    local big = pdf_fixture("big.pdf")
    assert.is_true(#big < 10000)
    local r = dlp.scan_file(big, { name = "big.pdf", max_size = 10000 })
    assert.equal("too_large", r.status)
    assert.is_nil(r.matches.credit_card)
    local all = dlp.scan_file(big, { name = "big.pdf" })
    assert.equal("completed", all.status)
    assert.equal(1000, count(all, "credit_card"))
  end)

  it("reads the Box sandbox's seeded card-number PDF (what the periodic and real-time scans download)", function()
    local t = require("sandbox.box").new { seed = 1 }
    local pdfs = {}
    for _, id in ipairs(t:sensitive_files("card")) do
      if t:find_file(id).name:match("%.pdf$") then pdfs[#pdfs + 1] = id end
    end
    assert.equal(1, #pdfs)
    local f = t:find_file(pdfs[1])
    assert.equal("%PDF-", f.content:sub(1, 5))
    local r = dlp.scan_file(t:file_content(f.id), { name = f.name })
    assert.equal("completed", r.status)
    assert.equal("pdf", r.extractor)
    assert.equal(2, count(r, "credit_card"))
    assert.same({ "4111********1111", "5555********4444" }, r.matches.credit_card.samples)
  end)

  it("says unsupported when poppler cannot be loaded", function()
    local real = pdf
    _G.pdf = { text = function() return nil, "unavailable", "cannot load libpoppler-glib.so.8" end }
    local ok, r = pcall(dlp.scan_file, pdf_fixture("cards.pdf"), { name = "a.pdf" })
    _G.pdf = real
    assert(ok, r)
    assert.equal("unsupported", r.status)
    assert.matches("libpoppler", r.reason)
  end)
end)

describe("dlp speed paths", function()
  -- the regex candidates (host regex module) and the Lua passes must give the same findings
  local function both(text, opts)
    local saved = dlp.use_regex
    dlp.use_regex = true
    local ok1, a = pcall(dlp.scan, text, opts)
    dlp.use_regex = false
    local ok2, b = pcall(dlp.scan, text, opts)
    dlp.use_regex = saved
    assert(ok1, a)
    assert(ok2, b)
    return a, b
  end

  it("uses the regex module when the host has it", function()
    assert.is_table(regex)
    assert.is_true(dlp.use_regex)
  end)

  it("finds exactly what the Lua passes find, on random digit, separator and letter soup", function()
    local pieces = { "4111 1111 1111 1111", "5555555555554444", "3782-822463-10005", "4222222222222", "536-22-1234",
      "536 22 1234", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "4111-1111-1111-1111",
      "6011111111111117", "2223003122003222", "001-01-0001", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "378282246310005",
      "AKIAIOSFODNN7EXAMPLE", "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "-----BEGIN RSA PRIVATE KEY-----",
      crypto.b64url('{"alg":"HS256"}') .. ".eyJ4IjoxfQ.c2ln", "FR1420041010050500013M02606" }
    local alphabets = { "0123456789012345678901234567890123456789  --AZGBDEx\n", "0123456789 -", "45 -",
      "0123456789 -  --ABx" }
    local rnd = 12345
    local function rand(n) rnd = (rnd * 1103515245 + 12345) % 2147483648; return rnd % n + 1 end
    local found, differ = 0, {}
    for round = 1, 400 do
      local alpha, t = alphabets[round % #alphabets + 1], {}
      for _ = 1, rand(2000) + 50 do
        if rand(100) <= 3 then t[#t + 1] = pieces[rand(#pieces)]
        else local k = rand(#alpha); t[#t + 1] = alpha:sub(k, k) end
      end
      local text = table.concat(t)
      local a, b = both(text)
      found = found + a.total
      if not (a.total == b.total and json.encode(a.matches) == json.encode(b.matches)) then
        differ[#differ + 1] = text
      end
      for kind, m in pairs(a.matches) do
        assert.same(b.matches[kind], m, kind .. " differs on: " .. text:sub(1, 300))
      end
      for kind in pairs(b.matches) do assert.is_table(a.matches[kind], kind .. " missed on: " .. text:sub(1, 300)) end
    end
    assert.same({}, differ)
    assert.is_true(found > 2000, "the soup should hold findings: " .. found)
  end)

  it("keeps the edge cases of runs: separators either side, mixed kinds, long chains, 19 digits", function()
    local cases = {
      "1 536-22-1234", "1-536-22-1234", "536-22-1234-5", "536-22-1234 5", "536 22 1234-5", "9-536 22 1234",
      "12--4111 1111 1111 1111", "4111 1111 1111 1111-5555 5555 5555 4444", "4111-1111 1111 1111",
      "6011 0000 0000 0000 004", "4111111111111111111 4111111111111111118", "x4111111111111111x",
      "4 5 5 5 5 5 5 5 5 5 5 5 5 5 5 4 4 4 4", "GB82WEST12345698765432 aGB82WEST12345698765432 9GB82 WEST 1234 5698 7654 32",
      ("1 "):rep(5000) .. "4111111111111111", ("12-"):rep(3000) .. "536-22-1234",
    }
    for _, text in ipairs(cases) do
      local a, b = both(text)
      assert.same(b.matches, a.matches, text)
    end
  end)

  it("yields to the loop between windows when scanning inside a task", function()
    assert.is_truthy(sched.current(), "specs run inside a task")
    local ticks = 0
    local t = sched.spawn(function() while true do ticks = ticks + 1; sched.sleep(0) end end)
    local text = ("lorem ipsum 4111 1111 1111 1111 dolor "):rep(100000) -- ~3.8 MB: three windows or more
    local r = dlp.scan(text, { detectors = { "credit_card" } })
    local during = ticks
    dlp.YIELD = false
    local before = ticks
    dlp.scan(text, { detectors = { "credit_card" } })
    local still = ticks
    dlp.YIELD = true
    t:cancel()
    assert.equal(100000, count(r, "credit_card"))
    assert.is_true(during >= 2, "the other task ran " .. during .. " times during the scan")
    assert.equal(before, still) -- and does not when told not to
  end)
end)
