-- Okta (Management API).  Reference: shared/api/okta.md.
local c = connector "okta"
c.title = "Okta"
c.identity = "provider"     -- its deactivated and deleted accounts are people who left (policies/offboarding.lua)
c.settings = {
  { "domain", required = true, example = "acme.okta.com", help = "your Okta org domain" },
  { "api_token", secret = true, help = "API token (SSWS), created by an admin" },
  { "client_id", help = "OAuth service app client id (instead of an API token)" },
  { "private_key", secret = true, help = "PEM private key of the service app (private_key_jwt)" },
  { "dpop", type = "boolean", help = "the service app requires DPoP proofs (Okta's default for new apps; "
      .. "false when its \"Require Demonstrating Proof of Possession (DPoP) header\" is unticked)" },
  { "hook_secret", secret = true, help = "the Authorization value configured on the event hook" },
  { "components", help = "what to read and do (default all): users, groups, privileges, app_grants, api_tokens "
      .. "(read with app_grants), activities, actions; "
      .. "an OAuth service app asks only for their scopes" },
}
c.base_url = function(s) return "https://" .. s.domain end

---------------------------------------------------------------------------------------------- components
-- The OAuth scopes of each component, from each operation's `security` in the management spec.  A service
-- app's token request names only the scopes of the instance's components: Okta refuses the whole request
-- (invalid_scope) when one was not granted to the app.
local SCOPES = {
  users = { "okta.users.read" },
  groups = { "okta.groups.read" },
  privileges = { "okta.roles.read", "okta.groups.read" },              -- groups: roles held through them
  app_grants = { "okta.users.read", "okta.apps.read" },
  api_tokens = { "okta.apiTokens.read" },          -- listed with the app grants (one table)
  activities = { "okta.logs.read" },
  actions = { "okta.users.manage", "okta.roles.manage", "okta.apps.manage", "okta.apiTokens.manage" },
}
local COMPONENTS = { "users", "groups", "privileges", "app_grants", "api_tokens", "activities", "actions" }

-- The components an instance has on: a set, or nil, err.
local function on(settings) return components(settings.components, COMPONENTS, "okta") end
function c.validate(settings) return on(settings) end
function c.enabled(stream, settings)
  local set, err = on(settings)
  if not set then return nil, err end
  return set[stream] == true
end

-- What `cachost connectors okta` shows each capability needs.  A service app also needs an admin role
-- assigned to it (Okta checks both the scope and the role); an API token acts with its admin's role.
c.needs = {}
for _, k in ipairs(COMPONENTS) do
  c.needs[k] = "service app: " .. table.concat(SCOPES[k], ", ") .. " and an admin role that allows it; API token: its admin's role"
end

c.auth = {
  default = "token",
  token = { type = "token", header = "Authorization", format = "SSWS %s", secret = "api_token" },
  oauth = {
    type = "oauth2", grant = "client_credentials", token_url = "/oauth2/v1/token",
    -- DPoP unless the instance says the app does not require it
    dpop = function(settings) return settings.dpop ~= false and settings.dpop ~= "false" end,
    scopes = function(settings) return component_scopes(on(settings) or {}, COMPONENTS, SCOPES) end,
    private_key = "private_key",             -- private_key_jwt: the app's key signs the client assertion
  },
}

c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = false,
  activities = { "signin", "admin", "user" },
}
c.not_offered = { files = "Okta is an identity provider: it holds no files" }

-- Okta's error body: {"errorCode","errorSummary",...}; the OAuth endpoints: {"error","error_description"}.
function c.error_message(resp)
  local d = resp.data
  if type(d) ~= "table" then return resp.body:sub(1, 200) end
  if d.errorSummary then return ("%s (%s)"):format(d.errorSummary, d.errorCode or "?") end
  return tostring(d.error_description or d.error or resp.body:sub(1, 200))
end

-- Okta user status -> the common statuses.
local STATUS = {
  ACTIVE = "active", RECOVERY = "active", PASSWORD_EXPIRED = "active", SUSPENDED = "suspended",
  DEPROVISIONED = "deprovisioned", LOCKED_OUT = "locked", STAGED = "pending", PROVISIONED = "pending",
}

local function user_row(u)
  local p = u.profile
  local name = p.displayName
  if type(name) ~= "string" then name = ((p.firstName or "") .. " " .. (p.lastName or "")):gsub("^%s+", ""):gsub("%s+$", "") end
  return {
    ext_id = u.id, email = p.email or p.login, display_name = name,
    status = STATUS[u.status] or error("unknown user status " .. tostring(u.status)),
    last_login = u.lastLogin ~= json.null and u.lastLogin or nil, created_at = u.created, external = 0,
  }
end

