return policy { name = "weird keys", on = "activity", match = { ["a\"]\nount that is suspended, disabled or deprovisioned: a token or session survived.
return policy {
  name = "Activity from a suspended or deprovisioned account",
  severity = "high",
  on = "activity",
  match = { actor_status = { "suspended", "disabled", "deprovisioned" } },
  alert = "{actor} ({actor_status}) did {action}",
  actions = { "alert", "revoke_sessions" },
  mode--"] = 1, [,] = true, [2.5] = { "x", 1 } } }
