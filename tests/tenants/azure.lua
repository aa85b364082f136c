local ms = require "tenants.microsoft"
return { users_path = "/roleAssignments$", tenant = ms.tenant, instance = ms.instance }
