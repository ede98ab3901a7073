#!/usr/bin/env bash
# make bench-revocation: the cost of the revocation lookup per verification, with 0, 10,000 and
# 1,000,000 rows in jwt_revocations. Each run verifies 10,000 distinct HS256 tokens (each a cache
# miss, so each is verified and looked up once) in one session as a non-superuser. Two token sets
# of the same size, run in interleaved pairs at each size (15 pairs, medians): tokens carrying jti, sub
# and sid (looked up) and tokens whose claims have other names (never looked up). Their
# difference (the median of the 15 paired differences) is the lookup's own cost, measured in
# the same conditions. Prints a Markdown table.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
PGPORT=${PGJWT_BENCH_PORT:-54334}
start_cluster "shared_preload_libraries = 'pg_jwt'
log_min_messages = warning"
trap stop_cluster EXIT
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_jwt;
CREATE ROLE bench_rv LOGIN;
CREATE TABLE rv_keys AS SELECT jwt_generate_jwk('HS256', 'k') AS k;
SELECT k::text AS key FROM rv_keys \gset
ALTER SYSTEM SET pg_jwt.jwks = :'key';
ALTER SYSTEM SET pg_jwt.cache_size = 1;
SELECT pg_reload_conf();
CREATE TABLE rv_tokens AS
  SELECT g, jwt_sign(jsonb_build_object('sub', 'user-' || g, 'jti', 'jti-' || g, 'sid', 'sid-' || g,
         'iat', extract(epoch FROM now())::bigint, 'exp', extract(epoch FROM now())::bigint + 3600), k) AS t
  FROM rv_keys, generate_series(1, 10000) g;
CREATE TABLE rv_anonymous AS
  SELECT g, jwt_sign(jsonb_build_object('xsub', 'user-' || g, 'xjti', 'jti-' || g, 'xsid', 'sid-' || g,
         'iat', extract(epoch FROM now())::bigint, 'exp', extract(epoch FROM now())::bigint + 3600), k) AS t
  FROM rv_keys, generate_series(1, 10000) g;
GRANT SELECT ON rv_tokens, rv_anonymous TO bench_rv;
SQL
run() {
    psql -X -At -U bench_rv <<SQL | tail -1
\\timing on
DO \$\$ DECLARE r record; n int := 0; BEGIN
  FOR r IN SELECT t FROM $1 LOOP
    PERFORM set_config('pg_jwt.token', r.t, false);
    IF pg_catalog.length(jwt_claim('iat')) > 0 THEN n := n + 1; END IF;
  END LOOP; END \$\$;
SQL
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "| rows in jwt_revocations | verification, token with jti/sub/sid | same, claims not looked up | lookup cost (median of paired differences) |"
echo "|---|---|---|---|"
for n in 0 10000 1000000; do
    psql -X -q -c "TRUNCATE jwt_revocations" -c "INSERT INTO jwt_revocations (kind, value, expires)
        SELECT (ARRAY['jti','sid'])[1 + g % 2], 'revoked-' || g, now() + interval '1 day' FROM generate_series(1, $n) g" \
        -c "INSERT INTO jwt_revocations (kind, value, issued_before) SELECT 'sub', 'revoked-user-' || g, now() FROM generate_series(1, $n / 10) g" \
        -c "ANALYZE jwt_revocations"
    run rv_tokens >/dev/null
    run rv_anonymous >/dev/null
    : >"$PGTMP/with" && : >"$PGTMP/without" && : >"$PGTMP/diff"
    for _ in $(seq "${PGJWT_BENCH_RUNS:-15}"); do
        w=$(run rv_tokens | sed -E 's/Time: ([0-9.]+) ms.*/\1/')
        o=$(run rv_anonymous | sed -E 's/Time: ([0-9.]+) ms.*/\1/')
        echo "$w" >>"$PGTMP/with"
        echo "$o" >>"$PGTMP/without"
        awk -v a="$w" -v b="$o" 'BEGIN { print a - b }' >>"$PGTMP/diff"
    done
    a=$(median <"$PGTMP/with")
    b=$(median <"$PGTMP/without")
    d=$(median <"$PGTMP/diff")
    awk -v n="$n" -v a="$a" -v b="$b" -v d="$d" 'BEGIN { printf "| %d | %.2f µs | %.2f µs | %+.2f µs |\n", n, a * 1000 / 10000, b * 1000 / 10000, d * 1000 / 10000 }'
done
