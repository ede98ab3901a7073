#!/usr/bin/env bash
# Sign in with a token (PostgreSQL 18): pg_jwt as the OAuth validator of a throwaway cluster
# (oauth_validator_libraries = 'pg_jwt', pg_hba.conf lines with the oauth method), and a test
# client (tests/signin/client.c, built here against the wheel's libpq 18) that hands over a
# token minted here through libpq's auth-data hook. The provider publishes its keys over HTTPS on
# 127.0.0.1 (scripts/demo-idp.py, a CA minted here); the key fetcher fetches them.
# Prints a cargo-style result line.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ "$PG_MAJOR" = 18 ] || { echo "sign-in with a token is PostgreSQL 18 only" >&2; exit 2; }
work=$(mktemp -d /tmp/pgjwt-signin.XXXXXX)
chmod 755 "$work"
IDP_PID=""
passed=0
failed=0
check() { # name, ok (0/1), detail
    if [ "$2" = 0 ]; then passed=$((passed + 1)); else echo "signin: $1 FAILED: $3" >&2; failed=$((failed + 1)); fi
}
cc -Wall -o "$work/client" tests/signin/client.c -I"$("$PG_CONFIG" --includedir)" -L"$("$PG_CONFIG" --libdir)" -lpq \
    -Wl,-rpath,"$("$PG_CONFIG" --libdir)"

# The provider: a key set over HTTPS on 127.0.0.1.
IDP_PORT=${PGJWT_SIGNIN_IDP_PORT:-58445}
ISSUER="https://127.0.0.1:$IDP_PORT"
mkdir -p "$work/www"
mint_loopback_tls "$work" "pg_jwt sign-in test CA"

PGPORT=${PGJWT_SIGNIN_PORT:-54342}
start_cluster "shared_preload_libraries = 'pg_jwt'
oauth_validator_libraries = 'pg_jwt'
log_min_messages = warning
log_connections = off
pg_jwt.issuer = '$ISSUER'
pg_jwt.jwks_uri = '$ISSUER/jwks.json'
pg_jwt.jwks_ca_file = '$work/ca.pem'
pg_jwt.audience = 'db'
pg_jwt.leeway = 0
pg_jwt.jwks_min_refresh = 1
pg_jwt.role_claim = 'db_role'
pg_jwt.allowed_roles = 'analyst, admin_like, admin_member'"
trap '[ -z "$IDP_PID" ] || kill "$IDP_PID" 2>/dev/null; cp "$PGTMP/server.log" "${PGJWT_SIGNIN_LOG:-/dev/null}" 2>/dev/null; stop_cluster; rm -rf "$work"' EXIT
# pg_hba.conf: the superuser by trust (the test's own connection), everyone else by token.
# Database "app": identity mapped by pg_ident.conf (alice@example.com -> alice); database
# "deleg": pg_jwt decides the role (delegate_ident_mapping).
as_postgres tee "$PGTMP/data/pg_hba.conf" >/dev/null <<HBA
local all postgres trust
local deleg all oauth issuer="$ISSUER" scope="openid db" delegate_ident_mapping=1
local deleg2 all oauth issuer="https://other.test" scope="openid db" delegate_ident_mapping=1
local all all oauth issuer="$ISSUER" scope="openid db" map=okta
HBA
as_postgres tee "$PGTMP/data/pg_ident.conf" >/dev/null <<'IDENT'
okta /^(.*)@example\.com$ \1
IDENT
psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SELECT pg_reload_conf();
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE analyst LOGIN;
CREATE ROLE admin_like LOGIN BYPASSRLS;
CREATE ROLE admin_member LOGIN;
GRANT admin_like TO admin_member;
CREATE DATABASE app;
CREATE DATABASE deleg;
CREATE DATABASE deleg2;
\c app
CREATE EXTENSION pg_jwt;
CREATE TABLE notes (owner text, body text);
INSERT INTO notes VALUES ('alice@example.com', 'for alice'), ('bob@example.com', 'for bob');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON notes USING (owner = jwt_claim('sub'));
GRANT SELECT ON notes TO alice, bob;
GRANT pg_read_all_stats TO alice;
CREATE TABLE keys AS SELECT jwt_generate_jwk('ES256', 'k1') AS jwk, jwt_generate_jwk('ES256', 'other') AS stranger;
\c deleg
CREATE EXTENSION pg_jwt;
\c deleg2
CREATE EXTENSION pg_jwt;
SQL
psql -X -At -d app -c "SELECT jwt_public_jwks(jwk) FROM keys" >"$work/www/jwks.json"
python3 scripts/demo-idp.py "$work/www" "$IDP_PORT" "$work/server.pem" "$work/server.key" &
IDP_PID=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$IDP_PORT) 2>/dev/null && break
    sleep 0.1
