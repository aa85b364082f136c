-- Okta (Management API).  Reference: shared/api/okta.md.
local c = connector "okta"
c.title = "Okta"
c.settings = {
  { "domain", required = true, example = "acme.okta.com", help = "your Okta org domain" },
  { "api_token", secret = true, help = "API token (SSWS), created by an admin" },
  { "client_id", help = "OAuth service app client id (instead of an API token)" },
  { "private_key", secret = true, help = "PEM private key of the service app (private_key_jwt)" },
  { "hook_secret", secret = true, help = "the Authorization value configured on the event hook" },
}
c.base_url = function(s) return "https://" .. s.domain end

c.auth = {
  default = "token",
  token = { type = "token", header = "Authorization", format = "SSWS %s", secret = "api_token" },
  oauth = {
    type = "oauth2", grant = "client_credentials", token_url = "/oauth2/v1/token",
    scopes = { "okta.users.read", "okta.users.manage", "okta.groups.read", "okta.roles.read",
               "okta.logs.read", "okta.apps.read" },
    -- private_key_jwt: iss = sub = client_id, aud = the token endpoint
    assertion = function(client)
      local s = client.inst.settings
      local now = math.floor(sched.time())
      local b64 = function(t) return crypto.b64url(json.encode(t)) end
      local head = b64 { alg = "RS256", typ = "JWT" } .. "." .. b64 {
        iss = s.client_id, sub = s.client_id, aud = client:url("/oauth2/v1/token"),
        iat = now, exp = now + 300, jti = crypto.b64url(crypto.random(16)) }
      return head .. "." .. crypto.b64url(assert(crypto.rs256_sign(client.inst:secret("private_key"), head)))
    end,
  },
}

c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = false,
  activities = { "signin", "admin", "user" },
}

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

-- Admin roles: who holds one (IAM assignees), then each holder's role assignments.
function c.streams.privileges(ctx)
  local holders = {}
  for page in ctx:pages("/api/v1/iam/assignees/users", { limit = 100 }, { items = "value" }) do
    for _, a in ipairs(page) do holders[#holders + 1] = a.id end
  end
  local admins = {}
  for _, uid in ipairs(holders) do
    local roles = ctx:list("/api/v1/users/" .. uid .. "/roles")
    ctx:emit("privileges", roles, function(r)
      admins[uid] = true
      return { ext_id = uid .. ":" .. r.id, user_id = uid, role = r.type, scope = r.assignmentType }
    end)
  end
  ctx:set_admins(admins)
end

-- OAuth consent grants of each user (scopes granted to apps).
function c.streams.app_grants(ctx)
  for _, u in ipairs(ctx:known_users()) do
    for page in ctx:pages("/api/v1/users/" .. u.ext_id .. "/grants", { limit = 200, expand = "scope" }) do
      ctx:emit("app_grants", page, function(g)
        if g.status ~= "ACTIVE" then return nil end
        return { ext_id = g.id, client_id = g.clientId, user_id = u.ext_id, user = u.email,
                 scopes = g.scopeId, created_at = g.created, app_name = g.clientId }
      end)
    end
  end
end

local SIGNIN = { ["user.session.start"] = true, ["user.session.end"] = true }
local function kind_of(t)
  if SIGNIN[t] or t:match("^user%.authentication%.") then return "signin" end
  if t:match("^user%.lifecycle%.") or t:match("^group%.") or t:match("^application%.") or t:match("^app%.")
    or t:match("^policy%.") or t:match("^system%.") or t:match("^iam%.") or t:match("^user%.account%.privilege") then
    return "admin"
  end
  return "user"
end

local function event_row(e)
  local cl, geo = e.client or {}, nil
  geo = type(cl.geographicalContext) == "table" and cl.geographicalContext or {}
  local target = type(e.target) == "table" and e.target[1] or nil
  local point = type(geo.geolocation) == "table" and geo.geolocation or {}
  local place = {}
  for _, k in ipairs { "city", "state", "country" } do
    if type(geo[k]) == "string" then place[#place + 1] = geo[k] end
  end
  return {
    ext_id = e.uuid, time = e.published, kind = kind_of(e.eventType), action = e.eventType,
    actor = e.actor.alternateId, actor_id = e.actor.id,
    target = target and target.alternateId or nil, target_id = target and target.id or nil,
    ip = cl.ipAddress ~= json.null and cl.ipAddress or nil,
    location = #place > 0 and table.concat(place, ", ") or nil,
    user_agent = type(cl.userAgent) == "table" and cl.userAgent.rawUserAgent or nil,
    outcome = type(e.outcome) == "table" and e.outcome.result and e.outcome.result:lower() or nil,
    app = "Okta",
    lat = tonumber(point.lat), lon = tonumber(point.lon),
  }
end

-- System Log, incremental: a polling query (since, no until) always offers a next link, even after an
-- empty page; we keep it as the cursor and resume from it next time, so no poll is wasted.
c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local days = tonumber(ctx.settings.initial_days) or c.initial_days
  local path, query = cursor, nil
  if not path then
    path, query = "/api/v1/logs", { since = iso(sched.time() - days * 86400), sortOrder = "ASCENDING", limit = 1000 }
  end
  for page, resp in ctx:pages(path, query, { max_pages = 1000000 }) do
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
function c.actions.revoke_grant(ctx, grant)
  ctx:delete("/api/v1/users/" .. urlencode(grant.user_id) .. "/grants/" .. urlencode(grant.ext_id))
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
