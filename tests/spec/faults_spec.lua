-- Issue 10, the injected-faults suite: 10% of the answers of every sandbox are faults (the provider's
-- 429 with its own retry header, 5xx, a reset, a stall in the middle of the body, truncated JSON,
-- malformed JSON, an HTML page with 200, a self-link), drawn with a fixed seed, across full and
-- incremental syncs of every connector.  Every sync either completes exactly (the store equals the
-- tenant's ground truth and a clean twin's scan: same ids, nothing lost, nothing extra) or fails with
-- one clear line and keeps what it had; a later clean sync completes exactly.
-- CACHOST_FAULT_ROUNDS (default 4 syncs under faults per connector), CACHOST_FAULT_SIZE (tenant size,
-- default 1), CACHOST_FAULT_RETRY_AFTER (seconds a 429 asks for, default 0) and CACHOST_FAULT_SEED make a
-- longer campaign: make faults.
local context = require "sdk.context"
local runtime = require "runtime"
local tenants = require "tenants"
local helpers = require "helpers"
local Client = require "sdk.client"
local schema = require "store.schema"

local ROUNDS = tonumber(os.getenv("CACHOST_FAULT_ROUNDS") or "") or 4
local SIZE = tonumber(os.getenv("CACHOST_FAULT_SIZE") or "") or 1
local SEED = tonumber(os.getenv("CACHOST_FAULT_SEED") or "") or 10
-- what the 429s ask the client to wait (each provider's own header): 0 keeps make test short
local RETRY_AFTER = tonumber(os.getenv("CACHOST_FAULT_RETRY_AFTER") or "") or 0

-- The users each tenant's connector must end with: ext_id -> true, from the tenant's own state (or its
-- tests/tenants file's users(tenant)).
local TRUTH = {
  okta = function(t)
    local s = {}
    for _, u in ipairs(t.state.users) do s[u.id] = true end
    return s
  end,
  github = function(t)
    local s = {}
    for _, m in ipairs(t.state.members) do if m.state == "active" then s[m.login] = true end end
    for _, u in ipairs(t.state.outside) do s[u.login] = true end
    return s
  end,
  box = function(t)
    local s = {}
    for _, u in ipairs(t.state.users) do s[u.id] = true end
    return s
  end,
  dropbox = function(t)
    local s = {}
    for _, m in ipairs(t.members) do s[m.id] = true end
    return s
  end,
  office365 = function(t)
    local s = {}
    for _, u in ipairs(t.state.users) do if not u.deleted then s[u.id] = true end end
    return s
  end,
  azure = function(t)
    local live, s = {}, {}
    for _, u in ipairs(t.state.users) do if not u.deleted then live[u.id] = true end end
    for _, a in ipairs(t.state.arm_assignments) do
      if a.principalType == "User" and live[a.principalId] then s[a.principalId] = true end
    end
    return s
  end,
}

-- Live ext_ids of every entity of an instance: entity -> {ext_id -> true}.
local function snapshot(inst)
  local db = runtime.store().db
  local out = {}
  for entity, spec in pairs(schema.entities) do
    local sql = ("SELECT ext_id FROM %s WHERE instance_id = ?%s"):format(entity, spec.inventory and " AND deleted_at IS NULL" or "")
    local set = {}
    for _, r in ipairs(assert(db:query(sql, inst.id))) do set[r.ext_id] = true end
    out[entity] = set
  end
  return out
end

-- {missing = n, extra = n} of set a against the reference set want.
local function diff(a, want)
  local missing, extra = 0, 0
  for k in pairs(want) do if not a[k] then missing = missing + 1 end end
  for k in pairs(a) do if not want[k] then extra = extra + 1 end end
  return missing, extra
end

describe("injected faults", function()
  local saved = {}
  local figures = { syncs = 0, injected = 0, exact = 0, failed = 0, lost = 0, duplicated = 0 }
  local by_kind = {}
  setup(function()
    host.home = helpers.tmp_dir()
    -- a stalled body costs the client's timeout: short here; backoff short too (the schedule is the
    -- same, only its unit shrinks)
    saved.timeout, saved.base = Client.TIMEOUT, Client.BACKOFF_BASE
    Client.TIMEOUT, Client.BACKOFF_BASE = 1.5, 0.02
  end)
  teardown(function()
    Client.TIMEOUT, Client.BACKOFF_BASE = saved.timeout, saved.base
    local kinds = {}
    for k, n in pairs(by_kind) do kinds[#kinds + 1] = ("%s %d"):format(k, n) end
    table.sort(kinds)
    helpers.figure("faults: %d syncs, %d faults injected (%s), %d completed exactly, %d failed cleanly, %d lost, %d duplicated",
      figures.syncs, figures.injected, table.concat(kinds, ", "), figures.exact, figures.failed, figures.lost, figures.duplicated)
  end)

  it("takes an error whose body is cut short for that error (a 404 stays not found)", function()
    local r = tenants.start("okta", "okta-404")
    r.tenant:fault { kind = "truncated", path = "/api/v1/users/nobody$", count = 1 }
    local ctx = require("sync").context(runtime.store(), r.inst, "test")
    local resp, err = context.client(ctx):request("GET", "/api/v1/users/nobody", { expect_json = true })
    r.srv:close()
    assert.is_nil(resp)
    assert.matches("^not_found: HTTP 404", err)
  end)

  it("waits as each provider's 429 asks, through its own header", function()
    for i, app in ipairs(tenants.APPS) do
      local r = tenants.start(app, app .. "-429", { seed = 50 + i, tenant = { rate_limit = { limit = 1000000 } } })
      -- GitHub's primary limit says when it resets (x-ratelimit-reset) and nothing else
      r.tenant:fault { kind = app == "github" and "primary" or "429", path = tenants.USERS_PATH[app], count = 1,
                       retry_after = 2 }
      local t0 = sched.now()
      local ok, err = pcall(helpers.sync_ok, r.inst, { streams = { "users" } })
      local waited = sched.now() - t0
      r.srv:close()
      assert(ok, err)
      -- the backoff is 20 ms here: only the provider's header explains a wait of seconds (a provider
      -- whose limit errors name no wait, Salesforce's REQUEST_LIMIT_EXCEEDED, is retried after the backoff)
      if require("tenants." .. app).retry_header ~= false then
        assert.is_true(waited >= 0.9, ("%s waited %.2f s"):format(app, waited))
      end
    end
  end)

  for i, app in ipairs(tenants.APPS) do
    it(app .. ": every sync under faults completes exactly or fails cleanly, then a clean sync completes", function()
      local extra = app == "office365" and { components = "users,audits,signins,apps,activities,files" } or nil
      -- a frozen tenant clock: the ground truth stays put while the syncs run; no rate limit of its own
      local r = tenants.start(app, app .. "-faults", { size = SIZE, seed = SEED + i, settings = extra,
        tenant = { frozen = true, rate_limit = { limit = 1000000 } } })
      local ok_all, err_all = pcall(function()
        -- the reference: a twin instance's clean scan
        local twin = tenants.twin(r, app .. "-clean")
        helpers.sync_ok(twin)
        local want = snapshot(twin)
        local truth = (TRUTH[app] or require("tenants." .. app).users)(r.tenant)
        assert.same({ 0, 0 }, { diff(want.users, truth) })
        r.tenant:chaos { rate = 0.1, seed = SEED * 100 + i, retry_after = RETRY_AFTER }
        for round = 1, ROUNDS do
          local before = snapshot(r.inst)
          local results, ok = runtime.sync(r.inst, { full = round % 2 == 1 })
          figures.syncs = figures.syncs + 1
          local now = snapshot(r.inst)
          local lost, extra_rows = 0, 0
          for entity, set in pairs(now) do
            local missing, more = diff(set, want[entity])
            extra_rows = extra_rows + more
            if ok then
              lost = lost + missing
            else
              -- kept what it had: every row the sync started with (and the tenant has) is still there
              for id in pairs(before[entity]) do if want[entity][id] and not set[id] then lost = lost + 1 end end
            end
          end
          figures.lost, figures.duplicated = figures.lost + lost, figures.duplicated + extra_rows
          assert.equal(0, lost, ("%s round %d lost %d rows"):format(app, round, lost))
          assert.equal(0, extra_rows, ("%s round %d has %d rows the tenant does not"):format(app, round, extra_rows))
          if ok then
            figures.exact = figures.exact + 1
          else
            for _, res in ipairs(results) do
              if not res.counts then
                assert.is_nil(res.error:find("\n"), "one line: " .. res.error)
                assert.is_nil(res.error:find("traceback", 1, true), res.error)
                assert.matches("^[%w_ ]+: ", res.error)
              end
            end
            figures.failed = figures.failed + 1
          end
        end
        r.tenant:chaos(nil)
        helpers.sync_ok(r.inst)
        local final = snapshot(r.inst)
        for entity, set in pairs(final) do
          assert.same({ 0, 0 }, { diff(set, want[entity]) }, entity)
        end
        assert.same({ 0, 0 }, { diff(final.users, truth) })
      end)
      for k, n in pairs(r.tenant.injected or {}) do
        by_kind[k] = (by_kind[k] or 0) + n
        figures.injected = figures.injected + n
      end
      r.srv:close()
      assert(ok_all, err_all)
    end)
  end
end)
