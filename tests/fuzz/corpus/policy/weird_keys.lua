return policy { name = "weird keys", on = "activity", match = { ["a\"]\n--"] = 1, [1] = true, [2.5] = { "x", 1 } } }
