-- sandbox/box/webhooks.lua — webhooks V2, signed with both keys.
local T = require "sandbox.tenant"
local C = require "sandbox.box.common"
local Box = C.Box
local M = {}
local json, crypto, btime, body_of = C.json, C.crypto, C.btime, C.body_of

function Box:webhook_json(w)
  return { id = w.id, type = "webhook", target = { id = w.target.id, type = w.target.type }, created_by = self:user_mini(self.admin),
           created_at = btime(w.created), address = w.address, triggers = json().array(T.deep(w.triggers)) }
end

function Box:create_webhook(spec)
  local w = { id = self:new_id("webhook"), target = spec.target, address = spec.address, triggers = spec.triggers, created = self:now_ms() }
  self.state.webhooks[#self.state.webhooks + 1] = w
  return w
end

-- tests: a webhook on a folder (default root's first folder is not allowed to be "0"; any folder works here)
function Box:webhook_target(address, target_id, triggers)
  return self:create_webhook{ address = address, target = { id = target_id, type = "folder" },
    triggers = triggers or { "FILE.UPLOADED", "FILE.TRASHED", "FILE.MOVED", "FILE.RESTORED", "SHARED_LINK.CREATED",
                             "SHARED_LINK.DELETED", "SHARED_LINK.UPDATED", "COLLABORATION.CREATED", "COLLABORATION.REMOVED" } }
end

-- signature = base64(HMAC-SHA256(key, body .. timestamp)) with each key; both headers always sent (§10)
function M.sign(key, body, timestamp)
  local cr = crypto()
  return cr.b64(cr.hmac_sha256(key, body .. timestamp))
end

function Box:send_webhook(w, trigger, it, actor, extra)
  self.nseq = self.nseq + 1
  local payload = { type = "webhook_event", id = T.uuid(self.seed, "whe", self.nseq), created_at = btime(self:now_ms()), trigger = trigger,
                    webhook = { id = w.id, type = "webhook" }, created_by = self:user_mini(actor), source = self:item_full(it),
                    additional_info = extra or json().array({}) }
  local body = json().encode(payload)
  local ts = btime(self:wall_s() * 1000)
  local headers = { ["Content-Type"] = "application/json; charset=UTF-8", ["User-Agent"] = "Box-WH-Client/0.1",
                    ["BOX-DELIVERY-ID"] = T.uuid(self.seed, "whd", self.nseq), ["BOX-DELIVERY-TIMESTAMP"] = ts,
                    ["BOX-SIGNATURE-PRIMARY"] = M.sign(self.keys.primary, body, ts),
                    ["BOX-SIGNATURE-SECONDARY"] = M.sign(self.keys.secondary, body, ts),
                    ["BOX-SIGNATURE-VERSION"] = "1", ["BOX-SIGNATURE-ALGORITHM"] = "HmacSHA256" }
  return self:deliver{ url = w.address, headers = headers, body = body, event = trigger, retries = 0, hook = w.id }
end

function Box:h_webhooks(req)
  if req.method == "GET" then
    req.query.usemarker = "true"
    return self:paged(req, self.state.webhooks, function(w) return { id = w.id, type = "webhook", target = { id = w.target.id, type = w.target.type } } end)
  end
  local b = body_of(req)
  if not b or type(b.target) ~= "table" or type(b.address) ~= "string" or type(b.triggers) ~= "table" then
    return self:err(400, "bad_request", "target, address and triggers are required")
  end
  if tostring(b.target.id) == "0" then return self:err(400, "bad_request", "Webhooks are not allowed on the root folder") end
  if not self:live(tostring(b.target.id), b.target.type, req.actor) then return self:not_found("target") end
  for _, w in ipairs(self.state.webhooks) do
    if w.target.id == tostring(b.target.id) then return self:err(409, "conflict", "Webhook for this target already exists") end
  end
  local w = self:create_webhook{ target = { id = tostring(b.target.id), type = b.target.type }, address = b.address, triggers = b.triggers }
  return 201, self:webhook_json(w)
end

function Box:h_webhook(req)
  for i, w in ipairs(self.state.webhooks) do
    if w.id == req.params.id then
      if req.method == "DELETE" then table.remove(self.state.webhooks, i); return 204, "" end
      return 200, self:webhook_json(w)
    end
  end
  return self:not_found("webhook")
end

return M
