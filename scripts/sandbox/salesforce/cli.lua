-- `cachost sandbox salesforce:NAME`: a Salesforce org (My Domain NAME.my.salesforce.com), its connected
-- app's consumer key and integration user; the private key of the app's certificate is written to a
-- private file (0600) that the printed command reads into the vault (secrets never go through argv).
local function key_path(t)
  if not t.key_path then
    local base = os.tmpname()
    os.remove(base)
    t.key_path = base .. "-" .. t.name .. "-sf-app.pem"
    assert(host.write_new(t.key_path, t.app.private_key, 384))
  end
  return t.key_path
end

return {
  salesforce = {
    new = function(name, seed, size)
      return require("sandbox.salesforce").new { seed = seed, users = size, org_name = name }
    end,
    credential = function(t)
      return ("client_id=%s username=%s key_file=%s"):format(t.app.client_id, t.integration.Username, key_path(t))
    end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_PRIVATE_KEY=\"$(cat %s)\" cachost instance add salesforce --name %s-sf --set my_domain=%s.my.salesforce.com"
        .. " --set client_id=%s --set username=%s --set base_url=%s --set insecure_loopback=true")
        :format(key_path(t), name, t.name, t.app.client_id, t.integration.Username, url) }
    end,
  },
}
