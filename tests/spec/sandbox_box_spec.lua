-- sandbox_box_spec.lua — the Box sandbox tenant, exercised over real HTTP on a port-0 server.
local box = require "sandbox.box"
local T = require "sandbox.tenant"

-- RFC 3339 times with offsets compare by instant
local function T_lt(a, b) return T.parse_iso(a) < T.parse_iso(b) end

local function new_tenant(extra)
  local o = { seed = 5, users = 25, groups = 3, folders = 8, files = 30, events = 120, days = 20,
              client_id = "cid", client_secret = "csecret", enterprise_id = "4242" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return box.new(o)
end

describe("box sandbox", function()
  local t, srv
  local function call(method, path, body, hdr)
    local h = { Authorization = "Bearer " .. t.token, ["Content-Type"] = "application/json" }
    for k, v in pairs(hdr or {}) do h[k] = v end
    if hdr and hdr.Authorization == false then h.Authorization = nil end
    local r = assert(http.request { method = method, url = srv.url .. path, headers = h, body = body })
    local ok, data = pcall(json.decode, r.body)
    r.data = ok and data or nil
    return r
  end
  setup(function()
    t = new_tenant()
    srv = assert(server.listen { port = 0 })
    t:mount(srv)
  end)
  teardown(function() srv:close() end)

  it("is deterministic in its seed", function()
    local a, b, c = new_tenant(), new_tenant(), new_tenant { seed = 6 }
    assert.equal(a.state.users[3].id, b.state.users[3].id)
    assert.equal(a.state.order[20], b.state.order[20])
    assert.equal(a:file_content(a.state.order[20]), b:file_content(b.state.order[20]))
    assert.is_not.equal(a.state.users[3].login .. a.state.order[20], c.state.users[3].login .. c.state.order[20])
    -- the seeded sensitive kinds are all present
    for _, k in ipairs { "card", "ssn", "aws", "private_key" } do assert.is_true(#a:sensitive_files(k) >= 1, k) end
    assert.equal("public", a:access_level(a:sensitive_files("card")[1]))
    assert.equal("external", a:access_level(a:sensitive_files("aws")[1]))
  end)

  it("refuses requests without a valid bearer token, and issues tokens by grant", function()
    local r = call("GET", "/2.0/users", nil, { Authorization = false })
    assert.equal(401, r.status)
    assert.matches("invalid_token", r.headers["www-authenticate"])
    local function token(form)
      return assert(http.request { method = "POST", url = srv.url .. "/oauth2/token", body = http.form(form),
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
    end
    r = token { grant_type = "client_credentials", client_id = "cid", client_secret = "csecret", box_subject_type = "enterprise", box_subject_id = "4242" }
    assert.equal(200, r.status)
    local tk = json.decode(r.body)
    assert.equal("bearer", tk.token_type)
    assert.is_nil(tk.refresh_token)
    r = call("GET", "/2.0/users/me", nil, { Authorization = "Bearer " .. tk.access_token })
    assert.equal(200, r.status)
    r = token { grant_type = "client_credentials", client_id = "cid", client_secret = "csecret", box_subject_type = "enterprise", box_subject_id = "1" }
    assert.equal(400, r.status); assert.equal("invalid_grant", json.decode(r.body).error)
    r = token { grant_type = "client_credentials", client_id = "cid", client_secret = "wrong", box_subject_type = "enterprise", box_subject_id = "4242" }
    assert.equal(400, r.status); assert.equal("invalid_client", json.decode(r.body).error)
  end)

  it("paginates users by offset and marker, narrows with fields=", function()
    local r = call("GET", "/2.0/users?limit=10&offset=20")
    assert.equal(200, r.status)
    assert.equal(25, r.data.total_count)
    assert.equal(5, #r.data.entries)
    assert.is_nil(r.data.entries[1].role)                 -- role is not a default field
    r = call("GET", "/2.0/users?limit=10&fields=role,status")
    assert.is_string(r.data.entries[1].role)
    assert.is_nil(r.data.entries[1].space_amount)
    assert.equal(400, call("GET", "/2.0/users?offset=10001").status)
    local seen, marker, pages = 0, nil, 0
    repeat
      r = call("GET", "/2.0/users?usemarker=true&limit=7" .. (marker and ("&marker=" .. marker) or ""))
      seen = seen + #r.data.entries; pages = pages + 1
      marker = r.data.next_marker ~= json.null and r.data.next_marker or nil
    until not marker
    assert.equal(25, seen); assert.equal(4, pages)
    -- status enum validation
    local u = t.state.users[4]
    assert.equal(400, call("PUT", "/2.0/users/" .. u.id, '{"status":"suspended"}').status)
    r = call("PUT", "/2.0/users/" .. u.id, '{"status":"cannot_delete_edit_upload"}')
    assert.equal(200, r.status); assert.equal("cannot_delete_edit_upload", u.status)
  end)

  it("serves admin_logs by stream position with filters, only to admins", function()
    local r = call("GET", "/2.0/events?stream_type=admin_logs&limit=50")
    assert.equal(50, r.data.chunk_size)
    local pos = r.data.next_stream_position
    r = call("GET", "/2.0/events?stream_type=admin_logs&limit=500&stream_position=" .. pos)
    assert.equal(t:count("events") - 50, r.data.chunk_size)
    local last = r.data.next_stream_position
    r = call("GET", "/2.0/events?stream_type=admin_logs&stream_position=" .. last)
    assert.equal(0, r.data.chunk_size)
    assert.equal(last, call("GET", "/2.0/events?stream_type=admin_logs&stream_position=now").data.next_stream_position)
    r = call("GET", "/2.0/events?stream_type=admin_logs&limit=500&event_type=LOGIN,FAILED_LOGIN")
    for _, e in ipairs(r.data.entries) do assert.truthy(e.event_type == "LOGIN" or e.event_type == "FAILED_LOGIN") end
    local mid = r.data.entries[math.max(1, #r.data.entries // 2)].created_at
    r = call("GET", "/2.0/events?stream_type=admin_logs&limit=500&created_before=" .. http.urlencode(mid))
    for _, e in ipairs(r.data.entries) do assert.is_true(T_lt(e.created_at, mid)) end
    -- a user's token is refused the enterprise stream
    local plain
    for _, u in ipairs(t.state.users) do if u.role == "user" and u.status == "active" then plain = u; break end end
    local status, body = t:issue_token(plain.id, "user", false)
    assert.equal(200, status)
    r = call("GET", "/2.0/events?stream_type=admin_logs", nil, { Authorization = "Bearer " .. body.access_token })
    assert.equal(403, r.status)
    assert.equal("access_denied_insufficient_permissions", r.data.code)
  end)

  it("removes a shared link with null, refuses name clashes, wants attributes before file", function()
    local id = t:sensitive_files("card")[1]
    local r = call("PUT", "/2.0/files/" .. id .. "?fields=shared_link", '{"shared_link":null}')
    assert.equal(200, r.status)
    assert.equal(json.null, r.data.shared_link)
    assert.is_nil(t:find_file(id).link)
    local it = t:find_file(id)
    local sib
    for _, c in ipairs(t:children(it.parent)) do if c.id ~= id then sib = c end end
    if sib then
      r = call("PUT", "/2.0/files/" .. id, json.encode { name = sib.name })
      assert.equal(409, r.status); assert.equal("item_name_in_use", r.data.code)
      assert.equal(sib.id, r.data.context_info.conflicts[1].id)
    end
    local function multipart(parts)
      local b = {}
      for _, p in ipairs(parts) do
        b[#b + 1] = "--XyZ\r\nContent-Disposition: form-data; name=\"" .. p[1] .. "\"" .. (p[1] == "file" and '; filename="x.txt"' or "") .. "\r\n\r\n" .. p[2] .. "\r\n"
      end
      return table.concat(b) .. "--XyZ--\r\n"
    end
    local hdr = { ["Content-Type"] = "multipart/form-data; boundary=XyZ" }
    r = call("POST", "/api/2.0/files/content", multipart { { "file", "hello" }, { "attributes", '{"name":"n.txt","parent":{"id":"0"}}' } }, hdr)
    assert.equal(400, r.status); assert.equal("metadata_after_file_contents", r.data.code)
    r = call("POST", "/api/2.0/files/content", multipart { { "attributes", '{"name":"n.txt","parent":{"id":"0"}}' }, { "file", "hello\r\nworld" } }, hdr)
    assert.equal(201, r.status)
    local nid = r.data.entries[1].id
    assert.equal("hello\r\nworld", t:file_content(nid))
    assert.equal(box.sha1_hex("hello\r\nworld"), r.data.entries[1].sha1)
  end)

  it("answers 429 with retry-after and a ClientError body", function()
    t:fault { kind = "429", count = 1, retry_after = 3 }
    local r = call("GET", "/2.0/groups")
    assert.equal(429, r.status)
    assert.equal("3", r.headers["retry-after"])
    assert.equal("rate_limit_exceeded", r.data.code)
    assert.equal("error", r.data.type)
    assert.equal(200, call("GET", "/2.0/groups").status)
  end)

  it("signs webhook deliveries with both keys over body and timestamp", function()
    local got
    local hs = assert(server.listen { port = 0 })
    hs:route("POST", "/hook", function(req) got = req; return 200, "" end)
    local id = t:sensitive_files("ssn")[1]
    local folder = t:find_file(id).parent
    local r = call("POST", "/2.0/webhooks", json.encode { target = { id = folder, type = "folder" }, address = hs.url .. "/hook", triggers = { "FILE.TRASHED" } })
    assert.equal(201, r.status)
    assert.equal(400, call("POST", "/2.0/webhooks", json.encode { target = { id = "0", type = "folder" }, address = hs.url, triggers = { "FILE.TRASHED" } }).status)
    assert.equal(204, call("DELETE", "/2.0/files/" .. id).status)
    t:flush()
    hs:close()
    assert.is_not_nil(got)
    local ts = got.headers["box-delivery-timestamp"]
    assert.equal(box.sign(t.keys.primary, got.body, ts), got.headers["box-signature-primary"])
    assert.equal(box.sign(t.keys.secondary, got.body, ts), got.headers["box-signature-secondary"])
    assert.equal("FILE.TRASHED", json.decode(got.body).trigger)
    assert.equal(id, json.decode(got.body).source.id)
    -- the file is in the trash listing now, and restorable
    r = call("GET", "/2.0/files/" .. id .. "/trash")
    assert.equal("trashed", r.data.item_status)
    assert.equal(201, call("POST", "/2.0/files/" .. id, "{}").status)
    assert.equal(404, call("GET", "/2.0/files/" .. id .. "/trash").status)
  end)
end)
