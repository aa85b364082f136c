-- cachost identity — a person across every connected app: where they still have access, and the links
-- that join accounts whose e-mails differ.
local runtime = require "runtime"
local instances = require "instances"
local format = require "format"

local USAGE = [[usage: cachost identity PERSON [--format table|json|csv]
       cachost identity link PERSON ACCOUNT [--instance NAME]
       cachost identity unlink ACCOUNT [--instance NAME]
A person is an e-mail address.  Their accounts in every instance are joined by e-mail (whatever its case),
or by a link: ACCOUNT is an e-mail in any app, or with --instance the account's id (or e-mail) in that
instance.  `cachost identity PERSON` lists the accounts (status, admin, OAuth grants held) and says whether
the person has left (terminated in an HR app, deactivated or deleted in an identity provider).  The same
rows are the `identities` view of cachost query.  The offboarding policy suspends an account of a person
who left (policies/offboarding.lua; audit mode until `cachost policy mode offboarding enforce`).]]

-- The account of a link: an instance's account id (by its id or e-mail) or an e-mail -> inst_id, account
local function account_of(st, account, name)
  if not name then return nil, account:lower() end
  local inst, err = instances.instance(st, name)
  if not inst then return nil, nil, err end
  local row = st:action_target(inst.id, "users", account)
  return inst.id, row and row.ext_id or account
end

return {
  summary = "where a person has access across apps; link accounts to people",
  usage = USAGE,
  options = { { "instance", arg = true, short = "i" }, { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local st = runtime.store()
    local sub = args[1]
    if sub == "link" or sub == "unlink" then
      local person, account = args[2], args[3]
      if sub == "unlink" then person, account = nil, args[2] end
      if not account or (sub == "link" and not person:find("@", 1, true)) then
        return ctx.usage_error(ctx.load_command("identity"), sub == "link" and "link needs a PERSON (an e-mail) and an ACCOUNT"
          or "unlink needs an ACCOUNT")
      end
      local inst_id, key, err = account_of(st, account, opts.instance)
      if err then return ctx.fail("%s", err) end
      if sub == "link" then
        st:link_identity(inst_id, key, person:lower())
        ctx.out("%s is now %s\n", account, person:lower())
      elseif st:unlink_identity(inst_id, key) == 0 then
        return ctx.fail("no link for %s%s", account, opts.instance and " in " .. opts.instance or "")
      else
        ctx.out("%s unlinked\n", account)
      end
      return 0
    end
    if not sub or args[2] then return ctx.usage_error(ctx.load_command("identity"), "expected PERSON, link or unlink") end
    local person = sub:lower()
    local rows = st:identity(person)
    if #rows == 0 then return ctx.fail("no account of %s in any instance (cachost identity link joins one)", person) end
    local people = require "policy.people"
    local gone = people.departures(st)[person]
    format.rows(rows, { "instance", "app", "account_id", "email", "status", "is_admin", "grants", "last_login",
      "terminated_at", "deleted_at" }, opts.format or "table")
    if (opts.format or "table") == "table" then
      local active = 0
      for _, r in ipairs(rows) do if r.status == "active" and not r.deleted_at then active = active + 1 end end
      ctx.out("%s: %s; active in %d of %d accounts\n", person,
        gone and "left (" .. people.how(gone) .. ")" or "no source of truth says this person left", active, #rows)
    end
    return 0
  end,
}
