describe("json", function()
  it("keeps integers as integers and marks arrays", function()
    local v = assert(json.decode('{"id": 123, "f": 1.5, "a": [], "o": {}}'))
    assert.equal("integer", math.type(v.id))
    assert.equal('{"a":[],"f":1.5,"id":123,"o":{}}', json.encode(v))
  end)

  it("returns nil and a message on malformed input", function()
    for _, s in ipairs { '{"a":', '[1,2', '{"a" 1}', 'nul', '{"a":1} x', '' } do
      local v, err = json.decode(s)
      assert.is_nil(v, s)
      assert.matches("^json: ", err)
    end
  end)

  it("keeps the exact text of a listing's items when asked (raw JSON as the provider sent it)", function()
    local body = ' { "value" : [ {"a": 1, "b": [ {"x":1} ]} , { "c" : "}" } ], "n": [{"z":2}] } '
    local d = assert(json.decode(body, { sources = true }))
    assert.equal('{"a": 1, "b": [ {"x":1} ]}', json.source(d.value[1]))
    assert.equal('{ "c" : "}" }', json.source(d.value[2]))
    assert.is_nil(json.source(d.value[1].b[1]))    -- only the first array's items
    assert.is_nil(json.source(d.n[1]))
    assert.is_nil(json.source(assert(json.decode('[{"k":1}]'))[1]))   -- not asked
  end)

  it("builds a declared path through an array in each of its objects, the items' sources unchanged", function()
    local body = '[{"id":1,"target":[{"id":"u1","type":"User","detail":{"k":1,"j":2}},[{"id":"u2","x":0}],"s",null],"z":0},{"id":2}]'
    local d = assert(json.decode(body, { sources = true, fields = { "id", "target.id", "target.detail.k" } }))
    local t = d[1].target
    assert.equal('[{"detail":{"k":1},"id":"u1"},[{"id":"u2"}],"s",null]', json.encode(t))
    assert.is_nil(d[2].target)
    assert.has_error(function() return t[1].type end)
    local ok, err = pcall(function() return t[2][1].x end)
    assert.is_false(ok)
    assert.matches("json: undeclared field 'target.x'", err, 1, true)
    local w = assert(json.decode(body, { sources = true }))
    for i = 1, 2 do assert.equal(json.source(w[i]), json.source(d[i])) end
    assert.equal('{"id":2}', json.source(d[2]))
  end)

  it("refuses an object with more keys than the stack holds as a value error (nil, err), not a raise", function()
    local t = {}
    for i = 1, 600000 do t["k" .. i] = i end
    local ok, text, err = pcall(json.encode, t)
    assert.is_true(ok)
    assert.is_nil(text)
    assert.matches("too many keys", err)
  end)
end)
