-- sandbox/box/init.lua — a Box enterprise emulator following /work/shared/api/box.md: OAuth2 at /oauth2/token
-- (client credentials with box_subject_type, authorization code, single-use refresh tokens, revoke),
-- Bearer auth, users / groups / memberships, enterprise events (admin_logs, admin_logs_streaming) with
-- stream positions, folders and files (marker and offset pagination, fields=, shared links, collaborations,
-- trash, downloads by redirect, multipart uploads on the upload host), webhooks V2 signed with both keys,
-- 429 with retry-after and Box's ClientError bodies.  Files carry seeded sensitive content (card numbers,
-- SSNs, AWS keys, a private key) and some are shared publicly or with people outside the enterprise.
--
--   local box = require "sandbox.box"
--   local t = box.new{seed=1, users=30, groups=4, folders=10, files=40, events=300, days=30}
--   t:mount(srv)   -- API under /2.0, uploads under /api/2.0, OAuth at /oauth2/*, browser authorize at
--                  -- /api/oauth2/authorize: one server plays api.box.com, upload.box.com and account.box.com
--
-- Root folder "0" shows the whole enterprise's content, as a token with enterprise_content sees it.
--
-- One file per API surface: common (class, errors, pagination), data (seeded enterprise), truth (test
-- ground truth), render, auth, users, events, content (folders/files/trash/collaborations/uploads), webhooks.
local T = require "sandbox.tenant"
local C = require "sandbox.box.common"
local data = require "sandbox.box.data"
require "sandbox.box.truth"
require "sandbox.box.render"
require "sandbox.box.auth"
require "sandbox.box.users"
require "sandbox.box.events"
local content = require "sandbox.box.content"
local webhooks = require "sandbox.box.webhooks"
local Box = C.Box

local M = { SENSITIVE = data.SENSITIVE, pdf_doc = data.pdf_doc, sha1_hex = data.sha1_hex, btime = C.btime,
            parse_multipart = content.parse_multipart, sign = webhooks.sign }

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Box)
  T.Base.init(self, opts)
  self.enterprise_id = tostring(opts.enterprise_id or (100000 + T.below(T.hash(self.seed, "ent"), 900000)))
  self.enterprise_name = opts.enterprise_name or "Acme Inc."
  self.domain = opts.domain or "acme.example.com"
  self.token = opts.token or ("box_dev_" .. T.b62(32, self.seed, "devtoken"))
  self.client_id = opts.client_id or ("sbx" .. T.b62(29, self.seed, "client_id"):lower())
  self.client_secret = opts.client_secret or T.b62(32, self.seed, "client_secret")
  self.token_ttl = opts.token_ttl or 3600
  self.nusers = opts.users or 30
  -- application scopes the app was not granted (developer console), e.g. { "manage_groups" }: the
  -- routes needing them answer 403 insufficient_scope
  self.missing_scopes = {}
  for _, sc in ipairs(opts.missing_scopes or {}) do self.missing_scopes[sc] = true end
  -- the app was not allowed to "perform actions as users" (developer console, advanced features)
  self.as_user_disabled = opts.as_user == false
  -- Box refuses offsets past 10,000 (GET /groups, memberships, ...); a spec may lower it to exercise that
  self.max_offset = opts.max_offset or 10000
  -- enterprise events are processed in batches of this many; a chunk of GET /events ends with its batch
  self.event_batch = opts.event_batch or 37
  self.ngroups = opts.groups or 4
  self.nfolders = opts.folders or 10
  self.nfiles = opts.files or 40
  self.nevents = opts.events or 300
  self.days = opts.days or 30
  self.keys = { primary = opts.webhook_primary_key or ("prim" .. T.b62(28, self.seed, "whp")),
                secondary = opts.webhook_secondary_key or ("seco" .. T.b62(28, self.seed, "whs")) }
  self.tokens = {}        -- access token -> {uid=, exp=, kind=}
  self.refresh = {}       -- refresh token -> {uid=, exp=}
  self.codes = {}
  self.event_reads, self.listed = {}, {}
  self.nseq = 0
  self:generate()
  return self
end


---------------------------------------------------------------------------------------------------
-- Mount
---------------------------------------------------------------------------------------------------
function Box:mount(srv, prefix)
  local function kind(fn, ty) return function(self, req) return fn(self, req, ty) end end
  local api = {
    { "GET", "/users", Box.h_users },
    { "POST", "/users/terminate_sessions", Box.h_terminate },
    { "GET", "/users/:id", Box.h_user },
    { "PUT", "/users/:id", Box.h_user },
    { "DELETE", "/users/:id", Box.h_user },
    { "GET", "/users/:id/memberships", Box.h_user_memberships },
    { "GET", "/groups", Box.h_groups },
    { "GET", "/groups/:id/memberships", Box.h_group_memberships },
    { "DELETE", "/group_memberships/:id", Box.h_membership_delete },
    { "GET", "/events", Box.h_events },
    { "GET", "/folders/trash/items", Box.h_trash_list },
    { "POST", "/folders", Box.h_post_folder },
    { "GET", "/folders/:id/items", Box.h_folder_items },
    { "GET", "/folders/:id/collaborations", kind(Box.h_item_collabs, "folder") },
    { "GET", "/folders/:id/trash", kind(Box.h_trash_item, "folder") },
    { "DELETE", "/folders/:id/trash", kind(Box.h_trash_item, "folder") },
    { "GET", "/folders/:id", kind(Box.h_get_item, "folder") },
    { "PUT", "/folders/:id", kind(Box.h_put_item, "folder") },
    { "POST", "/folders/:id", kind(Box.h_restore, "folder") },
    { "DELETE", "/folders/:id", kind(Box.h_delete_item, "folder") },
    { "GET", "/files/:id/content", Box.h_download },
    { "GET", "/files/:id/collaborations", kind(Box.h_item_collabs, "file") },
    { "GET", "/files/:id/trash", kind(Box.h_trash_item, "file") },
    { "DELETE", "/files/:id/trash", kind(Box.h_trash_item, "file") },
    { "GET", "/files/:id", kind(Box.h_get_item, "file") },
    { "PUT", "/files/:id", kind(Box.h_put_item, "file") },
    { "POST", "/files/:id", kind(Box.h_restore, "file") },
    { "DELETE", "/files/:id", kind(Box.h_delete_item, "file") },
    { "POST", "/collaborations", Box.h_post_collab },
    { "GET", "/collaborations/:id", Box.h_collab },
    { "PUT", "/collaborations/:id", Box.h_collab },
    { "DELETE", "/collaborations/:id", Box.h_collab },
    { "GET", "/webhooks", Box.h_webhooks },
    { "POST", "/webhooks", Box.h_webhooks },
    { "GET", "/webhooks/:id", Box.h_webhook },
    { "DELETE", "/webhooks/:id", Box.h_webhook },
  }
  prefix = (prefix or ""):gsub("/$", "")
  local routes = {}
  for _, r in ipairs(api) do routes[#routes + 1] = { r[1], "/2.0" .. r[2], r[3] } end
  routes[#routes + 1] = { "POST", "/api/2.0/files/content", Box.h_upload, { upload = true } }
  routes[#routes + 1] = { "POST", "/api/2.0/files/:id/content", Box.h_upload, { upload = true } }
  routes[#routes + 1] = { "POST", "/oauth2/token", Box.h_token, { noauth = true } }
  routes[#routes + 1] = { "POST", "/oauth2/revoke", Box.h_revoke, { noauth = true } }
  routes[#routes + 1] = { "GET", "/api/oauth2/authorize", Box.h_authorize, { public = true } }
  routes[#routes + 1] = { "GET", "/dl/:id/:sig", Box.h_dl, { public = true } }
  routes[#routes + 1] = { "*", "/2.0/*", function(t) return t:err(404, "not_found", "Not Found") end }
  self:mount_routes(srv, prefix, routes)
  self.root_url = self.base_url                       -- mount_routes: server url .. prefix
  self.api_url = self.root_url .. "/2.0"
  self.upload_url = self.root_url .. "/api/2.0"
  return self
end

return M
