#!/usr/bin/env bash
# The streaming-replica test: a throwaway primary (preloading pg_jwt) and a hot standby made by
# pg_basebackup -R, both on unix sockets. Checks that the standby gives the same rows for the
# same token, that a revocation committed on the primary is honoured on the standby once
# replayed (and how soon), that the standby never answers from the revocation filter (rows
# arrive there without triggers), that key settings set by ALTER SYSTEM do not replicate, that
# a revocation applied by logical replication and one replayed at a promotion take effect.
# Needs the current build installed. Prints a cargo-style result line for the summary.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
set +e
PGPORT=${PGJWT_PRIMARY_PORT:-54335}
STANDBY_PORT=${PGJWT_STANDBY_PORT:-54336}
start_cluster "shared_preload_libraries = 'pg_jwt'
wal_level = logical
log_min_messages = warning"
STANDBY=$(mktemp -d /tmp/pgjwt-sb.XXXXXX)
chmod 755 "$STANDBY"
chown postgres: "$STANDBY" 2>/dev/null || $SUDO chown postgres: "$STANDBY"
cleanup() {
    as_postgres "$PG_BIN/pg_ctl" -D "$STANDBY/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$STANDBY"
    stop_cluster
}
trap cleanup EXIT
passed=0
failed=0
check() { # name, expected, actual
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
        echo "replica: $1 ... ok"
    else
        failed=$((failed + 1))
        echo "replica: $1 ... FAILED (expected '$2', got '$3')" >&2
    fi
}
primary() { psql -X -At -q -d app "$@"; }
standby() { psql -X -At -q -h "$STANDBY" -p "$STANDBY_PORT" -d app "$@"; }
# The SQLSTATE (or "ok:<result>") of a query run as the application role with a token.
as_app() { # where (primary|standby), token, query
    local out
    out=$("$1" -U app -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "BEGIN" \
        -c "SELECT set_config('pg_jwt.token', '$2', true)" -c "$3" 2>&1 >/dev/null)
    if [ -z "$out" ]; then
        echo "ok:$("$1" -U app -c "BEGIN" -c "SELECT set_config('pg_jwt.token', '$2', true) IS NULL" -c "$3" | tail -1)"
    else
        sed -nE 's/^ERROR:  ([0-9A-Z]{5}):.*/\1/p' <<<"$out" | head -1
    fi
}

say "replica: a primary and a streaming hot standby"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE ROLE app LOGIN;
CREATE DATABASE app;
\c app
CREATE EXTENSION pg_jwt;
CREATE TABLE keys AS SELECT jwt_generate_jwk('ES256', 'k1') AS k1, jwt_generate_jwk('ES256', 'k2') AS k2;
SELECT jwt_public_jwks(k1)::text AS jwks FROM keys \gset
ALTER SYSTEM SET pg_jwt.jwks = :'jwks';
SELECT pg_reload_conf() \gset
CREATE TABLE docs (tenant_id uuid, body text);
INSERT INTO docs SELECT ('00000000-0000-0000-0000-00000000000' || (g % 3))::uuid, 'doc ' || g FROM generate_series(1, 300) g;
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON docs USING (tenant_id = jwt_claim_uuid('tenant_id'));
GRANT SELECT ON docs TO app;
SQL
sign() { # key column, tenant digit, jti
    primary -c "SELECT jwt_sign(jsonb_build_object('sub', 'replica-user', 'jti', '$3',
        'tenant_id', '00000000-0000-0000-0000-00000000000$2', 'exp', extract(epoch FROM now())::bigint + 600), $1) FROM keys"
}
T1=$(sign k1 1 replica-jti-1)
T2=$(sign k1 2 replica-jti-2)
start_standby "$PGTMP" "$PGPORT" "$STANDBY" "$STANDBY_PORT"
check "the standby is in recovery" "t" "$(standby -c "SELECT pg_is_in_recovery()")"

q="SELECT count(*) || ':' || count(DISTINCT tenant_id) FROM docs"
check "same rows on the standby for the same token (tenant 1)" "$(as_app primary "$T1" "$q")" "$(as_app standby "$T1" "$q")"
check "same rows on the standby for the same token (tenant 2)" "$(as_app primary "$T2" "$q")" "$(as_app standby "$T2" "$q")"
check "the rows are the tenant's" "ok:100:1" "$(as_app standby "$T1" "$q")"

