-- The AWS test tenant: an account, the audit user's keys and the role they assume with its external id.
-- IAM answers every operation at POST /: the emulator matches a fault's path against "/<Action>".
return {
  users_path = "/ListUsers$",
  -- AWS's throttling errors name no wait (no Retry-After): clients back off on their own
  retry_header = false,
  -- IAM pages by Marker: its answers carry no URL to follow
  next_links = false,
  tenant = function(o) return require("sandbox.aws").new(o { users = 8, event_days = 2 }) end,
  instance = function(t, url)
    return { role_arn = t.role.Arn, external_id = t.role.external_id, base_url = url },
      { access_key_id = t.audit_key.id, secret_access_key = t.audit_key.secret }
  end,
  -- the users a complete sync holds (faults_spec)
  users = function(t)
    local s = {}
    for _, u in ipairs(t:truth().users) do s[u] = true end
    return s
  end,
}
