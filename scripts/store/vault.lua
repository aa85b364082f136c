-- store/vault.lua — instance credentials and tokens, encrypted at rest.
--
-- AES-256-GCM (crypto.seal: a fresh random 96-bit nonce per secret).  The AAD binds each ciphertext to its
-- (instance id, name): a ciphertext copied to another instance or name does not decrypt.  Every row
-- carries the id of the key that sealed it (a hash of the key, never the key), so a wrong master key is
-- reported as such, and `cachost vault rotate` can re-encrypt everything under a new key.
--
-- The master key: $CACHOST_MASTER_KEY (32 bytes, hex or base64), else $CACHOST_HOME/master.key, created
-- 0600 with O_EXCL on first use; a key file readable by group or others is refused.
--
--   local v = assert(vault.open(st))          -- st from store.open
--   v:put(instance_id, name, plaintext) ; v:get(instance_id, name) -> plaintext | nil, err
--   v:names(instance_id) ; v:delete(instance_id[, name]) ; v:rotate([new_key]) -> n
local M = { MASK = "********" }
local V = {}
V.__index = V

local KEY_FILE = "master.key"

local function key_id(key)
  return crypto.hex(crypto.sha256("cachost master key id\0" .. key)):sub(1, 16)
end
M.key_id = key_id

