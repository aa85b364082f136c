-- The Google Workspace test tenant: a customer and its service account with domain-wide delegation.
return {
  users_path = "/admin/directory/v1/users$",
  next_links = false,     -- Google pages by token (nextPageToken): its answers carry no URL to follow
  tenant = function(o)
    return require("sandbox.google").workspace(o { users = 10, groups = 3, files = 12, events = 40, days = 2 })
  end,
  instance = function(t, url)
    return { admin_email = t.admin.primaryEmail, base_url = url, oauth_base_url = url }, { service_account_key = t:key_file(t.sa) }
  end,
  -- the users a complete sync holds: every user, the deleted ones within the restore window too
  users = function(t)
    local s = {}
    for _, id in ipairs(t:truth().users) do s[id] = true end
    return s
  end,
}
