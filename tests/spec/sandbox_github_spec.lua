-- sandbox_github_spec.lua — the GitHub organization sandbox tenant over real HTTP on port-0 servers.
local T = require "sandbox.tenant"
local github = require "sandbox.github"
local J = T.host("json")

local NOW = 1735689600
local TOKEN = "ghp_specToken000000000000000000000000"

local function new_tenant(extra)
  local o = { seed = 3, org = "acme", members = 40, teams = 5, outside_collaborators = 6, audit_events = 300,
              token = TOKEN, now = NOW, frozen = true,
              oauth_app = { client_id = "Iv1.sandbox", client_secret = "shh", name = "cachost" } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return github.new(o)
end

local start = require("helpers").serve

local function call(srv, method, path, body, hdr)
  local h = { Authorization = "Bearer " .. TOKEN, Accept = "application/vnd.github+json",
              ["X-GitHub-Api-Version"] = "2022-11-28", ["User-Agent"] = "cachost-spec" }
  for k, v in pairs(hdr or {}) do if v == false then h[k] = nil else h[k] = v end end
  local url = path:match("^http") and path or (srv.url .. path)
  return assert(http.request{ method = method, url = url, headers = h, body = body })
end
local function get(srv, path, hdr) return call(srv, "GET", path, nil, hdr) end

local function rel(res, name)
  return (res.headers["link"] or ""):match('<([^>]+)>; rel="' .. name .. '"')
end

describe("sandbox github", function()
  local t, srv
  before_each(function() t = new_tenant(); srv = start(t) end)
  after_each(function() srv:close() end)

  it("refuses missing, wrong and malformed credentials with GitHub's error body", function()
    local res = get(srv, "/orgs/acme/members", { Authorization = false })
    assert.are.equal(401, res.status)
    local e = J.decode(res.body)
    assert.are.equal("Requires authentication", e.message)
    assert.matches("^https://docs.github.com/", e.documentation_url)
    res = get(srv, "/orgs/acme/members", { Authorization = "token ghp_wrong" })
    assert.are.equal(401, res.status)
    assert.are.equal("Bad credentials", J.decode(res.body).message)
    -- legacy "token" prefix works as well as Bearer
    assert.are.equal(200, get(srv, "/orgs/acme/members", { Authorization = "token " .. TOKEN }).status)
    -- no User-Agent: 403 (the HTTP client always sends one, so ask the pre-check directly)
    local st = t:precheck({ method = "GET", path = "/orgs/acme/members", headers = { authorization = "Bearer " .. TOKEN } }, {})
    assert.are.equal(403, st)
  end)

  it("pages members with per_page/page and Link next/last, each member once", function()
    local seen, n = {}, 0
    local url = "/orgs/acme/members?per_page=7"
    local first = get(srv, url)
    assert.is_string(rel(first, "last"))
    assert.matches("/organizations/%d+/members", rel(first, "next"))
    while url do
      local res = get(srv, url)
      assert.are.equal(200, res.status)
      assert.are.equal("core", res.headers["x-ratelimit-resource"])
      for _, hname in ipairs({ "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset" }) do
        assert.is_truthy(tonumber(res.headers[hname]), hname)
      end
      for _, u in ipairs(J.decode(res.body)) do
        assert.is_nil(seen[u.login]); seen[u.login] = true; n = n + 1
        assert.are.equal("User", u.type)
        assert.is_number(u.id)
      end
      url = rel(res, "next")
    end
    local active = 0
    for _, m in ipairs(t.state.members) do if m.state == "active" then active = active + 1 end end
    assert.are.equal(active, n)
    local admins = J.decode(get(srv, "/orgs/acme/members?role=admin&per_page=100").body)
    for _, u in ipairs(admins) do assert.are.equal("admin", t:member(u.login).role) end
  end)

  it("is deterministic from the seed", function()
    local a, b, c = new_tenant(), new_tenant(), new_tenant{ seed = 4 }
    assert.are.equal(a.state.members[5].login, b.state.members[5].login)
    assert.are.same(a:gen_audit(17), b:gen_audit(17))
    assert.are_not.same(a:gen_audit(17), c:gen_audit(17))
  end)

  it("audit log: cursor pages newest first, phrase filter, asc order", function()
    local seen, prev_ts, n = {}, math.huge, 0
    local url = "/orgs/acme/audit-log?per_page=100&include=all"
    while url do
      local res = get(srv, url)
      assert.are.equal(200, res.status)
      for _, e in ipairs(J.decode(res.body)) do
        assert.is_nil(seen[e._document_id]); seen[e._document_id] = true; n = n + 1
        assert.is_true(e["@timestamp"] <= prev_ts); prev_ts = e["@timestamp"]
        assert.are.equal("acme", e.org)
      end
      url = rel(res, "next")
      if url then assert.matches("after=", url) end
    end
    assert.are.equal(t:count("audit_events"), n)
    local res = get(srv, "/orgs/acme/audit-log?per_page=100&phrase=" .. T.urlencode("action:team.add_member"))
    for _, e in ipairs(J.decode(res.body)) do assert.are.equal("team.add_member", e.action) end
    res = get(srv, "/orgs/acme/audit-log?per_page=5&order=asc")
    local evs = J.decode(res.body)
    for i = 2, #evs do assert.is_true(evs[i]["@timestamp"] >= evs[i - 1]["@timestamp"]) end
    -- a "before" cursor from page 2 leads back to page 1
    local p2 = get(srv, rel(res, "next"))
    local back = get(srv, rel(p2, "prev"))
    assert.are.same(evs, J.decode(back.body))
  end)

  it("audit log: web events by default, Git events with include=git, both with include=all; country codes", function()
    local function walk(include)
      local by, n = {}, 0
      local url = "/orgs/acme/audit-log?per_page=100" .. (include and ("&include=" .. include) or "")
      while url do
        local res = get(srv, url)
        assert.are.equal(200, res.status)
        for _, e in ipairs(J.decode(res.body)) do
          n = n + 1
          by[e.action:match("^git%.") and "git" or "web"] = (by[e.action:match("^git%.") and "git" or "web"] or 0) + 1
          assert.matches("^%u%u$", e.actor_location.country_code)     -- ISO 3166-1 alpha-2
          assert.is_nil(e.actor_location.country_name)
        end
        url = rel(res, "next")
        if url and include then assert.matches("include=" .. include, url) end
      end
      return by, n
    end
    local web, nweb = walk(nil)
    local git, ngit = walk("git")
    local _, nall = walk("all")
    assert.is_nil(web.git); assert.is_nil(git.web)
    assert.is_true(ngit > 0 and nweb > 0)
    assert.are.equal(nweb, select(2, walk("web")))
    assert.are.equal(t:count("audit_events"), nall)
    assert.are.equal(nall, nweb + ngit)
    assert.are.equal(422, get(srv, "/orgs/acme/audit-log?include=everything").status)
    -- the country: qualifier searches the code
    local res = get(srv, "/orgs/acme/audit-log?include=all&per_page=100&phrase=country:de")
    local evs = J.decode(res.body)
    assert.is_true(#evs > 0)
    for _, e in ipairs(evs) do assert.are.equal("DE", e.actor_location.country_code) end
  end)

  it("API versions and media types: 400 for a version GitHub does not serve, 415 for an Accept without JSON", function()
    local res = get(srv, "/orgs/acme/members", { ["X-GitHub-Api-Version"] = false })
    assert.are.equal(200, res.status)
    assert.are.equal("2022-11-28", res.headers["x-github-api-version-selected"])     -- the default
    res = get(srv, "/orgs/acme/members", { ["X-GitHub-Api-Version"] = "2026-03-10" })
    assert.are.equal("2026-03-10", res.headers["x-github-api-version-selected"])
    res = get(srv, "/orgs/acme/members", { ["X-GitHub-Api-Version"] = "2021-01-01" })
    assert.are.equal(400, res.status)
    assert.matches("X%-GitHub%-Api%-Version", J.decode(res.body).message)
    assert.are.same({ "2022-11-28", "2026-03-10" }, J.decode(get(srv, "/versions").body))
    assert.are.equal(200, get(srv, "/orgs/acme/members", { Accept = "application/json" }).status)
    assert.are.equal(200, get(srv, "/orgs/acme/members", { Accept = "application/vnd.github.v3+json" }).status)
    res = get(srv, "/orgs/acme/members", { Accept = "application/xml" })
    assert.are.equal(415, res.status)
    assert.matches("Must accept 'application/json'", J.decode(res.body).message)
    assert.is_true(t.sent_versions["2022-11-28"] > 0 and t.sent_versions.none == 1)
  end)

  it("the org's app installations need admin:read from a classic token (403 and X-Accepted-OAuth-Scopes otherwise)", function()
    local res = get(srv, "/orgs/acme/installations")
    assert.are.equal(200, res.status)
    assert.are.equal(#t.state.installations, J.decode(res.body).total_count)
    t.token_scopes = "admin:org, read:audit_log"
    res = get(srv, "/orgs/acme/installations")
    assert.are.equal(403, res.status)
    assert.are.equal("admin:read", res.headers["x-accepted-oauth-scopes"])
    assert.are.equal("admin:org, read:audit_log", res.headers["x-oauth-scopes"])
  end)

  it("GitHub App: an RS256 JWT within GitHub's limits buys an installation token valid 1 hour", function()
    local priv = crypto.keygen("RSA")
    local pub = assert(crypto.jwk_pem(assert(crypto.jwk(priv))))
    local t2 = new_tenant { app = { app_id = 2218, client_id = "Iv23liSandbox", public_key = pub } }
    local s2 = start(t2)
    local function jwt(claims, key)
      local h = crypto.b64url(J.encode { alg = "RS256", typ = "JWT" }) .. "." .. crypto.b64url(J.encode(claims))
      return h .. "." .. crypto.b64url(assert(crypto.rs256_sign(key or priv, h)))
    end
    local now = math.floor(t2:wall_s())
    local function as_app(claims, key) return { Authorization = "Bearer " .. jwt(claims, key) } end
    local good = { iat = now - 60, exp = now + 540, iss = "Iv23liSandbox" }
    local inst = J.decode(get(s2, "/orgs/acme/installation", as_app(good)).body)
    assert.are.equal(t2.state.installations[1].id, inst.id)
    -- the numeric app ID works as iss too; refused: exp beyond 10 minutes, iat ahead of the clock, another
    -- app, another key, an expired JWT; and a JWT is no token for the org's own routes
    assert.are.equal(200, get(s2, "/app/installations", as_app { iat = now - 60, exp = now + 540, iss = 2218 }).status)
    local function refused(claims, key, why)
      local res = get(s2, "/app/installations", as_app(claims, key))
      assert.are.equal(401, res.status)
      assert.matches(why, J.decode(res.body).message)
    end
    refused({ iat = now - 60, exp = now + 1200, iss = "Iv23liSandbox" }, nil, "too far in the future")
    refused({ iat = now + 300, exp = now + 540, iss = "Iv23liSandbox" }, nil, "Issued at")
    refused({ iat = now - 60, exp = now + 540, iss = "Iv23liOther" }, nil, "Integration not found")
    refused(good, crypto.keygen("RSA"), "could not be decoded")
    refused({ iat = now - 700, exp = now - 100, iss = "Iv23liSandbox" }, nil, "Expiration time")
    assert.are.equal(401, get(s2, "/orgs/acme/members", as_app(good)).status)
    local res = call(s2, "POST", "/app/installations/" .. inst.id .. "/access_tokens", nil, as_app(good))
    assert.are.equal(201, res.status)
    local tok = J.decode(res.body)
    assert.matches("^ghs_", tok.token)
    local lives = T.parse_iso(tok.expires_at) // 1000 - now     -- an hour from when it was issued
    assert.is_true(lives >= 3600 and lives <= 3600 + 5, tostring(lives))
    assert.are.equal("write", tok.permissions.organization_personal_access_tokens)
    assert.are.equal(200, get(s2, "/orgs/acme/members", { Authorization = "Bearer " .. tok.token }).status)
    -- the token reaches what the app's permissions allow: no organization_user_blocking here
    t2.state.installations[1].permissions.organization_user_blocking = nil
    res = get(s2, "/orgs/acme/blocks", { Authorization = "Bearer " .. tok.token })
    assert.are.equal(403, res.status)
    assert.are.equal("Resource not accessible by integration", J.decode(res.body).message)
    assert.are.equal("organization_user_blocking=read", res.headers["x-accepted-github-permissions"])
    t2.tokens[tok.token].exp = math.floor(t2:wall_s())      -- its hour is up (wall clock: no waiting here)
    assert.are.equal(401, get(s2, "/orgs/acme/members", { Authorization = "Bearer " .. tok.token }).status)
    s2:close()
  end)

  it("fine-grained PATs: only a GitHub App lists them and revokes access (one: 204, several: 202)", function()
    local ins = t.state.installations[1]
    t.app = { app_id = ins.app_id }
    local tok = "ghs_specInstallationToken000000000000000"
    t.tokens[tok] = { login = "acme-sandbox[bot]", kind = "installation", exp = t:wall_s() + 3600,
                    permissions = t.state.installations[1].permissions }
    local app = { Authorization = "Bearer " .. tok }
    assert.are.equal(403, get(srv, "/orgs/acme/personal-access-tokens").status)       -- a classic token
    local n = #t.state.pats
    assert.is_true(n >= 3)
    local list = J.decode(get(srv, "/orgs/acme/personal-access-tokens?per_page=100", app).body)
    assert.are.equal(n, #list)
    assert.is_string(list[1].owner.login)
    assert.is_table(list[1].permissions.organization)
    assert.are.equal(403, call(srv, "POST", "/orgs/acme/personal-access-tokens/" .. list[1].id, J.encode { action = "revoke" }).status)
    assert.are.equal(422, call(srv, "POST", "/orgs/acme/personal-access-tokens/" .. list[1].id, J.encode { action = "keep" }, app).status)
    assert.are.equal(204, call(srv, "POST", "/orgs/acme/personal-access-tokens/" .. list[1].id, J.encode { action = "revoke" }, app).status)
    assert.are.equal(202, call(srv, "POST", "/orgs/acme/personal-access-tokens",
      J.encode { action = "revoke", pat_ids = { list[2].id, list[3].id } }, app).status)
    assert.are.equal(n - 3, #J.decode(get(srv, "/orgs/acme/personal-access-tokens?per_page=100", app).body))
  end)

  it("organization roles: the roles, their teams, and their users directly or through a team (admin:org)", function()
    local body = J.decode(get(srv, "/orgs/acme/organization-roles").body)
    assert.are.equal(#body.roles, body.total_count)
    local names, indirect = {}, 0
    for _, r in ipairs(body.roles) do
      names[r.name] = r
      local users = J.decode(get(srv, "/orgs/acme/organization-roles/" .. r.id .. "/users?per_page=100").body)
      local teams = J.decode(get(srv, "/orgs/acme/organization-roles/" .. r.id .. "/teams?per_page=100").body)
      for _, u in ipairs(users) do
        assert.is_truthy(({ direct = true, indirect = true, mixed = true })[u.assignment])
        if u.assignment ~= "direct" then
          indirect = indirect + 1
          assert.is_true(#u.inherited_from > 0)
          local via = false
          for _, tm in ipairs(teams) do if tm.id == u.inherited_from[1].id then via = true end end
          assert.is_true(via)
        end
      end
    end
    assert.is_table(names.security_manager)
    assert.are.equal("Organization", names["Audit reader"].source)
    assert.is_true(indirect > 0)
    assert.are.equal(404, get(srv, "/orgs/acme/organization-roles/1").status)
    t.token_scopes = "read:org"
    local res = get(srv, "/orgs/acme/organization-roles")
    assert.are.equal(403, res.status)
    assert.are.equal("admin:org", res.headers["x-accepted-oauth-scopes"])
  end)

  it("fine-grained PAT requests: an App lists them, approves one (a grant now) and denies the other", function()
    local tok = "ghs_specInstallationToken000000000000001"
    t.tokens[tok] = { login = "acme-sandbox[bot]", kind = "installation", exp = t:wall_s() + 3600,
                    permissions = t.state.installations[1].permissions }
    local app = { Authorization = "Bearer " .. tok }
    assert.are.equal(403, get(srv, "/orgs/acme/personal-access-token-requests").status)
    local reqs = J.decode(get(srv, "/orgs/acme/personal-access-token-requests", app).body)
    assert.are.equal(2, #reqs)
    assert.is_string(reqs[1].reason)
    local grants = #t.state.pats
    assert.are.equal(204, call(srv, "POST", "/orgs/acme/personal-access-token-requests/" .. reqs[1].id, J.encode { action = "approve" }, app).status)
    assert.are.equal(202, call(srv, "POST", "/orgs/acme/personal-access-token-requests",
      J.encode { action = "deny", pat_request_ids = { reqs[2].id }, reason = "no" }, app).status)
    assert.are.equal(0, #J.decode(get(srv, "/orgs/acme/personal-access-token-requests", app).body))
    assert.are.equal(grants + 1, #t.state.pats)
  end)

  it("an org off Enterprise Cloud: the audit log and SAML credential authorizations answer GitHub's 404", function()
    local t2 = new_tenant { plan = "team" }
    local s2 = start(t2)
    assert.are.equal("team", J.decode(get(s2, "/orgs/acme").body).plan.name)
    for _, path in ipairs { "/orgs/acme/audit-log", "/orgs/acme/credential-authorizations" } do
      local res = get(s2, path)
      assert.are.equal(404, res.status)
      local e = J.decode(res.body)
      assert.are.equal("Not Found", e.message)
      assert.are.equal("404", e.status)
      assert.matches("^https://docs%.github%.com/rest/orgs/orgs#", e.documentation_url)
    end
    s2:close()
  end)

  it("removing a member changes state, writes the audit log and sends a signed webhook", function()
    local rx = assert(server.listen{ port = 0 })
    local got = {}
    rx:route("POST", "/gh", function(r) got[#got + 1] = r; return 200, "" end)
    t:webhook_target(rx.url .. "/gh", "whsecret")
    local victim
    for _, m in ipairs(t.state.members) do if m.role == "member" and m.state == "active" then victim = m; break end end
    local res = call(srv, "DELETE", "/orgs/acme/members/" .. victim.login)
    assert.are.equal(204, res.status)
    assert.is_nil(t:member(victim.login))
    assert.are.equal(404, get(srv, "/orgs/acme/memberships/" .. victim.login).status)
    res = get(srv, "/orgs/acme/audit-log?phrase=" .. T.urlencode("action:org.remove_member user:" .. victim.login))
    local evs = J.decode(res.body)
    assert.are.equal(1, #evs)
    assert.are.equal(t.admin.login, evs[1].actor)
    t:flush(5)
    local member_removed
    for _, r in ipairs(got) do
      local sig = r.headers["x-hub-signature-256"]
      assert.are.equal("sha256=" .. crypto.hex(crypto.hmac_sha256("whsecret", r.body)), sig)
      assert.is_string(r.headers["x-github-delivery"])
      if r.headers["x-github-event"] == "organization" then member_removed = J.decode(r.body) end
    end
    assert.are.equal("ping", got[1].headers["x-github-event"])
    assert.are.equal("member_removed", member_removed.action)
    assert.are.equal(victim.login, member_removed.membership.user.login)
    rx:close()
  end)

  it("outside collaborator and credential authorization revocation", function()
    local oc = t.state.outside[1]
    assert.are.equal(204, call(srv, "DELETE", "/orgs/acme/outside_collaborators/" .. oc.login).status)
    assert.is_nil(t:outside(oc.login))
    local list = J.decode(get(srv, "/orgs/acme/outside_collaborators?per_page=100").body)
    for _, u in ipairs(list) do assert.are_not.equal(oc.login, u.login) end
    local cred = t.state.creds[1]
    assert.are.equal(204, call(srv, "DELETE", "/orgs/acme/credential-authorizations/" .. cred.credential_id).status)
    assert.are.equal(404, call(srv, "DELETE", "/orgs/acme/credential-authorizations/" .. cred.credential_id).status)
  end)

  it("OAuth web flow: authorize redirects with code and state; code exchanges once for a token", function()
    local rx = assert(server.listen{ port = 0 })
    local cb
    rx:route("GET", "/cb", function(r) cb = r.query; return 200, "ok" end)
    local res = assert(http.request{ url = srv.url .. "/login/oauth/authorize?" .. T.qs{ { "client_id", "Iv1.sandbox" },
      { "redirect_uri", rx.url .. "/cb" }, { "scope", "read:org read:audit_log" }, { "state", "xyz" } },
      headers = { ["User-Agent"] = "spec" } })
    assert.are.equal(200, res.status)          -- redirect followed to our callback
    rx:close()
    local code, state = cb.code, cb.state
    assert.are.equal("xyz", state)
    local form = T.qs{ { "client_id", "Iv1.sandbox" }, { "client_secret", "shh" }, { "code", code } }
    res = assert(http.request{ method = "POST", url = srv.url .. "/login/oauth/access_token", body = form,
      headers = { Accept = "application/json", ["Content-Type"] = "application/x-www-form-urlencoded", ["User-Agent"] = "spec" } })
    local tok = J.decode(res.body)
    assert.are.equal("bearer", tok.token_type)
    assert.are.equal("read:org,read:audit_log", tok.scope)
    assert.matches("^gho_", tok.access_token)
    assert.are.equal(200, get(srv, "/orgs/acme/teams", { Authorization = "Bearer " .. tok.access_token }).status)
    res = assert(http.request{ method = "POST", url = srv.url .. "/login/oauth/access_token", body = form,
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["User-Agent"] = "spec" } })
    assert.matches("error=bad_verification_code", res.body)
    -- the app deletes the user's grant: the token stops working
    res = assert(http.request{ method = "DELETE", url = srv.url .. "/applications/Iv1.sandbox/grant",
      body = J.encode{ access_token = tok.access_token },
      headers = { Authorization = "Basic " .. crypto.b64("Iv1.sandbox:shh"), ["User-Agent"] = "spec", ["Content-Type"] = "application/json" } })
    assert.are.equal(204, res.status)
    assert.are.equal(401, get(srv, "/orgs/acme/teams", { Authorization = "Bearer " .. tok.access_token }).status)
  end)

  it("faults and limits: 429 with retry-after, secondary 403, primary budget exhaustion", function()
    t:fault{ kind = "429", retry_after = 2 }
    local res = get(srv, "/orgs/acme/teams")
    assert.are.equal(429, res.status)
    assert.are.equal("2", res.headers["retry-after"])
    assert.are.equal("0", res.headers["x-ratelimit-remaining"])
    t:fault{ kind = "secondary", retry_after = 5 }
    res = get(srv, "/orgs/acme/teams")
    assert.are.equal(403, res.status)
    assert.are.equal("5", res.headers["retry-after"])
    assert.matches("secondary rate limit", J.decode(res.body).message)
    t:fault{ kind = "500", path = "/teams$" }
    assert.are.equal(200, get(srv, "/orgs/acme/members").status)
    assert.are.equal(500, get(srv, "/orgs/acme/teams").status)
    t:set_rate_limit(2, 3600)
    assert.are.equal("1", get(srv, "/orgs/acme/teams").headers["x-ratelimit-remaining"])
    assert.are.equal(200, get(srv, "/orgs/acme/teams").status)
    res = get(srv, "/orgs/acme/teams")
    assert.are.equal(403, res.status)
    assert.are.equal("0", res.headers["x-ratelimit-remaining"])
    assert.matches("rate limit exceeded", J.decode(res.body).message)
  end)

  it("two orgs run at once on separate servers", function()
    local t2 = new_tenant{ org = "globex", seed = 9 }
    local s2 = start(t2)
    assert.are.equal(200, get(s2, "/orgs/globex/members").status)
    assert.are.equal(404, get(s2, "/orgs/acme/members").status)
    assert.are.equal(200, get(srv, "/orgs/acme/members").status)
    s2:close()
  end)
end)
