-- bench/storage.lua SRC Z P — compacted copies of the store SRC for bench/storage.sh: Z as it is (raw
-- compressed), P with every raw (and packed column: activities' user_agent) decompressed to its text (the
-- store as it was before compression).
local sqlite = require "sqlite"
local schema = require "store.schema"
local src, z, p = arg[1], arg[2], arg[3]
local db = assert(sqlite.open(src))
assert(db:exec(("VACUUM INTO '%s'"):format(z:gsub("'", "''"))))
assert(db:exec(("VACUUM INTO '%s'"):format(p:gsub("'", "''"))))
db:close()
db = assert(sqlite.open(p))
assert(db:exec("BEGIN"))
for t, spec in pairs(schema.entities) do
  for _, c in ipairs { "raw", table.unpack(spec.packed or {}) } do
    assert(db:exec(("UPDATE %s SET %s = unzstd(%s) WHERE typeof(%s) = 'blob'"):format(t, c, c, c)))
  end
end
assert(db:exec("DELETE FROM zstd_dicts"))
assert(db:exec("COMMIT"))
assert(db:exec("VACUUM"))
db:close()
