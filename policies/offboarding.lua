-- Offboarding across apps: a person who left the organization (terminated in an HR app, or deactivated or
-- deleted in the identity provider) still holds an active account in a connected app.  People are joined
-- across apps by e-mail, or by the links `cachost identity link` makes; `cachost identity PERSON` shows
-- where they still have access.  In enforce mode the account is suspended there (Workday: disabled).
return policy {
  name = "Access kept after offboarding",
  severity = "high",
  on = "user",
  match = { departed = true, status = "active" },
  alert = "{email} left ({departed_via}) and is still active here",
  actions = { "alert", "suspend_user" },
  mode = "audit",
}
