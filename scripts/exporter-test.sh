#!/usr/bin/env bash
# The Prometheus recipe (examples/monitoring/queries.yaml) against the client suite's cluster:
# starts Debian's prometheus-postgres-exporter with it on 127.0.0.1, scrapes /metrics, and
# checks that the pg_jwt metrics carry the values jwt_stats() reports, as a pg_monitor role
# (not a superuser). Needs the client suite's cluster (PGHOST/PGPORT, database app). Prints a
# cargo-style result line.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
EXPORTER=/usr/bin/prometheus-postgres-exporter
PORT=${PGJWT_EXPORTER_PORT:-59187}
passed=0
failed=0
check() { # name, ok (0/1), detail
    if [ "$2" = 0 ]; then passed=$((passed + 1)); else echo "exporter: $1 FAILED: $3" >&2; failed=$((failed + 1)); fi
}
psql -X -q -d app -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jwt_exporter') THEN CREATE ROLE jwt_exporter LOGIN; END IF;
END $$;
GRANT pg_monitor TO jwt_exporter;
SQL
DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=jwt_exporter dbname=app sslmode=disable" \
    "$EXPORTER" --web.listen-address="127.0.0.1:$PORT" --extend.query-path=examples/monitoring/queries.yaml \
    --disable-default-metrics --disable-settings-metrics >"$PGHOST/exporter.log" 2>&1 &
EXPORTER_PID=$!
trap 'kill $EXPORTER_PID 2>/dev/null || true' EXIT
metrics=""
for _ in $(seq 50); do
    metrics=$(curl -s "http://127.0.0.1:$PORT/metrics" || true)
    echo "$metrics" | grep -q '^pg_jwt_verifications_total' && break
    sleep 0.2
done
expected=$(psql -X -At -d app -c "SELECT count FROM jwt_stats() WHERE outcome = 'accepted' AND provider = 'default'")
got=$(echo "$metrics" | grep 'provider="default"' | sed -nE 's/^pg_jwt_verifications_total\{.*outcome="accepted".*\} ([0-9.e+]+)$/\1/p' | head -1)
check "accepted tokens as a counter" "$([ -n "$got" ] && python3 -c "import sys; sys.exit(0 if float('$got') == float('$expected') else 1)" && echo 0 || echo 1)" "metric $got, jwt_stats() $expected"
n=$(echo "$metrics" | grep -c '^pg_jwt_verifications_total{.*outcome="refused"' || true)
check "one series per refusal reason" "$([ "$n" -ge 13 ] && echo 0 || echo 1)" "$n series"
check "the shared cache figures" "$(echo "$metrics" | grep -q '^pg_jwt_shared_cache_capacity' && echo 0 || echo 1)" "no pg_jwt_shared_cache_capacity"
check "no scrape error" "$(echo "$metrics" | grep -qE '^pg_exporter_last_scrape_error 0' && echo 0 || echo 1)" "$(echo "$metrics" | grep -E '^pg_exporter_last_scrape_error' ; tail -3 "$PGHOST/exporter.log")"
if [ "$failed" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (Prometheus exporter recipe)"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (Prometheus exporter recipe)"
    exit 1
fi
