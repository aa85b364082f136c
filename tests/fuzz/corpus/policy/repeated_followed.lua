return policy { name = "rep", on = "activity", match = { kind = "admin" }, repeated = { count = 2, within = 600, by = "ip" }, followed_by = { outcome = "success" } }
