-- dockerfile_spec.lua — the Dockerfile installs what cachost needs: in its build stage the -dev package of
-- every pkg-config library the Makefile builds with, in its runtime stage the package of every library the
-- binary links and of those it loads at run time (host/dl.h).  Docker cannot run here; the package lists
-- are what goes stale, so they are checked against the Makefile, the binary and dpkg's own records.
local procs = require "procs"
local root = (host and host.root) or "."

local function read(path)
  local f = assert(io.open(root .. "/" .. path)); local s = f:read("a"); f:close()
  return s
end

-- the Debian package that owns a file (dpkg -S, on the path dpkg recorded: with /lib a link to /usr/lib,
-- a library may be recorded under either)
local function owner(path)
  local real = procs.sh("readlink -f '" .. path .. "'"):match("[^\n]+")
  local out, code
  for _, p in ipairs { real, (real:gsub("^/usr/", "/")), "/usr" .. real } do
    out, code = procs.sh("dpkg -S '" .. p .. "'")
    if code == 0 then return (out:match("^([^:%s]+)")) end
  end
  error("no package owns " .. path .. ": " .. out)
end

-- each stage's `apt-get install` packages, as sets, in order
local function stages()
  local list, stage = {}, nil
  for line in (read("Dockerfile"):gsub("\\\n", " ") .. "\n"):gmatch("([^\n]*)\n") do
    if line:find("^FROM ") then stage = {}; list[#list + 1] = stage end
    local install = stage and line:match("apt%-get install ([^&]*)")
    for word in (install or ""):gmatch("%S+") do if not word:find("^%-") then stage[word] = true end end
  end
  return list
end

-- the library file the dynamic linker finds for a soname
local function library(soname)
  local out = procs.sh("/sbin/ldconfig -p")
  return out:match("\n%s*" .. soname:gsub("%p", "%%%0") .. " %(libc6,x86%-64[^)]*%) => (%S+)")
      or out:match("\n%s*" .. soname:gsub("%p", "%%%0") .. " %([^)]*%) => (%S+)")
end

describe("the Dockerfile", function()
  local build, runtime = table.unpack(stages())

  it("builds with every library the Makefile builds with", function()
    local pkgs = read("Makefile"):match("\nPKGS%s*:=%s*([^\n]+)")
    assert.is_not_nil(pkgs)
    local missing = {}
    for pc in pkgs:gmatch("%S+") do
      local dir = procs.sh("pkg-config --variable=pcfiledir " .. pc):match("%S+")
      local dev = owner(dir .. "/" .. pc .. ".pc")
      if not build[dev] then missing[#missing + 1] = dev .. " (" .. pc .. ")" end
    end
    assert.same({}, missing)
  end)

  it("runs with every library the binary links or loads at run time", function()
    local sonames = {}
    for so in procs.sh("readelf -d " .. procs.BIN):gmatch("Shared library: %[([^%]]+)%]") do sonames[#sonames + 1] = so end
    local loaded = 0
    for _, file in ipairs { "host/curl_dl.c", "host/pq_dl.c", "host/pdf.c" } do
      for so in read(file):gmatch('%.soname = "([^"]+)"') do sonames[#sonames + 1] = so; loaded = loaded + 1 end
    end
    assert.equal(3, loaded)
    local missing = {}
    for _, so in ipairs(sonames) do
      local path = library(so)
      assert.is_not_nil(path, "ldconfig does not know " .. so)
      local pkg = owner(path)
      -- libc6 is the base image's own
      if pkg ~= "libc6" and not runtime[pkg] then missing[#missing + 1] = pkg .. " (" .. so .. ")" end
    end
    assert.same({}, missing)
  end)
end)
