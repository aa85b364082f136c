-- sandbox/github.lua — a GitHub organization emulator (REST API + OAuth web flow), following
-- /work/shared/api/github.md: Bearer/token auth, per_page/page Link pagination, audit-log cursors
-- (after/before, phrase, order), x-ratelimit-* headers, primary and secondary limits, org webhooks
-- signed with X-Hub-Signature-256, and governance calls that change state and write the audit log.
--
--   local github = require "sandbox.github"
--   local t = github.new{seed=1, org="acme", members=40, teams=5, outside_collaborators=6, audit_events=500}
--   t:mount(srv[, prefix])
local T = require "sandbox.tenant"

local M = {}
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
local AUDIT_ACTIONS = {   -- cumulative weights
  { 0.20, "repo.access" }, { 0.35, "team.add_member" }, { 0.45, "repo.create" }, { 0.55, "org.add_member" },
  { 0.62, "oauth_authorization.create" }, { 0.70, "org_credential_authorization.grant" }, { 0.78, "repo.add_member" },
  { 0.84, "team.remove_member" }, { 0.89, "org.update_member" }, { 0.93, "protected_branch.update" },
  { 0.97, "repo.destroy" }, { 1.01, "org.invite_member" },
}
local COUNTRIES = { "United States of America", "Germany", "United Kingdom", "Canada", "France", "Japan", "Brazil" }

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, GH)
  T.Base.init(self, opts)
  self.org_login = opts.org or "acme"
  self.token = opts.token or "ghp_sandboxtoken0000000000000000000000"
  self.token_scopes = opts.token_scopes or "admin:org, read:audit_log, repo"
  -- the org's plan (plan.name of GET /orgs/{org}): "enterprise" (GitHub Enterprise Cloud), "team" or
  -- "free".  The audit log and SAML credential authorizations exist on Enterprise Cloud only.
  self.plan = opts.plan or "enterprise"
  self.nmembers = opts.members or 40
  self.nteams = opts.teams or 5
  self.noutside = opts.outside_collaborators or 6
  self.naudit = opts.audit_events or 500
  self.days = opts.days or 30
  -- OAuth apps for the web flow: {client_id=, client_secret=, name=}
  self.oauth_apps = {}
  for _, a in ipairs(opts.oauth_apps or (opts.oauth_app and { opts.oauth_app }) or {}) do self.oauth_apps[a.client_id] = a end
  -- GitHub App (installation tokens via RS256 JWT): {app_id=, client_id=, public_key=PEM}
  self.app = opts.app
  self.tokens = {}            -- issued tokens -> {login=, scopes=, client_id=, kind=, exp=}
  self.codes = {}
  self.seq = 0
  self:generate()
  return self
end

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
  st.installations = { { id = 25381 + T.below(T.hash(seed, "inst"), 100000), app_id = 2218, app_slug = "cachost-sandbox",
                         created = now_s - 100 * 86400, suspended = nil } }
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

function GH:find_token(cred)
  if crypto().equal(cred, self.token) then
    return { login = self.admin.login, scopes = self.token_scopes, kind = "pat" }
  end
  local t = self.tokens[cred]
  if t and (not t.exp or t.exp > self:wall_s()) then return t end
end

function GH:precheck(req, ropts)
  if ropts.noauth then return nil end
  local limit, remaining, reset, exceeded, used = self:rate_take("core")
  req._rl = { limit, remaining, reset, used }
  if not req.headers["user-agent"] or req.headers["user-agent"] == "" then
    return 403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
           { ["Content-Type"] = "text/plain; charset=utf-8" }
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
  hdr["X-GitHub-Api-Version-Selected"] = "2022-11-28"
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

function GH:verify_app_jwt(jwt)
  if not self.app then return nil, "A JSON web token could not be decoded" end
  local cr = crypto()
  local h64, p64, s64 = jwt:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  if not h64 then return nil, "A JSON web token could not be decoded" end
  local header = json().decode(cr.unb64url(h64) or "")
  local claims = json().decode(cr.unb64url(p64) or "")
  if type(header) ~= "table" or type(claims) ~= "table" or header.alg ~= "RS256" then return nil, "A JSON web token could not be decoded" end
  if tostring(claims.iss) ~= tostring(self.app.app_id) and tostring(claims.iss) ~= tostring(self.app.client_id) then
    return nil, "'Issuer' claim ('iss') must be an Integer"
  end
  if not cr.rs256_verify(self.app.public_key, h64 .. "." .. p64, cr.unb64url(s64) or "") then
    return nil, "A JSON web token could not be decoded"
  end
  local now = self:wall_s()
  if type(claims.exp) ~= "number" or claims.exp <= now then return nil, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires" end
  if claims.exp - (claims.iat or now) > 600 + 60 then return nil, "'Expiration time' claim ('exp') is too far in the future" end
  return true
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
-- Audit log: generated (pure in (seed, i)) + stored events
---------------------------------------------------------------------------------------------------
function GH:gen_ms(i)
  local span = self.days * 86400000
  local u = T.unit(T.hash(self.seed, "audt", i))
  return self.t0_ms - span + math.floor((i + u) * span / self.naudit)
end

