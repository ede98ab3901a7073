#!/usr/bin/env bash
# make bench-stats: what the statistics and the refusal log cost (issue 25), on a throwaway
# cluster. (1) A verification's cost with the counters in place: 5,000 distinct ES256 tokens
# verified in one session whose own cache never answers (pg_jwt.cache_size = 1), signatures
# already in the shared cache; median of 5 passes. (2) Good tokens while another session
# floods the server with bad ones: pgbench, 2 clients, 20,000 users drawn at random, 7
# interleaved rounds of 5 s with a flood (a loop of malformed tokens, each refused, counted and
# rate-limit-checked for the log) and 5 s with a control session as busy without pg_jwt; the
# median of the per-round ratios.
# Writes its section into BENCHMARKS.md (between the stats markers; make bench keeps it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
PGPORT=${PGJWT_BENCH_PORT:-54339}
start_cluster "shared_preload_libraries = 'pg_jwt'
log_min_messages = warning"
work=$(mktemp -d /tmp/pgjwt-st.XXXXXX)
chmod 755 "$work"
trap 'stop_cluster; rm -rf "$work"' EXIT
started=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_jwt;
CREATE ROLE bench_st LOGIN;
ALTER ROLE bench_st SET pg_jwt.cache_size = 1;
CREATE TABLE st_key AS SELECT jwt_generate_jwk('ES256', 'es') AS k;
SELECT jwt_public_jwks(k)::text AS pub FROM st_key \gset
ALTER SYSTEM SET pg_jwt.jwks = :'pub';
SELECT pg_reload_conf() \gset
CREATE TABLE st_tokens AS SELECT g, jwt_sign(jsonb_build_object('sub', 'user-' || g,
    'tenant_id', '00000000-0000-4000-8000-00000000000' || (g % 10), 'exp', extract(epoch FROM now())::bigint + 3600), k) AS t
  FROM st_key, generate_series(1, 20000) g;
ALTER TABLE st_tokens ADD PRIMARY KEY (g);
GRANT SELECT ON st_tokens TO bench_st;
CREATE TABLE st_docs (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
INSERT INTO st_docs SELECT g, ('00000000-0000-4000-8000-00000000000' || (g % 10))::uuid, 'doc ' || g FROM generate_series(1, 100000) g;
ALTER TABLE st_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON st_docs USING (tenant_id = jwt_claim_uuid('tenant_id'));
GRANT SELECT ON st_docs TO bench_st;
SQL
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
verify_pass() {
    psql -X -At -U bench_st <<'SQL' | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
\timing on
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT t FROM st_tokens WHERE g <= 5000 LOOP
    PERFORM set_config('pg_jwt.token', r.t, false);
    PERFORM jwt_claim('sub');
  END LOOP; END $$;
SQL
}
verify_pass >/dev/null # every signature into the shared cache
per_verification=$(for _ in 1 2 3 4 5; do verify_pass; done | median)
accepted=$(psql -X -At -c "SELECT coalesce(sum(count), 0) FROM jwt_stats() WHERE outcome = 'accepted'")
psql -X -q -c "ALTER ROLE bench_st RESET pg_jwt.cache_size"
printf '%s\n' '\set rid random(1, 100000)' '\set tid random(1, 20000)' 'BEGIN;' \
    "SELECT set_config('pg_jwt.token', t, true) FROM st_tokens WHERE g = :tid;" \
    'SELECT body FROM st_docs WHERE id = :rid;' 'END;' >"$work/users.sql"
tps() {
    "$PG_BIN/pgbench" -n -c 2 -j 2 -T 5 -f "$work/users.sql" -U bench_st postgres 2>/dev/null | sed -nE 's/^tps = ([0-9.]+).*/\1/p'
}
flood() { # runs until cancelled: malformed tokens, each refused (28000), counted, rate-limit-checked
    psql -X -q -U bench_st -c "DO \$\$ BEGIN LOOP BEGIN PERFORM set_config('pg_jwt.token', 'flood', true); PERFORM jwt_claim('sub');
        EXCEPTION WHEN invalid_authorization_specification THEN NULL; END; END LOOP; END \$\$" >/dev/null 2>&1 &
    echo $!
}
busy() { # the control: a session as busy, doing the same loop and exception blocks without pg_jwt
    psql -X -q -U bench_st -c "DO \$\$ BEGIN LOOP BEGIN PERFORM set_config('bench.token', 'flood', true); PERFORM 1 / 0;
        EXCEPTION WHEN division_by_zero THEN NULL; END; END LOOP; END \$\$" >/dev/null 2>&1 &
    echo $!
}
stop_loop() { # pid of the psql running it
    psql -X -q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'bench_st' AND query LIKE 'DO%'" >/dev/null
    wait "$1" 2>/dev/null || true
}
tps >/dev/null # warm-up
: >"$work/ratios"
: >"$work/quiet"
before=$(psql -X -At -c "SELECT coalesce(sum(count), 0) FROM jwt_stats() WHERE reason = 'malformed token'")
for _ in 1 2 3 4 5 6 7; do
    pid=$(busy)
    sleep 0.5
    q=$(tps)
    stop_loop "$pid"
    pid=$(flood)
    sleep 0.5
    f=$(tps)
    stop_loop "$pid"
    echo "$q" >>"$work/quiet"
    awk -v q="$q" -v f="$f" 'BEGIN { print f / q }' >>"$work/ratios"
done
refused=$(( $(psql -X -At -c "SELECT coalesce(sum(count), 0) FROM jwt_stats() WHERE reason = 'malformed token'") - before ))
lines=$(grep -c "pg_jwt: refused token:" "$PGTMP/server.log" || true)
elapsed=$(( $(date +%s) - started ))
section=$(cat <<MD
<!-- stats:start -->
## Statistics and the refusal log (make bench-stats)

Produced by \`make bench-stats\` (scripts/bench-stats.sh) on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s, PostgreSQL $PG_MAJOR, $(nproc) cores.

- A verification with the counters in place (one relaxed atomic add each): **$(awk -v t="$per_verification" 'BEGIN { printf "%.1f", t * 1000 / 5000 }') µs** per ES256 token whose signature is in the shared cache (5,000 distinct tokens in one session, the backend's own cache off; median of 5 passes; $accepted verifications counted as accepted by \`jwt_stats()\`).
- Good tokens while another session floods the server with bad ones (pgbench, 2 clients, 20,000 users at random, 7 interleaved rounds of 5 s), against the same pgbench while another session is as busy without pg_jwt (the same loop of exception blocks, raising division by zero instead): **$(median <"$work/ratios" | cut -c1-4)x** (median of the per-round ratios; every round: $(sort -n "$work/ratios" | awk '{ printf "%.2f ", $1 }')), control median $(median <"$work/quiet" | cut -d. -f1) TPS. Target: the flood slows good tokens no more than any busy session does (ratio at least 0.95x): $(median <"$work/ratios" | awk '{ print ($1 >= 0.95 ? "met" : "MISSED") }'). The flood refused $refused tokens; the log took $lines refused-token lines (pg_jwt.log_refusals_per_second = 10) and counted the rest as suppressed.
<!-- stats:end -->
MD
)
echo "$section"
write_bench_section stats "$section"
