#!/usr/bin/env bash
# Token hygiene (issue 20): after the client recipes (tokens as bind parameters) and the demo's
# psql form (SELECT set_config with a literal), no bearer token and no signature segment is in
# pg_stat_statements or in the part of the server log written meanwhile, at default logging
# settings. Every compact JWS starts with "eyJ" (the base64url of '{"'), so that is searched.
# Arguments: the preload list (pg_stat_statements checked only where it is loaded), the server
# log, the log's size before the recipes ran. Prints a cargo-style result line for the summary.
source "$(dirname "$0")/lib.sh"
preload=$1 log=$2 offset=$3
passed=0
failed=0
if [ "$preload" != pg_jwt ]; then
    n=$(psql -X -At -d app -c "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%eyJ%'")
    seen=$(psql -X -At -d app -c "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%set_config%'")
    if [ "$n" = 0 ] && [ "$seen" -gt 0 ]; then
        passed=$((passed + 1))
    else
        echo "pg_stat_statements: $n statements hold a token ($seen statements call set_config):" >&2
        psql -X -At -d app -c "SELECT left(query, 120) FROM pg_stat_statements WHERE query LIKE '%eyJ%' LIMIT 5" >&2
        failed=$((failed + 1))
    fi
fi
if tail -c +"$((offset + 1))" "$log" | grep -q 'eyJ'; then
    echo "the server log holds a token:" >&2
    tail -c +"$((offset + 1))" "$log" | grep 'eyJ' | cut -c1-160 | head -5 >&2
    failed=$((failed + 1))
else
    passed=$((passed + 1))
fi
if [ "$failed" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (token hygiene)"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (token hygiene)"
    exit 1
fi
