-- sandbox_okta_spec.lua — the Okta sandbox tenant, exercised over real HTTP on a port-0 server.
local T = require "sandbox.tenant"
local okta = require "sandbox.okta"
local J = T.host("json")

local NOW = 1735689600   -- 2025-01-01T00:00:00Z
local TOKEN = "00abcSandboxToken"

local function new_tenant(extra)
  local o = { seed = 7, users = 50, groups = 8, events_per_day = 200, days = 8, failed_signin_share = 0.1,
              token = TOKEN, now = NOW, frozen = true }
  for k, v in pairs(extra or {}) do o[k] = v end
  return okta.new(o)
end

local start = require("helpers").serve

local function get(srv, path, hdr)
  local h = { Authorization = "SSWS " .. TOKEN, Accept = "application/json" }
  for k, v in pairs(hdr or {}) do h[k] = v end
  if hdr and hdr.Authorization == false then h.Authorization = nil end
  local url = path:match("^http") and path or (srv.url .. path)
  return assert(http.request{ url = url, headers = h })
end

local function req(srv, method, path, body, hdr)
  local h = { Authorization = "SSWS " .. TOKEN, Accept = "application/json", ["Content-Type"] = "application/json" }
  for k, v in pairs(hdr or {}) do h[k] = v end
  return assert(http.request{ method = method, url = srv.url .. path, headers = h, body = body })
end

local function next_link(res)
  local l = res.headers["link"] or ""
  return l:match('<([^>]+)>; rel="next"')
end

