-- Workday: one tenant per instance — workers and their Workday accounts (active, disabled, expired; the
-- workers' terminations), security groups and their members, sign-ons and an audit report, and account
-- governance.  Workday Web Services (SOAP, providers/workday.lua) and Reports-as-a-Service.
-- Reference: shared/api/workday.md.
local wws = provider("workday")

local c = connector "workday"
c.title = "Workday"
c.settings = {
  { "host", required = true, example = "wd2-impl-services1.workday.com", help = "the tenant's web services host" },
  { "tenant", required = true, example = "acme_impl", help = "the tenant name, as in /ccx/service/<tenant>/..." },
  { "client_id", help = "API client for integrations: its client id (auth=oauth, the default)" },
  { "client_secret", secret = true, help = "the API client's secret" },
  { "refresh_token", secret = true, help = "a refresh token generated for the API client (Manage Refresh Tokens for Integrations)" },
  { "isu_user", help = "integration system user (auth=isu): its user name, e.g. ISU_cachost@acme_impl" },
  { "isu_password", secret = true, help = "the integration system user's password" },
  { "accounts_report", required = true, example = "ISU_cachost/cachost_Workday_Accounts",
    help = "owner/Report_Name of a web-service-enabled report of Workday accounts with the fields User_Name, "
      .. "Account_Disabled, Account_Expiration_Date, Account_Locked and Last_Signon (Get_Workers does not say "
      .. "whether an account is disabled or expired)" },
  { "groups_report", example = "ISU_cachost/cachost_Security_Group_Members",
    help = "owner/Report_Name of a report of security group members: one entry per member with the fields "
      .. "Security_Group, Security_Group_Type and User_Name (groups and privileges need it)" },
  { "audit_report", example = "ISU_cachost/cachost_User_Activity",
    help = "owner/Report_Name of an audit report with the prompts From_Moment and To_Moment and the fields "
      .. "Time, Performed_By, Activity, Target, Task, IP_Address and Entry_ID (the entry's Workday ID; without it "
      .. "entries are known by their content) (admin and user activity)" },
  { "admin_groups", help = "security groups whose members are administrators, comma-separated (default: "
      .. "Security Administrator, Security Configuration, Integration Administrator)" },
}
c.base_url = function(s) return "https://" .. s.host end

local function token_url(s) return "/ccx/oauth2/" .. urlencode(s.tenant) .. "/token" end
c.auth = {
  default = "oauth",
  oauth = { type = "oauth2", grant = "refresh_token", token_url = token_url },
  -- WS-Security on SOAP calls, HTTP Basic on the reports
  isu = { type = "wsse", username = "isu_user", password = "isu_password" },
}

-- Each capability's functional areas (OAuth scopes of the API client) and domain security policies
-- (granted to the integration user's security group), as Workday's admins assign them.
c.capabilities = { users = true, groups = true, privileges = true, app_grants = false, files = false,
                   activities = { "signin", "admin", "user" } }
-- What the reports' data sources are secured by (a permission failure names it).
local REPORT_NEEDS = {
  accounts = "the domain Security Administration (the accounts report's data source)",
  groups = "the domain Security Administration (the groups report's data source)",
  audit = "the domains the audit report's data source is secured by",
}
c.needs = {
  users = "Get_Workers: " .. wws.DOMAIN.Get_Workers_Request .. " (functional area Staffing); the accounts report: "
    .. REPORT_NEEDS.accounts,
  groups = "the groups report: " .. REPORT_NEEDS.groups,
  privileges = "the groups report: " .. REPORT_NEEDS.groups,
  activities = "Get_Workday_Account_Signons: " .. wws.DOMAIN.Get_Workday_Account_Signons_Request .. " (functional area "
    .. "System); the audit report: " .. REPORT_NEEDS.audit .. "; polled: Workday pushes changes only to its own "
    .. "integrations, not to an outside listener",
  actions = "Workday_Account_for_Worker_Update: " .. wws.DOMAIN.Workday_Account_for_Worker_Update,
}
c.not_offered = {
  files = "Workday is not a file-sharing service: its API offers no files or sharing to scan",
  app_grants = "Workday's API lists no OAuth grants or tokens: refresh tokens are managed in the task Manage Refresh Tokens for Integrations",
}

c.error_message = wws.error_message
c.fault_token = wws.fault_token

local function report_name(v) return v == nil or v == "" or tostring(v):match("^[^/]+/[^/]+$") ~= nil end
function c.validate(settings)
  for _, k in ipairs { "accounts_report", "groups_report", "audit_report" } do
    if not report_name(settings[k]) then return nil, ("setting '%s': owner/Report_Name, not %q"):format(k, tostring(settings[k])) end
  end
  return true
end

---------------------------------------------------------------------------------------------- accounts
-- A worker's account: active, disabled, expired (its expiration date passed), or locked.  A worker whose
-- employment ended carries terminated_at; the account may still be active (offboarding acts on that).
local function account_status(a, now)
  if wws.bool(a.Account_Disabled) then return "disabled" end
  local exp = wws.time(a.Account_Expiration_Date)
  if exp and parse_iso(exp) <= now then return "deprovisioned" end
  if wws.bool(a.Account_Locked) then return "locked" end
  return "active"
end

-- The ids of a reference: {WID = "...", Employee_ID = "..."}
local function ids(el)
  local out = {}
  for _, id in ipairs(xml.all(el, "", "ID")) do out[id.attrs["{" .. wws.NS .. "}type"] or "?"] = id.text end
  return out
end

-- A worker's work e-mail (the primary WORK one, else the first).
local function email_of(data)
  local first, work
  for _, e in ipairs(xml.all(data, "Personal_Data/Contact_Data", "Email_Address_Data")) do
    local addr = xml.text(e, "Email_Address")
    first = first or addr
    for _, t in ipairs(xml.all(e, "Usage_Data", "Type_Data")) do
      if ids(xml.child(t, "Type_Reference")).Communication_Usage_Type_ID == "WORK" then work = work or addr end
    end
  end
  return work or first
end

-- A Worker and its account (the accounts report's entry) -> a users row keyed by the account's user name.
local function user_row(w, accounts, now)
  local data, ref = xml.child(w, "Worker_Data"), ids(xml.child(w, "Worker_Reference"))
  if not (data and ref.WID) then error("a Worker without Worker_Reference WID or Worker_Data") end
  local name = xml.text(data, "User_Account_Data/User_Name")
  if not name then return nil end                       -- a worker without a Workday account
  local a = accounts[name] or error("account " .. name .. " is not in the accounts report")
  local status = xml.find(data, "Employment_Data/Worker_Status_Data")
  local terminated = wws.bool(xml.text(status, "Terminated"))
  return {
    ext_id = name, email = email_of(data) or (name:find("@", 1, true) and name or nil),
    display_name = xml.text(w, "Worker_Descriptor") or name, status = account_status(a, now),
    last_login = wws.time(a.Last_Signon), external = 0, created_at = wws.time(xml.text(status, "Hire_Date")),
    terminated_at = terminated and (wws.time(xml.text(status, "Termination_Date")) or json.null) or json.null,
    raw = { Worker_Reference = ref, Worker = xml.record(w), Account = a },
  }
end

local function accounts(ctx)
  local out = {}
  for _, a in ipairs(wws.report(ctx, ctx.settings.accounts_report, nil, REPORT_NEEDS.accounts)) do
    if type(a) == "table" and type(a.User_Name) == "string" then out[a.User_Name] = a end
  end
  return out
end

local WORKER_GROUP = { { "Include_Reference", "true" }, { "Include_Personal_Information", "true" },
                       { "Include_Employment_Information", "true" }, { "Include_User_Account", "true" } }

-- Get_Workers, terminated workers included; their accounts' state from the accounts report.
function c.streams.users(ctx)
  local accts, now = accounts(ctx), sched.time()
  for page in wws.pages(ctx, "Human_Resources", "Get_Workers", {
    criteria = { { "Exclude_Inactive_Workers", "false" } }, group = WORKER_GROUP, item = "Worker", count = c.page_size }) do
    ctx:emit("users", page, function(w) return user_row(w, accts, now) end)
  end
end

-- One account again (a governance action's outcome): its worker by WID, as the last scan stored it.
local function stored_raw(ctx, user)
  local raw = user.raw
  if type(raw) ~= "string" then
    local row = ctx:stored("users", user.ext_id)
    raw = row and row.raw
  end
  local r = type(raw) == "string" and json.decode(raw) or nil
  local ref = type(r) == "table" and type(r.Worker_Reference) == "table" and r.Worker_Reference
  if not (ref and str(ref.WID)) then
    fail(("%s: no worker reference stored: sync the users first"):format(user.ext_id), "not_found")
  end
  return ref
end

function c.fetch.users(ctx, name)
  local ref = stored_raw(ctx, { ext_id = name })
  local accts, now = accounts(ctx), sched.time()
  for page in wws.pages(ctx, "Human_Resources", "Get_Workers", {
    references = { { "Request_References", { wws.ref("Worker_Reference", "WID", ref.WID) }, { ["wd:Skip_Non_Existing_Instances"] = "true" } } },
    group = WORKER_GROUP, item = "Worker" }) do
    ctx:emit("users", page, function(w) return user_row(w, accts, now) end)
  end
end

---------------------------------------------------------------------------------------------- security groups
local DEFAULT_ADMIN_GROUPS = { "Security Administrator", "Security Configuration", "Integration Administrator" }

local function memberships(ctx)
  local report = str(ctx.settings.groups_report)
  if not report then fail("needs the groups_report setting (a report of security group members)", "unavailable") end
  return wws.report(ctx, report, nil, REPORT_NEEDS.groups)
end

-- The groups are those the members' entries name.
function c.streams.groups(ctx)
  local entries, seen, groups = memberships(ctx), {}, {}
  for _, m in ipairs(entries) do
    local g = type(m) == "table" and str(m.Security_Group)
    if g and not seen[g] then
      seen[g] = true
      groups[#groups + 1] = { ext_id = g, name = g, description = str(m.Security_Group_Type),
                              raw = { Security_Group = g, Security_Group_Type = m.Security_Group_Type } }
    end
  end
  ctx:emit("groups", groups)
  ctx:emit("group_members", entries, function(m)
    if not (str(m.Security_Group) and str(m.User_Name)) then error("an entry without Security_Group or User_Name") end
    return { ext_id = m.Security_Group .. ":" .. m.User_Name, group_id = m.Security_Group, member_id = m.User_Name, member_type = "user" }
  end)
end

function c.streams.privileges(ctx)
  local admin = {}
  for _, g in ipairs(str(ctx.settings.admin_groups) and {} or DEFAULT_ADMIN_GROUPS) do admin[g] = true end
  for g in (str(ctx.settings.admin_groups) or ""):gmatch("[^,]+") do admin[(g:gsub("^%s+", ""):gsub("%s+$", ""))] = true end
  local admins = {}
  ctx:emit("privileges", memberships(ctx), function(m)
    if not (str(m.Security_Group) and str(m.User_Name)) then error("an entry without Security_Group or User_Name") end
    if not admin[m.Security_Group] then return nil end
    admins[m.User_Name] = true
    return { ext_id = m.User_Name .. ":" .. m.Security_Group, user_id = m.User_Name, role = m.Security_Group,
             scope = str(m.Security_Group_Type) or "security group" }
  end)
  ctx:set_admins(admins)
end

---------------------------------------------------------------------------------------------- activity
-- Sign-ons have no id of their own: one is made from the record (the same record, the same id).
local function digest(t) return crypto.hex(crypto.sha256(json.encode(t))):sub(1, 32) end

local function signon_row(el)
  local s = xml.record(el)
  if type(s) ~= "table" then error("an empty Workday_Account_Signon") end
  local ok = wws.bool(s.Successful)
  return {
    ext_id = "signon:" .. digest(s), time = wws.time(s.Signon_DateTime) or error("no Signon_DateTime"),
    kind = "signin", action = ok and "signon" or "failed signon", actor = str(s.User_Name),
    ip = str(s.Signon_IP_Address), outcome = ok and "success" or "failure",
    user_agent = str(s.Browser_Type), app = "Workday", raw = s,
  }
end

local function audit_row(e)
  if type(e) ~= "table" then error("an audit entry that is not an object") end
  local time = wws.time(e.Time) or error("an audit entry without Time")
  local action = str(e.Activity) or str(e.Task) or error("an audit entry without Activity")
  return {
    ext_id = "audit:" .. (str(e.Entry_ID) or digest(e)), time = time, kind = str(e.Task) and "admin" or "user", action = action,
    actor = str(e.Performed_By), target = str(e.Target), ip = str(e.IP_Address), outcome = "success",
    app = "Workday", raw = e,
  }
end

-- A window from where the last run ended (less an overlap: sign-ons are recorded when their session
-- ends) to now.  The cursor moves to the window's end with the last page, so a run cut short reads its
-- window again; records read twice are the same rows.
c.initial_days = 7
local OVERLAP = 3600
function c.streams.activities(ctx, cursor)
  local now = sched.time()
  local from = cursor and parse_iso(cursor) and parse_iso(cursor) - OVERLAP
    or now - (tonumber(ctx.settings.initial_days) or c.initial_days) * 86400
  local window = { { "From_DateTime", iso(from) }, { "To_DateTime", iso(now) } }
  local pages = wws.pages(ctx, "Identity_Management", "Get_Workday_Account_Signons",
    { criteria = window, item = "Workday_Account_Signon", count = c.page_size })
  local audit = str(ctx.settings.audit_report)
  local page = pages()
  while page do
    local nxt = pages()
    if not nxt and not audit then ctx:checkpoint(iso(now), iso(now)) end
    ctx:emit("activities", page, signon_row)
    page = nxt
  end
  if audit then
    local entries = wws.report(ctx, audit, { From_Moment = iso(from), To_Moment = iso(now) }, REPORT_NEEDS.audit)
    ctx:checkpoint(iso(now), iso(now))
    ctx:emit("activities", entries, audit_row)
  end
end

c.stream_order = { users = 1, groups = 2, privileges = 3, activities = 4 }

function c.test(ctx)
  local r = wws.call(ctx, "Human_Resources", "Get_Workers_Request", {
    wws.wd("Response_Filter", wws.elements { { "Page", 1 }, { "Count", 1 } }) })
  return ("Workday tenant %s: %s workers"):format(ctx.settings.tenant, xml.text(r, "Response_Results/Total_Results") or "?")
end

---------------------------------------------------------------------------------------------- governance
-- Workday_Account_for_Worker_Update (Update_Workday_Account): the worker as an employee or a contingent
-- worker by its integration id (Worker_ReferenceType: Employee_Reference | Contingent_Worker_Reference,
-- each an Integration_ID_Reference with System_ID WD-EMPLID), the account by its user name, and only the
-- fields that change.
local function update_account(ctx, user, fields)
  local ref = stored_raw(ctx, user)
  local kind, id = "Employee_Reference", str(ref.Employee_ID)
  if not id then kind, id = "Contingent_Worker_Reference", str(ref.Contingent_Worker_ID) end
  if not id then fail(("%s: its worker has no Employee_ID or Contingent_Worker_ID"):format(user.ext_id), "not_found") end
  local data = { { "User_Name", user.ext_id } }
  for _, f in ipairs(fields) do data[#data + 1] = f end
  wws.call(ctx, "Human_Resources", "Workday_Account_for_Worker_Update", wws.elements {
    { "Worker_Reference", { { kind, { { "Integration_ID_Reference", { { "ID", id, { ["wd:System_ID"] = "WD-EMPLID" } } } } } } } },
    { "Workday_Account_for_Worker_Data", data } })
end

function c.actions.suspend_user(ctx, user) update_account(ctx, user, { { "Account_Disabled", "true" } }) end
function c.actions.unsuspend_user(ctx, user) update_account(ctx, user, { { "Account_Disabled", "false" } }) end
function c.actions.expire_password(ctx, user)
  update_account(ctx, user, { { "Require_New_Password_at_Next_Sign_In", "true" } })
end
-- the account expires now: no sign-on after it (Workday keeps the account and its history)
function c.actions.deactivate_user(ctx, user)
  update_account(ctx, user, { { "Account_Expiration_Date", iso(sched.time()) } })
end
c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user" }

return c
