#!/usr/bin/env bash
# The demo: builds and installs pg_jwt, starts a throwaway cluster (shared_preload_libraries =
# 'pg_jwt', as recommended), runs examples/demo.sql as a superuser that switches to the
# non-superuser role "app", and stops the cluster.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
say "starting a throwaway PostgreSQL cluster"
PGPORT=${PGJWT_DEMO_PORT:-54330}
start_cluster
trap stop_cluster EXIT
createdb demo
say "running examples/demo.sql"
PGDATABASE=demo psql -X -f examples/demo.sql 2>&1
say "demo finished; cluster stopped"
