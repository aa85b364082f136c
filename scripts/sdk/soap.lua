-- sdk/soap.lua — SOAP 1.1 calls (Workday Web Services and the like): the envelope around a body element,
-- the WS-Security UsernameToken header (OASIS Web Services Security, UsernameToken Profile 1.0, password as
-- text), and reading an answer: its body's first element or its Fault.  Documents are sdk/xml.lua tables.
local X = require "sdk.xml"

local M = {}

M.ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
M.WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
M.PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"

-- The request document: body (an element, with its own xmlns) inside Envelope/Body, the header
-- elements (nil: none) inside Envelope/Header.
function M.envelope(body, header)
  local env = X.element("env:Envelope", {}, { ["xmlns:env"] = M.ENVELOPE })
  if header and #header > 0 then env[#env + 1] = X.element("env:Header", header) end
  env[#env + 1] = X.element("env:Body", { body })
  return X.encode(env)
end

-- The WS-Security header of a user name and password (sent as text: the transport is TLS).
function M.username_token(user, password)
  return X.element("wsse:Security", {
    X.element("wsse:UsernameToken", {
      X.element("wsse:Username", user),
      X.element("wsse:Password", password, { Type = M.PASSWORD_TEXT }),
    }),
  }, { ["xmlns:wsse"] = M.WSSE, ["env:mustUnderstand"] = "1" })
end

-- An answer's document -> its Body element (namespaces resolved: local names; body[1] is the answer, or
-- nil for an empty body), or nil, why.
function M.body(text)
  local root, err = X.decode(text or "")
  if root then root, err = X.namespaces(root) end
  if not root then return nil, err end
  if root.name ~= "Envelope" or root.ns ~= M.ENVELOPE then
    return nil, ("not a SOAP 1.1 envelope (<%s>)"):format(tostring(root.qname))
  end
  local body = X.child(root, "Body")
  if not body or body.ns ~= M.ENVELOPE then return nil, "a SOAP envelope without a Body" end
  return body
end

-- The Fault of an answer's document -> {code = "Client.validationError" (prefix dropped), string =,
-- details = {text...} (the detail's leaf texts)} | nil when it is no SOAP fault.
function M.fault(text)
  local body = M.body(text)
  local el = body and body[1]
  if not el or el.name ~= "Fault" or el.ns ~= M.ENVELOPE then return nil end
  local code = X.text(el, "faultcode") or ""
  local details = {}
  local function leaves(e)
    if #e == 0 then
      local t = e.text:gsub("^%s+", ""):gsub("%s+$", "")
      if t ~= "" then details[#details + 1] = t end
    end
    for _, c in ipairs(e) do leaves(c) end
  end
  leaves(X.child(el, "detail") or { text = "" })
  return { code = code:gsub("^[^:]*:", ""), string = X.text(el, "faultstring") or "", details = details }
end

return M
