-- The GitHub test tenant: an organization and a token.
return {
  users_path = "/members$",
  tenant = function(o)
    return require("sandbox.github").new(o { org = "acme", members = 25, teams = 3, outside_collaborators = 3,
      audit_events = 40, days = 2 })
  end,
  instance = function(t, url) return { org = "acme", base_url = url }, { token = t.token } end,
}
