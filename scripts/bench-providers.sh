#!/usr/bin/env bash
# make bench-providers: does anything cost more with 1,000 providers than with one (issue 22)?
# A throwaway cluster (pg_jwt.max_providers = 1000) and a stand-in provider serving 1,000 key
# sets over HTTPS on 127.0.0.1 (scripts/demo-idp.py, a CA minted here). Two lists alternate:
# one provider ("p0", fetched), and 1,000 ("p0" .. "p999": 900 fetched, 100 with pinned keys).
# Every token is p0's, so both lists do the same work and differ only in their length. Per
# round and list (5 interleaved rounds; medians):
#   - per row: jwt_claim('sub') over 2,000,000 rows of one query, a token verified once;
#   - a verification whose signature is in the shared cache (after the session's first, untimed
#     one: reading the list is once per session and reload, not per verification) (the cached path of a backend that
#     meets a token another backend verified): 5,000 distinct ES256 tokens in a session whose
#     own cache never answers (pg_jwt.cache_size = 1), after a first pass filled the cache;
#   - a verification with the signature checked (the shared cache off for the session's tokens:
#     5,000 fresh tokens per round);
#   - the verification from the shared cache again without a list (p0 as the implicit provider):
#     what choosing a provider by iss costs.
# Also: how long the key fetcher takes to fetch the 900 sets after the list is loaded.
# Writes its section into BENCHMARKS.md (between the providers markers; make bench keeps it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
PGPORT=${PGJWT_BENCH_PORT:-54340}
start_cluster "shared_preload_libraries = 'pg_jwt'
pg_jwt.max_providers = 1000
pg_jwt.provider_jwks_max_bytes = 4096
log_min_messages = warning"
work=$(mktemp -d /tmp/pgjwt-pv.XXXXXX)
chmod 755 "$work"
IDP_PID=""
trap '[ -z "$IDP_PID" ] || kill "$IDP_PID" 2>/dev/null; stop_cluster; rm -rf "$work"' EXIT
started=$(date +%s)

say "a stand-in provider with 1,000 key sets on https://127.0.0.1"
IDP_PORT=${PGJWT_BENCH_IDP_PORT:-58444}
mkdir -p "$work/www"
mint_loopback_tls "$work" "pg_jwt bench CA"

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_jwt;
CREATE ROLE bench_pv LOGIN;
ALTER ROLE bench_pv SET pg_jwt.cache_size = 1;
CREATE TABLE pv_keys AS SELECT g AS i, jwt_generate_jwk('ES256', 'k' || g) AS k FROM generate_series(0, 999) g;
CREATE TABLE pv_tokens AS SELECT g, jwt_sign(jsonb_build_object('iss', 'https://p0.example', 'sub', 'user-' || g,
    'exp', extract(epoch FROM now())::bigint + 7200), k) AS t
  FROM pv_keys, generate_series(1, 30000) g WHERE i = 0;
ALTER TABLE pv_tokens ADD PRIMARY KEY (g);
GRANT SELECT ON pv_tokens TO bench_pv;
SQL
# Each provider's public key set, one file each.
psql -X -At -c "SELECT i, jwt_public_jwks(k)::text FROM pv_keys ORDER BY i" | while IFS='|' read -r i jwks; do
    printf '%s' "$jwks" >"$work/www/p$i.json"
done
python3 scripts/demo-idp.py "$work/www" "$IDP_PORT" "$work/server.pem" "$work/server.key" &
IDP_PID=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$IDP_PORT) 2>/dev/null && break
    sleep 0.1
done
list_of() { # n: the list of the first n providers, on one line
    psql -X -At -v n="$1" -v port="$IDP_PORT" <<'SQL'
SELECT jsonb_agg(CASE WHEN i >= 900 THEN
         jsonb_build_object('name', 'p' || i, 'issuer', 'https://p' || i || '.example', 'jwks', jwt_public_jwks(k))
       ELSE
         jsonb_build_object('name', 'p' || i, 'issuer', 'https://p' || i || '.example',
                            'jwks_uri', 'https://127.0.0.1:' || :'port' || '/p' || i || '.json')
       END ORDER BY i)::text
  FROM pv_keys WHERE i < :n;
SQL
}
list_of 1 >"$work/list1"
list_of 1000 >"$work/list1000"
use_list() { # file
    local want
    psql -X -q -v ON_ERROR_STOP=1 -v list="$(cat "$1")" -v ca="$work/ca.pem" <<'SQL'
ALTER SYSTEM RESET pg_jwt.jwks;
ALTER SYSTEM RESET pg_jwt.issuer;
ALTER SYSTEM SET pg_jwt.providers = :'list';
ALTER SYSTEM SET pg_jwt.jwks_ca_file = :'ca';
SELECT pg_reload_conf() \gset
SQL
    # Until every fetched provider's set is in force and the key fetcher has been idle for a
    # second (a provider new to it is fetched at once, even when its saved set was restored):
    # no fetch runs while the costs are measured (at most a minute).
    want=$(grep -o '"jwks_uri"' "$1" | wc -l)
    local last="" same=0 now
    for _ in $(seq 300); do
        sleep 0.2
        now=$(psql -X -At -c "SELECT count(*) FILTER (WHERE in_force) || ' ' || sum(fetches + failures) FROM jwt_jwks_status()")
        if [ "${now%% *}" -ge "$want" ] && [ "$now" = "$last" ]; then
            same=$((same + 1))
            [ "$same" -ge 5 ] && return 0
        else
            same=0
        fi
        last=$now
    done
    echo "the key fetcher did not fetch $want sets within a minute" >&2
    exit 1
}
# No list: p0's key set and issuer as the single-provider settings (the implicit provider), for
# the cost of choosing a provider by iss.
use_implicit() {
    psql -X -q -v ON_ERROR_STOP=1 -v jwks="$(psql -X -At -c "SELECT jwt_public_jwks(k)::text FROM pv_keys WHERE i = 0")" <<'SQL'
ALTER SYSTEM RESET pg_jwt.providers;
ALTER SYSTEM SET pg_jwt.jwks = :'jwks';
ALTER SYSTEM SET pg_jwt.issuer = 'https://p0.example';
SELECT pg_reload_conf() \gset
SQL
    sleep 1
}
t0=$(date +%s.%N)
use_list "$work/list1000"
t1=$(date +%s.%N)
fetch_all=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

