-- A file shared publicly or outside the organization holds the id of an access key that cachost knows as
-- the live app grant of a connected instance (an AWS IAM user's key): that key is deactivated, in its own
-- instance (revoke_token; AWS: UpdateAccessKey Status=Inactive, undone by making it Active again).  A key
-- cachost does not know is left to sensitive_file_shared.
return policy {
  name = "Access key of a connected account leaked in a shared file",
  severity = "critical",
  on = "file",
  match = { access_level = { "public", "external" } },
  dlp = { detectors = { "aws_access_key" }, grants = "aws_access_key" },
  alert = "{path} is shared ({access_level}) and holds the access key of {grant_users}",
  actions = { "alert", "revoke_token" },
  mode = "audit",
}
