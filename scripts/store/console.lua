-- store/console.lua — what the web console reads and writes (scripts/console/ serves it): its accounts and
-- sessions, alerts filtered and triaged, searches across apps, and the figures behind its charts.
-- store.lua adds these operations to its Store.
return function(Store, M)
  local check = M.check

  ------------------------------------------------------------------------------------------ accounts

  function Store:console_user(name)
    return check(self.db:query("SELECT name, role, hash, created_at, last_login FROM console_users WHERE name = ?", name))[1]
  end
  function Store:console_users()
    return check(self.db:query("SELECT name, role, created_at, last_login FROM console_users ORDER BY name"))
  end
  -- Adds the account, or gives an existing one this role and password hash.
  function Store:console_user_set(name, role, hash)
    check(self.db:exec([[INSERT INTO console_users (name, role, hash, created_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash]], name, role, hash, M.now()))
  end
  -- -> whether it existed (its sessions go with it)
  function Store:console_user_remove(name)
    check(self.db:exec("DELETE FROM console_sessions WHERE account = ?", name))
    check(self.db:exec("DELETE FROM console_users WHERE name = ?", name))
    return self.db:changes() == 1
  end

  ------------------------------------------------------------------------------------------ sessions

  function Store:session_start(id_hash, user, csrf, expires_at)
    local now = M.now()
    check(self.db:exec("DELETE FROM console_sessions WHERE expires_at < ?", now))
    check(self.db:exec("INSERT INTO console_sessions (id_hash, account, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      id_hash, user, csrf, now, expires_at))
    check(self.db:exec("UPDATE console_users SET last_login = ? WHERE name = ?", now, user))
  end
  -- The live session of this id hash, with its account's role -> {user =, role =, csrf =} | nil
  function Store:session(id_hash)
    return check(self.db:query([[SELECT s.account AS user, u.role, s.csrf FROM console_sessions s JOIN console_users u
      ON u.name = s.account WHERE s.id_hash = ? AND s.expires_at > ?]], id_hash, M.now()))[1]
  end
  function Store:session_end(id_hash)
    check(self.db:exec("DELETE FROM console_sessions WHERE id_hash = ?", id_hash))
  end

  ------------------------------------------------------------------------------------------ alerts

  -- `text` anywhere, as a LIKE pattern (its own % and _ taken literally)
  local function like(text) return "%" .. text:lower():gsub("[%%_\\]", "\\%0") .. "%" end

  -- Alerts newest first, filtered: f = {severity =, policy =, instance = name, status =, q = text in the
  -- title or the entity, limit =}.
  function Store:alerts_where(f)
    return check(self.db:query([[SELECT a.id, a.created_at, a.updated_at, i.name AS instance, i.app, a.policy,
        a.severity, a.status, a.assignee, a.title, a.entity, a.entity_id FROM alerts a
      LEFT JOIN instances i ON i.id = a.instance_id
      WHERE (?1 IS NULL OR a.severity = ?1) AND (?2 IS NULL OR a.policy = ?2) AND (?3 IS NULL OR i.name = ?3)
        AND (?4 IS NULL OR a.status = ?4)
        AND (?5 IS NULL OR lower(a.title) LIKE ?5 ESCAPE '\' OR lower(a.entity_id) LIKE ?5 ESCAPE '\')
      ORDER BY a.id DESC LIMIT ?6]], f.severity, f.policy, f.instance, f.status, f.q and like(f.q), f.limit or 200))
  end

  -- Triage: status (open, resolved, dismissed) and/or assignee ("" unassigns) of alerts `ids`, a note
  -- kept in raw -> how many changed
  function Store:alerts_set(ids, f)
    local n = 0
    for _, id in ipairs(ids) do
      check(self.db:exec([[UPDATE alerts SET status = coalesce(?, status),
          assignee = CASE WHEN ? IS NULL THEN assignee ELSE nullif(?, '') END,
          raw = coalesce(?, raw), updated_at = ? WHERE id = ?]],
        f.status, f.assignee, f.assignee, f.note and json.encode { note = f.note, by = f.by } or nil, M.now(), id))
      n = n + self.db:changes()
    end
    return n
  end

  -- The rows an alert's evidence names: the activities of its actor around it, or the file it is about.
  function Store:alert_rows(a)
    if a.entity == "files" then
      return check(self.db:query([[SELECT name, path, owner, access_level, scan_status, scan_matches, quarantined
        FROM files WHERE instance_id = ? AND ext_id = ?]], a.instance_id, a.entity_id))
    end
    local ev = json.decode(a.evidence or "{}") or {}
    local who = type(ev.row) == "table" and (ev.row.actor or ev.row.email)
    if not who then return {} end
    return check(self.db:query([[SELECT time, kind, action, actor, outcome, ip, location FROM activities
      WHERE instance_id = ? AND actor = ? ORDER BY time DESC LIMIT 50]], a.instance_id, who))
  end

  ------------------------------------------------------------------------------------------ investigate

  -- Users, files, activities and grants of every app whose names match `q` (at most `limit` each).
  function Store:search(q, limit)
    limit = limit or 50
    local pattern = like(q)
    local function rows(sql) return check(self.db:query(sql, pattern, limit)) end
    return {
      users = rows([[SELECT i.name AS instance, i.app, u.ext_id, u.email, u.display_name, u.status, u.is_admin,
        u.last_login FROM users u JOIN instances i ON i.id = u.instance_id WHERE u.deleted_at IS NULL
        AND (lower(u.email) LIKE ?1 ESCAPE '\' OR lower(u.display_name) LIKE ?1 ESCAPE '\') ORDER BY u.email LIMIT ?2]]),
      files = rows([[SELECT i.name AS instance, i.app, f.ext_id, f.path, f.owner, f.access_level, f.scan_status,
        f.quarantined FROM files f JOIN instances i ON i.id = f.instance_id WHERE f.deleted_at IS NULL
        AND (lower(f.path) LIKE ?1 ESCAPE '\' OR lower(f.owner) LIKE ?1 ESCAPE '\') ORDER BY f.path LIMIT ?2]]),
      activities = rows([[SELECT i.name AS instance, i.app, a.time, a.kind, a.action, a.actor, a.outcome, a.ip,
        a.location FROM activities a JOIN instances i ON i.id = a.instance_id
        WHERE lower(a.actor) LIKE ?1 ESCAPE '\' OR lower(a.action) LIKE ?1 ESCAPE '\' ORDER BY a.time DESC LIMIT ?2]]),
      grants = rows([[SELECT i.name AS instance, i.app, g.app_name, g.user, g.scopes, g.last_used
        FROM app_grants g JOIN instances i ON i.id = g.instance_id WHERE g.deleted_at IS NULL
        AND (lower(g.app_name) LIKE ?1 ESCAPE '\' OR lower(g.user) LIKE ?1 ESCAPE '\') ORDER BY g.app_name LIMIT ?2]]),
    }
  end

  -- The time of an instance's newest event.
  function Store:last_activity(inst)
    return check(self.db:query("SELECT max(time) AS t FROM activities WHERE instance_id = ?", inst))[1].t
  end

  ------------------------------------------------------------------------------------------ charts

  -- Sign-ins per day and app over the last `days` days: {day, app, success, failure}.
  function Store:signins_by_day(days)
    return check(self.db:query([[SELECT substr(a.time, 1, 10) AS day, i.app,
        sum(CASE WHEN a.outcome = 'success' THEN 1 ELSE 0 END) AS success,
        sum(CASE WHEN a.outcome = 'failure' THEN 1 ELSE 0 END) AS failure
      FROM activities a JOIN instances i ON i.id = a.instance_id
      WHERE a.kind = 'signin' AND a.time >= ? GROUP BY day, i.app ORDER BY day, i.app]],
      M.iso(sched.time() - days * 86400)))
  end
  -- Failed sign-ins by country (the last part of the provider's location) over `days` days.
  function Store:failures_by_country(days)
    return check(self.db:query([[SELECT coalesce(trim(replace(location, rtrim(location, replace(location, ',', '')), '')),
        'unknown') AS country, count(*) AS failures FROM activities
      WHERE kind = 'signin' AND outcome = 'failure' AND time >= ? GROUP BY country ORDER BY failures DESC LIMIT 20]],
      M.iso(sched.time() - days * 86400)))
  end
  function Store:alerts_by_severity()
    return check(self.db:query([[SELECT severity, sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open, count(*) AS total FROM alerts
      GROUP BY severity]]))
  end
  function Store:public_files_by_app()
    return check(self.db:query([[SELECT i.app, sum(CASE WHEN f.access_level = 'public' THEN 1 ELSE 0 END) AS public,
        sum(CASE WHEN f.access_level = 'external' THEN 1 ELSE 0 END) AS external FROM files f JOIN instances i ON i.id = f.instance_id
      WHERE f.deleted_at IS NULL AND f.is_folder IS NOT 1 GROUP BY i.app ORDER BY i.app]]))
  end
end
