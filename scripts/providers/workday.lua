-- providers/workday.lua — Workday Web Services (SOAP, namespace urn:com.workday/bsvc) and Reports-as-a-Service
-- as the Workday connector calls them: one operation per call, its SOAP faults read into one line and a
-- health token, the Page / Total_Pages paging of Get_ operations with As_Of_Entry_DateTime pinned across the
-- pages, and a web-service-enabled custom report fetched as JSON.  Reference: shared/api/workday.md §1, §3-6.
local M = {}

M.NS = "urn:com.workday/bsvc"
M.VERSION = "v42.0"
M.MAX_COUNT = 999                -- Response_Filter/Count: at most 999 a page

-- /ccx/service/<tenant>/<Service>/<version>
function M.service_path(settings, service)
  return ("/ccx/service/%s/%s/%s"):format(urlencode(settings.tenant), service, M.VERSION)
end

-- An element of the Workday namespace: wd(name, content[, attrs]) (content as for sdk.xml element).
local function wd(name, content, attrs)
  return xml.element("wd:" .. name, content, attrs)
end
M.wd = wd

-- Request sections from plain tables: a list of {name, value} pairs (value: text, or another list).
function M.elements(list)
  local out = {}
  for _, kv in ipairs(list) do
    if kv[2] ~= nil then
      out[#out + 1] = type(kv[2]) == "table" and wd(kv[1], M.elements(kv[2]), kv[3]) or wd(kv[1], kv[2], kv[3])
    end
  end
  return out
end

-- A reference to an object by one of its ids: <Name><ID wd:type="type">id</ID></Name>.
function M.ref(name, id_type, id)
  return { name, { { "ID", id, { ["wd:type"] = id_type } } } }
end

-- A Fault as one line ("Client.validationError: Invalid ID value. ... ") | nil when the body is none.
function M.fault_line(resp)
  local f = soap.fault(resp.body)
  if not f then return nil end
  local line = f.code .. ": " .. f.string
  for _, d in ipairs(f.details) do
    if not line:find(d, 1, true) then line = line .. " " .. d end
  end
  return line
end

-- Every Fault comes as HTTP 500: which of them are answers (the client does not ask again) and what they
-- mean for the instance's health.  A refused user name and password or token is a dead credential; a task
-- the integration user's security groups do not allow is a missing permission.
function M.fault_token(resp)
  local f = soap.fault(resp.body)
  if not f then return nil end
  if f.code:find("authenticationError", 1, true) then return "auth" end
  local text = (f.string .. " " .. table.concat(f.details, " ")):lower()
  if text:find("not authorized", 1, true) then return "permission" end
  if f.code:match("^Client") then return "http" end
  return nil                         -- Server.*: an outage, asked again
end

function M.error_message(resp)
  local line = M.fault_line(resp)
  if line then return line end
  local d = resp.data
  if type(d) == "table" and (d.error or d.error_description) then        -- the token endpoint, REST
    return tostring(d.error_description or d.error)
  end
  return (resp.body or ""):sub(1, 200)
end

-- The domain security policy each operation needs (granted to the integration user's security group, or
-- the API client's functional area), named in a permission failure.
M.DOMAIN = {
  Get_Workers_Request = "the domain Worker Data: Public Worker Reports",
  Get_Workday_Account_Signons_Request = "the domain Sign-on audit",
  Workday_Account_for_Worker_Update = "the domain User Account Management",
}

-- fn(...)'s results; a permission failure says what it needs (`cachost status`: permission missing: <needs>).
function M.needing(needs, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  if needs and token_of(r[2]) == "permission" then
    fail(("%s: %s"):format(needs, (tostring(r[2]):gsub("^permission:%s*", ""):gsub("^HTTP %d+:%s*", ""))), "permission")
  end
  error(r[2], 0)
end

-- One operation, its request element named as the WSDL names it (Get_Workers_Request,
-- Workday_Account_for_Worker_Update): the element of its answer (<wd:Get_Workers_Response>, namespaces
-- resolved), or nil when the answer's body is empty (an update has no output).  Reads (Get_*) may be
-- asked again after an outage; an update only when it cannot have been carried out.
function M.call(ctx, service, element, content)
  local read = element:match("^Get_") ~= nil
  local req = wd(element, content, { ["xmlns:wd"] = M.NS, ["wd:version"] = M.VERSION })
  local _, resp = M.needing(M.DOMAIN[element], ctx.request, ctx, "POST", M.service_path(ctx.settings, service),
    { soap = req, idempotent = read or nil })
  local el = resp.soap[1]
  if not el and not read then return nil end
  if not el or el.ns ~= M.NS then
    fail(("%s answered %s, not a Workday response"):format(element, el and ("<" .. tostring(el.qname) .. ">") or "an empty body"), "malformed")
  end
  return el
end

-- The pages of a Get_ operation, each {items (the elements named `item` under Response_Data), response}.
-- Request_Criteria and Response_Group as given; Response_Filter's Page runs 1..Total_Pages with Count and
-- one As_Of_Entry_DateTime: every page sees the tenant as of the same moment, the tenant's own (the first
-- page asks for none, Workday takes its current moment and says which; the next pages ask for that one),
-- so a record entered meanwhile shifts no page whatever our clock says.
-- A page that is not what the operation documents (no Response_Results, a page other than the one asked,
-- Total_Pages changing on the way) ends the listing with one "malformed listing" line.
function M.pages(ctx, service, operation, o)
  local as_of = o.as_of
  local page, total = 0, nil
  return function()
    page = page + 1
    if total and page > total then return nil end
    local content = {}
    for _, x in ipairs(o.references and M.elements(o.references) or {}) do content[#content + 1] = x end
    if o.criteria then content[#content + 1] = wd("Request_Criteria", M.elements(o.criteria)) end
    content[#content + 1] = wd("Response_Filter", M.elements {
      { "As_Of_Entry_DateTime", as_of }, { "Page", page }, { "Count", o.count or M.MAX_COUNT } })
    if o.group then content[#content + 1] = wd("Response_Group", M.elements(o.group)) end
    local asked = sched.time()
    local r = M.call(ctx, service, operation .. "_Request", content)
    as_of = as_of or xml.text(r, "Response_Filter/As_Of_Entry_DateTime") or iso(asked)
    local results = xml.child(r, "Response_Results")
    local pages = tonumber(xml.text(results, "Total_Pages") or "")
    local this = tonumber(xml.text(results, "Page") or "")
    if not pages then
      error(("malformed listing: expected Response_Results with Total_Pages in %s_Response"):format(operation), 0)
    end
    if pages > 0 and this ~= page then
      error(("malformed listing: %s answered page %s when page %d was asked"):format(operation, tostring(this), page), 0)
    end
    if total and pages ~= total then
      error(("malformed listing: %s's Total_Pages went from %d to %d while paging"):format(operation, total, pages), 0)
    end
    total = pages
    return xml.all(r, "Response_Data", o.item), r
  end
end

-- A web-service-enabled custom report (RaaS) as JSON: its Report_Entry items.  `report` is
-- "<owner>/<Report_Name>" as the report's web service URL names it; prompts become query parameters;
-- needs: what its data source asks (a permission failure says it).
function M.report(ctx, report, prompts, needs)
  local owner, name = tostring(report):match("^([^/]+)/([^/]+)$")
  if not owner then fail(("settings: a report is named owner/Report_Name, not %q"):format(tostring(report)), "settings") end
  local q = { format = "json" }
  for k, v in pairs(prompts or {}) do q[k] = v end
  local path = ("/ccx/service/customreport2/%s/%s/%s"):format(urlencode(ctx.settings.tenant), urlencode(owner), urlencode(name))
  return M.needing(needs, ctx.list, ctx, path, q, "Report_Entry")
end

-- "1"/"0" and "true"/"false" (Workday's booleans) -> boolean | nil
function M.bool(v)
  if v == "1" or v == "true" or v == true or v == 1 then return true end
  if v == "0" or v == "false" or v == false or v == 0 then return false end
end

-- A Workday date ("2024-05-31", "2024-05-31-07:00", "2024-05-31Z") or date-time -> ISO 8601 UTC | nil.
function M.time(v)
  if type(v) ~= "string" then return nil end
  local d, zone = v:match("^(%d%d%d%d%-%d%d%-%d%d)(.*)$")
  if d and not zone:match("^T") then v = d .. "T00:00:00" .. zone end
  local t = parse_iso(v)
  return t and iso(t) or nil
end

return M
