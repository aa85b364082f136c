-- cachost demo — what `make demo` runs (scripts/demo.sh), for an installed cachost: sandbox tenants on
-- loopback, six instances connected through the real flows, scans, a brute force suspended, a card-number
-- file quarantined in Box and a card-number Doc in Google Workspace.  Its home and files live in their own directory; your CACHOST_HOME is never touched.
return {
  summary = "try cachost on sandbox tenants (nothing leaves this machine)",
  usage = [[usage: cachost demo [--dir DIR]
Starts sandbox tenants (Okta, two GitHub orgs, Box, Microsoft, Google Workspace) on loopback, connects an instance to each,
scans them and shows what cachost found and did.  Everything it makes lives in DIR (default
$XDG_STATE_HOME/cachost-demo, i.e. ~/.local/state/cachost-demo); a later run replaces only a directory
the demo made itself.]],
  options = { { "dir", arg = true } },
  run = function(opts, _, ctx)
    local state = host.getenv("XDG_STATE_HOME")
    if not state or state == "" then state = (host.getenv("HOME") or ".") .. "/.local/state" end
    local dir = opts.dir or (state .. "/cachost-demo")
    local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local _, _, code = os.execute(("mkdir -p %s && CACHOST_BIN=\"$(readlink /proc/%d/exe)\" CACHOST_DEMO_DIR=%s sh %s")
      :format(q(dir), host.pid(), q(dir), q(host.root .. "/scripts/demo.sh")))
    if code ~= 0 then return ctx.fail("the demo stopped (exit %s); its files are in %s", tostring(code), dir) end
    return 0
  end,
}
