#!/usr/bin/env bash
# make test: every test layer (scripts/test.sh) against each PostgreSQL version given (default:
# 15, 16 and 18), one after the other; ends with one summary line over all of them and exits
# non-zero if any version failed.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
versions=${*:-15 16 18}
summary=$(mktemp /tmp/pgjwt-summary.XXXXXX)
status=0
say "fuzz smoke test: every core fuzz target for a few seconds (make fuzz runs them longer)"
started=$(date +%s)
if line=$(bash scripts/fuzz.sh "${PGJWT_FUZZ_SMOKE_SECONDS:-3}" 2>&1 | tee /dev/stderr | grep -E '^test result:'); then :; fi
n_ok=$(echo "$line" | sed -nE 's/^test result: ok\. ([0-9]+) passed.*/\1/p')
if [ -n "$n_ok" ]; then
    echo "fuzz smoke: $n_ok passed, 0 failed in $(( $(date +%s) - started )) s" | tee -a "$summary"
else
    echo "fuzz smoke: 0 passed, 1 failed" | tee -a "$summary"
    status=1
fi
for v in $versions; do
    started=$(date +%s)
    say "PostgreSQL $v: every test layer"
    log=$(mktemp /tmp/pgjwt-test-$v.XXXXXX.log)
    if PG=$v PG_CONFIG=$(pg_config_of "$v") bash scripts/test.sh 2>&1 | tee "$log"; then :; fi
    line=$(grep -E '^total: ' "$log" | tail -1 || true)
    [ -n "$line" ] || line="total: 0 passed, 1 failed"
    echo "$line" | grep -q ', 0 failed' || status=1
    echo "PostgreSQL $v: ${line#total: } in $(( $(date +%s) - started )) s" | tee -a "$summary"
    rm -f "$log"
done
say "summary"
cat "$summary"
awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^passed,?$/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$summary"
rm -f "$summary"
exit $status
