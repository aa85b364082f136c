#!/bin/sh
# make demo: sandbox tenants for one Okta org and two GitHub orgs, three instances (two of the same app,
# kept apart), a scan through the real API paths, and what a newcomer wants to see.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${CACHOST_BIN:-$ROOT/build/cachost}"
DIR="${CACHOST_DEMO_DIR:-$ROOT/build}"      # the demo's home, tenants and logs
mkdir -p "$DIR"
# The demo has its own home, never the user's CACHOST_HOME, and only ever deletes a home it made itself
# (marked by .cachost-demo).
export CACHOST_HOME="$DIR/demo-home"
if [ -e "$CACHOST_HOME" ]; then
  if [ ! -f "$CACHOST_HOME/.cachost-demo" ]; then
    echo "demo: $CACHOST_HOME exists and was not made by the demo; move it away and rerun" >&2; exit 1
  fi
  rm -rf "$CACHOST_HOME"
fi
mkdir -p "$CACHOST_HOME" && chmod 700 "$CACHOST_HOME" && : >"$CACHOST_HOME/.cachost-demo"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting sandbox tenants (API emulators on loopback)"
TENANTS="$DIR/demo-tenants.txt"
: >"$TENANTS"          # exists before the sandbox writes to it: the wait below reads it from the start
APPS="okta github:acme github:globex box microsoft google-workspace:acme gcp:acme webex servicenow salesforce:acme salesforce:globex aws dropbox"
"$BIN" sandbox $APPS >"$TENANTS" 2>"$DIR/demo-tenants.log" &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null' EXIT
i=0; while [ "$(wc -l <"$TENANTS")" -lt $(echo $APPS | wc -w) ]; do
  if ! kill -0 $SANDBOX 2>/dev/null || [ $i -ge 1200 ]; then
    echo "demo: the sandbox tenants did not start (see $DIR/demo-tenants.log)" >&2; exit 1
  fi
  sleep 0.1; i=$((i + 1))
