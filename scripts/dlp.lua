-- dlp.lua — content inspection: detectors that count sensitive data and keep masked samples only.
--
--   dlp.scan(text, opts) -> {status = "completed", matches = {type = {count =, samples = {...}}}, bytes =, total =}
--   dlp.stream(opts) -> s; s:feed(chunk) ...; s:finish() -> result        (bounded memory, chunk overlap)
--   Inside a task, scan, scan_file and feed yield to the event loop after each 1 MiB window (sched.sleep(0)).
--   dlp.scan_file(content, {name =, mime =, max_size =, detectors =, custom =, min_counts =}) -> result
--       result.status: completed | too_large | encrypted | unsupported | failed (with result.reason)
--       result.extractor: text | docx | xlsx | pptx | zip | pdf (see dlp/extract.lua)
--
-- opts: detectors = {"credit_card", ...} (nil = all), custom = {{name =, pattern =, min =}},
--       min_counts = {credit_card = 2}: a type is reported only when its count reaches its minimum,
--       values = {"aws_access_key"}: those types' matched texts are returned too (matches[type].values,
--       distinct, at most dlp.VALUES), to be recognised (an access key id among the grants cachost knows);
--       they are the caller's to keep out of the store: only masked samples are recorded.
--
-- Detectors (built-in names): credit_card, ssn, iban, aws_access_key, aws_secret_key, private_key, jwt.
--  * credit_card: 13-19 digits, optionally in groups split by one space or dash, a known IIN prefix with its
--    lengths (Visa, Mastercard incl. 2221-2720, Amex, Discover, Diners, JCB, UnionPay, Maestro) and Luhn.
--    Sample: first 4 and last 4 digits ("4111********1111").
--  * ssn: ddd-dd-dddd or ddd dd dddd (one separator kind; 9 bare digits are too ambiguous and are not
--    reported); invalid ranges excluded: area 000, 666, 900-999; group 00; serial 0000; and the published
--    fakes 078-05-1120 (Woolworth), 219-09-9999 and 123-45-6789.  Sample "***-**-6789".
--  * iban: country code + 2 check digits + BBAN, compact or in groups of 4, exact length per country, mod-97.
--    Sample: country, check digits and last 4 ("GB82**************5432").
--  * aws_access_key: AKIA/ASIA + 16 of [A-Z0-9], whole word.  Sample "AKIA************MPLE".
--  * aws_secret_key: a 40-character [A-Za-z0-9/+] word with upper, lower and digits within 256 bytes of an
--    access key id or of the word "secret"/"Secret"/"SECRET".  Sample: last 4 only.
--  * private_key: "-----BEGIN [TYPE ]PRIVATE KEY-----" blocks.  Sample "-----BEGIN RSA PRIVATE KEY----- ***".
--  * jwt: three base64url parts whose first decodes to a JSON object with a string "alg".
--    Sample: the header part, then "***.***".
--  * speed: with the host's `regex` module (PCRE2, JIT) the card, SSN and IBAN candidates and the literal
--    prefilters come from exact regexes; the checks stay in Lua.  Without it (dlp.use_regex = false, or a
--    state without the module) pure Lua passes give the same findings.
--  * custom: Lua patterns (string.find semantics; anchors and captures allowed, the whole match counts).
--    A malformed pattern raises (policy bug).  Sample: first 2 and last 2 characters (all masked if < 8).
--    They come from policies and run in the main state, so through the host's bounded matcher (lpattern):
--    a pattern that backtracks too much on a text raises "dlp: custom pattern 'x': pattern too complex"
--    (a policy bug: the engine disables the policy) instead of holding the process.
--  * A built-in regex that reaches PCRE2's limits on a hostile text ("too_complex") fails the scan:
--    status "failed", reason "too_complex: ..." (the file's doing, not the policy's).
local M = {}

M.SAMPLES = 3          -- masked samples kept per type
M.VALUES = 100         -- distinct matched texts returned per type asked for (opts.values)
M.OVERLAP = 8192       -- longest match found across a chunk boundary (a JWT can be long)
M.MARGIN = 256         -- context a detector may need after a match (frontiers, proximity)
M.CHUNK = 1 << 20
M.MAX_SIZE = 64 << 20  -- scan_file default
M.YIELD = true         -- yield to the loop between windows when inside a task (see pause)

