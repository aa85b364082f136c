-- The Box test tenant: an enterprise and its client-credentials app.
return {
  users_path = "/users$",
  next_links = false,     -- Box pages by marker: its answers carry no URL to follow
  tenant = function(o)
    return require("sandbox.box").new(o { users = 20, groups = 3, folders = 4, files = 12, events = 60, days = 2,
      client_id = "box-client", client_secret = "box-secret", enterprise_id = "777001" })
  end,
  instance = function(_, url)
    return { client_id = "box-client", enterprise_id = "777001", auth = "client_credentials", base_url = url .. "/2.0",
      upload_base_url = url .. "/api/2.0", oauth_base_url = url }, { client_secret = "box-secret" }
  end,
}
