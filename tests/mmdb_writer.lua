-- mmdb_writer.lua — writes small MaxMind DB files (format 2.0) for the tests of the geoip module, which
-- cannot download a GeoLite2 database.  Plain Lua 5.4 (string.pack), so the cmocka tests can dofile() it.
--
--   local mmdb = require "mmdb_writer"           -- or dofile(root .. "/tests/mmdb_writer.lua")
--   local bytes = mmdb.build {
--     networks = { {"81.2.69.0/24", mmdb.city{lat = 51.5, lon = -0.1, accuracy = 20, city = "London",
--                                             country = "GB", subdivision = "ENG"}}, {"2001:db8::/32", ...} },
--     record_size = 24 | 28 | 32, ip_version = 6 | 4, database_type = "GeoLite2-City", build_epoch = 1700000000 }
--   mmdb.write(path, opts)                       -- build + write the file
--
-- Values: Lua strings -> utf8_string, floats -> double, integers -> uint32, booleans, sequences -> array,
-- other tables -> map; mmdb.uint16/uint32/uint64/double(n) force a type (libmaxminddb checks the types of
-- the metadata, and GeoIP2's accuracy_radius is a uint16).  The tree is an IPv6 tree (ip_version 6): IPv4
-- networks live under ::/96 as the spec says, where libmaxminddb looks IPv4 addresses up.
local M = {}

local TYPED = {}
local function typed(t) return function(v) return setmetatable({ t = t, v = v }, TYPED) end end
M.uint16, M.uint32, M.uint64, M.double = typed(5), typed(6), typed(9), typed(3)
M.raw = typed("raw")          -- bytes written as they are (to make corrupt records)

-- Control byte(s): type in the top 3 bits (extended types: 0, then type - 7 in the next byte), size in
-- the low 5 bits with 29/30/31 meaning 1/2/3 more size bytes.
local function control(t, size)
  local sz, extra
  if size < 29 then sz, extra = size, ""
  elseif size < 29 + 256 then sz, extra = 29, string.char(size - 29)
  elseif size < 285 + 65536 then sz, extra = 30, string.pack(">I2", size - 285)
  else sz, extra = 31, string.pack(">I3", size - 65821) end
  if t <= 7 then return string.char((t << 5) | sz) .. extra end
  return string.char(sz) .. string.char(t - 7) .. extra
end

local function uint(t, n, max_bytes)
  assert(math.type(n) == "integer" and n >= 0 or t == 9, "unsigned integer expected")
  local b = string.pack(">I8", n):gsub("^%z+", "")       -- minimal big-endian bytes; 0 -> no payload
  assert(#b <= max_bytes, "integer too large for its type")
  return control(t, #b) .. b
end

local function encode(v)
  local tv = type(v)
  if getmetatable(v) == TYPED then
    if v.t == "raw" then return v.v end
    if v.t == 3 then return control(3, 8) .. string.pack(">d", v.v) end
    return uint(v.t, v.v, ({ [5] = 2, [6] = 4, [9] = 8 })[v.t])
  elseif tv == "string" then return control(2, #v) .. v
  elseif tv == "number" then
    if math.type(v) == "float" then return control(3, 8) .. string.pack(">d", v) end
    return uint(6, v, 4)
  elseif tv == "boolean" then return control(14, v and 1 or 0)
  elseif tv == "table" then
    if #v > 0 then
      local parts = { control(11, #v) }
      for i = 1, #v do parts[#parts + 1] = encode(v[i]) end
      return table.concat(parts)
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)                                   -- deterministic output
    local parts = { control(7, #keys) }
    for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. encode(v[k]) end
    return table.concat(parts)
  end
  error("mmdb_writer: cannot encode a " .. tv)
end
M.encode = encode

-- A GeoIP2-City shaped record (the paths host/geoip.c reads).
function M.city(c)
  local r = {}
  if c.lat then r.location = { latitude = M.double(c.lat), longitude = M.double(c.lon),
                               accuracy_radius = c.accuracy and M.uint16(c.accuracy) or nil } end
  if c.city then r.city = { names = { en = c.city }, geoname_id = M.uint32(c.geoname_id or 1) } end
  if c.country then r.country = { iso_code = c.country, names = { en = c.country_name or c.country } } end
  if c.subdivision then r.subdivisions = { { iso_code = c.subdivision } } end
  return r
end

-- "a.b.c.d/n" or an IPv6 prefix -> array of 128 bits, prefix length in the IPv6 tree (or 32 bits and
-- the prefix length in an IPv4 tree).
local function bits_of(cidr, v4)
  local addr, len = cidr:match("^([^/]+)/(%d+)$")
  addr = addr or cidr
  local bytes = {}
  local a, b, c, d = addr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    for _ = 1, 12 do bytes[#bytes + 1] = 0 end
    for _, x in ipairs { a, b, c, d } do bytes[#bytes + 1] = assert(tonumber(x) <= 255 and tonumber(x)) end
    len = (v4 and 0 or 96) + tonumber(len or 32)
    if v4 then bytes = table.move(bytes, 13, 16, 1, {}) end
  else
    assert(not v4, "IPv6 network in an IPv4 database")
    local head, tail = addr:match("^(.-)::(.*)$")
    local function groups(s)
      local g = {}
      for h in s:gmatch("[^:]+") do g[#g + 1] = assert(tonumber(h, 16), "bad IPv6 " .. cidr) end
      return g
    end
    local hg, tg = groups(head or addr), groups(tail or "")
    assert(head or #hg == 8, "bad IPv6 " .. cidr)
    local all = {}
    for _, g in ipairs(hg) do all[#all + 1] = g end
    for _ = 1, 8 - #hg - #tg do all[#all + 1] = 0 end
    for _, g in ipairs(tg) do all[#all + 1] = g end
    for _, g in ipairs(all) do bytes[#bytes + 1] = g >> 8; bytes[#bytes + 1] = g & 255 end
    len = tonumber(len or 128)
  end
  local bits = {}
  for i, byte in ipairs(bytes) do
    for j = 7, 0, -1 do bits[(i - 1) * 8 + (8 - j)] = (byte >> j) & 1 end
  end
  return bits, len
end

-- opts.networks = { {cidr, value}, ... }; later, more specific networks may split earlier ones.
function M.build(opts)
  -- the tree: node = {[0] = child, [1] = child}; a child is a node, {data = n} or nil (no data)
  local root = {}
  local data, data_index = {}, {}
  for _, net in ipairs(opts.networks or {}) do
    local value = net[2]
    if not data_index[value] then data[#data + 1] = value; data_index[value] = #data end
    local leaf = { data = data_index[value] }
    local bits, len = bits_of(net[1], opts.ip_version == 4)
    local node = root
    for i = 1, len - 1 do
      local child = node[bits[i]]
      if not child or child.data then       -- create, or split a less specific network in two
        local split = { [0] = child, [1] = child }
        node[bits[i]] = split
        child = split
      end
      node = child
    end
    node[bits[len]] = leaf
  end
  -- number the nodes breadth first (root = 0)
  local order, queue = {}, { root }
  local head = 1
  while queue[head] do
    local n = queue[head]; head = head + 1
    order[#order + 1] = n; n.id = #order - 1
    for side = 0, 1 do
      local c = n[side]
      if c and not c.data then queue[#queue + 1] = c end
    end
  end
  -- the data section: each distinct value once
  local section, offsets, pos = {}, {}, 0
  for i, v in ipairs(data) do
    local e = encode(v)
    offsets[i] = pos; pos = pos + #e; section[#section + 1] = e
  end
  local count = #order
  local record_size = opts.record_size or 24
  local function record(c)
    if c == nil then return count end
    if c.data then return count + 16 + offsets[c.data] end
    return c.id
  end
  local tree = {}
  for _, n in ipairs(order) do
    local l, r = record(n[0]), record(n[1])
    if record_size == 24 then
      assert(l < 1 << 24 and r < 1 << 24, "tree too large for 24-bit records")
      tree[#tree + 1] = string.pack(">I3I3", l, r)
    elseif record_size == 28 then
      -- the middle byte holds the top 4 bits of each record: left's high nibble, right's low nibble
      tree[#tree + 1] = string.pack(">I3", l & 0xFFFFFF) .. string.char(((l >> 24) << 4) | (r >> 24))
                        .. string.pack(">I3", r & 0xFFFFFF)
    elseif record_size == 32 then
      tree[#tree + 1] = string.pack(">I4I4", l, r)
    else
      error("record_size must be 24, 28 or 32")
    end
  end
  local meta = {
    node_count = M.uint32(count), record_size = M.uint16(record_size), ip_version = M.uint16(opts.ip_version or 6),
    database_type = opts.database_type or "GeoLite2-City", languages = { "en" },
    binary_format_major_version = M.uint16(2), binary_format_minor_version = M.uint16(0),
    build_epoch = M.uint64(opts.build_epoch or 1700000000),
    description = { en = opts.description or "cachost test database" },
  }
  return table.concat(tree) .. string.rep("\0", 16) .. table.concat(section)
         .. "\xAB\xCD\xEFMaxMind.com" .. encode(meta)
end

function M.write(path, opts)
  local f = assert(io.open(path, "wb"))
  f:write(M.build(opts))
  f:close()
  return path
end

-- The cities the specs use, with their GeoIP2-shaped records.
M.CITIES = {
  paris = { lat = 48.8566, lon = 2.3522, accuracy = 20, city = "Paris", country = "FR", subdivision = "IDF" },
  versailles = { lat = 48.8049, lon = 2.1204, accuracy = 20, city = "Versailles", country = "FR", subdivision = "IDF" },
  new_york = { lat = 40.7128, lon = -74.006, accuracy = 50, city = "New York", country = "US", subdivision = "NY" },
  tokyo = { lat = 35.6762, lon = 139.6503, accuracy = 100, city = "Tokyo", country = "JP", subdivision = "13" },
}

return M
