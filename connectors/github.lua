-- GitHub (organization scope, REST API).  Reference: shared/api/github.md.
local c = connector "github"
c.title = "GitHub"
c.settings = {
  { "org", required = true, example = "acme", help = "the organization's login" },
  { "token", secret = true, help = "a token of an org owner (classic PAT: read:org, admin:org, admin:read, read:audit_log)" },
  { "client_id", help = "OAuth app client id (instead of a token: cachost instance connect)" },
  { "client_secret", secret = true, help = "OAuth app client secret" },
  { "oauth_base_url", example = "https://github.example.com", help = "host of the OAuth web flow (default https://github.com; GHES: the server)" },
  { "app_id", example = "Iv23liExampleApp", help = "GitHub App (auth=app): its client ID, or its numeric app ID" },
  { "private_key", secret = true, help = "GitHub App (auth=app): the app's private key (PEM)" },
  { "installation_id", help = "GitHub App (auth=app): the installation on the org (default: looked up with GET /orgs/{org}/installation)" },
  { "webhook_secret", secret = true, help = "the secret configured on the organization webhook" },
}
c.base_url = "https://api.github.com"          -- GHES: https://HOST/api/v3 in the base_url setting
-- Every API request names GitHub's media type and the REST API version it was written against (§1).
c.headers = { Accept = "application/vnd.github+json", ["X-GitHub-Api-Version"] = "2022-11-28" }

-- The web flow lives on github.com, not api.github.com (§2.2).  PKCE is not supported; tokens of OAuth
-- apps do not expire, so there is no refresh.  The `oauth_base_url` setting overrides the host (GHES).
c.auth = {
  default = "token",
  token = { type = "token", header = "Authorization", format = "Bearer %s", secret = "token" },
  oauth = {
    type = "oauth2", grant = "authorization_code", pkce = false,
    base_url = "https://github.com",
    authorize_url = "/login/oauth/authorize", token_url = "/login/oauth/access_token",
    scopes = { "read:org", "admin:org", "admin:read", "read:audit_log" },
  },
  -- GitHub App (§2.1, the way organizations connect apps): a JWT signed with the app's private key
  -- (RS256; iss = the client ID or the integer app ID; iat 60 s back against clock drift; exp at most 10
  -- minutes ahead) buys an installation token for the org, valid 1 hour.
  app = {
    type = "exchange",
    exchange = function(x)
      local now = math.floor(x.now())
      local app_id = x.settings.app_id
      if type(app_id) ~= "string" or app_id == "" then return nil, "auth: the app_id setting is not set" end
      local jwt, jerr = x.jwt({ iat = now - 60, exp = now + 540, iss = math.tointeger(tonumber(app_id)) or app_id }, "private_key")
      if not jwt then return nil, jerr end
      local headers = { Authorization = "Bearer " .. jwt }
      for k, v in pairs(c.headers) do headers[k] = v end
      local id = x.settings.installation_id
      if type(id) ~= "string" or id == "" then
        local resp, err, token = x.request("GET", "/orgs/" .. urlencode(x.settings.org) .. "/installation", { headers = headers })
        if not resp then return nil, err, token end
        id = type(resp.data) == "table" and resp.data.id and tostring(math.tointeger(resp.data.id) or resp.data.id)
        if not id then return nil, "bad_json: GET /orgs/{org}/installation answered without an id", "bad_json" end
      end
      local resp, err, token = x.request("POST", "/app/installations/" .. urlencode(id) .. "/access_tokens", { headers = headers })
      if not resp then return nil, err, token end
      local t = resp.data
      local exp = type(t) == "table" and type(t.expires_at) == "string" and parse_iso(t.expires_at)
      if type(t) ~= "table" or type(t.token) ~= "string" or not exp then
        return nil, "bad_json: the installation token answer has no token or expires_at", "bad_json"
      end
      return { token = t.token, expires_at = exp }
    end,
  },
  -- device flow (§2.2): for a machine without a browser; the user enters a code on github.com/login/device
  device = {
    type = "oauth2", grant = "device_code", base_url = "https://github.com",
    device_url = "/login/device/code", token_url = "/login/oauth/access_token",
    scopes = { "read:org", "admin:org", "admin:read", "read:audit_log" },
  },
}

