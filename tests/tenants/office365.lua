local ms = require "tenants.microsoft"
return {
  users_path = "/v1.0/users$",
  tenant = ms.tenant,
  instance = function(t, url)
    local settings, secrets = ms.instance(t, url)
    settings.components = "users,audits,signins,apps"
    return settings, secrets
  end,
}
