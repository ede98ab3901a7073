#!/usr/bin/env bash
# The client recipes (examples/clients): Python (psycopg 3 + psycopg_pool), Node.js (pg.Pool)
# and Rust (tokio-postgres + deadpool-postgres), each run as the application role through
# pgbouncer (transaction pooling) against the client suite's cluster, with four users of four
# tenants drawn at random by concurrent requests; each checks that every request saw exactly
# its own tenant's rows. Needs the client suite's cluster (PGHOST/PGPORT, database app with its
# key set and test_keys, set up by the suite) and BOUNCER_PORT. Prints a cargo-style result line.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
set +e
users=$(psql -X -At -d app -v ON_ERROR_STOP=1 -c "
  SELECT json_agg(json_build_object('tenant', t, 'token',
           jwt_sign(jsonb_build_object('sub', 'recipe-' || i, 'tenant_id', t,
                    'aud', current_setting('pg_jwt.audience'), 'iss', current_setting('pg_jwt.issuer'),
                    'exp', extract(epoch FROM now())::bigint + 600), key)))
  FROM test_keys, (SELECT i, '00000000-0000-4000-8000-' || lpad(i::text, 12, '0') AS t
                   FROM generate_series(1, 4) i) u")
export PGJWT_RECIPE_USERS=$users PGJWT_RECIPE_REQUESTS=${PGJWT_RECIPE_REQUESTS:-400}
export PGHOST=127.0.0.1 PGPORT=$BOUNCER_PORT PGUSER=app PGDATABASE=app
export PGJWT_RECIPE_DSN="host=127.0.0.1 port=$BOUNCER_PORT user=app dbname=app"
passed=0
failed=0
run() { # name, command...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "recipe $name FAILED" >&2
        failed=$((failed + 1))
    fi
}
run python "$PGJWT_CLIENTS_DIR/venv/bin/python" examples/clients/python/recipe.py
run node node examples/clients/node/recipe.js
run rust "$CARGO_TARGET_DIR/release/pg_jwt_recipe_rust"
if [ "$failed" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (client recipes)"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (client recipes)"
    exit 1
fi
