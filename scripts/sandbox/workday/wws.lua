-- sandbox/workday/wws.lua — Workday Web Services: POST /ccx/service/<tenant>/<Service>/v<NN>, a SOAP 1.1
-- envelope whose body is one operation of the service (namespace urn:com.workday/bsvc), authenticated by a
-- WS-Security UsernameToken of the integration system user or an OAuth bearer token; Get_ operations page by
-- Response_Filter Page/Count (Count at most 999) and answer as of As_Of_Entry_DateTime; errors are SOAP Faults.
-- Human_Resources: Get_Workers, Workday_Account_for_Worker_Update; Identity_Management:
-- Get_Workday_Account_Signons.
local T = require "sandbox.tenant"
local X = require "sdk.xml"
local soap = require "sdk.soap"
local W = require "sandbox.workday.tenant"
local Tenant = W.Tenant

local NS = W.NS
local fault = W.fault
local function wd(name, content, attrs) return X.element("wd:" .. name, content, attrs) end
local function iso(ms) return T.iso_ms(ms) end
local function date(ms) return iso(ms):sub(1, 10) .. "Z" end
local function b(v) return v and "1" or "0" end

-- The answer: <env:Envelope><env:Body><wd:Operation_Response wd:version=...>
local function answer(content_el)
  local env = X.element("env:Envelope", { X.element("env:Body", { content_el }) }, { ["xmlns:env"] = soap.ENVELOPE })
  return 200, X.encode(env), W.SOAP_HDR
end

local function child_text(el, path) return X.text(el, path) end
local function truthy(v) return v == "1" or v == "true" end
local function wd_attr(el, name) return el and el.attrs["{" .. NS .. "}" .. name] end

-- Response_Filter: page, count, as-of (ms) | nil, fault
function Tenant:filter(req_el)
  local f = X.child(req_el, "Response_Filter")
  local page = math.tointeger(tonumber(child_text(f, "Page") or "1"))
  local count = math.tointeger(tonumber(child_text(f, "Count") or "100"))
  if not page or page < 1 then return nil, "Page must be a positive integer", "Response_Filter/Page" end
  if not count or count < 1 or count > 999 then return nil, "Count must be between 1 and 999", "Response_Filter/Count" end
  local as_of = self:now_ms()
  local a = child_text(f, "As_Of_Entry_DateTime")
  if a then
    as_of = T.parse_iso(a)
    if not as_of then return nil, "As_Of_Entry_DateTime is not a dateTime: " .. a, "Response_Filter/As_Of_Entry_DateTime" end
  end
  return { page = page, count = count, as_of = as_of }
end

