-- `cachost sandbox box`: a Box enterprise and its client-credentials app.
return {
  box = {
    new = function(_, seed, size) return require("sandbox.box").new { seed = seed, users = size } end,
    credential = function(t)
      return ("client_id=%s client_secret=%s enterprise_id=%s"):format(t.client_id, t.client_secret, t.enterprise_id)
    end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add box --name %s-box --set auth=client_credentials"
        .. " --set client_id=%s --set enterprise_id=%s --set base_url=%s/2.0 --set upload_base_url=%s/api/2.0"
        .. " --set oauth_base_url=%s --set insecure_loopback=true")
        :format(t.client_secret, name, t.client_id, t.enterprise_id, url, url, url) }
    end,
  },
}