local find, byte, sub, rep = string.find, string.byte, string.sub, string.rep
local bounded_find = type(lpattern) == "table" and lpattern.find or find   -- for patterns from policies

local function stars(n) return rep("*", n) end

-- keep the first `front` and last `back` characters of s, the rest as stars
local function mask(s, front, back)
  if #s <= front + back then return stars(#s) end
  return sub(s, 1, front) .. stars(#s - front - back) .. sub(s, -back)
end
M.mask = mask

---------------------------------------------------------------------------------------------------------
-- checks

local function luhn(d)
  local sum, alt = 0, false
  for i = #d, 1, -1 do
    local v = byte(d, i) - 48
    if alt then v = v * 2; if v > 9 then v = v - 9 end end
    sum = sum + v
    alt = not alt
  end
  return sum % 10 == 0
end
M.luhn = luhn

-- known issuer prefixes and the lengths they issue
local function iin_ok(d, n)
  local p1 = byte(d, 1) - 48
  local p2, p3, p4 = tonumber(sub(d, 1, 2)), tonumber(sub(d, 1, 3)), tonumber(sub(d, 1, 4))
  if p1 == 4 then return n == 13 or n == 16 or n == 19 end                                 -- Visa
  if p2 >= 51 and p2 <= 55 or p4 >= 2221 and p4 <= 2720 then return n == 16 end           -- Mastercard
  if p2 == 34 or p2 == 37 then return n == 15 end                                         -- Amex
  if p4 == 6011 or p2 == 65 or p3 >= 644 and p3 <= 649 then return n >= 16 end            -- Discover
  if p4 >= 3528 and p4 <= 3589 then return n >= 16 end                                    -- JCB
  if p2 == 36 or p2 == 38 or p2 == 39 or p3 >= 300 and p3 <= 305 then return n >= 14 end  -- Diners
  if p2 == 62 then return n >= 16 end                                                     -- UnionPay
  if p2 == 50 or p2 >= 56 and p2 <= 69 then return n >= 13 end                            -- Maestro
  return false
end

local FAKE_SSN = { ["078051120"] = true, ["219099999"] = true, ["123456789"] = true }
local function ssn_ok(a, g, s)
  local area = tonumber(a)
  if area == 0 or area == 666 or area >= 900 then return false end
  if g == "00" or s == "0000" then return false end
  return not FAKE_SSN[a .. g .. s]
end
M.ssn_ok = ssn_ok

local IBAN_LEN = {
  AD = 24, AE = 23, AL = 28, AT = 20, AZ = 28, BA = 20, BE = 16, BG = 22, BH = 22, BR = 29, BY = 28, CH = 21,
  CR = 22, CY = 28, CZ = 24, DE = 22, DK = 18, DO = 28, EE = 20, EG = 29, ES = 24, FI = 18, FO = 18, FR = 27,
  GB = 22, GE = 22, GI = 23, GL = 18, GR = 27, GT = 28, HR = 21, HU = 28, IE = 22, IL = 23, IQ = 23, IS = 26,
  IT = 27, JO = 30, KW = 30, KZ = 20, LB = 28, LC = 32, LI = 21, LT = 20, LU = 20, LV = 21, MC = 27, MD = 24,
  ME = 22, MK = 19, MR = 27, MT = 31, MU = 30, NL = 18, NO = 15, PK = 24, PL = 28, PS = 29, PT = 25, QA = 29,
  RO = 24, RS = 22, SA = 24, SC = 31, SE = 24, SI = 19, SK = 24, SM = 27, ST = 25, SV = 28, TL = 23, TN = 24,
  TR = 26, UA = 29, VA = 22, VG = 24, XK = 20,
}
M.IBAN_LEN = IBAN_LEN

local function iban_ok(s)
  local r = sub(s, 5) .. sub(s, 1, 4)
  local m = 0
  for i = 1, #r do
    local c = byte(r, i)
    if c >= 65 then -- letter: two digits 10..35
      m = (m * 100 + c - 55) % 97
    else
      m = (m * 10 + c - 48) % 97
    end
  end
  return m == 1
end
M.iban_ok = iban_ok

---------------------------------------------------------------------------------------------------------
-- detectors: det(text, emit) calls emit(type, s, e, sample) for each match at text[s..e]

-- an IBAN whose country code starts at s (the digit pass found its check digits at s+2)
local function iban_at(text, s, emit)
  local cc = sub(text, s, s + 1)
  local want = IBAN_LEN[cc]
  if not want or (s > 1 and find(sub(text, s - 1, s - 1), "%w")) then return end
  local compact, i = sub(text, s, s + 3), s + 4
  while #compact < want do
    local cs, ce = find(text, "^ ?[%u%d]", i)
    if not cs then break end
    compact = compact .. sub(text, ce, ce)
    i = ce + 1
  end
  if #compact == want and not find(text, "^[%w]", i) and iban_ok(compact) then
    emit("iban", s, i - 1, sub(compact, 1, 4) .. stars(want - 8) .. sub(compact, -4))
  end
end

-- one pass over digit runs feeds the card, SSN and IBAN checks (a single pattern scan is the main cost)
local function digit_runs(text, emit, want_card, want_ssn, want_iban)
  local pos = 1
  while true do
    local s, e = find(text, "%d[%d %-]*%d", pos)
    if not s then return end
    pos = e + 1
    if want_iban and s > 2 then
      local a, b, c = byte(text, s - 2, s - 1)
      c = byte(text, s + 1)
      if a >= 65 and a <= 90 and b >= 65 and b <= 90 and c >= 48 and c <= 57 then iban_at(text, s - 2, emit) end
    end
    if e - s < 10 or not (want_card or want_ssn) then goto next end -- shorter than ddd-dd-dddd or a card
    do
    -- groups of digits separated by exactly one separator; a longer gap starts a new segment
    local groups, starts, ends, seps = {}, {}, {}, {}
    local i = s
    while i <= e do
      local gs, ge = find(text, "^%d+", i)
      groups[#groups + 1], starts[#starts + 1], ends[#ends + 1] = sub(text, gs, ge), gs, ge
      local ss, se = find(text, "^[ %-]+", ge + 1)
      if not ss or ss > e then break end
      seps[#groups] = se == ss and sub(text, ss, ss) or false -- separator after group #groups
      i = se + 1
    end
    local ng = #groups
    if want_ssn and ng >= 3 then
      -- ddd?dd?dddd with one separator kind, not continued by that same separator on either side
      for gi = 1, ng - 2 do
        local sep = seps[gi]
        if sep and seps[gi + 1] == sep and #groups[gi] == 3 and #groups[gi + 1] == 2 and #groups[gi + 2] == 4
            and seps[gi - 1] ~= sep and seps[gi + 2] ~= sep and ssn_ok(groups[gi], groups[gi + 1], groups[gi + 2]) then
          emit("ssn", starts[gi], ends[gi + 2], "***-**-" .. groups[gi + 2])
        end
      end
    end
    if want_card then
      local gi = 1
      while gi <= ng do
        -- try the longest card starting at group gi (same separator throughout, at most 19 digits)
        local digits, found = "", nil
        for gj = gi, ng do
          if gj > gi and (not seps[gj - 1] or (seps[gi] and seps[gj - 1] ~= seps[gi])) then break end
          digits = digits .. groups[gj]
          local n = #digits
          if n > 19 then break end
          if n >= 13 and iin_ok(digits, n) and luhn(digits) then found = { gj, digits } end
        end
        if found then
          local d = found[2]
          emit("credit_card", starts[gi], ends[found[1]], sub(d, 1, 4) .. stars(#d - 8) .. sub(d, -4))
          gi = found[1] + 1
        else
          gi = gi + 1
        end
      end
    end
    end
    ::next::
  end
end

-- The same findings from PCRE2 (the host's `regex` module, JIT-compiled): exact candidate regexes replace
-- the Lua digit-run pass, which paid an unanchored Lua find per byte and tables per run.  Only candidates
-- come back to Lua; the checks (IIN, Luhn, SSN ranges, mod-97) stay here.  Without the module (a vm state)
-- the Lua pass above runs; the spec compares both.
--  * IBAN: two capitals and two digits not after a letter or digit (what the run pass tried at a run start).
--  * SSN: ddd S dd S dddd, whole digit groups, not continued by the same single separator S on either side
--    (the run pass's seps[gi - 1] ~= sep and seps[gi + 2] ~= sep).  SSN candidates never overlap.
--  * cards: a chain, i.e. maximal digit groups joined by single separators (a longer gap ends the run pass's
--    card search, which never spans it), in which at least 13 digits from a group start are joined by one
--    separator kind (or none); the run pass's card search runs on each such chain.
-- The wanted kinds are alternatives of one regex, so the text is scanned once.  A match tells its kind by
-- shape: a capital first is an IBAN (4 bytes), 11 bytes an SSN, 13 or more a chain.  What the alternation
-- skips: a chain may hold SSNs (searched in the chain alone: its ends are frontiers for them), and the
-- check digits of an IBAN may start a chain or an SSN (the scan resumes on them).  Nothing else can start
-- inside a candidate.
local RX = {
  iban = "(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}",
  ssn = "(?<![0-9]|[0-9] )[0-9]{3} [0-9]{2} [0-9]{4}(?![0-9]| [0-9])"
    .. "|(?<![0-9]|[0-9]-)[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9]|-[0-9])",
  card = "(?<![0-9]|[0-9][ \\-])(?=(?:[0-9][ \\-]?){12}[0-9])"         -- a chain of 13 digits or more,
    .. "(?=(?:[0-9]++[ \\-](?=[0-9]))*?(?:(?:[0-9] ?){12}[0-9]|(?:[0-9]-?){12}[0-9]))" -- 13 with one kind
    .. "[0-9]++(?:[ \\-][0-9]++)*+",                                    -- the whole chain
}
local RE -- compiled: RE.ssn, and RE[key] for each combination of wanted kinds, on first use
if type(regex) == "table" and regex.compile then
  RE = { ssn = assert(regex.compile(RX.ssn)) }
end
M.use_regex = RE ~= nil -- the spec turns it off to compare with the Lua pass

local function candidates_re(want_card, want_ssn, want_iban)
  local key = (want_card and "c" or "") .. (want_ssn and "s" or "") .. (want_iban and "i" or "")
  local re = RE[key]
  if not re then
    local alts = {}
    if want_card then alts[#alts + 1] = RX.card end -- first: a chain and an SSN may start at one place
    if want_ssn then alts[#alts + 1] = RX.ssn end
    if want_iban then alts[#alts + 1] = RX.iban end
    re = assert(regex.compile(table.concat(alts, "|")))
    RE[key] = re
  end
  return re
end

local groups, starts, ends, seps = {}, {}, {}, {} -- reused: only [1..ng] is read
-- the card search of the run pass on one chain text[cs..ce]: the longest card from each group on
local function chain_cards(text, cs, ce, emit)
  local ng = 0
  local i = cs
  while true do
    local _, ge = find(text, "^%d+", i)
    ng = ng + 1
    groups[ng], starts[ng], ends[ng] = sub(text, i, ge), i, ge
    if ge >= ce then break end
    seps[ng] = byte(text, ge + 1) -- one separator within a chain
    i = ge + 2
  end
  local gi = 1
  while gi <= ng do
    local digits, found, d, sep = "", nil, nil, seps[gi]
    for gj = gi, ng do
      if gj > gi and seps[gj - 1] ~= sep then break end
      digits = digits .. groups[gj]
      local n = #digits
      if n > 19 then break end
      if n >= 13 and iin_ok(digits, n) and luhn(digits) then found, d = gj, digits end
    end
    if found then
      emit("credit_card", starts[gi], ends[found], sub(d, 1, 4) .. stars(#d - 8) .. sub(d, -4))
      gi = found + 1
    else
      gi = gi + 1
    end
  end
end

local function ssn_at(text, s, e, emit)
  if ssn_ok(sub(text, s, s + 2), sub(text, s + 4, s + 5), sub(text, s + 7, e)) then
    emit("ssn", s, e, "***-**-" .. sub(text, s + 7, e))
  end
end

local function digit_regex(text, emit, want_card, want_ssn, want_iban)
  local re, pos = candidates_re(want_card, want_ssn, want_iban), 1
  while true do
    local s, e = re:find(text, pos)
    if not s then
      if e then error({ dlp_failed = "too_complex: the card, SSN and IBAN search" }) end
      return
    end
    local c = byte(text, s)
    if c >= 65 then                -- IBAN; its check digits may start something else
      iban_at(text, s, emit)
      pos = s + 2
    elseif e - s == 10 then        -- SSN
      ssn_at(text, s, e, emit)
      pos = e + 1
    else                           -- chain
      if want_ssn then
        local chain, off, p = sub(text, s, e), s - 1, 1
        while true do
          local ss, se = RE.ssn:find(chain, p)
          if not ss then
            if se then error({ dlp_failed = "too_complex: the SSN search" }) end
            break
          end
          ssn_at(text, ss + off, se + off, emit)
          p = se + 1
        end
      end
      chain_cards(text, s, e, emit)
      pos = e + 1
    end
  end
end

-- plain literals the detectors look for first: PCRE2's JIT finds them several times faster than string.find
-- (memchr stops at every "e" of English text)
local LIT = {}
if RE then
  for _, lit in ipairs { "ecret", "ECRET", "eyJ", "-----BEGIN " } do LIT[lit] = assert(regex.compile(lit)) end
end
local function find_lit(text, lit, pos)
  local re = M.use_regex and LIT[lit]
  if re then return re:find(text, pos) end
  return find(text, lit, pos, true)
end

local AKID = "^A[KS]IA[%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d]%f[^%w]"
local SECRET = "%f[%w/+]" .. rep("[%w/+]", 40) .. "%f[^%w/+]"
local SECRET_RE = RE and assert(regex.compile("(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"))

local function aws_ids(text)
  local ids, pos = {}, 1
  while true do
    local s = find(text, "IA", pos, true)
    if not s then return ids end
    pos = s + 2
    s = s - 2
    if s >= 1 and byte(text, s) == 65 and (byte(text, s + 1) == 75 or byte(text, s + 1) == 83) then
    if (s == 1 or not find(sub(text, s - 1, s - 1), "[%w]")) then
      local _, e = find(text, AKID, s)
      if e then ids[#ids + 1] = { s, e } end
    end
    end
  end
end

local function aws_access(text, emit, ids)
  for _, m in ipairs(ids or aws_ids(text)) do
    local id = sub(text, m[1], m[2])
    emit("aws_access_key", m[1], m[2], sub(id, 1, 4) .. stars(12) .. sub(id, -4))
  end
end

local function aws_secret(text, emit, ids)
  local near = {}
  for _, m in ipairs(ids or aws_ids(text)) do near[#near + 1] = m[1] end
  local pos = 1
  while true do
    local s = find_lit(text, "ecret", pos) -- plain finds are far cheaper than a class pattern
    if not s then break end
    near[#near + 1] = s
    pos = s + 5
  end
  pos = 1
  while true do
    local s = find_lit(text, "ECRET", pos)
    if not s then break end
    near[#near + 1] = s
    pos = s + 5
  end
  table.sort(near)
  local from = 1 -- windows are visited in order, so each secret is reported once
  for _, p in ipairs(near) do
    -- search a copy of the window only: an unanchored find over the rest of the text would be quadratic
    local ws = math.max(from, p - 256)
    local w = sub(text, ws > 1 and ws - 1 or 1, p + 256 + 81) -- room for the frontier after a match
    local off = (ws > 1 and ws - 1 or 1) - 1
    local i = ws - off
    while true do
      local s, e
      if M.use_regex and SECRET_RE then s, e = SECRET_RE:find(w, i) else s, e = find(w, SECRET, i) end
      if not s or s + off > p + 256 then break end
      local k = sub(w, s, e)
      if find(k, "%u") and find(k, "%l") and find(k, "%d") then
        emit("aws_secret_key", s + off, e + off, stars(36) .. sub(k, -4))
      end
      i = e + 1
      from = e + off + 1
    end
  end
end

local function private_key(text, emit)
  local pos = 1
  while true do
    local s = find_lit(text, "-----BEGIN ", pos)
    if not s then return end
    local _, e, kind = find(text, "^%-%-%-%-%-BEGIN ([%u ]-)PRIVATE KEY%-%-%-%-%-", s)
    if e then
      emit("private_key", s, e, "-----BEGIN " .. kind .. "PRIVATE KEY----- ***")
      pos = e + 1
    else
      pos = s + 11
    end
  end
end

local function jwt(text, emit)
  local pos = 1
  while true do
    local s = find_lit(text, "eyJ", pos)
    if not s then return end
    pos = s + 3
    if s == 1 or not find(sub(text, s - 1, s - 1), "[%w_%-]") then
      local _, e, header = find(text, "^(eyJ[%w_%-]*)%.[%w_%-]+%.[%w_%-]*", s)
      if e and not find(text, "^[%w_%-]", e + 1) then
        local raw = crypto.unb64url(header)
        local h = raw and json.decode(raw)
        if type(h) == "table" and type(h.alg) == "string" then
          emit("jwt", s, e, header .. ".***.***")
          pos = e + 1
        end
      end
    end
  end
end

M.TYPES = { "credit_card", "ssn", "iban", "aws_access_key", "aws_secret_key", "private_key", "jwt" }

local function custom_sample(m)
  if #m < 8 then return stars(#m) end
  return mask(m, 2, 2)
end

local function run_detectors(text, want, custom, emit)
  if want.credit_card or want.ssn or want.iban then
    (M.use_regex and RE and digit_regex or digit_runs)(text, emit, want.credit_card, want.ssn, want.iban)
  end
  if want.aws_access_key or want.aws_secret_key then
    local ids = aws_ids(text)
    if want.aws_access_key then aws_access(text, emit, ids) end
    if want.aws_secret_key then aws_secret(text, emit, ids) end
  end
  if want.private_key then private_key(text, emit) end
  if want.jwt then jwt(text, emit) end
  for _, c in ipairs(custom) do
    local pos = 1
    while pos <= #text + 1 do
      local ok, s, e = pcall(bounded_find, text, c.pattern, pos)
      if not ok then error(("dlp: custom pattern '%s': %s"):format(c.name, tostring(s):gsub("^[^:]*:%d+: ", "")), 0) end
      if not s then break end
      if e >= s then emit(c.name, s, e, custom_sample(sub(text, s, e))) end
      pos = (e >= s and e or s) + 1
    end
  end
end

---------------------------------------------------------------------------------------------------------
-- options, streaming and results

-- dlp.check_options(opts) -> list of {field, problem} (empty when the options are sound).  Policies are
-- checked with it at load, so a wrong type is refused there rather than raised on the first file.
function M.check_options(opts)
  local errs = {}
  local function bad(field, fmt, ...) errs[#errs + 1] = { field, fmt:format(...) } end
  local known = {}
  for _, t in ipairs(M.TYPES) do known[t] = true end
  if opts.detectors ~= nil then
    if type(opts.detectors) ~= "table" then bad("detectors", "must be a list of detector names, got a %s", type(opts.detectors))
    else
      for _, d in ipairs(opts.detectors) do
        if not known[d] then bad("detectors", "unknown detector '%s' (%s)", tostring(d), table.concat(M.TYPES, ", ")) end
      end
    end
  end
  if opts.min_counts ~= nil then
    if type(opts.min_counts) ~= "table" then bad("min_counts", "must be a table of type = count, got a %s", type(opts.min_counts))
    else
      for k, v in pairs(opts.min_counts) do
        if math.type(v) ~= "integer" or v < 1 then bad("min_counts." .. tostring(k), "must be a whole number of at least 1") end
      end
    end
  end
  if opts.values ~= nil then
    if type(opts.values) ~= "table" then bad("values", "must be a list of detector names, got a %s", type(opts.values))
    else
      for _, d in ipairs(opts.values) do
        if not known[d] then bad("values", "unknown detector '%s' (%s)", tostring(d), table.concat(M.TYPES, ", ")) end
      end
    end
  end
  if opts.custom ~= nil then
    if type(opts.custom) ~= "table" then bad("custom", "must be a list of {name =, pattern =, min =}, got a %s", type(opts.custom))
    else
      for i, c in ipairs(opts.custom) do
        local f = ("custom[%d]"):format(i)
        if type(c) ~= "table" or type(c.name) ~= "string" or type(c.pattern) ~= "string" then
          bad(f, "needs a name and a pattern (strings)")
        else
          local ok, err = pcall(bounded_find, "", c.pattern)
          if not ok then bad(f, "pattern '%s': %s", c.name, tostring(err):gsub("^[^:]*:%d+: ", "")) end
          if c.min ~= nil and (math.type(c.min) ~= "integer" or c.min < 1) then bad(f, "min must be a whole number of at least 1") end
        end
      end
    end
  end
  return errs
end

local function prepare(opts)
  opts = opts or {}
  local errs = M.check_options(opts)
  if errs[1] then error(("dlp: %s: %s"):format(errs[1][1], errs[1][2]), 3) end
  local want = {}
  if opts.detectors then
    for _, d in ipairs(opts.detectors) do want[d] = true end
  else
    for _, t in ipairs(M.TYPES) do want[t] = true end
  end
  local mins = {}
  for k, v in pairs(opts.min_counts or {}) do mins[k] = v end
  local custom = {}
  for _, c in ipairs(opts.custom or {}) do
    custom[#custom + 1] = { name = c.name, pattern = c.pattern }
    if c.min then mins[c.name] = c.min end
  end
  local values = {}
  for _, d in ipairs(opts.values or {}) do values[d] = true end
  return want, custom, mins, values
end

-- Between windows a scan inside a task lets the event loop run the other ready tasks (sched.sleep(0)), so
-- a 50 MB document does not stall webhooks and other instances; outside a task, or where the caller cannot
-- yield (a C boundary, a vm state without sched), it runs straight through.
local function pause()
  if M.YIELD and type(sched) == "table" and sched.current and sched.current() and coroutine.isyieldable() then
    sched.sleep(0)
  end
end

-- dlp.stream(opts): feed chunks of any size; each match is counted in exactly one window (by its end).
function M.stream(opts)
  local want, custom, mins, values = prepare(opts)
  local found = {}
  local st = { bytes = 0 }
  local buf, base = "", 0   -- buf holds text[base+1 .. base+#buf]
  local counted = 0         -- matches ending at or before this absolute offset were already counted
  local lo, hi
  local function emit(kind, s, e, sample)
    local ae = base + e
    if ae <= lo or ae > hi then return end
    local f = found[kind]
    if not f then f = { count = 0, samples = {} }; found[kind] = f end
    f.count = f.count + 1
    if #f.samples < M.SAMPLES then f.samples[#f.samples + 1] = sample end
    if values[kind] then
      local v = sub(buf, s, e)
      f.values = f.values or {}
      f.seen = f.seen or {}
      if not f.seen[v] and #f.values < M.VALUES then f.seen[v] = true; f.values[#f.values + 1] = v end
    end
  end
  local function window(final)
    lo = counted
    hi = final and base + #buf or base + #buf - M.MARGIN
    if hi <= lo then return end
    run_detectors(buf, want, custom, emit)
    counted = hi
    local keep = M.OVERLAP + M.MARGIN
    if #buf > keep then
      base = base + #buf - keep
      buf = sub(buf, -keep)
    end
  end
  function st.feed(_, chunk)
    st.bytes = st.bytes + #chunk
    buf = buf .. chunk
    if #buf >= M.CHUNK + M.OVERLAP + M.MARGIN then
      window(false)
      pause()
    end
  end
  function st.finish()
    window(true)
    local matches, total = {}, 0
    for kind, f in pairs(found) do
      if f.count >= (mins[kind] or 1) then
        f.seen = nil
        matches[kind] = f
        total = total + f.count
      end
    end
    return { status = "completed", matches = matches, bytes = st.bytes, total = total }
  end
  return st
end

-- dlp.scan(text, opts): a whole string; windows bound the detectors' temporary memory on big input.
function M.scan(text, opts)
  if type(text) ~= "string" then error("dlp.scan: text must be a string", 2) end
  local s = M.stream(opts)
  local step = M.CHUNK
  for i = 1, #text, step do s:feed(sub(text, i, i + step - 1)) end
  return s:finish()
end

---------------------------------------------------------------------------------------------------------
-- files: pick an extractor by name, mime and magic bytes

local extract = require "dlp.extract"

function M.scan_file(content, opts)
  opts = opts or {}
  if type(content) ~= "string" then error("dlp.scan_file: content must be a string", 2) end
  local max = opts.max_size or M.MAX_SIZE
  if #content > max then return { status = "too_large", bytes = #content, matches = {}, total = 0 } end
  local kind, text_or_reason, how = extract.text(content, opts.name, opts.mime, max)
  if kind ~= "text" then
    return { status = kind, reason = text_or_reason, bytes = #content, matches = {}, total = 0 }
  end
  local ok, r = pcall(M.scan, text_or_reason, opts)
  if not ok then
    if type(r) == "table" and r.dlp_failed then
      return { status = "failed", reason = r.dlp_failed, bytes = #content, matches = {}, total = 0 }
    end
    error(r, 0)
  end
  r.bytes = #content
  r.extractor = how
  return r
end

return M
