return policy { name = "dlp", on = "file", dlp = { detectors = { "card" }, custom = { { name = "x", pattern = "[0-9]{4}" } } } }
