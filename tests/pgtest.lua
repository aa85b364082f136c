-- tests/pgtest.lua — the PostgreSQL the specs use: the one server tests/run.sh starts for the whole suite
-- ($CACHOST_TEST_PG), or, for a spec run alone, one started here (tests/pg.sh) and stopped when the
-- process ends.  Each caller gets a database of its own (fresh()), so specs never see each other's rows.
local M = {}

local server_url, stopper

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

-- The URL of the server's maintenance database (postgres).
function M.url()
  if server_url then return server_url end
  local env = host.getenv("CACHOST_TEST_PG")
  if env and env ~= "" then server_url = env; return env end
  local dir = os.tmpname()
  os.remove(dir)
  assert(host.mkdir(dir, 448))
  local ok, out = sh(("'%s/tests/pg.sh' start '%s/pg'"):format(host.root, dir))
  assert(ok, "cannot start PostgreSQL: " .. out)
  server_url = out:match("(postgresql://%S+)")
  -- stopped with the Lua state (the module table lives as long as it)
  stopper = setmetatable({}, { __gc = function()
    os.execute(("'%s/tests/pg.sh' stop '%s/pg'; rm -rf '%s'"):format(host.root, dir, dir))
  end })
  M._stopper = stopper
  return server_url
end

local n = 0
-- A new empty database -> its URL.
function M.fresh()
  local base = M.url()
  n = n + 1
  local name = ("t%d_%d_%d"):format(host.pid(), os.time() % 100000, n)
  local db = assert(pg.open(base))
  assert(db:exec("CREATE DATABASE " .. name))
  db:close()
  return (base:gsub("^postgresql:///[%w_]*", "postgresql:///" .. name))
end

return M