done
for _ in $(seq 50); do
    [ "$(psql -X -At -d app -c "SELECT in_force FROM jwt_jwks_status()")" = t ] && break
    sleep 0.1
done

token() { # claims (JSON merged over the defaults), [key column]
    psql -X -At -d app -v claims="$1" -v col="${2:-jwk}" <<'SQL'
SELECT jwt_sign(jsonb_build_object('iss', current_setting('pg_jwt.issuer'), 'aud', 'db', 'scope', 'openid db email',
         'iat', floor(extract(epoch FROM now()))::bigint, 'exp', floor(extract(epoch FROM now()))::bigint + 600)
       || :'claims'::jsonb, :"col") FROM keys;
SQL
}
client() { # database, token, statements...
    local db=$1 t=$2
    shift 2
    "$work/client" "host=$PGHOST port=$PGPORT dbname=$db user=${SIGNIN_USER:-alice} oauth_issuer=${SIGNIN_ISSUER:-$ISSUER} oauth_client_id=test" "$t" "$@" 2>&1 || true
}
log_has() { grep -c -- "$1" "$PGTMP/server.log" 2>/dev/null || true; }

# 1. A good token: signed in as alice, the claims are the session's, for policies too.
alice=$(token '{"sub": "alice@example.com"}')
out=$(client app "$alice" "SELECT current_user, system_user, jwt_claim('sub'), jwt_provider()" "SELECT count(*), min(body) FROM notes")
check "a good token signs in; identity through pg_ident.conf; claims for policies" \
    "$([ "$(echo "$out" | head -1)" = "OK alice|oauth:alice@example.com|alice@example.com|default" ] && [ "$(echo "$out" | sed -n 2p)" = "OK 1|for alice" ] && echo 0 || echo 1)" "$out"
# A sign-in counts one acceptance in jwt_stats(), however many statements follow.
accepted() { psql -X -At -d app -c "SELECT coalesce(sum(count), 0) FROM jwt_stats() WHERE provider = 'default' AND outcome = 'accepted'"; }
before=$(accepted)
out=$(client app "$alice" "SELECT jwt_claim('sub')" "SELECT jwt_claim('sub')")
after=$(accepted)
check "a sign-in counts one acceptance in jwt_stats()" \
    "$([ "$((after - before))" = 1 ] && echo 0 || echo 1)" "$before -> $after: $out"
# 2. The session cannot replace its claims.
out=$(client app "$alice" "SELECT set_config('pg_jwt.token', 'x.y.z', true)" "SET pg_jwt.token = 'x.y.z'" "SELECT jwt_claim('sub')")
check "pg_jwt.token cannot be set in a signed-in session (42501)" \
    "$([ "$(echo "$out" | cut -d' ' -f1-2 | head -2 | tr '\n' ' ')" = "ERROR 42501 ERROR 42501 " ] && [ "$(echo "$out" | sed -n 3p)" = "OK alice@example.com" ] && echo 0 || echo 1)" "$out"
# RESET, DISCARD ALL and transaction control keep the session's token.
out=$(client app "$alice" "RESET pg_jwt.token" "DISCARD ALL" "SELECT jwt_claim('sub'), current_setting('pg_jwt.token') = '$alice'" \
    "BEGIN ISOLATION LEVEL REPEATABLE READ" "SELECT jwt_claim('sub')" "COMMIT" \
    "BEGIN" "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE" "SELECT jwt_claim('sub')" "COMMIT")
