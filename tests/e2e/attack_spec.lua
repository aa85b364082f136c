-- attack_spec.lua — the binary under attack through its own front doors: writes smuggled through
-- `cachost query` (its connection is read-only, by flag and by authorizer) and a tampered vault (every
-- secret is AES-256-GCM sealed and bound to its instance and name).  Each attempt must be refused with one
-- line, no traceback, no secret in the output, and the database unchanged.
local helpers = require "helpers"
local procs = require "procs"
local slurp = procs.slurp
local bin = procs.BIN

local SECRET = "ssws-" .. crypto.hex(crypto.random(12))


local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local home
-- run(args[, env]) -> rc, stdout, stderr
local function run(args, env)
  local e = "CACHOST_HOME=" .. q(home) .. " "
  for k, v in pairs(env or {}) do e = e .. k .. "=" .. q(v) .. " " end
  local out, err = home .. "/.out", home .. "/.err"
  local _, _, rc = os.execute(("env -u CACHOST_MASTER_KEY %s %s %s </dev/null >%s 2>%s"):format(e, bin, args, out, err))
  return rc, slurp(out), slurp(err)
end

-- SQL through the sqlite3 shell, as an attacker with the file would.
local function sqlite3(sql)
  local p = assert(io.popen("sqlite3 " .. q(home .. "/cachost.db") .. " " .. q(sql) .. " 2>&1"))
  local out = p:read("a"); p:close()
  return (out:gsub("%s+$", ""))
end

-- A one-line refusal: exit 1, nothing on stdout, one line on stderr, no traceback, no secret.
local function refused(rc, out, err, what)
  assert.equal(1, rc, what .. ": exit " .. tostring(rc) .. "\n" .. out .. err)
  assert.equal("", out, what)
  local lines = select(2, err:gsub("\n", ""))
  assert.equal(1, lines, what .. ": " .. err)
  assert.is_nil(err:find("traceback", 1, true), what)
  assert.is_nil((out .. err):find(SECRET, 1, true), what)
end

local function snapshot()
  local t = {}
  for _, tbl in ipairs { "instances", "secrets", "users", "alerts", "governance_actions", "stream_state" } do
    t[tbl] = sqlite3("SELECT count(*) FROM " .. tbl)
  end
  t.schema = sqlite3("SELECT group_concat(sql, ';') FROM sqlite_master")
  t.version = sqlite3("PRAGMA user_version")
  t.journal = sqlite3("PRAGMA journal_mode")
  return t
end

