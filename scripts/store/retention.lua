-- store/retention.lua — the store's side of retention (retention.lua decides what and when): deleting one
-- small batch of rows older than a cutoff, and the size of each table per instance (cachost status).
return function(Store, M)
  local check, within = M.check, M.within

  -- What retention may delete, and by which time column: events and the change history, the two tables
  -- that grow with time.  Inventory rows, alerts, governance records, policy state are never deleted.
  M.RETAINED = { activities = "time", changes = "time" }

  -- Deletes at most `limit` rows of `tbl` of instance `inst` whose time is before `cutoff` (ISO), in one
  -- transaction -> how many.  Rows of pages the policies have not evaluated yet (policy_pending) are kept.
  function Store:retention_batch(tbl, inst, cutoff, limit)
    local col = M.RETAINED[tbl]
    if not col then error("retention_batch: '" .. tostring(tbl) .. "' is not a retained table", 2) end
    return within(self, function()
      check(self.db:exec(([[DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE instance_id = ?1 AND %s < ?2
          AND id < coalesce((SELECT min(first_id) FROM policy_pending WHERE instance_id = ?1 AND source = '%s'),
                            9223372036854775807) LIMIT ?3)]]):format(tbl, tbl, col, tbl), inst, cutoff, limit))
      return self.db:changes()
    end)
  end

  -- How many rows of tbl of inst are older than cutoff (the dry run).
  function Store:retention_count(tbl, inst, cutoff)
    local col = M.RETAINED[tbl]
    if not col then error("retention_count: '" .. tostring(tbl) .. "' is not a retained table", 2) end
    return check(self.db:query(("SELECT count(*) n FROM %s WHERE instance_id = ? AND %s < ?"):format(tbl, col), inst, cutoff))[1].n
  end

  -- Space freed by deletions (SQLite's free pages) beyond `keep` (a fraction of the file) is given back to
  -- the file system, `step` pages per transaction -> pages released.  Only a database created with
  -- incremental auto-vacuum (every one since migration 8) can; others keep their free pages for new rows.
  -- Below `keep` the free pages stay: new rows fill them (retention frees about what a day of syncs adds),
  -- which costs less than shrinking the file and growing it again.
  function Store:release_space(keep, step)
    local db = self.db
    if check(db:query("PRAGMA auto_vacuum"))[1].auto_vacuum ~= 2 then return 0 end
    local released = 0
    while true do
      local pages = check(db:query("PRAGMA page_count"))[1].page_count
      local free = check(db:query("PRAGMA freelist_count"))[1].freelist_count
      local over = free - math.floor(pages * keep)
      if over <= 0 then return released end
      check(within(self, function() check(db:exec(("PRAGMA incremental_vacuum(%d)"):format(math.min(over, step)))) end))
      released = released + math.min(over, step)
      if sched.current and sched.current() then sched.sleep(0) end
    end
  end

  -- {{instance_id =, table =, rows =, bytes =}, ...}: each table's pages (its indexes included, from
  -- SQLite's dbstat) shared among instances by their rows; instance_id nil for tables without one.
  function Store:table_sizes()
    local bytes, owner = {}, {}
    for _, r in ipairs(check(self.db:query("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')"))) do
      owner[r.name] = r.tbl_name
    end
    for _, r in ipairs(check(self.db:query("SELECT name, sum(pgsize) AS b FROM dbstat GROUP BY name"))) do
      local t = owner[r.name] or r.name
      bytes[t] = (bytes[t] or 0) + r.b
    end
    local out = {}
    for t, b in pairs(bytes) do
      if not M.HIDDEN[t] and not t:match("^sqlite_") then
        local has_inst = false
        for _, c in ipairs(check(self.db:query(("PRAGMA table_info(%q)"):format(t)))) do
          has_inst = has_inst or c.name == "instance_id"
        end
        if has_inst then
          local total = 0
          local per = check(self.db:query(("SELECT instance_id, count(*) AS n FROM %q GROUP BY instance_id"):format(t)))
          for _, p in ipairs(per) do total = total + p.n end
          for _, p in ipairs(per) do
            out[#out + 1] = { instance_id = p.instance_id, table = t, rows = p.n, bytes = b * p.n // math.max(total, 1) }
          end
        else
          out[#out + 1] = { table = t, rows = check(self.db:query(("SELECT count(*) AS n FROM %q"):format(t)))[1].n, bytes = b }
        end
      end
    end
    table.sort(out, function(a, b)
      if (a.instance_id or 0) ~= (b.instance_id or 0) then return (a.instance_id or 0) < (b.instance_id or 0) end
      return a.table < b.table
    end)
    return out
  end
end
