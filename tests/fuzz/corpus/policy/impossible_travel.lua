-- Two sign-ins of one account farther apart than a plane can fly in the time between them, from the
-- coordinates the provider reports (Okta, Graph) or, for sign-ins with only an address, from a MaxMind
-- City database (GeoLite2-City or GeoIP2-City, kept current by geoipupdate) named by travel.geoip: the
-- policy is refused at load if it cannot be opened.  Corporate and VPN egress ranges can be excluded.
return policy {
  name = "Impossible travel",
  severity = "high",
  on = "activity",
  match = { kind = "signin", outcome = "success" },
  travel = { max_kmh = 900, min_km = 500, exclude = {},
             -- geoip = "/var/lib/GeoIP/GeoLite2-City.mmdb",
           },
  alert = "{actor} signed in from {to} {km} km from {from} ({kmh} km/h)",
  actions = { "alert" },
  mode = "audit",
}
