-- Activity by an account that is suspended, disabled or deprovisioned: a token or session survived.
return policy {
  name = "Activity from a suspended or deprovisioned account",
  severity = "high",
  on = "activity",
  match = { actor_status = { "suspended", "disabled", "deprovisioned" } },
  alert = "{actor} ({actor_status}) did {action}",
  group_by = "actor",           -- one alert an hour per account, however much it does
  actions = { "alert", "revoke_sessions" },
  mode = "audit",
}
