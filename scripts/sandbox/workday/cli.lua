-- `cachost sandbox workday[:TENANT] [--people FILE]`: a Workday tenant, its API client for integrations
-- (client id, secret, refresh token) and reports, the instance that connects to it.  --people: e-mail
-- addresses (one a line) of the first workers, the first of whom left with an active account.
local function people(path)
  if not path then return nil end
  local fh, err = io.open(path, "rb")
  if not fh then error("--people: " .. tostring(err), 0) end
  local list = {}
  for line in fh:lines() do
    local e = line:match("^%s*(%S+@%S+)%s*$")
    if e then list[#list + 1] = e end
  end
  fh:close()
  return list
end

return {
  workday = {
    new = function(name, seed, size, opts)
      return require("sandbox.workday").new { seed = seed, workers = size, tenant = name == "workday" and "acme" or name,
                                              people = people(opts.people) }
    end,
    credential = function(t)
      return ("tenant=%s client_id=%s client_secret=%s refresh_token=%s accounts_report=%s/%s groups_report=%s/%s audit_report=%s/%s")
        :format(t.tenant, t.client_id, t.client_secret, t.refresh_token, t.owner, t.reports.accounts, t.owner, t.reports.groups,
          t.owner, t.reports.audit)
    end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_CLIENT_SECRET=%s CACHOST_SET_REFRESH_TOKEN=%s cachost instance add workday --name %s-workday"
        .. " --set host=wd2-impl-services1.workday.com --set tenant=%s --set client_id=%s --set accounts_report=%s/%s"
        .. " --set groups_report=%s/%s --set audit_report=%s/%s --set base_url=%s --set insecure_loopback=true")
        :format(t.client_secret, t.refresh_token, name, t.tenant, t.client_id, t.owner, t.reports.accounts, t.owner,
          t.reports.groups, t.owner, t.reports.audit, url) }
    end,
  },
}
