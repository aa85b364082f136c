-- sandbox/salesforce/rest.lua — the REST API of a tenant (REST API Developer Guide): versions, limits,
-- query and queryAll (SOQL, soql.lua) with nextRecordsUrl paging (2,000 records a batch unless
-- Sforce-Query-Options asks for 200..2,000; a query's results are fixed when it runs), sObject rows
-- (GET, PATCH of the fields a tenant lets change, DELETE, POST of ContentVersion and ContentDocumentLink),
-- blob fields (EventLogFile LogFile as CSV, ContentVersion VersionData) and User passwords.
local S = require "sandbox.salesforce.org"
local soql = require "sandbox.salesforce.soql"
local T, Org = S.T, S.Org
local json, crypto, err = S.json, S.crypto, S.err

local BATCH, MIN_BATCH = 2000, 200

local function version_ok(v)
  local n = v:match("^v(%d+%.%d)$")
  if not n then return false end
  for _, x in ipairs(S.VERSIONS) do if x == n then return true end end
  return false
end

local function base(self, v) return (self.prefix or "") .. "/services/data/" .. v end

-- A record as the API writes it: attributes, then the selected fields (relationships as nested records).
local function record(self, v, object, row, fields, resolve)
  local out = { attributes = { type = object, url = base(self, v) .. "/sobjects/" .. object .. "/" .. row.Id } }
  for _, f in ipairs(fields) do
    local node, r, ty = out, row, object
    for k = 1, #f.path - 1 do
      local rel = f.path[k]
      local id = r and r[f.keys[k]]
      r = id and resolve(id) or nil
      if not r then node[rel] = json().null; node = nil; break end
      ty = r["@type"]
      if type(node[rel]) ~= "table" then
        node[rel] = { attributes = { type = ty, url = base(self, v) .. "/sobjects/" .. ty .. "/" .. r.Id } }
      end
      node = node[rel]
    end
    if node then
      local name, val = f.path[#f.path], r and r[f.path[#f.path]]
      if f.type == "base64" then val = base(self, v) .. "/sobjects/" .. ty .. "/" .. r.Id .. "/" .. name end
      if val == nil then val = json().null end
      node[name] = val
    end
  end
  return out
end

-- Implementation restriction: ContentDocumentLink is read by the documents or the entities it links.
local function links_filtered(where)
  if not where then return false end
  if where.op == "and" then return links_filtered(where.a) or links_filtered(where.b) end
  return (where.op == "=" or where.op == "in") and #where.f.path == 1
    and (where.f.path[1] == "ContentDocumentId" or where.f.path[1] == "LinkedEntityId")
end

local function batch_size(self, req)
  local n = tonumber(((req.headers["sforce-query-options"] or ""):match("batchSize=(%d+)")) or "") or BATCH
  n = math.max(MIN_BATCH, math.min(BATCH, n))
  if self.page_max then n = math.min(n, self.page_max) end
  return n
end

-- One batch of a query's results from `pos` (0-based), with the next locator when there are more.
local function batch(self, req, c, pos)
  local n = batch_size(self, req)
  local out = {}
  for k = pos + 1, math.min(#c.records, pos + n) do out[#out + 1] = c.records[k] end
  local done = pos + n >= #c.records
  local body = { totalSize = #c.records, done = done, records = json().array(out) }
  if not done then body.nextRecordsUrl = ("%s/%s/%s-%d"):format(base(self, c.v), c.all and "queryAll" or "query", c.id, pos + n) end
  return 200, body
end

local function run_query(self, req, all)
  local v = req.params.v
  if not version_ok(v) then return self:not_found() end
  local q = req.query.q
  if not q or q == "" then return err(400, "MALFORMED_QUERY", "A query string has to be specified") end
  local plan, e = soql.plan(q, S.SCHEMA, self:visible(req.user))
  if not plan then return err(400, e.code, e.message) end
  if plan.object == "ContentDocumentLink" and not links_filtered(plan.where) then
    return err(400, "MALFORMED_QUERY", "Implementation restriction: ContentDocumentLink requires a filter by a single Id on "
      .. "ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.")
  end
  local resolve, now = self:resolver(), self:now_ms()
  local rows = {}
  for _, row in ipairs(self.db[plan.object]) do
    if (all or not row.IsDeleted) and soql.test(plan.where, row, resolve, now) then rows[#rows + 1] = row end
  end
  soql.sort(rows, plan.order, resolve)
  local records = {}
  local from, to = (plan.offset or 0) + 1, plan.limit and ((plan.offset or 0) + plan.limit) or #rows
  for k = from, math.min(to, #rows) do records[#records + 1] = record(self, v, plan.object, rows[k], plan.fields, resolve) end
  local c = { id = S.id18("01g5g" .. T.b62(10, self.seed, "locator", #self.cursors + 1, now)), records = records, v = v, all = all }
  self.cursors[c.id] = c
  self.cursors[#self.cursors + 1] = c.id
  return batch(self, req, c, 0)
end

function Org:h_query(req) return run_query(self, req, false) end
function Org:h_query_all(req) return run_query(self, req, true) end

function Org:h_query_more(req)
  local id, pos = req.params.locator:match("^(%w+)%-(%d+)$")
  local c = id and self.cursors[id]
  if not c or c.v ~= req.params.v then return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator") end
  return batch(self, req, c, tonumber(pos))
end

function Org:h_versions()
  local out = {}
  for _, n in ipairs(S.VERSIONS) do out[#out + 1] = { label = "v" .. n, url = (self.prefix or "") .. "/services/data/v" .. n, version = n } end
  return 200, json().array(out)
end

function Org:h_limits(req)
  if not version_ok(req.params.v) then return self:not_found() end
  return 200, { DailyApiRequests = { Max = self.api_limit, Remaining = math.max(0, self.api_limit - self.api_used) } }
end

---------------------------------------------------------------------------------------------- sObject rows
-- The row of /sobjects/{object}/{id}, visible to the user -> object, row | nil, status, body.
local function find(self, req)
  local v, object = req.params.v, req.params.object
  if not version_ok(v) or not S.SCHEMA[object] or not self:visible(req.user)(object) then return nil, self:not_found() end
  local row = self.byid[req.params.id:sub(1, 15)]
  if not row or row["@type"] ~= object or (row.IsDeleted and object ~= "ContentDocument") then
    return nil, err(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: " .. req.params.id)
  end
  return object, row
end

function Org:h_get(req)
  local object, row, body = find(self, req)
  if not object then return row, body end
  local fields = {}
  local wanted = req.query.fields
  for name, ty in pairs(S.SCHEMA[object].fields) do
    if not wanted or (("," .. wanted .. ","):lower():find("," .. name:lower() .. ",", 1, true)) then
      fields[#fields + 1] = { path = { name }, keys = {}, type = ty }
    end
  end
  table.sort(fields, function(a, b) return a.path[1] < b.path[1] end)
  return 200, record(self, req.params.v, object, row, fields, self:resolver())
end

local function manage_users(self, req)
  local p = self:perms(req.user)
  return p.PermissionsManageUsers or p.PermissionsModifyAllData
end

local function decode_body(req)
  local ok, body = pcall(json().decode, req.body or "")
  if not ok or type(body) ~= "table" or json().is_array(body) then return nil end
  return body
end

function Org:h_patch(req)
  local object, row, body = find(self, req)
  if not object then return row, body end
  local def = S.SCHEMA[object]
  body = decode_body(req)
  if not body then return err(400, "JSON_PARSER_ERROR", "The request body is not a JSON object") end
  for k, val in pairs(body) do
    local ty = def.update and def.update[k]
    if not ty then
      return err(400, "INVALID_FIELD_FOR_INSERT_UPDATE", ("Unable to create/update fields: %s. Please check the security settings of this "
        .. "field and verify that it is read/write for your profile or permission set."):format(k), { k })
    end
    if (ty == "boolean" and type(val) ~= "boolean") or (ty ~= "boolean" and type(val) ~= "string") then
      return err(400, "JSON_PARSER_ERROR", ("Cannot deserialize instance of %s from %s value for field %s"):format(ty, type(val), k))
    end
  end
  if (object == "User" or object == "UserLogin") and not manage_users(self, req) then
    return err(400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", {})
  end
  if object == "UserLogin" and body.IsPasswordLocked == true then
    return err(400, "FIELD_INTEGRITY_EXCEPTION", "Password lock can only be cleared, not set", { "IsPasswordLocked" })
  end
  local user = object == "User" and row or object == "UserLogin" and self.byid[row.UserId:sub(1, 15)]
  if object == "User" and body.IsActive == false and row == req.user then
    return err(400, "FIELD_INTEGRITY_EXCEPTION", "You cannot deactivate your own user record.", { "IsActive" })
  end
  local was_frozen, was_active = row.IsFrozen, row.IsActive
  for k, val in pairs(body) do row[k] = val end
  row.LastModifiedDate = S.sftime(self:now_ms())
  if row.SystemModstamp then row.SystemModstamp = row.LastModifiedDate end
  if object == "UserLogin" and body.IsFrozen ~= nil and body.IsFrozen ~= was_frozen then
    self:audit(body.IsFrozen and "frozeuser" or "unfrozeuser", "Manage Users",
      (body.IsFrozen and "Froze user %s" or "Unfroze user %s"):format(user.Username), nil, req.user)
  elseif object == "User" and body.IsActive ~= nil and body.IsActive ~= was_active then
    self:audit(body.IsActive and "activateduser" or "deactivateduser", "Manage Users",
      (body.IsActive and "Activated user %s" or "Deactivated user %s"):format(row.Username), nil, req.user)
  end
  return 204, ""
end

function Org:h_delete(req)
  local object, row, body = find(self, req)
  if not object then return row, body end
  if not S.SCHEMA[object].deletable then
    return err(400, "INVALID_TYPE_FOR_OPERATION", ("entity type %s does not support delete"):format(object))
  end
  if object == "ContentDocumentLink" then
    local doc = self.byid[row.ContentDocumentId:sub(1, 15)]
    if doc and doc.OwnerId == row.LinkedEntityId then
      return err(400, "INVALID_CROSS_REFERENCE_KEY", "You can't remove the file owner's access to the file.")
    end
  elseif object == "PermissionSetAssignment" then
    local ps = self.byid[row.PermissionSetId:sub(1, 15)]
    if ps.IsOwnedByProfile then
      return err(400, "DELETE_FAILED", "You can't delete a permission set assignment that the user's profile grants.")
    end
  end
  if object == "ContentDocument" then
    row.IsDeleted, row.SystemModstamp = true, S.sftime(self:now_ms())       -- to the Recycle Bin
  else
    local list = self.db[object]
    for i, x in ipairs(list) do if x == row then table.remove(list, i); break end end
    self.byid[row.Id:sub(1, 15)] = nil
  end
  return 204, ""
end

local REQUIRED = { ContentVersion = { "PathOnClient", "VersionData" },
  ContentDocumentLink = { "ContentDocumentId", "LinkedEntityId" } }

function Org:h_create(req)
  local v, object = req.params.v, req.params.object
  if not version_ok(v) or not S.SCHEMA[object] then return self:not_found() end
  if not REQUIRED[object] then return err(400, "INVALID_TYPE_FOR_OPERATION", ("entity type %s does not support insert"):format(object)) end
  local body = decode_body(req)
  if not body then return err(400, "JSON_PARSER_ERROR", "The request body is not a JSON object") end
  local missing = {}
  for _, k in ipairs(REQUIRED[object]) do if type(body[k]) ~= "string" or body[k] == "" then missing[#missing + 1] = k end end
  if #missing > 0 then
    return err(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [" .. table.concat(missing, ", ") .. "]", missing)
  end
  for k in pairs(body) do
    if not S.SCHEMA[object].fields[k] then return err(400, "INVALID_FIELD", ("No such column '%s' on sobject of type %s"):format(k, object), { k }) end
  end
  local now = self:now_ms()
  local doc = body.ContentDocumentId and self.byid[body.ContentDocumentId:sub(1, 15)]
  if body.ContentDocumentId and (not doc or doc["@type"] ~= "ContentDocument" or doc.IsDeleted) then
    return err(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", { "ContentDocumentId" })
  end
  local created
  if object == "ContentVersion" then
    local data = crypto().unb64(body.VersionData)
    if not data then return err(400, "JSON_PARSER_ERROR", "VersionData is not base64") end
    if not doc then
      doc = self:put("ContentDocument", { Title = body.Title or body.PathOnClient:gsub("%.%w+$", ""), OwnerId = req.user.Id,
        PublishStatus = "R", SharingOption = "A", IsArchived = false, IsDeleted = false, CreatedDate = S.sftime(now) })
      self:link(doc, req.user.Id, "I", "AllUsers", now)
      local lib = body.FirstPublishLocationId and self.byid[body.FirstPublishLocationId:sub(1, 15)]
      if lib and lib["@type"] == "ContentWorkspace" then self:link(doc, lib.Id, "I", "AllUsers", now) end
    end
    if body.Title then doc.Title = body.Title end
    created = self:add_version(doc, data, body.PathOnClient, body.ReasonForChange, now)
  else
    local target = self.byid[body.LinkedEntityId:sub(1, 15)]
    if not target and body.LinkedEntityId:sub(1, 15) ~= self.org_id:sub(1, 15) then
      return err(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", { "LinkedEntityId" })
    end
    for _, l in ipairs(self.db.ContentDocumentLink) do
      if l.ContentDocumentId == doc.Id and l.LinkedEntityId:sub(1, 15) == body.LinkedEntityId:sub(1, 15) then
        return err(400, "DUPLICATE_VALUE", "duplicate value found: the file is already shared with this entity")
      end
    end
    created = self:link(doc, target and target.Id or self.org_id, body.ShareType or "V", body.Visibility or "AllUsers", now)
  end
  return 201, { id = created.Id, success = true, errors = json().array({}) }
end

---------------------------------------------------------------------------------------------- blobs and passwords
function Org:h_blob(req)
  local object, row, body = find(self, req)
  if not object then return row, body end
  local field = req.params.field
  if S.SCHEMA[object].fields[field] ~= "base64" then return self:not_found() end
  if object == "EventLogFile" then return 200, self:log_csv(row), { ["Content-Type"] = "text/csv" } end
  return 200, row["@data"] or "", { ["Content-Type"] = "application/octetstream" }
end

function Org:h_password(req)
  req.params.object = "User"
  local object, row, body = find(self, req)
  if not object then return row, body end
  if not manage_users(self, req) then return err(403, "INSUFFICIENT_ACCESS", "insufficient access rights on object id") end
  if req.method == "GET" then return 200, { isExpired = row["@expired"] == true } end
  if req.method == "DELETE" then
    row["@expired"] = true
    self.password_resets = (self.password_resets or 0) + 1
    self:audit("resetpassword", "Manage Users", "Reset password for " .. row.Username, nil, req.user)
    return 200, { NewPassword = T.b62(12, self.seed, "pw", row.Id, self.password_resets) }
  end
  body = decode_body(req)
  if not body or type(body.NewPassword) ~= "string" or #body.NewPassword < 8 then
    return err(400, "INVALID_NEW_PASSWORD", "Your password must be at least 8 characters long.")
  end
  row["@expired"] = false
  return 204, ""
end

local D = "/services/data/:v"
return {
  { "GET", "/services/data", Org.h_versions, { public = true } },       -- the versions need no session
  { "GET", D .. "/limits", Org.h_limits },
  { "GET", D .. "/query", Org.h_query },
  { "GET", D .. "/queryAll", Org.h_query_all },
  { "GET", D .. "/query/:locator", Org.h_query_more },
  { "GET", D .. "/queryAll/:locator", Org.h_query_more },
  { "*", D .. "/sobjects/User/:id/password", Org.h_password },
  { "GET", D .. "/sobjects/:object/:id/:field", Org.h_blob },
  { "GET", D .. "/sobjects/:object/:id", Org.h_get },
  { "PATCH", D .. "/sobjects/:object/:id", Org.h_patch },
  { "DELETE", D .. "/sobjects/:object/:id", Org.h_delete },
  { "POST", D .. "/sobjects/:object", Org.h_create },
}
