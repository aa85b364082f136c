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

  it("serves every event as it was logged, from the compressed chunks and the open one alike", function()
    local big = new_tenant { events = 600 }                    -- two sealed chunks of 256, and the rest
    local s2 = assert(server.listen { port = 0 })
    big:mount(s2)
    local ids, pos = {}, "0"
    repeat
      local r = assert(http.request { url = s2.url .. "/2.0/events?stream_type=admin_logs&limit=500&stream_position=" .. pos,
                                      headers = { Authorization = "Bearer " .. big.token } })
      local d = json.decode(r.body)
      for _, e in ipairs(d.entries) do
        ids[#ids + 1] = e.event_id
        assert.equal(big.state.events[#ids].type, e.event_type)
      end
      pos = d.next_stream_position
    until d.chunk_size == 0
    s2:close()
    assert.equal(600, #big.state.events)
    assert.same(big:truth().activities, ids)
  end)

  it("serves admin_logs by stream position with filters, only to admins", function()
    -- a chunk ends with Box's processing batch: shorter than the limit while more remain; the stream is
    -- read to its end by an empty chunk
    local r = call("GET", "/2.0/events?stream_type=admin_logs&limit=50")
    assert.equal(t.event_batch, r.data.chunk_size)
    local n, last = r.data.chunk_size, r.data.next_stream_position
    repeat
      r = call("GET", "/2.0/events?stream_type=admin_logs&limit=500&stream_position=" .. last)
      assert.is_true(r.data.chunk_size <= t.event_batch)
      n, last = n + r.data.chunk_size, r.data.next_stream_position
    until r.data.chunk_size == 0
    assert.equal(t:count("events"), n)
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
    local as = { ["As-User"] = t:find_file(id).owner }          -- acting as the file's owner
    local r = call("PUT", "/2.0/files/" .. id .. "?fields=shared_link", '{"shared_link":null}', as)
    assert.equal(200, r.status)
    assert.equal(json.null, r.data.shared_link)
    assert.is_nil(t:find_file(id).link)
    local it = t:find_file(id)
    local sib
    for _, c in ipairs(t:children(it.parent)) do if c.id ~= id then sib = c end end
    if sib then
      r = call("PUT", "/2.0/files/" .. id, json.encode { name = sib.name }, as)
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

  it("finds name clashes by the names items have now: renamed, moved, trashed, restored", function()
    -- two live files of one folder (not the root), acted on as its owner
    local a, b
    for _, id in ipairs(t.state.order) do
      local it = t:find_file(id)
      if it.type == "file" and it.parent ~= "0" and not t:in_trash(it) then
        for _, c in ipairs(t:children(it.parent)) do
          if c.type == "file" and c.id ~= id then a, b = it, c end
        end
      end
      if a then break end
    end
    local as = { ["As-User"] = t:find_file(a.parent).owner }
    local function put(it, body) return call("PUT", "/2.0/files/" .. it.id, json.encode(body), as) end
    local function upload(name)
      local attrs = json.encode { name = name, parent = { id = a.parent } }
      return call("POST", "/api/2.0/files/content", "--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n"
        .. attrs .. "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\r\nhi\r\n--XyZ--\r\n",
        { ["As-User"] = as["As-User"], ["Content-Type"] = "multipart/form-data; boundary=XyZ" })
    end
    assert.equal(200, put(a, { name = "Clash.TXT" }).status)
    local r = put(b, { name = "clash.txt" })
    assert.equal(409, r.status); assert.equal(a.id, r.data.context_info.conflicts[1].id)
    assert.equal(200, put(a, { name = "elsewhere.txt" }).status)       -- the old name is free again
    assert.equal(200, put(b, { name = "clash.txt" }).status)
    r = upload("CLASH.txt")
    assert.equal(409, r.status); assert.equal(b.id, r.data.context_info.conflicts[1].id)
    -- moved out of the folder: no clash there
    local other
    for _, id in ipairs(t.state.order) do
      local f = t:find_file(id)
      if f.type == "folder" and id ~= "0" and id ~= a.parent and f.owner == as["As-User"] and not t:in_trash(f) then other = f end
    end
    if other then
      assert.equal(200, put(b, { parent = { id = other.id } }).status)
      assert.equal(200, put(a, { name = "clash.txt" }).status)
      assert.equal(200, put(a, { name = "elsewhere.txt" }).status)
      assert.equal(200, put(b, { parent = { id = a.parent } }).status)
    end
    -- trashed: no clash; restored under a name taken meanwhile: a clash, under another name: that name clashes
    assert.equal(204, call("DELETE", "/2.0/files/" .. b.id, nil, as).status)
    local n = upload("clash.txt")
    assert.equal(201, n.status)
    assert.equal(409, call("POST", "/2.0/files/" .. b.id, "{}", as).status)
    assert.equal(201, call("POST", "/2.0/files/" .. b.id, json.encode { name = "Restored.txt" }, as).status)
    r = put(a, { name = "restored.TXT" })
    assert.equal(409, r.status); assert.equal(b.id, r.data.context_info.conflicts[1].id)
  end)

  it("keeps the last log_max requests in its log, oldest first", function()
    local small = new_tenant { log_max = 4 }
    local s2 = assert(server.listen { port = 0 })
    small:mount(s2)
    local paths = {}
    for i = 1, 7 do
      paths[i] = "/2.0/users/" .. small.state.users[i].id
      assert(http.request { url = s2.url .. paths[i], headers = { Authorization = "Bearer " .. small.token } })
    end
    s2:close()
    assert.equal(7, small.requests)
    local kept = {}
    for _, l in ipairs(small.log) do kept[#kept + 1] = l.path end
    assert.is_true(#kept >= 2 and #kept <= 4)
    assert.same({ table.unpack(paths, 8 - #kept, 7) }, kept)
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
    local as = { ["As-User"] = t:find_file(id).owner }
    local r = call("POST", "/2.0/webhooks", json.encode { target = { id = folder, type = "folder" }, address = hs.url .. "/hook", triggers = { "FILE.TRASHED" } }, as)
    assert.equal(201, r.status)
    assert.equal(400, call("POST", "/2.0/webhooks", json.encode { target = { id = "0", type = "folder" }, address = hs.url, triggers = { "FILE.TRASHED" } }).status)
    assert.equal(204, call("DELETE", "/2.0/files/" .. id, nil, as).status)
    t:flush()
    hs:close()
    assert.is_not_nil(got)
    local ts = got.headers["box-delivery-timestamp"]
    assert.equal(box.sign(t.keys.primary, got.body, ts), got.headers["box-signature-primary"])
    assert.equal(box.sign(t.keys.secondary, got.body, ts), got.headers["box-signature-secondary"])
    assert.equal("FILE.TRASHED", json.decode(got.body).trigger)
    assert.equal(id, json.decode(got.body).source.id)
    -- the file is in the trash listing now, and restorable
    r = call("GET", "/2.0/files/" .. id .. "/trash", nil, as)
    assert.equal("trashed", r.data.item_status)
    assert.equal(201, call("POST", "/2.0/files/" .. id, "{}", as).status)
    assert.equal(404, call("GET", "/2.0/files/" .. id .. "/trash", nil, as).status)
  end)

  it("hides managed users' content from the service account unless it acts As-User", function()
    local r = assert(http.request { method = "POST", url = srv.url .. "/oauth2/token", headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = http.form { grant_type = "client_credentials", client_id = "cid", client_secret = "csecret", box_subject_type = "enterprise", box_subject_id = "4242" } })
    local sa = "Bearer " .. json.decode(r.body).access_token
    -- the service account is a user of its own, with an empty root
    r = call("GET", "/2.0/users/me", nil, { Authorization = sa })
    assert.equal(t.service.id, r.data.id)
    r = call("GET", "/2.0/folders/0/items?limit=1000", nil, { Authorization = sa })
    assert.equal(200, r.status); assert.equal(0, r.data.total_count)
    local id = t:sensitive_files("card")[1]
    local owner = t:find_file(id).owner
    assert.equal(404, call("GET", "/2.0/files/" .. id, nil, { Authorization = sa }).status)
    assert.equal(404, call("PUT", "/2.0/files/" .. id .. "?fields=shared_link", '{"shared_link":null}', { Authorization = sa }).status)
    assert.equal(404, call("GET", "/2.0/files/" .. id .. "/content", nil, { Authorization = sa }).status)
    assert.equal(404, call("DELETE", "/2.0/files/" .. id, nil, { Authorization = sa }).status)
    assert.is_false(t:in_trash(t:find_file(id)))
    -- As-User the owner: the file, and the owner's root (their own top-level items and what others share with them)
    r = call("GET", "/2.0/files/" .. id .. "?fields=owned_by", nil, { Authorization = sa, ["As-User"] = owner })
    assert.equal(200, r.status); assert.equal(owner, r.data.owned_by.id)
    r = call("GET", "/2.0/folders/0/items?limit=1000&fields=owned_by", nil, { Authorization = sa, ["As-User"] = owner })
    local own = 0
    for _, e in ipairs(r.data.entries) do
      if e.owned_by.id == owner then own = own + 1 else assert.is_true(t:reaches(t:find_user(owner), t:find_file(e.id))) end
    end
    local top = 0
    for _, c in ipairs(t:children("0")) do if c.owner == owner then top = top + 1 end end
    assert.equal(top, own)
    -- an item collaborated with a user shows in that user's root though someone else owns it
    local shared
    for _, c in ipairs(t.state.collabs) do
      local u = not c.group and t:find_user(c.who)
      if u and not u.external and t:find_file(c.item).owner ~= u.id and not t:in_trash(t:find_file(c.item)) then shared = c; break end
    end
    r = call("GET", "/2.0/folders/0/items?limit=1000", nil, { Authorization = sa, ["As-User"] = shared.who })
    local listed = false
    for _, e in ipairs(r.data.entries) do if e.id == shared.item then listed = true end end
    assert.is_true(listed)
    -- who may act as whom: not a plain user, not as the service account, not when the app may not
    local plain
    for _, u in ipairs(t.state.users) do if u.role == "user" and u.status == "active" then plain = u; break end end
    local _, tk = t:issue_token(plain.id, "user", false)
    r = call("GET", "/2.0/folders/0/items", nil, { Authorization = "Bearer " .. tk.access_token, ["As-User"] = owner })
    assert.equal(403, r.status); assert.equal("access_denied_insufficient_permissions", r.data.code)
    assert.equal(403, call("GET", "/2.0/folders/0/items", nil, { Authorization = sa, ["As-User"] = t.service.id }).status)
    local off = new_tenant { as_user = false }
    local s2 = assert(server.listen { port = 0 })
    off:mount(s2)
    local r2 = assert(http.request { method = "GET", url = s2.url .. "/2.0/folders/0/items",
      headers = { Authorization = "Bearer " .. off.token, ["As-User"] = owner } })
    s2:close()
    assert.equal(403, r2.status)
  end)

  it("refuses group and membership offsets past 10,000 with Box's 400; those endpoints have no marker paging", function()
    local g = t.state.groups[1].id
    for _, path in ipairs { "/2.0/groups", "/2.0/groups/" .. g .. "/memberships", "/2.0/users/" .. t.state.users[2].id .. "/memberships" } do
      local r = call("GET", path .. "?offset=10001")
      assert.equal(400, r.status, path)
      assert.equal("error", r.data.type); assert.equal(400, r.data.status); assert.equal("invalid_parameter", r.data.code)
      assert.is_string(r.data.request_id)
      assert.equal(200, call("GET", path .. "?offset=10000").status)
      -- usemarker is not a parameter of these: the answer is an offset page, with no marker to follow
      r = call("GET", path .. "?usemarker=true&limit=1")
      assert.is_number(r.data.total_count)
      assert.is_nil(r.data.next_marker)
    end
  end)

  it("streams admin_logs_streaming by position, at least once, in short chunks while more remain", function()
    local ids, n, pos, dups, short, unordered = {}, 0, "0", 0, false, false
    repeat
      local r = call("GET", "/2.0/events?stream_type=admin_logs_streaming&limit=500&stream_position=" .. pos)
      assert.equal(200, r.status)
      for k, e in ipairs(r.data.entries) do
        if ids[e.event_id] then dups = dups + 1 else ids[e.event_id] = true; n = n + 1 end
        if k > 1 and T_lt(e.created_at, r.data.entries[k - 1].created_at) then unordered = true end
      end
      if r.data.chunk_size > 0 and r.data.chunk_size < 500 then short = true end
      pos = r.data.next_stream_position
    until r.data.chunk_size == 0
    assert.is_true(short)
    assert.is_true(dups > 0)                               -- duplicates happen: dedupe by event_id
    assert.is_true(unordered)                              -- and not in chronological order
    local recent = 0
    for _, e in ipairs(t.state.events) do if e.ms >= t:now_ms() - 14 * 86400000 then recent = recent + 1 end end
    assert.equal(recent, n)                                -- the last two weeks, every event once at least
    -- created_after is an admin_logs parameter only: the streaming type ignores it
    local r = call("GET", "/2.0/events?stream_type=admin_logs_streaming&limit=5&created_after=2999-01-01T00:00:00Z")
    assert.is_true(r.data.chunk_size > 0)
    assert.equal(pos, call("GET", "/2.0/events?stream_type=admin_logs_streaming&stream_position=now").data.next_stream_position)
  end)

  it("terminates sessions only with the body the spec requires (user_ids and user_logins)", function()
    local u = t.state.users[3]
    local r = call("POST", "/2.0/users/terminate_sessions", json.encode { user_ids = { u.id } })
    assert.equal(400, r.status); assert.equal("bad_request", r.data.code)
    r = call("POST", "/2.0/users/terminate_sessions", json.encode { user_logins = { u.login } })
    assert.equal(400, r.status)
    r = call("POST", "/2.0/users/terminate_sessions", '{"user_ids":[' .. u.id .. '],"user_logins":[]}')
    assert.equal(400, r.status); assert.equal("User id format is string", r.data.message)
    r = call("POST", "/2.0/users/terminate_sessions", '{"user_ids":[],"user_logins":[]}')
    assert.equal(400, r.status); assert.equal("Users can not be NULL or EMPTY", r.data.message)
    r = call("POST", "/2.0/users/terminate_sessions", json.encode { user_ids = { u.id }, user_logins = { u.login } })
    assert.equal(202, r.status)
    assert.equal(1, t.terminated[u.id])
  end)
end)
