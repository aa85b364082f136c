return policy { name = "t", on = "activity", match = { kind = "signin" }, travel = { max_kmh = "fast" } }
