#!/usr/bin/env bash
# make profile: where a pooled transaction's time goes, from `perf` samples of section 4c's
# workload (benches/runner, `per_transaction`): three interleaved rounds of its cases, each run
# under `perf record` with call graphs; the report gives microseconds per transaction by
# library and, for pg_jwt, by function (inclusive and own time), and each pg_jwt case and the
# floors against their references (medians of the rounds, and each round's difference).
# pg_jwt is built with frame pointers for it (a separate target folder), so that the call
# graphs cross its frames; the normal release build is installed again at the end.
# Findings, not targets: `make bench` measures the targets. Writes benches/PROFILE.md
# (PGJWT_PROFILE_OUT elsewhere). Needs `perf` (Debian: linux-perf).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if ! command -v perf >/dev/null; then
    echo "make profile needs perf (Debian: apt-get install linux-perf)" >&2
    exit 2
fi
if ! perf record -q -e cpu-clock -C 0 -o /dev/null -- true >/dev/null 2>&1; then
    echo "perf may not sample CPU 0 for this user: run as root, or lower kernel.perf_event_paranoid" >&2
    exit 2
fi
OUT=${PGJWT_PROFILE_OUT:-$ROOT/benches/PROFILE.md}
# The samples (about 80 MB) are removed at the end unless PGJWT_PROFILE_DIR names where to keep them.
DIR=${PGJWT_PROFILE_DIR:-$(mktemp -d /tmp/pgjwt-profile.XXXXXX)}
keep=${PGJWT_PROFILE_DIR:+yes}
mkdir -p "$DIR"
started=$(date +%s)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit with uncommitted changes"; fi
normal_target=${CARGO_TARGET_DIR%/}
finish() {
    local status=$?
    say "installing the normal release build again"
    if ! CARGO_TARGET_DIR=$normal_target bash scripts/install.sh >"$DIR/reinstall.log" 2>&1; then
        tail -5 "$DIR/reinstall.log" >&2
        echo "the frame-pointer build of pg_jwt is still installed: run scripts/install.sh" >&2
        keep=yes
    fi
    if [ "$status" -ne 0 ]; then keep=yes; fi
    if [ -z "$keep" ]; then rm -rf "$DIR"; else echo "samples and logs kept in $DIR" >&2; fi
}
trap finish EXIT

say "section 4c under perf (pg_jwt built with frame pointers)"
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$normal_target-fp" PGJWT_BENCH_ONLY=4c \
    PGJWT_PROFILE_DIR="$DIR" bash scripts/bench.sh >"$DIR/bench.log" 2>&1 || {
    tail -20 "$DIR/bench.log" >&2
    exit 1
}
say "the report"

python3 "$ROOT/scripts/profile-report.py" "$DIR" >"$DIR/report.md"
{
    echo "# Where a pooled transaction's time goes (make profile)"
    echo
    echo "Produced by \`make profile\` (scripts/profile.sh) on $(date -u '+%Y-%m-%d %H:%M UTC') in $(( $(date +%s) - started )) s, on $commit."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $("$PG_BIN/postgres" --version)."
    echo
    cat "$DIR/report.md"
} > "$OUT"
cat "$OUT"