# A revocation on the primary: refused on the standby once replayed. Time it.
start_ns=$(date +%s%N)
primary -c "SELECT jwt_revoke_token('replica-jti-1', now() + interval '1 hour')" >/dev/null
state=""
for _ in $(seq 100); do
    state=$(as_app standby "$T1" "$q")
    [ "$state" = "28000" ] && break
    sleep 0.05
done
ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
check "a revocation committed on the primary is honoured on the standby" "28000" "$state"
echo "replica: revocation effective on the standby after ${ms} ms (commit to refusal, including psql start-ups)"
echo "$ms" >"${PGJWT_REPLICA_MS_FILE:-/dev/null}"
check "other tokens still work on the standby" "ok:100:1" "$(as_app standby "$T2" "$q")"
check "the standby answers without the filter (rows replayed without triggers)" "0" \
    "$(standby -U app -c "BEGIN" -c "SELECT set_config('pg_jwt.token', '$T2', true) IS NULL" \
        -c "SELECT count(*) FROM docs" -c "SELECT jwt_cache_stats()->>'revocation_filtered'" | tail -1)"
primary -c "SELECT jwt_unrevoke('jti', 'replica-jti-1')" >/dev/null
for _ in $(seq 100); do
    [ "$(as_app standby "$T1" "$q")" = "ok:100:1" ] && break
    sleep 0.05
done
check "an unrevoke is honoured on the standby too" "ok:100:1" "$(as_app standby "$T1" "$q")"

# Key settings are server configuration: ALTER SYSTEM on the primary does not reach the standby.
T3=$(sign k2 1 replica-jti-3)
primary -c "SELECT jwt_public_jwks(jsonb_build_object('keys', jsonb_build_array(k1, k2)))::text FROM keys" >"$STANDBY/both.jwks"
psql -X -q -d app -c "ALTER SYSTEM SET pg_jwt.jwks = '$(cat "$STANDBY/both.jwks")'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
check "the primary accepts a token of the new key" "ok:100:1" "$(as_app primary "$T3" "$q")"
check "the standby does not know the new key (ALTER SYSTEM does not replicate)" "28000" "$(as_app standby "$T3" "$q")"
psql -X -q -h "$STANDBY" -p "$STANDBY_PORT" -d app -c "ALTER SYSTEM SET pg_jwt.jwks = '$(cat "$STANDBY/both.jwks")'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
check "the same ALTER SYSTEM on the standby makes it accept the token" "ok:100:1" "$(as_app standby "$T3" "$q")"

# Issue 20, item 10: a provider that accepts connections and never answers must not delay
# revocations on the standby (the key fetcher's HTTPS runs on a thread of its own; before, the
# replay watcher waited for it, up to 10 s per attempt). The pinned set keeps tokens verifying.
HANG_PORT_FILE="$STANDBY/hang.port"
python3 - "$HANG_PORT_FILE" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(1)
held, end = [], time.time() + 60
while time.time() < end:
    try:
        held.append(s.accept()[0])  # accepted, never answered
    except socket.timeout:
        pass
PY
HANG_PID=$!
for _ in $(seq 50); do [ -s "$HANG_PORT_FILE" ] && break; sleep 0.1; done
psql -X -q -h "$STANDBY" -p "$STANDBY_PORT" -d app -c "ALTER SYSTEM SET pg_jwt.jwks_uri = 'https://127.0.0.1:$(cat "$HANG_PORT_FILE")/jwks'" \
    -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
start_ns=$(date +%s%N)
primary -c "SELECT jwt_revoke_token('replica-jti-2', now() + interval '1 hour')" >/dev/null
state=""
for _ in $(seq 100); do
    state=$(as_app standby "$T2" "$q")
    [ "$state" = "28000" ] && break
    sleep 0.05
done
ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
echo "replica: revocation effective on the standby after ${ms} ms while its provider hangs"
check "a revocation reaches the standby while its key provider hangs" "28000" "$state"
check "... well inside one HTTPS timeout (10 s): under 5 s" "yes" "$([ "$ms" -lt 5000 ] && echo yes || echo "no: $ms ms")"
check "the fetch to the hanging provider was attempted" "t" \
    "$(standby -c "SELECT last_attempt IS NOT NULL OR next_refresh IS NOT NULL FROM jwt_jwks_status()")"
psql -X -q -h "$STANDBY" -p "$STANDBY_PORT" -d app -c "ALTER SYSTEM RESET pg_jwt.jwks_uri" -c "SELECT pg_reload_conf()" >/dev/null
kill "$HANG_PID" 2>/dev/null || true

