-- The xml host module and sdk/xml.lua on AWS's own wire samples (tests/fixtures/aws/wire, from botocore).
local helpers = require "helpers"
local X = require "sdk.xml"

local function wire(name) return assert(X.decode(helpers.fixture("aws/wire/" .. name .. ".xml"))) end

describe("xml on AWS replies", function()
  it("reads a query-protocol list (IAM ListUsers): members, their fields, the paging flag", function()
    local root = wire("iam-list-users")
    assert.equal("ListUsersResponse", root.name)
    assert.equal("https://iam.amazonaws.com/doc/2010-05-08/", root.attrs.xmlns)
    local users = X.all(root, "ListUsersResult/Users", "member")
    assert.equal(2, #users)
    local andrew = X.record(users[1])
    assert.equal("Andrew", andrew.UserName)
    assert.equal("AID2MAB8DPLSRHEXAMPLE", andrew.UserId)
    assert.equal("/division_abc/subdivision_xyz/engineering/", andrew.Path)
    assert.equal("Jackie", X.text(users[2], "UserName"))
    assert.equal("false", X.text(root, "ListUsersResult/IsTruncated"))
    assert.is_nil(X.text(root, "ListUsersResult/Marker"))
    assert.equal("7a62c49f-347e-4fc4-9331-6e8eEXAMPLE", X.text(root, "ResponseMetadata/RequestId"))
  end)

  it("reads a record with a nested list as plain values (GetGroup, ListAccessKeys)", function()
    local g = X.record(X.find(wire("iam-get-group"), "GetGroupResult"))
    assert.equal("test_admin", g.Group.GroupName)
    assert.equal("harry", g.Users[1].UserName)
    local keys = X.record(X.find(wire("iam-list-access-keys"), "ListAccessKeysResult/AccessKeyMetadata"))
    assert.same({ "Active", "Inactive" }, { keys[1].Status, keys[2].Status })
  end)

  it("reads REST-XML flattened lists and entities (S3 ListObjects, ListBuckets, GetBucketAcl)", function()
    local root = wire("s3-list-objects")
    local contents = X.all(root, "", "Contents")
    assert.equal(2, #contents)
    assert.equal("key1", X.text(contents[1], "Key"))
    assert.equal('"1d921b22129502cbbe5cbaf2c8bac682"', X.text(contents[1], "ETag"))
    assert.equal("1234", X.text(contents[2], "Size"))
    assert.equal("", X.text(root, "Prefix"))
    local buckets = X.all(wire("s3-list-buckets"), "Buckets", "Bucket")
    assert.equal("botostats", X.text(buckets[1], "Name"))
    local grantee = X.find(wire("s3-get-bucket-acl"), "AccessControlList/Grant/Grantee")
    assert.equal("CanonicalUser", grantee.attrs["xsi:type"])
  end)

  it("reads both kinds of AWS error body", function()
    assert.same({ code = "NoSuchEntity", message = "The user with name foobar cannot be found.", type = "Sender",
                  request_id = "358299bb-b7f8-11e2-8d39-e3a125f625ee" }, X.error(wire("error-iam-get-user")))
    assert.same({ code = "AccessDenied", message = "Access Denied", request_id = "9C7D5181867045BB" },
                X.error(wire("error-s3-list-objects")))
    assert.equal("BucketAlreadyOwnedByYou", X.error(wire("error-s3-create-bucket")).code)
    assert.equal("AccessDenied", X.error(wire("error-sts-get-session-token")).code)
    assert.is_nil(X.error(wire("iam-list-users")))
  end)

  it("decodes every wire sample and refuses each one cut short, with one bad_xml line", function()
    local n = 0
    for name in io.popen("ls " .. host.root .. "/tests/fixtures/aws/wire"):lines() do
      local text = helpers.fixture("aws/wire/" .. name)
      assert.is_table(X.decode(text), name)
      local v, err, tok = X.decode(text:sub(1, #text // 2))
      assert.is_nil(v, name)
      assert.equal("bad_xml", tok)
      assert.matches("^bad_xml: [^\n]+$", err)
      n = n + 1
    end
    assert.is_true(n >= 16)
  end)

  it("refuses a DOCTYPE, so an entity expansion bomb costs nothing", function()
    local bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
      .. '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
      .. '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
      .. '<ListUsersResponse><ListUsersResult>&lol3;</ListUsersResult></ListUsersResponse>'
    local v, err = X.decode(bomb)
    assert.is_nil(v)
    assert.matches("DOCTYPE not allowed", err)
  end)
end)
