-- store/identities.lua — people across apps: which accounts belong to whom (the `identities` view of
-- migration 9: by e-mail, or by identity_links an admin makes), who has left the organization, and where
-- they still have access.  store.lua adds these operations to its Store.
return function(Store, M)
  local check = M.check

  local function marks(n) return ("?"):rep(n, ", ") end

  -- The person of each of these accounts of an instance -> { [ext_id] = person } (accounts without an
  -- e-mail or a link have none).
  function Store:people_of(inst, ext_ids)
    local out = {}
    for first = 1, #ext_ids, 500 do
      local ids = table.move(ext_ids, first, math.min(#ext_ids, first + 499), 1, {})
      for _, r in ipairs(check(self.db:query(("SELECT account_id, person FROM identities WHERE instance_id = ?"
          .. " AND account_id IN (%s) AND person IS NOT NULL"):format(marks(#ids)), inst, table.unpack(ids)))) do
        out[r.account_id] = r.person
      end
    end
    return out
  end

  -- People who have left, as their sources of truth say -> { [person] = {instance =, how =, since =} }:
  -- terminated (terminated_at, up to now) in any app, or, in an identity provider (apps: the list of those
  -- apps), an account whose status is one of `statuses` or that the provider no longer lists.  Only live
  -- instances count.  Three indexed lookups (it runs for every page of users a policy watches).
  function Store:departures(apps, statuses)
    local live = "person IS NOT NULL AND instance_id IN (SELECT id FROM instances WHERE removed_at IS NULL)"
    local idp = ("app IN (%s)"):format(marks(#apps))
    local sql = ([[
      SELECT person, instance, 'terminated' how, terminated_at since FROM identities WHERE %s AND terminated_at <= ?
      UNION ALL SELECT person, instance, status, NULL FROM identities WHERE %s AND %s AND status IN (%s)
      UNION ALL SELECT person, instance, 'deleted', deleted_at FROM identities WHERE %s AND %s AND deleted_at IS NOT NULL
      ORDER BY 1, 4]]):format(live, live, idp, marks(#statuses), live, idp)
    local args = { M.now() }
    table.move(apps, 1, #apps, 2, args)
    table.move(statuses, 1, #statuses, #args + 1, args)
    table.move(apps, 1, #apps, #args + 1, args)
    local out = {}
    for _, r in ipairs(check(self.db:query(sql, table.unpack(args)))) do
      out[r.person] = out[r.person] or { instance = r.instance, how = r.how, since = r.since }
    end
    return out
  end

  -- A person's accounts in live, enabled instances, still listed by their apps: users rows with their
  -- instance_id (for the policies of those instances).
  function Store:accounts_of(person)
    return check(self.db:query([[SELECT u.* FROM identities p JOIN users u ON u.instance_id = p.instance_id
      AND u.ext_id = p.account_id WHERE p.person = ? AND u.deleted_at IS NULL
      AND u.instance_id IN (SELECT id FROM instances WHERE removed_at IS NULL AND enabled = 1)
      ORDER BY u.instance_id, u.ext_id]], person))
  end

  -- Everything known of a person's accounts, for `cachost identity` (the identities view's rows).
  function Store:identity(person)
    return check(self.db:query("SELECT * FROM identities WHERE person = ? ORDER BY instance, account_id", person))
  end

  -- Joins an account (an e-mail in any app when inst is nil, else the account's ext_id in that instance)
  -- to a person; again for the same account moves it.
  function Store:link_identity(inst, account, person)
    check(self.db:exec([[INSERT INTO identity_links (instance_id, account, person, created_at) VALUES (?, ?, ?, ?)
      ON CONFLICT ((coalesce(instance_id, 0)), account) DO UPDATE SET person = excluded.person,
      created_at = excluded.created_at]], inst, account, person, M.now()))
  end

  -- -> how many links went (0 or 1)
  function Store:unlink_identity(inst, account)
    check(self.db:exec("DELETE FROM identity_links WHERE coalesce(instance_id, 0) = ? AND account = ?", inst or 0, account))
    return self.db:changes()
  end
end
