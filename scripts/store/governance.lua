-- store/governance.lua — the store's governance records (governance.lua decides, the SQL is here).
-- governance_actions: one row per action planned, held or taken.
-- result: planned (dry run) / held / pending (recorded before the call goes out, in the transaction of
-- the limit check) / unknown (interrupted after it may have gone out) / ok / failed.
-- store.lua adds these operations to its Store.
local concat, unpack = table.concat, table.unpack

return function(Store, M)
  local check, norm, schema = M.check, M.norm, M.schema

  -- The row an action targets: by ext_id, or for users by email, for files by path or name.
  function Store:action_target(inst, entity, target)
    if not schema.entities[entity] then error("action_target: unknown entity '" .. tostring(entity) .. "'", 2) end
    local db = self.db
    local row = check(db:query(("SELECT * FROM %s WHERE instance_id = ? AND ext_id = ?"):format(entity), inst, target))[1]
    if row then return row end
    if entity == "users" then
      return check(db:query("SELECT * FROM users WHERE instance_id = ? AND lower(email) = lower(?)", inst, target))[1]
    elseif entity == "files" then
      return check(db:query([[SELECT * FROM files WHERE instance_id = ? AND (path = ? OR name = ?)
        ORDER BY deleted_at IS NOT NULL LIMIT 1]], inst, target, target))[1]
    end
  end

  function Store:action(id)
    return check(self.db:query("SELECT * FROM governance_actions WHERE id = ?", id))[1]
  end

  -- The last `action` on this target that succeeded or may have (pending, unknown), unless `undo_action`
  -- was done on it since.
  function Store:action_done(inst, action, target_id, undo_action)
    local done = check(self.db:query([[SELECT * FROM governance_actions WHERE instance_id = ? AND action = ?
      AND target_id = ? AND mode = 'executed' AND result IN ('ok', 'pending', 'unknown') ORDER BY id DESC LIMIT 1]],
      inst, action, target_id))[1]
    if not done or not undo_action then return done end
    local undone = check(self.db:query([[SELECT 1 FROM governance_actions WHERE instance_id = ? AND action = ?
      AND target_id = ? AND mode = 'executed' AND result IN ('ok', 'pending', 'unknown') AND id > ? LIMIT 1]],
      inst, undo_action, target_id, done.id))[1]
    if not undone then return done end
  end

  -- A policy's actions held while the same action on the same target, #id, had an unknown outcome
  -- (governance.lua's "waiting: #id ..." rows), oldest first.
  function Store:waiting_on(inst, action, target_id, id)
    return check(self.db:query([[SELECT * FROM governance_actions WHERE instance_id = ? AND action = ?
      AND target_id = ? AND result = 'held' AND error LIKE ? ORDER BY id]], inst, action, target_id,
      ("waiting: #%d %%"):format(id)))
  end

  -- The undo an operator made of `action` on this target ({operator, created_at}), if any: an undo is
  -- recorded on the same target, its operator "undo of #<id> by <who>" naming the action it undid.
  -- Both sides are found through (instance_id, target_id) (migration 12), never by scanning the log.
  function Store:action_undone_by_operator(inst, action, target_id)
    return check(self.db:query([[SELECT u.operator, u.created_at FROM governance_actions u
      WHERE u.instance_id = ?1 AND u.target_id = ?3 AND u.result = 'ok' AND u.operator LIKE 'undo of #%'
        AND EXISTS (SELECT 1 FROM governance_actions a WHERE a.instance_id = ?1 AND a.target_id = ?3
          AND a.action = ?2 AND u.operator LIKE 'undo of #' || a.id || ' by %')
      ORDER BY u.id DESC LIMIT 1]], inst, action, target_id))[1]
  end

  -- Automatic actions executed (or in flight) since `since`: of `policy`, of every policy; with
  -- `accounts` (an action on an account, which the share limit checks) also the distinct targets acted on
  -- in this instance and the instance's live users.  Each count reads an index of the automatic actions
  -- executed (migration 14).
  function Store:action_counts(inst, policy, since, accounts)
    local function n(sql, ...) return check(self.db:query(sql, ...))[1].n end
    local c = {
      policy = n([[SELECT count(*) n FROM governance_actions WHERE policy = ? AND mode = 'executed'
        AND created_at >= ?]], policy, since),
      global = n([[SELECT count(*) n FROM governance_actions WHERE policy IS NOT NULL AND mode = 'executed'
        AND created_at >= ?]], since),
    }
    if accounts then
      c.targets = n([[SELECT count(DISTINCT target_id) n FROM governance_actions WHERE instance_id = ?
        AND policy IS NOT NULL AND mode = 'executed' AND created_at >= ?]], inst, since)
      c.users = n("SELECT count(*) n FROM users WHERE instance_id = ? AND deleted_at IS NULL", inst)
    end
    return c
  end

  local ACTION_COLS = { "instance_id", "ext_id", "action", "target", "target_id", "policy", "operator", "mode",
    "result", "provider_status", "error", "undo", "created_at", "finished_at", "raw", "owner", "note" }
  local ACTION_SETTLE = { mode = true, result = true, provider_status = true, error = true, undo = true,
    finished_at = true, owner = true, note = true }

  -- Inserts an action row, or updates the one of the same (instance_id, ext_id) (a retry keeps its
  -- correlation id) -> the row.
  function Store:record_action(f)
    local vals, ph, sets = {}, {}, {}
    for i, c in ipairs(ACTION_COLS) do
      vals[i] = norm(f[c]); ph[i] = "?"
      if ACTION_SETTLE[c] then sets[#sets + 1] = c .. " = excluded." .. c end
    end
    check(self.db:exec(("INSERT INTO governance_actions (%s) VALUES (%s) ON CONFLICT (instance_id, ext_id) DO UPDATE SET %s")
      :format(concat(ACTION_COLS, ", "), concat(ph, ", "), concat(sets, ", ")), unpack(vals, 1, #ACTION_COLS)))
    return check(self.db:query("SELECT * FROM governance_actions WHERE instance_id = ? AND ext_id = ?",
      f.instance_id, f.ext_id))[1]
  end

  -- Sets the outcome fields given (json.null clears one) of action `id` -> the row.  One statement, no
  -- yield: it also works in a task being cancelled (with another task's transaction open it joins it,
  -- as every single write on this connection does).
  function Store:settle_action(id, f)
    local sets, vals = {}, {}
    for k, v in pairs(f) do
      if not ACTION_SETTLE[k] then error("settle_action: unknown field '" .. tostring(k) .. "'", 2) end
      sets[#sets + 1] = k .. " = ?"
      vals[#sets] = norm(v)          -- may be nil (json.null clears)
    end
    local n = #sets + 1
    vals[n] = id
    check(self.db:exec(("UPDATE governance_actions SET %s WHERE id = ?"):format(concat(sets, ", ")), unpack(vals, 1, n)))
    return self:action(id)
  end

  -- Actions whose outcome is not known yet (pending, unknown), of one instance or all, oldest first.
  function Store:unsettled_actions(inst)
    return check(self.db:query([[SELECT * FROM governance_actions WHERE result IN ('pending', 'unknown')
      AND (? IS NULL OR instance_id = ?) ORDER BY id]], inst, inst))
  end

  -- The governance log, newest first.
  function Store:action_log(limit)
    return check(self.db:query([[SELECT g.id, g.created_at, i.name AS instance, g.action, g.target,
        coalesce(g.policy, g.operator) AS by, g.mode, g.result, g.provider_status, g.error, g.note
      FROM governance_actions g LEFT JOIN instances i ON i.id = g.instance_id ORDER BY g.id DESC LIMIT ?]], limit))
  end

  function Store:set_quarantined(inst, ext_id, on)
    check(self.db:exec("UPDATE files SET quarantined = ? WHERE instance_id = ? AND ext_id = ?", on and 1 or 0, inst, ext_id))
  end
end
