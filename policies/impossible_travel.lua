-- Two sign-ins of one account farther apart than a plane can fly in the time between them, from the
-- coordinates the provider reports.  Corporate and VPN egress ranges can be excluded.
return policy {
  name = "Impossible travel",
  severity = "high",
  on = "activity",
  match = { kind = "signin", outcome = "success" },
  travel = { max_kmh = 900, min_km = 500, exclude = {} },
  alert = "{actor} signed in from {to} {km} km from {from} ({kmh} km/h)",
  actions = { "alert" },
  mode = "audit",
}
