-- helpers.lua — what the specs share (required as "helpers"; `cachost test` puts tests/ on the path).
local M = {}

-- A fresh private directory (for a CACHOST_HOME).
function M.tmp_dir()
  local p = os.tmpname()
  os.remove(p)
  assert(host.mkdir(p, 448))
  return p
end

-- The environment that makes the fixture apps of tests/fixtures/connectors ("test", "test-single": no
-- provider behind them) known to a cachost a spec starts, as NAME='value' for a shell command line.
M.FIXTURE_APPS = ("CACHOST_CONNECTORS='%s/tests/fixtures/connectors'"):format(host.root)

-- count(*) AS n of a query on the current store.
function M.count(sql, ...) return require("runtime").store().db:query(sql, ...)[1].n end

-- Live rows of an entity of an instance (extra: more SQL conditions).
function M.n_of(entity, inst, extra)
  return M.count("SELECT count(*) n FROM " .. entity .. " WHERE instance_id = ? AND deleted_at IS NULL AND " .. (extra or "1"), inst.id)
end

-- runtime.sync that raises on any stream that failed -> counts by stream.
function M.sync_ok(inst, opts)
  local results, ok = require("runtime").sync(inst, opts)
  for _, r in ipairs(results) do assert(r.counts, r.stream .. ": " .. tostring(r.error)) end
  assert(ok == true, "the sync did not complete")
  local by = {}
  for _, r in ipairs(results) do by[r.stream] = r.counts end
  return by
end

-- A loopback server with sandbox tenant t mounted on it.
function M.serve(t)
  local srv = assert(server.listen { port = 0 })
  t:mount(srv)
  return srv
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
  local inst = assert(require("instances").instance(runtime.store(), name))
  for k, v in pairs(secrets or {}) do inst:set_secret(k, v) end
  return inst
end

-- A robustness figure (kills, faults, attacks, fuzzing): tests/run.sh prints it beside the summary line.
function M.figure(fmt, ...)
  io.stdout:write("# figure: ", string.format(fmt, ...), "\n")
  io.stdout:flush()
end

return M
