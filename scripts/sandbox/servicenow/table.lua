-- sandbox/servicenow/table.lua — the Table API (/api/now/table/{tableName}, also /api/now/v2/...):
-- list with sysparm_query, sysparm_fields (dot-walks too), sysparm_limit / sysparm_offset paging with
-- X-Total-Count and the Link header (first, prev, next, last), sysparm_display_value and
-- sysparm_exclude_reference_link; one record; PATCH / PUT and DELETE, with the table's ACL, and the
-- audit rows and side effects of changes to users, role grants and tokens.
local S = require "sandbox.servicenow.instance"
local Q = require "sandbox.servicenow.query"
local T, Now = S.T, S.Now
local json = S.json

local DEFAULT_LIMIT = 10000

local function table_of(self, req)
  local name = req.params.table
  if not S.TABLES[name] then return nil, { self:err(400, "Invalid table " .. tostring(name)) } end
  if not self:allowed(req, name, req.method ~= "GET") then
    if req.method == "GET" then return nil, { self:err(403, "Insufficient rights to query records",
      "Field(s) present in the query do not have permission to be read") } end
    local verb = req.method == "DELETE" and "Delete" or "Update"
    return nil, { self:err(403, "Operation Failed", ("ACL Exception %s Failed due to security constraints"):format(verb)) }
  end
  return name
end

-- A field's value, dot-walking through reference fields: "role.name" -> the role's name.
-- -> value | nil when the table has no such field
function Now:resolve(table_name, rec, field)
  local head, rest = field:match("^([^%.]+)%.(.+)$")
  local t = S.TABLES[table_name]
  if not head then
    if not t.has[field] then return nil end
    return rec and rec[field] or ""
  end
  local target = t.refs[head]
  if not target then return nil end
  local ref = rec and rec[head] ~= "" and self:get(target, rec[head]) or nil
  if not ref then
    -- an empty reference: the dot-walked field is empty, if the target table has it
    return self:resolve(target, nil, rest) and "" or nil
  end
  return self:resolve(target, ref, rest)
end

