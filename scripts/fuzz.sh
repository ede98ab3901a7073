#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target of the core (fuzz/fuzz_targets) for FUZZ_SECONDS
# seconds each (default 60; make test runs them for 3 s each as a smoke test), with
# AddressSanitizer, on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo fuzz use the
# sanitizer flags). Each target starts from its committed seeds (fuzz/seeds/<target>) plus,
# when ../shared/vectors is present, the tokens and key sets found there (read in place, copied
# only into the git-ignored working corpus fuzz/corpus). Prints one line per target with its
# executions, and a cargo-style result line.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
seconds=${1:-${FUZZ_SECONDS:-60}}
targets=${FUZZ_TARGETS:-"json base64url key_set verify claims providers"}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/pg_jwt-fuzz-target}
vectors="$ROOT/../shared/vectors"
passed=0
failed=0
for t in $targets; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    cp fuzz/seeds/"$t"/* "$corpus/" 2>/dev/null || true
    if [ -d "$vectors" ] && [ ! -e "$corpus/.vectors" ]; then
        # JSON documents (key sets, claims) and compact tokens from the vector files.
        python3 - "$vectors" "$corpus" "$t" <<'PY'
import hashlib, json, os, re, sys
root, out, target = sys.argv[1], sys.argv[2], sys.argv[3]
seen = 0
def put(b):
    global seen
    if seen >= 300 or not b or len(b) > 8192:
        return
    open(os.path.join(out, "v-" + hashlib.sha1(b).hexdigest()[:16]), "wb").write(b)
    seen += 1
def walk(v):
    if isinstance(v, dict):
        if target in ("key_set", "json") and ("kty" in v or "keys" in v):
            put(json.dumps(v).encode())
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
    elif isinstance(v, str) and target in ("verify", "base64url"):
        if re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*", v):
            put(v.encode() if target == "verify" else v.split(".")[0].encode())
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith(".json"):
            try:
                walk(json.load(open(os.path.join(d, f))))
            except Exception:
                pass
PY
        touch "$corpus/.vectors"
    fi
    log=$(mktemp /tmp/pgjwt-fuzz.XXXXXX)
    if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --release "$t" "corpus/$t" -- \
            -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
        runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
        echo "fuzz $t: ${runs:-?} executions in $seconds s, no crash, no failed property"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED (crash or failed property; artifacts in fuzz/artifacts/$t)" >&2
        grep -E "panicked|ERROR|SUMMARY|assert" "$log" | head -20 >&2
        failed=$((failed + 1))
    fi
    rm -f "$log"
done
if [ "$failed" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (fuzz, $seconds s per target)"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (fuzz)"
    exit 1
fi
