#!/usr/bin/env bash
# What `make install` needs, and nothing of the test tooling: the Rust toolchain, clang (for
# the bindings to PostgreSQL's headers), the server headers of the PostgreSQL that PG_CONFIG
# describes, and cargo-pgrx (the pinned version, built once with cargo). Anything else missing
# stops here with what to install, instead of failing later in the build.
source "$(dirname "$0")/lib.sh"
stop() { printf 'pg_jwt: %s\n' "$*" >&2; exit 1; }
if ! command -v cargo >/dev/null 2>&1; then
    stop "building pg_jwt needs the Rust toolchain (cargo), which is not installed.
  Install it with rustup, as the user that runs make:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
  then open a new shell (or: . \"\$HOME/.cargo/env\") and run make install again."
fi
[ -x "$PG_CONFIG" ] || command -v "$PG_CONFIG" >/dev/null 2>&1 ||
    stop "no pg_config at '$PG_CONFIG': give the one of your server, e.g. make install PG_CONFIG=/usr/lib/postgresql/16/bin/pg_config"
major=$("$PG_CONFIG" --version | sed -nE 's/^PostgreSQL ([0-9]+).*/\1/p')
case "$major" in
    15 | 16 | 17 | 18) ;;
    *) stop "PostgreSQL '$major' (from $PG_CONFIG) is not supported: 15, 16, 17 or 18" ;;
esac
[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] ||
    stop "the server headers of PostgreSQL $major are missing ($("$PG_CONFIG" --includedir-server)/postgres.h).
  Debian, Ubuntu (PGDG too): apt install postgresql-server-dev-$major
  RHEL, Rocky, Fedora (PGDG): dnf install postgresql$major-devel"
if ! command -v clang >/dev/null 2>&1 || ! { ldconfig -p 2>/dev/null | grep -q libclang || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib64/libclang*.so* >/dev/null 2>&1; }; then
    stop "clang and libclang are missing (they read PostgreSQL's headers during the build).
  Debian, Ubuntu: apt install clang libclang-dev
  RHEL, Rocky, Fedora: dnf install clang clang-devel"
fi
if ! cargo pgrx --version 2>/dev/null | grep -qF "$PGRX_VERSION"; then
    say "installing cargo-pgrx $PGRX_VERSION with cargo (about 12 minutes on 2 cores, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
# cargo-pgrx's configuration must know this version's pg_config (no download, ever): written
# when absent, extended when it lacks this version, left alone otherwise.
config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if [ ! -f "$config" ]; then
    say "cargo pgrx init --pg$major $PG_CONFIG"
    cargo pgrx init "--pg$major" "$PG_CONFIG"
elif ! grep -qE "^pg$major *=" "$config"; then
    python3 - "$config" "pg$major" "$PG_CONFIG" <<'PY'
import sys
path, key, value = sys.argv[1:4]
text = open(path).read()
line = f'{key} = "{value}"\n'
text = text.replace("[configs]\n", "[configs]\n" + line, 1) if "[configs]\n" in text else text + "\n[configs]\n" + line
open(path, "w").write(text)
PY
fi
