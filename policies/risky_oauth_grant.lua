-- An OAuth grant with high-privilege scopes to an app few users have granted anything.
local HIGH = { "Mail.ReadWrite", "Mail.Send", "Files.ReadWrite.All", "Directory.ReadWrite.All", "offline_access",
  "admin:org", "repo", "root_readwrite", "full_access", "okta.users.manage", "https://mail.google.com/",
  "useraccount" }         -- ServiceNow's: everything the user's account may do

return policy {
  name = "High-privilege OAuth grant to a rarely seen app",
  severity = "high",
  on = "app_grant",
  ops = { "added" },
  new_only = true,
  match = function(g)
    if (g.app_users or 0) > 3 then return false end
    local scopes = " " .. tostring(g.scopes or ""):gsub(",", " ") .. " "
    for _, s in ipairs(HIGH) do
      if scopes:find(" " .. s .. " ", 1, true) then return true end
    end
    return false
  end,
  alert = "{user} granted {app_name} high-privilege scopes ({scopes})",
  actions = { "alert", "revoke_grant" },
  mode = "audit",
}