-- 32 bytes from 64 hex digits or base64.
function M.parse_key(s, where)
  s = (s or ""):gsub("%s+", "")
  if #s == 64 and s:match("^%x+$") then
    return (s:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
  end
  local raw = crypto.unb64(s)
  if raw and #raw == 32 then return raw end
  return nil, ("key: %s is not a 32-byte key (64 hex digits or base64)"):format(where)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- Loads (or creates) the master key file; refuses one that others could read.
local function load_key_file(path, create)
  local st = host.stat(path)
  if not st then
    if not create then return nil, "key: no master key at " .. path end
    local key = crypto.random(32)
    local ok, err = host.write_new(path, crypto.b64(key) .. "\n", 384)   -- 0600, O_EXCL
    if ok then return key, "created" end
    st = host.stat(path)                                                  -- lost a race: use theirs
    if not st then return nil, "key: " .. tostring(err) end
  end
  if st.type ~= "file" then return nil, "key: " .. path .. " is not a regular file" end
  if st.mode & 63 ~= 0 then
    return nil, ("key: %s has mode %03o; it must not be readable by group or others (chmod 600 %s)")
      :format(path, st.mode, path)
  end
  local s, err = read_file(path)
  if not s then return nil, "key: " .. err end
  return M.parse_key(s, path)
end

-- The master key and where it came from ("env" or the key file path).
function M.master_key(home, opts)
  local env = host.getenv("CACHOST_MASTER_KEY")
  if env and env ~= "" then
    local key, err = M.parse_key(env, "CACHOST_MASTER_KEY")
    if not key then return nil, err end
    return key, "env"
  end
  local path = home .. "/" .. KEY_FILE
  local key, err = load_key_file(path, not (opts and opts.nocreate))
  if not key then return nil, err end
  return key, path
end

local function aad(inst, name)
  return ("cachost secret\0%d\0%s"):format(inst, name)
end

-- vault.open(st) -> vault | nil, err.  Finishes an interrupted rotation (master.key.new whose id matches
-- the secrets) and checks the key against the secrets already stored.
function M.open(st, opts)
  local home = st.home
  local ids = st.db:query("SELECT DISTINCT key_id FROM secrets")
  -- never mint a new key while secrets sealed by another one exist (the key file was lost or moved)
  local key, src = M.master_key(home, { nocreate = #ids > 0 or (opts and opts.nocreate) })
  if not key then return nil, src end
  local v = setmetatable({ st = st, key = key, kid = key_id(key), source = src, opened = {} }, V)
  if #ids > 0 and src ~= "env" then
    local pending = home .. "/" .. KEY_FILE .. ".new"
    if host.stat(pending) and ids[1].key_id ~= v.kid then
      local nkey = load_key_file(pending, false)
      if nkey and key_id(nkey) == ids[1].key_id then
        assert(os.rename(pending, home .. "/" .. KEY_FILE))
        v.key, v.kid = nkey, key_id(nkey)
      end
    end
  end
  for _, r in ipairs(ids) do
    if r.key_id ~= v.kid then
      return nil, ("key: wrong master key: stored secrets were sealed with key %s, the %s key is %s")
        :format(r.key_id, src == "env" and "CACHOST_MASTER_KEY" or "master.key", v.kid)
    end
  end
  return v
end

local function check_args(inst, name)
  if math.type(inst) ~= "integer" then error("vault: instance id must be an integer", 3) end
  if type(name) ~= "string" or name == "" then error("vault: secret name must be a string", 3) end
end

function V:put(inst, name, plaintext)
  check_args(inst, name)
  if type(plaintext) ~= "string" then error("vault: secret value must be a string", 2) end
  local sealed = crypto.seal(self.key, plaintext, aad(inst, name))
  local sqlite = require "sqlite"
  local store = require "store"
  local ok, err = self.st.db:exec([[INSERT INTO secrets (instance_id, name, nonce, ciphertext, key_id, updated_at)
      VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id, name) DO UPDATE SET nonce = excluded.nonce,
      ciphertext = excluded.ciphertext, key_id = excluded.key_id, updated_at = excluded.updated_at]],
    inst, name, sqlite.blob(sealed:sub(1, 12)), sqlite.blob(sealed:sub(13)), self.kid, store.now())
  if not ok then return nil, err end
  return true
end

local function open_row(self, r, inst, name)
  if r.key_id ~= self.kid then
    return nil, ("key: secret '%s' was sealed with key %s, not the current key %s"):format(name, r.key_id, self.kid)
  end
  local plain = crypto.open(self.key, r.nonce .. r.ciphertext, aad(inst, name))
  if not plain then
    return nil, ("auth: secret '%s' of instance %d does not decrypt (wrong key, or moved / tampered with)")
      :format(name, inst)
  end
  return plain
end

-- The plaintext, registered with log.redact so it never reaches a log line or a trace.
-- What was opened is kept in memory with the sealed bytes it came from (a fresh nonce each time a secret
-- is written, rotated or not): the row is read every time, and decrypted again only when those bytes or the
-- key changed (another process refreshed a token, a rotation), so a secret changed anywhere is seen at once
-- and a tampered row is refused as before.  (A request reads three secrets: the decryption was most of it.)
function V:get(inst, name)
  check_args(inst, name)
  local r = self.st.db:query("SELECT * FROM secrets WHERE instance_id = ? AND name = ?", inst, name)[1]
  if not r then return nil, ("missing: instance %d has no secret '%s'"):format(inst, name) end
  local sealed = r.nonce .. r.ciphertext
  local mine = self.opened[inst]
  local was = mine and mine[name]
  if was and was.sealed == sealed and was.kid == r.key_id and r.key_id == self.kid then return was.plain end
  local plain, err = open_row(self, r, inst, name)
  if not plain then return nil, err end
  if log and log.redact and #plain > 0 then log.redact(plain) end
  if not mine then mine = {}; self.opened[inst] = mine end
  mine[name] = { sealed = sealed, kid = r.key_id, plain = plain }
  return plain
end

function V:names(inst)
  local out = {}
  for r in self.st.db:rows("SELECT name FROM secrets WHERE instance_id = ? ORDER BY name", inst) do
    out[#out + 1] = r.name
  end
  return out
end

function V:delete(inst, name)
  if self.opened[inst] then
    if name then self.opened[inst][name] = nil else self.opened[inst] = nil end
  end
  if name then return self.st.db:exec("DELETE FROM secrets WHERE instance_id = ? AND name = ?", inst, name) end
  return self.st.db:exec("DELETE FROM secrets WHERE instance_id = ?", inst)
end

-- Re-encrypts every secret under new_key (default: a fresh random key) in one transaction.  With a key
-- file, the new key is written to master.key.new first and renamed over master.key after the commit
-- (vault.open finishes the rename if we die in between).  With CACHOST_MASTER_KEY, the caller passes
-- the new key (CACHOST_NEW_MASTER_KEY) and must switch the variable afterwards.
function V:rotate(new_key)
  if self.source == "env" and not new_key then
    return nil, "key: the master key comes from CACHOST_MASTER_KEY: set CACHOST_NEW_MASTER_KEY to the new key"
  end
  new_key = new_key or crypto.random(32)
  local new_kid = key_id(new_key)
  local st = self.st
  local pending
  if self.source ~= "env" then
    pending = st.home .. "/" .. KEY_FILE .. ".new"
    os.remove(pending)
    local ok, err = host.write_new(pending, crypto.b64(new_key) .. "\n", 384)
    if not ok then return nil, "key: " .. tostring(err) end
  end
  local sqlite = require "sqlite"
  local n, err = st:transaction(function()
    local rows = st.db:query("SELECT * FROM secrets")
    for _, r in ipairs(rows) do
      local plain = assert(open_row(self, r, r.instance_id, r.name))   -- all or nothing
      local sealed = crypto.seal(new_key, plain, aad(r.instance_id, r.name))
      assert(st.db:exec("UPDATE secrets SET nonce = ?, ciphertext = ?, key_id = ? WHERE instance_id = ? AND name = ?",
        sqlite.blob(sealed:sub(1, 12)), sqlite.blob(sealed:sub(13)), new_kid, r.instance_id, r.name))
    end
    return #rows
  end)
  if not n then
    if pending then os.remove(pending) end
    return nil, err
  end
  if pending then
    local ok, rerr = os.rename(pending, st.home .. "/" .. KEY_FILE)
    if not ok then return nil, "key: " .. tostring(rerr) end
  end
  self.key, self.kid = new_key, new_kid
  return n
end

return M