-- A record as the API renders it: the fields asked for (sysparm_fields; unknown ones left out), references
-- as {link, value} unless excluded, display values when asked.
function Now:render(table_name, rec, q)
  local t = S.TABLES[table_name]
  local fields = {}
  if q.sysparm_fields and q.sysparm_fields ~= "" then
    for f in q.sysparm_fields:gmatch("[^,%s]+") do fields[#fields + 1] = f end
  else
    fields = t.all
  end
  local display = q.sysparm_display_value or "false"
  local links = q.sysparm_exclude_reference_link ~= "true"
  local out = {}
  for _, f in ipairs(fields) do
    local v = self:resolve(table_name, rec, f)
    if v ~= nil then
      local target = not f:find(".", 1, true) and t.refs[f]
      if target then
        local ref = v ~= "" and self:get(target, v)
        local shown = ref and (ref[S.TABLES[target].display or "sys_id"] or "") or ""
        if display == "true" then out[f] = (v == "" or not links) and shown or { link = self:record_url(target, v), display_value = shown }
        elseif display == "all" then out[f] = { display_value = shown, value = v, link = (links and v ~= "") and self:record_url(target, v) or nil }
        else out[f] = (v == "" or not links) and v or { link = self:record_url(target, v), value = v } end
      elseif display == "all" then
        out[f] = { display_value = v, value = v }
      else
        out[f] = v
      end
    end
  end
  return out
end

function Now:record_url(table_name, id) return ("%s/api/now/table/%s/%s"):format(self.base_url, table_name, id) end

-- The rows of a table a query selects, in its order.
function Now:select(table_name, q)
  local parsed = Q.parse(q)
  local pred = Q.compile(parsed, function(rec, f) return self:resolve(table_name, rec, f) end,
    function(f) return self:resolve(table_name, nil, f) ~= nil end, self.invalid_query_no_rows)
  local rows = {}
  for _, rec in ipairs(self.tables[table_name].rows) do if pred(rec) then rows[#rows + 1] = rec end end
  local order = {}
  for _, o in ipairs(parsed.order) do
    if self:resolve(table_name, nil, o[1]) ~= nil then order[#order + 1] = o end
  end
  if #order > 0 then
    local pos = {}
    for i, r in ipairs(rows) do pos[r] = i end
    table.sort(rows, function(a, b)
      for _, o in ipairs(order) do
        local va, vb = self:resolve(table_name, a, o[1]), self:resolve(table_name, b, o[1])
        if va ~= vb then
          if o[2] then return va > vb end
          return va < vb
        end
      end
      return pos[a] < pos[b]
    end)
  end
  return rows
end

-- The Link header: first, prev, next, last, each the request's own query at another offset.
function Now:page_links(req, limit, offset, total)
  local keep = {}
  for k, v in pairs(req.query) do
    if k ~= "sysparm_offset" and k ~= "sysparm_limit" then keep[#keep + 1] = { k, v } end
  end
  table.sort(keep, function(a, b) return a[1] < b[1] end)
  local function url(off)
    local l = {}
    for _, kv in ipairs(keep) do l[#l + 1] = kv end
    l[#l + 1] = { "sysparm_limit", tostring(limit) }
    l[#l + 1] = { "sysparm_offset", tostring(off) }
    return self.base_url .. req.path .. "?" .. T.qs(l)
  end
  local function link(off, rel) return "<" .. url(off) .. '>;rel="' .. rel .. '"' end
  local list = { link(0, "first") }
  if offset > 0 then list[#list + 1] = link(math.max(0, offset - limit), "prev") end
  if offset + limit < total then list[#list + 1] = link(offset + limit, "next") end
  list[#list + 1] = link(total > 0 and ((total - 1) // limit) * limit or 0, "last")
  return table.concat(list, ",")
end

function Now:h_list(req)
  local name, e = table_of(self, req)
  if not name then return table.unpack(e) end
  local q = req.query
  local limit = math.tointeger(tonumber(q.sysparm_limit or "")) or DEFAULT_LIMIT
  local offset = math.tointeger(tonumber(q.sysparm_offset or "")) or 0
  if limit < 1 then limit = DEFAULT_LIMIT end
  if self.page_max and limit > self.page_max then limit = self.page_max end
  if offset < 0 then offset = 0 end
  local rows = self:select(name, q.sysparm_query)
  local out = {}
  -- the limit applies before the row ACLs: a page may hold fewer rows than asked, even none
  for i = offset + 1, math.min(#rows, offset + limit) do
    if self:row_readable(req, name, rows[i]) then out[#out + 1] = self:render(name, rows[i], q) end
  end
  local hdr = {}
  if q.sysparm_no_count ~= "true" then hdr["X-Total-Count"] = tostring(#rows) end
  if q.sysparm_suppress_pagination_header ~= "true" and #rows > limit then
    hdr["Link"] = self:page_links(req, limit, offset, #rows)
  end
  return 200, { result = json().array(out) }, hdr
end

local function no_record(self)
  return self:err(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
end

function Now:h_get(req)
  local name, e = table_of(self, req)
  if not name then return table.unpack(e) end
  local rec = self:get(name, req.params.id)
  if not rec or not self:row_readable(req, name, rec) then return no_record(self) end
  return 200, { result = self:render(name, rec, req.query) }
end

-- PATCH / PUT: the fields given (unknown ones ignored), with an audit row for each change of an audited
-- table; a user locked out or deactivated can no longer sign in (precheck, oauth_token.do).
function Now:h_update(req)
  local name, e = table_of(self, req)
  if not name then return table.unpack(e) end
  local rec = self:get(name, req.params.id)
  if not rec then return no_record(self) end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" or json().is_array(body) then
    return self:err(400, "Exception while reading request", "The payload is not valid JSON.")
  end
  local t, audited = S.TABLES[name], false
  for _, n in ipairs(S.AUDITED) do audited = audited or n == name end
  for k, v in pairs(body) do
    if t.has[k] and k ~= "sys_id" and not k:match("^sys_") then
      local new = type(v) == "boolean" and tostring(v) or (v == json().null and "" or tostring(v))
      if rec[k] ~= new then
        if audited then self:audit(name, rec.sys_id, k, rec[k], new, req.user.user_name) end
        rec[k] = new
      end
    end
  end
  rec.sys_updated_on, rec.sys_updated_by = S.glide_time(self:now_ms()), req.user.user_name
  rec.sys_mod_count = tostring((tonumber(rec.sys_mod_count) or 0) + 1)
  return 200, { result = self:render(name, rec, req.query) }
end

-- DELETE -> 204.  An inherited role comes with its group: it goes when the membership does.
function Now:h_delete(req)
  local name, e = table_of(self, req)
  if not name then return table.unpack(e) end
  local rec = self:get(name, req.params.id)
  if not rec then return no_record(self) end
  if name == "sys_user_has_role" and rec.inherited == "true" then
    return self:err(403, "Operation Failed", "ACL Exception Delete Failed due to security constraints")
  end
  self:remove(name, rec)
  if name == "sys_user_grmember" then
    -- the roles the group gave go with the membership
    for i = #self.tables.sys_user_has_role.rows, 1, -1 do
      local hr = self.tables.sys_user_has_role.rows[i]
      if hr.user == rec.user and hr.granted_by == rec.group and hr.inherited == "true" then self:remove("sys_user_has_role", hr) end
    end
  end
  for _, n in ipairs(S.AUDITED) do
    if n == name then self:audit(name, rec.sys_id, "DELETED", "", "", req.user.user_name) end
  end
  return 204, ""
end

local routes = {}
for _, prefix in ipairs { "/api/now/table", "/api/now/v1/table", "/api/now/v2/table" } do
  routes[#routes + 1] = { "GET", prefix .. "/:table", Now.h_list }
  routes[#routes + 1] = { "GET", prefix .. "/:table/:id", Now.h_get }
  routes[#routes + 1] = { "PATCH", prefix .. "/:table/:id", Now.h_update }
  routes[#routes + 1] = { "PUT", prefix .. "/:table/:id", Now.h_update }
  routes[#routes + 1] = { "DELETE", prefix .. "/:table/:id", Now.h_delete }
end
return routes
