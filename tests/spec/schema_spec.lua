-- schema_spec.lua — schema discovery: every table and column of the store is described (a migration that
-- adds one must describe it in scripts/store/docs.lua), the vault's table is invisible to readers, and the
-- REPL completes SQL inside sql "...".
local helpers = require "helpers"
local store = require "store"
local docs = require "store.docs"

describe("schema discovery", function()
  local dir, st, rd
  before_each(function()
    dir = helpers.tmp_dir()
    st = assert(store.open(dir))
    rd = assert(store.open_readonly(dir))
  end)
  after_each(function()
    rd:close(); st:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("describes every table and column of the latest schema, and nothing that does not exist", function()
    local missing, stale, seen = {}, {}, {}
    for _, t in ipairs(rd:tables()) do
      seen[t] = true
      local doc = docs.TABLES[t]
      if not doc then missing[#missing + 1] = t
      else
        local cols = {}
        for _, c in ipairs(rd:columns(t)) do
          cols[c.name] = true
          if not doc[2][c.name] then missing[#missing + 1] = t .. "." .. c.name end
        end
        for c in pairs(doc[2]) do if not cols[c] then stale[#stale + 1] = t .. "." .. c end end
      end
    end
    for t in pairs(docs.TABLES) do if not seen[t] then stale[#stale + 1] = t end end
    table.sort(missing); table.sort(stale)
    assert.same({}, missing, "describe these in scripts/store/docs.lua")
    assert.same({}, stale, "these are described in scripts/store/docs.lua but do not exist")
  end)

  it("hides the vault's and the console's accounts and sessions from readers, and refuses to read them", function()
    for _, hidden in ipairs { "secrets", "console_users", "console_sessions" } do
      for _, t in ipairs(rd:tables()) do assert.are_not.equal(hidden, t) end
      assert.is_nil(rd:columns(hidden))
      local rows, err = docs.columns(rd, hidden)
      assert.is_nil(rows); assert.matches("no table '" .. hidden .. "'", err)
      for _, sql in ipairs { "SELECT * FROM secrets", "SELECT count(*) FROM secrets", "PRAGMA table_info(secrets)",
                             "SELECT 1 WHERE EXISTS (SELECT 1 FROM secrets)", "SELECT * FROM main.SECRETS" } do
        sql = sql:gsub("secrets", hidden):gsub("SECRETS", hidden:upper())
        local r, e = rd.db:query(sql)
        assert.is_nil(r, sql); assert.matches("^auth", e, sql)
      end
    end
    assert.equal("email", docs.columns(rd, "users")[4].column)
    local _, e = docs.columns(rd, "user")
    assert.matches("did you mean 'users'", e)
  end)

  it("completes SQL keywords, tables and columns inside sql \"...\" and after .schema, Lua elsewhere", function()
    local R = assert(loadfile(host.root .. "/scripts/repl.lua", "t"))()
    local names = function() return { "users", "email", "display_name" } end
    assert.same({ "SELECT" }, R.complete("SEL", {}, 'sql "', names))
    assert.same({ "select" }, R.complete("sel", {}, "sql('", names))
    assert.same({ "email" }, R.complete("em", {}, 'x = sql("SELECT ', names))
    assert.same({ "users" }, R.complete("us", {}, ".schema ", names))
    assert.same({}, R.complete("em", {}, 'sql "SELECT 1" .. ', names))          -- the string is closed
    assert.same({ "string" }, R.complete("stri", { string = string }, "", names))
  end)
end)
