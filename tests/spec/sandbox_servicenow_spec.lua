-- The ServiceNow sandbox instance follows the reference (shared/api/servicenow.md), not the connector:
-- raw requests, checked against what ServiceNow documents.
local helpers = require "helpers"
local sn = require "sandbox.servicenow"
local links = require("sdk.util").links

describe("servicenow sandbox", function()
  local t, srv, basic
  local function call(method, path, opts)
    opts = opts or {}
    local headers = { Accept = "application/json" }
    for k, v in pairs(opts.headers or {}) do headers[k] = v end
    if opts.auth ~= false and not headers.Authorization then headers.Authorization = basic end
    local resp = assert(http.request { method = method, url = srv.url .. path, query = opts.query, headers = headers,
      body = opts.body })
    resp.data = resp.body ~= "" and json.decode(resp.body) or nil
    return resp
  end
  local function list(path, query) return call("GET", "/api/now/table/" .. path, { query = query }) end
  local function basic_of(user, pw) return "Basic " .. crypto.b64(user .. ":" .. pw) end

  setup(function()
    t = sn.new { seed = 11, users = 30, groups = 4, events_per_day = 30, days = 2, files = 4 }
    srv = helpers.serve(t)
    basic = basic_of(t.integration.user_name, t.integration.password)
  end)
  teardown(function() srv:close() end)

  it("answers 401 with ServiceNow's body without credentials or with wrong ones", function()
    for _, h in ipairs { false, basic_of(t.integration.user_name, "nope") } do
      local r = call("GET", "/api/now/table/sys_user", { auth = h and nil or false, headers = { Authorization = h or nil } })
      assert.equal(401, r.status)
      assert.same({ error = { message = "User Not Authenticated", detail = "Required to provide Auth information" },
        status = "failure" }, r.data)
    end
  end)

  it("oauth_token.do: form-encoded grants only; password and refresh grants, client credentials", function()
    local form = { grant_type = "password", client_id = t.client.id, client_secret = t.client.secret,
      username = t.integration.user_name, password = t.integration.password }
    local r = call("POST", "/oauth_token.do", { auth = false, body = json.encode(form), headers = { ["Content-Type"] = "application/json" } })
    assert.equal(401, r.status)
    r = call("POST", "/oauth_token.do", { auth = false, body = http.form(form),
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    assert.equal(200, r.status)
    assert.equal("Bearer", r.data.token_type)
    assert.equal(1799, r.data.expires_in)
    assert.is_string(r.data.refresh_token)
    assert.equal(200, call("GET", "/api/now/table/sys_user", { query = { sysparm_limit = 1 },
      headers = { Authorization = "Bearer " .. r.data.access_token } }).status)
    local rt = r.data.refresh_token
    r = call("POST", "/oauth_token.do", { auth = false, headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { grant_type = "refresh_token", client_id = t.client.id, client_secret = t.client.secret, refresh_token = rt } })
    assert.equal(200, r.status)
    assert.equal(rt, r.data.refresh_token)
    -- wrong secret, unknown client
    form.client_secret = "wrong"
    r = call("POST", "/oauth_token.do", { auth = false, body = http.form(form), headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    assert.equal(401, r.status)
    assert.same({ error = "server_error", error_description = "access_denied" }, r.data)
    -- client credentials: only a registry with a run-as user, no refresh token
    local function cc(id)
      return call("POST", "/oauth_token.do", { auth = false, headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = http.form { grant_type = "client_credentials", client_id = id, client_secret = t.client.secret } })
    end
    assert.equal(401, cc(t.client.id).status)
    r = cc(t.client.id .. "-cc")
    assert.equal(200, r.status)
    assert.is_nil(r.data.refresh_token)
  end)

  it("pages with sysparm_limit / sysparm_offset, X-Total-Count and the Link header", function()
    local total = #t.tables.sys_user.rows
    local r = list("sys_user", { sysparm_limit = 7, sysparm_fields = "sys_id", sysparm_query = "ORDERBYsys_id" })
    assert.equal(tostring(total), r.headers["x-total-count"])
    assert.equal(7, #r.data.result)
    local l = links(r.headers["link"])
    assert.matches("sysparm_offset=0", l.first)
    assert.matches("sysparm_offset=7", l.next)
    assert.is_nil(l.prev)
    assert.matches("sysparm_offset=" .. ((total - 1) // 7) * 7, l.last)
    assert.matches("sysparm_query=ORDERBYsys_id", l.next)
    local seen, url, n = {}, l.next, 1
    for _, u in ipairs(r.data.result) do seen[u.sys_id] = true end
    while url do
      local p = assert(http.request { url = url, headers = { Authorization = basic, Accept = "application/json" } })
      local d = json.decode(p.body)
      for _, u in ipairs(d.result) do seen[u.sys_id] = true end
      local pl = links(p.headers["link"])
      assert.is_string(pl.prev)
      url, n = pl.next, n + 1
    end
    local k = 0
    for _ in pairs(seen) do k = k + 1 end
    assert.equal(total, k)
    assert.equal(math.ceil(total / 7), n)
    -- one page: no Link
    assert.is_nil(list("sys_user", { sysparm_limit = 10000 }).headers["link"])
  end)

  it("reads encoded queries: IN, ^OR, ^NQ, ORDERBYDESC, dot-walks; an unknown field is ignored", function()
    local function n(q, tbl) return #list(tbl or "sysevent", { sysparm_query = q, sysparm_fields = "sys_id" }).data.result end
    local logins, failed, all = 0, 0, #t.tables.sysevent.rows
    for _, e in ipairs(t.tables.sysevent.rows) do
      if e.name == "login" then logins = logins + 1 elseif e.name == "login.failed" then failed = failed + 1 end
    end
    assert.is_true(all > logins + failed)
    assert.equal(logins + failed, n("nameINlogin,login.failed"))
    assert.equal(logins + failed, n("name=login^ORname=login.failed"))
    assert.equal(logins + failed, n("name=login^NQname=login.failed"))
    assert.equal(failed, n("name!=login^nameSTARTSWITHlogin"))
    local desc = list("sysevent", { sysparm_query = "ORDERBYDESCsys_created_on", sysparm_fields = "sys_created_on" }).data.result
    assert.is_true(desc[1].sys_created_on >= desc[#desc].sys_created_on)
    local admins = list("sys_user_has_role", { sysparm_query = "role.name=admin", sysparm_fields = "sys_id,role.name" }).data.result
    assert.is_true(#admins > 0)
    for _, a in ipairs(admins) do assert.equal("admin", a["role.name"]) end
    -- invalid conditions are dropped (glide.invalid_query.returns_no_rows is off by default)
    assert.equal(all, n("no_such_field=1"))
    local strict = sn.new { seed = 11, users = 5, events_per_day = 5, days = 1, invalid_query_returns_no_rows = true }
    local s2 = helpers.serve(strict)
    local r = assert(http.request { url = s2.url .. "/api/now/table/sysevent", query = { sysparm_query = "no_such_field=1" },
      headers = { Authorization = basic_of(strict.integration.user_name, strict.integration.password) } })
    s2:close()
    assert.equal(0, #json.decode(r.body).result)
  end)

  it("renders values as strings, references as {link, value} unless excluded; sysparm_fields", function()
    local m = list("sys_user_grmember", { sysparm_limit = 1 }).data.result[1]
    assert.equal(srv.url .. "/api/now/table/sys_user/" .. m.user.value, m.user.link)
    m = list("sys_user_grmember", { sysparm_limit = 1, sysparm_exclude_reference_link = "true", sysparm_fields = "user" }).data.result[1]
    assert.is_string(m.user)
    assert.same({ "user" }, (function() local k = {} for x in pairs(m) do k[#k + 1] = x end return k end)())
    local u = list("sys_user", { sysparm_limit = 1 }).data.result[1]
    assert.is_true(u.active == "true" or u.active == "false")
    assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", u.sys_created_on)
  end)

  it("refuses by role: a user_admin reads sys_user, not sysevent; unknown tables and records", function()
    local reader = basic_of(t.reader.user_name, t.passwords[t.reader.sys_id])
    assert.equal(200, call("GET", "/api/now/table/sys_user", { headers = { Authorization = reader } }).status)
    local r = call("GET", "/api/now/table/sysevent", { headers = { Authorization = reader } })
    assert.equal(403, r.status)
    assert.equal("Insufficient rights to query records", r.data.error.message)
    assert.equal("failure", r.data.status)
    r = call("DELETE", "/api/now/table/sys_user_has_role/" .. t.tables.sys_user_has_role.rows[1].sys_id, { headers = { Authorization = reader } })
    assert.equal(403, r.status)
    assert.equal("ACL Exception Delete Failed due to security constraints", r.data.error.detail)
    -- attachments follow their record's ACL, after the limit: a short page that still has a next link
    r = call("GET", "/api/now/table/sys_attachment", { headers = { Authorization = reader }, query = { sysparm_limit = 2 } })
    local all = #t.tables.sys_attachment.rows
    assert.equal(tostring(all), r.headers["x-total-count"])
    local readable, seen, url = 0, 0, srv.url .. "/api/now/table/sys_attachment?sysparm_limit=2"
    for _, a in ipairs(t.tables.sys_attachment.rows) do if a.table_name == "sys_user_group" then readable = readable + 1 end end
    local short = false
    while url do
      local p = assert(http.request { url = url, headers = { Authorization = reader } })
      local d = json.decode(p.body).result
      for _, a in ipairs(d) do assert.equal("sys_user_group", a.table_name); seen = seen + 1 end
      url = links(p.headers["link"]).next
      short = short or (#d < 2 and url ~= nil)
    end
    assert.equal(readable, seen)
    assert.is_true(short)
    r = list("no_such_table")
    assert.equal(400, r.status)
    assert.equal("Invalid table no_such_table", r.data.error.message)
    r = call("GET", "/api/now/table/sys_user/0123")
    assert.equal(404, r.status)
    assert.same({ message = "No Record found", detail = "Record doesn't exist or ACL restricts the record retrieval" }, r.data.error)
  end)

  it("PATCH locks a user out (audited; they can no longer sign in); inherited roles go with the membership", function()
    local u
    for i = 4, #t.users do if not u and t.users[i].active == "true" and t.users[i].locked_out == "false" then u = t.users[i] end end
    t.passwords[u.sys_id] = "user-pw"
    -- signs in (a user without user_admin may not read sys_user: 403, not 401)
    assert.not_equal(401, call("GET", "/api/now/table/sys_user", { headers = { Authorization = basic_of(u.user_name, "user-pw") } }).status)
    local r = call("PATCH", "/api/now/table/sys_user/" .. u.sys_id, { body = '{"locked_out":"true"}', headers = { ["Content-Type"] = "application/json" } })
    assert.equal(200, r.status)
    assert.equal("true", r.data.result.locked_out)
    local a = list("sys_audit", { sysparm_query = "documentkey=" .. u.sys_id .. "^fieldname=locked_out" }).data.result
    assert.equal(1, #a)
    assert.same({ "false", "true", t.integration.user_name }, { a[1].oldvalue, a[1].newvalue, a[1].user })
    assert.equal(401, call("GET", "/api/now/table/sys_user", { headers = { Authorization = basic_of(u.user_name, "user-pw") } }).status)
    -- an inherited role cannot be deleted; leaving the group takes it away
    local inh
    for _, hr in ipairs(t.tables.sys_user_has_role.rows) do if hr.inherited == "true" then inh = hr end end
    assert.equal(403, call("DELETE", "/api/now/table/sys_user_has_role/" .. inh.sys_id).status)
    local m = list("sys_user_grmember", { sysparm_query = ("user=%s^group=%s"):format(inh.user, inh.granted_by),
      sysparm_exclude_reference_link = "true" }).data.result[1]
    assert.equal(204, call("DELETE", "/api/now/table/sys_user_grmember/" .. m.sys_id).status)
    assert.is_nil(t:get("sys_user_has_role", inh.sys_id))
  end)

  it("Attachment API: an upload onto a record, the file with its content type, DELETE 204 then 404", function()
    local inc = t.tables.incident.rows[1]
    local q = { table_name = "incident", table_sys_id = inc.sys_id, file_name = "notes.csv" }
    local reader = basic_of(t.reader.user_name, t.passwords[t.reader.sys_id])
    local r = call("POST", "/api/now/attachment/file", { query = q, body = "a,b\n", headers = { ["Content-Type"] = "text/csv",
      Authorization = reader } })
    assert.equal(403, r.status)
    assert.equal("ACL Exception Insert Failed due to security constraints", r.data.error.detail)
    r = call("POST", "/api/now/attachment/file", { query = q, body = "a,b\n", headers = { ["Content-Type"] = "text/csv" } })
    assert.equal(201, r.status)
    assert.same({ "notes.csv", "incident", inc.sys_id, "4", "text/csv" }, { r.data.result.file_name, r.data.result.table_name,
      r.data.result.table_sys_id, r.data.result.size_bytes, r.data.result.content_type })
    assert.equal(srv.url .. "/api/now/attachment/" .. r.data.result.sys_id, r.headers["location"])
    q.table_sys_id = "0000"
    assert.equal(404, call("POST", "/api/now/attachment/file", { query = q, body = "x", headers = { ["Content-Type"] = "text/plain" } }).status)
    local a = t.tables.sys_attachment.rows[1]
    local r = call("GET", "/api/now/attachment/" .. a.sys_id .. "/file", { headers = { Accept = "*/*" } })
    assert.equal(200, r.status)
    assert.equal(t.contents[a.sys_id], r.body)
    assert.matches("^text/plain", r.headers["content-type"])
    local m = call("GET", "/api/now/attachment/" .. a.sys_id).data.result
    assert.equal(srv.url .. "/api/now/attachment/" .. a.sys_id .. "/file", m.download_link)
    assert.equal(204, call("DELETE", "/api/now/attachment/" .. a.sys_id).status)
    assert.equal(404, call("GET", "/api/now/attachment/" .. a.sys_id).status)
  end)

  it("rate-limit rules: X-RateLimit-* on every answer, 429 with Retry-After past the limit", function()
    local small = sn.new { seed = 2, users = 5, events_per_day = 1, days = 1, rate_limit = { limit = 3, window = 3600 } }
    local s2 = helpers.serve(small)
    local auth = basic_of(small.integration.user_name, small.integration.password)
    local r
    for _ = 1, 4 do r = assert(http.request { url = s2.url .. "/api/now/table/sys_user", headers = { Authorization = auth } }) end
    s2:close()
    assert.equal(429, r.status)
    assert.equal("3", r.headers["x-ratelimit-limit"])
    assert.is_true(tonumber(r.headers["retry-after"]) >= 1)
    assert.is_true(tonumber(r.headers["x-ratelimit-reset"]) > sched.time())
    assert.equal("failure", json.decode(r.body).status)
  end)

  it("the brute-force control appends failed sign-ins then a login, which sets last_login_time", function()
    local u = t.users[9]
    local n = #t.tables.sysevent.rows
    t:simulate_bruteforce(u.email, 4)
    assert.equal(n + 5, #t.tables.sysevent.rows)
    local last = t.tables.sysevent.rows[#t.tables.sysevent.rows]
    assert.same({ "login", u.user_name, "203.0.113.66" }, { last.name, last.parm1, last.parm2 })
    assert.equal(last.sys_created_on, u.last_login_time)
  end)
end)
