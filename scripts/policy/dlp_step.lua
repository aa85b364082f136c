-- policy/dlp_step.lua — the step of a policy with dlp = {...}: the file's content, scanned.
local dlp = require "dlp"
local L = require "policy.limits"

-- The downloads the DLP policies of one batch share: each file is downloaded once for all of them.  The
-- policies run one after the other over the whole batch, so what is kept stays until the batch is done:
-- at most KEEP bytes of it (beyond, a file is downloaded again by the next policy).
local KEEP = 4 * 1024 * 1024
local function downloads() return { bytes = 0, files = {} } end

-- ctx.content(row, max) through the batch's downloads -> ok, body, err, ctype (as pcall gives them)
local function content(run, ctx, row, max)
  local kept = run.downloads
  local got = kept and kept.files[row]
  -- a whole body fits any cap it is within; a failure is the same only under the same cap
  if got and (got.max == max or (got[1] and type(got[2]) == "string" and #got[2] <= max)) then
    return table.unpack(got, 1, 4)
  end
  got = table.pack(pcall(ctx.content, ctx, row, max))
  if kept then
    local size = type(got[2]) == "string" and #got[2] or 0
    if kept.bytes + size <= KEEP then
      got.max, kept.bytes, kept.files[row] = max, kept.bytes + size, got
    end
  end
  return table.unpack(got, 1, 4)
end

-- dlp = {detectors = {...}, custom = {{name=, pattern=, min=}}, min_counts = {...}, min = N, max_size = bytes,
-- grants = DETECTOR}: download the file through its connector and scan it; the file row records the outcome
-- (scan_status, scan_reason, scan_matches with masked samples, scanned_at).  -> evidence (masked samples
-- only) or nil.
-- With grants, what that detector finds (an access key id) is looked up among the live app grants of every
-- instance: the policy hits only when the file holds one of them, and evidence.grants names those grants
-- (their instance, user and masked id) for the policy's app-permission actions (policy/outcome).
local function dlp_step(p, run, row)
  local st, inst, opts = run.st, run.inst, run.opts
  local ctx = opts.ctx
  if not ctx or row.is_folder == 1 or row.is_folder == true then return nil end
  local max = p.dlp.max_size or 50 * 1024 * 1024
  -- a connector may name the type of what it returns when it is not the file's own (a Google Doc
  -- exported as text/plain)
  local ok, body, err, ctype = content(run, ctx, row, max)
  if ok and body == nil and err == nil then return nil end          -- the app offers no content
  if L.on_scan then L.on_scan(ok and type(body) == "string" and #body or 0) end   -- progress (cachost sync)
  local result
  if not ok or not body then
    local why = tostring(ok and err or body)
    result = { status = why:match("too_large") and "too_large" or "failed", reason = why }
  else
    result = dlp.scan_file(body, { name = row.name, mime = ctype or row.mime, max_size = max, detectors = p.dlp.detectors,
      custom = p.dlp.custom, min_counts = p.dlp.min_counts, values = p.dlp.grants and { p.dlp.grants } or nil })
  end
  local total, found = 0, {}
  for kind, m in pairs(result.status == "completed" and result.matches or {}) do
    total = total + m.count
    found[kind] = { count = m.count, samples = m.samples }
  end
  if not opts.dry then
    st:record_scan(inst.id, row.ext_id, { status = result.status, reason = result.reason,
      matches = result.status == "completed" and found or nil })
  end
  if total < (p.dlp.min or 1) then return nil end
  if not p.dlp.grants then return { matches = found, count = total } end
  local m = result.status == "completed" and result.matches[p.dlp.grants]
  local grants = m and m.values and st:grants_with_ids(m.values) or {}
  if #grants == 0 then return nil end
  local named, users = {}, {}
  for i, g in ipairs(grants) do
    named[i] = { instance_id = g.instance_id, instance = g.instance, ext_id = g.ext_id, user = g.user_id,
                 masked = dlp.mask(g.ext_id, 4, 4) }
    users[i] = ("%s (%s)"):format(tostring(g.user_id or g.user or "?"), g.instance)
  end
  return { matches = found, count = total, grants = named, grant_users = table.concat(users, ", ") }
end

return { step = dlp_step, downloads = downloads }
