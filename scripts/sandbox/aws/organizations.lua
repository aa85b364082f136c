-- sandbox/aws/organizations.lua — AWS Organizations' ListAccounts (JSON 1.1: POST / with X-Amz-Target
-- AWSOrganizationsV20161128.ListAccounts, signed for organizations in us-east-1), asked of the
-- organization's management account: every account with its Id, Arn, Email, Name, Status, JoinedMethod and
-- JoinedTimestamp, MaxResults 1-20, NextToken paging.  A member account, or an account in no organization,
-- is refused as Organizations refuses it.  The member accounts are emulated too (aws.new{members = N}):
-- each its own account on the same port, reached with the session of its OrganizationAccountAccessRole
-- (sts.lua), which trusts the management account.
local C = require "sandbox.aws.core"

local O = {}
local TARGET = "AWSOrganizationsV20161128."

local function account_view(a)
  return { Id = a.account, Arn = ("arn:aws:organizations::%s:account/%s/%s"):format(a.org.management.account, a.org.id, a.account),
           Email = a.org_email, Name = a.org_name, Status = a.org_status or "ACTIVE",
           JoinedMethod = a == a.org.management and "INVITED" or "CREATED", JoinedTimestamp = a.org_joined }
end

function O.handle(self, req)
  local target = req.headers["x-amz-target"] or ""
  if target ~= TARGET .. "ListAccounts" then
    return self:json_error(req, 400, "UnknownOperationException", "Unknown operation " .. target)
  end
  if not self.org then
    return self:json_error(req, 400, "AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")
  end
  if self.org.management ~= self then
    return self:json_error(req, 400, "AccessDeniedException", "You don't have permissions to access this resource.")
  end
  local q = json.decode(req.body ~= "" and req.body or "{}")
  if type(q) ~= "table" then return self:json_error(req, 400, "SerializationException", "Malformed JSON body") end
  local max = q.MaxResults == nil and 20 or math.tointeger(q.MaxResults)
  if not max or max < 1 or max > 20 then
    return self:json_error(req, 400, "InvalidInputException", "MaxResults must be between 1 and 20.")
  end
  local from = 1
  if q.NextToken ~= nil then
    from = math.tointeger(tonumber((crypto.unb64(tostring(q.NextToken)) or ""):match("^a:(%d+)$") or ""))
    if not from then return self:json_error(req, 400, "InvalidInputException", "Invalid NextToken.") end
  end
  local all, out = self.org.accounts, {}
  for i = from, math.min(#all, from + max - 1) do out[#out + 1] = account_view(all[i]) end
  local body = { Accounts = json.array(out) }
  if from + max <= #all then body.NextToken = crypto.b64("a:" .. (from + max)) end
  return 200, json.encode(body), { ["Content-Type"] = "application/x-amz-json-1.1" }
end

return O
