-- sdk/xml.lua — reading XML replies (AWS's query and REST-XML protocols, and the like) out of the tables the
-- host's xml.decode builds: { name=, attrs=, text=, child1, child2, ... } (docs/PRIMITIVES.md, xml).
-- Paths are "/"-separated element names below the element given, first match at each step.
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

return M
