-- ocsf.lua — alerts and activities as OCSF 1.1 events, for SIEMs (cachost export --format ocsf).
--
--   alert                      -> Detection Finding (2004)
--   activity of kind signin    -> Authentication (3002)
--   account lifecycle actions  -> Account Change (3001)   (recognised by their action name)
--   file actions               -> File Hosting Activity (6006), OCSF's class for cloud file services
-- Other activities have no class here: event(...) returns nil for them.  Every event carries the
-- provider's own record in `unmapped.raw` only when asked (raw = true): it may be large.
local M = { VERSION = "1.1.0" }

local SEVERITY_ID = { low = 2, medium = 3, high = 4, critical = 5 }
local util = require "sdk.util"

local function ms(iso)
  local t = iso and util.parse_iso(iso)
  return t and math.floor(t * 1000) or nil
end

local function metadata(uid, product_feature)
  return { version = M.VERSION, uid = uid, product = { name = "cachost", vendor_name = "cachost", version = host.version,
           feature = product_feature and { name = product_feature } or nil } }
end

local function base(class_uid, activity_id, activity_name, time)
  local category = class_uid // 1000
  return { class_uid = class_uid, category_uid = category, activity_id = activity_id, activity_name = activity_name,
           type_uid = class_uid * 100 + activity_id, time = time, severity_id = 1 }
end

-- An alert row (with `instance` and `app_name`: its instance's name and app) -> Detection Finding
function M.finding(a)
  local status = a.status == "resolved" and 4 or 1
  local e = base(2004, 1, "Create", ms(a.created_at))
  e.severity_id = SEVERITY_ID[a.severity] or 0
  e.severity = a.severity
  e.status_id, e.status = status, status == 4 and "Resolved" or "New"
  e.metadata = metadata("alert-" .. a.id, "policies")
  e.finding_info = { uid = tostring(a.id), title = a.title or a.policy, types = { a.policy },
                     analytic = { name = a.policy, type_id = 1, type = "Rule" },
                     created_time = ms(a.created_at), modified_time = ms(a.updated_at) }
  e.resources = { { uid = a.entity_id, type = a.entity, cloud_partition = a.instance } }
  e.evidences = json.decode(a.evidence or "null") and { { data = json.decode(a.evidence) } } or nil
  e.cloud = { provider = a.app_name, account = { name = a.instance } }
  return e
end

local ACCOUNT = {       -- lower-cased action fragment -> Account Change activity
  { "password_reset", 4, "Password Reset" }, { "reset_password", 4, "Password Reset" }, { "resetpassword", 4, "Password Reset" },
  { "password", 3, "Password Change" }, { "unsuspend", 2, "Enable" }, { "reactivate", 2, "Enable" },
  { "suspend", 5, "Disable" }, { "deactivate", 5, "Disable" }, { "disable", 5, "Disable" }, { "unlock", 12, "Unlock" },
  { "lock", 9, "Lock" }, { "factor.activate", 10, "MFA Factor Enable" }, { "factor.deactivate", 11, "MFA Factor Disable" },
  { "mfa", 10, "MFA Factor Enable" }, { "user.lifecycle.create", 1, "Create" }, { "add user", 1, "Create" },
  { "create_user", 1, "Create" }, { "delete user", 6, "Delete" }, { "user.lifecycle.delete", 6, "Delete" },
  { "delete_user", 6, "Delete" }, { "activate", 2, "Enable" },
}
local FILE = {          -- lower-cased action fragment -> File Hosting Activity
  { "download", 2, "Download" }, { "upload", 1, "Upload" }, { "preview", 9, "Preview" }, { "unshare", 13, "Unshare" },
  { "sharinglinkcreated", 12, "Share" }, { "share", 12, "Share" }, { "restore", 8, "Restore" }, { "rename", 5, "Rename" },
  { "copy", 6, "Copy" }, { "move", 7, "Move" }, { "delete", 4, "Delete" }, { "trash", 4, "Delete" },
  { "modif", 3, "Update" }, { "fileaccessed", 14, "Open" }, { "open", 14, "Open" },
}
local function classify(list, action)
  for _, m in ipairs(list) do
    if action:find(m[1], 1, true) then return m[2], m[3] end
  end
end

local function status_of(outcome)
  if outcome == "success" then return 1, "Success" end
  if outcome == "failure" then return 2, "Failure" end
  return 0, "Unknown"
end

-- An activity row (with `instance` and `app_name`, the connector) -> an OCSF event, or nil when none fits.
function M.activity(r, opts)
  local action = (r.action or ""):lower()
  local time = ms(r.time)
  local e
  local id, name
  if r.kind == "signin" then
    local off = action:find("session.end", 1, true) or action:find("logout", 1, true) or action:find("signout", 1, true)
      or action:find("logoff", 1, true)
    e = off and base(3002, 2, "Logoff", time) or base(3002, 1, "Logon", time)
    e.user = { name = r.actor, uid = r.actor_id }
  else
    id, name = classify(ACCOUNT, action)
    if id and (r.kind == "admin" or action:find("user", 1, true) or action:find("password", 1, true)) then
      e = base(3001, id, name, time)
      e.user = { name = r.target, uid = r.target_id }
      e.actor = { user = { name = r.actor, uid = r.actor_id } }
    else
      id, name = classify(FILE, action)
      if not id then return nil end
      e = base(6006, id, name, time)
      e.actor = { user = { name = r.actor, uid = r.actor_id } }
      e.file = { name = r.target, uid = r.target_id, type_id = 1 }
    end
  end
  e.status_id, e.status = status_of(r.outcome)
  e.severity_id = e.status_id == 2 and 2 or 1
  e.metadata = metadata(r.ext_id, r.app)
  e.metadata.log_name = r.app_name
  e.src_endpoint = (r.ip or r.location or r.lat) and { ip = r.ip, location = (r.location or r.lat) and {
    desc = r.location, lat = r.lat, long = r.lon } or nil } or nil
  e.http_request = r.user_agent and { user_agent = r.user_agent } or nil
  e.cloud = { provider = r.app_name, account = { name = r.instance } }
  e.message = r.action
  e.unmapped = opts and opts.raw and { raw = json.decode(r.raw or "null") } or nil
  return e
end

return M
