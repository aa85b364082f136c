-- bench/storage.lua SRC Z P — compacted copies of the store SRC for bench/storage.sh: Z as it is (raw
-- compressed), P with every raw decompressed to its JSON text (the store as it was before compression).
local sqlite = require "sqlite"
local src, z, p = arg[1], arg[2], arg[3]
local db = assert(sqlite.open(src))
assert(db:exec(("VACUUM INTO '%s'"):format(z:gsub("'", "''"))))
assert(db:exec(("VACUUM INTO '%s'"):format(p:gsub("'", "''"))))
db:close()
db = assert(sqlite.open(p))
assert(db:exec("BEGIN"))
for _, t in ipairs { "users", "groups", "group_members", "privileges", "files", "file_permissions", "app_grants", "activities" } do
  assert(db:exec(("UPDATE %s SET raw = unzstd(raw) WHERE typeof(raw) = 'blob'"):format(t)))
end
assert(db:exec("DELETE FROM zstd_dicts"))
assert(db:exec("COMMIT"))
assert(db:exec("VACUUM"))
db:close()
