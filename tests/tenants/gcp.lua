-- The GCP test tenant: an organization (folders, projects) and its reader service account.  Its "users
-- listing" is the IAM policies' bindings (people and service accounts are the principals found there).
return {
  users_path = ":getIamPolicy$",
  next_links = false,     -- Google pages by token (nextPageToken): its answers carry no URL to follow
  tenant = function(o) return require("sandbox.google").gcp(o { projects = 3, entries = 60, days = 2 }) end,
  instance = function(t, url)
    return { organization_id = t.org_number, base_url = url, oauth_base_url = url }, { service_account_key = t:key_file(t.sa) }
  end,
  users = function(t)
    local s = {}
    for _, id in ipairs(t:truth().users) do s[id] = true end
    return s
  end,
}
