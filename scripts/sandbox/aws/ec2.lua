-- sandbox/aws/ec2.lua — EC2's DescribeRegions (EC2's own query protocol, Version 2016-11-15): the regions
-- enabled for the account (those that need no opt-in, and those it opted in to), or with AllRegions=true
-- every region with its opt-in status.  EC2 answers without a Result wrapper, with lists of <item>s and
-- a lower-case requestId; its errors are <Response><Errors><Error>.  A region the account has not
-- enabled refuses every request (auth.lua): that is why clients ask this first.
local C = require "sandbox.aws.core"

local A = {}
C.EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

function A.DescribeRegions(self, req, p)
  local all = p.AllRegions == "true"
  if p.AllRegions and p.AllRegions ~= "true" and p.AllRegions ~= "false" then
    return self:ec2_error(req, 400, "InvalidParameterValue", "Invalid value for AllRegions: " .. p.AllRegions)
  end
  local items = {}
  for _, r in ipairs(C.REGIONS) do
    local status = C.OPT_IN[r] and (self.enabled_regions[r] and "opted-in" or "not-opted-in") or "opt-in-not-required"
    if all or self.enabled_regions[r] then
      items[#items + 1] = ("<item><regionName>%s</regionName><regionEndpoint>ec2.%s.amazonaws.com</regionEndpoint>"
        .. "<optInStatus>%s</optInStatus></item>"):format(r, r, status)
    end
  end
  return 200, ('<DescribeRegionsResponse xmlns="%s"><requestId>%s</requestId><regionInfo>%s</regionInfo></DescribeRegionsResponse>')
    :format(C.EC2_NS, self:request_id(req), table.concat(items)), { ["Content-Type"] = "text/xml;charset=UTF-8" }
end

return A
