#!/usr/bin/env bash
# The client suite (tests/client): installs the release build, starts a throwaway cluster and
# pgbouncer (transaction pooling) on loopback, runs the suite as a real client, stops both.
# PGJWT_CLIENT_TESTS="--test revocation" runs one file of the suite (default: all of them).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh

say "starting a throwaway cluster and pgbouncer for the client suite"
# The main cluster preloads pg_jwt, as the README requires. A second cluster ("nopreload")
# had pg_jwt installed while preloaded and was then restarted without it, with an HMAC key set
# in its configuration: the suite checks that the session path refuses there (55000) and that
# CREATE EXTENSION does too.
NOPRELOAD_PORT=${PGJWT_NOPRELOAD_PORT:-54332}
NOPRELOAD_DIR=$(mktemp -d /tmp/pgjwt-np.XXXXXX)
chmod 755 "$NOPRELOAD_DIR"
chown postgres: "$NOPRELOAD_DIR" 2>/dev/null || $SUDO chown postgres: "$NOPRELOAD_DIR"
stop_nopreload() {
    as_postgres "$PG_BIN/pg_ctl" -D "$NOPRELOAD_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$NOPRELOAD_DIR"
}
FETCH_PORT=${PGJWT_FETCH_PORT:-54333}
FETCH_DIR=$(mktemp -d /tmp/pgjwt-kf.XXXXXX)
chmod 755 "$FETCH_DIR"
chown postgres: "$FETCH_DIR" 2>/dev/null || $SUDO chown postgres: "$FETCH_DIR"
stop_fetch() {
    [ -z "${PGJWT_SHOW_FETCH_LOG:-}" ] || tail -n "${PGJWT_SHOW_FETCH_LOG}" "$FETCH_DIR/server.log" >&2
    if grep -E "terminated by signal" "$FETCH_DIR/server.log" >/dev/null 2>&1; then
        echo "a process crashed in the key-fetcher cluster:" >&2
        grep -E "terminated by signal" "$FETCH_DIR/server.log" >&2
        FETCH_CRASHED=1
    fi
    as_postgres "$PG_BIN/pg_ctl" -D "$FETCH_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$FETCH_DIR"
}
PGPORT=${PGJWT_TEST_PORT:-54331}
# pg_stat_statements too where this PostgreSQL has it: the token-hygiene check after the recipes.
PRELOAD=pg_jwt
[ -f "$("$PG_CONFIG" --pkglibdir)/pg_stat_statements.so" ] && PRELOAD=pg_jwt,pg_stat_statements
start_cluster "shared_preload_libraries = '$PRELOAD'
max_worker_processes = 8
max_parallel_workers = 4
log_min_messages = warning"
BOUNCER_PORT=${PGJWT_PGBOUNCER_PORT:-64331}
cleanup() {
    stop_pgbouncer
    if [ -n "${PGTMP:-}" ] && grep -E "terminated by signal|server process .* was terminated" "$PGTMP/server.log" >/dev/null 2>&1; then
        echo "a backend crashed during the client suite:" >&2
        grep -E "terminated by signal" "$PGTMP/server.log" >&2
        stop_cluster
        exit 1
    fi
    stop_cluster
}
trap 'stop_nopreload; stop_fetch; cleanup; [ -z "${FETCH_CRASHED:-}" ] || exit 1' EXIT

say "a third cluster for the key fetcher (preloaded; the tests set its key settings)"
as_postgres "$PG_BIN/initdb" -D "$FETCH_DIR/data" -U postgres -A trust --no-sync >"$FETCH_DIR/initdb.log" 2>&1
printf '%s\n' "listen_addresses = ''" "port = $FETCH_PORT" "unix_socket_directories = '$FETCH_DIR'" \
    "fsync = off" "log_min_messages = warning" "shared_preload_libraries = 'pg_jwt'" \
    | as_postgres tee -a "$FETCH_DIR/data/postgresql.conf" >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$FETCH_DIR/data" -l "$FETCH_DIR/server.log" -w start >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -h "$FETCH_DIR" -p "$FETCH_PORT" -d postgres <<'SQL'
CREATE ROLE app LOGIN;
CREATE DATABASE app;
\c app
CREATE EXTENSION pg_jwt;
SQL

say "a second cluster without shared_preload_libraries"
as_postgres "$PG_BIN/initdb" -D "$NOPRELOAD_DIR/data" -U postgres -A trust --no-sync >"$NOPRELOAD_DIR/initdb.log" 2>&1
printf '%s\n' "listen_addresses = ''" "port = $NOPRELOAD_PORT" "unix_socket_directories = '$NOPRELOAD_DIR'" \
    "fsync = off" "log_min_messages = warning" "include_if_exists = 'preload.conf'" \
    | as_postgres tee -a "$NOPRELOAD_DIR/data/postgresql.conf" >/dev/null
