-- A file shared publicly or outside the organization whose content holds card numbers, SSNs, keys or
-- private keys: quarantine it (the file moves to the admin quarantine folder, a tombstone stays).
return policy {
  name = "Sensitive file shared externally or publicly",
  severity = "critical",
  on = "file",
  match = { access_level = { "public", "external" } },
  dlp = { detectors = { "credit_card", "ssn", "aws_access_key", "private_key" }, min = 1 },
  alert = "{path} is shared ({access_level}) and contains sensitive data",
  actions = { "alert", "quarantine_file" },
  mode = "audit",
}
