return policy { name = "bt", on = "activity", match = function(r) return ("a"):rep(4000):find(("a-"):rep(12) .. "b") end }