function GH:gen_audit(i)
  local seed = self.seed
  local x = T.unit(T.hash(seed, "auda", i))
  local action = "repo.access"
  for _, w in ipairs(AUDIT_ACTIONS) do if x < w[1] then action = w[2]; break end end
  local ms = self:gen_ms(i)
  local members = self.state.members
  local actor = members[T.below(T.hash(seed, "audactor", i), #members) + 1]
  local ev = { ["@timestamp"] = ms, _document_id = T.b62(22, seed, "doc", i), action = action, actor = actor.login,
               actor_id = actor.id, actor_location = { country_name = COUNTRIES[T.below(T.hash(seed, "cc", i), #COUNTRIES) + 1] },
               created_at = ms, org = self.org.login, org_id = self.org.id, operation_type = "modify" }
  local fam = action:match("^(%w+)")
  if fam == "repo" or action == "protected_branch.update" then
    local rp = self.state.repos[T.below(T.hash(seed, "audrepo", i), #self.state.repos) + 1]
    ev.repo = self.org.login .. "/" .. rp.name; ev.repo_id = rp.id; ev.visibility = rp.visibility
  end
  if fam == "team" then
    local t = self.state.teams[T.below(T.hash(seed, "audteam", i), math.max(1, #self.state.teams)) + 1]
    if t then ev.team = self.org.login .. "/" .. t.slug end
  end
  if fam == "team" or action:find("member") then
    local u = members[T.below(T.hash(seed, "auduser", i), #members) + 1]
    ev.user = u.login; ev.user_id = u.id
  end
  if action == "oauth_authorization.create" then ev.oauth_application_name = "Sandbox OAuth App" end
  if action == "org_credential_authorization.grant" then ev.credential_type = "personal access token" end
  return ev
end

-- store an audit event {action=, actor=, user=, repo=, team=, ...extra}
function GH:add_event(spec)
  self.seq = self.seq + 1
  local ms = spec.ms or self:now_ms()
  local actor = spec.actor and (self.state.by_login[spec.actor:lower()] or { login = spec.actor, id = 0 }) or self.admin
  local ev = { ["@timestamp"] = ms, _document_id = T.b62(22, self.seed, "sdoc", self.seq), action = spec.action,
               actor = actor.login, actor_id = actor.id, actor_location = { country_name = spec.country or "United States of America" },
               created_at = ms, org = self.org.login, org_id = self.org.id }
  for k, v in pairs(spec) do
    if k ~= "ms" and k ~= "actor" and k ~= "country" then ev[k] = v end
  end
  if spec.user and not ev.user_id then
    local u = self.state.by_login[spec.user:lower()]
    if u then ev.user_id = u.id end
  end
  T.insert_sorted(self.state.events, { ms = ms, seq = self.seq, ev = ev })
  return ev
end

-- phrase: space-separated qualifiers key:value (action, actor, user, repo, team, org, created, country),
-- '-' negates; created supports >, >=, <, <=, and a..b ranges on dates.
local function phrase_filter(phrase)
  if not phrase or phrase == "" then return nil end
  local preds = {}
  for tok in phrase:gmatch("%S+") do
    local neg = tok:sub(1, 1) == "-"
    if neg then tok = tok:sub(2) end
    local k, v = tok:match("^([%w_]+):(.+)$")
    local p
    if k == "created" or k == "@timestamp" then
      local op, d = v:match("^([<>]=?)(.+)$")
      local a, b = v:match("^(.-)%.%.(.+)$")
      if op then
        local t = T.parse_iso(d)
        if not t then return nil, "created" end
        p = function(e)
          local x = e["@timestamp"]
          if op == ">" then return x > t elseif op == ">=" then return x >= t elseif op == "<" then return x < t else return x <= t end
        end
      elseif a then
        local ta, tb = T.parse_iso(a), T.parse_iso(b)
        if not ta or not tb then return nil, "created" end
        p = function(e) return e["@timestamp"] >= ta and e["@timestamp"] < tb + 86400000 end
      else
        local t = T.parse_iso(v)
        if not t then return nil, "created" end
        p = function(e) return e["@timestamp"] >= t and e["@timestamp"] < t + 86400000 end
      end
    elseif k then
      local key = k == "country" and nil or k
      local want = v:lower()
      p = function(e)
        local x = key and e[key] or (e.actor_location and e.actor_location.country_name)
        if x == nil then return false end
        x = tostring(x):lower()
        if key == "action" and not want:find("%.") then return x:match("^[^%.]+") == want end
        return x == want
      end
    else
      local w = tok:lower()
      p = function(e) return (e.action or ""):lower():find(w, 1, true) ~= nil end
    end
    preds[#preds + 1] = neg and function(e) return not p(e) end or p
  end
  return function(e)
    for _, p in ipairs(preds) do if not p(e) then return false end end
    return true
  end
end

local function enc_cursor(key)
  return crypto().b64url(string.format("%d|%d|%d", key[1], key[2], key[3]))
end
local function dec_cursor(s)
  local raw = crypto().unb64url(s or "")
  if not raw then return nil end
  local a, b, c = raw:match("^(%-?%d+)|(%d+)|(%d+)$")
  if not a then return nil end
  return { math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c)) }
end

function GH:h_audit(req)
  local q = req.query
  local per = T.intparam(q.per_page, 30, 1, 100) or 30
  local order = (q.order or "desc"):lower()
  if order ~= "asc" and order ~= "desc" then return self:err(422, "Validation Failed") end
  local pred, perr = phrase_filter(q.phrase)
  if perr then return self:err(422, "Invalid phrase: " .. perr) end
  local now = self:now_ms()
  local K, dir
  local after, before = q.after, q.before
  local reverse = false      -- walking "before" goes against the listing order, then flips
  if after and after ~= "" then
    K = dec_cursor(after)
    if not K then return self:err(422, "Invalid cursor") end
    dir = order == "desc" and -1 or 1
  elseif before and before ~= "" then
    K = dec_cursor(before)
    if not K then return self:err(422, "Invalid cursor") end
    dir = order == "desc" and 1 or -1
    reverse = true
  else
    if order == "desc" then K, dir = { now + 1, 9, 0 }, -1 else K, dir = { -1, 0, 0 }, 1 end
  end
  local out, keys = {}, {}
  local more = false
  T.merged_scan(self.naudit, function(i) return self:gen_ms(i) end, function(i) return self:gen_audit(i) end,
    self.state.events, K, dir, function(ms, key, get)
      if ms > now then return dir > 0 end   -- nothing from the future
      local ev = get()
      if pred and not pred(ev) then return false end
      if #out >= per then more = true; return true end
      out[#out + 1] = ev; keys[#keys + 1] = key
      return false
    end)
  if reverse then
    local n = #out
    for i = 1, n // 2 do out[i], out[n - i + 1] = out[n - i + 1], out[i]; keys[i], keys[n - i + 1] = keys[n - i + 1], keys[i] end
  end
  local function url(kind, cur)
    local l = {}
    if q.phrase then l[#l + 1] = { "phrase", q.phrase } end
    if q.include then l[#l + 1] = { "include", q.include } end
    if q.order then l[#l + 1] = { "order", q.order } end
    if q.per_page then l[#l + 1] = { "per_page", tostring(per) } end
    if kind then l[#l + 1] = { kind, cur } end
    return self.base_url .. "/organizations/" .. self.org.id .. "/audit-log" .. (#l > 0 and ("?" .. T.qs(l)) or "")
  end
  local links = {}
  local has_next = (not reverse and more) or (reverse and #out > 0)
  local has_prev = (reverse and more) or (not reverse and (after and after ~= "") and #out > 0)
  if has_prev then links[#links + 1] = { url("before", enc_cursor(keys[1])), "prev" } end
  if has_next and #keys > 0 then links[#links + 1] = { url("after", enc_cursor(keys[#keys])), "next" } end
  links[#links + 1] = { url(nil), "first" }
  return 200, json().array(out), { Link = T.link(links) }
end

---------------------------------------------------------------------------------------------------
-- Webhooks
---------------------------------------------------------------------------------------------------
function GH:hook_json(h)
  local b = self.base_url .. "/orgs/" .. self.org.login .. "/hooks/" .. h.id
  return { id = h.id, url = b, ping_url = b .. "/pings", deliveries_url = b .. "/deliveries", name = "web",
           events = json().array(T.deep(h.events)), active = h.active,
           config = { url = h.url, content_type = h.content_type or "json", insecure_ssl = "0", secret = h.secret and "********" or nil },
           updated_at = isos(h.updated), created_at = isos(h.created), type = "Organization" }
end

function GH:create_hook(spec)
  local n = #self.state.hooks + 1
  local h = { id = 400000000 + T.below(T.hash(self.seed, "hook", n), 99999999), url = spec.url, secret = spec.secret,
              events = spec.events or { "organization", "member", "membership", "team", "repository", "org_block" },
              active = spec.active ~= false, content_type = spec.content_type or "json",
              created = self:now_ms() // 1000 }
  h.updated = h.created
  self.state.hooks[#self.state.hooks + 1] = h
  self:send_one(h, "ping", { zen = "Anything added dilutes everything else.", hook_id = h.id, hook = self:hook_json(h),
                             organization = self:org_json(false), sender = self:user_json(self.admin) })
  return h
end

function GH:send_one(h, event, payload)
  self.ndeliv = (self.ndeliv or 0) + 1
  local body = json().encode(payload)
  local headers = { ["Content-Type"] = "application/json", ["User-Agent"] = "GitHub-Hookshot/sandbox",
                    ["X-GitHub-Event"] = event, ["X-GitHub-Delivery"] = T.uuid(self.seed, "delivery", self.ndeliv),
                    ["X-GitHub-Hook-ID"] = tostring(h.id), ["X-GitHub-Hook-Installation-Target-Type"] = "organization",
                    ["X-GitHub-Hook-Installation-Target-ID"] = tostring(self.org.id) }
  if h.secret and h.secret ~= "" then
    local cr = crypto()
    headers["X-Hub-Signature-256"] = "sha256=" .. cr.hex(cr.hmac_sha256(h.secret, body))
    headers["X-Hub-Signature"] = "sha1=" .. cr.hex(cr.hmac_sha1(h.secret, body))
  end
  -- GitHub does not retry failed deliveries by itself
  return self:deliver{ url = h.url, headers = headers, body = body, event = event, retries = 0, hook = h.id }
end

function GH:emit(event, payload)
  payload.organization = payload.organization or self:org_json(false)
  for _, h in ipairs(self.state.hooks) do
    if h.active then
      local want = false
      for _, e in ipairs(h.events) do if e == event or e == "*" then want = true; break end end
      if want then self:send_one(h, event, payload) end
    end
  end
end

function GH:webhook_target(url, secret, events)
  return self:create_hook{ url = url, secret = secret, events = events }
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
-- "login:owner"; "credential:id" and "installation:id"; audit _document_id): the kill suite compares
-- stores with it.  Pending invitees are not members yet.
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

-- incremental activity for tests: n audit events of an action by actor
function GH:simulate_activity(action, n, spec)
  local out = {}
  for _ = 1, n or 1 do
    local s = T.shallow(spec or {})
    s.action = action
    out[#out + 1] = self:add_event(s)
  end
  return out
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

GH.h_org = guard(function(self) return 200, self:org_json(true) end)

GH.h_members = guard(function(self, req)
  local role, filter = req.query.role or "all", req.query.filter or "all"
  local sel = {}
  for _, m in ipairs(self.state.members) do
    if m.state == "active" and (role == "all" or m.role == role) and (filter ~= "2fa_disabled" or not m.two_factor) then
      sel[#sel + 1] = m
    end
  end
  local extra = {}
  if req.query.role then extra[#extra + 1] = { "role", role } end
  if req.query.filter then extra[#extra + 1] = { "filter", filter } end
  return self:paged(req, self:mpath("/members"), sel, function(u) return self:user_json(u) end, extra)
end)

GH.h_member_check = guard(function(self, req)
  local m = self:member(req.params.username)
  if m and m.state == "active" then return 204, "" end
  return 404, ""
end)

function GH:remove_member(req, m, idx)
  table.remove(self.state.members, idx)
  local l = m.login:lower()
  local teams = {}
  for _, t in ipairs(self.state.teams) do if t.members[l] then t.members[l] = nil; teams[#teams + 1] = t end end
  for _, rp in ipairs(self.state.repos) do rp.collaborators[l] = nil end
  for i = #self.state.creds, 1, -1 do if self.state.creds[i].login:lower() == l then table.remove(self.state.creds, i) end end
  self:add_event{ action = "org.remove_member", actor = req.actor.login, user = m.login }
  local ms = self:membership_json(m)
  ms.organization = nil
  self:emit("organization", { action = "member_removed", membership = ms, sender = self:user_json(req.actor) })
  for _, t in ipairs(teams) do
    self:emit("membership", { action = "removed", scope = "team", member = self:user_json(m), sender = self:user_json(req.actor), team = self:team_json(t) })
  end
end

GH.h_member_delete = guard(function(self, req)
  local m, i = self:member(req.params.username)
  if not m then return self:not_found() end
  self:remove_member(req, m, i)
  return 204, ""
end)

GH.h_membership = guard(function(self, req)
  local m, i = self:member(req.params.username)
  if req.method == "GET" then
    if not m then return self:not_found() end
    return 200, self:membership_json(m)
  elseif req.method == "DELETE" then
    if not m then return self:not_found() end
    self:remove_member(req, m, i)
    return 204, ""
  end
  -- PUT: set role (invites a non-member as pending)
  local body = json().decode(req.body or "") or {}
  local role = type(body) == "table" and body.role or "member"
  if role ~= "admin" and role ~= "member" then
    return 422, { message = "Validation Failed", errors = json().array({ { resource = "OrganizationMembership", field = "role", code = "invalid" } }),
                  documentation_url = DOCS, status = "422" }
  end
  if not m then
    local u = self.state.by_login[req.params.username:lower()]
    if not u then return self:not_found() end
    local oi
    u, oi = self:outside(u.login)
    if u then table.remove(self.state.outside, oi) else u = self.state.by_login[req.params.username:lower()] end
    u.role, u.state, u.kind = role, "pending", "member"
    self.state.members[#self.state.members + 1] = u
    table.sort(self.state.members, function(a, b) return a.id < b.id end)
    self:add_event{ action = "org.invite_member", actor = req.actor.login, user = u.login }
    local ms = self:membership_json(u); ms.organization = nil
    self:emit("organization", { action = "member_invited", membership = ms, sender = self:user_json(req.actor) })
    return 200, self:membership_json(u)
  end
  if m.role ~= role then
    m.role = role
    self:add_event{ action = "org.update_member", actor = req.actor.login, user = m.login, permission = role }
  end
  return 200, self:membership_json(m)
end)

GH.h_outside = guard(function(self, req)
  local sel = {}
  for _, u in ipairs(self.state.outside) do
    if req.query.filter ~= "2fa_disabled" or not u.two_factor then sel[#sel + 1] = u end
  end
  local extra = req.query.filter and { { "filter", req.query.filter } } or nil
  return self:paged(req, self:mpath("/outside_collaborators"), sel, function(u) return self:user_json(u) end, extra)
end)

GH.h_outside_put = guard(function(self, req)
  local m, i = self:member(req.params.username)
  if not m then return self:not_found() end
  if m.role == "admin" then
    return self:err(403, "You cannot convert an organization owner to an outside collaborator.")
  end
  table.remove(self.state.members, i)
  local l = m.login:lower()
  for _, t in ipairs(self.state.teams) do t.members[l] = nil end
  m.kind, m.role, m.state = "outside", nil, nil
  self.state.outside[#self.state.outside + 1] = m
  table.sort(self.state.outside, function(a, b) return a.id < b.id end)
  self:add_event{ action = "org.remove_member", actor = req.actor.login, user = m.login }
  self:add_event{ action = "org.convert_member_to_outside_collaborator", actor = req.actor.login, user = m.login }
  local ms = { url = self.base_url .. "/orgs/" .. self.org.login .. "/memberships/" .. m.login, state = "active", role = "member",
               organization_url = self.base_url .. "/orgs/" .. self.org.login, user = self:user_json(m) }
  self:emit("organization", { action = "member_removed", membership = ms, sender = self:user_json(req.actor) })
  local body = json().decode(req.body or "")
  if type(body) == "table" and body.async == true then return 202, setmetatable({}, { __jsontype = "object" }) end
  return 204, ""
end)

GH.h_outside_delete = guard(function(self, req)
  local u, i = self:outside(req.params.username)
  if not u then
    if self:member(req.params.username) then
      return 422, { message = "You cannot specify an organization member to remove as an outside collaborator.",
                    documentation_url = DOCS, status = "422" }
    end
    return self:not_found()
  end
  table.remove(self.state.outside, i)
  local l = u.login:lower()
  for _, rp in ipairs(self.state.repos) do
    if rp.collaborators[l] then
      rp.collaborators[l] = nil
      self:emit("member", { action = "removed", member = self:user_json(u), repository = self:repo_json(rp), sender = self:user_json(req.actor) })
    end
  end
  self:add_event{ action = "org.remove_outside_collaborator", actor = req.actor.login, user = u.login }
  return 204, ""
end)

GH.h_invitations = guard(function(self, req) return self:paged(req, self:mpath("/invitations"), {}, function(x) return x end) end)

GH.h_blocks = guard(function(self, req)
  local sel = {}
  for _, u in ipairs(self.state.users) do if self.state.blocks[u.login:lower()] then sel[#sel + 1] = u end end
  return self:paged(req, self:mpath("/blocks"), sel, function(u) return self:user_json(u) end)
end)

GH.h_block = guard(function(self, req)
  local u = self.state.by_login[req.params.username:lower()]
  if not u then return self:not_found() end
  local l = u.login:lower()
  if req.method == "GET" then return self.state.blocks[l] and 204 or 404, "" end
  if req.method == "PUT" then
    if not self.state.blocks[l] then
      local m, i = self:member(u.login)
      if m then self:remove_member(req, m, i) end
      self.state.blocks[l] = true
      self:add_event{ action = "org.block_user", actor = req.actor.login, user = u.login }
      self:emit("org_block", { action = "blocked", blocked_user = self:user_json(u), sender = self:user_json(req.actor) })
    end
  else
    if self.state.blocks[l] then
      self.state.blocks[l] = nil
      self:add_event{ action = "org.unblock_user", actor = req.actor.login, user = u.login }
      self:emit("org_block", { action = "unblocked", blocked_user = self:user_json(u), sender = self:user_json(req.actor) })
    end
  end
  return 204, ""
end)

function GH:team(slug)
  for _, t in ipairs(self.state.teams) do if t.slug == slug:lower() or tostring(t.id) == slug then return t end end
end

GH.h_teams = guard(function(self, req)
  return self:paged(req, self:mpath("/teams"), self.state.teams, function(t) return self:team_json(t) end)
end)
GH.h_team = guard(function(self, req)
  local t = self:team(req.params.slug)
  if not t then return self:not_found() end
  return 200, self:team_json(t)
end)
GH.h_team_members = guard(function(self, req)
  local t = self:team(req.params.slug)
  if not t then return self:not_found() end
  local role = req.query.role or "all"
  local sel = {}
  for _, m in ipairs(self.state.members) do
    local r = t.members[m.login:lower()]
    if r and (role == "all" or role == r) then sel[#sel + 1] = m end
  end
  return self:paged(req, "/organizations/" .. self.org.id .. "/team/" .. t.id .. "/members", sel,
                    function(u) return self:user_json(u) end, req.query.role and { { "role", role } } or nil)
end)
GH.h_team_membership = guard(function(self, req)
  local t = self:team(req.params.slug)
  if not t then return self:not_found() end
  local l = req.params.username:lower()
  local role = t.members[l]
  if req.method == "GET" then
    if not role then return self:not_found() end
    return 200, { url = self.base_url .. "/organizations/" .. self.org.id .. "/team/" .. t.id .. "/memberships/" .. req.params.username,
                  role = role, state = "active" }
  end
  if not role then return self:not_found() end
  t.members[l] = nil
  local u = self.state.by_login[l]
  self:add_event{ action = "team.remove_member", actor = req.actor.login, user = u.login, team = self.org.login .. "/" .. t.slug }
  self:emit("membership", { action = "removed", scope = "team", member = self:user_json(u), sender = self:user_json(req.actor), team = self:team_json(t) })
  return 204, ""
end)

GH.h_repos = guard(function(self, req)
  local ty = req.query.type or "all"
  local sel = {}
  for _, rp in ipairs(self.state.repos) do
    if ty == "all" or ty == "sources" or ty == "member" or (ty == "public" and rp.visibility == "public")
       or (ty == "private" and rp.visibility ~= "public") or (ty == "internal" and rp.visibility == "internal") then
      sel[#sel + 1] = rp
    end
  end
  return self:paged(req, self:mpath("/repos"), sel, function(rp) return self:repo_json(rp) end)
end)

function GH:repo(req)
  if req.params.owner:lower() ~= self.org.login:lower() then return nil end
  for _, rp in ipairs(self.state.repos) do if rp.name:lower() == req.params.repo:lower() then return rp end end
end

function GH:h_collaborators(req)
  local rp = self:repo(req)
  if not rp then return self:not_found() end
  local aff = req.query.affiliation or "all"
  local sel = {}
  for _, u in ipairs(self.state.users) do
    local p = rp.collaborators[u.login:lower()]
    if p and (aff == "all" or aff == "direct" or (aff == "outside" and u.kind == "outside")) then sel[#sel + 1] = u end
  end
  local RN = { pull = "read", triage = "triage", push = "write", maintain = "maintain", admin = "admin" }
  local LVL = { pull = 1, triage = 2, push = 3, maintain = 4, admin = 5 }
  return self:paged(req, "/repositories/" .. rp.id .. "/collaborators", sel, function(u)
    local j = self:user_json(u)
    local p = rp.collaborators[u.login:lower()]
    local lv = LVL[p]
    j.permissions = { pull = lv >= 1, triage = lv >= 2, push = lv >= 3, maintain = lv >= 4, admin = lv >= 5 }
    j.role_name = RN[p]
    return j
  end)
end

function GH:h_collaborator_delete(req)
  local rp = self:repo(req)
  if not rp then return self:not_found() end
  local l = req.params.username:lower()
  if rp.collaborators[l] then
    rp.collaborators[l] = nil
    local u = self.state.by_login[l]
    self:add_event{ action = "repo.remove_member", actor = req.actor.login, user = u.login, repo = self.org.login .. "/" .. rp.name }
    self:emit("member", { action = "removed", member = self:user_json(u), repository = self:repo_json(rp), sender = self:user_json(req.actor) })
  end
  return 204, ""
end

function GH:h_repo_patch(req)
  local rp = self:repo(req)
  if not rp then return self:not_found() end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" then return self:err(400, "Problems parsing JSON") end
  local was = rp.visibility
  if body.private == true or body.visibility == "private" then rp.visibility = "private"
  elseif body.private == false or body.visibility == "public" then rp.visibility = "public"
  elseif body.visibility == "internal" then rp.visibility = "internal" end
  if body.archived ~= nil then rp.archived = body.archived == true end
  rp.updated = self:now_ms() // 1000
  if was ~= rp.visibility then
    self:add_event{ action = "repo.access", actor = req.actor.login, repo = self.org.login .. "/" .. rp.name, visibility = rp.visibility }
    local act = rp.visibility == "public" and "publicized" or (was == "public" and "privatized" or nil)
    if act then self:emit("repository", { action = act, repository = self:repo_json(rp), sender = self:user_json(req.actor) }) end
  end
  if body.archived == true then
    self:add_event{ action = "repo.archived", actor = req.actor.login, repo = self.org.login .. "/" .. rp.name }
    self:emit("repository", { action = "archived", repository = self:repo_json(rp), sender = self:user_json(req.actor) })
  end
  return 200, self:repo_json(rp)
end

GH.h_creds = guard(function(self, req)
  local sel = {}
  for _, c in ipairs(self.state.creds) do
    if not req.query.login or req.query.login == "" or c.login:lower() == req.query.login:lower() then sel[#sel + 1] = c end
  end
  return self:paged(req, self:mpath("/credential-authorizations"), sel, function(c)
    return { login = c.login, credential_id = c.credential_id, credential_type = c.credential_type,
             token_last_eight = c.credential_type == "personal access token" and c.token_last_eight or nil,
             fingerprint = c.credential_type == "SSH key" and ("jklmnop" .. c.token_last_eight) or nil,
             credential_authorized_at = isos(c.credential_authorized_at), credential_accessed_at = isos(c.credential_accessed_at),
             authorized_credential_expires_at = isos(c.expires), scopes = json().array(T.deep(c.scopes)),
             authorized_credential_id = c.credential_id + 1000000 }
  end, req.query.login and { { "login", req.query.login } } or nil)
end)

GH.h_cred_delete = guard(function(self, req)
  local id = math.tointeger(tonumber(req.params.cid))
  for i, c in ipairs(self.state.creds) do
    if c.credential_id == id then
      table.remove(self.state.creds, i)
      self:add_event{ action = "org_credential_authorization.deauthorized", actor = req.actor.login, user = c.login,
                      credential_type = c.credential_type }
      return 204, ""
    end
  end
  return self:not_found()
end)

GH.h_installations = guard(function(self, req)
  local out = {}
  for i, ins in ipairs(self.state.installations) do out[i] = self:installation_json(ins) end
  return 200, { total_count = #out, installations = json().array(out) }
end)

function GH:installation_json(ins)
  return { id = ins.id, account = self:org_owner_json(), repository_selection = "all",
           access_tokens_url = self.base_url .. "/app/installations/" .. ins.id .. "/access_tokens",
           repositories_url = self.base_url .. "/installation/repositories",
           html_url = self.web_url .. "/organizations/" .. self.org.login .. "/settings/installations/" .. ins.id,
           app_id = ins.app_id, app_slug = ins.app_slug, target_id = self.org.id, target_type = "Organization",
           permissions = { members = "write", organization_administration = "read", metadata = "read", contents = "read",
                           personal_access_tokens = "write" },
           events = json().array({ "organization", "member", "membership", "team" }),
           created_at = isos(ins.created), updated_at = isos(ins.created), single_file_name = jnull(),
           suspended_at = isos(ins.suspended), suspended_by = jnull() }
end

GH.h_pats = guard(function(self, req)
  return self:paged(req, self:mpath("/personal-access-tokens"), self.state.pats, function(p)
    local u = self.state.by_login[p.owner:lower()]
    return { id = p.id, owner = self:user_json(u), repository_selection = p.repository_selection,
             repositories_url = self.base_url .. "/organizations/" .. self.org.id .. "/personal-access-tokens/" .. p.id .. "/repositories",
             permissions = { organization = { members = "read" }, repository = { metadata = "read", contents = "read" } },
             access_granted_at = isos(p.granted), token_id = p.token_id, token_name = p.token_name, token_expired = false,
             token_expires_at = isos(p.expires), token_last_used_at = isos(p.last_used) }
  end)
end)

GH.h_pats_revoke = guard(function(self, req)
  local body = json().decode(req.body or "")
  if type(body) ~= "table" or body.action ~= "revoke" then
    return 422, { message = "Validation Failed", errors = json().array({ { resource = "PersonalAccessToken", field = "action", code = "invalid" } }), documentation_url = DOCS, status = "422" }
  end
  local ids = {}
  if req.params.pat_id then ids[math.tointeger(tonumber(req.params.pat_id)) or -1] = true
  else for _, v in ipairs(body.pat_ids or {}) do ids[math.tointeger(v) or -1] = true end end
  local found = false
  for i = #self.state.pats, 1, -1 do
    local p = self.state.pats[i]
    if ids[p.id] then
      found = true
      table.remove(self.state.pats, i)
      self:add_event{ action = "personal_access_token.access_revoked", actor = req.actor.login, user = p.owner }
    end
  end
  if not found then return self:not_found() end
  return 202, setmetatable({}, { __jsontype = "object" })
end)

function GH:h_hooks(req)
  if not self:org_ok(req) then return self:not_found() end
  if req.method == "GET" then
    local out = {}
    for i, h in ipairs(self.state.hooks) do out[i] = self:hook_json(h) end
    return 200, json().array(out)
  end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" or type(body.config) ~= "table" or type(body.config.url) ~= "string" then
    return 422, { message = "Validation Failed", errors = json().array({ { resource = "Hook", field = "config", code = "missing_field" } }), documentation_url = DOCS, status = "422" }
  end
  local h = self:create_hook{ url = body.config.url, secret = body.config.secret, events = body.events or { "push" },
                              active = body.active, content_type = body.config.content_type }
  return 201, self:hook_json(h)
end

function GH:h_hook_delete(req)
  if not self:org_ok(req) then return self:not_found() end
  for i, h in ipairs(self.state.hooks) do
    if tostring(h.id) == req.params.hook_id then table.remove(self.state.hooks, i); return 204, "" end
  end
  return self:not_found()
end

function GH:h_rate_limit(req)
  local r = self.rates and self.rates.core
  local limit = self.rate.limit
  local used = r and math.min(r.used, limit) or 0
  local reset = r and (r.window_start + self.rate.window) or (self:wall_s() + self.rate.window)
  local core = { limit = limit, remaining = limit - used, reset = reset, used = used }
  return 200, { resources = { core = core, search = { limit = 30, remaining = 30, reset = reset, used = 0 },
                              graphql = { limit = 5000, remaining = 5000, reset = reset, used = 0 } }, rate = core }
end

function GH:h_user(req)
  local j = self:user_json(req.actor)
  j.name = req.actor.login
  return 200, j
end

-- OAuth web flow (auto-approved): authorize -> 302 redirect_uri?code&state
function GH:h_authorize(req)
  local q = req.query
  local app = self.oauth_apps[q.client_id or ""]
  if not app then return 404, "<html><body><h1>404</h1><p>Not Found</p></body></html>", { ["Content-Type"] = "text/html" } end
  local redirect = q.redirect_uri or app.redirect_uri
  if not redirect or (app.redirect_uri and redirect:sub(1, #app.redirect_uri) ~= app.redirect_uri) then
    return 302, "", { Location = (app.redirect_uri or "") .. "?" .. T.qs{ { "error", "redirect_uri_mismatch" },
      { "error_description", "The redirect_uri MUST match the registered callback URL for this application." },
      { "error_uri", "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch" },
      { "state", q.state } } }
  end
  self.ncode = (self.ncode or 0) + 1
  local code = T.hexs(20, self.seed, "code", self.ncode, self:wall_s())
  local login = q.login and self.state.by_login[q.login:lower()] and q.login or self.admin.login
  self.codes[code] = { client_id = app.client_id, redirect_uri = redirect, scope = q.scope or "",
                       login = login, exp = self:wall_s() + 600 }
  local sep = redirect:find("?", 1, true) and "&" or "?"
  return 302, "", { Location = redirect .. sep .. T.qs{ { "code", code }, { "state", q.state } } }
end

function GH:h_access_token(req)
  local f = {}
  local ct = (req.headers["content-type"] or ""):lower()
  if ct:find("json", 1, true) then f = json().decode(req.body or "") or {} else f = T.parse_form(req.body) end
  for k, v in pairs(req.query) do if f[k] == nil then f[k] = v end end
  local accept_json = (req.headers["accept"] or ""):find("json", 1, true)
  local function reply(t, order)
    if accept_json then return 200, t, { ["Content-Type"] = "application/json; charset=utf-8" } end
    return 200, T.form(t, order), { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" }
  end
  local function oerr(code, desc, uri)
    return reply({ error = code, error_description = desc, error_uri = uri or "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors" },
                 { "error", "error_description", "error_uri" })
  end
  local app = self.oauth_apps[f.client_id or ""]
  if f.grant_type == "urn:ietf:params:oauth:grant-type:device_code" then return self:device_token(f, app, reply, oerr) end
  if not app or not crypto().equal(f.client_secret or "", app.client_secret or "") then
    return oerr("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
  end
  local c = self.codes[f.code or ""]
  if not c or c.client_id ~= app.client_id or c.exp <= self:wall_s() then
    return oerr("bad_verification_code", "The code passed is incorrect or expired.")
  end
  if f.redirect_uri and f.redirect_uri ~= "" and f.redirect_uri ~= c.redirect_uri then
    return oerr("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
  end
  self.codes[f.code] = nil
  local tok = "gho_" .. T.b62(36, self.seed, "gho", f.code)
  local scopes = {}
  for s in (c.scope or ""):gmatch("[^%s,]+") do scopes[#scopes + 1] = s end
  local scope = table.concat(scopes, ",")
  self.tokens[tok] = { login = c.login, scopes = table.concat(scopes, ", "), client_id = app.client_id, kind = "oauth",
                       created = self:wall_s() }
  return reply({ access_token = tok, scope = scope, token_type = "bearer" }, { "access_token", "scope", "token_type" })
end

-- Device flow (§2.2): POST /login/device/code issues a device code and a user code; the user enters the
-- user code at verification_uri (POST /login/device, user_code=...: what the browser form does); the
-- app polls /login/oauth/access_token with the device_code grant until then.
function GH:h_device_code(req)
  local f = T.parse_form(req.body)
  local app = self.oauth_apps[f.client_id or ""]
  if not app then return 200, { error = "incorrect_client_credentials", error_description = "The client_id is not valid." } end
  self.devices = self.devices or {}
  self.ndev = (self.ndev or 0) + 1
  local dc = T.hexs(40, self.seed, "device", self.ndev)
  local uc = T.b62(8, self.seed, "user_code", self.ndev):upper()
  uc = uc:sub(1, 4) .. "-" .. uc:sub(5, 8)
  self.devices[dc] = { user_code = uc, client_id = app.client_id, scope = f.scope or "", exp = self:wall_s() + 900,
                       interval = self.device_interval or 5, approved = false }
  return 200, { device_code = dc, user_code = uc, verification_uri = "http://" .. (req.headers.host or "localhost") .. "/login/device",
                expires_in = 900, interval = self.device_interval or 5 }
end

function GH:h_device_approve(req)
  local f = T.parse_form(req.body)
  for _, d in pairs(self.devices or {}) do
    if d.user_code == f.user_code and d.exp > self:wall_s() then
      d.approved = true
      return 200, "Congratulations, you're all set! Your device is now connected.", { ["Content-Type"] = "text/plain" }
    end
  end
  return 404, "That code is not valid.", { ["Content-Type"] = "text/plain" }
end

function GH:device_token(f, app, reply, oerr)
  local d = (self.devices or {})[f.device_code or ""]
  if not app or not d or d.client_id ~= app.client_id then return oerr("incorrect_device_code", "The device_code provided is not valid.") end
  if d.exp <= self:wall_s() then return oerr("expired_token", "The device_code has expired.") end
  local now = self:wall_s()
  if not d.approved then
    if d.last_poll and now - d.last_poll < d.interval - 0.5 then
      d.interval = d.interval + 5
      d.last_poll = now
      return reply({ error = "slow_down", error_description = "Too many requests have been made in the same timeframe.", interval = d.interval })
    end
    d.last_poll = now
    return oerr("authorization_pending", "The authorization request is still pending.")
  end
  self.devices[f.device_code] = nil
  local tok = "gho_" .. T.b62(36, self.seed, "gho-device", f.device_code)
  local scopes = {}
  for s in (d.scope or ""):gmatch("[^%s,]+") do scopes[#scopes + 1] = s end
  self.tokens[tok] = { login = self.admin.login, scopes = table.concat(scopes, ", "), client_id = app.client_id, kind = "oauth",
                       created = now }
  return reply({ access_token = tok, scope = table.concat(scopes, ","), token_type = "bearer" }, { "access_token", "scope", "token_type" })
end

-- Basic client_id:client_secret for /applications/{client_id}/...
function GH:app_basic(req)
  local auth = req.headers["authorization"] or ""
  local b = auth:match("^[Bb]asic%s+(%S+)$")
  local raw = b and crypto().unb64(b)
  local id, secret = (raw or ""):match("^([^:]*):(.*)$")
  local app = id and self.oauth_apps[id]
  if not app or id ~= req.params.client_id or not crypto().equal(secret, app.client_secret or "") then return nil end
  return app
end

function GH:h_app_token(req)
  local app = self:app_basic(req)
  if not app then return self:not_found() end
  local body = json().decode(req.body or "")
  local tok = type(body) == "table" and body.access_token
  local t = tok and self.tokens[tok]
  if not t or t.client_id ~= app.client_id then
    if req.method == "POST" then return self:not_found() end
    return self:err(422, "Validation Failed")
  end
  local u = self.state.by_login[t.login:lower()]
  if req.method == "POST" then
    local scopes = {}
    for s in (t.scopes or ""):gmatch("[^,%s]+") do scopes[#scopes + 1] = s end
    return 200, { id = T.below(T.hash(self.seed, tok), 1000000000), url = self.base_url .. "/authorizations/1",
                  scopes = json().array(scopes), token = tok, token_last_eight = tok:sub(-8),
                  hashed_token = crypto().hex(crypto().sha256(tok)),
                  app = { url = "http://sandbox.invalid", name = app.name or "sandbox app", client_id = app.client_id },
                  note = jnull(), note_url = jnull(), updated_at = isos(t.created), created_at = isos(t.created),
                  fingerprint = jnull(), expires_at = jnull(), user = self:user_json(u) }
  end
  -- DELETE token (one) or grant (all the user's tokens for this app)
  local whole = req.path:find("/grant$") ~= nil
  for k, v in pairs(self.tokens) do
    if k == tok or (whole and v.client_id == app.client_id and v.login == t.login) then self.tokens[k] = nil end
  end
  self:add_event{ action = "oauth_authorization.destroy", actor = t.login, user = t.login,
                  oauth_application_name = app.name or "sandbox app" }
  if whole then self:emit("github_app_authorization", { action = "revoked", sender = self:user_json(u) }) end
  return 204, ""
end

-- GitHub App: installations and installation tokens (JWT-authenticated)
function GH:h_app_installations(req)
  local out = {}
  for i, ins in ipairs(self.state.installations) do out[i] = self:installation_json(ins) end
  return 200, json().array(out)
end
function GH:h_org_installation(req)
  if not self:org_ok(req) then return self:not_found() end
  return 200, self:installation_json(self.state.installations[1])
end
function GH:h_access_tokens(req)
  local ins
  for _, x in ipairs(self.state.installations) do if tostring(x.id) == req.params.iid then ins = x end end
  if not ins then return self:not_found() end
  if ins.suspended then return self:err(403, "This installation has been suspended") end
  self.nins = (self.nins or 0) + 1
  local tok = "ghs_" .. T.b62(36, self.seed, "ghs", self.nins, self:wall_s())
  local exp = self:wall_s() + 3600
  self.tokens[tok] = { login = self.org.login .. "-sandbox[bot]", kind = "installation", exp = exp }
  return 201, { token = tok, expires_at = T.iso_s(exp), permissions = self:installation_json(ins).permissions,
                repository_selection = "all" }
end

---------------------------------------------------------------------------------------------------
-- Mount
---------------------------------------------------------------------------------------------------
function GH:mount(srv, prefix)
  self.web_url = self.opts.web_url or nil
  local routes = {}
  local function org(method, rest, fn, o)
    routes[#routes + 1] = { method, "/orgs/:org" .. rest, fn, o }
    routes[#routes + 1] = { method, "/organizations/:org" .. rest, fn, o }
  end
  org("GET", "", GH.h_org)
  org("GET", "/members", GH.h_members)
  org("GET", "/members/:username", GH.h_member_check)
  org("DELETE", "/members/:username", GH.h_member_delete)
  org("GET", "/memberships/:username", GH.h_membership)
  org("PUT", "/memberships/:username", GH.h_membership)
  org("DELETE", "/memberships/:username", GH.h_membership)
  org("GET", "/outside_collaborators", GH.h_outside)
  org("PUT", "/outside_collaborators/:username", GH.h_outside_put)
  org("DELETE", "/outside_collaborators/:username", GH.h_outside_delete)
  org("GET", "/invitations", GH.h_invitations)
  org("GET", "/failed_invitations", GH.h_invitations)
  org("GET", "/blocks", GH.h_blocks)
  org("GET", "/blocks/:username", GH.h_block)
  org("PUT", "/blocks/:username", GH.h_block)
  org("DELETE", "/blocks/:username", GH.h_block)
  org("GET", "/teams", GH.h_teams)
  org("GET", "/teams/:slug", GH.h_team)
  org("GET", "/teams/:slug/members", GH.h_team_members)
  org("GET", "/teams/:slug/memberships/:username", GH.h_team_membership)
  org("DELETE", "/teams/:slug/memberships/:username", GH.h_team_membership)
  routes[#routes + 1] = { "GET", "/organizations/:org/team/:slug/members", GH.h_team_members }
  org("GET", "/repos", GH.h_repos)
  org("GET", "/audit-log", function(self, req)
    if not self:org_ok(req) then return self:not_found() end
    if self.plan ~= "enterprise" then return self:cloud_only("orgs/orgs#get-the-audit-log-for-an-organization") end
    return self:h_audit(req)
  end)
  org("GET", "/credential-authorizations", function(self, req)
    if self.plan ~= "enterprise" then return self:cloud_only("orgs/orgs#list-saml-sso-authorizations-for-an-organization") end
    return self:h_creds(req)
  end)
  org("DELETE", "/credential-authorizations/:cid", GH.h_cred_delete)
  org("GET", "/installations", GH.h_installations)
  org("GET", "/installation", GH.h_org_installation, { app_jwt = true })
  org("GET", "/personal-access-tokens", GH.h_pats)
  org("POST", "/personal-access-tokens", GH.h_pats_revoke)
  org("POST", "/personal-access-tokens/:pat_id", GH.h_pats_revoke)
  org("GET", "/hooks", GH.h_hooks)
  org("POST", "/hooks", GH.h_hooks)
  org("DELETE", "/hooks/:hook_id", GH.h_hook_delete)
  local more = {
    { "GET", "/repos/:owner/:repo/collaborators", GH.h_collaborators },
    { "GET", "/repositories/:rid/collaborators", function(self, req)
        for _, rp in ipairs(self.state.repos) do
          if tostring(rp.id) == req.params.rid then req.params.owner, req.params.repo = self.org.login, rp.name; return self:h_collaborators(req) end
        end
        return self:not_found()
      end },
    { "DELETE", "/repos/:owner/:repo/collaborators/:username", GH.h_collaborator_delete },
    { "PATCH", "/repos/:owner/:repo", GH.h_repo_patch },
    { "GET", "/rate_limit", GH.h_rate_limit },
    { "GET", "/user", GH.h_user },
    { "GET", "/login/oauth/authorize", GH.h_authorize, { public = true } },
    { "POST", "/login/oauth/access_token", GH.h_access_token, { public = true } },
    { "POST", "/login/device/code", GH.h_device_code, { public = true } },
    { "POST", "/login/device", GH.h_device_approve, { public = true } },
    { "POST", "/applications/:client_id/token", GH.h_app_token, { basic = true } },
    { "DELETE", "/applications/:client_id/token", GH.h_app_token, { basic = true } },
    { "DELETE", "/applications/:client_id/grant", GH.h_app_token, { basic = true } },
    { "GET", "/app/installations", GH.h_app_installations, { app_jwt = true } },
    { "POST", "/app/installations/:iid/access_tokens", GH.h_access_tokens, { app_jwt = true } },
  }
  for _, r in ipairs(more) do routes[#routes + 1] = r end
  routes[#routes + 1] = { "*", "/*", function(t) return t:not_found() end }
  self:mount_routes(srv, prefix, routes)
  self.web_url = self.web_url or self.base_url
  return self
end

return M
