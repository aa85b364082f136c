-- sandbox/github/audit.lua — the organization audit log (GitHub Enterprise Cloud): generated events
-- (pure in (seed, i)) merged with stored ones, the phrase search syntax, after/before cursors.
local T = require "sandbox.tenant"
local GH = require "sandbox.github.core"
local json, crypto = GH.lib.json, GH.lib.crypto

local AUDIT_ACTIONS = {   -- cumulative weights
  { 0.20, "repo.access" }, { 0.35, "team.add_member" }, { 0.45, "repo.create" }, { 0.55, "org.add_member" },
  { 0.62, "oauth_authorization.create" }, { 0.70, "org_credential_authorization.grant" }, { 0.78, "repo.add_member" },
  { 0.84, "team.remove_member" }, { 0.89, "org.update_member" }, { 0.93, "protected_branch.update" },
  { 0.97, "repo.destroy" }, { 1.01, "org.invite_member" },
}
-- Git events (include=git|all; web is the default): clones, fetches and pushes over HTTPS or SSH.
local GIT_ACTIONS = { "git.clone", "git.clone", "git.fetch", "git.push" }
-- actor_location carries the ISO 3166-1 alpha-2 country_code (the `country:` qualifier searches it)
local COUNTRIES = { "US", "DE", "GB", "CA", "FR", "JP", "BR" }
local function is_git(ev) return (ev.action or ""):match("^git%.") ~= nil end

function GH:gen_ms(i)
  local span = self.days * 86400000
  local u = T.unit(T.hash(self.seed, "audt", i))
  return self.t0_ms - span + math.floor((i + u) * span / self.naudit)
end

