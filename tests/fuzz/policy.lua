-- policy.lua — the fuzz driver of the policy loader: the input is the text of a policy file, loaded by
-- scripts/policy/load.lua (its own confined state, then validation), and a policy that loads is evaluated on a
-- few rows of its entity in audit mode against a private store (the generated scanner, windows, alerts).
-- Findings (raised): load raises or fails without a one-line error; feed raises.
local policy = require "policy"
local store = require "store"

host.home = os.tmpname()
os.remove(host.home)
assert(host.mkdir(host.home, 448))
package.loaded.runtime = nil      -- a runtime of this home (a spec may have one of its own loaded)
local runtime = require "runtime"
local instances = require "instances"
local st = runtime.store()
local now = store.now()
assert(st.db:exec("INSERT INTO instances (app, name, settings, created_at, updated_at) VALUES ('okta', 'o', '{}', ?, ?)", now, now))
local inst = assert(instances.instance(runtime.store(), "o"))
assert(st:upsert("users", inst.id, { { ext_id = "u1", email = "u1@example.com", status = "active" },
                                     { ext_id = "u2", email = "u2@example.com", status = "suspended" } }))
local path = host.home .. "/fuzz.lua"
local T0 = math.floor(sched.time())

-- rows of each entity, with the fields the shipped policies look at
local function rows(entity)
  local out = {}
  for i = 1, 6 do
    local r = { ext_id = entity .. i, time = iso8601.format(T0 + i * 60), actor = "u" .. (i % 2 + 1), actor_id = "u" .. (i % 2 + 1),
      kind = i % 3 == 0 and "signin" or "admin", action = "user.session.start", outcome = i < 5 and "failure" or "success",
      ip = i % 2 == 0 and "198.51.100.7" or "203.0.113.9", lat = i * 10.0, lon = -i * 20.0, location = "Here",
      email = "u" .. i .. "@example.com", name = "file" .. i .. ".txt", status = "active", is_admin = i % 2,
      shared = "public", scope = "mail.read files.readwrite.all", user_id = "u1", app = "app" .. i, role = "admin" }
    out[i] = { op = i == 6 and "changed" or "added", row = r }
  end
  return out
end

return function(text)
  local fh = assert(io.open(path, "wb"))
  fh:write(text)
  fh:close()
  local p, err = policy.load(path)
  if not p then
    assert(type(err) == "string" and err ~= "" and not err:find("\n"), "load failed without a one-line error: " .. tostring(err))
    return
  end
  local entity = policy.ON[p.on]
  assert(entity, "loaded with on = " .. tostring(p.on))
  local n = policy.feed(st, inst, { p }, entity, rows(entity), { mode = "audit" })
  assert(math.type(n) == "integer", "feed returned " .. tostring(n))
  p.vm:close()
  policy.forget()
end
