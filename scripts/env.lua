-- env.lua — confining connectors and policies: each gets its own _ENV over read-only safe globals.
-- No io, os, package, debug; text chunks only; reading an undefined global raises (typos fail loudly).
local M = {}

local function readonly(t, name)
  return setmetatable({}, {
    __index = t,
    __newindex = function(_, k) error(("%s is read-only (cannot set '%s')"):format(name, tostring(k)), 2) end,
    __pairs = function() return next, t, nil end,
    __len = function() return #t end,
    __metatable = false,
  })
end
M.readonly = readonly

local function safe_load(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then error("load: only text chunks are allowed", 2) end
  if type(chunk) ~= "string" then error("load: only strings can be loaded", 2) end
  return load(chunk, name, "t", env)
end

local SAFE = {}
for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
  "rawset", "select", "tonumber", "tostring", "type", "xpcall", "setmetatable", "getmetatable", "_VERSION" } do
  SAFE[k] = _G[k]
end
for _, lib in ipairs { "string", "table", "math", "utf8", "coroutine" } do SAFE[lib] = readonly(_G[lib], lib) end
-- os.time/clock/date are harmless and useful; nothing else of os is exposed
SAFE.os = readonly({ time = os.time, clock = os.clock, date = os.date }, "os")
SAFE.print = function(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  log.info(table.concat(parts, "\t"))
end

-- env.new(extras) -> a fresh environment; extras (modules, helpers) are visible read-only.
function M.new(extras)
  local base = setmetatable({}, { __index = SAFE })
  for k, v in pairs(extras or {}) do
    rawset(base, k, type(v) == "table" and getmetatable(v) == nil and readonly(v, k) or v)
  end
  local env = {}
  env.load = function(chunk, name, mode, e) return safe_load(chunk, name, mode, e or env) end
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      local v = base[k]
      if v == nil then error(("undefined global '%s'"):format(tostring(k)), 2) end
      return v
    end,
  })
end

-- env.load(text, chunkname, env) -> fn | nil, err
function M.load(text, chunkname, env)
  if type(text) ~= "string" then return nil, "not a text chunk" end
  if text:byte(1) == 27 then return nil, chunkname .. ": binary chunks are not allowed" end
  return load(text, "@" .. chunkname, "t", env)
end

function M.loadfile(path, env)
  local fh, err = io.open(path, "rb")
  if not fh then return nil, err end
  local text = fh:read("a")
  fh:close()
  return M.load(text, path:gsub("^.*/(%w+/[^/]+)$", "%1"), env)
end

return M
