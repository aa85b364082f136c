-- `cachost sandbox microsoft`: one Entra tenant behind Graph, the Management Activity API and ARM, and the
-- app registration both Office 365 and Azure instances connect with.
return {
  microsoft = {
    new = function(_, seed, size, opts)
      return require("sandbox.microsoft").new { seed = seed, users = size, mgmt_records = tonumber(opts.events) }
    end,
    credential = function(t)
      return ("tenant_id=%s client_id=%s client_secret=%s"):format(t.tenant_id, t.client_id, t.client_secret)
    end,
    add_lines = function(name, url, t)
      local common = ("--set tenant_id=%s --set client_id=%s --set base_url=%s --set insecure_loopback=true")
        :format(t.tenant_id, t.client_id, url)
      return {
        ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add office365 --name %s-365 %s"):format(t.client_secret, name, common),
        ("CACHOST_SET_CLIENT_SECRET=%s cachost instance add azure --name %s-azure %s"):format(t.client_secret, name, common),
      }
    end,
  },
}
