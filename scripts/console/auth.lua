-- console/auth.lua — the console's accounts and sessions.
--
-- Passwords are stored as scrypt hashes (OpenSSL's, RFC 7914) with their parameters, so they can be raised
-- later: N = 2^15, r = 8, p = 1 takes 32 MiB and tens of milliseconds a sign-in (the event loop waits that
-- long: sign-ins are throttled, below).  A session is a random 256-bit id in an HttpOnly, SameSite=Strict
-- cookie (Secure under TLS); the store keeps only its SHA-256, and the CSRF token every change must carry.
local M = {}

M.COOKIE = "cachost_session"
M.TTL = 8 * 3600                      -- a session's life, seconds
M.ROLES = { viewer = true, admin = true }
local N, R, P, LEN = 32768, 8, 1, 32
M.MIN_PASSWORD = 12

local b64, unb64 = crypto.b64, crypto.unb64

-- -> "scrypt$N$r$p$salt$key"
function M.hash(password)
  local salt = crypto.random(16)
  local key = assert(crypto.scrypt(password, salt, N, R, P, LEN))
  return ("scrypt$%d$%d$%d$%s$%s"):format(N, R, P, b64(salt), b64(key))
end

-- Does the password match the stored hash?  Constant time in the key; a malformed hash never matches.
function M.verify(password, stored)
  local n, r, p, salt, key = tostring(stored):match("^scrypt%$(%d+)%$(%d+)%$(%d+)%$([%w+/=]+)%$([%w+/=]+)$")
  salt, key = salt and unb64(salt), key and unb64(key)
  if not (salt and key) then return false end
  local ok, got = pcall(crypto.scrypt, password, salt, tonumber(n), tonumber(r), tonumber(p), #key)
  return ok and got ~= nil and crypto.equal(got, key)
end

-- A password an account may have -> true | nil, why
function M.acceptable(password)
  if type(password) ~= "string" or #password < M.MIN_PASSWORD then
    return nil, ("a password of at least %d characters"):format(M.MIN_PASSWORD)
  end
  if #password > 1024 then return nil, "a password of at most 1,024 characters" end
  return true
end

-- Sign-in attempts: at most FAILS failures per account and per client address in WINDOW seconds, then
-- every attempt is refused (429) until the window has passed.  In memory: a restart forgets, which only
-- gives an attacker one more window.
local FAILS, WINDOW = 10, 300
local failures = {}       -- key -> {n =, since =}
local function blocked(key)
  local f = failures[key]
  if f and sched.time() - f.since > WINDOW then failures[key] = nil; f = nil end
  return f and f.n >= FAILS
end
local function failed(key)
  local f = failures[key]
  if not f then f = { n = 0, since = sched.time() }; failures[key] = f end
  f.n = f.n + 1
end

-- M.sign_in(st, name, password, remote) -> session {id =, user =, role =, csrf =} | nil, status, why
function M.sign_in(st, name, password, remote)
  local ip = tostring(remote or ""):match("^(.*):%d+$") or tostring(remote)
  local keys = { "user:" .. tostring(name), "ip:" .. ip }
  for _, k in ipairs(keys) do
    if blocked(k) then return nil, 429, "too many failed sign-ins: wait a few minutes" end
  end
  local u = type(name) == "string" and type(password) == "string" and st:console_user(name)
  -- an unknown name costs the same scrypt as a wrong password: no telling names apart by the time
  local ok = M.verify(type(password) == "string" and password or "", u and u.hash or M.DUMMY)
  if not (u and ok) then
    for _, k in ipairs(keys) do failed(k) end
    log.warn("console sign-in refused", { user = tostring(name):sub(1, 64), remote = ip })
    return nil, 401, "wrong name or password"
  end
  for _, k in ipairs(keys) do failures[k] = nil end
  local id, csrf = crypto.b64url(crypto.random(32)), crypto.b64url(crypto.random(32))
  st:session_start(crypto.hex(crypto.sha256(id)), u.name, csrf, require("store").iso(sched.time() + M.TTL))
  log.info("console sign-in", { user = u.name, remote = ip })
  return { id = id, user = u.name, role = u.role, csrf = csrf }
end
M.DUMMY = M.hash("not a password of anybody")

-- The session a request's cookie names -> {user =, role =, csrf =, id_hash =} | nil
function M.session(st, req)
  local cookie = req.headers.cookie or ""
  local id = (";" .. cookie):match(";%s*" .. M.COOKIE .. "=([%w_%-]+)")
  if not id or #id > 64 then return nil end
  local id_hash = crypto.hex(crypto.sha256(id))
  local s = st:session(id_hash)
  if s then s.id_hash = id_hash end
  return s
end

-- The Set-Cookie header of a session id (nil id: the cookie cleared).
function M.cookie(id, secure)
  return ("%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s"):format(M.COOKIE, id or "", id and M.TTL or 0,
    secure and "; Secure" or "")
end

return M
