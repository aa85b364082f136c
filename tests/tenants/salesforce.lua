-- The Salesforce test tenant: an org, its connected app (JWT bearer with the app's key) and integration user.
return {
  -- every read is a SOQL query; the users stream's first is UserLogin's, then User's
  users_path = "/services/data/v%d+%.%d/query$",
  -- REQUEST_LIMIT_EXCEEDED (403) names no wait: Salesforce sends no Retry-After
  retry_header = false,
  tenant = function(o)
    return require("sandbox.salesforce").new(o { users = 25, logins_per_day = 20, days = 2, files = 8 })
  end,
  users = function(t)
    local s = {}
    for _, id in ipairs(t:truth().users) do s[id] = true end
    return s
  end,
  instance = function(t, url)
    return { my_domain = "acme.my.salesforce.com", client_id = t.app.client_id, username = t.integration.Username, base_url = url },
      { private_key = t.app.private_key }
  end,
}