describe("attacks", function()
  before_each(function()
    home = helpers.tmp_dir()
    local rc, _, err = run("instance add okta --name prod --set domain=acme.okta.com --set api_token=" .. SECRET)
    assert.equal(0, rc, err)
  end)
  after_each(function() os.execute("rm -rf " .. q(home)) end)

  it("cachost query refuses every write, file access and state change, and the store stays as it was", function()
    local probe = home .. "/probe"
    local attempts = {
      "INSERT INTO instances (app, name, created_at, updated_at) VALUES ('okta', 'x', 0, 0)",
      "UPDATE instances SET enabled = 0",
      "DELETE FROM secrets",
      "DROP TABLE users",
      "CREATE TABLE evil (a)",
      "CREATE TEMP TABLE evil (a)",
      "CREATE TEMP TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END",
      "CREATE INDEX evil ON users (email)",
      "ALTER TABLE users ADD COLUMN evil",
      "REPLACE INTO instances (id, app, name, created_at, updated_at) VALUES (1, 'okta', 'x', 0, 0)",
      "WITH x AS (SELECT 1) DELETE FROM instances",
      "INSERT INTO alerts DEFAULT VALUES RETURNING id",
      "ATTACH DATABASE '" .. probe .. "' AS evil",
      "VACUUM INTO '" .. probe .. "'",
      "VACUUM",
      "REINDEX",
      "ANALYZE",
      "PRAGMA writable_schema = 1",
      "PRAGMA query_only = 0",
      "PRAGMA journal_mode = DELETE",
      "PRAGMA user_version = 99",
      "PRAGMA integrity_check",
      "BEGIN IMMEDIATE",
      "SELECT load_extension('" .. probe .. "')",
      "SELECT fts3_tokenizer('simple')",
      "SELECT fts3_tokenizer('evil', x'4141414141414141')",
      "SELECT writefile('" .. probe .. "', 'x')",
      "SELECT readfile('/etc/passwd')",
      "SELECT * FROM secrets",
      "SELECT ciphertext FROM secrets",
      "SELECT * FROM main.secrets",
      "SELECT * FROM (SELECT nonce FROM secrets)",
    }
    local before = snapshot()
    local held = 0
    for _, sql in ipairs(attempts) do
      local rc, out, err = run("query " .. q(sql))
      refused(rc, out, err, sql)
      held = held + 1
    end
    -- a second statement after a harmless one is never run
    local rc, out = run("query " .. q("SELECT 1 AS one; DELETE FROM instances"))
    assert.is_true(rc ~= 0 or out:find("1", 1, true) ~= nil)
    assert.same(before, snapshot())
    assert.equal("ok", sqlite3("PRAGMA integrity_check"))
    assert.is_nil(host.stat(probe), "a file was created through query")
    -- what users need still works
    rc, out = run("query " .. q("SELECT name FROM instances") .. " -f csv")
    assert.equal(0, rc); assert.matches("prod", out)
    rc, out = run("query " .. q("PRAGMA table_info(users)") .. " -f csv")
    assert.equal(0, rc); assert.matches("email", out)
    helpers.figure("attacks: query, %d write / file / state attempts, %d refused, store unchanged", #attempts, held)
  end)

  it("a tampered vault is refused with one line, never decrypted, never printed", function()
    local original = sqlite3("SELECT hex(nonce) || ':' || hex(ciphertext) || ':' || key_id || ':' || instance_id FROM secrets")
    local function restore()
      local n, c, k, id = original:match("^(%x+):(%x+):(%x+):(%d+)$")
      sqlite3(("UPDATE secrets SET nonce = x'%s', ciphertext = x'%s', key_id = '%s' WHERE instance_id = %s"):format(n, c, k, id))
    end
    local key = slurp(home .. "/master.key")
    local function flip(col)
      local hex = sqlite3("SELECT hex(" .. col .. ") FROM secrets WHERE instance_id = 1")
      local b = tonumber(hex:sub(1, 2), 16) ~ 1
      sqlite3(("UPDATE secrets SET %s = x'%02X%s' WHERE instance_id = 1"):format(col, b, hex:sub(3)))
    end
    local tampers = {
      { "a bit flipped in the ciphertext", function() flip("ciphertext") end },
      { "a bit flipped in the nonce", function() flip("nonce") end },
      { "the tag cut off", function() sqlite3("UPDATE secrets SET ciphertext = substr(ciphertext, 1, length(ciphertext) - 16) WHERE instance_id = 1") end },
      { "an empty ciphertext", function() sqlite3("UPDATE secrets SET ciphertext = x'' WHERE instance_id = 1") end },
      { "the ciphertext of another instance's secret", function()
          assert.equal(0, (run("instance add okta --name other --set domain=b.okta.com --set api_token=x" .. SECRET:reverse())))
          sqlite3([[UPDATE secrets SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM secrets s
                    JOIN instances i ON i.id = s.instance_id WHERE i.name = 'other')
                    WHERE instance_id = (SELECT id FROM instances WHERE name = 'prod')]])
        end },
      { "another key id", function() sqlite3("UPDATE secrets SET key_id = '0000000000000000' WHERE instance_id = 1") end },
      { "a wrong master key in the key file", function()
          local f = assert(io.open(home .. "/master.key", "wb")); f:write(crypto.b64(crypto.random(32)), "\n"); f:close()
        end },
      { "a master key file readable by others", function() os.execute("chmod 644 " .. q(home .. "/master.key")) end },
      { "the master key file removed", function() os.remove(home .. "/master.key") end },
    }
    local held = 0
    for _, t in ipairs(tampers) do
      t[2]()
      for _, cmd in ipairs { "instance test prod", "sync prod" } do
        local rc, out, err = run(cmd)
        assert.equal(1, rc, t[1] .. ": " .. cmd .. " exit " .. tostring(rc) .. "\n" .. out .. err)
        assert.is_nil(err:find("traceback", 1, true), t[1])
        assert.is_nil((out .. err):find(SECRET, 1, true), t[1])
        assert.matches("key", err, t[1] .. ": " .. cmd .. ": " .. err)
      end
      held = held + 1
      restore()
      local f = assert(io.open(home .. "/master.key", "wb")); f:write(key); f:close()
      os.execute("chmod 600 " .. q(home .. "/master.key"))
    end
    -- untampered, the secret opens again (the restore is exact)
    local rc, out, err = run("instance show prod")
    assert.equal(0, rc, err)
    assert.is_nil((out .. err):find(SECRET, 1, true))
    helpers.figure("attacks: vault, %d tamperings, %d refused, none decrypted", #tampers, held)
  end)
end)
