-- aws_cli_spec.lua — `cachost sandbox aws` to a connected account, as a newcomer would: the printed
-- `instance add` line works (--test), a wrong external id is refused before anything is added, a sync reads
-- every stream, and the governance path makes the public key file private and deactivates the leaked key.
local helpers = require "helpers"
local procs = require "procs"

describe("cachost sandbox aws", function()
  local home, sandbox
  before_each(function() home = helpers.tmp_dir(); sandbox = procs.home(home) end)
  after_each(function()
    sandbox:stop()
    os.execute("rm -rf '" .. home .. "'")
  end)

  local function run(args) return sandbox:run(args) end

  it("connects through the printed line, syncs, and acts on the account", function()
    local line = sandbox:connect_line("aws --size 6", "CACHOST_SET_ACCESS_KEY_ID")
    -- a wrong external id: the role is not assumed, nothing is added
    local wrong = line:gsub("external_id=%S+", "external_id=guess"):gsub("%-%-name %S+", "--name tried")
    local text, code = procs.sh(("CACHOST_HOME='%s' %s --test </dev/null"):format(home, wrong))
    assert.equal(1, code, text)
    assert.matches("AssumeRole refused", text)
    text, code = procs.sh(("CACHOST_HOME='%s' %s --test </dev/null"):format(home, line))
    assert.equal(0, code, text)
    assert.matches("credentials work", text)
    text, code = run("sync sandbox-aws --no-policies")
    assert.equal(0, code, text)
    assert.is_nil(text:find(" error ", 1, true), text)
    local csv = run("query \"SELECT access_level FROM files WHERE ext_id = 'acme-data/backup/credentials.csv'\" -f csv")
    assert.matches("public", csv)
    text, code = run("act sandbox-aws make_private acme-data/backup/credentials.csv")
    assert.equal(0, code, text)
    csv = run("query \"SELECT access_level FROM files WHERE ext_id = 'acme-data/backup/credentials.csv'\" -f csv")
    assert.matches("private", csv)
    local keys = run("query \"SELECT ext_id FROM app_grants WHERE user_id = 'ops-automation' AND deleted_at IS NULL\" -f csv")
    local key = keys:match("\n(AKIA%w+)")
    assert(key, keys)
    text, code = run("act sandbox-aws revoke_token " .. key)
    assert.equal(0, code, text)
    text, code = run("sync sandbox-aws --no-policies --stream app_grants")
    assert.equal(0, code, text)
    keys = run(("query \"SELECT count(*) AS n FROM app_grants WHERE ext_id = '%s' AND deleted_at IS NULL\" -f csv"):format(key))
    assert.matches("\n0", keys)
  end)

  it("adds an instance for each member account of the organization, each scanning its own account", function()
    local line = sandbox:connect_line("aws --size 6", "CACHOST_SET_ACCESS_KEY_ID")
    local text, code = procs.sh(("CACHOST_HOME='%s' %s </dev/null"):format(home, line))
    assert.equal(0, code, text)
    text, code = run("instance members sandbox-aws")
    assert.equal(0, code, text)
    local ids = {}
    for id, name in text:gmatch("(%d%d%d%d%d%d%d%d%d%d%d%d)\t(acme%-member%-%d)") do ids[#ids + 1] = id end
    assert.equal(2, #ids, text)
    text, code = run("instance members sandbox-aws --add")
    assert.equal(0, code, text)
    assert.matches("added instance sandbox%-aws%-" .. ids[1] .. " %(aws%): acme%-member%-1", text)
    text, code = run("instance members sandbox-aws --add")            -- again: nothing twice
    assert.equal(0, code, text)
    assert.matches("sandbox%-aws%-" .. ids[2] .. " exists", text)
    text, code = run("instance test sandbox-aws-" .. ids[1])
    assert.equal(0, code, text)
    assert.matches("AWS account " .. ids[1] .. " as arn:aws:sts::" .. ids[1] .. ":assumed%-role/OrganizationAccountAccessRole/", text)
    text, code = run("sync sandbox-aws-" .. ids[2] .. " --no-policies --stream users")
    assert.equal(0, code, text)
    local csv = run(("query \"SELECT count(*) AS n FROM users u JOIN instances i ON i.id = u.instance_id WHERE i.name = 'sandbox-aws-%s'\" -f csv"):format(ids[2]))
    assert.is_true(tonumber(csv:match("\n(%d+)")) > 4, csv)
  end)
end)
