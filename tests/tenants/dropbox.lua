-- The Dropbox test tenant: a team and its team-scoped app, connected (the tokens the OAuth consent gives).
return {
  users_path = "/2/team/members/list_v2$",
  next_links = false,           -- cursors posted back to /continue routes: no URL in its answers
  tenant = function(o)
    return require("sandbox.dropbox").new(o { users = 20, shared_folders = 3, files = 30, events = 120, days = 2,
      client_id = "dbx-app-key", client_secret = "dbx-app-secret" })
  end,
  instance = function(t, url)
    local g = t:grant_all()
    return { client_id = "dbx-app-key", base_url = url, content_base_url = url, oauth_base_url = url },
      { client_secret = "dbx-app-secret", access_token = g.access_token, refresh_token = g.refresh_token,
        token_expires_at = tostring(math.floor(sched.time()) + g.expires_in) }
  end,
}
