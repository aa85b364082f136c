-- store/leases.lua — workers sharing one store (workers.lua decides, the SQL is here).
--
-- A worker (one `cachost run`) syncs the instances it holds a lease on.  It claims free instances with
-- SELECT ... FOR UPDATE SKIP LOCKED (two workers claiming at once pass each other by instead of waiting)
-- and takes each with an INSERT ... ON CONFLICT DO UPDATE ... WHERE the lease expired: that statement is
-- atomic on the lease's row, so of two workers only one gets an instance, whatever their snapshots saw.
-- A lease has an expiry, by the database's clock (no two workers' clocks compared); the worker renews
-- its leases while it runs, and each page it commits renews the lease of its instance in the page's
-- transaction, or fails if the lease was lost (taken over after it expired): a worker that stalled past
-- its lease writes nothing more for that instance.  On shutdown it deletes its leases; a worker killed
-- keeps them until they expire, then the others take them over.
--
-- On SQLite the same statements work (one machine: BEGIN IMMEDIATE serialises, FOR UPDATE is not
-- needed); the daemon uses leases only on a shared store.  M.NOW / M.LATER: the database's clock as the
-- schema's ISO text, the one place the dialects' datetime functions differ.
return function(Store, M)
  local check, within = M.check, M.within

  Store.NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
  Store.LATER = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ? || ' seconds')"
  Store.SKIP_LOCKED = ""
  local PgStore = M.PgStore
  PgStore.NOW = [[to_char(clock_timestamp(), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')]]
  PgStore.LATER = [[to_char(clock_timestamp() + make_interval(secs => ?), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')]]
  PgStore.SKIP_LOCKED = " FOR UPDATE OF i SKIP LOCKED"

  -- each statement's text, made once per dialect
  local function sql(self, key, fmt)
    local cache = rawget(getmetatable(self), "_sql")
    if not cache then cache = {}; rawset(getmetatable(self), "_sql", cache) end
    local s = cache[key]
    if not s then
      s = fmt:gsub("{(%u+)}", { NOW = self.NOW, LATER = self.LATER, SKIP = self.SKIP_LOCKED })
      cache[key] = s
    end
    return s
  end

  -- The worker says it is alive (first time: registers) -> true.
  function Store:worker_beat(w)
    return within(self, function()
      check(self.db:exec(sql(self, "beat", [[INSERT INTO workers (id, host, pid, metrics, started_at, heartbeat)
        VALUES (?, ?, ?, ?, {NOW}, {NOW}) ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat,
        metrics = excluded.metrics, stopped_at = NULL]]), w.id, w.host, w.pid, w.metrics))
      return true
    end)
  end

  -- Workers whose heartbeat is younger than ttl seconds (the live ones share the instances).
  function Store:live_workers(ttl)
    return check(self.db:query(sql(self, "live", [[SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL
      AND heartbeat >= {LATER}]]), -ttl))[1].n
  end

  -- Up to `want` free instances (live, enabled, no lease or an expired one) taken by worker `id` for
  -- ttl seconds -> {instance_id, ...}
  function Store:claim_leases(id, ttl, want)
    if want <= 0 then return {} end
    local got = {}
    check(within(self, function()
      local free = check(self.db:query(sql(self, "free", [[SELECT i.id FROM instances i
        LEFT JOIN leases l ON l.instance_id = i.id WHERE i.removed_at IS NULL AND i.enabled = 1
        AND (l.instance_id IS NULL OR l.expires_at < {NOW}) ORDER BY i.id LIMIT ?{SKIP}]]), want))
      for _, r in ipairs(free) do
        check(self.db:exec(sql(self, "take", [[INSERT INTO leases (instance_id, worker, acquired_at, expires_at)
          VALUES (?, ?, {NOW}, {LATER}) ON CONFLICT (instance_id) DO UPDATE SET worker = excluded.worker,
          acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
          WHERE leases.expires_at < excluded.acquired_at]]), r.id, id, ttl))
        if self.db:changes() == 1 then got[#got + 1] = r.id end
      end
      return true
    end))
    return got
  end

  -- Renews every lease worker `id` still holds (unexpired) -> {instance_id = true} of those it holds.
  function Store:renew_leases(id, ttl)
    local held = {}
    check(within(self, function()
      check(self.db:exec(sql(self, "renew", [[UPDATE leases SET expires_at = {LATER}
        WHERE worker = ? AND expires_at >= {NOW}]]), ttl, id))
      for _, r in ipairs(check(self.db:query(sql(self, "mine", [[SELECT instance_id FROM leases
          WHERE worker = ? AND expires_at >= {NOW}]]), id))) do
        held[r.instance_id] = true
      end
      return true
    end))
    return held
  end

  -- In a page's transaction: the lease of `inst` is still `id`'s (renewed), else raises "lease: ..."
  -- and the page rolls back.
  function Store:hold_lease(inst, id, ttl)
    check(self.db:exec(sql(self, "hold", [[UPDATE leases SET expires_at = {LATER}
      WHERE instance_id = ? AND worker = ? AND expires_at >= {NOW}]]), ttl, inst, id))
    if self.db:changes() ~= 1 then
      error(require("sdk.util").failure(("lease: instance %d is no longer held by this worker"):format(inst), "lease"), 0)
    end
  end

  -- The worker holding an unexpired lease of `inst` | nil.
  function Store:lease_holder(inst)
    local r = check(self.db:query(sql(self, "holder", "SELECT worker FROM leases WHERE instance_id = ? AND expires_at >= {NOW}"), inst))[1]
    return r and r.worker
  end

  -- Named locks (locks table): `holder` takes `name` for ttl seconds if it is free or expired -> true |
  -- false (another holder has it); the same atomic statement as a lease's.
  function Store:take_lock(name, holder, ttl)
    local taken
    check(within(self, function()
      check(self.db:exec(sql(self, "lock", [[INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, {LATER})
        ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE locks.expires_at < {NOW} OR locks.holder = excluded.holder]]), name, holder, ttl))
      taken = self.db:changes() == 1
      return true
    end))
    return taken
  end

  function Store:drop_lock(name, holder)
    return within(self, function()
      check(self.db:exec("DELETE FROM locks WHERE name = ? AND holder = ?", name, holder))
      return true
    end)
  end

  -- Gives up worker `id`'s lease of `inst`, or all of them with the worker stopped (shutdown).
  function Store:release_leases(id, inst)
    return within(self, function()
      if inst then
        check(self.db:exec("DELETE FROM leases WHERE worker = ? AND instance_id = ?", id, inst))
      else
        check(self.db:exec("DELETE FROM leases WHERE worker = ?", id))
        check(self.db:exec(sql(self, "stop", "UPDATE workers SET stopped_at = {NOW} WHERE id = ?"), id))
      end
      return true
    end)
  end

  -- cachost workers: every worker with its heartbeat and how many leases it holds (and the database's
  -- time now, to read them by).
  function Store:worker_rows()
    return check(self:query(sql(self, "workers", [[SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat, w.stopped_at,
      w.metrics, (SELECT count(*) FROM leases l WHERE l.worker = w.id AND l.expires_at >= {NOW}) AS leases, {NOW} AS now
      FROM workers w ORDER BY w.started_at, w.id]])))
  end

  -- Every lease with its instance's name.
  function Store:lease_rows()
    return check(self:query(sql(self, "leases", [[SELECT i.name AS instance, l.worker, l.acquired_at, l.expires_at,
      CASE WHEN l.expires_at < {NOW} THEN 1 ELSE 0 END AS expired
      FROM leases l JOIN instances i ON i.id = l.instance_id ORDER BY i.name]])))
  end

  ------------------------------------------------------------------------------------------ sinks

  -- Every worker delivers alerts to the sinks (sinks.lua): the due deliveries of a sink are taken by one
  -- worker at a time (an advisory lock per sink in the transaction that reads them) and put out of the
  -- others' sight for CLAIM_SECONDS (next_at moves on), so an alert goes out once; one whose worker died
  -- before it was done is due again after that.  On SQLite one process delivers, as before.
  M.CLAIM_SECONDS = 120
  function PgStore:sink_due(sink, min_rank, limit)
    return within(self, function()
      check(self.db:exec("SELECT pg_advisory_xact_lock(7261003, hashtext(?))", sink))
      local due = check(Store.sink_due(self, sink, min_rank, limit))
      local claim = M.iso((sched.time and sched.time() or os.time()) + M.CLAIM_SECONDS)
      for _, a in ipairs(due) do
        check(self.db:exec("UPDATE deliveries SET next_at = ? WHERE sink = ? AND alert_id = ?", claim, sink, a.id))
      end
      return due
    end)
  end

  ------------------------------------------------------------------------------------------ switches

  -- An operator's switch every worker obeys: its value | nil (off).
  function Store:switch(name)
    local r = check(self.db:query("SELECT value FROM switches WHERE name = ?", name))[1]
    return r and r.value
  end

  function Store:set_switch(name, value)
    return within(self, function()
      check(self.db:exec(sql(self, "switch", [[INSERT INTO switches (name, value, updated_at) VALUES (?, ?, {NOW})
        ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at]]), name, value))
      return true
    end)
  end

  -- In the transaction of an action's limit check: the checks of all workers pass one at a time (on
  -- PostgreSQL a transaction-scoped advisory lock; SQLite's BEGIN IMMEDIATE serialises already), so the
  -- counts each sees include the pending actions of the others.
  function Store:serialize_limits() end
  function PgStore:serialize_limits()
    check(self.db:exec("SELECT pg_advisory_xact_lock(7261002)"))
  end
end
