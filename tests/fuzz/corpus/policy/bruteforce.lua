-- Repeated failed sign-ins, then a success: the password was probably guessed.
return policy {
  name = "Repeated failed sign-ins followed by a success",
  severity = "high",
  on = "activity",
  match = { kind = "signin", outcome = "failure" },
  repeated = { count = 5, within = "10m", by = "actor" },
  followed_by = { kind = "signin", outcome = "success" },
  alert = "{actor} signed in after {count} failed attempts",
  actions = { "alert", "suspend_user" },
  mode = "audit",
}