-- A Get_ answer over a list of items rendered by render(item) -> element.
local function paged(op, flt, items, render)
  local total = #items
  local pages = (total + flt.count - 1) // flt.count
  local first = (flt.page - 1) * flt.count
  local data = {}
  for i = first + 1, math.min(total, first + flt.count) do data[#data + 1] = render(items[i]) end
  local content = {
    wd("Response_Filter", { wd("As_Of_Entry_DateTime", iso(flt.as_of)), wd("Page", flt.page), wd("Count", flt.count) }),
    wd("Response_Results", { wd("Total_Results", total), wd("Total_Pages", pages), wd("Page_Results", #data), wd("Page", flt.page) }),
  }
  if #data > 0 then content[#content + 1] = wd("Response_Data", data) end
  return answer(wd(op .. "_Response", content, { ["xmlns:wd"] = NS, ["wd:version"] = W.VERSION }))
end

---------------------------------------------------------------------------------------------- Get_Workers
function Tenant:worker_el(w, group)
  local id_type = w.contingent and "Contingent_Worker_ID" or "Employee_ID"
  local data = { wd("Worker_ID", w.id) }
  if w.user_name then data[#data + 1] = wd("User_ID", w.user_name) end
  if group.personal then
    data[#data + 1] = wd("Personal_Data", {
      wd("Name_Data", { wd("Legal_Name_Data", { wd("Name_Detail_Data", { wd("First_Name", w.first), wd("Last_Name", w.last) },
        { ["wd:Formatted_Name"] = w.first .. " " .. w.last, ["wd:Reporting_Name"] = w.last .. ", " .. w.first }) }) }),
      wd("Contact_Data", { wd("Email_Address_Data", { wd("Email_Address", w.email),
        wd("Usage_Data", { wd("Type_Data", { wd("Type_Reference", { wd("ID", "WORK", { ["wd:type"] = "Communication_Usage_Type_ID" }) }) },
          { ["wd:Primary"] = "1" }) }, { ["wd:Public"] = "1" }) }) }),
    })
  end
  if group.employment then
    local terminated = w.terminated_ms ~= nil
    local status = { wd("Active", b(not terminated)), wd("Hire_Date", date(w.hire_ms)), wd("Terminated", b(terminated)) }
    if terminated then status[#status + 1] = wd("Termination_Date", date(w.terminated_ms)) end
    data[#data + 1] = wd("Employment_Data", { wd("Worker_Status_Data", status) })
  end
  if group.account and w.user_name then data[#data + 1] = wd("User_Account_Data", { wd("User_Name", w.user_name) }) end
  local content = {}
  if group.reference then
    content[1] = wd("Worker_Reference", { wd("ID", w.wid, { ["wd:type"] = "WID" }), wd("ID", w.id, { ["wd:type"] = id_type }) })
  end
  content[#content + 1] = wd("Worker_Descriptor", w.first .. " " .. w.last)
  content[#content + 1] = wd("Worker_Data", data)
  return wd("Worker", content)
end

function Tenant:get_workers(op_el)
  local flt, why, xpath = self:filter(op_el)
  if not flt then return fault("Client.validationError", why, xpath) end
  local g = X.child(op_el, "Response_Group")
  local function inc(name, default)
    local v = child_text(g, name)
    if v == nil then return default end
    return truthy(v)
  end
  -- Workday's defaults: the reference, personal and employment information; the user account on request
  local group = { reference = inc("Include_Reference", true), personal = inc("Include_Personal_Information", true),
                  employment = inc("Include_Employment_Information", true), account = inc("Include_User_Account", false) }
  local exclude_inactive = truthy(child_text(op_el, "Request_Criteria/Exclude_Inactive_Workers") or "0")
  local items = {}
  local refs = X.child(op_el, "Request_References")
  if refs then
    local skip = truthy(wd_attr(refs, "Skip_Non_Existing_Instances") or "0")
    for _, r in ipairs(X.all(refs, "", "Worker_Reference")) do
      local id = X.child(r, "ID")
      local w = id and wd_attr(id, "type") == "WID" and self.state.by_wid[id.text]
      if w then items[#items + 1] = w
      elseif not skip then
        return fault("Client.validationError", "Invalid ID value.  '" .. tostring(id and id.text) .. "' is not a valid ID value for type = 'WID'",
          "/bsvc:Get_Workers_Request[1]/bsvc:Request_References[1]/bsvc:Worker_Reference[1]/bsvc:ID[1]")
      end
    end
  else
    for _, w in ipairs(self.state.workers) do
      if w.entry_ms <= flt.as_of and not (exclude_inactive and w.terminated_ms) then items[#items + 1] = w end
    end
  end
  return paged("Get_Workers", flt, items, function(w) return self:worker_el(w, group) end)
end

---------------------------------------------------------------------------------------------- sign-ons
local function signon_el(s, tenant)
  local content = {
    wd("Signon_DateTime", iso(s.ms)),
    s.ok and wd("Signoff_DateTime", iso(s.ms + s.duration)) or nil,
  }
  local function add(e) content[#content + 1] = e end
  add(wd("User_Name", s.user))
  add(wd("Successful", b(s.ok)))
  add(wd("Failed_Signon", b(not s.ok)))
  add(wd("Invalid_Credentials", b(not s.ok)))
  add(wd("Password_Changed", "0"))
  add(wd("Forgotten_Password_Reset_Request", "0"))
  add(wd("Signon_IP_Address", s.ip))
  add(wd("Authentication_Channel", s.channel))
  add(wd("Authentication_Type", s.auth_type))
  if s.browser then add(wd("Browser_Type", s.browser)) end
  add(wd("Workday_Account_Reference", { wd("ID", s.wid, { ["wd:type"] = "WID" }), wd("ID", s.user, { ["wd:type"] = "WorkdayUserName" }) }))
  add(wd("Account_Disabled_or_Expired", "0"))
  if s.session then add(wd("Short_Session_ID", s.session)) end
  add(wd("Tenant_Access_Read_Only", "0"))
  return wd("Workday_Account_Signon", content)
end

function Tenant:get_signons(op_el)
  local flt, why, xpath = self:filter(op_el)
  if not flt then return fault("Client.validationError", why, xpath) end
  local c = X.child(op_el, "Request_Criteria")
  local from, to = child_text(c, "From_DateTime"), child_text(c, "To_DateTime")
  local from_ms, to_ms = from and T.parse_iso(from), to and T.parse_iso(to)
  if (from and not from_ms) or (to and not to_ms) then
    return fault("Client.validationError", "From_DateTime and To_DateTime must be dateTime values", "Request_Criteria")
  end
  if from_ms and to_ms and from_ms > to_ms then
    return fault("Client.validationError", "From_DateTime must be on or before To_DateTime", "Request_Criteria/From_DateTime")
  end
  local items = {}
  for _, s in ipairs(self.state.signons) do
    if (not from_ms or s.ms >= from_ms) and (not to_ms or s.ms <= to_ms) and (s.entry_ms or s.ms) <= flt.as_of then
      items[#items + 1] = s
    end
  end
  return paged("Get_Workday_Account_Signons", flt, items, signon_el)
end

---------------------------------------------------------------------------------------------- account updates
function Tenant:update_account(op_el)
  local ref = X.child(op_el, "Worker_Reference")
  local kind = ref and ref[1]
  local id = kind and X.find(kind, "Integration_ID_Reference/ID")
  local w
  if id and wd_attr(id, "System_ID") == "WD-EMPLID" then
    for _, x in ipairs(self.state.workers) do
      if x.id == id.text and (x.contingent and "Contingent_Worker_Reference" or "Employee_Reference") == kind.name then w = x end
    end
  end
  if not w then
    return fault("Client.validationError", ("Invalid ID value.  '%s' is not a valid ID value for type = 'WD-EMPLID'"):format(tostring(id and id.text)),
      "/bsvc:Workday_Account_for_Worker_Update[1]/bsvc:Worker_Reference[1]")
  end
  local data = X.child(op_el, "Workday_Account_for_Worker_Data")
  local name = child_text(data, "User_Name")
  if not name or name == "" then return fault("Client.validationError", "User Name is required", "Workday_Account_for_Worker_Data/User_Name") end
  if name:find("[;:]") then return fault("Client.validationError", "User Name cannot contain ';' or ':'", "Workday_Account_for_Worker_Data/User_Name") end
  local other = self.state.by_user[name]
  if other and other ~= w then return fault("Client.validationError", "User Name is already in use: " .. name, "Workday_Account_for_Worker_Data/User_Name") end
  if not w.account then return fault("Client.validationError", "The worker has no Workday account", "Worker_Reference") end
  local pw, random = child_text(data, "Password"), truthy(child_text(data, "Generate_Random_Password") or "0")
  local require_new = child_text(data, "Require_New_Password_at_Next_Sign_In")
  if pw and random then return fault("Client.validationError", "Password and Generate Random Password cannot both be given", "Workday_Account_for_Worker_Data") end
  if random and not truthy(require_new or "0") then
    return fault("Client.validationError", "Generate Random Password requires Require New Password at Next Sign In", "Workday_Account_for_Worker_Data")
  end
  local exp = child_text(data, "Account_Expiration_Date")
  local exp_ms = exp and T.parse_iso(exp)
  if exp and not exp_ms then return fault("Client.validationError", "Account Expiration Date is not a dateTime: " .. exp, "Workday_Account_for_Worker_Data/Account_Expiration_Date") end
  -- the update, all of it (a fault above changed nothing)
  local a = w.account
  if name ~= w.user_name then
    self.state.by_user[w.user_name] = nil
    for _, g in ipairs(self.state.groups) do
      if g.members[w.user_name] then g.members[w.user_name], g.members[name] = nil, true end
    end
    w.user_name = name
    self.state.by_user[name] = w
  end
  local dis = child_text(data, "Account_Disabled")
  if dis then a.disabled = truthy(dis) end
  if exp_ms then a.expiration_ms = exp_ms end
  if require_new then a.require_new_password = truthy(require_new) end
  self.updates[#self.updates + 1] = { user = name, disabled = dis, expiration = exp, require_new_password = require_new }
  table.insert(self.state.audit, { id = T.hexs(32, self.seed, "update", #self.updates), ms = self:now_ms(), actor = self.isu_user:match("^[^@]+"), activity = "Workday Account for Worker Update",
    task = "Security Administration", target = w.first .. " " .. w.last, ip = "198.51.100.7" })
  -- the operation answers with an empty body (Update_Workday_Account has no output element)
  local env = X.element("env:Envelope", { X.element("env:Body") }, { ["xmlns:env"] = soap.ENVELOPE })
  return 200, X.encode(env), W.SOAP_HDR
end

---------------------------------------------------------------------------------------------- the endpoint
local SERVICES = {
  Human_Resources = { Get_Workers_Request = Tenant.get_workers, Workday_Account_for_Worker_Update = Tenant.update_account },
  Identity_Management = { Get_Workday_Account_Signons_Request = Tenant.get_signons },
}

-- The caller: the integration system user of the WS-Security header, or an OAuth bearer token.
function Tenant:soap_caller(req, env)
  local sec = X.find(env, "Header/Security")
  if sec then
    local tok = X.child(sec, "UsernameToken")
    local user, pw = child_text(tok, "Username"), X.child(tok, "Password")
    local crypto = T.host("crypto")
    if sec.ns == soap.WSSE and user and pw and (pw.attrs.Type == nil or pw.attrs.Type == soap.PASSWORD_TEXT)
      and crypto.equal(user, self.isu_user) and crypto.equal(pw.text, self.isu_password) then
      return "isu"
    end
    return nil
  end
  return self:bearer(req) and "oauth" or nil
end

function Tenant:h_soap(req)
  if req.params.tenant ~= self.tenant then return 404, "Tenant not found: " .. req.params.tenant, { ["Content-Type"] = "text/plain" } end
  local ops = SERVICES[req.params.service]
  if not ops then return 404, "Service not found: " .. req.params.service, { ["Content-Type"] = "text/plain" } end
  if not req.params.version:match("^v%d+%.%d+$") then return 404, "Version not found: " .. req.params.version, { ["Content-Type"] = "text/plain" } end
  local root, err = X.decode(req.body or "")
  if root then root, err = X.namespaces(root) end
  if not root then return fault("Client", "The request is not well-formed XML: " .. tostring(err)) end
  if root.name ~= "Envelope" or root.ns ~= soap.ENVELOPE then return fault("Client", "The request is not a SOAP 1.1 envelope") end
  local body = X.child(root, "Body")
  local op = body and body[1]
  if not op or #body ~= 1 then return fault("Client", "The SOAP body must hold one operation") end
  if not self:soap_caller(req, root) then return fault("Client.authenticationError", "invalid username or password") end
  if op.ns ~= NS then return fault("Client", ("Unknown operation {%s}%s"):format(tostring(op.ns), op.name)) end
  local name = op.name
  local fn = ops[name]
  if not fn then
    return fault("Client.validationError", ("Operation %s is not offered by %s"):format(op.name, req.params.service))
  end
  if self.denied[(name:gsub("_Request$", ""))] then return fault("Client.validationError", "Validation error occurred. The task submitted is not authorized.") end
  return fn(self, op)
end

return {
  { "POST", "/ccx/service/:tenant/:service/:version", Tenant.h_soap },
}
