-- run_ops_spec.lua — `cachost run` serves /healthz, /readyz and /metrics on their own listener, apart from
-- the webhooks, and says where in its log.
local helpers = require "helpers"
local procs = require "procs"
local slurp = procs.slurp
local bin = procs.BIN


describe("cachost run operator endpoints", function()
  it("are served on --metrics-listen, not on the webhook listener", function()
    local home = helpers.tmp_dir()
    local p = assert(io.popen(("CACHOST_HOME='%s' %s run --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 2>'%s/log' & echo $!")
      :format(home, bin, home)))
    local pid = p:read("l"); p:close()
    local ops, hooks
    for _ = 1, 400 do
      local log = slurp(home .. "/log")
      ops = log:match('msg="operator endpoints".- url=(http://[%d.:]+)/metrics')
      hooks = log:match('webhooks=(http://[%d.:]+)/webhooks')
      if ops and hooks then break end
      sched.sleep(0.05)
    end
    local ok, err = pcall(function()
      assert.truthy(ops, slurp(home .. "/log"))
      for _, path in ipairs { "/healthz", "/readyz", "/metrics" } do
        local r = assert(http.request { url = ops .. path })
        assert.equal(200, r.status, path)
      end
      assert.matches("cachost_up 1", assert(http.request { url = ops .. "/metrics" }).body)
      assert.equal(404, assert(http.request { url = hooks .. "/metrics" }).status)
    end)
    os.execute("kill " .. pid)
    for _ = 1, 200 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      sched.sleep(0.05)
    end
    os.execute("rm -rf '" .. home .. "'")
    assert(ok, err)
  end)

  it("takes the webhook listener's bounds from the command line, refusing bad ones as usage errors", function()
    for _, args in ipairs { "--max-connections 0", "--max-connections many", "--request-timeout 0",
                            "--request-timeout 99999" } do
      local out, code = procs.sh(bin .. " run " .. args .. " 2>&1")
      assert.equal(2, code, args)
      assert.matches("^cachost run: %-%-[%w-]+ wants", out)
    end
  end)
end)
