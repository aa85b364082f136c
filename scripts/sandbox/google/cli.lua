-- `cachost sandbox google-workspace:NAME gcp:NAME`: a Workspace customer (domain NAME.example.com) and a
-- GCP organization, each with a service account whose JSON key file is written to a private file (the
-- printed command reads it into the vault; secrets never go through argv).

-- The key file (once the tenant is mounted: the key names its token URL): 0600, refused if the path
-- exists; removed when the sandbox stops.
local function key_path(t)
  if not t.key_path then
    local base = os.tmpname()
    os.remove(base)
    t.key_path = base .. "-" .. t.key_suffix
    assert(host.write_new(t.key_path, t:key_file(t.sa), 384))
  end
  return t.key_path
end
local function remove_key(t) if t.key_path then os.remove(t.key_path) end end

return {
  ["google-workspace"] = {
    new = function(name, seed, size)
      local t = require("sandbox.google").workspace { seed = seed, users = size, domain = name .. ".example.com" }
      t.key_suffix = name .. "-gws-sa.json"
      return t
    end,
    credential = function(t)
      return ("service_account=%s admin=%s key_file=%s"):format(t.sa.email, t.admin.primaryEmail, key_path(t))
    end,
    stop = remove_key,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_SERVICE_ACCOUNT_KEY=\"$(cat %s)\" cachost instance add google-workspace --name %s-gws"
        .. " --set admin_email=%s --set oauth_base_url=%s --set base_url=%s --set insecure_loopback=true")
        :format(key_path(t), name, t.admin.primaryEmail, url, url) }
    end,
  },
  gcp = {
    new = function(name, seed)
      local t = require("sandbox.google").gcp { seed = seed, domain = name .. ".example.com" }
      t.key_suffix = name .. "-gcp-sa.json"
      return t
    end,
    credential = function(t)
      return ("service_account=%s organization_id=%s key_file=%s"):format(t.sa.email, t.org_number, key_path(t))
    end,
    stop = remove_key,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_SERVICE_ACCOUNT_KEY=\"$(cat %s)\" cachost instance add gcp --name %s-gcp"
        .. " --set organization_id=%s --set oauth_base_url=%s --set base_url=%s --set insecure_loopback=true")
        :format(key_path(t), name, t.org_number, url, url) }
    end,
  },
}