# Logical replication (review of 0.3.0): jwt_revocations published by database app, subscribed
# by app2 of the same cluster. The apply worker fires row triggers only; its commit must void
# the verdicts cached in app2's backends as a local revocation does. (The subscription is
# disabled while the publisher commits: in one cluster, the publisher's own commit would move
# the shared generation and hide a missing bump.)
primary -c "CREATE PUBLICATION revs FOR TABLE jwt_revocations" -c "SELECT pg_create_logical_replication_slot('revs', 'pgoutput')" >/dev/null
psql -X -q -c "CREATE DATABASE app2" >/dev/null
psql -X -q -d app2 -c "CREATE EXTENSION pg_jwt" \
    -c "CREATE SUBSCRIPTION revs CONNECTION 'host=$PGHOST port=$PGPORT dbname=app user=postgres' PUBLICATION revs WITH (create_slot = false, slot_name = 'revs', copy_data = false)" >/dev/null
T5=$(sign k1 1 replica-jti-5)
out=$(psql -X -At -q -d app2 -U app -v token="$T5" 2>&1 <<SQL
SELECT set_config('pg_jwt.token', :'token', false) IS NULL;
SELECT jwt_claim('sub');
\! psql -X -q -d app2 -c "ALTER SUBSCRIPTION revs DISABLE" >/dev/null
\! psql -X -q -d app -c "SELECT jwt_revoke_token('replica-jti-5', now() + interval '1 hour')" >/dev/null
SELECT jwt_claim('sub');
\! psql -X -q -d app2 -c "ALTER SUBSCRIPTION revs ENABLE" >/dev/null
\! for i in \$(seq 100); do [ "\$(psql -X -At -d app2 -c "SELECT count(*) FROM jwt_revocations")" = 1 ] && break; sleep 0.1; done
\set VERBOSITY verbose
SELECT jwt_claim('sub');
SQL
)
check "logical replication: a revocation applied by the subscription refuses the session's cached token" \
    "f replica-user replica-user 28000" \
    "$(echo "$out" | sed -nE 's/^ERROR:  ([0-9A-Z]{5}):.*/\1/p; /^(f|replica-user)$/p' | tr '\n' ' ' | sed 's/ $//')"
psql -X -q -d app2 -c "ALTER SUBSCRIPTION revs DISABLE" -c "ALTER SUBSCRIPTION revs SET (slot_name = NONE)" -c "DROP SUBSCRIPTION revs" >/dev/null
primary -c "SELECT pg_drop_replication_slot('revs')" >/dev/null 2>&1 || true

# A promotion (review of 0.3.0): revocations replayed between the key fetcher's last turn in
# recovery and the end of recovery (here a paused replay's backlog) reach the sessions of the
# promoted server. Last: the standby is a primary afterwards.
T6=$(sign k1 2 replica-jti-6)
out=$(psql -X -At -q -h "$STANDBY" -p "$STANDBY_PORT" -d app -U app -v token="$T6" 2>&1 <<SQL
SELECT set_config('pg_jwt.token', :'token', false) IS NULL;
SELECT jwt_claim('sub');
\! psql -X -q -h "$STANDBY" -p "$STANDBY_PORT" -d app -c "SELECT pg_wal_replay_pause()" >/dev/null
\! psql -X -q -d app -c "SELECT jwt_revoke_token('replica-jti-6', now() + interval '1 hour')" >/dev/null
\! sleep 0.5
SELECT jwt_claim('sub');
\! psql -X -q -h "$STANDBY" -p "$STANDBY_PORT" -d app -c "SELECT pg_promote(true)" >/dev/null
\! sleep 1.5
\set VERBOSITY verbose
SELECT pg_is_in_recovery();
SELECT jwt_claim('sub');
SQL
)
check "promotion: a revocation replayed at the end of recovery refuses the session's cached token" \
    "f replica-user replica-user f 28000" \
    "$(echo "$out" | sed -nE 's/^ERROR:  ([0-9A-Z]{5}):.*/\1/p; /^(f|replica-user)$/p' | tr '\n' ' ' | sed 's/ $//')"

if grep -E "terminated by signal" "$PGTMP/server.log" "$STANDBY/server.log" >&2; then
    check "no process crashed" "none" "crash"
fi
if [ "$failed" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (streaming replica)"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (streaming replica)"
    exit 1
fi
