-- The Webex test tenant: an organization and a connected integration (the Compliance Officer's tokens).
return {
  users_path = "/v1/people$",
  tenant = function(o)
    return require("sandbox.webex").new(o { users = 16, groups = 3, rooms = 4, files = 6, audit_events = 12,
      signins = 20, days = 2, client_id = "webex-client", client_secret = "webex-secret" })
  end,
  instance = function(t, url)
    local tok = t:officer_tokens()
    return { client_id = "webex-client", base_url = url .. "/v1" },
      { client_secret = "webex-secret", access_token = tok.access_token, refresh_token = tok.refresh_token,
        token_expires_at = tostring(sched.time() + tok.expires_in) }
  end,
  -- the users a complete sync holds
  users = function(t)
    local s = {}
    for _, p in ipairs(t.people) do s[p.id] = true end
    return s
  end,
}
