-- Many downloads by one account in a short time (names of the download events differ per app).
return policy {
  name = "Mass download",
  severity = "medium",
  on = "activity",
  match = { action = { "DOWNLOAD", "FileDownloaded", "FileSyncDownloadedFull", "download", "git.clone" } },
  repeated = { count = 50, within = "5m", by = "actor" },
  alert = "{actor} downloaded {count} files within 5 minutes",
  actions = { "alert" },
  mode = "audit",
}