local function group_row(g)
  return { ext_id = g.id, name = g.profile.name, description = g.profile.description ~= json.null and g.profile.description or nil }
end

local PAGE = 200

-- The plain user list omits DEPROVISIONED users; a filter on status includes them.
function c.streams.users(ctx)
  for page in ctx:pages("/api/v1/users", { limit = PAGE }) do ctx:emit("users", page, user_row) end
  for page in ctx:pages("/api/v1/users", { limit = PAGE, filter = 'status eq "DEPROVISIONED"' }) do
    ctx:emit("users", page, user_row)
  end
end

function c.streams.groups(ctx)
  local ids = {}
  for page in ctx:pages("/api/v1/groups", { limit = PAGE }) do
    ctx:emit("groups", page, group_row)
    for _, g in ipairs(page) do ids[#ids + 1] = g.id end
  end
  for _, gid in ipairs(ids) do
    for page in ctx:pages("/api/v1/groups/" .. gid .. "/users", { limit = PAGE }) do
      ctx:emit("group_members", page, function(u)
        return { ext_id = gid .. ":" .. u.id, group_id = gid, member_id = u.id, member_type = "user" }
      end)
    end
  end
end

-- Admin roles.  The users assigned a role themselves (the IAM listing pages through `_links.next` in its
-- body, RoleAssignedUsers), then each one's role assignments; and the roles held through groups
-- (assignmentType GROUP): every member of such a group holds them.
local IAM_PAGES = {
  items = "value",
  next = function(resp)
    local l = type(resp.data._links) == "table" and resp.data._links.next
    return type(l) == "table" and str(l.href) or nil
  end,
}

local function role_row(uid, r, scope)
  return { ext_id = uid .. ":" .. r.id, user_id = uid, role = r.type, scope = scope }
end

function c.streams.privileges(ctx)
  local admins = {}
  for page in ctx:pages("/api/v1/iam/assignees/users", { limit = 100 }, IAM_PAGES) do
    for _, a in ipairs(page) do
      -- a user's list has their group-held roles too: those come below, with their group
      local roles = ctx:list("/api/v1/users/" .. urlencode(a.id) .. "/roles")
      ctx:emit("privileges", roles, function(r)
        if r.assignmentType == "GROUP" then return nil end
        admins[a.id] = true
        return role_row(a.id, r, r.assignmentType)
      end)
    end
  end
  for page in ctx:pages("/api/v1/groups", { limit = PAGE }) do
    for _, g in ipairs(page) do
      local roles = ctx:list("/api/v1/groups/" .. urlencode(g.id) .. "/roles")
      if #roles > 0 then
        local scope = "GROUP " .. tostring(g.profile and g.profile.name or g.id)
        for members in ctx:pages("/api/v1/groups/" .. urlencode(g.id) .. "/users", { limit = PAGE }) do
          local rows = {}
          for _, u in ipairs(members) do
            admins[u.id] = true
            for _, r in ipairs(roles) do
              rows[#rows + 1] = role_row(u.id, r, scope)
              rows[#rows].raw = { role = r, group = { id = g.id, name = g.profile and g.profile.name } }
            end
          end
          ctx:emit("privileges", rows)
        end
      end
    end
  end
  ctx:set_admins(admins)
end

-- App permissions: each user's OAuth consent grants (scopes granted to apps), the apps' user assignments
-- (one row "app:user"), and the org's API tokens (SSWS: each acts with all of its admin's permissions).
-- One stream, as they share the app_grants table (a complete listing retires what it did not see); the API
-- tokens only with the api_tokens component (their scope, okta.apiTokens.read, is granted apart).
local API_TOKEN = "okta.api_token"

function c.streams.app_grants(ctx)
  for _, u in ipairs(ctx:known_users()) do
    for page in ctx:pages("/api/v1/users/" .. urlencode(u.ext_id) .. "/grants", { limit = 200, expand = "scope" }) do
      ctx:emit("app_grants", page, function(g)
        if g.status ~= "ACTIVE" then return nil end
        return { ext_id = g.id, client_id = g.clientId, user_id = u.ext_id, user = u.email,
                 scopes = g.scopeId, created_at = g.created, app_name = g.clientId }
      end)
    end
  end
  for apps in ctx:pages("/api/v1/apps", { limit = PAGE }) do
    for _, a in ipairs(apps) do
      for page in ctx:pages("/api/v1/apps/" .. urlencode(a.id) .. "/users", { limit = 500 }) do
        ctx:emit("app_grants", page, function(au)
          return { ext_id = a.id .. ":" .. au.id, client_id = a.id, app_name = str(a.label) or a.name, user_id = au.id,
                   user = type(au.credentials) == "table" and str(au.credentials.userName) or nil,
                   scopes = "assigned (" .. tostring(au.scope or "USER") .. ")", created_at = str(au.created) }
        end)
      end
    end
  end
  if not on(ctx.settings).api_tokens then return end
  ctx:emit("app_grants", ctx:list("/api/v1/api-tokens"), function(k)
    return { ext_id = k.id, client_id = API_TOKEN, app_name = "API token " .. tostring(k.name), user_id = k.userId,
             scopes = "*", created_at = str(k.created) }
  end)
end

local SIGNIN = { ["user.session.start"] = true, ["user.session.end"] = true }
local function classify(t)
  if SIGNIN[t] or t:match("^user%.authentication%.") then return "signin" end
  if t:match("^user%.lifecycle%.") or t:match("^group%.") or t:match("^application%.") or t:match("^app%.")
    or t:match("^policy%.") or t:match("^system%.") or t:match("^iam%.") or t:match("^user%.account%.privilege") then
    return "admin"
  end
  return "user"
end
-- a log holds a few hundred event types: each is classified once (a System Log sync maps millions of
-- events); the cache stops growing at KINDS_MAX whatever a tenant sends
local KINDS, KINDS_MAX, kinds = {}, 4096, 0
local function kind_of(t)
  local k = KINDS[t]
  if not k then
    k = classify(t)
    if kinds < KINDS_MAX then KINDS[t], kinds = k, kinds + 1 end
  end
  return k
end

local NONE = {}       -- an absent object, read but never written
-- event_row runs for each of millions of events: the globals it calls are locals (a connector's global is
-- looked up through its confined environment, scripts/env.lua)
local type, tonumber, NULL = type, tonumber, json.null
-- "city, state, country" of those the event gives
local PLACE = { "city", "state", "country" }
local function place(geo)
  local s
  for i = 1, #PLACE do
    local v = geo[PLACE[i]]
    if type(v) == "string" then s = s and s .. ", " .. v or v end
  end
  return s
end
local function event_row(e)
  local cl = e.client or NONE
  local geo = type(cl.geographicalContext) == "table" and cl.geographicalContext or NONE
  local target = type(e.target) == "table" and e.target[1] or nil
  local point = type(geo.geolocation) == "table" and geo.geolocation or NONE
  return {
    ext_id = e.uuid, time = e.published, kind = kind_of(e.eventType), action = e.eventType,
    actor = e.actor.alternateId, actor_id = e.actor.id,
    target = target and target.alternateId or nil, target_id = target and target.id or nil,
    ip = cl.ipAddress ~= NULL and cl.ipAddress or nil,
    location = place(geo),
    user_agent = type(cl.userAgent) == "table" and cl.userAgent.rawUserAgent or nil,
    outcome = type(e.outcome) == "table" and e.outcome.result and e.outcome.result:lower() or nil,
    app = "Okta",
    lat = tonumber(point.lat), lon = tonumber(point.lon),
  }
end

-- What event_row reads of an event: the only members decoded (the stored raw is the event's whole text).
local EVENT_FIELDS = { "uuid", "published", "eventType", "actor.id", "actor.alternateId", "target.id", "target.alternateId",
  "client.ipAddress", "client.geographicalContext.city", "client.geographicalContext.state",
  "client.geographicalContext.country", "client.geographicalContext.geolocation.lat",
  "client.geographicalContext.geolocation.lon", "client.userAgent.rawUserAgent", "outcome.result" }

-- System Log, incremental: a polling query (since, no until) always offers a next link, even after an
-- empty page; we keep it as the cursor and resume from it next time, so no poll is wasted.
c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local days = tonumber(ctx.settings.initial_days) or c.initial_days
  local path, query = cursor, nil
  if not path then
    path, query = "/api/v1/logs", { since = iso(sched.time() - days * 86400), sortOrder = "ASCENDING", limit = 1000 }
  end
  for page, resp in ctx:pages(path, query, { max_pages = 1000000, fields = EVENT_FIELDS }) do
    local next_url = links(resp.headers["link"]).next
    if #page == 0 then
      if next_url then ctx:checkpoint(next_url) end
      return
    end
    ctx:checkpoint(next_url or cursor, page[#page].published)
    ctx:emit("activities", page, event_row)
  end
end

c.stream_order = { users = 1, groups = 2, privileges = 3, app_grants = 4, activities = 5 }

-- Targeted re-fetch (webhooks): one user.
function c.fetch.users(ctx, id)
  local u = ctx:get("/api/v1/users/" .. urlencode(id))
  ctx:emit("users", { u }, user_row)
end

---------------------------------------------------------------------------------------------- governance
local function user_path(user) return "/api/v1/users/" .. urlencode(user.ext_id) end

function c.actions.suspend_user(ctx, user) ctx:post(user_path(user) .. "/lifecycle/suspend") end
function c.actions.unsuspend_user(ctx, user) ctx:post(user_path(user) .. "/lifecycle/unsuspend") end
function c.actions.expire_password(ctx, user) ctx:post(user_path(user) .. "/lifecycle/expire_password") end
function c.actions.reset_password(ctx, user)
  ctx:post(user_path(user) .. "/lifecycle/reset_password", nil, { sendEmail = "true", revokeSessions = "true" })
end
function c.actions.revoke_sessions(ctx, user)
  ctx:delete(user_path(user) .. "/sessions", { oauthTokens = "true" })
end
function c.actions.unlock_user(ctx, user) ctx:post(user_path(user) .. "/lifecycle/unlock") end
-- destructive: the user is deprovisioned from every assigned app (not undone by a reactivation)
function c.actions.deactivate_user(ctx, user)
  ctx:post(user_path(user) .. "/lifecycle/deactivate", nil, { sendEmail = "false" })
end
function c.actions.reset_mfa(ctx, user) ctx:post(user_path(user) .. "/lifecycle/reset_factors") end

-- The admin roles assigned to the user themselves (params.role: only that role type or assignment id).
-- A role held through a group is the group's: the user keeps it until they leave the group.
function c.actions.remove_admin_role(ctx, user, params)
  local want = params and str(params.role)
  local removed, through = 0, {}
  for _, r in ipairs(ctx:list(user_path(user) .. "/roles")) do
    if not want or r.type == want or r.id == want then
      if r.assignmentType == "GROUP" then through[#through + 1] = tostring(r.label or r.type)
      else
        ctx:delete(user_path(user) .. "/roles/" .. urlencode(r.id))
        removed = removed + 1
      end
    end
  end
  if removed == 0 then
    error(#through > 0 and ("http: %s holds %s only through a group: remove them from the group"):format(user.ext_id, table.concat(through, ", "))
      or ("http: %s holds no %s admin role assignment"):format(user.ext_id, want or "direct"), 0)
  end
end

-- A consent grant, or an app assignment (its row "app:user"): removing the user from the app.
function c.actions.revoke_grant(ctx, grant)
  if grant.client_id == API_TOKEN then return c.actions.revoke_token(ctx, grant) end
  local app, uid = grant.ext_id:match("^([^:]+):(.+)$")
  if app then return ctx:delete("/api/v1/apps/" .. urlencode(app) .. "/users/" .. urlencode(uid)) end
  ctx:delete("/api/v1/users/" .. urlencode(grant.user_id) .. "/grants/" .. urlencode(grant.ext_id))
end
function c.actions.revoke_token(ctx, grant)
  if grant.client_id ~= API_TOKEN then error("http: revoke_token acts on API tokens; this is a grant: revoke_grant", 0) end
  ctx:delete("/api/v1/api-tokens/" .. urlencode(grant.ext_id))
end
c.undo = { suspend_user = "unsuspend_user", unsuspend_user = "suspend_user" }

---------------------------------------------------------------------------------------------- event hooks
-- One-time verification: a GET with X-Okta-Verification-Challenge, echoed back as {"verification": v}.
-- Deliveries carry the configured Authorization value (no HMAC): compared in constant time.  Delivery is
-- at-least-once: an event (its uuid) already handled within a day is not re-fetched again.
local SEEN_FOR = 24 * 3600
function c.webhook(ctx, req)
  local secret = ctx:secret("hook_secret")
  if not secret then return 403, { error = "event hook secret not configured" } end
  if not crypto.equal(req.headers["authorization"] or "", secret) then return 401, { error = "unauthorized" } end
  if req.method == "GET" then
    local challenge = req.headers["x-okta-verification-challenge"]
    if not challenge then return 400, { error = "missing verification challenge" } end
    -- echoed in JSON: bytes that are not UTF-8 could not be sent back (the answer would be empty)
    if not utf8.len(challenge) then return 400, { error = "verification challenge is not UTF-8" } end
    return 200, { verification = challenge }
  end
  local body, status, why = webhook.json(req)
  if not body then return status, { error = why } end
  if type(body) ~= "table" or type(body.data) ~= "table" or type(body.data.events) ~= "table" then
    return 400, { error = "not an event hook delivery" }
  end
  local refetch = {}
  for _, e in ipairs(body.data.events) do        -- events and targets that are not objects are skipped
    local new = type(e) == "table" and (type(e.uuid) ~= "string" or webhook.first(ctx.instance .. "/okta", e.uuid, SEEN_FOR))
    for _, t in ipairs(new and type(e.target) == "table" and e.target or {}) do
      if type(t) == "table" and t.type == "User" and type(t.id) == "string" and t.id ~= "" then
        refetch[#refetch + 1] = { entity = "users", id = t.id }
      end
    end
  end
  return 200, nil, refetch
end

return c
