-- store/instances.lua — the store's operations on instance rows (instances.lua decides, the SQL is here).
-- store.lua adds them to its Store: st:instance_row(name_or_id), st:instance_rows{enabled=}, ...
--
-- Only live instances are found (removed_at IS NULL): a removed instance's rows stay for queries, its
-- name is free again.
return function(Store, M)
  local check = M.check

  -- The live instance with this name (a string) or id (an integer) -> row | nil.
  function Store:instance_row(key)
    local by = math.type(key) == "integer" and "id" or "name"
    return check(self.db:query(("SELECT * FROM instances WHERE %s = ? AND removed_at IS NULL"):format(by), key))[1]
  end

  -- Live instances by name: all, or those {enabled = true}, or of {app = app}.
  function Store:instance_rows(opts)
    opts = opts or {}
    return check(self.db:query([[SELECT * FROM instances WHERE removed_at IS NULL
      AND (?1 IS NULL OR enabled = 1) AND (?2 IS NULL OR app = ?2) ORDER BY name]], opts.enabled or nil, opts.app))
  end

  -- A new instance row (status 'new', enabled) -> its id.  Call it in the transaction of its secrets.
  function Store:add_instance(app, name, settings_json)
    local now = M.now()
    check(self.db:exec([[INSERT INTO instances (app, name, settings, status, enabled, created_at, updated_at)
      VALUES (?, ?, ?, 'new', 1, ?, ?)]], app, name, settings_json, now, now))
    return self.db:last_insert_rowid()
  end

  local UPDATABLE = { name = true, settings = true, enabled = true, status = true, components = true,
                      last_scan = true, updated_at = true }
  -- Sets the given columns of instance `id`.
  function Store:update_instance(id, fields)
    local keys = {}
    for k in pairs(fields) do
      if not UPDATABLE[k] then error("update_instance: unknown field '" .. tostring(k) .. "'", 2) end
      keys[#keys + 1] = k
    end
    table.sort(keys)      -- one statement text per set of fields (the statement cache)
    local sets, vals = {}, {}
    for i, k in ipairs(keys) do sets[i], vals[i] = k .. " = ?", M.norm(fields[k]) end
    vals[#keys + 1] = id
    return check(self.db:exec(("UPDATE instances SET %s WHERE id = ?"):format(table.concat(sets, ", ")),
      table.unpack(vals, 1, #keys + 1)))
  end

  -- Removes an instance: its secrets go and it is marked removed (its data stays), or with purge every row
  -- it owns is deleted (foreign keys cascade).  Call it in a transaction.
  function Store:remove_instance(id, purge)
    if purge then return check(self.db:exec("DELETE FROM instances WHERE id = ?", id)) end
    check(self.db:exec("DELETE FROM secrets WHERE instance_id = ?", id))
    local now = M.now()
    return check(self.db:exec("UPDATE instances SET removed_at = ?, enabled = 0, updated_at = ? WHERE id = ?",
      now, now, id))
  end

  -- Live instances with their last scan and entity counts (cachost instance list; no secret ever).
  function Store:instance_summaries()
    return check(self.db:query([[
      SELECT i.id, i.name, i.app, CASE WHEN i.enabled <> 0 THEN i.status ELSE 'disabled' END AS status, i.enabled,
        (SELECT max(last_success) FROM stream_state s WHERE s.instance_id = i.id) AS last_scan,
        (SELECT count(*) FROM users u WHERE u.instance_id = i.id AND u.deleted_at IS NULL) AS users,
        (SELECT count(*) FROM activities a WHERE a.instance_id = i.id) AS activities,
        (SELECT count(*) FROM files f WHERE f.instance_id = i.id AND f.deleted_at IS NULL) AS files
      FROM instances i WHERE i.removed_at IS NULL ORDER BY i.name]]))
  end

  -- The names of an instance's secrets, sorted (no key needed: nothing is decrypted).
  function Store:secret_names(id)
    local out = {}
    for _, r in ipairs(check(self.db:query("SELECT name FROM secrets WHERE instance_id = ? ORDER BY name", id))) do
      out[#out + 1] = r.name
    end
    return out
  end

  -- How many secrets the vault holds, of every instance (cachost vault status).
  function Store:secret_count()
    return check(self.db:query("SELECT count(*) AS n FROM secrets"))[1].n
  end

  -- The stream_state rows of an instance, by stream.
  function Store:stream_states(id)
    return check(self.db:query("SELECT * FROM stream_state WHERE instance_id = ? ORDER BY stream", id))
  end
end
