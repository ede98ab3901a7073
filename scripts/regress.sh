#!/usr/bin/env bash
# SQL golden files (tests/pg_regress): pg_regress against a running cluster (PGHOST/PGPORT set
# by the caller, pg_jwt installed). Prints a cargo-style result line for the summary.
source "$(dirname "$0")/lib.sh"
cd "$ROOT/tests/pg_regress"
REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
tests=$(cd sql && ls *.sql | sed 's/\.sql$//' | sort | tr '\n' ' ')
rm -rf results regression.diffs regression.out
if "$REGRESS" --inputdir=. --outputdir=. \
        --bindir="$PG_BIN" --dbname=pg_jwt_regress --user=postgres $tests; then
    n=$(echo $tests | wc -w)
    echo "test result: ok. $n passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (pg_regress golden files)"
else
    cat regression.diffs 2>/dev/null | head -100
    echo "test result: FAILED. 0 passed; $(echo $tests | wc -w) failed; 0 ignored; 0 measured; 0 filtered out (pg_regress golden files)"
    exit 1
fi
