-- sandbox/github — a GitHub organization emulator (REST API + OAuth web flow), following
-- /work/shared/api/github.md: Bearer/token auth, per_page/page Link pagination, audit-log cursors
-- (after/before, phrase, order), x-ratelimit-* headers, primary and secondary limits, org webhooks
-- signed with X-Hub-Signature-256, and governance calls that change state and write the audit log.
-- One file per API surface; core.lua holds what they share.
--
--   local github = require "sandbox.github"
--   local t = github.new{seed=1, org="acme", members=40, teams=5, outside_collaborators=6, audit_events=500}
--   t:mount(srv[, prefix])
local T = require "sandbox.tenant"
local GH = require "sandbox.github.core"
local SURFACES = { "auth", "orgs", "roles", "audit", "installations", "webhooks" }
local mounts = {}
for i, name in ipairs(SURFACES) do mounts[i] = require("sandbox.github." .. name) end

local M = {}

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, GH)
  T.Base.init(self, opts)
  self.org_login = opts.org or "acme"
  self.token = opts.token or "ghp_sandboxtoken0000000000000000000000"
  -- the classic token's scopes (X-OAuth-Scopes); GET /orgs/{org}/installations needs admin:read
  self.token_scopes = opts.token_scopes or "admin:org, admin:read, read:audit_log, repo"
  -- the org's plan (plan.name of GET /orgs/{org}): "enterprise" (GitHub Enterprise Cloud), "team" or
  -- "free".  The audit log and SAML credential authorizations exist on Enterprise Cloud only.
  self.plan = opts.plan or "enterprise"
  self.nmembers = opts.members or 40
  self.nteams = opts.teams or 5
  self.noutside = opts.outside_collaborators or 6
  self.naudit = opts.audit_events or 500
  self.days = opts.days or 30
  self.git_share = opts.audit_git_share or 0.2      -- of the generated audit events, Git events
  -- OAuth apps for the web flow: {client_id=, client_secret=, name=}
  self.oauth_apps = {}
  for _, a in ipairs(opts.oauth_apps or (opts.oauth_app and { opts.oauth_app }) or {}) do self.oauth_apps[a.client_id] = a end
  -- GitHub App (installation tokens via RS256 JWT): {app_id=, client_id=, public_key=PEM}
  self.app = opts.app
  self.tokens = {}            -- issued tokens -> {login=, scopes=, client_id=, kind=, exp=}
  self.codes = {}
  self.sent_versions, self.sent_accept = {}, {}    -- what clients sent (GH:note_request)
  self.token_kinds = {}                             -- requests by kind of token: pat, oauth, installation
  self.seq = 0
  self:generate()
  return self
end

function GH:mount(srv, prefix)
  self.web_url = self.opts.web_url or nil
  local routes = {}
  local function route(method, path, fn, o) routes[#routes + 1] = { method, path, fn, o } end
  local function org(method, rest, fn, o)
    route(method, "/orgs/:org" .. rest, fn, o)
    route(method, "/organizations/:org" .. rest, fn, o)
  end
  for _, add in ipairs(mounts) do add(org, route) end
  route("GET", "/rate_limit", GH.h_rate_limit)
  route("GET", "/versions", GH.h_versions)
  route("*", "/*", function(t) return t:not_found() end)
  self:mount_routes(srv, prefix, routes)
  self.web_url = self.web_url or self.base_url
  return self
end

return M
