-- zstd.compress writes small frames into a buffer the process keeps, large ones into a Lua buffer:
-- both round-trip byte for byte, and a frame returned earlier is not overwritten by the next compression.
describe("zstd.compress", function()
  local function text(n, seed)
    local parts, x = {}, seed
    for i = 1, n // 8 do
      x = (x * 1103515245 + 12345) % 2147483648
      parts[i] = ("%08x"):format(x)
    end
    return table.concat(parts)
  end

  it("round-trips small and large values, with and without a dictionary", function()
    local samples = {}
    for i = 1, 200 do samples[i] = ('{"id":"%d","type":"user.session.start","pad":"%s"}'):format(i, text(64, i)) end
    local dict = assert(zstd.dictionary(assert(zstd.train(samples, 4096)), 1))
    for _, v in ipairs { "", "x", samples[7], text(64 * 1024, 3), text(300 * 1024, 5), ("a"):rep(1024 * 1024) } do
      assert.equal(v, zstd.decompress(zstd.compress(v)))
      assert.equal(v, zstd.decompress(zstd.compress(v, dict), dict))
    end
  end)

  it("keeps each frame it returned intact", function()
    local a, b = text(1000, 1), text(1000, 2)
    local fa = zstd.compress(a)
    local fb = zstd.compress(b)
    assert.are_not.equal(fa, fb)
    assert.equal(a, zstd.decompress(fa))
    assert.equal(b, zstd.decompress(fb))
  end)
end)
