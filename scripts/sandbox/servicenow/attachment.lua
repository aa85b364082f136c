-- sandbox/servicenow/attachment.lua — the Attachment API (/api/now/attachment): metadata of one
-- attachment (with its download_link), its content (/file, the file's own Content-Type), an upload onto a
-- record (POST /file?table_name&table_sys_id&file_name, the raw bytes with their Content-Type: 201), and
-- DELETE (204).  Who may read, add or delete one follows sys_attachment's ACL.
local S = require "sandbox.servicenow.instance"
local Now = S.Now

local function meta(self, rec)
  local m = self:render("sys_attachment", rec, { sysparm_exclude_reference_link = "true" })
  m.download_link = ("%s/api/now/attachment/%s/file"):format(self.base_url, rec.sys_id)
  return m
end

local function find(self, req, write)
  if not self:allowed(req, "sys_attachment", write) then
    if write then return nil, { self:err(403, "Operation Failed", "ACL Exception Delete Failed due to security constraints") } end
    return nil, { self:err(403, "Insufficient rights to query records", "Field(s) present in the query do not have permission to be read") }
  end
  local rec = self:get("sys_attachment", req.params.id)
  if not rec or not self:row_readable(req, "sys_attachment", rec) then
    return nil, { self:err(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval") }
  end
  return rec
end

function Now:h_attachment(req)
  local rec, e = find(self, req)
  if not rec then return table.unpack(e) end
  return 200, { result = meta(self, rec) }
end

function Now:h_attachment_file(req)
  local rec, e = find(self, req)
  if not rec then return table.unpack(e) end
  return 200, self.contents[rec.sys_id] or "", { ["Content-Type"] = rec.content_type ~= "" and rec.content_type or "application/octet-stream",
    ["X-Attachment-Metadata"] = S.json().encode(meta(self, rec)) }
end

function Now:h_attachment_delete(req)
  local rec, e = find(self, req, true)
  if not rec then return table.unpack(e) end
  self:remove("sys_attachment", rec)
  self.contents[rec.sys_id] = nil
  return 204, ""
end

function Now:h_attachment_upload(req)
  if not self:allowed(req, "sys_attachment", true) then
    return self:err(403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
  end
  local q = req.query
  for _, k in ipairs { "table_name", "table_sys_id", "file_name" } do
    if not q[k] or q[k] == "" then return self:err(400, "Missing parameter: " .. k) end
  end
  if not S.TABLES[q.table_name] then return self:err(400, "Invalid table " .. q.table_name) end
  local record = self:get(q.table_name, q.table_sys_id)
  if not record then return self:err(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval") end
  local ctype = req.headers["content-type"]
  if not ctype or ctype == "" then return self:err(400, "Content-Type header is required") end
  local rec = self:attach(record, q.file_name, ctype, req.body or "", req.user.user_name)
  return 201, { result = meta(self, rec) }, { Location = ("%s/api/now/attachment/%s"):format(self.base_url, rec.sys_id) }
end

return {
  { "POST", "/api/now/attachment/file", Now.h_attachment_upload },
  { "GET", "/api/now/attachment/:id", Now.h_attachment },
  { "GET", "/api/now/attachment/:id/file", Now.h_attachment_file },
  { "DELETE", "/api/now/attachment/:id", Now.h_attachment_delete },
}