check "RESET, DISCARD ALL and isolation levels keep the signed-in token" \
    "$([ "$(echo "$out" | sed -n 3p)" = "OK alice@example.com|t" ] && [ "$(echo "$out" | grep -c '^OK')" = 10 ] && echo 0 || echo 1)" "$out"
# 3. Refused tokens: the client sees an authentication failure, the log the reason (never the token).
refused() { # name, token, log words, [database]
    local out
    out=$(client "${4:-app}" "$2" "SELECT 1")
    check "refused: $1" "$(echo "$out" | grep -q '^CONNFAIL' && echo 0 || echo 1)" "$out"
    check "refused: $1: the reason in the log" "$([ "$(log_has "pg_jwt: sign-in refused: .*$3")" -ge 1 ] && echo 0 || echo 1)" "$(tail -3 "$PGTMP/server.log")"
}
refused "wrong issuer" "$(token '{"sub": "alice@example.com", "iss": "https://evil.test"}')" "issuer mismatch"
refused "wrong audience" "$(token '{"sub": "alice@example.com", "aud": "other"}')" "audience mismatch"
refused "bad signature" "$(token '{"sub": "alice@example.com"}' stranger | sed 's/\.[^.]*$/.AAAA/')" "invalid signature\|malformed\|no matching key"
refused "unknown key" "$(token '{"sub": "alice@example.com"}' stranger)" "no matching key"
refused "expired" "$(token '{"sub": "alice@example.com", "exp": 1000000000}')" "token expired"
refused "missing scope" "$(token '{"sub": "alice@example.com", "scope": "openid"}')" "scope \"db\""
refused "no identity claim" "$(token '{"email": "alice@example.com"}')" "to identify the user"
check "the log never holds a token" "$([ "$(grep -F -c -- "$(echo "$alice" | cut -d. -f3)" "$PGTMP/server.log" || true)" = 0 ] && echo 0 || echo 1)" "$(grep -F -- "$(echo "$alice" | cut -d. -f3)" "$PGTMP/server.log" | head -2 | cut -c1-300)"
# 4. Delegated role: the token's role claim, listed in pg_jwt.allowed_roles, never a BYPASSRLS role.
out=$(SIGNIN_USER=analyst client deleg "$(token '{"sub": "carol", "db_role": "analyst"}')" "SELECT current_user, system_user")
check "delegate_ident_mapping: the role claim decides" "$([ "$out" = "OK analyst|oauth:carol" ] && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=bob client deleg "$(token '{"sub": "carol", "db_role": "analyst"}')" "SELECT 1")
check "delegate_ident_mapping: another role than the claim's is refused" "$(echo "$out" | grep -q '^CONNFAIL' && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=bob client deleg "$(token '{"sub": "carol", "db_role": "bob"}')" "SELECT 1")
check "delegate_ident_mapping: a role not in pg_jwt.allowed_roles is refused" "$(echo "$out" | grep -q '^CONNFAIL' && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=admin_like client deleg "$(token '{"sub": "carol", "db_role": "admin_like"}')" "SELECT 1")
check "delegate_ident_mapping: a BYPASSRLS role is refused at sign-in" \
    "$(echo "$out" | grep -q '^CONNFAIL' && [ "$(log_has "pg_jwt: sign-in refused: the requested role is a superuser, or has BYPASSRLS")" -ge 1 ] && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=admin_member client deleg "$(token '{"sub": "carol", "db_role": "admin_member"}')" "SELECT 1")
check "delegate_ident_mapping: a member of a BYPASSRLS role ends the session at its first statement" \
    "$(echo "$out" | grep -q "^GONE.*the session's token is no longer accepted: the token's role has the privileges" && echo 0 || echo 1)" "$out"
