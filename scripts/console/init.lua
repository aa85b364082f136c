-- console — the web console `cachost run` serves (loopback by default): the files of console/www and the
-- JSON API behind them, the same one a script may use (docs in console/API.md).
--
-- Under TLS (cachost run --console-cert/--console-key) cookies are Secure and answers carry HSTS.
-- Every answer carries a strict Content-Security-Policy (scripts and styles from this server only, no
-- inline code, no frames).  Every API call but sign-in needs a session cookie; every change (POST)
-- also needs the session's CSRF token in X-CSRF-Token, and an Origin, when the browser sends one, of this
-- server.  Viewers read; admins act.
local auth = require "console.auth"
local api = require "console.api"

local M = {}

local WWW = host.root .. "/scripts/console/www"
local TYPES = { html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8", css = "text/css; charset=utf-8",
                svg = "image/svg+xml", png = "image/png", json = "application/json" }
local CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
  .. " font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

local function headers(h, kind, secure)
  h = h or {}
  if secure then h["Strict-Transport-Security"] = "max-age=31536000" end
  h["Content-Security-Policy"] = CSP
  h["X-Content-Type-Options"] = "nosniff"
  h["X-Frame-Options"] = "DENY"
  h["Referrer-Policy"] = "no-referrer"
  h["Cache-Control"] = "no-store"
  if kind then h["Content-Type"] = kind end
  return h
end

-- A file of www/ (names of letters, digits, '-', '_' and one dot; one level of folder) -> status, body, headers
local function static(path, secure)
  if path == "/" then path = "/index.html" end
  local rel = path:match("^/([%w_%-]+%.%w+)$") or path:match("^/([%w_%-]+/[%w_%-%.]+%.%w+)$")
  if not rel or rel:find("..", 1, true) then return 404, "not found\n", headers(nil, "text/plain", secure) end
  local f = io.open(WWW .. "/" .. rel, "rb")
  if not f then return 404, "not found\n", headers(nil, "text/plain", secure) end
  local body = f:read("a")
  f:close()
  return 200, body, headers(nil, TYPES[rel:match("%.(%w+)$")] or "application/octet-stream", secure)
end

local function reply(status, v, h, secure)
  return status, json.encode(v), headers(h, "application/json", secure)
end

-- console.mount(srv, {secure = true under TLS}) -> srv
function M.mount(srv, opts)
  opts = opts or {}
  local st = require("runtime").store()
  local secure = opts.secure
  local function answer(status, v, h) return reply(status, v, h, secure) end
  -- the API: each route with who may call it (nil: anyone, "viewer": any session, "admin")
  for _, r in ipairs(api.routes) do
    local method, pattern, role, fn = r[1], r[2], r[3], r[4]
    srv:route(method, pattern, function(req)
      local session
      if role then
        session = auth.session(st, req)
        if not session then return answer(401, { error = "sign in first" }) end
        if method ~= "GET" then
          local origin = req.headers.origin
          if origin and origin ~= (opts.secure and "https://" or "http://") .. tostring(req.headers.host) then
            return answer(403, { error = "cross-origin request refused" })
          end
          if not crypto.equal(tostring(req.headers["x-csrf-token"] or ""), session.csrf) then
            return answer(403, { error = "missing or wrong CSRF token (X-CSRF-Token)" })
          end
        end
        if role == "admin" and session.role ~= "admin" then
          return answer(403, { error = "an admin's action: your account may only look" })
        end
      end
      local body
      if method ~= "GET" then
        body = req.body ~= "" and json.decode(req.body) or {}
        if type(body) ~= "table" then return answer(400, { error = "the body must be a JSON object" }) end
      end
      local status, v, h = fn({ st = st, req = req, session = session, body = body, params = req.params,
                                query = req.query, secure = opts.secure })
      return answer(status, v, h)
    end)
  end
  srv:route("*", "/api/*", function() return answer(404, { error = "no such API call (see console/API.md)" }) end)
  srv:route("GET", "/*", function(req) return static(req.path:match("^[^?]*"), secure) end)
  return srv
end

return M