echo "shared_preload_libraries = 'pg_jwt'" | as_postgres tee "$NOPRELOAD_DIR/data/preload.conf" >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$NOPRELOAD_DIR/data" -l "$NOPRELOAD_DIR/server.log" -w start >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -h "$NOPRELOAD_DIR" -p "$NOPRELOAD_PORT" -d postgres <<'SQL'
CREATE ROLE app LOGIN;
CREATE DATABASE app;
\c app
CREATE EXTENSION pg_jwt;
ALTER SYSTEM SET pg_jwt.jwks = '{"keys":[{"kty":"oct","kid":"hs","alg":"HS256","k":"bm9wcmVsb2FkLXNlY3JldC1ub3ByZWxvYWQtc2VjcmV0LTEyMzQ1Njc4"}]}';
ALTER SYSTEM SET pg_jwt.issuer = 'https://issuer.test';
SQL
as_postgres rm -f "$NOPRELOAD_DIR/data/preload.conf"
as_postgres "$PG_BIN/pg_ctl" -D "$NOPRELOAD_DIR/data" -l "$NOPRELOAD_DIR/server.log" -w restart >/dev/null

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE DATABASE app;
DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN; END IF; END \$\$;
-- Databases in other encodings (claims must keep their meaning there).
CREATE DATABASE enc_euc_jp ENCODING 'EUC_JP' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE enc_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE enc_sql_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c app
CREATE EXTENSION pg_jwt;
SQL

start_pgbouncer app "$BOUNCER_PORT" 3

say "SQL golden files (pg_regress, tests/pg_regress)"
bash scripts/regress.sh

say "upgrade parity (tests/upgrade: the previous release's SQL, then ALTER EXTENSION UPDATE)"
bash scripts/upgrade-test.sh

say "streaming replica (a primary and a hot standby made by pg_basebackup -R)"
bash scripts/replica-test.sh

say "recording the checklist corpus (every token and key set of core/tests/checklist.rs)"
CORPUS=$PGTMP/checklist-corpus.jsonl
rm -f "$CORPUS"
PG_JWT_CHECKLIST_CORPUS=$CORPUS cargo test -q -p pg_jwt_core --test checklist >/dev/null
echo "$(wc -l <"$CORPUS") entries"

say "client suite (real client, non-superuser role, pgbouncer on 127.0.0.1:$BOUNCER_PORT)"
PGJWT_CHECKLIST_CORPUS=$CORPUS PGJWT_TEST_HOST=$PGTMP PGJWT_TEST_PORT=$PGPORT PGJWT_PGBOUNCER_PORT=$BOUNCER_PORT \
    PGJWT_NOPRELOAD_HOST=$NOPRELOAD_DIR PGJWT_NOPRELOAD_PORT=$NOPRELOAD_PORT \
    PGJWT_FETCH_HOST=$FETCH_DIR PGJWT_FETCH_PORT=$FETCH_PORT PGJWT_FETCH_DATA=$FETCH_DIR/data PGJWT_PG_BIN=$PG_BIN \
    cargo test --release -p pg_jwt_client_tests ${PGJWT_CLIENT_TESTS:---tests} -- --test-threads=1

say "client recipes (Python, Node.js, Rust) through pgbouncer"
cargo build --release -p pg_jwt_recipe_rust 2>&1 | tail -1
LOG_OFFSET=$(stat -c %s "$PGTMP/server.log")
if [ "$PRELOAD" != pg_jwt ]; then
    psql -X -q -d app -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
fi
BOUNCER_PORT=$BOUNCER_PORT bash scripts/recipes-test.sh
# The demo's form in psql (a literal in SELECT set_config, which pg_stat_statements normalizes).
psql -X -q -d app -U app -c "BEGIN" \
    -c "SELECT set_config('pg_jwt.token', '$(psql -X -At -d app -c "SELECT jwt_sign(jsonb_build_object('sub', 'hygiene', 'aud', current_setting('pg_jwt.audience'), 'iss', current_setting('pg_jwt.issuer'), 'exp', extract(epoch FROM now())::bigint + 600), key) FROM test_keys")', true) IS NULL" \
    -c "SELECT jwt_claim('sub')" -c "COMMIT" >/dev/null
say "the Prometheus recipe: prometheus-postgres-exporter with examples/monitoring/queries.yaml"
bash scripts/exporter-test.sh
say "token hygiene: no token (every compact JWS starts with eyJ) in pg_stat_statements or the server log"
bash scripts/hygiene-test.sh "$PRELOAD" "$PGTMP/server.log" "$LOG_OFFSET"