# A fast-path call (PQfn: no statement, so no planner or executor) is checked too, before it
# runs: a member of a BYPASSRLS role cannot call a function that way before its first statement.
version_oid=$(psql -X -At -d postgres -c "SELECT 'pg_catalog.version()'::regprocedure::oid")
out=$(SIGNIN_USER=admin_member client deleg "$(token '{"sub": "carol", "db_role": "admin_member"}')" "FASTPATH $version_oid")
check "delegate_ident_mapping: a member of a BYPASSRLS role cannot make a fast-path call either" \
    "$(echo "$out" | grep -q "^GONE.*the session's token is no longer accepted: the token's role has the privileges" && echo 0 || echo 1)" "$out"
# Nor SET ROLE into the BYPASSRLS role it is a member of, as its first statement (SET is not
# otherwise checked, so that it can come before SET TRANSACTION).
out=$(SIGNIN_USER=admin_member client deleg "$(token '{"sub": "carol", "db_role": "admin_member"}')" "SET ROLE admin_like" "SELECT current_user")
check "delegate_ident_mapping: a member of a BYPASSRLS role cannot SET ROLE into it first" \
    "$(echo "$out" | head -1 | grep -q "^GONE.*the session's token is no longer accepted: the token's role has the privileges" && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=analyst client deleg "$(token '{"sub": "carol", "db_role": "analyst"}')" "FASTPATH $version_oid" "SELECT current_user")
check "a fast-path call of a good session runs" \
    "$(echo "$out" | head -1 | grep -q '^OK PostgreSQL 18' && [ "$(echo "$out" | sed -n 2p)" = "OK analyst" ] && echo 0 || echo 1)" "$out"
# A reload that takes the role out of pg_jwt.allowed_roles ends a live delegated session at its
# next statement.
(SIGNIN_USER=analyst client deleg "$(token '{"sub": "carol", "db_role": "analyst"}')" "SELECT current_user" "SLEEP 3" "SELECT current_user" >"$work/unlisted.out") &
live=$!
sleep 1.5
psql -X -q -d postgres -c "ALTER SYSTEM SET pg_jwt.allowed_roles = 'admin_like, admin_member'" -c "SELECT pg_reload_conf()" >/dev/null
wait "$live"
psql -X -q -d postgres -c "ALTER SYSTEM RESET pg_jwt.allowed_roles" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
out=$(cat "$work/unlisted.out")
check "a reload that takes a delegated role out of pg_jwt.allowed_roles ends its live session" \
    "$([ "$(echo "$out" | head -1)" = "OK analyst" ] && echo "$out" | sed -n 2p | grep -q "^GONE.*no longer in pg_jwt.allowed_roles" && echo 0 || echo 1)" "$out"
