-- policy/limits.lua — the policy engine's limits and hooks: one table, which every module of the engine
-- reads when it needs a value.  `require "policy"` is this very table with the engine's functions added,
-- so that what a spec or a command sets there (policy.SECONDS = ..., policy.on_scan = fn) reaches them all.
local M = {}

M.MEMORY = 16 * 1024 * 1024
M.INSTRUCTIONS = 20 * 1000 * 1000     -- per call, i.e. per batch of rows (pattern steps count too)
M.SECONDS = 10                        -- per call: what no count bounds (long string compares)
M.MAX_COUNT = 100000                  -- repeated.count: a window keeps that many times per key
M.BATCH = 1000
M.ALERT_MAX = 1000       -- characters of an alert template: the text is copied into every alert row
-- M.on_scan(bytes), when set (cachost sync's progress): called after each DLP download.

return M
