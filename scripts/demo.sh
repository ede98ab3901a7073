#!/usr/bin/env bash
# The demo: builds and installs pg_jwt, starts a throwaway cluster (shared_preload_libraries =
# 'pg_jwt') and a stand-in identity provider that publishes its JWKS over HTTPS on 127.0.0.1
# (a CA and certificate minted here with openssl), runs examples/demo.sql as a superuser that
# switches to the non-superuser role "app", and stops both.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
say "starting a throwaway PostgreSQL cluster"
PGPORT=${PGJWT_DEMO_PORT:-54330}
start_cluster
IDP_PORT=${PGJWT_DEMO_IDP_PORT:-58443}
IDP=$PGTMP/idp
mkdir -p "$IDP/www/.well-known"
IDP_PID=""
finish() {
    [ -z "$IDP_PID" ] || kill "$IDP_PID" 2>/dev/null || true
    stop_cluster
}
trap finish EXIT

say "starting the stand-in identity provider on https://127.0.0.1:$IDP_PORT"
chmod 755 "$IDP"
mint_loopback_tls "$IDP" "pg_jwt demo CA"
echo '{"keys":[]}' > "$IDP/www/.well-known/jwks.json"
python3 scripts/demo-idp.py "$IDP/www" "$IDP_PORT" "$IDP/server.pem" "$IDP/server.key" &
IDP_PID=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$IDP_PORT) 2>/dev/null && break
    sleep 0.1
done

createdb demo
say "running examples/demo.sql"
PGDATABASE=demo psql -X -v idp_jwks="$IDP/www/.well-known/jwks.json" -v idp_ca="$IDP/ca.pem" \
    -v jwks_uri="https://127.0.0.1:$IDP_PORT/.well-known/jwks.json" -f examples/demo.sql 2>&1
say "demo finished; cluster and identity provider stopped"