# A listed provider's tokens sign in only as the roles of its own allowed_roles (S33), never as
# those pg_jwt.allowed_roles lists for the provider default's users.
providers() { # the list's JSON
    psql -X -q -d postgres -v list="$1" >/dev/null <<'SQL'
ALTER SYSTEM SET pg_jwt.providers = :'list';
SELECT pg_reload_conf();
SQL
    sleep 0.5
}
other_jwks=$(psql -X -At -d app -c "SELECT jwt_public_jwks(stranger) FROM keys")
other=$(token '{"iss": "https://other.test", "sub": "dave", "db_role": "analyst"}' stranger)
providers "[{\"name\": \"other\", \"issuer\": \"https://other.test\", \"audience\": \"db\", \"jwks\": $other_jwks}]"
out=$(SIGNIN_USER=analyst SIGNIN_ISSUER=https://other.test client deleg2 "$other" "SELECT current_user")
check "delegate_ident_mapping: a listed provider without allowed_roles signs in as none of pg_jwt.allowed_roles" \
    "$(echo "$out" | grep -q '^CONNFAIL' && [ "$(log_has "sign-in refused: the requested role is not in the allowed_roles of the token's provider")" -ge 1 ] && echo 0 || echo 1)" "$out"
providers "[{\"name\": \"other\", \"issuer\": \"https://other.test\", \"audience\": \"db\", \"jwks\": $other_jwks, \"allowed_roles\": [\"analyst\"]}]"
out=$(SIGNIN_USER=analyst SIGNIN_ISSUER=https://other.test client deleg2 "$other" "SELECT current_user, jwt_provider()")
check "delegate_ident_mapping: a listed provider signs in as a role of its own allowed_roles" \
    "$([ "$out" = "OK analyst|other" ] && echo 0 || echo 1)" "$out"
psql -X -q -d postgres -c "ALTER SYSTEM RESET pg_jwt.providers" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
# 5. Expiry: an idle session is ended by a timer at exp; so is one whose timer an error
#    disabled (error recovery disables every timeout; the abort re-arms it).
short=$(token '{"sub": "alice@example.com", "exp": '"$(($(date +%s) + 3))"'}')
out=$(client app "$short" "SELECT jwt_claim('sub')" "SLEEP 5" "SELECT 1")
check "a session whose token expires is ended" \
    "$([ "$(echo "$out" | head -1)" = "OK alice@example.com" ] && echo "$out" | sed -n 2p | grep -q '^GONE' && echo 0 || echo 1)" "$out"
short=$(token '{"sub": "alice@example.com", "exp": '"$(($(date +%s) + 3))"'}')
out=$(client app "$short" "SELECT jwt_claim('sub')" "SELECT 1/0" "SLEEP 5" "SELECT 1")
check "a session whose token expires after an error is ended too" \
    "$(echo "$out" | sed -n 2p | grep -q '^ERROR 22012' && echo "$out" | sed -n 3p | grep -q '^GONE' && echo 0 || echo 1)" "$out"
# An error inside a savepoint aborts only the subtransaction (after error recovery disabled
# every timeout): the idle session still ends at its token's expiry, not at its next statement.
short=$(token '{"sub": "alice@example.com", "exp": '"$(($(date +%s) + 3))"'}')
(client app "$short" "BEGIN" "SAVEPOINT s" "SELECT 1/0" "SLEEP 7" "SELECT 1" >"$work/savepoint.out") &
held=$!
sleep 5.5
left=$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND datname = 'app'")
wait "$held"
check "an idle session whose error was inside a savepoint is ended at its token's expiry" \
    "$([ "$left" = 0 ] && echo 0 || echo 1)" "sessions left: $left; $(cat "$work/savepoint.out")"
# 6. Revocation ends a live session at its next statement.
bob=$(token '{"sub": "bob@example.com", "jti": "bob-1"}')
(SIGNIN_USER=bob client app "$bob" "SELECT jwt_claim('sub')" "SLEEP 3" "SELECT count(*) FROM notes" >"$work/revoked.out") &
live=$!
sleep 1.5
psql -X -q -d app -c "SELECT jwt_revoke_token('bob-1')" >/dev/null
wait "$live"
out=$(cat "$work/revoked.out")
check "a revocation ends a live session at its next statement (28000)" \
    "$([ "$(echo "$out" | head -1)" = "OK bob@example.com" ] && echo "$out" | sed -n 2p | grep -q "^GONE.*no longer accepted: pg_jwt: token revoked" && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=bob client app "$bob" "SELECT 1")
check "a revoked token signs in but ends at its first statement" "$(echo "$out" | grep -q "^GONE.*token revoked" && echo 0 || echo 1)" "$out"
out=$(SIGNIN_USER=bob client app "$bob" "FASTPATH $version_oid")
check "a revoked token signs in but ends at its first fast-path call" "$(echo "$out" | grep -q "^GONE.*token revoked" && echo 0 || echo 1)" "$out"
# 7. 200 sign-ins in a row: each backend starts with the same memory.
first=""
last=""
for i in $(seq 200); do
    m=$(client app "$alice" "SELECT sum(total_bytes) FROM pg_backend_memory_contexts" | sed -nE 's/^OK ([0-9]+)$/\1/p')
    [ -n "$first" ] || first=$m
    last=$m
done
check "200 sign-ins: backend memory flat (first $first, last $last bytes)" \
    "$([ -n "$first" ] && [ -n "$last" ] && [ $((last - first)) -le 65536 ] && [ $((first - last)) -le 65536 ] && echo 0 || echo 1)" "first $first, last $last"
echo "test result: $([ "$failed" = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (sign-in with a token, PostgreSQL 18)"
[ "$failed" = 0 ]
