-- client.lua — the fuzz driver of what scripts/sdk/client.lua makes of a provider's answer: the Link
-- header (the next page), the listing's documented shape (a malformed 200 must never read as an empty
-- listing), and the redaction of an error body before it is stored or printed (credentials echoed back).
-- The input is header lines, an empty line, the body; bytes \1..\4 in the body stand for the instance's
-- secrets, spliced in where they fall.
-- Findings (raised): a listing neither items nor "malformed listing: ..."; a redacted text that still holds
-- a secret, or is not one bounded line.
local Client = require "sdk.client"
local util = require "sdk.util"

local NAMES = { "token", "vault", "hook", "short" }
local SECRETS = { token = "ghp_16C7e42F292c6912E7710c838347Ae178B4a", vault = "s3cr3t-Value_42",
                  hook = "Bearer hook secret 99", short = "pw12" }

return function(input)
  local head, body = input:match("^(.-)\r?\n\r?\n(.*)$")
  if not head then head, body = "", input end
  local link = head:match("[Ll]ink:%s*([^\r\n]*)")
  for rel, url in pairs(util.links(link)) do
    assert(type(rel) == "string" and type(url) == "string", "bad link")
  end
  local data = json.decode(body)
  for _, where in ipairs { false, "value", "entries" } do
    local items, err = Client.listing(data, where or nil)
    if items then
      assert(type(items) == "table" and json.is_array(items), "items that are not an array")
    else
      assert(type(err) == "string" and err:match("^malformed listing: "), "listing error: " .. tostring(err))
    end
  end
  local text = body:gsub("[\1-\4]", function(c) return SECRETS[NAMES[c:byte()]] end)
  local out = Client.redact(text, SECRETS)
  assert(type(out) == "string" and not out:find("%c") and #out <= 400 + #"... (cut)", "not one bounded line: " .. out)
  for name, s in pairs(SECRETS) do
    assert(not out:find(s, 1, true), ("the %s secret is in %q"):format(name, out))
  end
end
