#!/usr/bin/env bash
# The client suite (tests/client): installs the release build, starts a throwaway cluster and
# pgbouncer (transaction pooling) on loopback, runs the suite as a real client, stops both.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh

say "starting a throwaway cluster and pgbouncer for the client suite"
# No shared_preload_libraries here: database app preloads pg_jwt per session, database lazy
# does not (checklist F2 needs a backend where the library is not loaded yet).
PGPORT=${PGJWT_TEST_PORT:-54331}
start_cluster "max_worker_processes = 8
max_parallel_workers = 4
log_min_messages = warning"
BOUNCER_PORT=${PGJWT_PGBOUNCER_PORT:-64331}
cleanup() {
    if [ -f "$PGTMP/pgbouncer.pid" ]; then kill "$(cat "$PGTMP/pgbouncer.pid")" 2>/dev/null || true; sleep 0.2; fi
    if [ -n "${PGTMP:-}" ] && grep -E "terminated by signal|server process .* was terminated" "$PGTMP/server.log" >/dev/null 2>&1; then
        echo "a backend crashed during the client suite:" >&2
        grep -E "terminated by signal" "$PGTMP/server.log" >&2
        stop_cluster
        exit 1
    fi
    stop_cluster
}
trap cleanup EXIT

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE DATABASE app;
CREATE DATABASE lazy;
ALTER DATABASE app SET session_preload_libraries = 'pg_jwt';
\c lazy
DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN; END IF; END \$\$;
CREATE EXTENSION pg_jwt;
\c app
CREATE EXTENSION pg_jwt;
SQL

cat <<INI | as_postgres tee "$PGTMP/pgbouncer.ini" >/dev/null
[databases]
app = host=$PGTMP port=$PGPORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PGTMP/userlist.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
logfile = $PGTMP/pgbouncer.log
pidfile = $PGTMP/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
INI
echo '"app" ""' | as_postgres tee "$PGTMP/userlist.txt" >/dev/null
as_postgres /usr/sbin/pgbouncer -d -q "$PGTMP/pgbouncer.ini"
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$BOUNCER_PORT) 2>/dev/null && break
    sleep 0.1
done

say "SQL golden files (pg_regress, tests/pg_regress)"
bash scripts/regress.sh

say "client suite (real client, non-superuser role, pgbouncer on 127.0.0.1:$BOUNCER_PORT)"
PGJWT_TEST_HOST=$PGTMP PGJWT_TEST_PORT=$PGPORT PGJWT_PGBOUNCER_PORT=$BOUNCER_PORT \
    cargo test --release -p pg_jwt_client_tests --test client -- --test-threads=1
