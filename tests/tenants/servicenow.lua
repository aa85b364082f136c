-- The ServiceNow test tenant: an instance and its integration user (admin), through Basic auth: every
-- OAuth token issued is a row of oauth_credential (an app grant), so an instance on OAuth would see its
-- own tokens where a twin instance does not (servicenow_connector_spec covers OAuth).
return {
  users_path = "/api/now/table/sys_user$",
  -- the users a complete sync holds (the fault suite's reference)
  users = function(t)
    local s = {}
    for _, id in ipairs(t:truth().users) do s[id] = true end
    return s
  end,
  tenant = function(o)
    return require("sandbox.servicenow").new(o { users = 25, groups = 4, events_per_day = 40, days = 2, files = 6 })
  end,
  instance = function(t, url)
    return { instance = "acme.service-now.com", username = t.integration.user_name, auth = "basic", base_url = url },
      { password = t.integration.password }
  end,
}