-- No sign-in log on github.com: SSO credential and OAuth authorizations in the audit log stand in (§3).
c.capabilities = {
  users = true, groups = true, privileges = true, app_grants = true, files = false,
  activities = { "signin", "admin", "user" },
}
c.not_offered = {
  files = "repositories hold code, not documents: their contents are not scanned (GitHub's secret scanning covers them)",
}

-- What `cachost connectors github` shows each capability needs: of a classic PAT or OAuth token (an org
-- owner's), and of a GitHub App (its organization permissions), per GitHub's reference for each call.
c.needs = {
  users = "token: read:org (2FA state: an org owner's token); app: members read",
  groups = "token: read:org; app: members read",
  privileges = "token: read:org, admin:org (organization roles); app: members read, organization_custom_org_roles read (roles)",
  app_grants = "token: read:org (SAML credential authorizations, GHEC), admin:read (installed apps); app: organization_administration read, "
    .. "organization_personal_access_tokens read (fine-grained PATs: GitHub App only)",
  activities = "GitHub Enterprise Cloud; token: read:audit_log; app: organization_administration read",
  remove_member = "token: admin:org; app: members write",
  revoke_grant = "token: admin:org (SAML credential authorizations); app: organization_personal_access_tokens write (fine-grained PATs)",
  revoke_token = "app: organization_personal_access_tokens write (fine-grained PATs: GitHub App only)",
}

-- {"message", "documentation_url", "status"}; 422 adds errors[].  A 403 to a GitHub App or a fine-grained
-- token names the permission the call needed (X-Accepted-GitHub-Permissions, e.g. "members=read").
function c.error_message(resp)
  local d = resp.data
  local needed = resp.status == 403 and str(resp.headers["x-accepted-github-permissions"])
  if needed then
    local msg = type(d) == "table" and d.message or resp.body:sub(1, 200)
    return ("%s (needs %s)"):format(tostring(msg), needed)
  end
  if type(d) ~= "table" then return resp.body:sub(1, 200) end
  local msg = tostring(d.message or d.error_description or d.error or resp.body:sub(1, 200))
  if type(d.errors) == "table" and type(d.errors[1]) == "table" then
    local e = d.errors[1]
    msg = msg .. (" (%s %s: %s)"):format(tostring(e.resource), tostring(e.field), tostring(e.message or e.code))
  end
  return msg
end

-- Primary limit: 403/429 with x-ratelimit-remaining 0; secondary: 403/429 naming a secondary rate limit,
-- optionally with retry-after (§6).  Any other 403 is a permission problem.
function c.is_throttled(resp)
  if resp.status ~= 403 and resp.status ~= 429 then return false end
  local h = resp.headers
  if h["retry-after"] or h["x-ratelimit-remaining"] == "0" then return true end
  local body = (resp.body or ""):lower()
  return body:find("secondary rate limit", 1, true) ~= nil or body:find("rate limit exceeded", 1, true) ~= nil
end

local PAGE = 100                               -- per_page max

local function org_path(ctx, rest) return "/orgs/" .. urlencode(ctx.settings.org) .. (rest or "") end

---------------------------------------------------------------------------------------------- users
-- simple-user has no status, e-mail or creation time: members listed are active (pending invitees
-- are not members yet); outside collaborators are external.
local function user_row(u, is_admin, external)
  return {
    ext_id = u.login, email = str(u.email), display_name = str(u.name) or u.login, status = "active",
    is_admin = is_admin and 1 or 0, external = external and 1 or 0,
  }
end

-- Two-factor authentication: the listings filtered with filter=2fa_disabled (owners only) name those
-- without it; the row's raw user carries GitHub's own field two_factor_authentication.
local function without_2fa(ctx, path)
  local set = {}
  for page in ctx:pages(org_path(ctx, path), { filter = "2fa_disabled", per_page = PAGE }) do
    for _, u in ipairs(page) do
      -- an unreadable item could be anyone: no 2FA state is better than a wrong one
      if type(u) ~= "table" or type(u.login) ~= "string" then
        fail(("malformed items: a user without login in GET %s?filter=2fa_disabled"):format(path), "malformed")
      end
      set[u.login] = true
    end
  end
  return set
end

local function with_2fa(row, u, no2fa)
  local raw = {}
  for k, v in pairs(u) do raw[k] = v end
  raw.two_factor_authentication = not no2fa[u.login]
  row.raw = raw
  return row
end

function c.streams.users(ctx)
  local no2fa = without_2fa(ctx, "/members")
  for _, role in ipairs { "admin", "member" } do
    for page in ctx:pages(org_path(ctx, "/members"), { role = role, per_page = PAGE }) do
      ctx:emit("users", page, function(u) return with_2fa(user_row(u, role == "admin", false), u, no2fa) end)
    end
  end
  no2fa = without_2fa(ctx, "/outside_collaborators")
  for page in ctx:pages(org_path(ctx, "/outside_collaborators"), { per_page = PAGE }) do
    ctx:emit("users", page, function(u) return with_2fa(user_row(u, false, true), u, no2fa) end)
  end
end

---------------------------------------------------------------------------------------------- teams
local function team_row(t)
  return { ext_id = tostring(t.id), name = t.name, description = str(t.description) }
end

function c.streams.groups(ctx)
  local teams = {}
  for page in ctx:pages(org_path(ctx, "/teams"), { per_page = PAGE }) do
    ctx:emit("groups", page, team_row)
    for _, t in ipairs(page) do teams[#teams + 1] = t end
  end
  -- Team members include child teams' members (§3); the role filter tells maintainers apart.
  for _, t in ipairs(teams) do
    local tid = tostring(t.id)
    for _, role in ipairs { "maintainer", "member" } do
      for page in ctx:pages(org_path(ctx, "/teams/" .. urlencode(t.slug) .. "/members"), { role = role, per_page = PAGE }) do
        ctx:emit("group_members", page, function(u)
          return { ext_id = tid .. ":" .. u.login, group_id = tid, member_id = u.login, member_type = "user", role = role }
        end)
      end
    end
  end
end

---------------------------------------------------------------------------------------------- owners
-- Owners, then the organization roles (predefined and custom) and who holds each: the users listing of a
-- role names those holding it directly and through a team (assignment, inherited_from).
function c.streams.privileges(ctx)
  local admins = {}
  for page in ctx:pages(org_path(ctx, "/members"), { role = "admin", per_page = PAGE }) do
    ctx:emit("privileges", page, function(u)
      admins[u.login] = true
      return { ext_id = u.login .. ":owner", user_id = u.login, role = "owner", scope = ctx.settings.org }
    end)
  end
  ctx:set_admins(admins)
  -- Listing the roles needs admin:org (a token) or organization_custom_org_roles:read (an App): a 403 is
  -- that permission missing, the owners above are in; a server without organization roles answers 404.
  local resp, err, token = ctx:try("GET", org_path(ctx, "/organization-roles"), { expect_json = true })
  if not resp then
    if token == "not_found" then return end
    if token == "permission" then fail(ctx.settings.auth == "app" and "organization_custom_org_roles:read" or "admin:org", "permission") end
    fail(err, token)
  end
  for _, role in ipairs(ctx:listing(resp.data, "roles", org_path(ctx, "/organization-roles"))) do
    local rid = tostring(math.tointeger(role.id) or role.id)
    for page in ctx:pages(org_path(ctx, "/organization-roles/" .. urlencode(rid) .. "/users"), { per_page = PAGE }) do
      ctx:emit("privileges", page, function(u)
        return { ext_id = u.login .. ":org_role:" .. rid, user_id = u.login, role = role.name, scope = ctx.settings.org }
      end)
    end
  end
end

---------------------------------------------------------------------------------------------- app grants
-- SAML SSO credential authorizations (GHEC only: 404 elsewhere) and GitHub Apps installed on the org.
local function cred_row(a)
  local scopes = type(a.scopes) == "table" and table.concat(a.scopes, " ") or nil
  return {
    ext_id = "credential:" .. tostring(a.credential_id), client_id = a.credential_type, app_name = a.credential_type,
    user_id = a.login, user = a.login, scopes = scopes,
    created_at = str(a.credential_authorized_at), last_used = str(a.credential_accessed_at),
  }
end

-- A fine-grained personal access token with access to the org: its permissions as "organization.members:read".
local function pat_row(p)
  local perms = {}
  for level, set in pairs(type(p.permissions) == "table" and p.permissions or {}) do
    if type(set) == "table" then
      for k, v in pairs(set) do perms[#perms + 1] = level .. "." .. k .. ":" .. tostring(v) end
    end
  end
  table.sort(perms)
  local owner = type(p.owner) == "table" and p.owner.login or nil
  return {
    ext_id = "pat:" .. tostring(math.tointeger(p.id) or p.id), client_id = "fine-grained personal access token",
    app_name = str(p.token_name) or "fine-grained personal access token", user_id = owner, user = owner,
    scopes = table.concat(perms, " "), created_at = str(p.access_granted_at), last_used = str(p.token_last_used_at),
  }
end

local function installation_row(i)
  local perms = {}
  for k, v in pairs(type(i.permissions) == "table" and i.permissions or {}) do perms[#perms + 1] = k .. ":" .. tostring(v) end
  table.sort(perms)
  return {
    ext_id = "installation:" .. tostring(i.id), client_id = tostring(i.app_id), app_name = i.app_slug,
    scopes = table.concat(perms, " "), created_at = str(i.created_at),
  }
end

function c.streams.app_grants(ctx)
  -- SAML credential authorizations exist only for orgs with SAML SSO: others answer 404
  local ok, err = pcall(function()
    for page in ctx:pages(org_path(ctx, "/credential-authorizations"), { per_page = PAGE }) do
      ctx:emit("app_grants", page, cred_row)
    end
  end)
  if not ok and token_of(err) ~= "not_found" then error(err, 0) end
  -- Fine-grained PATs with access to the org: only a GitHub App may list them (§3).
  if ctx.settings.auth == "app" then
    for page in ctx:pages(org_path(ctx, "/personal-access-tokens"), { per_page = PAGE }) do
      ctx:emit("app_grants", page, pat_row)
    end
  end
  -- The org's app installations need admin:read (a classic or OAuth token) or organization_administration:
  -- read (a GitHub App): a 403 is that permission missing, the grants above are in.
  ok, err = pcall(function()
    for page in ctx:pages(org_path(ctx, "/installations"), { per_page = PAGE }, { items = "installations" }) do
      ctx:emit("app_grants", page, installation_row)
    end
  end)
  if not ok then
    if token_of(err) ~= "permission" then error(err, 0) end
    fail(ctx.settings.auth == "app" and "organization_administration:read" or "admin:read", "permission")
  end
end

---------------------------------------------------------------------------------------------- audit log
local SIGNIN = { oauth_authorization = true, org_credential_authorization = true, oauth_access = true }
local ADMIN = { org = true, team = true, repo = true, protected_branch = true, hook = true, integration_installation = true,
  business = true, org_credential_authorization_admin = true, personal_access_token = true, members_can_create_repos = true,
  repository_visibility_change = true, saml = true, two_factor_authentication = true, ip_allow_list = true }
local function kind_of(action)
  local fam = action:match("^([^%.]+)") or action
  if SIGNIN[fam] or fam == "user" and action:match("^user%.login") then return "signin" end
  if ADMIN[fam] then return "admin" end
  return "user"
end

local function event_row(e)
  local ms = math.tointeger(e["@timestamp"]) or math.tointeger(e.created_at)
  -- actor_location carries the country's ISO 3166-1 alpha-2 code
  local loc = type(e.actor_location) == "table" and str(e.actor_location.country_code) or nil
  return {
    ext_id = e._document_id, time = iso(ms / 1000), kind = kind_of(e.action), action = e.action,
    actor = str(e.actor), actor_id = e.actor_id and tostring(e.actor_id) or nil,
    target = str(e.user) or str(e.repo) or str(e.team), target_id = (e.user_id or e.repo_id) and tostring(e.user_id or e.repo_id) or nil,
    ip = str(e.actor_ip), location = loc, user_agent = str(e.user_agent), outcome = nil, app = "GitHub",
  }
end

-- What event_row and the cursor read of an event: the only members decoded (raw: the event's whole text).
local EVENT_FIELDS = { "_document_id", "@timestamp", "created_at", "action", "actor", "actor_id", "actor_location.country_code",
  "user", "user_id", "repo", "repo_id", "team", "actor_ip", "user_agent" }

-- Whole seconds: the audit-log search syntax takes ISO dates and date-times (`created:>=…`).
local function phrase_time(sec) return (iso(sec):gsub("%.%d+Z$", "Z")) end

-- Audit log, incremental, oldest first: the cursor is the Link rel="next" URL (an `after` cursor) while
-- there is one; the last page has none, so we then keep the last event's time and resume with
-- `created:>=` (events of that second are read again; ext_id makes them no-ops).
-- The org audit log exists on GitHub Enterprise Cloud only; any other org answers it with a plain 404
-- (as it answers a token that may not read it).  The org's plan.name, shown to its owners, tells which:
-- Raises "unavailable: needs ..." when the plan is the reason.
local function audit_log_unavailable(ctx, err)
  if token_of(err) ~= "not_found" then return end
  local resp = ctx:try("GET", org_path(ctx), { expect_json = true })
  local plan = resp and type(resp.data) == "table" and type(resp.data.plan) == "table" and str(resp.data.plan.name)
  if not plan or plan == "enterprise" then return end
  fail(("needs GitHub Enterprise Cloud: the organization audit log is an Enterprise Cloud "
    .. "feature and %s is on the %s plan"):format(ctx.settings.org, plan), "unavailable")
end

c.initial_days = 7
function c.streams.activities(ctx, cursor)
  local path, query
  if cursor and cursor:match("^https?://") then
    path = cursor
  else
    local days = tonumber(ctx.settings.initial_days) or c.initial_days
    local since = cursor or phrase_time(sched.time() - days * 86400)
    -- include=all: Git events (clone, fetch, push) as well as web and API events (web is the default)
    path, query = org_path(ctx, "/audit-log"), { phrase = "created:>=" .. since, include = "all", order = "asc", per_page = PAGE }
  end
  local resume = cursor
  local ok, err = pcall(function()
    for page, resp in ctx:pages(path, query, { max_pages = 1000000, fields = EVENT_FIELDS }) do
      local next_url = links(resp.headers["link"]).next
      if #page > 0 then
        local last = page[#page]
        local ms = math.tointeger(last["@timestamp"]) or 0
        resume = phrase_time(ms // 1000)
        ctx:checkpoint(next_url or resume, iso(ms / 1000))
        ctx:emit("activities", page, event_row)
      elseif resume then
        ctx:checkpoint(next_url or resume)
      end
    end
  end)
  if not ok then audit_log_unavailable(ctx, err); error(err, 0) end
end

c.stream_order = { users = 1, groups = 2, privileges = 3, app_grants = 4, activities = 5 }

-- Targeted re-fetch (webhooks): one user by login.  Not (or no longer) an active member: nothing to
-- emit; the next full scan marks the row deleted.
function c.fetch.users(ctx, login)
  local m = ctx:try_get(org_path(ctx, "/memberships/" .. urlencode(login)))
  if not m then return end
  if m.state ~= "active" then return end
  local no2fa = without_2fa(ctx, "/members")
  ctx:emit("users", { m.user }, function(u) return with_2fa(user_row(u, m.role == "admin", false), u, no2fa) end)
end

---------------------------------------------------------------------------------------------- governance
-- Removing a member drops them from all teams and repositories; an outside collaborator is removed from
-- every repository of the org.  github.com has no suspension for org members (only GHES site admins).
function c.actions.remove_member(ctx, user)
  local login = urlencode(user.ext_id)
  if user.external == 1 then ctx:delete(org_path(ctx, "/outside_collaborators/" .. login))
  else ctx:delete(org_path(ctx, "/members/" .. login)) end
end

-- Only SAML credential authorizations can be revoked by the org; an installed app is removed by the
-- app itself (JWT) or in the org's settings.
-- A fine-grained PAT's access to the org is revoked by a GitHub App: POST {"action": "revoke"} (204).
function c.actions.revoke_token(ctx, grant)
  local id = tostring(grant.ext_id):match("^pat:(%d+)$")
  if not id then fail("revoke_token takes a fine-grained personal access token (pat:ID)", "http") end
  ctx:post(org_path(ctx, "/personal-access-tokens/" .. id), { action = "revoke" })
end

function c.actions.revoke_grant(ctx, grant)
  if tostring(grant.ext_id):match("^pat:") then return c.actions.revoke_token(ctx, grant) end
  local id = tostring(grant.ext_id):match("^credential:(%d+)$")
  if not id then fail("only SAML credential authorizations and fine-grained PATs can be revoked through the API", "http") end
  ctx:delete(org_path(ctx, "/credential-authorizations/" .. id))
end

---------------------------------------------------------------------------------------------- webhooks
-- X-Hub-Signature-256: "sha256=" .. hex HMAC-SHA256(secret, raw body), compared in constant time (§7).
local function logins_of(event, p)
  local out = {}
  local function add(u) if type(u) == "table" and type(u.login) == "string" and u.login ~= "" then out[#out + 1] = u.login end end
  if event == "organization" then
    add(type(p.membership) == "table" and p.membership.user or nil)
  elseif event == "membership" or event == "member" then
    add(p.member)
  elseif event == "org_block" then
    add(p.blocked_user)
  end
  return out
end

-- A redelivery keeps its X-GitHub-Delivery GUID: one seen within REDELIVERY is acknowledged, not handled
-- again.  The GUID is not signed (only the body is): a replay under a new GUID can only make us re-read
-- the users it names.  Hooks must send JSON (content_type "json"), not form-encoded payloads.
local REDELIVERY = 3 * 24 * 3600

function c.webhook(ctx, req)
  local secret = ctx:secret("webhook_secret")
  if not secret then return 403, { error = "webhook secret not configured" } end
  local sig = req.headers["x-hub-signature-256"] or ""
  local want = "sha256=" .. crypto.hex(crypto.hmac_sha256(secret, req.body or ""))
  if not crypto.equal(sig, want) then return 401, { error = "bad signature" } end
  local event = req.headers["x-github-event"] or ""
  if event == "ping" then return 200, { ok = true } end
  local p, status, why = webhook.json(req)
  if not p then return status, { error = why } end
  if type(p) ~= "table" then return 400, { error = "body is not a JSON object" } end
  local guid = req.headers["x-github-delivery"]
  if guid and not webhook.first(ctx.instance .. "/github", guid, REDELIVERY) then
    return 200, { ok = true, duplicate = true }
  end
  local refetch = {}
  for _, login in ipairs(logins_of(event, p)) do refetch[#refetch + 1] = { entity = "users", id = login } end
  return 200, nil, refetch
end

return c