done
cat "$TENANTS"
field() { awk -v a="$1" -v n="$2" -v f="$3" '$1==a && $2==n {print $f}' "$TENANTS"; }
cred() { grep "^$1	" "$TENANTS" | cut -f4 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

say "adding instances: one Okta org (API token), two GitHub orgs (OAuth web flow), Box, Office 365, Google Workspace, a GCP organization, an AWS account (a role with an external id)"
CACHOST_SET_API_TOKEN=$(field okta okta 4) "$BIN" instance add okta --name acme-okta \
  --set domain=acme.okta.com --set base_url="$(field okta okta 3)" --set insecure_loopback=true </dev/null
"$BIN" instance connect acme-okta
for org in acme globex; do
  url=$(field github $org 3)
  CACHOST_SET_CLIENT_SECRET=sandbox-secret-$org "$BIN" instance add github --name "$org-github" --set org=$org \
    --set auth=oauth --set client_id=sandbox-$org --set base_url="$url" --set oauth_base_url="$url" \
    --set insecure_loopback=true </dev/null
  # the consent: cachost prints the provider's authorize URL; a browser (curl here) follows it back to cachost
  : >"$DIR/demo-connect.txt"    # now: the previous org's URL must not be read before the job truncates it
  "$BIN" instance connect "$org-github" 2>"$DIR/demo-connect.txt" &
  CONNECT=$!
  while ! grep -q '^http' "$DIR/demo-connect.txt" && kill -0 $CONNECT 2>/dev/null; do sleep 0.1; done
  cat "$DIR/demo-connect.txt"
  curl -s -L "$(grep '^http' "$DIR/demo-connect.txt")" || true
  wait $CONNECT
  tail -n +3 "$DIR/demo-connect.txt"
done

box=$(field box box 3)
CACHOST_SET_CLIENT_SECRET=$(cred box client_secret) "$BIN" instance add box --name acme-box --set auth=client_credentials \
  --set client_id=$(cred box client_id) --set enterprise_id=$(cred box enterprise_id) --set base_url="$box/2.0" \
  --set upload_base_url="$box/api/2.0" --set oauth_base_url="$box" --set insecure_loopback=true </dev/null
ms=$(field microsoft microsoft 3)
CACHOST_SET_CLIENT_SECRET=$(cred microsoft client_secret) "$BIN" instance add office365 --name contoso-365 \
  --set tenant_id=$(cred microsoft tenant_id) --set client_id=$(cred microsoft client_id) --set base_url="$ms" \
  --set insecure_loopback=true </dev/null
gws=$(field google-workspace acme 3)
CACHOST_SET_SERVICE_ACCOUNT_KEY="$(cat "$(cred google-workspace key_file)")" "$BIN" instance add google-workspace \
  --name acme-gws --set admin_email=$(cred google-workspace admin) --set base_url="$gws" --set oauth_base_url="$gws" \
  --set insecure_loopback=true </dev/null
gcp=$(field gcp acme 3)
CACHOST_SET_SERVICE_ACCOUNT_KEY="$(cat "$(cred gcp key_file)")" "$BIN" instance add gcp --name acme-gcp \
  --set organization_id=$(cred gcp organization_id) --set base_url="$gcp" --set oauth_base_url="$gcp" --set insecure_loopback=true </dev/null
# AWS: the audit user's keys assume the account's role with its external id (secrets through the environment)
CACHOST_SET_ACCESS_KEY_ID=$(cred aws access_key_id) CACHOST_SET_SECRET_ACCESS_KEY=$(cred aws secret_access_key) \
  "$BIN" instance add aws --name acme-aws --set role_arn=$(cred aws role_arn) --set external_id=$(cred aws external_id) \
  --set base_url="$(field aws aws 3)" --set insecure_loopback=true </dev/null

# Webex: an integration connected by its OAuth consent (the sandbox approves it as the org's Compliance Officer)
wx=$(field webex webex 3)
CACHOST_SET_CLIENT_SECRET=$(cred webex client_secret) "$BIN" instance add webex --name acme-webex \
  --set client_id=$(cred webex client_id) --set base_url="$wx/v1" --set insecure_loopback=true </dev/null
: >"$DIR/demo-connect.txt"
"$BIN" instance connect acme-webex 2>"$DIR/demo-connect.txt" &
CONNECT=$!
while ! grep -q '^http' "$DIR/demo-connect.txt" && kill -0 $CONNECT 2>/dev/null; do sleep 0.1; done
curl -s -L "$(grep '^http' "$DIR/demo-connect.txt")" || true
wait $CONNECT
tail -n +3 "$DIR/demo-connect.txt"

# two Salesforce orgs, each its own connected app and integration user (JWT bearer with the app's key)
sfcred() { awk -F '\t' -v n="$1" '$1 == "salesforce" && $2 == n {print $4}' "$TENANTS" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
for org in acme globex; do
  CACHOST_SET_PRIVATE_KEY="$(cat "$(sfcred $org key_file)")" "$BIN" instance add salesforce --name "$org-sf" \
    --set my_domain=$org.my.salesforce.com --set client_id=$(sfcred $org client_id) \
    --set username=$(sfcred $org username) --set base_url="$(field salesforce $org 3)" --set insecure_loopback=true </dev/null
done

# Dropbox: a team-scoped app connected through the OAuth consent (PKCE, offline access), which the sandbox
# approves as the team admin; a browser (curl) follows it back to cachost
dbx=$(field dropbox dropbox 3)
CACHOST_SET_CLIENT_SECRET=$(cred dropbox app_secret) "$BIN" instance add dropbox --name acme-dropbox \
  --set client_id=$(cred dropbox app_key) --set base_url="$dbx" --set content_base_url="$dbx" --set oauth_base_url="$dbx" \
  --set insecure_loopback=true </dev/null
: >"$DIR/demo-connect.txt"
"$BIN" instance connect acme-dropbox 2>"$DIR/demo-connect.txt" &
CONNECT=$!
while ! grep -q '^http' "$DIR/demo-connect.txt" && kill -0 $CONNECT 2>/dev/null; do sleep 0.1; done
curl -s -L "$(grep '^http' "$DIR/demo-connect.txt")" || true
wait $CONNECT
tail -n +3 "$DIR/demo-connect.txt"

say "scanning every instance (policies watch what changes; the file policy quarantines in enforce mode)"
"$BIN" policy mode sensitive_file_shared enforce
"$BIN" policy mode leaked_access_key enforce
for i in acme-okta acme-github globex-github acme-box contoso-365 acme-gws acme-gcp acme-webex acme-sf globex-sf acme-aws acme-dropbox; do "$BIN" sync "$i" || true; done

say "a Workday tenant employing the Okta org's people: those who left but still have active accounts are offboarded"
"$BIN" query "SELECT email FROM users u JOIN instances i ON i.id = u.instance_id WHERE i.name = 'acme-okta'
  AND u.status = 'active' AND coalesce(u.is_admin, 0) = 0 AND u.email IS NOT NULL ORDER BY u.email DESC LIMIT 20" \
  --format csv | tail -n +2 >"$DIR/demo-people.txt"
WORKDAY_T="$DIR/demo-workday.txt"; : >"$WORKDAY_T"
"$BIN" sandbox workday --people "$DIR/demo-people.txt" >"$WORKDAY_T" 2>>"$DIR/demo-tenants.log" &
WORKDAY=$!
trap 'kill $SANDBOX $WORKDAY 2>/dev/null' EXIT
i=0; while [ ! -s "$WORKDAY_T" ]; do
  if ! kill -0 $WORKDAY 2>/dev/null || [ $i -ge 600 ]; then
    echo "demo: the Workday sandbox did not start (see $DIR/demo-tenants.log)" >&2; exit 1
  fi
  sleep 0.1; i=$((i + 1))
done
wdc() { cut -f4 "$WORKDAY_T" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CACHOST_SET_CLIENT_SECRET=$(wdc client_secret) CACHOST_SET_REFRESH_TOKEN=$(wdc refresh_token) "$BIN" instance add workday \
  --name acme-workday --set host=wd2-impl-services1.workday.com --set tenant=$(wdc tenant) --set client_id=$(wdc client_id) \
  --set accounts_report=$(wdc accounts_report) --set groups_report=$(wdc groups_report) --set audit_report=$(wdc audit_report) \
  --set base_url="$(cut -f3 "$WORKDAY_T")" --set insecure_loopback=true </dev/null
# the offboarding policy in enforce mode: Workday's scan says who left; their accounts still active there and
# in the other apps (joined by e-mail) are suspended at once (Workday: the account disabled)
"$BIN" policy mode offboarding enforce
"$BIN" sync acme-workday || true
leaver=$("$BIN" query "SELECT g.target FROM governance_actions g JOIN instances i ON i.id = g.instance_id
  WHERE i.name = 'acme-workday' AND g.policy = 'offboarding' ORDER BY g.id LIMIT 1" --format csv | tail -n 1)
"$BIN" query "SELECT g.id, i.name AS instance, g.action, g.target, g.mode, g.result FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id WHERE g.policy = 'offboarding' ORDER BY g.id"
"$BIN" identity "$leaver"

say "instances and health"
"$BIN" instance list
"$BIN" status

say "what cachost now knows"
"$BIN" query "SELECT i.name AS instance,
   (SELECT count(*) FROM users u WHERE u.instance_id = i.id AND u.deleted_at IS NULL) AS users,
   (SELECT count(*) FROM users u WHERE u.instance_id = i.id AND u.is_admin = 1) AS admins,
   (SELECT count(*) FROM groups g WHERE g.instance_id = i.id) AS groups,
   (SELECT count(*) FROM activities a WHERE a.instance_id = i.id) AS activities,
   (SELECT count(*) FROM app_grants g WHERE g.instance_id = i.id) AS grants
 FROM instances i ORDER BY i.name"

say "a brute-force attempt in the Okta sandbox, with the brute-force policy in enforce mode"
"$BIN" policy mode bruteforce enforce
victim=$("$BIN" query "SELECT email FROM users u JOIN instances i ON i.id = u.instance_id
  WHERE i.name = 'acme-okta' AND u.status = 'active' AND coalesce(u.is_admin, 0) = 0 ORDER BY u.email LIMIT 1" --format csv | tail -n 1)
curl -s -X POST "$(field okta okta 3)/_sandbox/bruteforce" -d "login=$victim&failures=8" >/dev/null
"$BIN" sync acme-okta --stream activities --stream users
"$BIN" alerts --open --limit 5
"$BIN" governance log --limit 3
"$BIN" query "SELECT email, status FROM users WHERE email = '$victim'"

say "a brute-force attempt in the acme Salesforce org: the user is frozen (Salesforce's suspension)"
sfvictim=$("$BIN" query "SELECT email FROM users u JOIN instances i ON i.id = u.instance_id WHERE i.name = 'acme-sf'
  AND u.status = 'active' AND coalesce(u.is_admin, 0) = 0 AND u.external = 0 ORDER BY u.email LIMIT 1" --format csv | tail -n 1)
curl -s -X POST "$(field salesforce acme 3)/_sandbox/bruteforce" -d "login=$sfvictim&failures=8" >/dev/null
"$BIN" sync acme-sf --stream activities --stream users
"$BIN" query "SELECT g.action, g.target, g.mode, g.result FROM governance_actions g JOIN instances i ON i.id = g.instance_id
  WHERE i.name = 'acme-sf' AND g.policy = 'bruteforce'"
"$BIN" query "SELECT i.name AS instance, u.email, u.status FROM users u JOIN instances i ON i.id = u.instance_id
  WHERE u.email = '$sfvictim' ORDER BY i.name"

say "a card-number file shared publicly in the Box sandbox: quarantined, with a tombstone left behind"
"$BIN" sync acme-box --stream files >/dev/null     # the next scan sees the tombstones
"$BIN" query "SELECT g.id, g.action, g.target, g.mode, g.result FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-box' ORDER BY g.id"
"$BIN" query "SELECT path, access_level, scan_status, quarantined FROM files f JOIN instances i ON i.id = f.instance_id
  WHERE i.name = 'acme-box' AND (f.quarantined = 1 OR f.name LIKE '%.quarantined.txt') ORDER BY path"

say "a card-number Doc shared with anyone with the link in Google Workspace: quarantined in the admin's folder"
"$BIN" sync acme-gws --stream files >/dev/null     # the next scan sees the move and the tombstone
"$BIN" query "SELECT g.id, g.action, g.target, g.mode, g.result FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-gws' ORDER BY g.id"
"$BIN" query "SELECT path, owner, access_level, scan_status FROM files f JOIN instances i ON i.id = f.instance_id
  WHERE i.name = 'acme-gws' AND f.deleted_at IS NULL AND (f.path LIKE '/cachost quarantine/%' OR f.name LIKE '%.quarantined.txt') ORDER BY path"

say "Google Cloud: who holds which role in the organization, a binding open to anyone (allUsers), service-account keys"
"$BIN" query "SELECT role, user_id AS member, scope AS resource FROM privileges p JOIN instances i ON i.id = p.instance_id
  WHERE i.name = 'acme-gcp' AND p.deleted_at IS NULL AND role IN ('roles/owner', 'roles/resourcemanager.organizationAdmin',
  'roles/iam.securityAdmin', 'roles/iam.serviceAccountTokenCreator') ORDER BY role, user_id"
"$BIN" query "SELECT user_id, role, scope FROM privileges p JOIN instances i ON i.id = p.instance_id
  WHERE i.name = 'acme-gcp' AND p.deleted_at IS NULL AND p.scope LIKE '%(public:%' ORDER BY user_id"
"$BIN" query "SELECT g.user_id AS service_account, substr(g.created_at, 1, 10) AS created,
  CAST(julianday('now') - julianday(g.created_at) AS INTEGER) AS age_days, json_extract(unzstd(g.raw), '$.disabled') AS disabled
  FROM app_grants g JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-gcp' AND g.deleted_at IS NULL ORDER BY g.created_at"
"$BIN" act acme-gcp remove_admin_role allUsers       # read-modify-write of the project's policy, with its etag
"$BIN" sync acme-gcp --stream users >/dev/null
"$BIN" query "SELECT count(*) AS public_bindings_left FROM privileges p JOIN instances i ON i.id = p.instance_id
  WHERE i.name = 'acme-gcp' AND p.deleted_at IS NULL AND p.scope LIKE '%(public: allUsers)%'"

say "a card-number file posted in a Webex space with an external participant: removed (quarantine deletes its message)"
"$BIN" query "SELECT g.id, g.action, g.target, g.mode, g.result FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-webex' ORDER BY g.id"
"$BIN" query "SELECT path, access_level, scan_status, deleted_at IS NOT NULL AS removed FROM files f
  JOIN instances i ON i.id = f.instance_id WHERE i.name = 'acme-webex' AND f.name LIKE 'payments-%' ORDER BY path"

say "ServiceNow: an instance through the OAuth password grant of its integration user; a brute force on an admin locks them out"
sn=$(field servicenow servicenow 3)
CACHOST_SET_PASSWORD=$(cred servicenow password) CACHOST_SET_CLIENT_SECRET=$(cred servicenow client_secret) \
  "$BIN" instance add servicenow --name acme-servicenow --set instance=acme.service-now.com \
  --set username=$(cred servicenow username) --set client_id=$(cred servicenow client_id) --set base_url="$sn" \
  --set insecure_loopback=true </dev/null
"$BIN" instance connect acme-servicenow
"$BIN" sync acme-servicenow || true
"$BIN" policy mode bruteforce enforce
# suspend_user in ServiceNow is a lock-out (locked_out=true): the account keeps its roles and assignments
sn_admin=$("$BIN" query "SELECT email FROM users u JOIN instances i ON i.id = u.instance_id WHERE i.name = 'acme-servicenow'
  AND u.status = 'active' AND u.is_admin = 1 AND u.email LIKE '%@example.com' AND u.email <> 'admin@example.com'
  ORDER BY u.email LIMIT 1" --format csv | tail -n 1)
curl -s -X POST "$sn/_sandbox/bruteforce" -d "login=$sn_admin&failures=8" >/dev/null
"$BIN" sync acme-servicenow --stream activities --stream users
"$BIN" query "SELECT g.action, g.target, g.mode, g.result, u.status AS servicenow_status FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id JOIN users u ON u.instance_id = g.instance_id AND u.ext_id = g.target_id
  WHERE i.name = 'acme-servicenow' ORDER BY g.id"

say "an AWS account: public objects with keys or card numbers quarantined (private copy, tombstone) in their buckets' regions, the leaked access key deactivated"
"$BIN" sync acme-aws --stream files >/dev/null     # the next scan sees the quarantine
"$BIN" query "SELECT g.id, g.policy, g.action, g.target, g.mode, g.result FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-aws' ORDER BY g.id"
"$BIN" query "SELECT f.path, json_extract(unzstd(b.raw), '$.Region') AS region, f.access_level, f.quarantined FROM files f
  JOIN instances i ON i.id = f.instance_id JOIN files b ON b.instance_id = f.instance_id AND b.ext_id = f.parent_id
  WHERE i.name = 'acme-aws' AND f.deleted_at IS NULL AND f.parent_id IN ('acme-data', 'acme-eu-exports') ORDER BY f.path"
"$BIN" query "SELECT json_extract(unzstd(a.raw), '$.awsRegion') AS region, a.action, count(*) AS events FROM activities a
  JOIN instances i ON i.id = a.instance_id WHERE i.name = 'acme-aws' GROUP BY 1, 2 ORDER BY 1, 2"
"$BIN" query "SELECT g.user, g.ext_id AS access_key, CASE WHEN g.deleted_at IS NULL THEN 'active' ELSE 'deactivated' END AS state
  FROM app_grants g JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-aws' AND g.user = 'ops-automation'"
"$BIN" instance members acme-aws      # the organization's member accounts (--add: an instance for each)

say "an SSN file linked publicly in Dropbox: copied to the admin's quarantine folder, a tombstone in its place"
"$BIN" sync acme-dropbox --stream files >/dev/null     # the next scan sees the tombstones and the admin's copies
"$BIN" query "SELECT g.id, g.action, g.target, g.mode, g.result FROM governance_actions g
  JOIN instances i ON i.id = g.instance_id WHERE i.name = 'acme-dropbox' ORDER BY g.id"
"$BIN" query "SELECT path, owner, access_level, quarantined, deleted_at IS NOT NULL AS gone FROM files f
  JOIN instances i ON i.id = f.instance_id WHERE i.name = 'acme-dropbox'
  AND (f.quarantined = 1 OR f.name LIKE '%.quarantined.txt' OR f.path LIKE '/cachost quarantine/%') ORDER BY path"

say "a few recent sign-ins"
"$BIN" query "SELECT time, actor, outcome, ip, location FROM activities WHERE kind = 'signin' ORDER BY time DESC LIMIT 8"

say "next"
cat <<EOT
  CACHOST_HOME=$CACHOST_HOME $BIN repl        # then:  sql "SELECT * FROM users LIMIT 5"
  $BIN connectors                              # what each app can do
  $BIN help                                    # every command
  CACHOST_HOME=$CACHOST_HOME $BIN console user add me --role admin   # then, to look at it in a browser:
  CACHOST_HOME=$CACHOST_HOME $BIN run          # the daemon, with the web console on http://127.0.0.1:8788/
EOT
