-- cachost vault — the encrypted credential store: status and key rotation.
local store = require "store"
local vault = require "store.vault"

return {
  summary = "show the credential vault, or re-encrypt every secret under a new master key",
  usage = [[usage: cachost vault status | rotate
  status   where the master key comes from, its id, and how many secrets it protects
  rotate   re-encrypt every secret under a new master key in one transaction.  With a key file
           ($CACHOST_HOME/master.key) a new one replaces it; with CACHOST_MASTER_KEY set, put the new key
           (64 hex digits or base64 of 32 bytes) in CACHOST_NEW_MASTER_KEY, then switch the variable.
Secret values are never printed.]],
  run = function(opts, args, ctx)
    local sub = args[1]
    if sub ~= "status" and sub ~= "rotate" then
      return ctx.usage_error(ctx.load_command("vault"), sub and ("unknown subcommand '" .. sub .. "'") or "missing subcommand")
    end
    local ok, herr = ctx.ensure_home()
    if not ok then return ctx.fail("%s", herr) end
    local st, err = store.open(host.home)
    if not st then return ctx.fail("%s", err) end
    local v, verr = vault.open(st)
    if not v then st:close(); return ctx.fail("%s", verr) end
    local n = st:secret_count()
    if sub == "status" then
      ctx.out("key source: %s\nkey id:     %s\nsecrets:    %d\n", v.source == "env" and "CACHOST_MASTER_KEY" or v.source, v.kid, n)
      st:close()
      return 0
    end
    local new_key
    local env = host.getenv("CACHOST_NEW_MASTER_KEY")
    if env and env ~= "" then
      local perr
      new_key, perr = vault.parse_key(env, "CACHOST_NEW_MASTER_KEY")
      if not new_key then st:close(); return ctx.fail("%s", perr) end
    end
    local count, rerr = v:rotate(new_key)
    st:close()
    if not count then return ctx.fail("%s", rerr) end
    ctx.out("re-encrypted %d secret%s under key %s\n", count, count == 1 and "" or "s", v.kid)
    return 0
  end,
}
