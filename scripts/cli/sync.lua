local runtime = require "runtime"
local instances = require "instances"
local sync = require "sync"
local context = require "sdk.context"

return {
  summary = "scan an instance now",
  usage = [[usage: cachost sync INSTANCE [--stream S]... [--full]
Runs the instance's streams now (all of them, full listings first), committing page by page.
  --stream S   only this stream (users, groups, privileges, app_grants, activities, ...); repeatable
  --full         ignore saved cursors: re-read incremental streams from their start
  --no-policies  do not evaluate policies on what changed]],
  options = { { "stream", arg = true, many = true, short = "s" }, { "full" }, { "no-policies" } },
  run = function(opts, args, ctx)
    if #args ~= 1 then return ctx.usage_error(ctx.load_command("sync"), "expected one INSTANCE") end
    local inst, err = instances.instance(runtime.store(), args[1])
    if not inst then return ctx.fail("%s", err) end
    if not inst.enabled then return ctx.fail("instance '%s' is disabled (cachost instance enable %s)", inst.name, inst.name) end
    runtime.watch(not opts["no-policies"])
    -- on a terminal, a line that says how far each stream got: pages, rows, rate; nothing in a pipe
    local tty = host.isatty(2)
    local pages, rows, files, bytes, t0, shown, current = 0, 0, 0, 0, sched.now(), 0, "?"
    local function show(stream, force)
      local now = sched.now()
      if not force and now - shown < 0.1 then return end
      shown = now
      local rate = rows / math.max(now - t0, 0.001)
      ctx.err("\r\27[K%s %s: %d page%s, %d rows, %.0f rows/s%s", inst.name, stream, pages, pages == 1 and "" or "s",
        rows, rate, files > 0 and (", %d files scanned (%.1f MB)"):format(files, bytes / 1e6) or "")
    end
    local policy = require "policy"
    if tty then
      context.on_page = function(c, _, n)
        pages, rows, current = pages + 1, rows + n, c.stream
        show(current)
      end
      policy.on_scan = function(n) files, bytes = files + 1, bytes + n; show(current) end   -- DLP downloads
    end
    -- SIGINT/SIGTERM: stop at the next wait; the page in flight rolls back, committed pages and their
    -- cursors stay, and the next sync goes on from there
    local me = sched.current()
    local stopper = sched.spawn(function() sched.wait_stop(); me:cancel() end)
    local sok, results, ok, lerr = pcall(runtime.sync, inst, {
      streams = opts.stream, full = opts.full,
      progress = tty and function(stream)
        show(stream, true)
        pages, rows, files, bytes, t0 = 0, 0, 0, 0, sched.now()
      end or nil,
    })
    stopper:cancel()
    context.on_page, policy.on_scan = nil, nil
    if not sok then
      if tostring(results):match("cancelled$") then
        if tty then ctx.err("\r\27[K") end
        return ctx.fail("sync of %s stopped by a signal: every page committed is kept; the next sync goes on from there", inst.name)
      end
      error(results, 0)
    end
    if lerr then return ctx.fail("%s", lerr) end
    if tty then ctx.err("\r\27[K") end
    for _, r in ipairs(results) do
      if r.counts then
        local parts = {}
        local entities = {}
        for e in pairs(r.counts) do entities[#entities + 1] = e end
        table.sort(entities)
        for _, e in ipairs(entities) do
          local c = r.counts[e]
          parts[#parts + 1] = ("%s +%d ~%d -%d%s"):format(e, c.added, c.changed, c.removed, c.bad > 0 and (" bad " .. c.bad) or "")
        end
        ctx.out("%s %-11s ok    %5.2fs  %s\n", inst.name, r.stream, r.seconds, table.concat(parts, ", "))
      else
        ctx.out("%s %-11s FAIL  %5.2fs  %s\n", inst.name, r.stream, r.seconds, sync.redact(runtime.store(), inst, r.error))
      end
    end
    if results.store_error == "full" then
      return ctx.fail("disk full: %s cannot grow: free space and rerun; nothing was lost (every page "
        .. "committed is kept, the next sync goes on from there)", runtime.store().path)
    elseif results.store_error == "busy" then
      return ctx.fail("database locked: another process holds %s past %d ms; rerun when it is done; nothing "
        .. "was lost", runtime.store().path, runtime.store().busy_timeout)
    end
    return ok and 0 or 1
  end,
}
