#!/usr/bin/env bash
# Runs every test layer: the pure core (no PostgreSQL), then the #[pg_test]s in a backend.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

say "core unit tests (no PostgreSQL)"
cargo test -p pg_jwt_core

say "#[pg_test]s inside PostgreSQL $PG_MAJOR"
PGRX_DATA=/tmp/pgjwt-pgrx-data
mkdir -p "$PGRX_DATA"
chown postgres: "$PGRX_DATA" 2>/dev/null || $SUDO chown postgres: "$PGRX_DATA"
cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$PGRX_DATA"

say "client suite against a throwaway cluster and pgbouncer"
bash scripts/client-tests.sh
