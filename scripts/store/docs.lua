-- store/docs.lua — what each table and column of the store means, for `cachost schema` and the REPL's
-- .schema (as Steampipe documents its tables).  A spec checks that every table and column of the live
-- schema is described here, so a migration that adds one adds its line too.  The secrets table is not
-- listed: it is never readable through query.
local INVENTORY = {
  id = "cachost's row id",
  instance_id = "the instance (instances.id)",
  ext_id = "the provider's own id of the row",
  raw = "the provider's JSON, as received (stored zstd-compressed, read as the JSON text), e.g. json_extract(raw, '$.profile.login')",
  first_seen = "when cachost first saw the row (ISO 8601 UTC)",
  last_seen = "when a listing last returned the row",
  deleted_at = "when a complete listing no longer returned it (the row is kept); NULL while it exists",
}

local function inventory(cols)
  for k, v in pairs(INVENTORY) do cols[k] = cols[k] or v end
  return cols
end

local TABLES = {
  zstd_dicts = { "the zstd dictionaries raw JSON is compressed with (main.<table>.raw holds the frames)", {
    id = "zstd's dictionary id, which each compressed raw records", app = "the app whose rows trained it",
    entity = "the entity (activities, users, files...)", samples = "how many rows it was trained on", created_at = "when it was trained",
    dict = "the dictionary (binary)",
    ratio = "compressed / JSON bytes of the rows it was trained on (a window of later rows that much worse retrains); NULL until measured" } },
  instances = { "connected app instances", {
    id = "instance id", app = "the connector (okta, github, box, office365, azure)", name = "unique name",
    settings = "JSON settings, never a secret", status = "new, connected, reconnect needed...",
    components = "JSON: granted scopes and enabled parts", enabled = "1 if scanned, 0 if disabled",
    created_at = "when it was added", updated_at = "last change", last_scan = "end of the last scan",
    removed_at = "when it was removed (its data kept); NULL while it exists" } },
  users = { "accounts of each instance", inventory {
    email = "sign-in name or e-mail", display_name = "full name",
    status = "active, suspended, disabled, deprovisioned, locked or pending", is_admin = "1 if it holds an admin privilege",
    last_login = "last sign-in the provider reports", external = "1 if outside the organization",
    created_at = "when the provider created it",
    terminated_at = "when the person left the organization, per a source of truth (an HR app); NULL otherwise" } },
  identity_links = { "accounts joined to people by hand (cachost identity link), where e-mails do not join them", {
    instance_id = "the instance of the account; NULL when account is an e-mail in any app",
    account = "a lower-case e-mail, or the account's ext_id in that instance", person = "the person (lower-case e-mail)",
    created_at = "when the link was made" } },
  identities = { "view: every account with the person it belongs to (e-mail, or identity_links), across apps", {
    person = "the person: identity_links', else the account's lower-case e-mail", instance = "the instance's name",
    app = "the instance's app", instance_id = "the instance", account_id = "users.ext_id", email = "the account's e-mail",
    display_name = "full name", status = "the account's status", is_admin = "1 if it holds an admin privilege",
    last_login = "last sign-in", terminated_at = "when the person left, per an HR app",
    deleted_at = "when the account disappeared from its app", grants = "OAuth grants and tokens it holds" } },
  groups = { "groups of each instance", inventory {
    name = "group name", email = "group address, where the app has one", description = "the provider's description" } },
  group_members = { "who belongs to which group", inventory {
    group_id = "groups.ext_id", member_id = "users.ext_id or groups.ext_id", member_type = "user or group",
    role = "member, owner, maintainer..." } },
  privileges = { "admin roles held by users", inventory {
    user_id = "users.ext_id", role = "the role's name", scope = "where it applies (tenant, org, subscription...)" } },
  files = { "files and folders, with their sharing and last content scan", inventory {
    name = "file name", path = "full path", parent_id = "the parent folder's ext_id", is_folder = "1 for a folder",
    owner = "owner's sign-in name", size = "bytes", mime = "media type", md5 = "MD5, where the provider gives it",
    sha1 = "SHA-1, where the provider gives it", sha256 = "SHA-256, where the provider gives it",
    access_level = "private, internal, external or public", trashed = "1 if in the trash",
    quarantined = "1 if quarantined by cachost", scan_status = "content scan: clean, matched, skipped, failed...",
    created_at = "when it was created", modified_at = "last content change",
    scan_reason = "why the last scan did not complete", scan_matches = "JSON: matches by type, masked samples only",
    scanned_at = "when its content was last scanned" } },
  file_permissions = { "collaborators and shared links of files", inventory {
    file_id = "files.ext_id", principal = "who: user, group, domain or 'anyone'", principal_type = "user, group, domain, anyone",
    role = "viewer, editor, owner...", external = "1 if outside the organization", link = "the shared link, if one",
    expires_at = "when the permission expires" } },
  app_grants = { "OAuth grants and tokens issued to users and apps", inventory {
    client_id = "the app's client id", app_name = "the app's name", user_id = "users.ext_id of the grantor",
    user = "the grantor's sign-in name", scopes = "granted scopes, space separated", created_at = "when granted",
    last_used = "last use the provider reports" } },
  activities = { "the audit trail: user, admin and sign-in activity", {
    id = "cachost's row id", instance_id = "the instance (instances.id)", ext_id = "the provider's event id",
    time = "when it happened (ISO 8601 UTC); with instance_id and ext_id the event's key, indexed in that order", kind = "user, admin or signin", action = "the provider's event name",
    actor = "who did it", actor_id = "the actor's ext_id", target = "what it was done to", target_id = "the target's id",
    ip = "client address", location = "city, region, country as the provider reports",
    user_agent = "client user agent (stored zstd-compressed, read as text)", outcome = "success or failure", app = "the sub-app (e.g. SharePoint)",
    raw = "the provider's JSON, as received (stored zstd-compressed, read as the JSON text), e.g. json_extract(raw, '$.eventType')",
    recorded_at = "when cachost stored it",
    lat = "latitude the provider reports", lon = "longitude the provider reports" } },
  alerts = { "what policies found", {
    id = "alert id", instance_id = "the instance", ext_id = "de-duplication key (policy, entity, window)",
    policy = "the policy's name", severity = "low, medium, high or critical", title = "the alert text",
    entity = "users, activities, files...", entity_id = "ext_id of the entity", evidence = "JSON: rows and planned actions",
    status = "open, resolved or dismissed", created_at = "when raised", updated_at = "last change", raw = "JSON: resolution note",
    assignee = "who works on it (a console user), if anyone" } },
  governance_actions = { "every governance action planned or taken", {
    id = "action id", instance_id = "the instance", ext_id = "idempotency key", action = "suspend_user, quarantine_file...",
    target = "the target as given", target_id = "the target's ext_id", policy = "the policy that planned it, if any",
    operator = "who ran it by hand, if anyone", mode = "dry-run, executed or held",
    result = "ok, failed, pending (in flight), unknown (sent, outcome not known)", provider_status = "HTTP status of the provider",
    error = "why it failed", undo = "JSON: how to undo it", created_at = "when planned", finished_at = "when done",
    raw = "the provider's answer", owner = "the process that sent it (pid:start time)",
    note = "how an unknown outcome was settled" } },
  stream_state = { "health and position of each instance's streams", {
    instance_id = "the instance", stream = "users, groups, activities, files...", cursor = "where the next scan resumes",
    watermark = "complete up to this time", scan_started = "start of the scan in progress",
    last_success = "end of the last successful scan", last_error = "the last error (redacted)",
    last_error_at = "when it happened", counts = "JSON: rows added, changed, removed by the last scan",
    updated_at = "last change" } },
  changes = { "history of inventory rows: added, changed, removed", {
    id = "change id", instance_id = "the instance", entity = "the table", ext_id = "the row's ext_id",
    op = "added, changed or removed", time = "when cachost saw it", diff = "JSON {column = {old, new}}" } },
  policies = { "per-policy switches and health", {
    name = "the policy file's base name", enabled = "1 if it runs", mode = "audit or enforce, when overridden",
    status = "ok or disabled (why in last_error)", last_error = "why it was disabled", updated_at = "last change" } },
  sinks = { "alert sinks as first configured (sinks.json)", {
    name = "the sink's name", after_alert = "alerts up to this id predate the sink and are not sent to it",
    created_at = "when cachost first saw the sink" } },
  deliveries = { "the outbox: each alert's delivery to each sink", {
    sink = "the sink's name", alert_id = "alerts.id", attempts = "failed attempts so far",
    next_at = "when the next attempt is due", last_error = "why the last attempt failed (redacted)",
    delivered_at = "when the sink took it; NULL while waiting" } },
  policy_state = { "the windows of each policy (repetition, travel), kept across restarts", {
    policy = "the policy", instance_id = "the instance", key = "what the window counts for (e.g. an actor)",
    data = "JSON window state", updated_at = "last change" } },
  policy_pending = { "pages committed and not yet evaluated by the policies (evaluated first after a crash)", {
    id = "note id", instance_id = "the instance", source = "activities or changes: whose rowids",
    first_id = "first rowid of the page", last_id = "last rowid of the page",
    first_scan = "1 if the page came from the instance's first scan", created_at = "when the page was committed" } },
}

