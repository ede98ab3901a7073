#!/usr/bin/env bash
# make bench: builds in release mode, measures the verification floor (pure Rust), starts a
# throwaway cluster, runs the SQL benchmarks (benches/runner) and writes BENCHMARKS.md.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
OUT=${PGJWT_BENCH_OUT:-$ROOT/BENCHMARKS.md}
WORK=$(mktemp -d /tmp/pgjwt-bench.XXXXXX)
started=$(date +%s)

bash scripts/install.sh

# PGJWT_BENCH_ONLY=4c: the SQL set-up and section 4c alone, printed; BENCHMARKS.md is left as it is.
if [ -z "${PGJWT_BENCH_ONLY:-}" ]; then
    say "1/2 verification floor (cargo bench -p pg_jwt_core --bench verify)"
    cargo bench -p pg_jwt_core --bench verify 2>/dev/null | grep '^|' > "$WORK/floor.md"
    cat "$WORK/floor.md"
fi

say "2/2 SQL benchmarks on a throwaway cluster"
cargo build --release -p pg_jwt_bench 2>&1 | tail -1
PGPORT=${PGJWT_BENCH_PORT:-54332}
start_cluster "shared_preload_libraries = 'pg_jwt'
shared_buffers = '512MB'
max_worker_processes = 8
max_parallel_workers = 4
max_wal_size = '4GB'
synchronous_commit = off
log_min_messages = warning"
trap 'stop_cluster; rm -rf "$WORK"' EXIT
createdb bench
# The per-row floor (section 3b): the cheapest C function of each accessor's type.
chmod 755 "$WORK"
cc -O2 -fPIC -shared -I"$("$PG_CONFIG" --includedir-server)" benches/floor/floor.c -o "$WORK/pg_jwt_floor.so"
PGJWT_FLOOR_SO=$WORK/pg_jwt_floor.so PGJWT_BENCH_HOST=$PGTMP PGJWT_BENCH_PORT=$PGPORT PGJWT_PGBENCH=$PG_BIN/pgbench PGJWT_BENCH_DATA=$PGTMP/data \
    "$CARGO_TARGET_DIR/release/pg_jwt_bench" > "$WORK/sql.md"
if [ -n "${PGJWT_BENCH_ONLY:-}" ]; then
    cat "$WORK/sql.md"
    exit 0
fi
elapsed=$(( $(date +%s) - started ))

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
soak_section=$(sed -n '/<!-- soak:start -->/,/<!-- soak:end -->/p' "$OUT" 2>/dev/null || true)
stats_section=$(sed -n '/<!-- stats:start -->/,/<!-- stats:end -->/p' "$OUT" 2>/dev/null || true)
providers_section=$(sed -n '/<!-- providers:start -->/,/<!-- providers:end -->/p' "$OUT" 2>/dev/null || true)
invalidation_section=$(sed -n '/<!-- invalidation:start -->/,/<!-- invalidation:end -->/p' "$OUT" 2>/dev/null || true)
signin_section=$(sed -n '/<!-- signin:start -->/,/<!-- signin:end -->/p' "$OUT" 2>/dev/null || true)
{
    echo "# pg_jwt benchmarks"
    echo
    echo "Produced by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s."
    echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}, $(free -g | awk '/^Mem:/ {print $2}') GiB;"
    echo "$(psql -XAt -c 'SELECT version()' 2>/dev/null | cut -d, -f1 || "$PG_BIN/postgres" --version)."
    echo
    echo "Absolute times drift on a shared machine; the ratios are taken within one run and are what"
    echo "the targets are about. Every figure is the median of several runs, with min and max beside it."
    echo
    echo "## 1. Verification floor: pg_jwt against the bare ring check"
    echo
    echo "A realistic token (about 300 bytes of claims), a key set of 3 keys, the full verification"
    echo "(size cap, strict base64url, header policy, key choice by kid, signature, JSON claims, claim"
    echo "checks) against ring's signature check alone on the same bytes. Rust, no PostgreSQL."
    echo
    cat "$WORK/floor.md"
    echo
    cat "$WORK/sql.md"
    echo
    cat benches/NOTES.md
    # The soak's section (make soak) is kept as it was: this script does not rerun it.
    if [ -n "$soak_section" ]; then echo; printf '%s\n' "$soak_section"; fi
    if [ -n "$stats_section" ]; then echo; printf '%s\n' "$stats_section"; fi
    if [ -n "$providers_section" ]; then echo; printf '%s\n' "$providers_section"; fi
    if [ -n "$invalidation_section" ]; then echo; printf '%s\n' "$invalidation_section"; fi
    if [ -n "$signin_section" ]; then echo; printf '%s\n' "$signin_section"; fi
} > "$OUT"
say "wrote $OUT"
cat "$OUT"
