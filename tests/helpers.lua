-- helpers.lua — what the specs share (required as "helpers"; `cachost test` puts tests/ on the path).
local M = {}

-- A fresh private directory (for a CACHOST_HOME).
function M.tmp_dir()
  local p = os.tmpname()
  os.remove(p)
  assert(host.mkdir(p, 448))
  return p
end

-- The bytes of tests/fixtures/<path>.
function M.fixture(path)
  local fh = assert(io.open(host.root .. "/tests/fixtures/" .. path, "rb"))
  local c = fh:read("a")
  fh:close()
  return c
end

-- An instance row as `instance add` would leave it, without the CLI's validation: tests point instances
-- at sandbox tenants with settings of their choosing.  Secrets go to the vault.
function M.instance(app, name, settings, secrets)
  local runtime = require "runtime"
  local st = runtime.store()
  local now = require("store").now()
  assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    app, name, json.encode(settings), now, now))
  local inst = assert(runtime.instance(name))
  for k, v in pairs(secrets or {}) do inst:set_secret(k, v) end
  return inst
end

return M
