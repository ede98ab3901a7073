#!/usr/bin/env bash
# make bench-shared-cache: what one verification costs a backend that has not seen the token,
# with and without the shared verification cache. 5,000 distinct ES256 and RS256 tokens are
# verified in one session as a non-superuser (pg_jwt.cache_size = 1, so the backend's own cache
# never answers): pass 1 finds the shared cache empty (every signature is checked), passes 2-6
# run in fresh sessions and find every signature there. Medians; prints a Markdown table.
# Then pgbench with 4 clients (PGJWT_BENCH_CLIENTS): one indexed SELECT under a
# jwt_claim_uuid policy per transaction, the token of one of 20,000 users drawn at random
# (ES256), against the same script without token and RLS, in 7 interleaved rounds of 5 s;
# the median of the per-round ratios; then the same after a restart without the shared cache.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
PGPORT=${PGJWT_BENCH_PORT:-54338}
start_cluster "shared_preload_libraries = 'pg_jwt'
log_min_messages = warning"
trap stop_cluster EXIT
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_jwt;
CREATE ROLE bench_sc LOGIN;
ALTER ROLE bench_sc SET pg_jwt.cache_size = 1;
CREATE TABLE sc_keys AS SELECT 'ES256' AS alg, jwt_generate_jwk('ES256', 'es') AS k;
SQL
rsa=$(sed 's/"kid": *"[^"]*"/"kid": "rs", "alg": "RS256"/' testdata/rsa-2048-private.jwk.json 2>/dev/null | tr -d '\n')
psql -X -q -v ON_ERROR_STOP=1 -v rsa="$rsa" <<'SQL'
INSERT INTO sc_keys VALUES ('RS256', :'rsa'::jsonb);
SELECT jsonb_build_object('keys', jsonb_agg(jwt_public_jwks(k) -> 'keys' -> 0))::text AS pub FROM sc_keys \gset
ALTER SYSTEM SET pg_jwt.jwks = :'pub';
SELECT pg_reload_conf() \gset
CREATE TABLE sc_tokens AS SELECT alg, g, jwt_sign(jsonb_build_object('sub', 'user-' || g,
    'tenant_id', '00000000-0000-4000-8000-000000000003', 'exp', extract(epoch FROM now())::bigint + 3600), k) AS t
  FROM sc_keys, generate_series(1, 5000) g;
GRANT SELECT ON sc_tokens TO bench_sc;
SQL
run() { # alg
    psql -X -At -U bench_sc <<SQL | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
\\timing on
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT t FROM sc_tokens WHERE alg = '$1' LOOP
    PERFORM set_config('pg_jwt.token', r.t, false);
    PERFORM jwt_claim('sub');
  END LOOP; END \$\$;
SQL
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "| algorithm | verification, signature checked (shared cache empty) | verification, signature found in the shared cache | ratio |"
echo "|---|---|---|---|"
for alg in ES256 RS256; do
    cold=$(run "$alg")
    warm=$(for _ in 1 2 3 4 5; do run "$alg"; done | median)
    awk -v a="$alg" -v c="$cold" -v w="$warm" 'BEGIN { printf "| %s | %.1f µs | %.1f µs | %.1fx cheaper |\n", a, c * 1000 / 5000, w * 1000 / 5000, c / w }'
done

clients=${PGJWT_BENCH_CLIENTS:-4}
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO sc_tokens SELECT 'ES256', g, jwt_sign(jsonb_build_object('sub', 'user-' || g,
    'tenant_id', '00000000-0000-4000-8000-00000000000' || (g % 10), 'exp', extract(epoch FROM now())::bigint + 3600), k)
  FROM sc_keys, generate_series(5001, 20000) g WHERE alg = 'ES256';
ALTER TABLE sc_tokens ADD PRIMARY KEY (alg, g);
ANALYZE sc_tokens;
CREATE TABLE sc_docs (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
INSERT INTO sc_docs SELECT g, ('00000000-0000-4000-8000-00000000000' || (g % 10))::uuid, 'doc ' || g FROM generate_series(1, 100000) g;
CREATE POLICY p ON sc_docs USING (tenant_id = jwt_claim_uuid('tenant_id'));
GRANT SELECT ON sc_docs TO bench_sc;
ALTER ROLE bench_sc RESET pg_jwt.cache_size;
SQL
work=$(mktemp -d /tmp/pgjwt-sc.XXXXXX)
printf '%s\n' '\set rid random(1, 100000)' '\set tid random(1, 20000)' 'BEGIN;' \
    "SELECT set_config('bench.token', t, true) FROM sc_tokens WHERE alg = 'ES256' AND g = :tid;" \
    'SELECT body FROM sc_docs WHERE id = :rid;' 'END;' >"$work/baseline.sql"
sed 's/bench.token/pg_jwt.token/' "$work/baseline.sql" >"$work/users.sql"
tps() { # script, rls on/off
    psql -X -q -c "ALTER TABLE sc_docs $2 ROW LEVEL SECURITY"
    "$PG_BIN/pgbench" -n -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -T 5 -f "$1" -U bench_sc postgres 2>/dev/null \
        | sed -nE 's/^tps = ([0-9.]+).*/\1/p'
}
rounds() { # label
    tps "$work/users.sql" ENABLE >/dev/null  # warm-up: every user's signature reaches the shared cache
    : >"$work/ratios"
    : >"$work/base"
    for _ in 1 2 3 4 5 6 7; do
        b=$(tps "$work/baseline.sql" DISABLE)
        u=$(tps "$work/users.sql" ENABLE)
        echo "$b" >>"$work/base"
        awk -v b="$b" -v u="$u" 'BEGIN { print u / b }' >>"$work/ratios"
    done
    echo "| $1 | $(median <"$work/base" | cut -d. -f1) | $(median <"$work/ratios" | cut -c1-4) | $(sort -n "$work/ratios" | awk '{ printf "%.2f ", $1 }')|"
}
echo
echo "pgbench, $clients clients, 20,000 users (ES256) drawn at random, ratio to no token and no RLS (7 interleaved rounds of 5 s):"
echo
echo "| shared verification cache | baseline TPS (median) | median ratio | every round |"
echo "|---|---|---|---|"
rounds "on (pg_jwt.shared_cache_size = 65536)"
psql -X -q -c "ALTER SYSTEM SET pg_jwt.shared_cache_size = 0"
as_postgres "$PG_BIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w restart >/dev/null
rounds "off (pg_jwt.shared_cache_size = 0)"
rm -rf "$work"
