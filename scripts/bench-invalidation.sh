#!/usr/bin/env bash
# make bench-invalidation: what a revocation, or a reload, costs everyone else (issue 24, target 3). pgbench,
# 4 clients (PGJWT_BENCH_CLIENTS): one indexed SELECT under a jwt_claim_uuid policy per
# transaction, the token of one of 20,000 users drawn at random (ES256, every signature in the
# shared cache), in 7 interleaved rounds of 5 s: without revocations, and while another session
# revokes one (unrelated) token per second (one session that sleeps in between). A revocation bumps the shared generation: each
# backend then re-checks a cached token for revocation at its next use, and nothing else (its
# key sets and verifications stay; src/generations.rs). The median of the per-round ratios.
# The same rounds with one configuration reload per second that changes no pg_jwt setting.
# Then the standby half: a hot standby (pg_basebackup -R) serves the same read workload in 7
# interleaved rounds without replay and while the primary runs a write load (single-row inserts
# into a table of their own at PGJWT_BENCH_WRITE_RATE per second, 500 by default), which the
# standby replays (a standby's replay progress bumps the same generation as a revocation); the
# replay and the primary run on a CPU of their own, the standby's readers on CPU 0.
# Writes its section into BENCHMARKS.md (between the invalidation markers; make bench keeps it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/install.sh
PGPORT=${PGJWT_BENCH_PORT:-54343}
start_cluster "shared_preload_libraries = 'pg_jwt'
log_min_messages = warning"
work=$(mktemp -d /tmp/pgjwt-inv.XXXXXX)
chmod 755 "$work"
REVOKER=""
STANDBY=""
stop_standby() {
    if [ -n "$STANDBY" ] && [ -d "$STANDBY/data" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$STANDBY/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$STANDBY"
    fi
}
trap '[ -z "$REVOKER" ] || kill "$REVOKER" 2>/dev/null; stop_standby; stop_cluster; rm -rf "$work"' EXIT
started=$(date +%s)
clients=${PGJWT_BENCH_CLIENTS:-4}
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_jwt;
CREATE ROLE bench_inv LOGIN;
CREATE TABLE inv_keys AS SELECT jwt_generate_jwk('ES256', 'es') AS k;
SELECT jsonb_build_object('keys', jsonb_agg(jwt_public_jwks(k) -> 'keys' -> 0))::text AS pub FROM inv_keys \gset
ALTER SYSTEM SET pg_jwt.jwks = :'pub';
SELECT pg_reload_conf() \gset
CREATE TABLE inv_tokens AS SELECT g, jwt_sign(jsonb_build_object('sub', 'user-' || g, 'jti', 'jti-' || g,
    'tenant_id', '00000000-0000-4000-8000-00000000000' || (g % 10), 'exp', extract(epoch FROM now())::bigint + 3600), k) AS t
  FROM inv_keys, generate_series(1, 20000) g;
ALTER TABLE inv_tokens ADD PRIMARY KEY (g);
GRANT SELECT ON inv_tokens TO bench_inv;
CREATE TABLE inv_docs (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
INSERT INTO inv_docs SELECT g, ('00000000-0000-4000-8000-00000000000' || (g % 10))::uuid, 'doc ' || g FROM generate_series(1, 100000) g;
ALTER TABLE inv_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON inv_docs USING (tenant_id = jwt_claim_uuid('tenant_id'));
GRANT SELECT ON inv_docs TO bench_inv;
-- The list is not empty (the common case once revocations are in use).
DO $$ BEGIN PERFORM jwt_revoke_token('revoked-before-' || g) FROM generate_series(1, 100) g; END $$;
SQL
printf '%s\n' '\set rid random(1, 100000)' '\set tid random(1, 20000)' 'BEGIN;' \
    "SELECT set_config('pg_jwt.token', t, true) FROM inv_tokens WHERE g = :tid;" \
    'SELECT body FROM inv_docs WHERE id = :rid;' 'END;' >"$work/users.sql"
READ_PIN=()  # taskset prefixes for the standby half (below)
WRITE_PIN=()
tps() { # [host port]: the read workload, against the primary unless told
    "${READ_PIN[@]}" "$PG_BIN/pgbench" -n -c "$clients" -j "$((clients < 2 ? clients : 2))" -T 5 -f "$work/users.sql" \
        -h "${1:-$PGHOST}" -p "${2:-$PGPORT}" -U bench_inv postgres 2>/dev/null |
        sed -nE 's/^tps = ([0-9.]+).*/\1/p'
}
revoker() { # round: one revocation per second from one session (it sleeps in between)
    for i in 1 2 3 4 5 6 7; do
        echo "SELECT jwt_revoke_token('revoked-during-$1-$i'); SELECT pg_sleep(1);"
    done | psql -X -q >/dev/null 2>&1 || true
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
pin_tree() { # pid cpus: a process and its children
    local p
    for p in "$1" $(pgrep -P "$1"); do taskset -a -p -c "$2" "$p" >/dev/null 2>&1 || return 1; done
}
# The revocation half on one CPU: the server (so the revoking session too) and the read pgbench.
# Unpinned on 2 cores, a client and its backend woken on different CPUs put single runs in a mode
# about 35% slower whichever the round was (rounds from 0.58x to 1.75x); the revocations' own
# work stays on the readers' CPU, so it is counted.
pinned_revocations=no
if command -v taskset >/dev/null && pin_tree "$(head -1 "$PGTMP/data/postmaster.pid")" 0; then
    READ_PIN=(taskset -c 0)
    pinned_revocations=yes
fi
tps >/dev/null # warm-up: every user's signature reaches the shared cache
: >"$work/ratios"
: >"$work/quiet"
for round in 1 2 3 4 5 6 7; do
    say "round $round"
    q=$(tps)
    revoker "$round" &
    REVOKER=$!
    r=$(tps)
    kill "$REVOKER" 2>/dev/null || true
    wait "$REVOKER" 2>/dev/null || true
    REVOKER=""
    echo "$q" >>"$work/quiet"
    awk -v q="$q" -v r="$r" 'BEGIN { print r / q }' >>"$work/ratios"
done
ratio=$(median <"$work/ratios")
revocations=$(psql -X -At -c "SELECT count(*) FROM jwt_revocations WHERE value LIKE 'revoked-during-%'")

say "the reload half: one configuration reload per second that changes no pg_jwt setting"
# pg_jwt.jwks is in postgresql.auto.conf (ALTER SYSTEM above), so every reload assigns it again,
# unchanged, in every backend: what a reload for another reason (a logging setting, pg_hba.conf)
# costs the pool. Nothing a verification reads changed, so nothing is voided (src/session).
reloader() {
    for _ in 1 2 3 4 5 6 7; do
        echo "SELECT pg_reload_conf(); SELECT pg_sleep(1);"
    done | psql -X -q >/dev/null 2>&1 || true
}
: >"$work/reload_ratios"
for round in 1 2 3 4 5 6 7; do
    say "reload round $round"
    q=$(tps)
    reloader &
    REVOKER=$!
    r=$(tps)
    kill "$REVOKER" 2>/dev/null || true
    wait "$REVOKER" 2>/dev/null || true
    REVOKER=""
    awk -v q="$q" -v r="$r" 'BEGIN { print r / q }' >>"$work/reload_ratios"
done
reload_ratio=$(median <"$work/reload_ratios")

say "the standby half: a hot standby with and without replay of a write load"
write_rate=${PGJWT_BENCH_WRITE_RATE:-500}
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE inv_writes (id bigserial PRIMARY KEY, body text)"
printf '%s\n' "INSERT INTO inv_writes (body) VALUES (repeat('w', 200));" >"$work/writes.sql"
STANDBY=$(mktemp -d /tmp/pgjwt-inv-standby.XXXXXX)
chmod 755 "$STANDBY"
chown postgres: "$STANDBY" 2>/dev/null || $SUDO chown postgres: "$STANDBY"
STANDBY_PORT=$((PGPORT + 1))
start_standby "$PGHOST" "$PGPORT" "$STANDBY" "$STANDBY_PORT" -c fast
[ "$(psql -X -At -h "$STANDBY" -p "$STANDBY_PORT" -c 'SELECT pg_is_in_recovery()')" = t ] || { echo "the standby is not in recovery" >&2; exit 1; }
writes() { # one round of the primary's write load, rate-limited
    "${WRITE_PIN[@]}" "$PG_BIN/pgbench" -n -c 1 -R "$write_rate" -T 5 -f "$work/writes.sql" postgres >/dev/null 2>&1 || true
}
tps "$STANDBY" "$STANDBY_PORT" >/dev/null # warm-up on the standby (its own shared cache)
# Replay on a CPU of its own. The question is what replay costs the read workload through
# pg_jwt (the shared generation it bumps), not what the primary, its writer and the standby's
# startup process take from the same 2 CPUs: unpinned, that competition swung single rounds from
# 0.53x to 1.59x. The standby's backends (started from now on) and the read pgbench run on CPU 0;
# every process the standby has now (startup, walreceiver, checkpointer, ...), the primary and
# the writer on the last CPU. Both kinds of round run pinned alike.
pinned=no
last_cpu=$(($(nproc) - 1))
if [ "$last_cpu" -ge 1 ] && command -v taskset >/dev/null; then
    standby_pid=$(head -1 "$STANDBY/data/postmaster.pid")
    primary_pid=$(head -1 "$PGTMP/data/postmaster.pid")
    if pin_tree "$standby_pid" "$last_cpu" && taskset -p -c 0 "$standby_pid" >/dev/null &&
        pin_tree "$primary_pid" "$last_cpu"; then
        READ_PIN=(taskset -c 0)
        WRITE_PIN=(taskset -c "$last_cpu")
        pinned=yes
    fi
fi
: >"$work/standby_ratios"
: >"$work/standby_quiet"
lsn_before=$(psql -X -At -h "$STANDBY" -p "$STANDBY_PORT" -c "SELECT pg_last_wal_replay_lsn()")
for round in 1 2 3 4 5 6 7; do
    say "standby round $round"
    q=$(tps "$STANDBY" "$STANDBY_PORT")
    writes &
    WRITER=$!
    r=$(tps "$STANDBY" "$STANDBY_PORT")
    wait "$WRITER" 2>/dev/null || true
    echo "$q" >>"$work/standby_quiet"
    awk -v q="$q" -v r="$r" 'BEGIN { print r / q }' >>"$work/standby_ratios"
done
replayed=$(psql -X -At -h "$STANDBY" -p "$STANDBY_PORT" -c "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '$lsn_before'))")
written=$(psql -X -At -c "SELECT count(*) FROM inv_writes")
standby_ratio=$(median <"$work/standby_ratios")
stop_standby
section=$(
    cat <<EOF
<!-- invalidation:start -->
## What a revocation costs everyone else

\`make bench-invalidation\` ($(date -u +%Y-%m-%d), PostgreSQL $PG_MAJOR, this machine, $(($(date +%s) - started)) s): pgbench,
$clients clients, 20,000 users (ES256) drawn at random, one indexed SELECT under a
\`jwt_claim_uuid\` policy per transaction, 100 revocations in the list; 7 interleaved rounds of
5 s without revocations and with one (unrelated) revocation per second ($revocations in all). $(if [ "$pinned_revocations" = yes ]; then echo "The server
(the revoking session included) and pgbench run on CPU 0 (taskset): unpinned, single rounds swung from 0.58x to 1.75x."; else echo "Unpinned (no taskset)."; fi)

- Ratio with revocations to without: **$(printf '%.3f' "$ratio")x** (median; every round: $(sort -n "$work/ratios" | awk '{ printf "%.3f ", $1 }')), without: $(median <"$work/quiet" | cut -d. -f1) TPS (median).
- Target: one revocation per second costs at most 3% TPS (ratio at least 0.97x): $(awk -v r="$ratio" 'BEGIN { print (r >= 0.97 ? "met" : "MISSED") }').

The same rounds with one configuration reload per second instead (\`pg_reload_conf()\`, no pg_jwt
setting changed: every backend assigns \`pg_jwt.jwks\` again, unchanged, from \`postgresql.auto.conf\`):

- Ratio with reloads to without: **$(printf '%.3f' "$reload_ratio")x** (median; every round: $(sort -n "$work/reload_ratios" | awk '{ printf "%.3f ", $1 }')).
- Target (an unrelated change empties no cache; the same definition as a revocation's): at least 0.97x: $(awk -v r="$reload_ratio" 'BEGIN { print (r >= 0.97 ? "met" : "MISSED") }').

The standby half: a hot standby of the same cluster (\`pg_basebackup -R\`, streaming) serves the same read
workload in 7 interleaved rounds of 5 s: without replay, and while the primary inserts rows into a
table of their own at $write_rate per second, which the standby replays ($written rows, $replayed of WAL
replayed during the rounds). $(if [ "$pinned" = yes ]; then echo "The standby's backends and the read pgbench run on CPU 0; the replay
(the standby's startup, walreceiver and other processes), the primary and its writer on CPU $last_cpu, so that what is
measured is what replay costs the readers through pg_jwt, not the CPU the replay takes (unpinned, single rounds swung from 0.53x to 1.59x)."; else echo "Unpinned (taskset or a second CPU missing): the replay competes with the readers for CPU."; fi)

- Ratio with replay to without: **$(printf '%.3f' "$standby_ratio")x** (median; every round: $(sort -n "$work/standby_ratios" | awk '{ printf "%.3f ", $1 }')), without: $(median <"$work/standby_quiet" | cut -d. -f1) TPS (median).
- Target: a standby under replay serves the read workload at least 0.9x of the same standby without replay: $(awk -v r="$standby_ratio" 'BEGIN { print (r >= 0.9 ? "met" : "MISSED") }').
<!-- invalidation:end -->
EOF
)
echo "$section"
write_bench_section invalidation "$section"
