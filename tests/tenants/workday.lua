-- The Workday test tenant: its API client for integrations (refresh token) and its reports.
return {
  users_path = "/Human_Resources/v[%d.]+$",
  next_links = false,     -- Workday pages by page number (Page/Total_Pages): its answers carry no URL to follow
  tenant = function(o)
    local x = o { users = 20, signins = 60, audits = 12 }
    x.workers, x.signons = x.users, x.signins
    return require("sandbox.workday").new(x)
  end,
  instance = function(t, url)
    return { host = "wd2-impl-services1.workday.com", tenant = t.tenant, client_id = t.client_id, base_url = url,
             accounts_report = t.owner .. "/" .. t.reports.accounts, groups_report = t.owner .. "/" .. t.reports.groups,
             audit_report = t.owner .. "/" .. t.reports.audit },
      { client_secret = t.client_secret, refresh_token = t.refresh_token }
  end,
  users = function(t)
    local s = {}
    for _, name in ipairs(t:truth().users) do s[name] = true end
    return s
  end,
}
