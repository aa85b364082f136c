-- sandbox/github/webhooks.lua — organization webhooks: /orgs/{org}/hooks, deliveries signed with
-- X-Hub-Signature-256 (and the legacy sha1 X-Hub-Signature), the ping on creation.
local T = require "sandbox.tenant"
local GH = require "sandbox.github.core"
local json, crypto, isos, DOCS = GH.lib.json, GH.lib.crypto, GH.lib.isos, GH.lib.DOCS

function GH:hook_json(h)
  local b = self.base_url .. "/orgs/" .. self.org.login .. "/hooks/" .. h.id
  return { id = h.id, url = b, ping_url = b .. "/pings", deliveries_url = b .. "/deliveries", name = "web",
           events = json().array(T.deep(h.events)), active = h.active,
           config = { url = h.url, content_type = h.content_type or "json", insecure_ssl = "0", secret = h.secret and "********" or nil },
           updated_at = isos(h.updated), created_at = isos(h.created), type = "Organization" }
end

function GH:create_hook(spec)
  local n = #self.state.hooks + 1
  local h = { id = 400000000 + T.below(T.hash(self.seed, "hook", n), 99999999), url = spec.url, secret = spec.secret,
              events = spec.events or { "organization", "member", "membership", "team", "repository", "org_block" },
              active = spec.active ~= false, content_type = spec.content_type or "json",
              created = self:now_ms() // 1000 }
  h.updated = h.created
  self.state.hooks[#self.state.hooks + 1] = h
  self:send_one(h, "ping", { zen = "Anything added dilutes everything else.", hook_id = h.id, hook = self:hook_json(h),
                             organization = self:org_json(false), sender = self:user_json(self.admin) })
  return h
end

function GH:send_one(h, event, payload)
  self.ndeliv = (self.ndeliv or 0) + 1
  local body = json().encode(payload)
  local headers = { ["Content-Type"] = "application/json", ["User-Agent"] = "GitHub-Hookshot/sandbox",
                    ["X-GitHub-Event"] = event, ["X-GitHub-Delivery"] = T.uuid(self.seed, "delivery", self.ndeliv),
                    ["X-GitHub-Hook-ID"] = tostring(h.id), ["X-GitHub-Hook-Installation-Target-Type"] = "organization",
                    ["X-GitHub-Hook-Installation-Target-ID"] = tostring(self.org.id) }
  if h.secret and h.secret ~= "" then
    local cr = crypto()
    headers["X-Hub-Signature-256"] = "sha256=" .. cr.hex(cr.hmac_sha256(h.secret, body))
    headers["X-Hub-Signature"] = "sha1=" .. cr.hex(cr.hmac_sha1(h.secret, body))
  end
  -- GitHub does not retry failed deliveries by itself
  return self:deliver{ url = h.url, headers = headers, body = body, event = event, retries = 0, hook = h.id }
end

function GH:emit(event, payload)
  payload.organization = payload.organization or self:org_json(false)
  for _, h in ipairs(self.state.hooks) do
    if h.active then
      local want = false
      for _, e in ipairs(h.events) do if e == event or e == "*" then want = true; break end end
      if want then self:send_one(h, event, payload) end
    end
  end
end

function GH:webhook_target(url, secret, events)
  return self:create_hook{ url = url, secret = secret, events = events }
end

function GH:h_hooks(req)
  if not self:org_ok(req) then return self:not_found() end
  if req.method == "GET" then
    local out = {}
    for i, h in ipairs(self.state.hooks) do out[i] = self:hook_json(h) end
    return 200, json().array(out)
  end
  local body = json().decode(req.body or "")
  if type(body) ~= "table" or type(body.config) ~= "table" or type(body.config.url) ~= "string" then
    return 422, { message = "Validation Failed", errors = json().array({ { resource = "Hook", field = "config", code = "missing_field" } }), documentation_url = DOCS, status = "422" }
  end
  local h = self:create_hook{ url = body.config.url, secret = body.config.secret, events = body.events or { "push" },
                              active = body.active, content_type = body.config.content_type }
  return 201, self:hook_json(h)
end

function GH:h_hook_delete(req)
  if not self:org_ok(req) then return self:not_found() end
  for i, h in ipairs(self.state.hooks) do
    if tostring(h.id) == req.params.hook_id then table.remove(self.state.hooks, i); return 204, "" end
  end
  return self:not_found()
end

return function(org, route)
  org("GET", "/hooks", GH.h_hooks)
  org("POST", "/hooks", GH.h_hooks)
  org("DELETE", "/hooks/:hook_id", GH.h_hook_delete)
end
