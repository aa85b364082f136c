-- cachost schema — the store's tables, and the columns of one, each with what it means.
local store = require "store"
local docs = require "store.docs"
local format = require "format"

return {
  summary = "the store's tables and their columns, described",
  usage = [[usage: cachost schema [TABLE] [--format table|json|csv]
Without TABLE: every table of the store with what it holds.  With TABLE: its columns, their types and
what each means.  Query them with cachost query "SELECT ..." (read-only).]],
  options = { { "format", arg = true, short = "f" } },
  run = function(opts, args, ctx)
    local rd, err = store.open_readonly(host.home)
    if not rd then return ctx.fail("%s", err) end
    local rows, cols
    if args[1] then
      rows, err = docs.columns(rd, args[1])
      cols = { "column", "type", "description" }
    else
      rows, cols = docs.tables(rd), { "table", "description" }
    end
    rd:close()
    if not rows then return ctx.fail("%s", err) end
    format.rows(rows, cols, opts.format or "table")
    return 0
  end,
}
