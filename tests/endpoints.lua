-- endpoints.lua — is a request cachost sent one its provider documents?  tests/fixtures/endpoints/<app>.txt
-- lists, per app, "METHOD /path/{param}" templates taken from the providers' references; a {param} is one
-- path segment, a {param+} one or more (AWS's notation for S3's object keys: /{Bucket}/{Key+}).  Used on CACHOST_TRACE_HTTP traces (demo_spec): every request there must match one.
local M = {}

local function pattern(template)
  local p = template:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("{[^}/]+%%%+}", ".+"):gsub("{[^}/]+}", "[^/]+")
  return "^" .. p .. "$"
end

local cache = {}
-- -> {{method=, pattern=, template=}...} | nil when the app has no list
function M.load(app)
  if cache[app] ~= nil then return cache[app] or nil end
  local fh = io.open(host.root .. "/tests/fixtures/endpoints/" .. app .. ".txt", "rb")
  if not fh then cache[app] = false; return nil end
  local list = {}
  for line in fh:lines() do
    local method, template = line:gsub("%s+#.*$", ""):match("^(%u+)%s+(/%S*)$")
    if method then list[#list + 1] = { method = method, pattern = pattern(template), template = template } end
  end
  fh:close()
  cache[app] = list
  return list
end

function M.documented(app, method, path)
  for _, e in ipairs(M.load(app) or {}) do
    if e.method == method and path:match(e.pattern) then return e.template end
  end
end

-- The requests of a trace (JSON lines) of apps with a list that match none of its templates:
-- {"app METHOD /path", ...} (each once), and how many requests were checked.
function M.undocumented(trace_path)
  local bad, seen, checked = {}, {}, 0
  for line in io.lines(trace_path) do
    local r = json.decode(line)
    if type(r) == "table" and r.app and M.load(r.app) then
      local path = tostring(r.url):gsub("^%a+://[^/]+", ""):gsub("[?#].*$", "")
      checked = checked + 1
      if not M.documented(r.app, r.method, path) then
        local k = ("%s %s %s"):format(r.app, r.method, path)
        if not seen[k] then seen[k] = true; bad[#bad + 1] = k end
      end
    end
  end
  table.sort(bad)
  return bad, checked
end

return M
