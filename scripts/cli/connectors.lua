-- The capability matrix, read from the connectors themselves.
local sdk = require "sdk"
local format = require "format"

local function yes(v) if v == true then return "yes" elseif type(v) == "table" then return table.concat(v, "/") else return "-" end end

return {
  summary = "list the connectors and what each can do",
  usage = [[usage: cachost connectors [APP] [--format table|json|csv]
Without APP: one row per app with its capabilities.  With APP: its settings, streams and actions.]],
  options = { { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local fmt = opts.format or "table"
    if args[1] then
      local c, err = sdk.load(args[1])
      if not c then return ctx.fail("%s", err) end
      local rows = {}
      for _, s in ipairs(c.settings) do
        rows[#rows + 1] = { kind = "setting", name = s[1],
          detail = (s.required and "required " or "") .. (s.secret and "secret " or "") .. (s.help or s.example or "") }
      end
      local streams = sdk.streams(c)
      for _, s in ipairs(streams) do rows[#rows + 1] = { kind = "stream", name = s, detail = "" } end
      -- c.needs: what each capability needs of the provider (scopes, roles, licences), least privilege
      local needs = {}
      for cap in pairs(type(c.needs) == "table" and c.needs or {}) do needs[#needs + 1] = cap end
      table.sort(needs)
      for _, cap in ipairs(needs) do
        local v = c.needs[cap]
        rows[#rows + 1] = { kind = "needs", name = cap, detail = type(v) == "table" and table.concat(v, "; ") or tostring(v) }
      end
      -- c.not_offered: a capability the provider's API does not allow, and why
      for _, cap in ipairs(sdk.CAPABILITIES) do
        if not c.capabilities[cap] then
          rows[#rows + 1] = { kind = "not offered", name = cap, detail = (c.not_offered or {})[cap] or "" }
        end
      end
      local actions = {}
      for a in pairs(c.actions) do actions[#actions + 1] = a end
      table.sort(actions)
      for _, a in ipairs(actions) do rows[#rows + 1] = { kind = "action", name = a, detail = c.undo and c.undo[a] and ("undo: " .. c.undo[a]) or "" } end
      if c.webhook then rows[#rows + 1] = { kind = "webhook", name = "/webhooks/<instance>", detail = "verified, triggers a re-fetch" } end
      if fmt == "json" then
        ctx.out("%s\n", json.encode { app = c.app, title = c.title, single_instance = c.single_instance,
          capabilities = c.capabilities, needs = c.needs, not_offered = c.not_offered, items = rows })
        return 0
      end
      ctx.out("%s (%s)%s\n", c.title, c.app, c.single_instance and " — one instance per installation" or "")
      format.rows(rows, { "kind", "name", "detail" }, fmt)
      return 0
    end
    local rows = {}
    for _, app in ipairs(sdk.apps()) do
      local c, err = sdk.load(app)
      if c then
        local caps = c.capabilities
        local actions = {}
        for a in pairs(c.actions) do actions[#actions + 1] = a end
        table.sort(actions)
        rows[#rows + 1] = { app = app, title = c.title, users = yes(caps.users), groups = yes(caps.groups),
          privileges = yes(caps.privileges), activities = yes(caps.activities), files = yes(caps.files),
          app_grants = yes(caps.app_grants), actions = table.concat(actions, ","),
          instances = c.single_instance and "one" or "many" }
      else
        ctx.err("cachost: connector %s: %s\n", app, err)
      end
    end
    format.rows(rows, { "app", "title", "users", "groups", "privileges", "activities", "files", "app_grants",
      "instances", "actions" }, fmt)
    return 0
  end,
}
