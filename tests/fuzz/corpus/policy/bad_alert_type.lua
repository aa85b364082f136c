return policy { name = "bad alert", on = "activity", alert = 12345 }
