-- The Salesforce sandbox tenant follows Salesforce, not the connector: the JWT bearer assertion checked
-- against the app's certificate, PKCE, SOQL parsed and refused as Salesforce refuses it, nextRecordsUrl
-- paging with Sforce-Query-Options, query vs queryAll, the daily allowance, error bodies, CSV log files.
local helpers = require "helpers"
local auth = require "sdk.auth"
local csv = require "sdk.csv"

local JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

describe("salesforce sandbox", function()
  local t, srv
  setup(function()
    t = require("sandbox.salesforce").new { seed = 4, users = 30, logins_per_day = 150, days = 3, files = 8 }
    srv = helpers.serve(t)
  end)
  teardown(function() srv:close() end)

  local function assertion(claims, pem)
    local now = math.floor(sched.time())
    local c = { iss = t.app.client_id, sub = t.integration.Username, aud = "https://login.salesforce.com", exp = now + 120 }
    for k, v in pairs(claims or {}) do c[k] = v end
    for k, v in pairs(claims or {}) do if v == false then c[k] = nil end end
    return assert(auth.jwt_rs256(c, pem or t.app.private_key))
  end
  local function token_call(form)
    local r = assert(http.request { method = "POST", url = srv.url .. "/services/oauth2/token", body = http.form(form),
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    return r.status, json.decode(r.body), r
  end
  local session
  local function call(method, path, opts)
    opts = opts or {}
    if not session then
      local _, body = token_call { grant_type = JWT, assertion = assertion() }
      session = body.access_token
    end
    local h = { Authorization = "Bearer " .. session }
    for k, v in pairs(opts.headers or {}) do h[k] = v end
    local r = assert(http.request { method = method, url = (path:match("^http") and "" or srv.url) .. path, query = opts.query,
      headers = h, body = opts.body })
    local ok, data = pcall(json.decode, r.body)
    return r.status, ok and data or r.body, r
  end
  local function soql(q, all) return call("GET", "/services/data/v62.0/" .. (all and "queryAll" or "query"), { query = { q = q } }) end

  it("grants a session for an assertion signed with the app's key, and refuses every other one", function()
    local st, body = token_call { grant_type = JWT, assertion = assertion() }
    assert.equal(200, st)
    assert.equal(srv.url, body.instance_url)
    assert.equal("Bearer", body.token_type)
    assert.is_nil(body.refresh_token)
    assert.is_nil(body.expires_in)
    assert.matches("^https://login%.salesforce%.com/id/00D", body.id)
    local cases = {
      { assertion({}, crypto.keygen("RSA")), "invalid_grant", "invalid assertion" },
      { assertion { iss = "3MVG9unknown" }, "invalid_client_id", "client identifier invalid" },
      { assertion { aud = "https://acme.my.salesforce.com" }, "invalid_grant", "audience is invalid" },
      { assertion { aud = "https://test.salesforce.com" }, "invalid_grant", "audience is invalid" },
      { assertion { exp = math.floor(sched.time()) + 3600 }, "invalid_grant", "invalid assertion" },
      { assertion { exp = math.floor(sched.time()) - 600 }, "invalid_grant", "expired authorization code" },
      { assertion { sub = t.users[3].Username }, "invalid_grant", "user hasn't approved this consumer" },
      { assertion { sub = "nobody@example.com" }, "invalid_grant", "user hasn't approved this consumer" },
      { "not.a.jwt", "invalid_grant", "invalid assertion" },
    }
    for i, c in ipairs(cases) do
      st, body = token_call { grant_type = JWT, assertion = c[1] }
      assert.equal(400, st, i)
      assert.same({ error = c[2], error_description = c[3] }, body, i)
    end
    st, body = token_call { grant_type = "password", username = "x", password = "y" }
    assert.same({ error = "unsupported_grant_type", error_description = "grant type not supported" }, body)
  end)

  it("checks the PKCE verifier of the web server flow and the consumer secret", function()
    local verifier = crypto.b64url(crypto.random(32))
    local got
    local cb = assert(server.listen { port = 0 })
    cb:route("GET", "/cb", function(req) got = req.query; return 200, "ok" end)
    local function consent()
      got = nil
      assert(http.request { url = srv.url .. "/services/oauth2/authorize", query = { response_type = "code",
        client_id = t.app.client_id, redirect_uri = cb.url .. "/cb", scope = "api refresh_token", state = "s1",
        code_challenge = crypto.b64url(crypto.sha256(verifier)), code_challenge_method = "S256" } })
      assert.equal("s1", got.state)
      return got.code
    end
    local form = { grant_type = "authorization_code", code = consent(), client_id = t.app.client_id, client_secret = t.app.client_secret,
      redirect_uri = cb.url .. "/cb", code_verifier = crypto.b64url(crypto.random(32)) }
    local st, body = token_call(form)
    assert.same({ 400, "invalid_grant", "invalid code verifier" }, { st, body.error, body.error_description })
    st, body = token_call(form)                 -- a code is good once
    assert.same({ 400, "invalid authorization code" }, { st, body.error_description })
    form.code, form.code_verifier, form.client_secret = consent(), verifier, "wrong"
    st, body = token_call(form)
    assert.same({ 400, "invalid_client" }, { st, body.error })
    form.code, form.client_secret = consent(), t.app.client_secret
    st, body = token_call(form)
    cb:close()
    assert.equal(200, st)
    assert.truthy(body.refresh_token)
    assert.equal("api refresh_token", body.scope)
  end)

  it("answers SOQL with records and refuses what Salesforce refuses", function()
    local st, body = soql("SELECT Id, Username, Profile.Name, UserRole.Name FROM User WHERE IsActive = true ORDER BY Username LIMIT 5")
    assert.equal(200, st)
    assert.equal(5, #body.records)
    assert.is_true(body.done)
    assert.equal("User", body.records[1].attributes.type)
    assert.matches("^/services/data/v62%.0/sobjects/User/005", body.records[1].attributes.url)
    assert.equal("Profile", body.records[1].Profile.attributes.type)
    assert.is_true(body.records[1].Username < body.records[2].Username)
    local cases = {
      { "SELECT Id, Nonsense FROM User", "INVALID_FIELD", "No such column 'Nonsense' on entity 'User'", "Column:12" },
      { "SELECT Id FROM Widget", "INVALID_TYPE", "sObject type 'Widget' is not supported", "Column:16" },
      { "SELECT Id, Profile.Nope FROM User", "INVALID_FIELD", "No such column 'Nope' on entity 'Profile'" },
      { "SELECT Id, Manager.Name FROM User", "INVALID_FIELD", "Didn't understand relationship 'Manager'" },
      { "SELECT Id FROM User WHERE IsActive = 'true'", "INVALID_FIELD", "must be of type boolean" },
      { "SELECT Id FROM LoginHistory WHERE LoginTime > '2024-01-01'", "INVALID_FIELD", "must be of type dateTime" },
      { "SELECT Id FROM LoginHistory WHERE LoginTime > 2024-01-01", "INVALID_FIELD", "must be of type dateTime" },
      { "SELECT Id FROM User WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'" },
      { "SELECT Id User", "MALFORMED_QUERY", "unexpected token: 'User'" },
      { "SELECT FROM User", "MALFORMED_QUERY", "unexpected token: 'FROM'" },
      { "SELECT Id FROM ContentDocumentLink", "MALFORMED_QUERY", "Implementation restriction: ContentDocumentLink requires a filter" },
    }
    for _, c in ipairs(cases) do
      st, body = soql(c[1])
      assert.equal(400, st, c[1])
      assert.equal(c[2], body[1].errorCode, c[1])
      assert.truthy(body[1].message:find(c[3], 1, true), c[1] .. ": " .. body[1].message)
      if c[4] then assert.truthy(body[1].message:find("ERROR at Row:1:" .. c[4], 1, true), body[1].message) end
    end
    -- names are case-insensitive; ids match in 15 or 18 characters; LIKE, IN and date literals
    local id = t.users[2].Id
    st, body = soql("select id from user where id = '" .. id:sub(1, 15) .. "'")
    assert.same({ 200, 1, id }, { st, #body.records, body.records[1].Id })
    st, body = soql("SELECT Id FROM User WHERE Username LIKE 'integration%' OR Id IN ('" .. id .. "')")
    assert.equal(2, #body.records)
    st, body = soql("SELECT Id FROM LoginHistory WHERE LoginTime = LAST_N_DAYS:1")
    assert.equal(200, st)
    assert.is_true(#body.records > 0 and #body.records < #t.db.LoginHistory)
    st, body = soql("SELECT Id, LinkedEntity.Name FROM ContentDocumentLink WHERE ContentDocumentId = '" .. t.db.ContentDocument[1].Id .. "'")
    assert.equal(200, st)
    assert.is_true(#body.records >= 1)
  end)

  it("pages by nextRecordsUrl in batches Sforce-Query-Options asks for (200 to 2,000)", function()
    local st, body = call("GET", "/services/data/v62.0/query", { query = { q = "SELECT Id FROM LoginHistory" },
      headers = { ["Sforce-Query-Options"] = "batchSize=10" } })
    assert.equal(200, st)
    local total = #t.db.LoginHistory
    assert.is_true(total > 250)
    assert.equal(total, body.totalSize)
    assert.equal(200, #body.records)              -- batchSize below 200 is 200
    assert.is_false(body.done)
    local seen = {}
    for _, r in ipairs(body.records) do seen[r.Id] = true end
    local pages = 1
    while not body.done do
      assert.matches("^/services/data/v62%.0/query/01g%w+%-%d+$", body.nextRecordsUrl)
      st, body = call("GET", body.nextRecordsUrl, { headers = { ["Sforce-Query-Options"] = "batchSize=200" } })
      assert.equal(200, st)
      for _, r in ipairs(body.records) do assert.is_nil(seen[r.Id]); seen[r.Id] = true end
      pages = pages + 1
    end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(total, n)
    assert.equal(math.ceil(total / 200), pages)
    st, body = call("GET", "/services/data/v62.0/query/01gNOPE-2000")
    assert.same({ 400, "INVALID_QUERY_LOCATOR" }, { st, body[1].errorCode })
  end)

  it("shows deleted files to queryAll only", function()
    local n = 0
    for _, d in ipairs(t.db.ContentDocument) do if not d.IsDeleted then n = n + 1 end end
    local _, live = soql("SELECT Id FROM ContentDocument")
    local _, all = soql("SELECT Id, IsDeleted FROM ContentDocument", true)
    assert.equal(n, #live.records)
    assert.equal(#t.db.ContentDocument, #all.records)
    assert.is_true(#all.records > #live.records)
  end)

  it("refuses calls without a session, counts the org's daily requests and says so", function()
    local r = assert(http.request { url = srv.url .. "/services/data/v62.0/limits" })
    assert.equal(401, r.status)
    assert.same({ { message = "Session expired or invalid", errorCode = "INVALID_SESSION_ID" } }, json.decode(r.body))
    local st, body, resp = call("GET", "/services/data/v62.0/limits")
    assert.equal(200, st)
    local used, limit = resp.headers["sforce-limit-info"]:match("^api%-usage=(%d+)/(%d+)$")
    assert.equal(t.api_limit, tonumber(limit))
    assert.equal(t.api_used, tonumber(used))
    assert.equal(body.DailyApiRequests.Max - t.api_used, body.DailyApiRequests.Remaining)
    local saved = t.api_used
    t.api_used = t.api_limit
    st, body = call("GET", "/services/data/v62.0/limits")
    t.api_used = saved
    assert.same({ 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded." }, { st, body[1].errorCode, body[1].message })
    st, body = call("GET", "/services/data/v20.0/limits")
    assert.same({ 404, "NOT_FOUND" }, { st, body[1].errorCode })
  end)

  it("updates only what Salesforce lets change, as it says", function()
    local l = t.users[4]["@login"]
    local st, body = call("PATCH", "/services/data/v62.0/sobjects/UserLogin/" .. l.Id, { body = '{"IsPasswordLocked": true}',
      headers = { ["Content-Type"] = "application/json" } })
    assert.same({ 400, "FIELD_INTEGRITY_EXCEPTION" }, { st, body[1].errorCode })
    st, body = call("PATCH", "/services/data/v62.0/sobjects/UserLogin/" .. l.Id, { body = '{"UserId": "005x"}' })
    assert.same({ 400, "INVALID_FIELD_FOR_INSERT_UPDATE", { "UserId" } }, { st, body[1].errorCode, body[1].fields })
    st, body = call("PATCH", "/services/data/v62.0/sobjects/UserLogin/" .. l.Id, { body = '{"IsFrozen": "yes"}' })
    assert.same({ 400, "JSON_PARSER_ERROR" }, { st, body[1].errorCode })
    st = call("PATCH", "/services/data/v62.0/sobjects/UserLogin/" .. l.Id, { body = '{"IsFrozen": true}' })
    assert.equal(204, st)
    assert.is_true(l.IsFrozen)
    -- a frozen user cannot sign in
    local _, tb = token_call { grant_type = JWT, assertion = assertion { sub = t.users[4].Username } }
    assert.equal("invalid_grant", tb.error)
    st, body = call("GET", "/services/data/v62.0/sobjects/User/005NOPE000000000AAA")
    assert.same({ 404, "NOT_FOUND" }, { st, body[1].errorCode })
    st, body = call("POST", "/services/data/v62.0/sobjects/ContentVersion", { body = '{"PathOnClient": "x.txt"}' })
    assert.same({ 400, "REQUIRED_FIELD_MISSING", { "VersionData" } }, { st, body[1].errorCode, body[1].fields })
  end)

  it("revokes a user's OAuth token by its DeleteToken", function()
    local o = t.db.OauthToken[1]
    local r = assert(http.request { method = "POST", url = srv.url .. "/services/oauth2/revoke", body = http.form { token = o.DeleteToken },
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    assert.equal(200, r.status)
    local _, body = soql("SELECT Id FROM OauthToken WHERE Id = '" .. o.Id .. "'")
    assert.equal(0, #body.records)
    r = assert(http.request { method = "POST", url = srv.url .. "/services/oauth2/revoke", body = http.form { token = o.DeleteToken },
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    assert.equal(400, r.status)
  end)

  it("serves event log files as CSV whose columns are LogFileFieldNames", function()
    local _, body = soql("SELECT Id, EventType, LogFileFieldNames, LogFileLength FROM EventLogFile WHERE EventType = 'API'")
    assert.is_true(#body.records > 0)
    local f = body.records[1]
    local st, text, resp = call("GET", "/services/data/v62.0/sobjects/EventLogFile/" .. f.Id .. "/LogFile")
    assert.equal(200, st)
    assert.matches("^text/csv", resp.headers["content-type"])
    assert.equal(f.LogFileLength, #text)
    local recs, header = assert(csv.records(text))
    assert.equal(f.LogFileFieldNames, table.concat(header, ","))
    assert.is_true(#recs > 0)
    assert.equal("API", recs[1].EVENT_TYPE)
  end)
end)
