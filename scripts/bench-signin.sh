#!/usr/bin/env bash
# make bench-signin (PostgreSQL 18): what signing in with a token costs (issue 23). A throwaway
# cluster (oauth_validator_libraries = 'pg_jwt', pinned ES256 keys) and the sign-in test's
# client (tests/signin/client.c, libpq 18) connecting 300 times per run over the unix socket
# (connect, SELECT 1, close), one client at a time:
#   - trust: a role whose pg_hba.conf line is trust (the reference);
#   - a token whose signature is in the shared verification cache (one token, verified once);
#   - a token seen for the first time (300 distinct tokens per run: one verification each).
# 7 interleaved rounds; connection rates, medians and every round's ratio.
# Writes its section into BENCHMARKS.md (between the signin markers; make bench keeps it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ "$PG_MAJOR" = 18 ] || { echo "sign-in with a token is PostgreSQL 18 only: PG=18 make bench-signin" >&2; exit 2; }
bash scripts/install.sh
PGPORT=${PGJWT_BENCH_PORT:-54344}
ISSUER=https://issuer.example
start_cluster "shared_preload_libraries = 'pg_jwt'
oauth_validator_libraries = 'pg_jwt'
log_min_messages = warning
pg_jwt.issuer = '$ISSUER'
pg_jwt.audience = 'db'"
work=$(mktemp -d /tmp/pgjwt-bsi.XXXXXX)
chmod 755 "$work"
trap 'stop_cluster; rm -rf "$work"' EXIT
started=$(date +%s)
cc -O2 -o "$work/client" tests/signin/client.c -I"$("$PG_CONFIG" --includedir)" -L"$("$PG_CONFIG" --libdir)" -lpq \
    -Wl,-rpath,"$("$PG_CONFIG" --libdir)"
as_postgres tee "$PGTMP/data/pg_hba.conf" >/dev/null <<HBA
local all postgres trust
local all bench_trust trust
local all all oauth issuer="$ISSUER" scope="db" map=bench
HBA
echo "bench /^(.*)$ bench_token" | as_postgres tee "$PGTMP/data/pg_ident.conf" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SELECT pg_reload_conf();
CREATE ROLE bench_trust LOGIN;
CREATE ROLE bench_token LOGIN;
CREATE EXTENSION pg_jwt;
CREATE TABLE bsi_keys AS SELECT jwt_generate_jwk('ES256', 'k') AS k;
SELECT jwt_public_jwks(k)::text AS pub FROM bsi_keys \gset
ALTER SYSTEM SET pg_jwt.jwks = :'pub';
SELECT pg_reload_conf();
SQL
mint() { # n tokens into a file
    psql -X -At -v n="$1" <<'SQL'
SELECT jwt_sign(jsonb_build_object('iss', current_setting('pg_jwt.issuer'), 'aud', 'db', 'scope', 'db',
         'sub', 'user-' || g || '-' || random(), 'exp', floor(extract(epoch FROM now()))::bigint + 3600), k)
  FROM bsi_keys, generate_series(1, :n) g;
SQL
}
mint 1 >"$work/one"
n=300
run() { # user, tokens file
    "$work/client" --connect "host=$PGHOST port=$PGPORT dbname=postgres user=$1 oauth_issuer=$ISSUER/.well-known/openid-configuration oauth_scope=db oauth_client_id=bench" "$2" "$n"
}
run bench_token "$work/one" >/dev/null # the one token's signature into the shared cache
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for round in 1 2 3 4 5 6 7; do
    say "round $round"
    mint "$n" >"$work/fresh"
    t=$(run bench_trust -)
    c=$(run bench_token "$work/one")
    f=$(run bench_token "$work/fresh")
    # The same two without the statement: the sign-in alone.
    tn=$(PGJWT_CLIENT_NO_STATEMENT=1 run bench_trust -)
    cn=$(PGJWT_CLIENT_NO_STATEMENT=1 run bench_token "$work/one")
    awk -v t="$tn" -v c="$cn" 'BEGIN { print c / t }' >>"$work/ratio_signin_only"
    awk -v t="$t" -v c="$c" -v tn="$tn" -v cn="$cn" 'BEGIN { printf "%.0f\n", ((c - cn) - (t - tn)) * 1e6 / 300 }' >>"$work/first_statement"
    echo "$t" >>"$work/trust"
    echo "$c" >>"$work/cached"
    echo "$f" >>"$work/cold"
    awk -v t="$t" -v c="$c" 'BEGIN { print c / t }' >>"$work/ratio_cached"
    awk -v c="$c" -v f="$f" 'BEGIN { printf "%.1f\n", (f - c) * 1e6 / 300 }' >>"$work/cold_extra"
done
rate() { median <"$1" | awk -v n="$n" '{ printf "%.0f", n / $1 }'; }
ratio=$(median <"$work/ratio_cached")
section=$(
    cat <<EOF
<!-- signin:start -->
## Signing in with a token (PostgreSQL 18)

\`PG=18 make bench-signin\` ($(date -u +%Y-%m-%d), PostgreSQL 18, this machine, $(($(date +%s) - started)) s): the sign-in test's client
(libpq 18, its auth-data hook handing over the token) connects $n times per run over the unix
socket (connect, \`SELECT 1\`, close), one connection at a time; 7 interleaved rounds, medians.

| sign-in | connections per second | time per connection against trust |
|---|---|---|
| \`trust\` (the reference) | $(rate "$work/trust") | 1.00x |
| a token whose signature is in the shared verification cache | $(rate "$work/cached") | $(printf '%.2f' "$ratio")x (every round: $(sort -n "$work/ratio_cached" | awk '{ printf "%.2f ", $1 }')) |
| a token seen for the first time (a verification each) | $(rate "$work/cold") | +$(median <"$work/cold_extra") µs per connection over the cached token (median of rounds) |

Target: a sign-in whose signature is cached costs at most 10% more than \`trust\` (time per
connection at most 1.10x): $(awk -v r="$ratio" 'BEGIN { print (r <= 1.10 ? "met" : "MISSED") }'). The client names the discovery document and the scope
(\`oauth_issuer=<issuer>/.well-known/openid-configuration oauth_scope=db\`), so libpq 18 sends the
token in the first connection attempt (without them it makes two).

Where it goes, from the same rounds: connecting without the \`SELECT 1\`, a token costs
$(median <"$work/ratio_signin_only" | awk '{ printf "%.2f", $1 }')x of \`trust\` (the validator: the key set imported and the token verified in a fresh
backend); the first statement of a token session costs $(median <"$work/first_statement") µs more than \`trust\`'s (pg_jwt's work there is its
revocation check, the first of the session: \`jwt_revocations\` found by reading \`pg_depend\`
directly, no longer through an SPI query, and opened, in a backend whose caches are cold).
What remains is the connection itself: the validator's key set import and verification.
<!-- signin:end -->
EOF
)
echo "$section"
write_bench_section signin "$section"
