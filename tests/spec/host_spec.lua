-- host_spec.lua — the host module's small services that policies rely on.
describe("host.ip_in", function()
  it("tells whether an address is in an IPv4 or IPv6 range", function()
    local cases = {
      { "10.1.2.3", "10.0.0.0/8", true }, { "11.1.2.3", "10.0.0.0/8", false },
      { "10.1.2.3", "10.1.2.3", true }, { "10.1.2.4", "10.1.2.3", false },
      { "192.168.1.130", "192.168.1.128/25", true }, { "192.168.1.127", "192.168.1.128/25", false },
      { "10.1.3.3", "10.1.2.0/23", true }, { "10.1.4.3", "10.1.2.0/23", false },
      { "1.2.3.4", "0.0.0.0/0", true },
      { "2001:db8::1", "2001:db8::/32", true }, { "2001:db9::1", "2001:db8::/32", false },
      { "2001:db8:0:1::5", "2001:db8:0:1::/63", true }, { "2001:db8:0:2::5", "2001:db8:0:1::/63", false },
      { "::ffff:10.1.2.3", "10.0.0.0/8", true },          -- IPv4-mapped
      { "2001:db8::1", "10.0.0.0/8", false }, { "10.1.2.3", "2001:db8::/32", false },
      { "not an ip", "10.0.0.0/8", false }, { nil, "10.0.0.0/8", false }, { "10.1.2.3/8", "10.0.0.0/8", false },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[3], host.ip_in(c[1], c[2]), tostring(c[1]) .. " in " .. c[2])
    end
  end)

  it("refuses what is not a range", function()
    for _, bad in ipairs { "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "x/8", "2001:db8::/129", "10.0.0.0/8x",
                           "10.0.0.0/-1", "", ("1"):rep(100) } do
      local r, err = host.ip_in("10.0.0.1", bad)
      assert.is_nil(r, bad)
      assert.equal("bad_cidr", err)
    end
    assert.has_error(function() host.ip_in("10.0.0.1") end)
  end)
end)
