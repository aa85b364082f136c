-- sandbox/google — Google's emulators.  Workspace (a customer's Admin SDK Directory and Reports, Drive
-- v3, the OAuth token endpoint for service accounts with domain-wide delegation), following
-- /work/shared/api/google-workspace.md and Google's discovery documents.
--
--   local google = require "sandbox.google"
--   local t = google.workspace{seed=1, users=30, groups=4, files=40, events=140, days=10}
--   t:mount(srv)   -- one server plays oauth2.googleapis.com (/token), admin.googleapis.com and
--                  -- www.googleapis.com (/drive/v3)
--   t:key_file(t.sa)  -- the service account's JSON key file, its token_uri this server's /token
--
-- One file per API surface: common (class, errors, paging, fields=, token endpoint, shared with a Cloud
-- emulator), workspace (the seeded customer, delegation, ground truth), directory, reports, drive;
-- gcp (a Cloud organization: Resource Manager, IAM, Cloud Logging; its own mount).
local C = require "sandbox.google.common"
local WS = require "sandbox.google.workspace"

local ROUTES = { { "POST", "/token", C.G.h_token, { noauth = true, bucket = "token" } },
                 { "GET", "/o/oauth2/v2/auth", C.G.h_authorize, { public = true } } }    -- accounts.google.com
for _, name in ipairs { "directory", "reports", "drive" } do
  for _, r in ipairs(require("sandbox.google." .. name)) do ROUTES[#ROUTES + 1] = r end
end
for _, p in ipairs { "/admin/*", "/drive/*" } do
  ROUTES[#ROUTES + 1] = { "*", p, function(t, req) return t:err(404, "notFound", "Not Found: " .. req.path) end, {} }
end

function WS.W:mount(srv, prefix)
  self:mount_routes(srv, prefix, ROUTES)
  return self
end

local GCP = require "sandbox.google.gcp"

return { gcp = GCP.new, workspace = WS.new, new = WS.new, SENSITIVE = WS.SENSITIVE, LAG = WS.LAG, APPS = WS.APPS }
