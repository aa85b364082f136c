-- sandbox/github/core.lua — the GitHub tenant's class and what every API surface shares: the generated
-- organization, JSON renderings, error bodies, token auth and rate limits, Link pagination, ground truth.
-- The surfaces (auth.lua, orgs.lua, roles.lua, audit.lua, installations.lua, webhooks.lua) add their handlers.
local T = require "sandbox.tenant"

local GH = setmetatable({}, { __index = T.Base })
GH.__index = GH
GH.default_rate_limit = 5000

local function json() return T.host("json") end
local function crypto() return T.host("crypto") end
local function jnull() return json().null end
local DOCS = "https://docs.github.com/rest"

local NAMES = { "octocat", "monalisa", "hubot", "defunkt", "mojombo", "pjhyett", "wycats", "ezmobius", "ivey",
  "evanphx", "vanpelt", "wayneeseguin", "brynary", "kevinclark", "technoweenie", "macournoyer", "takeo", "caged",
  "topfunky", "anotherjesse", "roland", "lukas", "fanvsfan", "tomtt", "railsjitsu", "nitay", "kevwil", "KirinDave",
  "jamesgolick", "atmos", "errfree", "mojodna", "bmizerany", "jnewland", "joshknowles", "hornbeck", "jwhitmire",
  "elbowdonkey", "reinh", "knzai", "bs", "rsanheim", "schacon", "uggedal", "bruce", "sam", "mmower", "abhay" }
local TEAMS = { "Justice League", "Platform", "Security", "Frontend", "Backend", "Data", "Infra", "Mobile", "Docs", "Release" }
local REPOS = { "Hello-World", "api", "web", "infra", "docs", "mobile", "data-pipeline", "secrets-scanner", "design-system", "cli" }

