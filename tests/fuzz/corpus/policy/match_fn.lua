return policy { name = "fn", on = "user", match = function(r) return r.is_admin == 1 end, actions = { "alert" }, ops = { "added", "changed" } }