per_row() { # ns per row of jwt_claim('sub'), one token
    psql -X -At -U bench_pv <<'SQL' | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
SELECT set_config('pg_jwt.token', t, false) IS NULL AS token_set FROM pv_tokens WHERE g = 1 \gset
SELECT jwt_claim('sub') AS sub \gset
\timing on
SELECT count(*) FROM generate_series(1, 2000000) WHERE jwt_claim('sub') IS NOT NULL \gset
SQL
}
verify() { # first last: ms for the tokens g in [first, last], one verification each
    psql -X -At -U bench_pv -v a="$1" -v b="$2" <<'SQL' | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
-- The session's first verification (which reads the provider list) is not timed.
SELECT set_config('pg_jwt.token', t, false) IS NULL AS token_set FROM pv_tokens WHERE g = 30000 \gset
SELECT jwt_claim('sub') AS sub \gset
\timing on
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT t FROM pv_tokens WHERE g BETWEEN current_setting('bench.a')::int AND current_setting('bench.b')::int LOOP
    PERFORM set_config('pg_jwt.token', r.t, false);
    PERFORM jwt_claim('sub');
  END LOOP; END $$;
SQL
}
psql -X -q -c "ALTER ROLE bench_pv SET bench.a = '0'" -c "ALTER ROLE bench_pv SET bench.b = '0'"
verify_range() { # first last
    psql -X -q -c "ALTER ROLE bench_pv SET bench.a = '$1'" -c "ALTER ROLE bench_pv SET bench.b = '$2'"
    verify "$1" "$2"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
next=10001 # fresh tokens for the signature-checked runs
for round in 1 2 3 4 5; do
    # Alternating which list goes first, so that neither always follows the other.
    order="1 1000"
    [ $((round % 2)) = 0 ] && order="1000 1"
    for n in $order; do
        say "round $round, $n provider(s)"
        use_list "$work/list$n"
        per_row | awk '{ printf "%.2f\n", $1 * 1e6 / 2000000 }' >>"$work/row$n"
        verify_range 1 5000 >/dev/null # fills the shared cache (with this list's key sets)
        verify_range 1 5000 | awk '{ printf "%.3f\n", $1 * 1000 / 5000 }' >>"$work/hit$n"
        verify_range "$next" $((next + 1999)) | awk '{ printf "%.3f\n", $1 * 1000 / 2000 }' >>"$work/fresh$n"
        next=$((next + 2000))
    done
    say "round $round, no list (the implicit provider)"
    use_implicit
    verify_range 1 5000 >/dev/null
    verify_range 1 5000 | awk '{ printf "%.3f\n", $1 * 1000 / 5000 }' >>"$work/hit0"
done
spread() { sort -n "$1" | awk '{ a[NR] = $1 } END { printf "%s–%s", a[1], a[NR] }'; }
row() { # label unit file1 file1000
    local m1 m2
    m1=$(median <"$3")
    m2=$(median <"$4")
    awk -v l="$1" -v u="$2" -v a="$m1" -v b="$m2" -v s1="$(spread "$3")" -v s2="$(spread "$4")" \
        'BEGIN { r = b / a; printf "| %s | %s %s (%s) | %s %s (%s) | %.2fx | %s |\n", l, a, u, s1, b, u, s2, r, (r <= 1.05 ? "met" : "MISSED") }'
}
section=$(
    cat <<EOF
<!-- providers:start -->
## Several providers: 1 against 1,000

\`make bench-providers\` ($(date -u +%Y-%m-%d), PostgreSQL $PG_MAJOR, this machine, $(($(date +%s) - started)) s). Every token is
provider p0's (ES256); the lists differ only in length: one provider, or 1,000 (900 fetched
over HTTPS from a stand-in provider on 127.0.0.1, 100 with pinned keys). 5 interleaved rounds
(the first list alternating), measured once the key fetcher has fetched every set after the
reload; medians, every round's range in brackets. Target: the same figure with 1 and 1,000 providers,
met when the 1,000-provider median is at most 1.05x the one-provider median.

| cost | 1 provider | 1,000 providers | 1,000 / 1 | target |
|---|---|---|---|---|
$(row "per row: \`jwt_claim('sub')\`, token verified" "ns" "$work/row1" "$work/row1000")
$(row "a verification whose signature is in the shared cache" "µs" "$work/hit1" "$work/hit1000")
$(row "a verification with the signature checked" "µs" "$work/fresh1" "$work/fresh1000")

The same verification from the shared cache without \`pg_jwt.providers\` (p0's key set and issuer as
the single-provider settings), in the same rounds: $(median <"$work/hit0") µs ($(spread "$work/hit0")): choosing
the provider by \`iss\` costs $(awk -v a="$(median <"$work/hit0")" -v b="$(median <"$work/hit1")" 'BEGIN { printf "%.3f", b - a }') µs per verification (medians; each figure
includes the PL/pgSQL loop's own cost, the same in both).

Loading the 1,000-provider list until the key fetcher had all 900 fetched sets in force:
$fetch_all s (at most 8 fetches at once).
<!-- providers:end -->
EOF
)
echo "$section"
write_bench_section providers "$section"
