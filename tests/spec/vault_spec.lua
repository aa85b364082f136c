-- vault_spec.lua — secrets encrypted at rest: nothing in plaintext in the database bytes, bound to their
-- instance, the master key file's creation and permissions, wrong keys, and rotation.
local store = require "store"
local vault = require "store.vault"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(host.mkdir(p, 448))
  return p
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function instance(st, name)
  local now = store.now()
  assert(st.db:exec("INSERT INTO instances (app, name, created_at, updated_at) VALUES ('test', ?, ?, ?)", name, now, now))
  return st.db:last_insert_rowid()
end

describe("vault", function()
  local dir, st, saved_env
  local SECRET = "s3cr3t-TOKEN-" .. crypto.hex(crypto.random(8))

  before_each(function()
    dir = tmpdir()
    st = assert(store.open(dir))
  end)
  after_each(function()
    st:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("stores no plaintext anywhere in the database file", function()
    local v = assert(vault.open(st))
    local id = instance(st, "a")
    assert(v:put(id, "api_token", SECRET))
    assert(v:put(id, "client_secret", SECRET .. "-2"))
    assert.equal(SECRET, v:get(id, "api_token"))
    local bytes = slurp(dir .. "/cachost.db") .. slurp(dir .. "/cachost.db-wal")
    assert.truthy(#bytes > 0)
    assert.is_nil(bytes:find(SECRET, 1, true))
    st:close()                          -- checkpoint the WAL into the main file, then look again
    assert.is_nil(slurp(dir .. "/cachost.db"):find(SECRET, 1, true))
    st = assert(store.open(dir))
    v = assert(vault.open(st))
    assert.equal(SECRET .. "-2", v:get(id, "client_secret"))
    assert.same({ "api_token", "client_secret" }, v:names(id))
  end)

  it("uses a fresh nonce for every secret", function()
    local v = assert(vault.open(st))
    local id = instance(st, "a")
    assert(v:put(id, "a", SECRET)); assert(v:put(id, "b", SECRET))
    local r = st.db:query("SELECT nonce, ciphertext FROM secrets ORDER BY name")
    assert.equal(12, #r[1].nonce)
    assert.are_not.equal(r[1].nonce, r[2].nonce)
    assert.are_not.equal(r[1].ciphertext, r[2].ciphertext)
  end)

  it("binds a secret to its instance: a copied ciphertext does not decrypt", function()
    local v = assert(vault.open(st))
    local a, b = instance(st, "a"), instance(st, "b")
    assert(v:put(a, "api_token", SECRET))
    assert(st.db:exec([[INSERT INTO secrets (instance_id, name, nonce, ciphertext, key_id, updated_at)
      SELECT ?, name, nonce, ciphertext, key_id, updated_at FROM secrets WHERE instance_id = ?]], b, a))
    local p, err = v:get(b, "api_token")
    assert.is_nil(p)
    assert.matches("^auth: ", err)
    assert.is_nil(err:find(SECRET, 1, true))
    p, err = v:get(b, "other")
    assert.is_nil(p); assert.matches("^missing:", err)
  end)

  it("decrypts a secret again only when its row changed: another process's write is seen, a tampered row refused", function()
    local v = assert(vault.open(st))
    local id = instance(st, "a")
    assert(v:put(id, "access_token", SECRET))
    local opens, open = 0, crypto.open
    crypto.open = function(...) opens = opens + 1; return open(...) end
    finally(function() crypto.open = open end)
    for _ = 1, 3 do assert.equal(SECRET, v:get(id, "access_token")) end
    assert.equal(1, opens)
    -- another process (its own connection and vault) refreshes the token
    local other = assert(store.open(dir))
    assert(assert(vault.open(other)):put(id, "access_token", SECRET .. "-new"))
    other:close()
    assert.equal(SECRET .. "-new", v:get(id, "access_token"))
    assert.equal(2, opens)
    -- a flipped ciphertext byte under the same nonce does not open, whatever was read before
    assert(st.db:exec("UPDATE secrets SET ciphertext = ? WHERE instance_id = ?", require("sqlite").blob(("x"):rep(40)), id))
    local p, err = v:get(id, "access_token")
    assert.is_nil(p)
    assert.matches("^auth: ", err)
    assert(v:delete(id, "access_token"))
    p, err = v:get(id, "access_token")
    assert.is_nil(p); assert.matches("^missing:", err)
  end)

  it("creates master.key 0600 on first use and refuses one others can read", function()
    assert(vault.open(st))
    local s = assert(host.stat(dir .. "/master.key"))
    assert.equal(384, s.mode)
    local key = slurp(dir .. "/master.key")
    assert(vault.open(st))
    assert.equal(key, slurp(dir .. "/master.key"))      -- reused, not recreated
    os.execute("chmod 644 '" .. dir .. "/master.key'")
    local v, err = vault.open(st)
    assert.is_nil(v)
    assert.matches("must not be readable by group or others", err)
  end)

  it("reports a wrong master key clearly and overwrites nothing", function()
    local v = assert(vault.open(st))
    local id = instance(st, "a")
    assert(v:put(id, "api_token", SECRET))
    local before = st.db:query("SELECT * FROM secrets")
    local keyfile = slurp(dir .. "/master.key")
    -- another key file
    os.remove(dir .. "/master.key")
    assert(host.write_new(dir .. "/master.key", crypto.b64(crypto.random(32)) .. "\n", 384))
    local v2, err = vault.open(st)
    assert.is_nil(v2)
    assert.matches("wrong master key", err)
    -- the key file gone: no new key is minted over existing secrets
    os.remove(dir .. "/master.key")
    v2, err = vault.open(st)
    assert.is_nil(v2)
    assert.matches("no master key", err)
    assert.is_nil(host.stat(dir .. "/master.key"))
    assert.same(before, st.db:query("SELECT * FROM secrets"))
    assert(host.write_new(dir .. "/master.key", keyfile, 384))
    assert.equal(SECRET, assert(vault.open(st)):get(id, "api_token"))
  end)

  it("rotates every secret to a new key file", function()
    local v = assert(vault.open(st))
    local a, b = instance(st, "a"), instance(st, "b")
    assert(v:put(a, "t", SECRET)); assert(v:put(b, "t", SECRET .. "b"))
    local old_kid = v.kid
    local old_key = slurp(dir .. "/master.key")
    assert.equal(2, assert(v:rotate()))
    assert.are_not.equal(old_kid, v.kid)
    assert.are_not.equal(old_key, slurp(dir .. "/master.key"))
    assert.equal(384, host.stat(dir .. "/master.key").mode)
    assert.is_nil(host.stat(dir .. "/master.key.new"))
    local v2 = assert(vault.open(st))
    assert.equal(SECRET, v2:get(a, "t"))
    assert.equal(SECRET .. "b", v2:get(b, "t"))
    assert.equal(1, #st.db:query("SELECT DISTINCT key_id FROM secrets"))
  end)

  it("finishes a rotation interrupted between the commit and the key file rename", function()
    local v = assert(vault.open(st))
    local a = instance(st, "a")
    assert(v:put(a, "t", SECRET))
    local real_rename = os.rename
    os.rename = function() return nil, "simulated crash" end
    local ok = v:rotate()
    os.rename = real_rename
    assert.is_nil(ok)
    assert.truthy(host.stat(dir .. "/master.key.new"))
    local v2 = assert(vault.open(st))
    assert.equal(SECRET, v2:get(a, "t"))
    assert.is_nil(host.stat(dir .. "/master.key.new"))
  end)

  it("takes the master key from CACHOST_MASTER_KEY (hex or base64)", function()
    local key = crypto.random(32)
    assert.equal(key, vault.parse_key(crypto.hex(key)))
    assert.equal(key, vault.parse_key(crypto.b64(key) .. "\n"))
    local k, err = vault.parse_key("too short", "X")
    assert.is_nil(k); assert.matches("not a 32%-byte key", err)
  end)
end)
