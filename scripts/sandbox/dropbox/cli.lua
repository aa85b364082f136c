-- `cachost sandbox dropbox`: a Dropbox Business team and its team-scoped app (app key, app secret); the
-- instance connects through the OAuth consent (`cachost instance connect`), which the sandbox approves as
-- the team admin.
return {
  dropbox = {
    new = function(name, seed, size) return require("sandbox.dropbox").new { seed = seed, users = size, team_name = name } end,
    credential = function(t) return ("app_key=%s app_secret=%s"):format(t.client_id, t.client_secret) end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add dropbox --name %s-dropbox --set client_id=%s"
        .. " --set base_url=%s --set content_base_url=%s --set oauth_base_url=%s --set insecure_loopback=true && cachost instance connect %s-dropbox")
        :format(t.client_secret, name, t.client_id, url, url, url, name) }
    end,
  },
}
