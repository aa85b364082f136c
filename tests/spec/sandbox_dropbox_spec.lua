-- The Dropbox sandbox team follows Dropbox's rules, not the connector: a team token must say whom it acts
-- as on user routes (Select-User or, where the route allows it, Select-Admin), Path-Root reaches only
-- namespaces the caller may, scopes per route, PKCE, cursors bound to their listing, list_folder/continue
-- giving changes and deletions, team_log filters, Dropbox's error bodies and its 429s.
local dropbox = require "sandbox.dropbox"

describe("dropbox sandbox", function()
  local t, srv, tok
  setup(function()
    t = dropbox.new { seed = 5, users = 20, files = 30, events = 60 }
    srv = assert(server.listen { port = 0 })
    t:mount(srv)
    srv:route("GET", "/cb", function(req) return 200, json.encode(req.query) end)     -- the app's redirect URI
    tok = t:grant_all().access_token
  end)
  teardown(function() srv:close() end)

  local function call(route, arg, headers, token)
    local h = { Authorization = "Bearer " .. (token or tok), ["Content-Type"] = "application/json" }
    for k, v in pairs(headers or {}) do h[k] = v end
    local r = assert(http.request { method = "POST", url = srv.url .. "/2/" .. route, headers = h, body = json.encode(arg == nil and json.null or arg) })
    return r.status, (r.headers["content-type"] or ""):find("json") and json.decode(r.body) or r.body, r.headers
  end
  local function member(status, admin)
    for _, m in ipairs(t.members) do
      if m.status == status and (admin == nil or t:is_admin(m) == admin) then return m end
    end
  end

  it("makes a team token say whom it acts as on user routes, as Dropbox restricts it", function()
    local st, body = call("files/list_folder", { path = "" })
    assert.equal(400, st)
    assert.matches('Dropbox%-API%-Select%-User', body)
    local m = member("active", false)
    st = call("files/list_folder", { path = "" }, { ["Dropbox-API-Select-User"] = m.id })
    assert.equal(200, st)
    st, body = call("files/list_folder", { path = "" }, { ["Dropbox-API-Select-User"] = "dbmid:nobody" })
    assert.equal(401, st)
    assert.equal("invalid_select_user", body.error[".tag"])
    st, body = call("files/list_folder", { path = "" }, { ["Dropbox-API-Select-User"] = member("suspended").id })
    assert.equal(401, st)
    assert.equal("user_suspended", body.error[".tag"])
    -- Select-Admin: an admin only, and only on routes that take it
    st, body = call("files/list_folder", { path = "" }, { ["Dropbox-API-Select-Admin"] = m.id })
    assert.equal(401, st)
    assert.equal("invalid_select_admin/...", body.error_summary)
    st, body = call("files/copy_reference/save", { copy_reference = "x", path = "/x" }, { ["Dropbox-API-Select-Admin"] = t.admin.id })
    assert.equal(400, st)
    assert.matches("does not support the Dropbox%-API%-Select%-Admin header", body)
  end)

  it("lets Path-Root reach only what the caller may: any namespace for whole_team reads, not for team_admin writes", function()
    local m = member("active", false)
    local root = json.encode { [".tag"] = "namespace_id", namespace_id = m.ns }
    local st = call("files/list_folder", { path = "", recursive = true }, { ["Dropbox-API-Select-Admin"] = t.admin.id, ["Dropbox-API-Path-Root"] = root })
    assert.equal(200, st)
    local body
    st, body = call("files/create_folder_v2", { path = "/admin-was-here" }, { ["Dropbox-API-Select-Admin"] = t.admin.id, ["Dropbox-API-Path-Root"] = root })
    assert.equal(422, st)
    assert.equal("no_permission", body.error[".tag"])
    local other = member("active", true) ~= m and t.members[#t.members] or nil
    for _, x in ipairs(t.members) do if x.status == "active" and x ~= m and not t:reaches(x, t.ns_by_id[m.ns]) then other = x end end
    st = call("files/list_folder", { path = "" }, { ["Dropbox-API-Select-User"] = other.id, ["Dropbox-API-Path-Root"] = root })
    assert.equal(422, st)
    st = call("files/list_folder", { path = "" }, { ["Dropbox-API-Select-User"] = m.id, ["Dropbox-API-Path-Root"] = "{not json" })
    assert.equal(400, st)
  end)

  it("refuses a token without the route's scope (401 missing_scope) and a bad token (401 invalid_access_token)", function()
    local scopes = t:granted(nil)
    scopes["events.read"] = nil
    local _, g = t:issue(scopes, false)
    local st, body = call("team_log/get_events", { limit = 5 }, nil, g.access_token)
    assert.equal(401, st)
    assert.same({ [".tag"] = "missing_scope", required_scope = "events.read" }, body.error)
    st, body = call("team/members/list_v2", {}, nil, "nope")
    assert.equal(401, st)
    assert.equal("invalid_access_token/...", body.error_summary)
  end)

  it("checks PKCE and spends a code once; refresh tokens stay and give no new one", function()
    local verifier = "v" .. string.rep("x", 50)
    local challenge = crypto.b64url(crypto.sha256(verifier))
    local function consent()
      local r = assert(http.request { url = srv.url .. "/oauth2/authorize?" .. http.form { client_id = t.client_id, response_type = "code",
        redirect_uri = srv.url .. "/cb", state = "s1", code_challenge = challenge, code_challenge_method = "S256", token_access_type = "offline" } })
      local q = json.decode(r.body)
      assert.equal("s1", q.state)
      return q.code
    end
    local function token(form)
      local r = assert(http.request { method = "POST", url = srv.url .. "/oauth2/token", body = http.form(form),
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
      return r.status, json.decode(r.body)
    end
    local code = consent()
    local st, body = token { grant_type = "authorization_code", code = code, client_id = t.client_id, redirect_uri = srv.url .. "/cb", code_verifier = "wrong" }
    assert.equal(400, st)
    assert.equal("invalid_grant", body.error)
    code = consent()
    st, body = token { grant_type = "authorization_code", code = code, client_id = t.client_id, redirect_uri = srv.url .. "/cb", code_verifier = verifier }
    assert.equal(200, st)
    assert.is_string(body.refresh_token)
    assert.equal(t.team_id, body.team_id)
    assert.equal(14400, body.expires_in)
    st = token { grant_type = "authorization_code", code = code, client_id = t.client_id, redirect_uri = srv.url .. "/cb", code_verifier = verifier }
    assert.equal(400, st)
    local rt = body.refresh_token
    st, body = token { grant_type = "refresh_token", refresh_token = rt, client_id = t.client_id }
    assert.equal(200, st)
    assert.is_nil(body.refresh_token)
    st = token { grant_type = "refresh_token", refresh_token = rt, client_id = t.client_id, client_secret = "wrong" }
    assert.equal(400, st)
  end)

  it("pages by cursor, binds a cursor to its listing, and continues list_folder with changes and deletions", function()
    local seen, st, body = 0, call("team/members/list_v2", { limit = 7 })
    seen = #body.members
    while body.has_more do
      st, body = call("team/members/list/continue_v2", { cursor = body.cursor })
      assert.equal(200, st)
      seen = seen + #body.members
    end
    assert.equal(t:count("users") - t:count("removed_users"), seen)
    st, body = call("team/groups/list/continue", { cursor = body.cursor })
    assert.equal(409, st)
    assert.equal("invalid_cursor", body.error[".tag"])
    -- list_folder: the listing, then what changed since (as the member with the most entries)
    local m, most = nil, -1
    for _, x in ipairs(t.members) do
      local k = 0
      for _, e in ipairs(t.entries) do if e.ns == x.ns then k = k + 1 end end
      if x.status == "active" and k > most then m, most = x, k end
    end
    local h = { ["Dropbox-API-Select-User"] = m.id }
    st, body = call("files/list_folder", { path = "", recursive = true, limit = 1 }, h)
    local n, pages = #body.entries, 1
    while body.has_more do st, body = call("files/list_folder/continue", { cursor = body.cursor }, h); n, pages = n + #body.entries, pages + 1 end
    assert.is_true(n >= 2)
    assert.equal(n, pages)
    local cur = body.cursor
    st, body = call("files/list_folder/continue", { cursor = cur }, h)
    assert.equal(0, #body.entries)
    local up = assert(http.request { method = "POST", url = srv.url .. "/2/files/upload", body = "hello", headers = { Authorization = "Bearer " .. tok,
      ["Dropbox-API-Select-User"] = m.id, ["Content-Type"] = "application/octet-stream", ["Dropbox-API-Arg"] = json.encode { path = "/new.txt" } } })
    assert.equal(200, up.status)
    st, body = call("files/list_folder/continue", { cursor = body.cursor }, h)
    assert.equal(1, #body.entries)
    assert.equal("/new.txt", body.entries[1].path_display)
    call("files/delete_v2", { path = "/new.txt" }, h)
    st, body = call("files/list_folder/continue", { cursor = body.cursor }, h)
    assert.equal("deleted", body.entries[1][".tag"])
    assert.equal("/new.txt", body.entries[1].path_lower)
    -- another member's cursor is not this one's
    st, body = call("files/list_folder/continue", { cursor = body.cursor }, { ["Dropbox-API-Select-User"] = t.admin.id })
    assert.equal(409, st)
    assert.equal("reset", body.error[".tag"])
    -- content arguments are ASCII JSON in Dropbox-API-Arg
    up = assert(http.request { method = "POST", url = srv.url .. "/2/files/upload", body = "x", headers = { Authorization = "Bearer " .. tok,
      ["Dropbox-API-Select-User"] = m.id, ["Content-Type"] = "application/octet-stream", ["Dropbox-API-Arg"] = '{"path":"/caf\195\169.txt"}' } })
    assert.equal(400, up.status)
  end)

  it("filters team_log as documented and refuses a foreign cursor", function()
    local st, body = call("team_log/get_events", { category = { [".tag"] = "logins" }, event_type = { [".tag"] = "login_fail" } })
    assert.equal(409, st)
    assert.equal("invalid_filters", body.error[".tag"])
    st, body = call("team_log/get_events", { limit = 1001 })
    assert.equal(400, st)
    st, body = call("team_log/get_events", { category = { [".tag"] = "logins" }, limit = 1000 })
    assert.equal(200, st)
    for _, e in ipairs(body.events) do assert.equal("logins", e.event_category[".tag"]) end
    st, body = call("team_log/get_events/continue", { cursor = "garbage" })
    assert.equal(409, st)
    assert.equal("bad_cursor", body.error[".tag"])
  end)

  it("signs webhooks with the app secret and answers 429 with Retry-After (too_many_write_operations on writes)", function()
    assert.equal(crypto.hex(crypto.hmac_sha256(t.client_secret, "{}")), dropbox.sign(t.client_secret, "{}"))
    t:fault { kind = "429", path = "/2/files/delete_v2$", retry_after = 3 }
    local st, body, h = call("files/delete_v2", { path = "/nothing" }, { ["Dropbox-API-Select-User"] = t.admin.id })
    assert.equal(429, st)
    assert.equal("3", h["retry-after"])
    assert.equal("too_many_write_operations", body.error.reason[".tag"])
    t:set_rate_limit(1, 60)
    call("team/groups/list", {})
    st, body, h = call("team/groups/list", {})
    t:set_rate_limit(1000, 60)
    assert.equal(429, st)
    assert.equal("too_many_requests", body.error.reason[".tag"])
    assert.is_string(h["retry-after"])
  end)
end)
