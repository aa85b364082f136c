-- The Webex sandbox tenant follows Webex's API (shared/api/webex.md), not the connector: OAuth for
-- integrations (the client secret, single-use codes, reusable refresh tokens), scopes and roles refused as
-- Webex refuses them, Link paging with `max`, the audit APIs' required windows, error bodies with a
-- trackingId, and webhook deliveries signed with X-Spark-Signature.
local helpers = require "helpers"
local webex = require "sandbox.webex"

describe("webex sandbox", function()
  local t, srv, api, tok
  setup(function()
    t = webex.new { seed = 5, users = 250, rooms = 4, files = 4, days = 2, client_id = "cid", client_secret = "csecret" }
    srv = helpers.serve(t)
    api = srv.url .. "/v1"
    tok = t:officer_tokens()
  end)
  teardown(function() srv:close() end)

  local function get(path, token, query)
    local resp = assert(http.request { url = (path:match("^http") and path or api .. path), query = query,
      headers = { Authorization = token and ("Bearer " .. token) or nil } })
    return resp, json.decode(resp.body)
  end

  it("refuses a request without a valid token: 401 with Webex's error body and a trackingId", function()
    local resp, d = get("/people/me")
    assert.equal(401, resp.status)
    assert.equal("The request requires a valid access token set in the Authorization request header.", d.message)
    assert.equal(d.message, d.errors[1].description)
    assert.matches("^ROUTER_", d.trackingId)
    assert.equal(d.trackingId, resp.headers["trackingid"])
    resp = get("/people/me", "not-a-token")
    assert.equal(401, resp.status)
    resp = get("/people/me", tok.access_token)
    assert.equal(200, resp.status)
    assert.matches("^ROUTER_", resp.headers["trackingid"])
    assert.equal(404, (get("/nothing/here", tok.access_token)).status)
  end)

  it("pages people by Link with max (default 100, at most 1000)", function()
    local resp, d = get("/people", tok.access_token)
    assert.equal(100, #d.items)
    local seen, url, pages = 0, api .. "/people?max=30", 0
    while url do
      resp, d = get(url, tok.access_token)
      assert.equal(200, resp.status)
      seen, pages = seen + #d.items, pages + 1
      url = require("sdk.util").links(resp.headers["link"]).next
    end
    assert.equal(250, seen)
    assert.equal(9, pages)
    _, d = get("/people", tok.access_token, { max = "5000" })
    assert.equal(250, #d.items)
    -- a non-admin must name whom they look for
    local user = t:issue(t.people[10].id, { "spark:people_read" })
    resp, d = get("/people", user.access_token)
    assert.equal(400, resp.status)
    _, d = get("/people", user.access_token, { email = t.people[3].emails[1] })
    assert.equal(1, #d.items)
    assert.is_nil(d.items[1].loginEnabled)               -- admin fields stay hidden
  end)

  it("enforces the compliance scopes and the Compliance Officer role", function()
    local admin = t:issue(t.officer.id, { "spark-admin:people_read", "audit:events_read" })
    local resp, d = get("/events", admin.access_token)
    assert.equal(403, resp.status)
    assert.matches("spark%-compliance:events_read", d.message)
    assert.matches("^ROUTER_", d.trackingId)
    -- the scopes without the role: a plain user's token
    local user = t:issue(t.people[10].id, webex.ALL_SCOPES)
    resp, d = get("/events", user.access_token)
    assert.equal(403, resp.status)
    assert.matches("Compliance Officer", d.message)
    resp = get("/adminAudit/events", user.access_token, { orgId = t.org_id, from = "2020-01-01T00:00:00.000Z", to = "2020-02-01T00:00:00.000Z" })
    assert.equal(403, resp.status)
    resp = get("/events", tok.access_token, { max = "1001" })
    assert.equal(400, resp.status)
  end)

  it("serves the audit logs only for a window it is given, a year at most", function()
    local resp = get("/adminAudit/events", tok.access_token, { orgId = t.org_id })
    assert.equal(400, resp.status)
    resp = get("/adminAudit/events", tok.access_token, { orgId = t.org_id, from = "2020-01-01T00:00:00.000Z", to = "2022-01-01T00:00:00.000Z" })
    assert.equal(400, resp.status)
    local now = sched.time()
    local q = { orgId = t.org_id, from = require("sdk.util").iso(now - 5 * 86400), to = require("sdk.util").iso(now + 60), max = "500" }
    local d
    resp, d = get("/adminAudit/events", tok.access_token, q)
    assert.equal(200, resp.status)
    assert.equal(math.min(200, #t.admin_events), #d.items)                  -- max is at most 200
    resp = get("/admin/securityAudit/events", tok.access_token, { orgId = t.org_id, from = q.from, to = q.to })
    assert.equal(400, resp.status)                                          -- startTime/endTime here
    resp, d = get("/admin/securityAudit/events", tok.access_token, { orgId = t.org_id, startTime = q.from, endTime = q.to })
    assert.equal(#t.signins, #d.items)
  end)

  it("runs the OAuth authorization code flow: secret checked, code used once, refresh token reusable", function()
    local cb = assert(server.listen { port = 0 })
    cb:route("GET", "/cb", function(req) return 200, json.encode(req.query) end)
    local redirect = cb.url .. "/cb"
    local resp = assert(http.request { url = api .. "/authorize?" .. http.form { client_id = "cid", response_type = "code",
      redirect_uri = redirect, scope = "spark-admin:people_read spark:kms", state = "s1" } })
    local back = json.decode(resp.body)
    assert.equal("s1", back.state)
    local function token(form) return assert(http.request { method = "POST", url = api .. "/access_token", body = http.form(form),
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }) end
    local bad = token { grant_type = "authorization_code", client_id = "cid", client_secret = "wrong", code = back.code, redirect_uri = redirect }
    assert.equal(401, bad.status)
    local ok = token { grant_type = "authorization_code", client_id = "cid", client_secret = "csecret", code = back.code, redirect_uri = redirect }
    assert.equal(200, ok.status)
    local tk = json.decode(ok.body)
    assert.equal("Bearer", tk.token_type)
    assert.is_true(tk.expires_in > 0 and tk.refresh_token_expires_in > 0)
    assert.same({ ["spark-admin:people_read"] = true, ["spark:kms"] = true }, t.tokens[tk.access_token].scopes)
    assert.equal(400, token { grant_type = "authorization_code", client_id = "cid", client_secret = "csecret", code = back.code,
      redirect_uri = redirect }.status)
    for _ = 1, 2 do
      local rr = token { grant_type = "refresh_token", client_id = "cid", client_secret = "csecret", refresh_token = tk.refresh_token }
      assert.equal(200, rr.status)
      assert.equal(tk.refresh_token, json.decode(rr.body).refresh_token)
    end
    -- a scope the integration was not registered with
    resp = assert(http.request { url = api .. "/authorize?" .. http.form { client_id = "cid", response_type = "code",
      redirect_uri = redirect, scope = "spark:all", state = "s2" } })
    assert.equal("invalid_scope", json.decode(resp.body).error)
    cb:close()
  end)

  it("replaces a person on PUT (displayName required); disabled sign-in ends that person's tokens", function()
    local p = t.people[6]
    local theirs = t:issue(p.id, { "spark:people_read" })
    local before_licenses = p.licenses
    local function put(body)
      return assert(http.request { method = "PUT", url = api .. "/people/" .. p.id, body = json.encode(body),
        headers = { Authorization = "Bearer " .. tok.access_token, ["Content-Type"] = "application/json" } })
    end
    assert.equal(400, put({ loginEnabled = false }).status)
    local resp = put { displayName = p.displayName, emails = p.emails, loginEnabled = false }
    assert.equal(200, resp.status)
    assert.equal("false", json.decode(resp.body).loginEnabled)
    assert.is_true(#before_licenses > 0)
    assert.same({}, p.licenses)                              -- left out: cleared
    assert.equal(401, (get("/people/me", theirs.access_token)).status)
  end)

  it("signs webhook deliveries with X-Spark-Signature (hex HMAC-SHA1 of the body)", function()
    local got = {}
    local sink = assert(server.listen { port = 0 })
    sink:route("POST", "/hook", function(req) got[#got + 1] = req; return 200, "" end)
    local resp = assert(http.request { method = "POST", url = api .. "/webhooks", headers = { Authorization = "Bearer " .. tok.access_token,
      ["Content-Type"] = "application/json" }, body = json.encode { name = "h", targetUrl = sink.url .. "/hook", resource = "messages",
      event = "created", secret = "s3cret", ownedBy = "org" } })
    assert.equal(200, resp.status)
    -- without the read scope of the resource: refused
    local narrow = t:issue(t.officer.id, { "spark-admin:people_read" })
    assert.equal(403, assert(http.request { method = "POST", url = api .. "/webhooks", headers = { Authorization = "Bearer " .. narrow.access_token,
      ["Content-Type"] = "application/json" }, body = json.encode { name = "h", targetUrl = sink.url .. "/hook", resource = "messages",
      event = "created" } }).status)
    local msg = t:share_file(1, nil, "a.txt", "x")
    t:flush()
    sink:close()
    assert.equal(1, #got)
    assert.equal(crypto.hex(crypto.hmac_sha1("s3cret", got[1].body)), got[1].headers["x-spark-signature"])
    local body = json.decode(got[1].body)
    assert.equal("messages", body.resource)
    assert.equal(msg.id, body.data.id)
    assert.is_nil(body.data.text)                              -- ids only: the details are fetched
  end)

  it("answers 429 with Retry-After past its budget", function()
    local small = webex.new { seed = 6, users = 3, rate_limit = { limit = 2, window = 60 } }
    local s = helpers.serve(small)
    local tk = small:officer_tokens()
    local last
    for _ = 1, 3 do last = assert(http.request { url = s.url .. "/v1/people/me", headers = { Authorization = "Bearer " .. tk.access_token } }) end
    s:close()
    assert.equal(429, last.status)
    assert.equal("1", last.headers["retry-after"])
    assert.matches("^ROUTER_", json.decode(last.body).trackingId)
  end)
end)
