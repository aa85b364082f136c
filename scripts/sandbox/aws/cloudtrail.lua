-- sandbox/aws/cloudtrail.lua — CloudTrail's LookupEvents (JSON 1.1: POST / with X-Amz-Target
-- com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents): the account's management events of
-- the last 90 days, newest first, at most one lookup attribute, MaxResults 1-50, NextToken paging, and the
-- documented 2 requests a second per account and region (ThrottlingException).  Each region has its own
-- history: console sign-ins where the sign-in endpoint was, IAM's calls in us-east-1 (a global service).  The history holds console
-- sign-ins (ConsoleLogin records as the CloudTrail user guide shows them) and the IAM calls made here.
local C = require "sandbox.aws.core"
local T = require "sandbox.tenant"

local CT = {}
local TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
local KEYS = { EventId = "id", EventName = "name", ReadOnly = "read_only", Username = "username",
               EventSource = "source", AccessKeyId = "access_key", ResourceType = "resource_type",
               ResourceName = "resource_name" }
local RETENTION = 90 * 86400
local PER_SECOND = 2

local UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"

-- Append an event to the history (kept in time order).
function C.Aws:add_event(ev)
  self.events = self.events or {}
  self.event_seq = (self.event_seq or 0) + 1
  ev.id = ev.id or T.uuid(self.seed, "event", self.event_seq)
  ev.record.eventID = ev.id
  ev.ms = ev.time * 1000
  ev.region = ev.region or "us-east-1"
  T.insert_sorted(self.events, ev)
  if self.trail_live then self:deliver { ev } end
  return ev
end

