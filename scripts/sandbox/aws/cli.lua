-- `cachost sandbox aws`: an AWS account (STS, IAM, CloudTrail, S3) and the audit key that assumes its role;
-- the account manages an organization of two member accounts (cachost instance members).
return {
  aws = {
    new = function(_, seed, size) return require("sandbox.aws").new { seed = seed, users = size, members = 2 } end,
    credential = function(t) return t:credential_line() end,
    add_lines = function(name, url, t)
      return { ("CACHOST_SET_ACCESS_KEY_ID=%s CACHOST_SET_SECRET_ACCESS_KEY=%s cachost instance add aws --name %s-aws"
        .. " --set role_arn=%s --set external_id=%s --set base_url=%s --set insecure_loopback=true")
        :format(t.audit_key.id, t.audit_key.secret, name, t.role.Arn, t.role.external_id, url) }
    end,
  },
}
