-- sql_owner_spec.lua — store.lua (with store/*.lua) is the one owner of SQL: no other file of scripts/ or
-- connectors/ holds an SQL statement or opens the sqlite module; they call the store's named operations.
-- Only the path that runs the user's own SQL read-only (`cachost query`, the REPL) is exempt.
local root = host.root

-- The files that may hold SQL, and why.
local OWNERS = {
  ["scripts/store.lua"] = "the store",
  ["scripts/cli/query.lua"] = "runs the user's SQL read-only (its usage shows an example)",
  ["scripts/cli/repl.lua"] = "the REPL's `sql` helper runs the user's SQL read-only",
  ["scripts/repl.lua"] = "completes SQL keywords in the REPL",
}
local OWNER_DIRS = { "scripts/store/" }

-- The contents of every string literal of Lua source (short and long), comments skipped.
local function strings(src)
  local out, i, n = {}, 1, #src
  local function long_at(p)       -- "[", "=" * k, "[" at p -> the closing bracket, the end of the opener
    local eq = src:match("^%[(=*)%[", p)
    if eq then return "]" .. eq .. "]", p + #eq + 2 end
  end
  while i <= n do
    local c = src:sub(i, i)
    if src:sub(i, i + 1) == "--" then
      local close, after = long_at(i + 2)
      if close then
        local e = src:find(close, after, true)
        i = e and e + #close or n + 1
      else
        local e = src:find("\n", i, true)
        i = e and e + 1 or n + 1
      end
    elseif c == "[" and long_at(i) then
      local close, after = long_at(i)
      local e = src:find(close, after, true)
      out[#out + 1] = { text = src:sub(after, (e or n + 1) - 1), at = i }
      i = e and e + #close or n + 1
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then buf[#buf + 1] = src:sub(j, j + 1); j = j + 2
        elseif d == c or d == "\n" then break
        else buf[#buf + 1] = d; j = j + 1 end
      end
      out[#out + 1] = { text = table.concat(buf), at = i }
      i = j + 1
    else
      i = i + 1
    end
  end
  return out
end

-- SQL statements as cachost writes them (keywords in capitals), and the sqlite module's name.
local SQL = {
  "%f[%w]SELECT%f[%W].-%f[%w]FROM%f[%W]", "%f[%w]INSERT%s+INTO%f[%W]", "%f[%w]INSERT%s+OR%s+%u+%s+INTO%f[%W]",
  "%f[%w]UPDATE%s+[%w_]+%s+SET%f[%W]", "%f[%w]DELETE%s+FROM%f[%W]", "%f[%w]CREATE%s+[%u%s]*TABLE%f[%W]",
  "%f[%w]DROP%s+TABLE%f[%W]", "%f[%w]PRAGMA%s+[%w_]+", "%f[%w]BEGIN%s+IMMEDIATE%f[%W]", "%f[%w]SAVEPOINT%s",
}
local function sql_in(text)
  if text == "sqlite" then return "the sqlite module" end
  for _, p in ipairs(SQL) do
    local m = text:match(p)
    if m then return m end
  end
end

-- file -> { "line N: what" ... } for each string of it that holds SQL
local function findings(rel)
  local fh = assert(io.open(root .. "/" .. rel, "rb"))
  local src = fh:read("a")
  fh:close()
  local out = {}
  for _, s in ipairs(strings(src)) do
    local m = sql_in(s.text)
    if m then
      local line = select(2, src:sub(1, s.at):gsub("\n", "")) + 1
      out[#out + 1] = ("line %d: %s"):format(line, m:sub(1, 60):gsub("%s+", " "))
    end
  end
  return out
end

local function lua_files(dir, out)
  for _, name in ipairs(host.listdir(root .. "/" .. dir) or {}) do
    local rel = dir .. "/" .. name
    local st = host.stat(root .. "/" .. rel)
    if st and st.type == "directory" then lua_files(rel, out)
    elseif name:match("%.lua$") then out[#out + 1] = rel end
  end
  return out
end

local function owned(rel)
  if OWNERS[rel] then return true end
  for _, d in ipairs(OWNER_DIRS) do if rel:sub(1, #d) == d then return true end end
end

describe("the store owns SQL", function()
  it("finds the SQL it looks for (the store's own, in strings of every form), and none in comments", function()
    assert.is_true(#findings("scripts/store.lua") > 20)
    local found = {}
    for _, s in ipairs(strings([==[
      -- SELECT x FROM commented_out
      --[[ DELETE FROM commented_out ]]
      local a = "SELECT id FROM t WHERE \"q\" = 1"
      local b = 'UPDATE t SET x = 1'
      local c = [[INSERT INTO t
        VALUES (1)]]
      local d = [=[DELETE FROM t]=]
      local e = "the user's data: DELETE all of it"
      local f = require "sqlite"
    ]==])) do found[#found + 1] = sql_in(s.text) or false end
    assert.same({ "SELECT id FROM", "UPDATE t SET", "INSERT INTO", "DELETE FROM", false, "the sqlite module" }, found)
  end)

  it("finds no SQL in scripts/ or connectors/ outside the store", function()
    local bad = {}
    local files = lua_files("scripts", {})
    lua_files("connectors", files)
    assert.is_true(#files > 40)
    for _, rel in ipairs(files) do
      if not owned(rel) then
        for _, f in ipairs(findings(rel)) do bad[#bad + 1] = rel .. " " .. f end
      end
    end
    assert.same({}, bad)
  end)

  it("defines each operation of the store once (a second definition would silently replace the first)", function()
    local files, seen, twice = { "scripts/store.lua" }, {}, {}
    for _, rel in ipairs(lua_files("scripts/store", {})) do files[#files + 1] = rel end
    for _, rel in ipairs(files) do
      local fh = assert(io.open(root .. "/" .. rel, "rb"))
      local src = fh:read("a")
      fh:close()
      for name in src:gmatch("function%s+Store[:.]([%w_]+)") do
        if seen[name] then twice[#twice + 1] = ("Store:%s in %s and %s"):format(name, seen[name], rel) end
        seen[name] = seen[name] or rel
      end
    end
    assert.is_true(seen.upsert ~= nil and seen.instance_row ~= nil)
    assert.same({}, twice)
  end)

  it("has one writer of alerts: st:raise_alert", function()
    local writers = {}
    for _, rel in ipairs(lua_files("connectors", lua_files("scripts", {}))) do
      local fh = assert(io.open(root .. "/" .. rel, "rb"))
      for _, s in ipairs(strings(fh:read("a"))) do
        if s.text:find("%f[%w]INSERT%s+[%u%s]-INTO%s+alerts%f[^%w_]") then writers[#writers + 1] = rel end
      end
      fh:close()
    end
    assert.same({ "scripts/store.lua" }, writers)      -- one statement
  end)
end)