function GH:generate()
  local seed, r = self.seed, T.rng(self.seed, "github")
  local now_s = self.t0_ms // 1000
  local st = { users = {}, by_login = {}, members = {}, outside = {}, teams = {}, repos = {}, creds = {},
               pats = {}, blocks = {}, hooks = {}, events = {}, invitations = {} }
  self.state = st
  self.org = { login = self.org_login, id = 1000 + T.below(T.hash(seed, "orgid", self.org_login), 9000000) }
  local used = {}
  local function mkuser(i, kind)
    local base = NAMES[(i - 1) % #NAMES + 1]
    local login = base
    local k = 1
    while used[login:lower()] do k = k + 1; login = base .. "-" .. k end
    used[login:lower()] = true
    local u = { login = login, id = 100000 + T.below(T.hash(seed, "uid", kind, i), 90000000), kind = kind }
    st.users[#st.users + 1] = u
    st.by_login[login:lower()] = u
    return u
  end
  for i = 1, self.nmembers do
    local u = mkuser(i, "member")
    u.role = (i == 1 or r:chance(0.08)) and "admin" or "member"
    u.state = r:chance(0.05) and i > 1 and "pending" or "active"
    u.two_factor = i == 1 or not r:chance(0.15)
    u.created = now_s - r:int(30, 1500) * 86400
    st.members[#st.members + 1] = u
  end
  for i = 1, self.noutside do
    local u = mkuser(self.nmembers + i, "outside")
    u.two_factor = not r:chance(0.3)
    st.outside[#st.outside + 1] = u
  end
  table.sort(st.members, function(a, b) return a.id < b.id end)
  table.sort(st.outside, function(a, b) return a.id < b.id end)
  self.admin = st.by_login[NAMES[1]:lower()]
  -- teams
  for i = 1, self.nteams do
    local name = TEAMS[(i - 1) % #TEAMS + 1] .. (i > #TEAMS and (" " .. i) or "")
    local t = { id = 1 + T.below(T.hash(seed, "team", i), 9000000), name = name,
                slug = name:lower():gsub("[^%w]+", "-"), privacy = r:chance(0.2) and "secret" or "closed",
                permission = r:pick({ "pull", "push", "admin" }), members = {}, description = "The " .. name .. " team." }
    for _, m in ipairs(st.members) do
      if m.state == "active" and r:chance(0.3) then t.members[m.login:lower()] = r:chance(0.15) and "maintainer" or "member" end
    end
    st.teams[#st.teams + 1] = t
  end
  table.sort(st.teams, function(a, b) return a.id < b.id end)
  -- repos with direct collaborators (outside collaborators get access here)
  for i = 1, math.max(3, math.min(#REPOS, self.nteams + 3)) do
    local vis = r:pick({ "private", "private", "internal", "public" })
    local rp = { id = 10000000 + T.below(T.hash(seed, "repo", i), 800000000), name = REPOS[i], visibility = vis,
                 created = now_s - r:int(10, 900) * 86400, collaborators = {}, archived = false }
    rp.updated = rp.created + r:int(1, 9) * 86400
    st.repos[#st.repos + 1] = rp
  end
  for _, u in ipairs(st.outside) do
    local rp = st.repos[r:int(1, #st.repos)]
    rp.collaborators[u.login:lower()] = r:pick({ "pull", "push", "triage" })
  end
  for _, m in ipairs(st.members) do
    if r:chance(0.2) then st.repos[r:int(1, #st.repos)].collaborators[m.login:lower()] = r:pick({ "push", "admin", "maintain" }) end
  end
  -- SAML credential authorizations and fine-grained PAT grants
  local cid = 160000
  for _, m in ipairs(st.members) do
    if m.state == "active" and r:chance(0.5) then
      cid = cid + r:int(1, 50)
      local at = now_s - r:int(1, 300) * 86400
      st.creds[#st.creds + 1] = { login = m.login, credential_id = cid,
        credential_type = r:chance(0.8) and "personal access token" or "SSH key",
        token_last_eight = T.hexs(8, seed, "tl8", cid), credential_authorized_at = at,
        credential_accessed_at = at + r:int(0, 86400 * 30), scopes = r:chance(0.5) and { "repo", "read:org" } or { "repo" },
        expires = r:chance(0.5) and (at + 90 * 86400) or nil }
    end
  end
  local pid = 0
  for _, m in ipairs(st.members) do
    if m.state == "active" and r:chance(0.25) then
      pid = pid + 1
      st.pats[#st.pats + 1] = { id = 25380 + pid * 7, owner = m.login, token_id = 98700 + pid, token_name = "token-" .. pid,
        repository_selection = r:pick({ "all", "subset" }), granted = now_s - r:int(1, 200) * 86400,
        last_used = now_s - r:int(0, 30) * 86400, expires = now_s + r:int(1, 300) * 86400 }
    end
  end
  -- installations
  -- the app's organization permissions (opts.app_permissions: another set, e.g. one missing a permission)
  st.installations = { { id = 25381 + T.below(T.hash(seed, "inst"), 100000), app_id = 2218, app_slug = "cachost-sandbox",
                         created = now_s - 100 * 86400, suspended = nil,
                         permissions = self.opts.app_permissions or { members = "write", organization_administration = "read",
                           metadata = "read", contents = "read", organization_personal_access_tokens = "write",
                           organization_personal_access_token_requests = "write", organization_custom_org_roles = "read" } } }
end

---------------------------------------------------------------------------------------------------
-- Rendering
---------------------------------------------------------------------------------------------------
local function isos(s) if s == nil then return jnull() end return T.iso_s(s) end

function GH:user_json(u)
  local a = self.base_url .. "/users/" .. u.login
  return { login = u.login, id = u.id, node_id = crypto().b64("04:User" .. u.id), avatar_url = "https://avatars.githubusercontent.com/u/" .. u.id .. "?v=4",
           gravatar_id = "", url = a, html_url = self.web_url .. "/" .. u.login, followers_url = a .. "/followers",
           following_url = a .. "/following{/other_user}", gists_url = a .. "/gists{/gist_id}",
           starred_url = a .. "/starred{/owner}{/repo}", subscriptions_url = a .. "/subscriptions",
           organizations_url = a .. "/orgs", repos_url = a .. "/repos", events_url = a .. "/events{/privacy}",
           received_events_url = a .. "/received_events", type = "User", site_admin = false }
end

function GH:org_json(full)
  local o = self.org
  local b = self.base_url .. "/orgs/" .. o.login
  local j = { login = o.login, id = o.id, node_id = crypto().b64("04:Organization" .. o.id), url = b, repos_url = b .. "/repos",
              events_url = b .. "/events", hooks_url = b .. "/hooks", issues_url = b .. "/issues",
              members_url = b .. "/members{/member}", public_members_url = b .. "/public_members{/member}",
              avatar_url = "https://avatars.githubusercontent.com/u/" .. o.id .. "?v=4", description = "" }
  if full then
    j.name = o.login; j.html_url = self.web_url .. "/" .. o.login; j.type = "Organization"
    j.created_at = T.iso_s(self.t0_ms // 1000 - 2000 * 86400); j.updated_at = T.iso_s(self.t0_ms // 1000 - 86400)
    j.public_repos = 0; j.total_private_repos = #self.state.repos; j.two_factor_requirement_enabled = false
    j.members_can_create_repositories = true; j.default_repository_permission = "read"
    j.plan = { name = self.plan, space = 976562499, private_repos = 999999, filled_seats = #self.state.members,
               seats = self.plan == "free" and 0 or 1000 }
  end
  return j
end

function GH:team_json(t)
  local b = self.base_url .. "/organizations/" .. self.org.id .. "/team/" .. t.id
  return { id = t.id, node_id = crypto().b64("04:Team" .. t.id), url = b, html_url = self.web_url .. "/orgs/" .. self.org.login .. "/teams/" .. t.slug,
           name = t.name, slug = t.slug, description = t.description, privacy = t.privacy, notification_setting = "notifications_enabled",
           permission = t.permission, members_url = b .. "/members{/member}", repositories_url = b .. "/repos", parent = jnull() }
end

function GH:repo_json(rp)
  local full = self.org.login .. "/" .. rp.name
  local b = self.base_url .. "/repos/" .. full
  local owner = self:org_owner_json()
  return { id = rp.id, node_id = crypto().b64("010:Repository" .. rp.id), name = rp.name, full_name = full, owner = owner,
           private = rp.visibility ~= "public", html_url = self.web_url .. "/" .. full, description = jnull(), fork = false,
           url = b, collaborators_url = b .. "/collaborators{/collaborator}", teams_url = b .. "/teams", hooks_url = b .. "/hooks",
           contents_url = b .. "/contents/{+path}", archived = rp.archived, disabled = false, visibility = rp.visibility,
           pushed_at = isos(rp.updated), created_at = isos(rp.created), updated_at = isos(rp.updated),
           default_branch = "main", permissions = { admin = true, maintain = true, push = true, triage = true, pull = true } }
end

function GH:org_owner_json()
  local j = self:user_json({ login = self.org.login, id = self.org.id })
  j.type = "Organization"
  j.node_id = crypto().b64("04:Organization" .. self.org.id)
  return j
end

function GH:membership_json(u)
  local b = self.base_url .. "/orgs/" .. self.org.login
  return { url = b .. "/memberships/" .. u.login, state = u.state, role = u.role, organization_url = b,
           organization = self:org_json(false), user = self:user_json(u) }
end

---------------------------------------------------------------------------------------------------
-- Errors, auth, rate limits
---------------------------------------------------------------------------------------------------
function GH:err(status, message, doc)
  return status, { message = message, documentation_url = doc or DOCS, status = tostring(status) },
         { ["Content-Type"] = "application/json; charset=utf-8" }
end
function GH:not_found() return self:err(404, "Not Found", "https://docs.github.com/rest") end
-- An Enterprise-Cloud-only route on an org of another plan: GitHub answers a plain 404, its
-- documentation_url the route's page; the org's plan.name tells why.
function GH:cloud_only(doc) return self:err(404, "Not Found", "https://docs.github.com/rest/" .. doc) end

-- REST API versions (GET /versions): a request without X-GitHub-Api-Version gets 2022-11-28; a version
-- GitHub does not serve is refused with 400 (docs: "API Versions").
GH.API_VERSIONS = { "2022-11-28", "2026-03-10" }
local SERVED = {}
for _, v in ipairs(GH.API_VERSIONS) do SERVED[v] = true end
GH.DEFAULT_VERSION = "2022-11-28"

-- The API answers JSON only: an Accept that admits no JSON media type (application/vnd.github+json, its
-- v3 and preview forms, application/json, */*) is refused with 415.
local function accepts_json(accept)
  if not accept or accept == "" then return true end
  for range in accept:gmatch("[^,]+") do
    local mt = range:match("^%s*([^;%s]+)")
    mt = mt and mt:lower()
    if mt == "*/*" or mt == "application/*" or mt == "application/json"
       or (mt and mt:match("^application/vnd%.github[%w%.%-]*%+json$")) or mt == "application/vnd.github+json" then
      return true
    end
  end
  return false
end

-- What the clients sent, per request: X-GitHub-Api-Version (or "none") and Accept, counted.
function GH:note_request(req)
  local v = req.headers["x-github-api-version"] or "none"
  local a = req.headers["accept"] or "none"
  self.sent_versions[v] = (self.sent_versions[v] or 0) + 1
  self.sent_accept[a] = (self.sent_accept[a] or 0) + 1
end

function GH:precheck(req, ropts)
  if ropts.noauth then return nil end
  local limit, remaining, reset, exceeded, used = self:rate_take("core")
  req._rl = { limit, remaining, reset, used }
  if not req.headers["user-agent"] or req.headers["user-agent"] == "" then
    return 403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
           { ["Content-Type"] = "text/plain; charset=utf-8" }
  end
  self:note_request(req)
  local version = req.headers["x-github-api-version"]
  if version and not SERVED[version] then
    return self:err(400, ("Unsupported 'X-GitHub-Api-Version': %s"):format(version),
      "https://docs.github.com/rest/about-the-rest-api/api-versions")
  end
  req._version = version or GH.DEFAULT_VERSION
  if not accepts_json(req.headers["accept"]) then
    return self:err(415, ("Unsupported 'Accept' header: [%q]. Must accept 'application/json'."):format(req.headers["accept"]),
      "https://docs.github.com/rest/using-the-rest-api/getting-started-with-the-rest-api#media-types")
  end
  if ropts.basic then return nil end   -- the handler checks client_id:secret itself
  local auth = req.headers["authorization"]
  if not auth then return self:err(401, "Requires authentication") end
  local scheme, cred = auth:match("^(%S+)%s+(%S+)%s*$")
  scheme = scheme and scheme:lower()
  if scheme ~= "bearer" and scheme ~= "token" then return self:err(401, "Bad credentials") end
  -- a GitHub App JWT is only valid on /app routes
  if ropts.app_jwt then
    local ok, e = self:verify_app_jwt(cred)
    if not ok then return self:err(401, e or "A JSON web token could not be decoded") end
    return nil
  end
  local tk = self:find_token(cred)
  if not tk then return self:err(401, "Bad credentials") end
  req.token = tk
  self.token_kinds[tk.kind] = (self.token_kinds[tk.kind] or 0) + 1
  -- an installation token reaches what its app's permissions allow (the route's `app`, "name:level")
  if tk.kind == "installation" and ropts.app then
    local name, level = ropts.app:match("^([%w_]+):(%a+)$")
    local have = tk.permissions and tk.permissions[name]
    local ok = have == "admin" or have == "write" or (have == "read" and level == "read")
    if not ok then
      local st, body, hdr = self:err(403, "Resource not accessible by integration")
      hdr["X-Accepted-GitHub-Permissions"] = name .. "=" .. level
      return st, body, hdr
    end
  end
  req.actor = self.state.by_login[(tk.login or ""):lower()] or { login = tk.login or "cachost-sandbox[bot]", id = 1 }
  if exceeded then
    local st, body, hdr = self:err(403, "API rate limit exceeded for user ID " .. req.actor.id .. ". If you reach out to GitHub Support for help, please include the request ID.",
      "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
    return st, body, hdr
  end
  return nil
end

function GH:decorate(req, status, hdr)
  local rl = req._rl
  if rl then
    hdr["x-ratelimit-limit"] = tostring(rl[1]); hdr["x-ratelimit-remaining"] = tostring(rl[2])
    hdr["x-ratelimit-used"] = tostring(rl[4]); hdr["x-ratelimit-reset"] = tostring(rl[3])
    hdr["x-ratelimit-resource"] = "core"
  end
  if req.token and req.token.scopes then
    hdr["X-OAuth-Scopes"] = req.token.scopes
    hdr["X-Accepted-OAuth-Scopes"] = req._accepted or ""
  end
  hdr["X-GitHub-Media-Type"] = "github.v3; format=json"
  hdr["X-GitHub-Api-Version-Selected"] = req._version or GH.DEFAULT_VERSION
  self.nreq = (self.nreq or 0) + 1
  hdr["X-GitHub-Request-Id"] = T.hexs(8, self.seed, "rid", self.nreq):upper() .. ":" .. T.hexs(6, self.seed, "rid2", self.nreq):upper()
  hdr["Content-Type"] = hdr["Content-Type"] or "application/json; charset=utf-8"
end

function GH:fault_response(f, req)
  local k = f.kind
  local ra = f.retry_after or 1
  local st, body, hdr
  local reset = self:wall_s() + math.ceil(ra)
  if k == "429" or k == "primary" then
    st, body, hdr = self:err(k == "429" and 429 or 403, "API rate limit exceeded for user ID 1.",
      "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
    hdr["x-ratelimit-limit"] = tostring(self.rate.limit); hdr["x-ratelimit-remaining"] = "0"
    hdr["x-ratelimit-used"] = tostring(self.rate.limit); hdr["x-ratelimit-reset"] = tostring(reset)
    hdr["x-ratelimit-resource"] = "core"
    if k == "429" then hdr["retry-after"] = tostring(ra) end
  elseif k == "secondary" or k == "403" then
    st, body, hdr = self:err(403, "You have exceeded a secondary rate limit and have been temporarily blocked from content creation. Please retry your request again later.",
      "https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits")
    hdr["retry-after"] = tostring(ra)
  elseif k == "502" then
    st, body, hdr = self:err(502, "Server Error")
  elseif k == "503" then
    st, body, hdr = self:err(503, "Service Unavailable")
  else
    st, body, hdr = self:err(500, "Server Error")
  end
  body.status = nil
  return st, json().encode(body), hdr
end

---------------------------------------------------------------------------------------------------
-- Pagination
---------------------------------------------------------------------------------------------------
-- page a list with per_page/page; link path is the /organizations/{id}/... form GitHub emits
function GH:paged(req, link_path, list, render, extra)
  local per = T.intparam(req.query.per_page, 30, 1, 100) or 30
  local page = T.intparam(req.query.page, 1, 1) or 1
  local total = #list
  local last = math.max(1, (total + per - 1) // per)
  local out = {}
  for i = (page - 1) * per + 1, math.min(total, page * per) do out[#out + 1] = render(list[i]) end
  local hdr = {}
  if total > per then
    local function url(p)
      local l = {}
      for _, kv in ipairs(extra or {}) do l[#l + 1] = kv end
      if req.query.per_page then l[#l + 1] = { "per_page", tostring(per) } end
      l[#l + 1] = { "page", tostring(p) }
      return self.base_url .. link_path .. "?" .. T.qs(l)
    end
    local links = {}
    if page > 1 then links[#links + 1] = { url(page - 1), "prev" } end
    if page < last then links[#links + 1] = { url(page + 1), "next" }; links[#links + 1] = { url(last), "last" } end
    if page > 1 then links[#links + 1] = { url(1), "first" } end
    if #links > 0 then hdr.Link = T.link(links) end
  end
  return 200, json().array(out), hdr
end

---------------------------------------------------------------------------------------------------
-- Ground truth
---------------------------------------------------------------------------------------------------
function GH:count(what)
  local st = self.state
  if what == "members" or what == "users" then return #st.members
  elseif what == "outside_collaborators" then return #st.outside
  elseif what == "teams" then return #st.teams
  elseif what == "repos" then return #st.repos
  elseif what == "credential_authorizations" then return #st.creds
  elseif what == "audit_events" or what == "events" then return self.naudit + #st.events
  elseif what == "stored_events" then return #st.events
  elseif what == "admins" then
    local n = 0
    for _, m in ipairs(st.members) do if m.role == "admin" then n = n + 1 end end
    return n
  end
  error("count: unknown " .. tostring(what))
end

-- Ground truth by entity, as the ids a complete sync keys rows by (logins; team ids; "team:login";
-- "login:owner" and "login:org_role:id"; "credential:id" and "installation:id" (fine-grained PATs only
-- reach a GitHub App); audit _document_id): the kill suite compares stores with it.  Pending invitees
-- are not members yet.
function GH:truth()
  local st = self.state
  local t = { users = {}, groups = {}, group_members = {}, privileges = {}, app_grants = {}, activities = {} }
  for _, m in ipairs(st.members) do
    if m.state == "active" then
      t.users[#t.users + 1] = m.login
      if m.role == "admin" then t.privileges[#t.privileges + 1] = m.login .. ":owner" end
    end
  end
  for _, m in ipairs(st.outside) do t.users[#t.users + 1] = m.login end
  for _, tm in ipairs(st.teams) do
    t.groups[#t.groups + 1] = tostring(tm.id)
    for _, m in ipairs(st.members) do
      if tm.members[m.login:lower()] then t.group_members[#t.group_members + 1] = tm.id .. ":" .. m.login end
    end
  end
  for _, r in ipairs(self:org_roles()) do
    for _, h in ipairs(self:role_holders(r)) do t.privileges[#t.privileges + 1] = h.user.login .. ":org_role:" .. r.id end
  end
  for _, c in ipairs(st.creds) do t.app_grants[#t.app_grants + 1] = "credential:" .. c.credential_id end
  for _, i in ipairs(st.installations) do t.app_grants[#t.app_grants + 1] = "installation:" .. i.id end
  for i = 0, self.naudit - 1 do t.activities[#t.activities + 1] = T.b62(22, self.seed, "doc", i) end
  for _, rec in ipairs(st.events) do t.activities[#t.activities + 1] = rec.ev._document_id end
  return t
end

function GH:member(login)
  for i, m in ipairs(self.state.members) do if m.login:lower() == login:lower() then return m, i end end
end
function GH:outside(login)
  for i, m in ipairs(self.state.outside) do if m.login:lower() == login:lower() then return m, i end end
end

---------------------------------------------------------------------------------------------------
-- Handlers
---------------------------------------------------------------------------------------------------
function GH:org_ok(req)
  local o = (req.params.org or ""):lower()
  return o == self.org.login:lower() or o == tostring(self.org.id)
end

local function guard(fn)
  return function(self, req)
    if not self:org_ok(req) then return self:not_found() end
    return fn(self, req)
  end
end

function GH:mpath(rest) return "/organizations/" .. self.org.id .. rest end

function GH:h_versions() return 200, json().array(T.deep(GH.API_VERSIONS)) end

function GH:h_rate_limit(req)
  local r = self.rates and self.rates.core
  local limit = self.rate.limit
  local used = r and math.min(r.used, limit) or 0
  local reset = r and (r.window_start + self.rate.window) or (self:wall_s() + self.rate.window)
  local core = { limit = limit, remaining = limit - used, reset = reset, used = used }
  return 200, { resources = { core = core, search = { limit = 30, remaining = 30, reset = reset, used = 0 },
                              graphql = { limit = 5000, remaining = 5000, reset = reset, used = 0 } }, rate = core }
end


GH.lib = { json = json, crypto = crypto, jnull = jnull, isos = isos, guard = guard, DOCS = DOCS }
return GH
