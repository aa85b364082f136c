-- `cachost sandbox github:NAME`: a GitHub organization NAME, a token, and an OAuth app for the web flow
-- (client id sandbox-NAME, client secret sandbox-secret-NAME).
return {
  github = {
    new = function(name, seed, size)
      return require("sandbox.github").new { seed = seed, members = size, org = name,
        oauth_app = { client_id = "sandbox-" .. name, client_secret = "sandbox-secret-" .. name, name = "cachost" } }
    end,
    credential = function(t) return t.token end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_TOKEN=%s cachost instance add github --name %s-github --set org=%s --set base_url=%s"
        .. " --set insecure_loopback=true"):format(t.token, name, name, url) }
    end,
  },
}
