-- gcp_cli_spec.lua — `cachost sandbox gcp` to a connected organization, as a newcomer would: the printed
-- `instance add` line works (--test; the key file is read into the vault through the environment), a sync
-- reads every stream, and the governance path disables a user-managed key and takes the public binding away.
local helpers = require "helpers"
local procs = require "procs"

describe("cachost sandbox gcp", function()
  local home, sandbox
  before_each(function() home = helpers.tmp_dir(); sandbox = procs.home(home) end)
  after_each(function()
    sandbox:stop()
    os.execute("rm -rf '" .. home .. "'")
  end)

  local function run(args) return sandbox:run(args) end

  it("connects through the printed line, syncs, and acts on the organization", function()
    local line = sandbox:connect_line("gcp", "CACHOST_SET_SERVICE_ACCOUNT_KEY")
    local text, code = procs.sh(("CACHOST_HOME='%s' %s --test </dev/null"):format(home, line))
    assert.equal(0, code, text)
    text, code = run("sync sandbox-gcp --no-policies")
    assert.equal(0, code, text)
    assert.is_nil(text:find(" error ", 1, true), text)
    local csv = run("query \"SELECT count(*) AS n FROM privileges WHERE scope LIKE '%(public: allUsers)%' AND deleted_at IS NULL\" -f csv")
    assert.matches("\n1", csv)
    text, code = run("act sandbox-gcp remove_admin_role allUsers")
    assert.equal(0, code, text)
    local keys = run("query \"SELECT ext_id FROM app_grants WHERE raw NOT LIKE '%disabled%' AND deleted_at IS NULL\" -f csv")
    local key = keys:match("\n(projects/[^\n]+/keys/%x+)")
    assert(key, keys)
    text, code = run("act sandbox-gcp revoke_token '" .. key .. "'")
    assert.equal(0, code, text)
    text, code = run("sync sandbox-gcp --no-policies --stream users --stream app_grants")
    assert.equal(0, code, text)
    csv = run("query \"SELECT count(*) AS n FROM privileges WHERE scope LIKE '%(public: allUsers)%' AND deleted_at IS NULL\" -f csv")
    assert.matches("\n0", csv)
    csv = run(("query \"SELECT raw FROM app_grants WHERE ext_id = '%s'\" -f csv"):format(key))
    assert.matches('disabled""?:true', csv)
    -- the service account's key file goes with the sandbox
    local key_file = line:match('%$%(cat ([^)]+)%)')
    assert.truthy(host.stat(key_file))
    assert.is_true(procs.stop(sandbox.pid))
    sandbox.pid = nil
    assert.is_nil(host.stat(key_file))
  end)
end)
