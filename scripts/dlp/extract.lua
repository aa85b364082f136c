-- dlp/extract.lua — turn file content into text for the detectors, by name, mime type and magic bytes:
-- plain text, docx/xlsx/pptx and zip archives (the `zip` module), PDF (the `pdf` module, poppler).
-- extract.text(content, name, mime, max) -> "text", text, extractor
--                                        | "encrypted" | "unsupported" | "failed" | "too_large", reason
local M = {}

local TEXT_EXT = {
  txt = true, csv = true, tsv = true, json = true, md = true, log = true, xml = true, html = true, htm = true,
  yaml = true, yml = true, ini = true, conf = true, cfg = true, env = true, sql = true, pem = true, key = true,
  lua = true, py = true, js = true, ts = true, sh = true, rb = true, go = true, java = true, c = true, h = true,
  properties = true, toml = true, eml = true, rtf = true,
}
-- office formats: zip of XML parts; the parts that hold the text
local OFFICE = {
  docx = { "^word/document%.xml$", "^word/header%d*%.xml$", "^word/footer%d*%.xml$", "^word/footnotes%.xml$",
    "^word/comments%.xml$" },
  xlsx = { "^xl/sharedStrings%.xml$", "^xl/worksheets/[^/]+%.xml$" },
  pptx = { "^ppt/slides/[^/]+%.xml$", "^ppt/notesSlides/[^/]+%.xml$" },
}
local OFFICE_MIME = {
  ["application/vnd.openxmlformats-officedocument.wordprocessingml.document"] = "docx",
  ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"] = "xlsx",
  ["application/vnd.openxmlformats-officedocument.presentationml.presentation"] = "pptx",
}
local TEXT_MIME = { ["application/json"] = true, ["application/xml"] = true, ["application/x-yaml"] = true,
  ["application/x-pem-file"] = true }

local ENTITIES = { lt = "<", gt = ">", amp = "&", quot = '"', apos = "'" }

-- XML to text: paragraph/row/cell ends become separators so values in adjacent cells do not join
function M.xml_text(xml)
  xml = xml:gsub("</w:p>", "\n"):gsub("</a:p>", "\n"):gsub("</row>", "\n"):gsub("</c>", " "):gsub("</si>", "\n")
      :gsub("<w:tab/>", "\t")
  local text = xml:gsub("<[^>]*>", "")
  return (text:gsub("&(#?x?)(%w+);", function(kind, v)
    if kind == "" then return ENTITIES[v] end
    local n = tonumber(v, kind == "#x" and 16 or 10)
    return n and n < 0x110000 and utf8.char(n) or nil
  end))
end

local function ext_of(name)
  return name and name:match("%.([%w]+)$") and name:match("%.([%w]+)$"):lower() or nil
end

local function looks_text(content)
  local head = content:sub(1, 8192)
  return not head:find("\0", 1, true)
end

local function office(content, kind, max)
  if not zip then return "unsupported", "no zip support" end
  local entries, err = zip.entries(content)
  if not entries then return "failed", err end
  local parts, size = {}, 0
  for _, e in ipairs(entries) do
    for _, pat in ipairs(OFFICE[kind]) do
      if e.name:find(pat) then
        if e.encrypted then return "encrypted", e.name end
        local data, rerr = zip.read(content, e.name, max - size)
        if not data then
          if rerr == "encrypted" or rerr == "too_large" then return rerr, e.name end
          return "failed", rerr
        end
        size = size + #data
        parts[#parts + 1] = M.xml_text(data)
        break
      end
    end
  end
  if #parts == 0 then return "failed", "no " .. kind .. " text parts" end
  return "text", table.concat(parts, "\n"), kind
end

-- PDF: the text of every page; "unsupported" when poppler-glib is not installed
local PDF_ERR = { encrypted = "encrypted", too_large = "too_large" }
local function pdf_text(content, max)
  if not pdf then return "unsupported", "no pdf support" end
  local text, err, why = pdf.text(content, math.tointeger(max))
  if text then return "text", text, "pdf" end
  if err == "unavailable" then return "unsupported", "pdf: " .. (why or err) end
  if PDF_ERR[err] then return PDF_ERR[err], "pdf" end
  return "failed", err
end

-- a plain zip archive: the text files inside (nested archives are not opened)
local function archive(content, max)
  if not zip then return "unsupported", "no zip support" end
  local entries, err = zip.entries(content)
  if not entries then return "failed", err end
  local parts, size = {}, 0
  for _, e in ipairs(entries) do
    if e.encrypted then return "encrypted", e.name end
    if TEXT_EXT[ext_of(e.name) or ""] then
      local data, rerr = zip.read(content, e.name, max - size)
      if not data then
        if rerr == "encrypted" or rerr == "too_large" then return rerr, e.name end
        return "failed", rerr
      end
      size = size + #data
      parts[#parts + 1] = data
    end
  end
  return "text", table.concat(parts, "\n"), "zip"
end

function M.text(content, name, mime, max)
  max = max or math.huge
  local ext = ext_of(name)
  mime = mime and mime:lower():match("^[^;%s]+")
  local is_zip = content:sub(1, 4) == "PK\3\4" or content:sub(1, 4) == "PK\5\6"
  local office_kind = OFFICE[ext or ""] and ext or OFFICE_MIME[mime or ""]
  if office_kind then
    -- Office encrypts a document by wrapping it in an OLE compound file (EncryptedPackage)
    if content:sub(1, 8) == "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1" then return "encrypted", "office encryption" end
    if not is_zip then return "failed", "not a " .. office_kind .. " file (no zip header)" end
    return office(content, office_kind, max)
  end
  if is_zip then return archive(content, max) end
  if ext == "pdf" or mime == "application/pdf" or content:sub(1, 5) == "%PDF-" then return pdf_text(content, max) end
  if (mime and (mime:find("^text/") or TEXT_MIME[mime])) or TEXT_EXT[ext or ""] then
    return "text", content, "text"
  end
  if (not mime or mime == "application/octet-stream") and looks_text(content) then return "text", content, "text" end
  return "unsupported", (mime or ext or "binary content")
end

return M
