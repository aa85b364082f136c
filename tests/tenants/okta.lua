-- The Okta test tenant: an org and its API token.
return {
  users_path = "/api/v1/users$",
  tenant = function(o) return require("sandbox.okta").new(o { users = 25, groups = 3, events_per_day = 20, days = 2 }) end,
  instance = function(t, url) return { domain = "acme.okta.com", base_url = url }, { api_token = t.token } end,
}
