-- `cachost sandbox webex`: a Webex organization and its integration (client id and secret); the consent at
-- /v1/authorize is approved at once as the org's Compliance Officer (a Full Administrator too).
return {
  webex = {
    new = function(name, seed, size) return require("sandbox.webex").new { seed = seed, users = size, org_name = name } end,
    credential = function(t) return ("client_id=%s client_secret=%s"):format(t.client_id, t.client_secret) end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add webex --name %s-webex --set client_id=%s"
        .. " --set base_url=%s/v1 --set insecure_loopback=true && cachost instance connect %s-webex")
        :format(t.client_secret, name, t.client_id, url, name) }
    end,
  },
}
