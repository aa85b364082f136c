-- store/sinks.lua — the store's deliveries of alerts to the sinks (sinks.lua sends, the SQL is here): each
-- sink's queue, its attempts and its health.  store.lua adds these operations to its Store.
return function(Store, M)
  local check, within = M.check, M.within

  local SEVERITY_RANK = "CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 WHEN 'critical' THEN 4 ELSE 0 END"

  -- The deliveries of one sink that are due (at most limit), after queueing the alerts raised since its
  -- last look whose severity ranks at least min_rank (1 low .. 4 critical).  A sink seen for the first time
  -- starts after the newest alert.
  function Store:sink_due(sink, min_rank, limit)
    local now = M.now()
    return within(self, function()
      check(self.db:exec([[INSERT OR IGNORE INTO sinks (name, after_alert, created_at)
        VALUES (?, (SELECT coalesce(max(id), 0) FROM alerts), ?)]], sink, now))
      check(self.db:exec(([[INSERT OR IGNORE INTO deliveries (sink, alert_id, next_at)
        SELECT ?, id, ? FROM alerts WHERE %s >= ? AND id > (SELECT after_alert FROM sinks WHERE name = ?)
          AND id > (SELECT coalesce(max(alert_id), 0) FROM deliveries WHERE sink = ?)]]):format(SEVERITY_RANK),
        sink, now, min_rank, sink, sink))
      return check(self.db:query([[SELECT d.attempts, a.*, i.name AS instance FROM deliveries d
        JOIN alerts a ON a.id = d.alert_id LEFT JOIN instances i ON i.id = a.instance_id
        WHERE d.sink = ? AND d.delivered_at IS NULL AND d.next_at <= ? ORDER BY d.alert_id LIMIT ?]], sink, now, limit))
    end)
  end

  function Store:delivery_done(sink, alert_id)
    check(self.db:exec("UPDATE deliveries SET delivered_at = ?, last_error = NULL WHERE sink = ? AND alert_id = ?",
      M.now(), sink, alert_id))
  end

  -- A failed attempt: the sink is taken for down, so all its waiting deliveries wait until next_at.
  function Store:delivery_failed(sink, alert_id, err, next_at)
    local at = M.iso(next_at)
    check(within(self, function()
      check(self.db:exec([[UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_at = ?
        WHERE sink = ? AND alert_id = ?]], err, at, sink, alert_id))
      check(self.db:exec([[UPDATE deliveries SET next_at = CASE WHEN next_at > ?1 THEN next_at ELSE ?1 END
        WHERE sink = ?2 AND delivered_at IS NULL]], at, sink))
      return true
    end))
  end

  -- Per sink: deliveries waiting, delivered, and the last error (cachost sinks, /metrics).
  function Store:sink_health()
    return check(self:query([[SELECT sink, sum(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END) AS waiting,
      sum(CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END) AS delivered,
      max(CASE WHEN delivered_at IS NULL THEN attempts END) AS attempts,
      (SELECT last_error FROM deliveries e WHERE e.sink = d.sink AND e.delivered_at IS NULL AND e.last_error IS NOT NULL
       ORDER BY e.alert_id LIMIT 1) AS last_error
      FROM deliveries d GROUP BY sink ORDER BY sink]]))
  end
end