describe("sandbox okta", function()
  local t, srv
  before_each(function() t = new_tenant(); srv = start(t) end)
  after_each(function() srv:close() end)

  it("refuses requests without or with a wrong token, with Okta's error body", function()
    for _, hdr in ipairs({ { Authorization = false }, { Authorization = "SSWS wrong" }, { Authorization = "Bearer nope" } }) do
      local res = get(srv, "/api/v1/users", hdr)
      assert.are.equal(401, res.status)
      local e = J.decode(res.body)
      assert.are.equal("E0000011", e.errorCode)
      assert.are.equal("Invalid token provided", e.errorSummary)
      assert.are.equal("E0000011", e.errorLink)
      assert.is_string(e.errorId)
      assert.are.equal(0, #e.errorCauses)
    end
  end)

  it("walks all users exactly once through Link rel=next, with rate-limit headers", function()
    local seen, n, pages = {}, 0, 0
    local url = "/api/v1/users?limit=7"
    while url do
      local res = get(srv, url)
      assert.are.equal(200, res.status)
      assert.is_truthy(res.headers["x-rate-limit-limit"])
      assert.is_truthy(tonumber(res.headers["x-rate-limit-remaining"]))
      assert.is_truthy(tonumber(res.headers["x-rate-limit-reset"]))
      assert.matches('rel="self"', res.headers["link"])
      for _, u in ipairs(J.decode(res.body)) do
        assert.is_nil(seen[u.id]); seen[u.id] = true; n = n + 1
        assert.are_not.equal("DEPROVISIONED", u.status)
        assert.is_string(u.profile.login)
        assert.is_table(u.credentials.provider)
      end
      pages = pages + 1
      url = next_link(res)
    end
    assert.are.equal(t:count("users") - t:count("users", "DEPROVISIONED"), n)
    assert.is_true(pages >= 2)
    -- filter includes deprovisioned users
    local res = get(srv, "/api/v1/users?filter=" .. T.urlencode('status eq "DEPROVISIONED"'))
    assert.are.equal(t:count("users", "DEPROVISIONED"), #J.decode(res.body))
  end)

  it("is deterministic: same seed, same data; another seed, other data", function()
    local a, b, c = new_tenant(), new_tenant(), new_tenant{ seed = 8 }
    assert.are.same(a.state.users[1].profile, b.state.users[1].profile)
    assert.are.equal(a.state.users[10].id, b.state.users[10].id)
    assert.are.same(a:gen_event(123), b:gen_event(123))
    assert.are_not.equal(a.state.users[1].id, c.state.users[1].id)
  end)

  it("System Log: since/limit/after with monotonic timestamps, and polling keeps a next link", function()
    local since = T.iso_ms((NOW - 2 * 86400) * 1000)
    local res = get(srv, "/api/v1/logs?limit=50&since=" .. T.urlencode(since))
    assert.are.equal(200, res.status)
    local evs = J.decode(res.body)
    assert.are.equal(50, #evs)
    assert.is_true(evs[1].published >= since)
    for i = 2, #evs do assert.is_true(evs[i].published >= evs[i - 1].published) end
    -- follow next links to the end of the log: every event since `since`, exactly once, then an empty page
    local total, uuids = #evs, {}
    for _, e in ipairs(evs) do uuids[e.uuid] = true end
    local url = next_link(res)
    local last_page_empty = false
    for _ = 1, 100 do
      local r = get(srv, url)
      local page = J.decode(r.body)
      for _, e in ipairs(page) do assert.is_nil(uuids[e.uuid]); uuids[e.uuid] = true end
      total = total + #page
      url = next_link(r)
      assert.is_string(url)                 -- polling: next link even when empty
      if #page == 0 then last_page_empty = true; break end
    end
    assert.is_true(last_page_empty)
    local expect = 0
    for i = 0, t.nevents - 1 do if t:gen_ms(i) >= T.parse_iso(since) then expect = expect + 1 end end
    assert.are.equal(expect, total)
    -- new activity appears on the saved cursor
    t:simulate_bruteforce(t.state.users[3].profile.login, 5)
    local r = get(srv, url)
    local page = J.decode(r.body)
    assert.are.equal(6, #page)
    assert.are.equal("FAILURE", page[1].outcome.result)
    assert.are.equal("SUCCESS", page[6].outcome.result)
    assert.are.equal("user.session.start", page[6].eventType)
    assert.are.equal(page[1].client.ipAddress, page[6].client.ipAddress)
  end)

  it("System Log: bounded queries end without next; filter; bad parameters", function()
    local since, untl = T.iso_ms((NOW - 86400) * 1000), T.iso_ms((NOW - 86400 + 3600) * 1000)
    local res = get(srv, "/api/v1/logs?limit=1000&since=" .. T.urlencode(since) .. "&until=" .. T.urlencode(untl))
    for _, e in ipairs(J.decode(res.body)) do assert.is_true(e.published >= since and e.published < untl) end
    assert.is_nil(next_link(res))
    res = get(srv, "/api/v1/logs?limit=1000&filter=" .. T.urlencode('outcome.result eq "FAILURE" and eventType eq "user.session.start"'))
    local evs = J.decode(res.body)
    assert.is_true(#evs > 0)
    for _, e in ipairs(evs) do assert.are.equal("FAILURE", e.outcome.result) end
    res = get(srv, "/api/v1/logs?since=yesterday")
    assert.are.equal(400, res.status)
    assert.are.equal("E0000001", J.decode(res.body).errorCode)
  end)

  it("suspend changes state, is logged, and refuses an invalid transition", function()
    local u
    for _, x in ipairs(t.state.users) do if x.status == "ACTIVE" and x ~= t.admin then u = x; break end end
    local before = t:count("stored_events")
    local res = req(srv, "POST", "/api/v1/users/" .. u.id .. "/lifecycle/suspend")
    assert.are.equal(200, res.status)
    assert.are.equal("SUSPENDED", t.state.by_id[u.id].status)
    assert.are.equal("SUSPENDED", J.decode(get(srv, "/api/v1/users/" .. u.profile.login).body).status)
    assert.are.equal(before + 1, t:count("stored_events"))
    res = get(srv, "/api/v1/logs?filter=" .. T.urlencode('eventType eq "user.lifecycle.suspend"'))
    local evs = J.decode(res.body)
    assert.are.equal(1, #evs)
    assert.are.equal(u.id, evs[1].target[1].id)
    res = req(srv, "POST", "/api/v1/users/" .. u.id .. "/lifecycle/suspend")
    assert.are.equal(400, res.status)
    assert.are.equal("E0000001", J.decode(res.body).errorCode)
    -- sessions revoke: 204 and gone
    res = req(srv, "DELETE", "/api/v1/users/" .. u.id .. "/sessions?oauthTokens=true")
    assert.are.equal(204, res.status)
    for _, s in ipairs(t.state.sessions) do assert.are_not.equal(u.id, s.userId) end
    res = get(srv, "/api/v1/users/00unope")
    assert.are.equal(404, res.status)
    assert.are.equal("E0000007", J.decode(res.body).errorCode)
  end)

  it("fault injection answers what it says, then recovers", function()
    t:fault{ kind = "429", count = 2, retry_after = 3, path = "^/api/v1/users" }
    for _ = 1, 2 do
      local res = get(srv, "/api/v1/users")
      assert.are.equal(429, res.status)
      assert.are.equal("E0000047", J.decode(res.body).errorCode)
      assert.are.equal("3", res.headers["retry-after"])
      assert.are.equal("0", res.headers["x-rate-limit-remaining"])
    end
    assert.are.equal(200, get(srv, "/api/v1/users").status)
    t:fault{ kind = "503" }
    assert.are.equal(503, get(srv, "/api/v1/groups").status)
    t:fault{ kind = "malformed" }
    local res = get(srv, "/api/v1/groups")
    assert.are.equal(200, res.status)
    assert.is_nil(J.decode(res.body))
    local full = get(srv, "/api/v1/groups").body
    t:fault{ kind = "truncated" }
    local cut = get(srv, "/api/v1/groups").body
    assert.are.equal(#full // 2, #cut)
    t:fault{ kind = "html", status = 502 }
    res = get(srv, "/api/v1/groups")
    assert.are.equal(502, res.status)
    assert.matches("text/html", res.headers["content-type"])
    -- libcurl silently retries once when a reused connection dies before answering: drop twice
    t:fault{ kind = "reset", count = 2 }
    local r2, err = http.request{ url = srv.url .. "/api/v1/groups", headers = { Authorization = "SSWS " .. TOKEN } }
    assert.is_nil(r2)
    assert.is_string(err)
    t:fault{ kind = "slow", delay = 0.3 }
    local t0 = sched.now()
    assert.are.equal(200, get(srv, "/api/v1/groups").status)
    assert.is_true(sched.now() - t0 >= 0.25)
  end)

  it("rate budget: remaining decreases, then 429 E0000047", function()
    t:set_rate_limit(3, 60)
    local r1 = get(srv, "/api/v1/groups")
    local r2 = get(srv, "/api/v1/groups")
    assert.are.equal(tonumber(r1.headers["x-rate-limit-remaining"]) - 1, tonumber(r2.headers["x-rate-limit-remaining"]))
    get(srv, "/api/v1/groups")
    local r4 = get(srv, "/api/v1/groups")
    assert.are.equal(429, r4.status)
    assert.are.equal("E0000047", J.decode(r4.body).errorCode)
  end)

  it("OAuth client credentials with private_key_jwt (RS256) gives a scoped bearer token", function()
    local keyfile = os.tmpname()
    assert(os.execute("openssl genrsa -out " .. keyfile .. " 2048 2>/dev/null"))
    local p = io.popen("openssl rsa -in " .. keyfile .. " -pubout 2>/dev/null"); local pub = p:read("a"); p:close()
    local f = io.open(keyfile); local priv = f:read("a"); f:close(); os.remove(keyfile)
    local t2 = new_tenant{ oauth_client = { client_id = "0oaclient", public_key = pub, scopes = { "okta.users.read", "okta.logs.read" } } }
    local s2 = start(t2)
    local aud = s2.url .. "/oauth2/v1/token"
    local function assertion(claims)
      local h = crypto.b64url(J.encode{ alg = "RS256", typ = "JWT" })
      local c = crypto.b64url(J.encode(claims))
      return h .. "." .. c .. "." .. crypto.b64url(assert(crypto.rs256_sign(priv, h .. "." .. c)))
    end
    local function token_req(claims, scope)
      return assert(http.request{ method = "POST", url = aud, headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = T.qs{ { "grant_type", "client_credentials" }, { "scope", scope },
                     { "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" },
                     { "client_assertion", assertion(claims) } } })
    end
    local now = math.floor(sched.time())
    local res = token_req({ iss = "0oaclient", sub = "0oaclient", aud = aud, iat = now, exp = now + 300, jti = "j1" }, "okta.users.read")
    assert.are.equal(200, res.status)
    local tok = J.decode(res.body)
    assert.are.equal("Bearer", tok.token_type)
    assert.are.equal("okta.users.read", tok.scope)
    local r = get(s2, "/api/v1/users?limit=2", { Authorization = "Bearer " .. tok.access_token })
    assert.are.equal(200, r.status)
    r = get(s2, "/api/v1/groups", { Authorization = "Bearer " .. tok.access_token })
    assert.are.equal(403, r.status)
    assert.are.equal("E0000006", J.decode(r.body).errorCode)
    -- wrong audience, replayed jti, ungranted scope
    res = token_req({ iss = "0oaclient", sub = "0oaclient", aud = "https://elsewhere/oauth2/v1/token", iat = now, exp = now + 300, jti = "j2" }, "okta.users.read")
    assert.are.equal(401, res.status); assert.are.equal("invalid_client", J.decode(res.body).error)
    res = token_req({ iss = "0oaclient", sub = "0oaclient", aud = aud, iat = now, exp = now + 300, jti = "j1" }, "okta.users.read")
    assert.are.equal(401, res.status)
    res = token_req({ iss = "0oaclient", sub = "0oaclient", aud = aud, iat = now, exp = now + 300, jti = "j3" }, "okta.groups.manage")
    assert.are.equal(400, res.status); assert.are.equal("invalid_scope", J.decode(res.body).error)
    s2:close()
  end)

  -- RFC 9449 as Okta's DPoP guide has it: a proof on the token request, the server's nonce, a DPoP-bound
  -- token, then `Authorization: DPoP` with a fresh proof carrying the token's hash on every request.
  it("DPoP: an app that requires it wants a proof and the server's nonce, and binds the token to the key", function()
    local client_key = assert(crypto.keygen("RSA"))
    local pub = assert(crypto.jwk_pem(assert(crypto.jwk(client_key))))
    local t2 = new_tenant{ oauth_client = { client_id = "0oadpop", public_key = pub, scopes = { "okta.users.read" }, dpop = true } }
    local s2 = start(t2)
    local token_url = s2.url .. "/oauth2/v1/token"
    local n = 0
    local function assertion()
      n = n + 1
      local now = math.floor(sched.time())
      local h = crypto.b64url(J.encode{ alg = "RS256", typ = "JWT" })
      local c = crypto.b64url(J.encode{ iss = "0oadpop", sub = "0oadpop", aud = token_url, iat = now, exp = now + 300, jti = "a" .. n })
      return h .. "." .. c .. "." .. crypto.b64url(crypto.rs256_sign(client_key, h .. "." .. c))
    end
    local key = assert(crypto.keygen("P-256"))
    -- a proof: claims over {htm, htu, iat, jti}; alg ES256 with `key` unless told
    local function proof(claims, opts)
      opts = opts or {}
      local k = opts.key or key
      local alg = opts.alg or "ES256"
      n = n + 1
      local c = { htm = "GET", iat = math.floor(sched.time()), jti = "p" .. n }
      for kk, v in pairs(claims) do c[kk] = v end
      local h = crypto.b64url(J.encode{ typ = opts.typ or "dpop+jwt", alg = alg, jwk = opts.jwk or crypto.jwk(k) })
      local b = crypto.b64url(J.encode(c))
      local sig = (alg == "ES256" and crypto.es256_sign or crypto.rs256_sign)(k, h .. "." .. b)
      return h .. "." .. b .. "." .. crypto.b64url(sig)
    end
    local function token_req(dpop)
      return assert(http.request{ method = "POST", url = token_url,
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded", DPoP = dpop },
        body = T.qs{ { "grant_type", "client_credentials" }, { "scope", "okta.users.read" },
                     { "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" },
                     { "client_assertion", assertion() } } })
    end
    local res = token_req(nil)
    assert.are.equal(400, res.status)
    assert.are.same({ error = "invalid_dpop_proof", error_description = "The DPoP proof JWT header is missing." }, J.decode(res.body))
    res = token_req(proof{ htm = "POST", htu = token_url })
    assert.are.equal(400, res.status)
    assert.are.equal("use_dpop_nonce", J.decode(res.body).error)
    local nonce = assert(res.headers["dpop-nonce"])
    res = token_req(proof{ htm = "POST", htu = token_url, nonce = "stale" })
    assert.are.equal("use_dpop_nonce", J.decode(res.body).error)
    res = token_req(proof{ htm = "POST", htu = s2.url .. "/oauth2/v1/elsewhere", nonce = nonce })
    assert.are.same({ error = "invalid_dpop_proof", error_description = "'htu' claim in the DPoP proof JWT is invalid." }, J.decode(res.body))
    res = token_req(proof{ htm = "POST", htu = token_url, nonce = nonce })
    assert.are.equal(200, res.status, res.body)
    local tok = J.decode(res.body)
    assert.are.equal("DPoP", tok.token_type)
    assert.are.equal("okta.users.read", tok.scope)
    local at = tok.access_token
    local ath = crypto.b64url(crypto.sha256(at))
    local url = s2.url .. "/api/v1/users"
    local function call(auth, dpop)
      return get(s2, "/api/v1/users?limit=2", { Authorization = auth, DPoP = dpop })
    end
    -- the token is no bearer token; DPoP wants a proof, of this request, with the token's hash, once
    res = call("Bearer " .. at)
    assert.are.equal(401, res.status)
    res = call("DPoP " .. at)
    assert.are.equal(400, res.status)
    assert.matches('error="invalid_dpop_proof"', res.headers["www-authenticate"], 1, true)
    assert.are.equal("The DPoP proof JWT header is missing.", J.decode(res.body).error_description)
    local tried, refusals = 0, 0
    local function refused(p)
      local r = call("DPoP " .. at, p)
      tried = tried + 1
      if r.status == 400 then refusals = refusals + 1 end
      return J.decode(r.body).error_description
    end
    assert.are.equal("'ath' claim in the DPoP proof JWT is invalid.", refused(proof{ htu = url }))
    assert.are.equal("'htm' claim in the DPoP proof JWT is invalid.", refused(proof{ htm = "POST", htu = url, ath = ath }))
    assert.are.equal("'htu' claim in the DPoP proof JWT is invalid.", refused(proof{ htu = s2.url .. "/api/v1/groups", ath = ath }))
    assert.are.equal("'iat' claim in the DPoP proof JWT is invalid.", refused(proof{ htu = url, ath = ath, iat = math.floor(sched.time()) - 3600 }))
    assert.are.equal("The DPoP proof JWT 'typ' header must be 'dpop+jwt'.", refused(proof({ htu = url, ath = ath }, { typ = "JWT" })))
    local other = crypto.keygen("P-256")
    assert.are.equal("The DPoP proof JWT signature is invalid.", refused(proof({ htu = url, ath = ath }, { jwk = crypto.jwk(other) })))
    assert.are.equal("The DPoP proof JWT key does not match the access token's binding.", refused(proof({ htu = url, ath = ath }, { key = other })))
    local with_d = crypto.jwk(key); with_d.d = "AAAA"
    assert.are.equal("The DPoP proof JWT 'jwk' header must not contain a private key.", refused(proof({ htu = url, ath = ath }, { jwk = with_d })))
    local good = proof{ htu = url .. "?limit=2", ath = ath }       -- htu without the query counts
    res = call("DPoP " .. at, good)
    assert.are.equal(200, res.status, res.body)
    assert.are.equal(2, #J.decode(res.body))
    assert.are.equal("The DPoP proof JWT has already been used.", refused(good))
    require("helpers").figure("okta DPoP: %d bad or replayed proofs on a resource, %d refused", tried, refusals)
    assert.are.equal(tried, refusals)
    -- the scope still rules, and a token bound to this key is no good as DPoP without the key
    res = get(s2, "/api/v1/groups", { Authorization = "DPoP " .. at, DPoP = proof{ htu = s2.url .. "/api/v1/groups", ath = ath } })
    assert.are.equal(403, res.status)
    -- the nonce is renewed daily; the previous one still works, the one before is refused
    t2:rotate_dpop_nonce()
    assert.are.equal(200, token_req(proof{ htm = "POST", htu = token_url, nonce = nonce }).status)
    t2:rotate_dpop_nonce()
    res = token_req(proof{ htm = "POST", htu = token_url, nonce = nonce })
    assert.are.equal("use_dpop_nonce", J.decode(res.body).error)
    assert.are_not.equal(nonce, res.headers["dpop-nonce"])
    -- RS256 proofs too
    local rsa = crypto.keygen("RSA")
    res = token_req(proof({ htm = "POST", htu = token_url, nonce = res.headers["dpop-nonce"] }, { key = rsa, alg = "RS256" }))
    assert.are.equal(200, res.status, res.body)
    s2:close()
  end)

  it("admin roles: IAM assignees page through _links.next only; group-held roles show on the group and its members", function()
    local res = get(srv, "/api/v1/iam/assignees/users?limit=1")
    assert.are.equal(200, res.status)
    assert.is_nil(res.headers["link"])
    local body = J.decode(res.body)
    assert.are.equal(1, #body.value)
    local seen, url = { body.value[1].id }, body._links.next and body._links.next.href
    while url do
      body = J.decode(get(srv, url).body)
      for _, v in ipairs(body.value) do seen[#seen + 1] = v.id end
      url = body._links.next and body._links.next.href
    end
    local direct = 0
    for _, l in pairs(t.state.roles) do if #l > 0 then direct = direct + 1 end end
    assert.are.equal(direct, #seen)
    local gid = next(t.state.group_roles)
    local roles = J.decode(get(srv, "/api/v1/groups/" .. gid .. "/roles").body)
    assert.are.equal(1, #roles)
    assert.are.equal("GROUP", roles[1].assignmentType)
    assert.matches("/api/v1/groups/" .. gid .. "$", roles[1]._links.assignee.href)
    local member = next(t.state.group_by_id[gid].members)
    local mine = J.decode(get(srv, "/api/v1/users/" .. member .. "/roles").body)
    local found
    for _, r in ipairs(mine) do if r.id == roles[1].id then found = r end end
    assert.are.equal("GROUP", assert(found).assignmentType)
    -- not the user's to remove: the group's
    assert.are.equal(404, req(srv, "DELETE", "/api/v1/users/" .. member .. "/roles/" .. roles[1].id).status)
    assert.are.equal(204, req(srv, "DELETE", "/api/v1/groups/" .. gid .. "/roles/" .. roles[1].id).status)
    assert.are.equal(0, #J.decode(get(srv, "/api/v1/groups/" .. gid .. "/roles").body))
  end)

  it("API tokens: listed, revoked, and a revoked token authenticates nothing; reset_factors, deactivate", function()
    local list = J.decode(get(srv, "/api/v1/api-tokens").body)
    assert.are.equal(t:count("api_tokens"), #list)
    assert.is_nil(list[1].secret)
    local other = t.state.api_tokens[1].secret == TOKEN and t.state.api_tokens[2] or t.state.api_tokens[1]
    assert.are.equal(200, get(srv, "/api/v1/users?limit=1", { Authorization = "SSWS " .. other.secret }).status)
    assert.are.equal(204, req(srv, "DELETE", "/api/v1/api-tokens/" .. other.id).status)
    assert.are.equal(401, get(srv, "/api/v1/users?limit=1", { Authorization = "SSWS " .. other.secret }).status)
    assert.are.equal(404, req(srv, "DELETE", "/api/v1/api-tokens/" .. other.id).status)
    -- reset factors: the link is there while the user has factors
    local u
    for _, x in ipairs(t.state.users) do if x.status == "ACTIVE" and x.factors > 0 then u = x; break end end
    assert.is_table(J.decode(get(srv, "/api/v1/users/" .. u.id).body)._links.resetFactors)
    assert.are.equal(200, req(srv, "POST", "/api/v1/users/" .. u.id .. "/lifecycle/reset_factors").status)
    assert.is_nil(J.decode(get(srv, "/api/v1/users/" .. u.id).body)._links.resetFactors)
    assert.are.equal("ACTIVE", t:find_user(u.id).status)
    -- deactivation deprovisions from every app
    assert.are.equal(200, req(srv, "POST", "/api/v1/users/" .. u.id .. "/lifecycle/deactivate?sendEmail=false").status)
    for _, a in ipairs(t.state.apps) do assert.is_nil(a.users[u.id]) end
    -- the caller's own token, revoked: nothing more with it
    assert.are.equal(204, req(srv, "DELETE", "/api/v1/api-tokens/current").status)
    assert.are.equal(401, get(srv, "/api/v1/users?limit=1").status)
  end)

  it("event hooks: verification challenge, then deliveries with the configured Authorization header", function()
    local rx = assert(server.listen{ port = 0 })
    local got = {}
    local verified_with
    rx:route("GET", "/hook", function(r)
      verified_with = r.headers["x-okta-verification-challenge"]
      return 200, J.encode{ verification = verified_with }, { ["Content-Type"] = "application/json" }
    end)
    rx:route("POST", "/hook", function(r) got[#got + 1] = r; return 204, "" end)
    local h = t:webhook_target(rx.url .. "/hook", "s3cret")
    t:flush(5)
    assert.is_string(verified_with)
    assert.are.equal("VERIFIED", h.verificationStatus)
    local u
    for _, x in ipairs(t.state.users) do if x.status == "ACTIVE" and x ~= t.admin then u = x; break end end
    assert.are.equal(200, req(srv, "POST", "/api/v1/users/" .. u.id .. "/lifecycle/suspend").status)
    t:flush(5)
    assert.are.equal(1, #got)
    assert.are.equal("s3cret", got[1].headers["authorization"])
    local body = J.decode(got[1].body)
    assert.are.equal("com.okta.event_hook", body.eventType)
    assert.are.equal("user.lifecycle.suspend", body.data.events[1].eventType)
    rx:close()
  end)

  it("serves a 1,000,000-event log lazily (pages of 1000, no stored events)", function()
    local big = new_tenant{ events = 1000000, users = 20 }
    local s3 = start(big)
    local res = get(s3, "/api/v1/logs?limit=1000&since=" .. T.urlencode(T.iso_ms((NOW - 9 * 86400) * 1000)))
    assert.are.equal(1000, #J.decode(res.body))
    local r2 = get(s3, next_link(res))
    local p2 = J.decode(r2.body)
    assert.are.equal(1000, #p2)
    assert.are.equal(0, big:count("stored_events"))
    assert.are.equal(1000000, big:count("events"))
    s3:close()
  end)
end)
