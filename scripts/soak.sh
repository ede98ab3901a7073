#!/usr/bin/env bash
# make soak: pg_jwt under long, mixed load (not part of make test or CI). A throwaway cluster
# that preloads pg_jwt and pgbouncer in transaction pooling on loopback; the soak client
# (tests/client/src/bin/soak.rs) runs tenant transactions as a non-superuser for
# SOAK_SECONDS (default 600) over thousands of distinct tokens, with a key rotation every
# SOAK_ROTATE seconds (ALTER SYSTEM + reload), expiring, changed and garbage tokens,
# savepoints, pg_cancel_backend and pg_terminate_backend, and samples every backend's memory.
# Passes when the client's checks hold (0 cross-tenant rows, expected outcome of every token,
# only documented or induced SQLSTATEs, memory flat after warm-up) and the server log shows
# no crash. Writes the figures to BENCHMARKS.md (section "Soak"; SOAK_NO_WRITE=1 to skip).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
say "building the soak client"
cargo build --release -q -p pg_jwt_client_tests --bin soak

PGPORT=${PGJWT_SOAK_PORT:-54340}
BOUNCER_PORT=${PGJWT_SOAK_BOUNCER_PORT:-64340}
start_cluster "shared_preload_libraries = 'pg_jwt'
max_connections = 60
# LOG ranks above ERROR in the server log: crashes and restarts are logged, the hundreds of
# thousands of expected refusals are not.
log_min_messages = log
pg_jwt.leeway = 0"
RESULT=$(mktemp -d /tmp/pgjwt-soak.XXXXXX)
finish() {
    stop_pgbouncer
    stop_cluster
    rm -rf "$RESULT"
}
trap finish EXIT

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE ROLE app LOGIN;
CREATE DATABASE soak;
\c soak
CREATE EXTENSION pg_jwt;
ALTER ROLE app SET statement_timeout = '60s';
CREATE TABLE docs (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, body text NOT NULL);
INSERT INTO docs SELECT g, ('00000000-0000-4000-8000-' || lpad((g % 8)::text, 12, '0'))::uuid, 'doc ' || g
  FROM generate_series(1, 4000) g;
CREATE INDEX ON docs (tenant_id);
CREATE TABLE events (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, note text);
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_docs ON docs USING (tenant_id = jwt_claim_uuid('tenant_id'));
CREATE POLICY tenant_events ON events USING (tenant_id = jwt_claim_uuid('tenant_id'))
  WITH CHECK (tenant_id = jwt_claim_uuid('tenant_id'));
GRANT SELECT ON docs TO app;
GRANT SELECT, INSERT ON events TO app;
GRANT USAGE ON SEQUENCE events_id_seq TO app;
-- The soak client reads its own backend's memory contexts (superuser-only by default).
GRANT SELECT ON pg_backend_memory_contexts TO app;
GRANT EXECUTE ON FUNCTION pg_get_backend_memory_contexts() TO app;
ANALYZE docs;
SQL

start_pgbouncer soak "$BOUNCER_PORT" 2

say "soak: ${SOAK_SECONDS:-600} s"
status=0
PGJWT_SOAK_HOST=$PGTMP PGJWT_SOAK_PORT=$PGPORT PGJWT_SOAK_BOUNCER_PORT=$BOUNCER_PORT \
    SOAK_OUT=$RESULT/summary.json SOAK_MARKDOWN=$RESULT/summary.md \
    "$CARGO_TARGET_DIR/release/soak" || status=$?

crashes=$(grep -cE "terminated by signal|was terminated by exception" "$PGTMP/server.log" || true)
restarts=$(grep -cE "all server processes terminated; reinitializing" "$PGTMP/server.log" || true)
if [ "$crashes" != 0 ] || [ "$restarts" != 0 ]; then
    echo "the server log shows $crashes crashed processes and $restarts restarts:" >&2
    grep -E "terminated by signal|terminated by exception|reinitializing" "$PGTMP/server.log" >&2
    status=1
fi
if [ "$status" != 0 ]; then
    echo "soak FAILED (server log: last lines below)" >&2
    tail -20 "$PGTMP/server.log" >&2
    exit 1
fi

if [ -z "${SOAK_NO_WRITE:-}" ] && [ -f "$RESULT/summary.md" ]; then
    version=$(psql -XAt -c 'SELECT version()' | sed 's/ on .*//')
    {
        echo "<!-- soak:start -->"
        echo "## Soak (\`make soak\`, $(date -u +%Y-%m-%d))"
        echo
        echo "\`SOAK_SECONDS=${SOAK_SECONDS:-600} make soak\` on $(nproc) cores, $version."
        echo "Tenant transactions as a non-superuser (RLS on \`jwt_claim_uuid('tenant_id')\`, every row and claim checked),"
        echo "a new ES256 key every ${SOAK_ROTATE:-30} s, one token in ten expiring during the run, changed,"
        echo "rotated-out and garbage tokens mixed in, 5 revocations every 2 s, \`pg_cancel_backend\` every 2 s and"
        echo "\`pg_terminate_backend\` every 20 s (a direct backend and a pool backend in turn)."
        echo "The server log showed $crashes crashed processes and $restarts restarts."
        echo
        cat "$RESULT/summary.md"
        echo "<!-- soak:end -->"
    } >"$RESULT/section.md"
    python3 - "$ROOT/BENCHMARKS.md" "$RESULT/section.md" <<'PY'
import re, sys
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
pattern = re.compile(r"<!-- soak:start -->.*?<!-- soak:end -->\n?", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
    say "wrote the soak figures to BENCHMARKS.md"
fi
say "soak passed"