-- The account's trail: CloudTrail also delivers every event to the trail's bucket, a gzipped JSON file
-- {"Records": [...]} per region and delivery, under AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/ named
-- <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz (the CloudTrail user guide's layout).
-- The seeded history comes as one file per region and day; each later event in a file of its own.
function C.Aws:deliver(events)
  local by = {}
  for _, ev in ipairs(events) do
    by[ev.region] = by[ev.region] or {}
    table.insert(by[ev.region], ev)
  end
  local regions = {}
  for r in pairs(by) do regions[#regions + 1] = r end
  table.sort(regions)
  for _, r in ipairs(regions) do
    local records, last = {}, 0
    for i, ev in ipairs(by[r]) do records[i] = ev.record; last = math.max(last, math.floor(ev.time)) end
    self.trail_seq = (self.trail_seq or 0) + 1
    local y, mo, d, h, mi = T.iso_s(last):match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+)")
    local key = ("AWSLogs/%s/CloudTrail/%s/%s/%s/%s/%s_CloudTrail_%s_%s%s%sT%s%sZ_%s.json.gz"):format(self.account, r, y, mo, d,
      self.account, r, y, mo, d, h, mi, T.b62(16, self.seed, "trail", self.trail_seq))
    self:put_object(self.trail_bucket, key, zip.gzip(json.encode { Records = json.array(records) }))
  end
end

-- The seeded history into the trail, then every new event as it happens.
function C.Aws:seed_trail()
  local days, order = {}, {}
  for _, ev in ipairs(self.events or {}) do
    local day = ev.region .. T.iso_s(ev.time):sub(1, 10)
    if not days[day] then days[day] = {}; order[#order + 1] = day end
    table.insert(days[day], ev)
  end
  for _, day in ipairs(order) do self:deliver(days[day]) end
  self.trail_live = true
end

-- A console sign-in of an IAM user (or the root user when name is nil), recorded in the region of the
-- sign-in endpoint used (default us-east-1).
function C.Aws:console_login(name, t, ok, ip, mfa, region)
  region = region or "us-east-1"
  local u = name and self.users[name]
  local identity = u and { type = "IAMUser", principalId = u.UserId, accountId = self.account, accessKeyId = "",
                           userName = u.UserName, arn = u.Arn }
    or { type = "Root", principalId = self.account, arn = ("arn:aws:iam::%s:root"):format(self.account),
         accountId = self.account, accessKeyId = "" }
  local record = {
    eventVersion = "1.08", userIdentity = identity, eventTime = T.iso_s(t), eventSource = "signin.amazonaws.com",
    eventName = "ConsoleLogin", awsRegion = region, sourceIPAddress = ip, userAgent = UA,
    errorMessage = (not ok) and "Failed authentication" or nil, requestParameters = json.null,
    responseElements = { ConsoleLogin = ok and "Success" or "Failure" },
    additionalEventData = { LoginTo = ("https://%s.console.aws.amazon.com/console/home"):format(region), MobileVersion = "No",
                            MFAUsed = mfa and "Yes" or "No" },
    eventType = "AwsConsoleSignIn", recipientAccountId = self.account,
  }
  return self:add_event { time = t, name = "ConsoleLogin", source = "signin.amazonaws.com", read_only = "false",
    username = u and u.UserName or "root", access_key = "", record = record, resources = {}, region = region }
end

-- An IAM call made on this account (the governance writes), as CloudTrail records it.
function C.Aws:api_event(req, action, params, resource)
  local c = req.caller or {}
  local arn = c.session and c.session.arn or (c.user and self.users[c.user] and self.users[c.user].Arn)
  local identity = c.session and { type = "AssumedRole", arn = arn, accountId = self.account, accessKeyId = req.access_key }
    or { type = "IAMUser", arn = arn, accountId = self.account, accessKeyId = req.access_key, userName = c.user }
  local t = self:now_ms() / 1000
  local record = {
    eventVersion = "1.08", userIdentity = identity, eventTime = T.iso_s(math.floor(t)), eventSource = "iam.amazonaws.com",
    eventName = action, awsRegion = "us-east-1", sourceIPAddress = (req.remote or ""):match("^(.*):%d+$") or "127.0.0.1",
    userAgent = req.headers["user-agent"] or "", requestParameters = params, responseElements = json.null,
    eventType = "AwsApiCall", managementEvent = true, recipientAccountId = self.account,
  }
  return self:add_event { time = t, name = action, source = "iam.amazonaws.com", read_only = "false",
    username = c.session and c.session.name or c.user, access_key = req.access_key or "", record = record,
    resources = resource and { resource } or {}, region = "us-east-1" }      -- IAM is global: us-east-1
end

-- The generated history: each console user signs in a few times over the last two weeks, a tenth of the
-- attempts failing, every third user through the Ireland console (eu-west-1); the root user once.
function C.Aws:seed_events(days)
  local rng = T.rng(self.seed, "events")
  local now = math.floor(self:now_ms() / 1000)
  for i, n in ipairs(self.user_order) do
    local u = self.users[n]
    if u.login then
      for _ = 1, rng:int(1, 6) do
        local ok = not rng:chance(0.1)
        self:console_login(n, now - rng:int(600, days * 86400), ok, ("203.0.113.%d"):format(rng:int(1, 254)), u.mfa ~= nil,
          i % 3 == 0 and "eu-west-1" or nil)
      end
    end
  end
  self:console_login(nil, now - rng:int(600, days * 86400), true, ("198.51.100.%d"):format(rng:int(1, 254)), false)
end

-- Failed console sign-ins then a success, now (the `cachost sandbox` brute-force control).
function C.Aws:simulate_bruteforce(name, failures)
  if not self.users[name] then error("no user " .. tostring(name)) end
  local t = self:now_ms() / 1000
  for i = 1, failures do self:console_login(name, t - failures + i - 1, false, "192.0.2.66", false) end
  self:console_login(name, t, true, "192.0.2.66", false)
end

-- The clock second the per-second budget counts in (a test may pin it).
function C.Aws:second() return self:wall_s() end

function C.Aws:count_events(name)
  local n = 0
  for _, ev in ipairs(self.events or {}) do if not name or ev.name == name then n = n + 1 end end
  return n
end

local function event_out(ev)
  return { EventId = ev.id, EventName = ev.name, ReadOnly = ev.read_only, AccessKeyId = ev.access_key,
           EventTime = ev.time, EventSource = ev.source, Username = ev.username,
           Resources = json.array(T.shallow(ev.resources)), CloudTrailEvent = json.encode(ev.record) }
end

local function lookup(self, req, q)
  local E = function(code, msg) return self:json_error(req, 400, code, msg) end
  local attrs = q.LookupAttributes or {}
  if type(attrs) ~= "table" or #attrs > 1 then return E("InvalidLookupAttributesException", "You can only specify one lookup attribute.") end
  local attr = attrs[1]
  if attr and (type(attr) ~= "table" or not KEYS[attr.AttributeKey] or type(attr.AttributeValue) ~= "string") then
    return E("InvalidLookupAttributesException", "Invalid AttributeKey or AttributeValue.")
  end
  local max = q.MaxResults == nil and 50 or math.tointeger(q.MaxResults)
  if not max or max < 1 or max > 50 then return E("InvalidMaxResultsException", "MaxResults must be between 1 and 50.") end
  local now = self:now_ms() / 1000
  local from, to = tonumber(q.StartTime) or (now - RETENTION), tonumber(q.EndTime) or now
  if from > to then return E("InvalidTimeRangeException", "StartTime must be before EndTime.") end
  from = math.max(from, now - RETENTION)
  to = math.min(to, now)
  -- the token names the query it belongs to and where the previous page ended
  local fingerprint = crypto.hex(crypto.sha256(json.encode { attr or json.null, q.StartTime or json.null, q.EndTime or json.null })):sub(1, 16)
  local skip = 0
  if q.NextToken ~= nil then
    local fp, n = tostring(crypto.unb64(tostring(q.NextToken)) or ""):match("^(%x+):(%d+)$")
    if fp ~= fingerprint then return E("InvalidNextTokenException", "Invalid NextToken.") end
    skip = tonumber(n)
  end
  local out, seen, more = {}, 0, false
  local events = self.events or {}
  for i = #events, 1, -1 do                       -- newest first
    local ev = events[i]
    if ev.region == req.aws_region and ev.time <= to and ev.time >= from
        and (not attr or tostring(ev[KEYS[attr.AttributeKey]]) == attr.AttributeValue) then
      seen = seen + 1
      if seen > skip then
        if #out == max then more = true; break end
        out[#out + 1] = event_out(ev)
      end
    end
  end
  local body = { Events = json.array(out) }
  if more then body.NextToken = crypto.b64(fingerprint .. ":" .. (skip + #out)) end
  return 200, json.encode(body), { ["Content-Type"] = "application/x-amz-json-1.1" }
end

-- POST / for the cloudtrail service: the operation is named by X-Amz-Target.
function CT.handle(self, req)
  local target = req.headers["x-amz-target"] or ""
  local op = target:sub(1, #TARGET) == TARGET and target:sub(#TARGET + 1)
  if op ~= "LookupEvents" then
    return self:json_error(req, 400, "UnknownOperationException", "Unknown operation " .. target)
  end
  if not (req.headers["content-type"] or ""):match("^application/x%-amz%-json%-1%.1") then
    return self:json_error(req, 400, "SerializationException", "Content-Type must be application/x-amz-json-1.1")
  end
  -- 2 requests a second per account and region
  local sec, r = self:second(), req.aws_region
  self.ct_rate = self.ct_rate or {}
  local rate = self.ct_rate[r] or {}
  self.ct_rate[r] = rate
  if rate.second ~= sec then rate.second, rate.count = sec, 0 end
  rate.count = rate.count + 1
  if rate.count > PER_SECOND then return self:json_error(req, 400, "ThrottlingException", "Rate exceeded") end
  local q = json.decode(req.body ~= "" and req.body or "{}")
  if type(q) ~= "table" then return self:json_error(req, 400, "SerializationException", "Malformed JSON body") end
  return lookup(self, req, q)
end

return CT
