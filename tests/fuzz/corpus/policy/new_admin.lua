-- A new admin role assignment.
return policy {
  name = "New admin privilege granted",
  severity = "medium",
  on = "privilege",
  ops = { "added" },
  new_only = true,     -- not the admins found by the first scan
  alert = "{user_id} was granted {role}",
  actions = { "alert" },
  mode = "audit",
}