TABLES.workers = { "the cachost run workers sharing this store, and their heartbeats", {
  id = "host:pid:start time", host = "the machine", pid = "its process id", metrics = "its /metrics URL",
  started_at = "when it started", heartbeat = "when it last said it is alive", stopped_at = "when it stopped; NULL while running" } }
TABLES.leases = { "which worker syncs which instance, until when (renewed while it works)", {
  instance_id = "the instance", worker = "workers.id", acquired_at = "when it took the instance",
  expires_at = "when another worker may take it over, unless renewed" } }
TABLES.switches = { "the operator's switches every worker obeys", {
  name = "the switch (governance_paused)", value = "its value (who set it); NULL when off", updated_at = "last change" } }

TABLES.locks = { "named locks the processes sharing this store take turns on (token renewals)", {
  name = "what is locked (instance id:token)", holder = "the process holding it (host:pid:random)",
  expires_at = "when another process may take it, unless given up before" } }

local M = { TABLES = TABLES }

-- rows {table, description} of the tables a reader sees (store.lua's Reader:tables()).
function M.tables(reader)
  local out = {}
  for _, t in ipairs(reader:tables()) do
    out[#out + 1] = { table = t, description = TABLES[t] and TABLES[t][1] or "" }
  end
  return out
end

-- rows {column, type, description} of one table | nil, err (with a did-you-mean).
function M.columns(reader, name)
  local cols = reader:columns(name)
  if not cols then
    return nil, ("no table '%s'%s (cachost schema lists them)"):format(name, require("format").did_you_mean(name, reader:tables()))
  end
  local doc = TABLES[name] and TABLES[name][2] or {}
  local out = {}
  for _, c in ipairs(cols) do out[#out + 1] = { column = c.name, type = c.type, description = doc[c.name] or "" } end
  return out
end

return M
