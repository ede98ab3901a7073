#!/usr/bin/env bash
# Runs every test layer: the pure core (no PostgreSQL), the #[pg_test]s in a backend, the SQL
# golden files and the client suite against a throwaway cluster and pgbouncer. Ends with one
# summary line.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
LOG=$(mktemp /tmp/pgjwt-test.XXXXXX.log)

say "core unit tests (no PostgreSQL)"
cargo test -p pg_jwt_core --lib --tests --benches 2>&1 | tee -a "$LOG"

say "the SQL benchmark runner compiles (it runs with make bench)"
cargo build --release -p pg_jwt_bench 2>&1 | tail -1

say "#[pg_test]s inside PostgreSQL $PG_MAJOR ($PG_CONFIG)"
PGRX_DATA=/tmp/pgjwt-pgrx-data-$PG_MAJOR
mkdir -p "$PGRX_DATA"
chown postgres: "$PGRX_DATA" 2>/dev/null || $SUDO chown postgres: "$PGRX_DATA"
cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$PGRX_DATA" 2>&1 | tee -a "$LOG"

say "SQL golden files and the client suite, against a throwaway cluster and pgbouncer"
bash scripts/client-tests.sh 2>&1 | tee -a "$LOG"

say "the installable package: built, installed into a fresh PostgreSQL $PG_MAJOR, golden files"
bash scripts/package-test.sh 2>&1 | tee -a "$LOG"

if [ "$PG_MAJOR" = 18 ]; then
    say "sign in with a token: pg_jwt as the OAuth validator, a libpq 18 client"
    bash scripts/signin-test.sh 2>&1 | tee -a "$LOG"
fi

if [ "$PG_MAJOR" = 15 ]; then
    say "the Debian package: make deb, dpkg -i into the system PostgreSQL 15, golden files, dpkg -r"
    bash scripts/deb-test.sh 2>&1 | tee -a "$LOG"
fi

say "summary"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$LOG"
rm -f "$LOG"
