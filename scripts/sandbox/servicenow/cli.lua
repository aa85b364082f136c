-- `cachost sandbox servicenow`: a ServiceNow instance, its integration user and OAuth registry, the
-- instance that connects to it (the password grant of the integration user).
return {
  servicenow = {
    new = function(name, seed, size, opts)
      return require("sandbox.servicenow").new { seed = seed, users = size, instance = name,
        events_per_day = opts.events and math.floor(tonumber(opts.events) / 8) or nil }
    end,
    credential = function(t)
      return ("username=%s password=%s client_id=%s client_secret=%s"):format(t.integration.user_name,
        t.integration.password, t.client.id, t.client.secret)
    end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_PASSWORD=%s CACHOST_SET_CLIENT_SECRET=%s cachost instance add servicenow --name %s-servicenow"
        .. " --set instance=%s.service-now.com --set username=%s --set client_id=%s --set base_url=%s"
        .. " --set insecure_loopback=true"):format(t.integration.password, t.client.secret, name, name,
        t.integration.user_name, t.client.id, url) }
    end,
  },
}
