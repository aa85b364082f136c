-- servicenow_cli_spec.lua — `cachost sandbox servicenow` to a connected instance, as a newcomer would: the
-- printed `instance add` line works (--test; the password and client secret reach the vault through the
-- environment), a wrong password is refused and the instance not kept, a sync reads every stream, and
-- `cachost act` locks a user out and back in, seen in the instance after a re-sync.
local helpers = require "helpers"
local procs = require "procs"

describe("cachost sandbox servicenow", function()
  local home, sandbox
  before_each(function() home = helpers.tmp_dir(); sandbox = procs.home(home) end)
  after_each(function()
    sandbox:stop()
    os.execute("rm -rf '" .. home .. "'")
  end)

  local function run(args) return sandbox:run(args) end

  it("connects through the printed line, syncs, and locks a user out", function()
    local line = sandbox:connect_line("servicenow --size 20", "CACHOST_SET_PASSWORD")
    local wrong = line:gsub("^CACHOST_SET_PASSWORD=%S+", "CACHOST_SET_PASSWORD=wrong"):gsub("%-%-name %S+", "--name tried")
    local text, code = procs.sh(("CACHOST_HOME='%s' %s --test </dev/null"):format(home, wrong))
    assert.equal(1, code, text)
    assert.matches("token request refused", text)
    assert.is_nil(run("instance list"):find("tried", 1, true))
    text, code = procs.sh(("CACHOST_HOME='%s' %s --test </dev/null"):format(home, line))
    assert.equal(0, code, text)
    assert.matches("credentials work", text)
    text, code = run("sync sandbox-servicenow --no-policies")
    assert.equal(0, code, text)
    assert.is_nil(text:find(" error ", 1, true), text)
    for _, stream in ipairs { "users", "groups", "privileges", "app_grants", "activities", "files" } do
      assert.matches("sandbox%-servicenow " .. stream .. " +ok", text)
    end
    local csv = run("query \"SELECT email FROM users WHERE status = 'active' AND email LIKE '%@example.com' AND coalesce(is_admin, 0) = 0 ORDER BY email LIMIT 1\" -f csv")
    local email = csv:match("\n(%S+@example%.com)")
    assert(email, csv)
    text, code = run("act sandbox-servicenow suspend_user " .. email)
    assert.equal(0, code, text)
    run("sync sandbox-servicenow --no-policies --stream users")
    assert.matches("\nlocked", run(("query \"SELECT status FROM users WHERE email = '%s'\" -f csv"):format(email)))
    text, code = run("act sandbox-servicenow unsuspend_user " .. email)
    assert.equal(0, code, text)
    run("sync sandbox-servicenow --no-policies --stream users")
    assert.matches("\nactive", run(("query \"SELECT status FROM users WHERE email = '%s'\" -f csv"):format(email)))
  end)
end)
