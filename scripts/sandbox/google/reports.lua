-- sandbox/google/reports.lua — Admin SDK Reports API (admin/reports/v1): activities.list for an
-- application, newest first, startTime/endTime (RFC 3339), eventName, maxResults 1–1000 (default 1000),
-- pageToken.  An activity is listed only once its application's lag has passed
-- (workspace.LAG: the documented "Data retention and lag times").
local T = require "sandbox.tenant"
local C = require "sandbox.google.common"
local WS = require "sandbox.google.workspace"
local W = WS.W
local json = C.json

local KNOWN = {}
for _, a in ipairs(WS.APPS) do KNOWN[a] = true end

local function render(a)
  return { kind = a.kind, id = a.id, etag = '"a"', actor = a.actor, ipAddress = a.ipAddress, ownerDomain = a.ownerDomain,
           events = a.events }
end

function W:h_activities(req)
  local u = self:actor(req)
  if not u or not u.isAdmin then return self:err(403, "forbidden", "Not Authorized to access this resource/api") end
  local app = req.params.app
  if not KNOWN[app] then
    return self:bad(("Parameter applicationName value \"%s\" does not match the pattern."):format(tostring(app)), "applicationName")
  end
  local q = req.query
  local from, to
  if q.startTime then
    from = T.parse_iso(q.startTime)
    if not from then return self:bad("Invalid value for: startTime", "startTime") end
  end
  if q.endTime then
    to = T.parse_iso(q.endTime)
    if not to then return self:bad("Invalid value for: endTime", "endTime") end
  end
  local now = self:now_ms()
  if from and from > now then return self:bad("Start time occurs after current time.", "startTime") end
  if from and to and from > to then return self:bad("Start time occurs after end time.", "startTime") end
  local who = req.params.user
  local list = {}
  for _, a in ipairs(self.state.activities[app]) do
    if a.visible_ms <= now and (not from or a.ms >= from) and (not to or a.ms <= to)
      and (who == "all" or a.actor.email == who or a.actor.profileId == who)
      and (not q.eventName or a.events[1].name == q.eventName) then
      list[#list + 1] = render(a)
    end
  end
  local n = T.intparam(q.maxResults, 1000, 1, 1000)
  if not n then return self:bad("Invalid value for: maxResults", "maxResults") end
  local page, nxt, body = self:paged(req, list, 1000, 1000)
  if not page then return nxt, body end
  return 200, { kind = "admin#reports#activities", etag = '"r"', items = json().array(page), nextPageToken = nxt }
end

return {
  { "GET", "/admin/reports/v1/activity/users/:user/applications/:app", W.h_activities, { scopes = { "admin.reports.audit.readonly" } } },
}