function GH:gen_audit(i)
  local seed = self.seed
  local x = T.unit(T.hash(seed, "auda", i))
  local action = "repo.access"
  for _, w in ipairs(AUDIT_ACTIONS) do if x < w[1] then action = w[2]; break end end
  local git = T.unit(T.hash(seed, "audgit", i)) < self.git_share
  if git then action = GIT_ACTIONS[T.below(T.hash(seed, "audgita", i), #GIT_ACTIONS) + 1] end
  local ms = self:gen_ms(i)
  local members = self.state.members
  local actor = members[T.below(T.hash(seed, "audactor", i), #members) + 1]
  local ev = { ["@timestamp"] = ms, _document_id = T.b62(22, seed, "doc", i), action = action, actor = actor.login,
               actor_id = actor.id, actor_location = { country_code = COUNTRIES[T.below(T.hash(seed, "cc", i), #COUNTRIES) + 1] },
               created_at = ms, org = self.org.login, org_id = self.org.id, operation_type = "modify" }
  local fam = action:match("^(%w+)")
  if git then
    local rp = self.state.repos[T.below(T.hash(seed, "audrepo", i), #self.state.repos) + 1]
    ev.repo = self.org.login .. "/" .. rp.name; ev.repository = ev.repo; ev.repository_public = rp.visibility == "public"
    ev.transport_protocol_name = T.unit(T.hash(seed, "audproto", i)) < 0.5 and "http" or "ssh"
    ev.transport_protocol = ev.transport_protocol_name == "http" and 1 or 2
    ev.operation_type, ev.org_id = nil, nil
    ev.user = actor.login
    return ev
  end
  if fam == "repo" or action == "protected_branch.update" then
    local rp = self.state.repos[T.below(T.hash(seed, "audrepo", i), #self.state.repos) + 1]
    ev.repo = self.org.login .. "/" .. rp.name; ev.repo_id = rp.id; ev.visibility = rp.visibility
  end
  if fam == "team" then
    local t = self.state.teams[T.below(T.hash(seed, "audteam", i), math.max(1, #self.state.teams)) + 1]
    if t then ev.team = self.org.login .. "/" .. t.slug end
  end
  if fam == "team" or action:find("member") then
    local u = members[T.below(T.hash(seed, "auduser", i), #members) + 1]
    ev.user = u.login; ev.user_id = u.id
  end
  if action == "oauth_authorization.create" then ev.oauth_application_name = "Sandbox OAuth App" end
  if action == "org_credential_authorization.grant" then ev.credential_type = "personal access token" end
  return ev
end

-- store an audit event {action=, actor=, user=, repo=, team=, ...extra}
function GH:add_event(spec)
  self.seq = self.seq + 1
  local ms = spec.ms or self:now_ms()
  local actor = spec.actor and (self.state.by_login[spec.actor:lower()] or { login = spec.actor, id = 0 }) or self.admin
  local ev = { ["@timestamp"] = ms, _document_id = T.b62(22, self.seed, "sdoc", self.seq), action = spec.action,
               actor = actor.login, actor_id = actor.id, actor_location = { country_code = spec.country or "US" },
               created_at = ms, org = self.org.login, org_id = self.org.id }
  for k, v in pairs(spec) do
    if k ~= "ms" and k ~= "actor" and k ~= "country" then ev[k] = v end
  end
  if spec.user and not ev.user_id then
    local u = self.state.by_login[spec.user:lower()]
    if u then ev.user_id = u.id end
  end
  T.insert_sorted(self.state.events, { ms = ms, seq = self.seq, ev = ev })
  return ev
end

-- phrase: space-separated qualifiers key:value (action, actor, user, repo, team, org, created, country),
-- '-' negates; created supports >, >=, <, <=, and a..b ranges on dates.
local function phrase_filter(phrase)
  if not phrase or phrase == "" then return nil end
  local preds = {}
  for tok in phrase:gmatch("%S+") do
    local neg = tok:sub(1, 1) == "-"
    if neg then tok = tok:sub(2) end
    local k, v = tok:match("^([%w_]+):(.+)$")
    local p
    if k == "created" or k == "@timestamp" then
      local op, d = v:match("^([<>]=?)(.+)$")
      local a, b = v:match("^(.-)%.%.(.+)$")
      if op then
        local t = T.parse_iso(d)
        if not t then return nil, "created" end
        p = function(e)
          local x = e["@timestamp"]
          if op == ">" then return x > t elseif op == ">=" then return x >= t elseif op == "<" then return x < t else return x <= t end
        end
      elseif a then
        local ta, tb = T.parse_iso(a), T.parse_iso(b)
        if not ta or not tb then return nil, "created" end
        p = function(e) return e["@timestamp"] >= ta and e["@timestamp"] < tb + 86400000 end
      else
        local t = T.parse_iso(v)
        if not t then return nil, "created" end
        p = function(e) return e["@timestamp"] >= t and e["@timestamp"] < t + 86400000 end
      end
    elseif k then
      local key = k == "country" and nil or k
      local want = v:lower()
      p = function(e)
        local x = key and e[key] or (e.actor_location and e.actor_location.country_code)
        if x == nil then return false end
        x = tostring(x):lower()
        if key == "action" and not want:find("%.") then return x:match("^[^%.]+") == want end
        return x == want
      end
    else
      local w = tok:lower()
      p = function(e) return (e.action or ""):lower():find(w, 1, true) ~= nil end
    end
    preds[#preds + 1] = neg and function(e) return not p(e) end or p
  end
  return function(e)
    for _, p in ipairs(preds) do if not p(e) then return false end end
    return true
  end
end

local function enc_cursor(key)
  return crypto().b64url(string.format("%d|%d|%d", key[1], key[2], key[3]))
end
local function dec_cursor(s)
  local raw = crypto().unb64url(s or "")
  if not raw then return nil end
  local a, b, c = raw:match("^(%-?%d+)|(%d+)|(%d+)$")
  if not a then return nil end
  return { math.tointeger(tonumber(a)), math.tointeger(tonumber(b)), math.tointeger(tonumber(c)) }
end

function GH:h_audit(req)
  local q = req.query
  local per = T.intparam(q.per_page, 30, 1, 100) or 30
  local order = (q.order or "desc"):lower()
  if order ~= "asc" and order ~= "desc" then return self:err(422, "Validation Failed") end
  local pred, perr = phrase_filter(q.phrase)
  -- include: web (the default: web and API events), git (Git events only) or all
  local include = (q.include or "web"):lower()
  if include ~= "web" and include ~= "git" and include ~= "all" then return self:err(422, "Validation Failed") end
  if perr then return self:err(422, "Invalid phrase: " .. perr) end
  local now = self:now_ms()
  local K, dir
  local after, before = q.after, q.before
  local reverse = false      -- walking "before" goes against the listing order, then flips
  if after and after ~= "" then
    K = dec_cursor(after)
    if not K then return self:err(422, "Invalid cursor") end
    dir = order == "desc" and -1 or 1
  elseif before and before ~= "" then
    K = dec_cursor(before)
    if not K then return self:err(422, "Invalid cursor") end
    dir = order == "desc" and 1 or -1
    reverse = true
  else
    if order == "desc" then K, dir = { now + 1, 9, 0 }, -1 else K, dir = { -1, 0, 0 }, 1 end
  end
  local out, keys = {}, {}
  local more = false
  T.merged_scan(self.naudit, function(i) return self:gen_ms(i) end, function(i) return self:gen_audit(i) end,
    self.state.events, K, dir, function(ms, key, get)
      if ms > now then return dir > 0 end   -- nothing from the future
      local ev = get()
      if include ~= "all" and is_git(ev) ~= (include == "git") then return false end
      if pred and not pred(ev) then return false end
      if #out >= per then more = true; return true end
      out[#out + 1] = ev; keys[#keys + 1] = key
      return false
    end)
  if reverse then
    local n = #out
    for i = 1, n // 2 do out[i], out[n - i + 1] = out[n - i + 1], out[i]; keys[i], keys[n - i + 1] = keys[n - i + 1], keys[i] end
  end
  local function url(kind, cur)
    local l = {}
    if q.phrase then l[#l + 1] = { "phrase", q.phrase } end
    if q.include then l[#l + 1] = { "include", q.include } end
    if q.order then l[#l + 1] = { "order", q.order } end
    if q.per_page then l[#l + 1] = { "per_page", tostring(per) } end
    if kind then l[#l + 1] = { kind, cur } end
    return self.base_url .. "/organizations/" .. self.org.id .. "/audit-log" .. (#l > 0 and ("?" .. T.qs(l)) or "")
  end
  local links = {}
  local has_next = (not reverse and more) or (reverse and #out > 0)
  local has_prev = (reverse and more) or (not reverse and (after and after ~= "") and #out > 0)
  if has_prev then links[#links + 1] = { url("before", enc_cursor(keys[1])), "prev" } end
  if has_next and #keys > 0 then links[#links + 1] = { url("after", enc_cursor(keys[#keys])), "next" } end
  links[#links + 1] = { url(nil), "first" }
  return 200, json().array(out), { Link = T.link(links) }
end

-- incremental activity for tests: n audit events of an action by actor
function GH:simulate_activity(action, n, spec)
  local out = {}
  for _ = 1, n or 1 do
    local s = T.shallow(spec or {})
    s.action = action
    out[#out + 1] = self:add_event(s)
  end
  return out
end

return function(org, route)
  org("GET", "/audit-log", function(self, req)
    if not self:org_ok(req) then return self:not_found() end
    if self.plan ~= "enterprise" then return self:cloud_only("orgs/orgs#get-the-audit-log-for-an-organization") end
    return self:h_audit(req)
  end, { app = "organization_administration:read" })
end
