-- The Workday sandbox tenant on the wire, with hand-written envelopes (not the connector's): SOAP 1.1 and
-- the bsvc namespace checked, WS-Security and bearer tokens verified, Faults as Workday sends them,
-- Page/Total_Pages paging as of As_Of_Entry_DateTime, the token endpoint and the reports.
local helpers = require "helpers"
local X = require "sdk.xml"
local soap = require "sdk.soap"

local ENV = 'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"'
local BSVC = 'xmlns:bsvc="urn:com.workday/bsvc"'

local function envelope(body, header)
  return ('<env:Envelope %s>%s<env:Body>%s</env:Body></env:Envelope>'):format(ENV, header and ("<env:Header>" .. header .. "</env:Header>") or "", body)
end
local function wsse(user, pw)
  return ('<wsse:Security xmlns:wsse="%s"><wsse:UsernameToken><wsse:Username>%s</wsse:Username>'
    .. '<wsse:Password Type="%s">%s</wsse:Password></wsse:UsernameToken></wsse:Security>'):format(soap.WSSE, user, soap.PASSWORD_TEXT, pw)
end

describe("workday sandbox", function()
  local t, srv, hr, idm
  setup(function()
    t = require("sandbox.workday").new { seed = 5, workers = 30, signons = 50, audits = 5, tenant = "acme" }
    srv = helpers.serve(t)
    hr = srv.url .. "/ccx/service/acme/Human_Resources/v42.0"
    idm = srv.url .. "/ccx/service/acme/Identity_Management/v42.0"
  end)
  teardown(function() srv:close() end)

  local function post(url, body, headers)
    local r = assert(http.request { method = "POST", url = url, body = body, headers = headers or { ["Content-Type"] = "text/xml" } })
    return r, soap.body(r.body)
  end
  local function isu() return wsse(t.isu_user, t.isu_password) end
  local function workers_req(page, count, as_of)
    return ('<bsvc:Get_Workers_Request %s bsvc:version="v42.0"><bsvc:Response_Filter>%s<bsvc:Page>%d</bsvc:Page><bsvc:Count>%d</bsvc:Count>'
      .. '</bsvc:Response_Filter><bsvc:Response_Group><bsvc:Include_User_Account>true</bsvc:Include_User_Account></bsvc:Response_Group>'
      .. '</bsvc:Get_Workers_Request>'):format(BSVC, as_of and ("<bsvc:As_Of_Entry_DateTime>" .. as_of .. "</bsvc:As_Of_Entry_DateTime>") or "", page, count)
  end

  it("answers Get_Workers to the integration user's UsernameToken, in pages of Count", function()
    local r, body = post(hr, envelope(workers_req(1, 8), isu()))
    assert.equal(200, r.status)
    local res = body[1]
    assert.equal("Get_Workers_Response", res.name)
    assert.equal("urn:com.workday/bsvc", res.ns)
    assert.equal("30", X.text(res, "Response_Results/Total_Results"))
    assert.equal("4", X.text(res, "Response_Results/Total_Pages"))
    assert.equal(8, #X.all(res, "Response_Data", "Worker"))
    local _, last = post(hr, envelope(workers_req(4, 8), isu()))
    assert.equal(6, #X.all(last[1], "Response_Data", "Worker"))
    assert.equal("4", X.text(last[1], "Response_Results/Page"))
    -- any prefixes: what counts is the namespace
    local other = envelope(workers_req(1, 8), isu()):gsub("env([:=])", "s%1"):gsub("bsvc([:=])", "wd%1")
    local r2 = post(hr, other)
    assert.equal(200, r2.status, r2.body)
  end)

  it("refuses what is not a SOAP 1.1 call of the service, and a wrong password, with Faults", function()
    local cases = {
      { '<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body/></Envelope>', "Client", "SOAP 1.1" },
      { envelope(workers_req(1, 8):gsub('urn:com.workday/bsvc', 'urn:example'), isu()), "Client", "Unknown operation" },
      { envelope(workers_req(1, 8), wsse(t.isu_user, "wrong")), "Client.authenticationError", "invalid username or password" },
      { envelope(workers_req(1, 8)), "Client.authenticationError", "invalid username or password" },
      { envelope(workers_req(1, 1000), isu()), "Client.validationError", "Count must be between 1 and 999" },
      { envelope(('<bsvc:Get_Workday_Account_Signons_Request %s/>'):format(BSVC), isu()), "Client.validationError", "not offered by Human_Resources" },
      { "<not xml", "Client", "not well%-formed" },
    }
    for _, c in ipairs(cases) do
      local r = post(hr, c[1])
      assert.equal(500, r.status)
      local f = assert(soap.fault(r.body), r.body)
      assert.equal(c[2], f.code)
      assert.matches(c[3], f.string .. table.concat(f.details, " "))
    end
    -- a validation fault carries Workday's Validation_Fault detail
    local f = soap.fault(post(hr, envelope(workers_req(0, 8), isu())).body)
    assert.same({ "Page must be a positive integer", "Page must be a positive integer", "Response_Filter/Page" }, f.details)
  end)

  it("exchanges the refresh token at the token endpoint; the bearer token reads SOAP and reports", function()
    local tok = srv.url .. "/ccx/oauth2/acme/token"
    local function token(form, basic)
      local h = { ["Content-Type"] = "application/x-www-form-urlencoded" }
      if basic then h.Authorization = "Basic " .. crypto.b64(basic) end
      local r = assert(http.request { method = "POST", url = tok, body = http.form(form), headers = h })
      return r.status, json.decode(r.body)
    end
    local st, e = token({ grant_type = "refresh_token", refresh_token = "nope", client_id = t.client_id, client_secret = t.client_secret })
    assert.same({ 400, "invalid_grant" }, { st, e.error })
    st, e = token({ grant_type = "refresh_token", refresh_token = t.refresh_token }, t.client_id .. ":wrong")
    assert.same({ 401, "invalid_client" }, { st, e.error })
    st, e = token({ grant_type = "client_credentials" }, t.client_id .. ":" .. t.client_secret)
    assert.same({ 400, "unsupported_grant_type" }, { st, e.error })
    local ok
    st, ok = token({ grant_type = "refresh_token", refresh_token = t.refresh_token }, t.client_id .. ":" .. t.client_secret)
    assert.equal(200, st)
    assert.equal("Bearer", ok.token_type)
    local r = post(hr, envelope(workers_req(1, 5)), { ["Content-Type"] = "text/xml", Authorization = "Bearer " .. ok.access_token })
    assert.equal(200, r.status)
    local rep = srv.url .. "/ccx/service/customreport2/acme/ISU_cachost/cachost_Workday_Accounts?format=json"
    local a = assert(http.request { url = rep, headers = { Authorization = "Bearer " .. ok.access_token } })
    assert.equal(200, a.status)
    assert.equal(t:count("accounts") + 1, #json.decode(a.body).Report_Entry)      -- and the integration user's own
    assert.equal(401, assert(http.request { url = rep }).status)
    local basic = assert(http.request { url = rep, headers = { Authorization = "Basic " .. crypto.b64(t.isu_user .. ":" .. t.isu_password) } })
    assert.equal(200, basic.status)
    local missing = assert(http.request { url = rep:gsub("Accounts", "Nothing"), headers = { Authorization = "Bearer " .. ok.access_token } })
    assert.matches("does not exist", soap.fault(missing.body).string)
    local audit = srv.url .. "/ccx/service/customreport2/acme/ISU_cachost/cachost_User_Activity?format=json"
    local no_prompts = assert(http.request { url = audit, headers = { Authorization = "Bearer " .. ok.access_token } })
    assert.matches("From_Moment", soap.fault(no_prompts.body).string)
  end)

  it("answers every page as of one As_Of_Entry_DateTime: a sign-on recorded meanwhile is not counted", function()
    local as_of = require("sdk.util").iso(sched.time())
    local function page(n)
      local req = ('<bsvc:Get_Workday_Account_Signons_Request %s bsvc:version="v42.0"><bsvc:Request_Criteria>'
        .. '<bsvc:From_DateTime>2000-01-01T00:00:00Z</bsvc:From_DateTime><bsvc:To_DateTime>2100-01-01T00:00:00Z</bsvc:To_DateTime>'
        .. '</bsvc:Request_Criteria><bsvc:Response_Filter><bsvc:As_Of_Entry_DateTime>%s</bsvc:As_Of_Entry_DateTime>'
        .. '<bsvc:Page>%d</bsvc:Page><bsvc:Count>20</bsvc:Count></bsvc:Response_Filter></bsvc:Get_Workday_Account_Signons_Request>'):format(BSVC, as_of, n)
      local _, body = post(idm, envelope(req, isu()))
      return body[1]
    end
    local p1 = page(1)
    assert.equal("50", X.text(p1, "Response_Results/Total_Results"))
    sched.sleep(0.01)
    t:add_signon(t.state.workers[1].user_name, false, t:now_ms() - 3600000)
    local p3 = page(3)
    assert.equal("50", X.text(p3, "Response_Results/Total_Results"))
    assert.equal(10, #X.all(p3, "Response_Data", "Workday_Account_Signon"))
    local s = X.find(p3, "Response_Data/Workday_Account_Signon")
    assert.is_not_nil(X.text(s, "Signon_DateTime"))
    assert.matches("^[01]$", X.text(s, "Successful"))
  end)

  it("updates an account by the worker's integration id: disabled, expired, a new password required", function()
    local w
    for _, x in ipairs(t.state.workers) do if not x.contingent and x.user_name and not x.account.disabled then w = x; break end end
    local function update(data, kind, id)
      return post(hr, envelope(('<bsvc:Workday_Account_for_Worker_Update %s bsvc:version="v42.0"><bsvc:Worker_Reference>'
        .. '<bsvc:%s><bsvc:Integration_ID_Reference><bsvc:ID bsvc:System_ID="WD-EMPLID">%s</bsvc:ID></bsvc:Integration_ID_Reference></bsvc:%s>'
        .. '</bsvc:Worker_Reference><bsvc:Workday_Account_for_Worker_Data>%s</bsvc:Workday_Account_for_Worker_Data>'
        .. '</bsvc:Workday_Account_for_Worker_Update>'):format(BSVC, kind or "Employee_Reference", id or w.id, kind or "Employee_Reference", data), isu()))
    end
    local r, body = update(("<bsvc:User_Name>%s</bsvc:User_Name><bsvc:Account_Disabled>true</bsvc:Account_Disabled>"):format(w.user_name))
    assert.equal(200, r.status)
    assert.is_nil(body[1])                         -- no output element
    assert.is_true(w.account.disabled)
    assert.equal("disabled", t:account_status(w))
    r = update(("<bsvc:User_Name>%s</bsvc:User_Name><bsvc:Account_Disabled>true</bsvc:Account_Disabled>"):format(w.user_name), "Contingent_Worker_Reference")
    assert.matches("Invalid ID value", soap.fault(r.body).string)
    r = update(("<bsvc:User_Name>%s</bsvc:User_Name><bsvc:Generate_Random_Password>true</bsvc:Generate_Random_Password>"):format(w.user_name))
    assert.matches("requires Require New Password", soap.fault(r.body).string)
    r = update("<bsvc:User_Name>a;b</bsvc:User_Name>")
    assert.matches("cannot contain", soap.fault(r.body).string)
    r = update(("<bsvc:User_Name>%s</bsvc:User_Name><bsvc:Account_Disabled>false</bsvc:Account_Disabled>"
      .. "<bsvc:Account_Expiration_Date>2001-01-01T00:00:00Z</bsvc:Account_Expiration_Date>"):format(w.user_name))
    assert.equal(200, r.status)
    assert.equal("expired", t:account_status(w))
  end)

  it("has one worker who left with an active account, whose e-mail is the first of the people given", function()
    local t2 = require("sandbox.workday").new { seed = 6, workers = 5, people = { "Ann.Lee@Example.com", { email = "bo@example.com", name = "Bo Chan" } } }
    assert.equal("ann.lee@example.com", t2.leaver.email)
    assert.equal("Ann", t2.leaver.first)
    assert.is_not_nil(t2.leaver.terminated_ms)
    assert.equal("active", t2:account_status(t2.leaver))
    assert.equal("Bo", t2.state.workers[2].first)
  end)

  it("serves the shared faults as Workday answers: 429 with Retry-After, 500 as a Server Fault", function()
    t:fault { kind = "429", retry_after = 3 }
    local r = post(hr, envelope(workers_req(1, 8), isu()))
    assert.equal(429, r.status)
    assert.equal("3", r.headers["retry-after"])
    t:fault { kind = "500" }
    r = post(hr, envelope(workers_req(1, 8), isu()))
    assert.equal("Server.processingError", soap.fault(r.body).code)
  end)
end)
