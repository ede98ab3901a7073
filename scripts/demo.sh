#!/usr/bin/env bash
# The demo: builds and installs pg_jwt, starts a throwaway cluster, signs and verifies tokens.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
say "starting a throwaway PostgreSQL cluster"
start_cluster
trap stop_cluster EXIT
psql -X -q -v ON_ERROR_STOP=0 -f examples/verify.sql
