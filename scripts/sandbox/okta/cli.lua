-- `cachost sandbox okta`: an Okta org, its API token, the instance that connects to it.
return {
  okta = {
    new = function(name, seed, size, opts)
      return require("sandbox.okta").new { seed = seed, users = size, org_name = name, events = tonumber(opts.events) }
    end,
    credential = function(t) return t.token end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_API_TOKEN=%s cachost instance add okta --name %s-okta --set domain=%s.okta.com"
        .. " --set base_url=%s --set insecure_loopback=true"):format(t.token, name, name, url) }
    end,
  },
}
