-- store/schema.lua — the common entity model and its versioned migrations.
--
-- Every entity table is keyed by (instance_id, ext_id): ext_id is the provider's own id, so re-reading a page
-- is harmless; events (activities) by (instance_id, time, ext_id), the order they arrive in.  `raw` keeps the provider's JSON.  Inventory tables carry first_seen / last_seen / deleted_at
-- (a row missing from a complete listing is marked, never deleted).  Times are ISO 8601 UTC text
-- ("2024-05-01T12:00:00.000Z"): sortable, readable, and understood by SQLite's date functions.
--
-- Migrations only ever append: migration N upgrades a database at user_version N-1.  Never edit a
-- released migration; add the next one.  A migration is SQL both stores run (PostgreSQL's spelling of its
-- types: store/pg.lua), or {sqlite = SQL, postgresql = SQL} where they must differ.
local M = {}

-- Normalised columns per entity (besides id, instance_id, ext_id, raw and the inventory times).
-- `inventory = true` tables get first_seen / last_seen / deleted_at and a change history.
M.entities = {
  users = { inventory = true, columns = {
    "email", "display_name", "status", "is_admin", "last_login", "external", "created_at", "terminated_at" } },
  groups = { inventory = true, columns = { "name", "email", "description" } },
  group_members = { inventory = true, columns = { "group_id", "member_id", "member_type", "role" } },
  privileges = { inventory = true, columns = { "user_id", "role", "scope" } },
  files = { inventory = true, columns = {
    "name", "path", "parent_id", "is_folder", "owner", "size", "mime", "md5", "sha1", "sha256",
    "access_level", "trashed", "quarantined", "scan_status", "created_at", "modified_at" } },
  file_permissions = { inventory = true, columns = {
    "file_id", "principal", "principal_type", "role", "external", "link", "expires_at" } },
  app_grants = { inventory = true, columns = {
    "client_id", "app_name", "user_id", "user", "scopes", "created_at", "last_used" } },
  activities = { inventory = false, columns = {
    "time", "kind", "action", "actor", "actor_id", "target", "target_id", "ip", "location", "user_agent",
    "outcome", "app", "lat", "lon" },
    -- stored compressed like raw, with the same dictionary (store/compact.lua), read as text everywhere: a
    -- user agent is ~110 bytes, the same few strings over and over (~25 with the events' dictionary)
    packed = { "user_agent" } },
}

local function inventory_table(name, cols)
  return ([[
CREATE TABLE %s (
  id          INTEGER PRIMARY KEY,
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  ext_id      TEXT NOT NULL,
  %s,
  raw         TEXT,
  first_seen  TEXT NOT NULL,
  last_seen   TEXT NOT NULL,
  deleted_at  TEXT,
  UNIQUE (instance_id, ext_id)
);
]]):format(name, cols)
end

M.migrations = {
  -- 1: the initial schema.
  [1] = table.concat({ [[
CREATE TABLE instances (
  id         INTEGER PRIMARY KEY,
  app        TEXT NOT NULL,
  name       TEXT NOT NULL,
  settings   TEXT NOT NULL DEFAULT '{}',   -- JSON, never a secret
  status     TEXT NOT NULL DEFAULT 'new',
  components TEXT,                          -- JSON: which streams / capabilities are on
  enabled    INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_scan  TEXT
);
CREATE UNIQUE INDEX instances_name ON instances(name);

CREATE TABLE secrets (
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  nonce       BLOB NOT NULL,
  ciphertext  BLOB NOT NULL,                -- AES-256-GCM ciphertext || tag, AAD = instance id + name
  key_id      TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (instance_id, name)
);
]],
  inventory_table("users", [[email TEXT, display_name TEXT, status TEXT, is_admin INTEGER, last_login TEXT,
  external INTEGER, created_at TEXT]]),
  inventory_table("groups", "name TEXT, email TEXT, description TEXT"),
  inventory_table("group_members", "group_id TEXT, member_id TEXT, member_type TEXT, role TEXT"),
  inventory_table("privileges", "user_id TEXT, role TEXT, scope TEXT"),
  inventory_table("files", [[name TEXT, path TEXT, parent_id TEXT, is_folder INTEGER, owner TEXT, size INTEGER,
  mime TEXT, md5 TEXT, sha1 TEXT, sha256 TEXT, access_level TEXT, trashed INTEGER, quarantined INTEGER,
  scan_status TEXT, created_at TEXT, modified_at TEXT]]),
  inventory_table("file_permissions", [[file_id TEXT, principal TEXT, principal_type TEXT, role TEXT,
  external INTEGER, link TEXT, expires_at TEXT]]),
  inventory_table("app_grants", [[client_id TEXT, app_name TEXT, user_id TEXT, user TEXT, scopes TEXT,
  created_at TEXT, last_used TEXT]]),
  [[
CREATE TABLE activities (
  id          INTEGER PRIMARY KEY,
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  ext_id      TEXT NOT NULL,
  time        TEXT,
  kind        TEXT,        -- user / admin / signin
  action      TEXT,
  actor       TEXT,
  actor_id    TEXT,
  target      TEXT,
  target_id   TEXT,
  ip          TEXT,
  location    TEXT,
  user_agent  TEXT,
  outcome     TEXT,
  app         TEXT,        -- the sub-app, e.g. SharePoint
  raw         TEXT,
  recorded_at TEXT NOT NULL,
  UNIQUE (instance_id, ext_id)
);

CREATE TABLE alerts (
  id          INTEGER PRIMARY KEY,
  instance_id INTEGER REFERENCES instances(id) ON DELETE CASCADE,
  ext_id      TEXT NOT NULL,     -- dedup key chosen by the policy engine
  policy      TEXT NOT NULL,
  severity    TEXT NOT NULL,
  title       TEXT,
  entity      TEXT,
  entity_id   TEXT,
  evidence    TEXT,              -- JSON
  status      TEXT NOT NULL DEFAULT 'open',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  raw         TEXT,
  UNIQUE (instance_id, ext_id)
);

CREATE TABLE governance_actions (
  id              INTEGER PRIMARY KEY,
  instance_id     INTEGER REFERENCES instances(id) ON DELETE CASCADE,
  ext_id          TEXT NOT NULL,
  action          TEXT NOT NULL,
  target          TEXT,
  target_id       TEXT,
  policy          TEXT,
  operator        TEXT,
  mode            TEXT NOT NULL,  -- dry-run / executed / held
  result          TEXT,
  provider_status INTEGER,
  error           TEXT,
  undo            TEXT,           -- JSON: how to undo, where the API allows
  created_at      TEXT NOT NULL,
  finished_at     TEXT,
  raw             TEXT,
  UNIQUE (instance_id, ext_id)
);

CREATE TABLE stream_state (
  instance_id   INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  stream        TEXT NOT NULL,
  cursor        TEXT,
  watermark     TEXT,           -- complete up to
  scan_started  TEXT,
  last_success  TEXT,
  last_error    TEXT,
  last_error_at TEXT,
  counts        TEXT,           -- JSON
  updated_at    TEXT NOT NULL,
  PRIMARY KEY (instance_id, stream)
);

CREATE TABLE changes (
  id          INTEGER PRIMARY KEY,
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  entity      TEXT NOT NULL,
  ext_id      TEXT NOT NULL,
  op          TEXT NOT NULL,    -- added / changed / removed
  time        TEXT NOT NULL,
  diff        TEXT              -- JSON {column = {old, new}}
);
CREATE INDEX changes_entity ON changes(instance_id, entity, ext_id);
]] }, "\n"),

  -- 2: removing an instance without --purge keeps its data, so its row stays (marked removed_at) and
  -- the name becomes free again; activities are read by time far more than by id.
  [2] = [[
ALTER TABLE instances ADD COLUMN removed_at TEXT;
DROP INDEX instances_name;
CREATE UNIQUE INDEX instances_live_name ON instances(name) WHERE removed_at IS NULL;
CREATE INDEX activities_time ON activities(instance_id, time);
CREATE INDEX changes_time ON changes(time);
]],

  -- 3: policies.  Sign-in coordinates (where the provider reports them) for impossible travel; the
  -- state of each policy's windows, so they survive a restart; per-policy switches and health.
  [3] = [[
ALTER TABLE activities ADD COLUMN lat REAL;
ALTER TABLE activities ADD COLUMN lon REAL;
CREATE TABLE policies (
  name        TEXT PRIMARY KEY,       -- the policy file's base name
  enabled     INTEGER NOT NULL DEFAULT 1,
  mode        TEXT,                   -- overrides the file's mode when set (audit / enforce)
  status      TEXT NOT NULL DEFAULT 'ok',
  last_error  TEXT,
  updated_at  TEXT NOT NULL
);
CREATE TABLE policy_state (
  policy      TEXT NOT NULL,
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  key         TEXT NOT NULL,          -- e.g. the actor a window counts for
  data        TEXT NOT NULL,          -- JSON
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (policy, instance_id, key)
);
CREATE INDEX alerts_status ON alerts(status, created_at);
]],

  -- 4: the outcome of a file's last content scan, beside its scan_status: why it did not complete, and
  -- what it found by type (counts and masked samples, never the data itself).  Written by the scan
  -- only, so not columns of the entity (a scan result is not a change of the file).
  [4] = [[
ALTER TABLE files ADD COLUMN scan_reason TEXT;
ALTER TABLE files ADD COLUMN scan_matches TEXT;
ALTER TABLE files ADD COLUMN scanned_at TEXT;
]],

  -- 5: an action is recorded (result 'pending') in the transaction of its limit check, before the call
  -- goes out, by the process named in owner ("pid:start time"): the limits count actions in flight, and
  -- one whose process died (pending) or was interrupted after sending (unknown) is found and reconciled
  -- by a re-fetch of its target; note says how.
  [5] = [[
ALTER TABLE governance_actions ADD COLUMN owner TEXT;
ALTER TABLE governance_actions ADD COLUMN note TEXT;
CREATE INDEX governance_recent ON governance_actions(created_at);
CREATE INDEX governance_unsettled ON governance_actions(instance_id) WHERE result IN ('pending', 'unknown');
]],

  -- 6: alerts leave the machine through sinks (sinks.lua).  The outbox: one delivery per sink and alert,
  -- kept until the sink took it, retried with backoff meanwhile; a sink starts with the alerts raised
  -- after it was first configured.
  [6] = [[
CREATE TABLE sinks (
  name        TEXT PRIMARY KEY,
  after_alert INTEGER NOT NULL,
  created_at  TEXT NOT NULL
);
CREATE TABLE deliveries (
  sink         TEXT NOT NULL,
  alert_id     INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      TEXT NOT NULL,
  last_error   TEXT,
  delivered_at TEXT,
  PRIMARY KEY (sink, alert_id)
);
CREATE INDEX deliveries_due ON deliveries(sink, next_at) WHERE delivered_at IS NULL;
]],

  -- 7: pages committed but not yet evaluated by the policies (the evaluation cursor): written in the
  -- page's transaction, deleted in the transaction that saves the windows its evaluation moved.  What is
  -- left after a crash is evaluated first at the next sync.  Ids are rowids of activities (events) or of
  -- changes (inventory), first_id..last_id of one page of one instance.
  [7] = [[
CREATE TABLE policy_pending (
  id          INTEGER PRIMARY KEY,
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  source      TEXT NOT NULL,          -- activities / changes
  first_id    INTEGER NOT NULL,
  last_id     INTEGER NOT NULL,
  first_scan  INTEGER NOT NULL DEFAULT 0,
  created_at  TEXT NOT NULL
);
CREATE INDEX policy_pending_instance ON policy_pending(instance_id);
]],

  -- 8: events' raw JSON is stored zstd-compressed (store/compact.lua) with dictionaries trained per app and
  -- entity, kept here for as long as the database: a frame names the dictionary it needs by zstd's id.
  -- Rows written before stay plain TEXT and read as they are (unzstd() passes them through).
  [8] = [[
CREATE TABLE zstd_dicts (
  id          INTEGER PRIMARY KEY,    -- zstd's dictionary id, recorded in every frame made with it
  app         TEXT NOT NULL,
  entity      TEXT NOT NULL,
  samples     INTEGER NOT NULL,       -- how many rows it was trained on
  created_at  TEXT NOT NULL,
  dict        BLOB NOT NULL
);
CREATE INDEX zstd_dicts_of ON zstd_dicts(app, entity, created_at);
]],
  -- 9: people across apps.  A source of truth (an HR app) says when a person left (users.terminated_at);
  -- accounts are joined into people by e-mail, or by links an admin makes (identity_links: an e-mail, or one
  -- instance's account id, taken as a person's); `identities` is every account with its person.
  [9] = [[
ALTER TABLE users ADD COLUMN terminated_at TEXT;
CREATE INDEX users_email ON users(lower(email));
CREATE INDEX users_terminated ON users(terminated_at) WHERE terminated_at IS NOT NULL;
CREATE INDEX users_status ON users(status, instance_id);
CREATE INDEX users_deleted ON users(instance_id) WHERE deleted_at IS NOT NULL;
CREATE TABLE identity_links (
  instance_id INTEGER REFERENCES instances(id) ON DELETE CASCADE,   -- NULL: `account` is an e-mail in any app
  account     TEXT NOT NULL,                                          -- lower-case e-mail, or the account's ext_id
  person      TEXT NOT NULL,                                          -- lower-case e-mail of the person
  created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX identity_links_account ON identity_links(coalesce(instance_id, 0), account);
CREATE VIEW identities AS
SELECT coalesce(l1.person, l2.person, lower(u.email)) AS person, i.name AS instance, i.app AS app,
       u.instance_id AS instance_id, u.ext_id AS account_id, u.email AS email, u.display_name AS display_name,
       u.status AS status, u.is_admin AS is_admin, u.last_login AS last_login, u.terminated_at AS terminated_at,
       u.deleted_at AS deleted_at,
       (SELECT count(*) FROM app_grants g WHERE g.instance_id = u.instance_id AND g.user_id = u.ext_id
          AND g.deleted_at IS NULL) AS grants
FROM users u JOIN instances i ON i.id = u.instance_id
LEFT JOIN identity_links l1 ON l1.instance_id = u.instance_id AND l1.account = u.ext_id
LEFT JOIN identity_links l2 ON l2.instance_id IS NULL AND l2.account = lower(u.email);
]],

  -- 10: several workers on one shared store (PostgreSQL, store/leases.lua): each worker's heartbeat, and
  -- which worker holds which instance until when (times by the database's clock); the operator's
  -- switches every worker obeys (the governance kill switch).
  [10] = [[
CREATE TABLE workers (
  id          TEXT PRIMARY KEY,       -- host:pid:start
  host        TEXT,
  pid         INTEGER,
  metrics     TEXT,                   -- its /metrics URL
  started_at  TEXT NOT NULL,
  heartbeat   TEXT NOT NULL,
  stopped_at  TEXT
);
CREATE TABLE leases (
  instance_id INTEGER NOT NULL PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
  worker      TEXT NOT NULL,
  acquired_at TEXT NOT NULL,
  expires_at  TEXT NOT NULL
);
CREATE INDEX leases_worker ON leases(worker);
CREATE TABLE switches (
  name        TEXT PRIMARY KEY,
  value       TEXT,
  updated_at  TEXT NOT NULL
);
]],
  -- 11: the web console's accounts (scrypt hashes) and sessions (only a hash of the cookie's id is kept,
  -- so a copy of the database signs nobody in).  Alerts get an assignee and a dismissed state.
  [11] = [[
CREATE TABLE console_users (
  name        TEXT PRIMARY KEY,
  role        TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
  hash        TEXT NOT NULL,          -- "scrypt$N$r$p$salt_b64$key_b64"
  created_at  TEXT NOT NULL,
  last_login  TEXT
);
CREATE TABLE console_sessions (
  id_hash     TEXT PRIMARY KEY,       -- hex SHA-256 of the cookie's random id
  account     TEXT NOT NULL REFERENCES console_users(name) ON DELETE CASCADE,
  csrf        TEXT NOT NULL,          -- the token every change must carry (X-CSRF-Token)
  created_at  TEXT NOT NULL,
  expires_at  TEXT NOT NULL
);
ALTER TABLE alerts ADD COLUMN assignee TEXT;
]],
  -- 12: a target's governance record found by its index, not by reading the whole log (a policy's action
  -- asks whether it was done or undone before: the webhook bench's latency grew with the actions stored).
  [12] = [[
CREATE INDEX governance_target ON governance_actions(instance_id, target_id);
]],
  -- 13: named locks the processes sharing a store take turns on (an instance's OAuth token renewal: a
  -- single-use refresh token redeemed by the daemon and by `cachost act` at once kills the connection).
  [13] = [[
CREATE TABLE locks (
  name        TEXT PRIMARY KEY,
  holder      TEXT NOT NULL,          -- host:pid:random of the process holding it
  expires_at  TEXT NOT NULL           -- by the database's clock; a dead holder's lock is free after it
);
]],
  -- 14: the safety brakes' counts of the last hour's automatic actions (asked before every one) read
  -- indexes of those alone: per policy, in all, and the targets of an instance (which had taken
  -- governance_target and read the instance's whole log), not every action of the hour (held ones too).
  [14] = [[
CREATE INDEX governance_auto_policy ON governance_actions(policy, created_at, mode)
  WHERE mode = 'executed' AND policy IS NOT NULL;
CREATE INDEX governance_auto_recent ON governance_actions(created_at, policy, mode)
  WHERE mode = 'executed' AND policy IS NOT NULL;
CREATE INDEX governance_auto_target ON governance_actions(instance_id, created_at, target_id, policy, mode)
  WHERE mode = 'executed' AND policy IS NOT NULL;
]],
  -- 15: every entity's raw JSON is compressed (store/compact.lua), and a dictionary is retrained when the
  -- ratio it gives drifts from the one it first gave (NULL until measured).
  [15] = [[
ALTER TABLE zstd_dicts ADD COLUMN ratio REAL;
]],
  -- 16: an event is known by (instance, time, provider id), in the order events arrive, instead of by
  -- (instance, provider id): provider ids are random (uuids), so each page of a sync wrote that index's
  -- pages all over the file again (a third of a System Log sync's CPU); the time index, which every read by
  -- time takes, now carries the id and is the key.  SQLite cannot drop a table's UNIQUE constraint: the
  -- table is copied, ids kept.  An event needs a time now (sdk/context.lua rejects one without).
  [16] = {
    sqlite = [[
CREATE TABLE activities_16 (
  id          INTEGER PRIMARY KEY,
  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  ext_id      TEXT NOT NULL,
  time        TEXT,
  kind        TEXT,        -- user / admin / signin
  action      TEXT,
  actor       TEXT,
  actor_id    TEXT,
  target      TEXT,
  target_id   TEXT,
  ip          TEXT,
  location    TEXT,
  user_agent  TEXT,
  outcome     TEXT,
  app         TEXT,        -- the sub-app, e.g. SharePoint
  raw         TEXT,
  recorded_at TEXT NOT NULL,
  lat         REAL,
  lon         REAL
);
INSERT INTO activities_16 (id, instance_id, ext_id, time, kind, action, actor, actor_id, target, target_id, ip,
  location, user_agent, outcome, app, raw, recorded_at, lat, lon)
SELECT id, instance_id, ext_id, time, kind, action, actor, actor_id, target, target_id, ip,
  location, user_agent, outcome, app, raw, recorded_at, lat, lon FROM activities;
DROP TABLE activities;
ALTER TABLE activities_16 RENAME TO activities;
CREATE UNIQUE INDEX activities_time ON activities(instance_id, time, ext_id);
]],
    postgresql = [[
ALTER TABLE activities DROP CONSTRAINT activities_instance_id_ext_id_key;
DROP INDEX activities_time;
CREATE UNIQUE INDEX activities_time ON activities(instance_id, time, ext_id);
]],
  },
}

M.version = #M.migrations

return M
