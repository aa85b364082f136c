-- sdk/xml.lua — reading XML replies (AWS's query and REST-XML protocols, and the like) out of the tables the
-- host's xml.decode builds: { name=, attrs=, text=, child1, child2, ... } (docs/PRIMITIVES.md, xml).
-- Paths are "/"-separated element names below the element given, first match at each step.
-- The writing half (element, encode) makes request documents (SOAP envelopes) from the same tables.
local M = {}

M.decode = xml.decode

-- The first child of el named name, or nil.
function M.child(el, name)
  if not el then return nil end
  for _, c in ipairs(el) do
    if c.name == name then return c end
  end
end

-- The element at path below el ("ListUsersResult/Users"), or nil.  An empty path is el.
function M.find(el, path)
  for step in path:gmatch("[^/]+") do
    el = M.child(el, step)
    if not el then return nil end
  end
  return el
end

-- The text of the element at path, or nil when it is absent.
function M.text(el, path)
  local e = M.find(el, path or "")
  return e and e.text
end

-- Every child of the element at path named name, in order ({} when the element is absent).  The query
-- protocol wraps lists in <member>: all(root, "ListUsersResult/Users", "member"); REST-XML flattens
-- them: all(root, "", "Contents").
function M.all(el, path, name)
  local out, e = {}, M.find(el, path or "")
  for _, c in ipairs(e or {}) do
    if c.name == name then out[#out + 1] = c end
  end
  return out
end

-- An element as plain Lua values: a leaf is its text; an element with children a table of name -> value
-- (a name seen twice becomes a list of values; a list wrapped in <member> is a list).  For records like
-- an IAM user: record(member).UserName.
function M.record(el)
  if #el == 0 then return el.text end
  local out, lists = {}, {}
  for _, c in ipairs(el) do
    local v = M.record(c)
    if c.name == "member" then
      out[#out + 1] = v
    elseif out[c.name] == nil then
      out[c.name] = v
    else
      if not lists[c.name] then out[c.name], lists[c.name] = { out[c.name] }, true end
      table.insert(out[c.name], v)
    end
  end
  return out
end

-- The error an AWS-style XML body carries -> { code=, message=, type=, request_id= } or nil.  The query
-- protocol sends <ErrorResponse><Error>...</Error><RequestId/></ErrorResponse>, S3 a bare <Error>.
function M.error(root)
  if not root then return nil end
  local e = root.name == "Error" and root or M.child(root, "Error")
  if not e and root.name == "Response" then e = M.find(root, "Errors/Error") end   -- EC2 style
  if not e then return nil end
  return { code = M.text(e, "Code"), message = M.text(e, "Message"), type = M.text(e, "Type"),
           request_id = M.text(e, "RequestId") or M.text(root, "RequestId") or M.text(root, "RequestID") }
end

---------------------------------------------------------------------------------------------- namespaces
-- Namespaces resolved in place (XML Namespaces 1.0): each element's `name` becomes its local name, `ns`
-- its namespace URI (nil when none is in scope), `qname` the name as written; a prefixed attribute
-- keeps its written name in attrs and is also found by "{uri}local" there.  -> root | nil, err (a prefix
-- declared nowhere).  So readers need not care which prefixes a provider writes (env:, soapenv:, wd:).
function M.namespaces(root)
  local function walk(el, scope)
    local mine = nil
    for k, v in pairs(el.attrs or {}) do
      local p = k == "xmlns" and "" or k:match("^xmlns:(.+)$")
      if p then
        mine = mine or setmetatable({}, { __index = scope })
        mine[p] = v ~= "" and v or false           -- xmlns="" undeclares the default namespace
      end
    end
    scope = mine or scope
    local prefix, name = el.name:match("^([^:]+):(.+)$")
    local uri = scope[prefix or ""]
    if prefix and not uri then return nil, ("bad_xml: prefix '%s' of <%s> is not declared"):format(prefix, el.name) end
    el.qname, el.name, el.ns = el.name, name or el.name, uri or nil
    local extra = {}
    for k, v in pairs(el.attrs or {}) do
      local ap, an = k:match("^([^:]+):(.+)$")
      if ap and ap ~= "xmlns" then
        if not scope[ap] then return nil, ("bad_xml: prefix '%s' of attribute %s is not declared"):format(ap, k) end
        extra["{" .. scope[ap] .. "}" .. an] = v
      end
    end
    for k, v in pairs(extra) do el.attrs[k] = v end
    for _, c in ipairs(el) do
      local ok, err = walk(c, scope)
      if not ok then return nil, err end
    end
    return el
  end
  return walk(root, { xml = "http://www.w3.org/XML/1998/namespace" })
end

---------------------------------------------------------------------------------------------- writing
-- XML 1.0 cannot carry most control characters, even escaped: such a value is refused, not mangled.
local function check_chars(s, what)
  local bad = s:find("[%z\1-\8\11\12\14-\31]")
  if bad then error(("xml: %s has a control character (byte %d) XML cannot carry"):format(what, s:byte(bad)), 3) end
  if not utf8.len(s) then error(("xml: %s is not UTF-8"):format(what), 3) end
end
local TEXT = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ["\r"] = "&#13;" }   -- a bare CR would read as LF
local ATTR = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["\t"] = "&#9;", ["\n"] = "&#10;", ["\r"] = "&#13;" }

-- The text of s escaped for character data (attr: for a double-quoted attribute value).
function M.escape(s, attr)
  s = tostring(s)
  check_chars(s, "a value")
  if attr then return (s:gsub('[&<>"\t\n\r]', ATTR)) end
  return (s:gsub("[&<>\r]", TEXT))
end

local NAME = "^[%a_][%w_%.%-]*$"
local function check_name(n, what)
  if type(n) ~= "string" then error(("xml: %s must be a string"):format(what), 4) end
  local p, l = n:match("^([^:]+):([^:]+)$")
  if not ((p and p:match(NAME) and l:match(NAME)) or n:match(NAME)) then
    error(("xml: %q is not an XML name"):format(n), 4)
  end
end

-- An element table (the shape decode makes): element(name, content[, attrs]).  content: a string,
-- number or boolean (its text; booleans as true/false), a list of elements (its children), or nil.
function M.element(name, content, attrs)
  local el = { name = name, attrs = attrs or {}, text = "" }
  if type(content) == "table" then
    for i, c in ipairs(content) do el[i] = c end
  elseif content ~= nil then
    el.text = tostring(content)
  end
  return el
end

-- The document text of an element tree: attributes sorted (the same tree, the same text), text before
-- the children, empty elements self-closed.  Raises on a bad name or a value XML cannot carry.
function M.encode(root, declaration)
  local out = {}
  local function put(el)
    check_name(el.name, "an element name")
    out[#out + 1] = "<" .. el.name
    local keys = {}
    for k in pairs(el.attrs or {}) do
      if not k:find("^{") then check_name(k, "an attribute name"); keys[#keys + 1] = k end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do out[#out + 1] = (' %s="%s"'):format(k, M.escape(el.attrs[k], true)) end
    local text = el.text or ""
    if text == "" and #el == 0 then out[#out + 1] = "/>"; return end
    out[#out + 1] = ">" .. M.escape(text)
    for _, c in ipairs(el) do put(c) end
    out[#out + 1] = "</" .. el.name .. ">"
  end
  if type(root) ~= "table" then error("xml.encode: an element table expected", 2) end
  put(root)
  return (declaration == false and "" or '<?xml version="1.0" encoding="UTF-8"?>') .. table.concat(out)
end

return M
