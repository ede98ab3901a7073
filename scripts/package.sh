#!/usr/bin/env bash
# make package: for each PostgreSQL version given (default 15 16 18), an installable tarball in
# dist/ that a DBA copies to a server without Rust: the library, the control file and every SQL
# script (fresh install and upgrades) for that major version, with install.sh and a README.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
versions=${*:-15 16 18}
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -1)
mkdir -p dist
for v in $versions; do
    config=$(pg_config_of "$v")
    name="pg_jwt-$version-pg$v-linux-$(uname -m)"
    work=$(mktemp -d /tmp/pgjwt-pkg.XXXXXX)
    say "packaging $name"
    cargo pgrx package --pg-config "$config" --out-dir "$work/tree" >/dev/null
    stage="$work/$name"
    mkdir -p "$stage/lib" "$stage/extension"
    cp "$work/tree$("$config" --pkglibdir)/pg_jwt.so" "$stage/lib/"
    cp "$work/tree$("$config" --sharedir)/extension/pg_jwt"* "$stage/extension/"
    cp extensions/pg_jwt_auth/pg_jwt_auth.control extensions/pg_jwt_auth/pg_jwt_auth--*.sql "$stage/extension/"
    cat >"$stage/install.sh" <<'SH'
#!/bin/sh
# Installs pg_jwt into the PostgreSQL that pg_config describes (default: the first in PATH).
# Usage: ./install.sh [/path/to/pg_config]   (as a user who may write PostgreSQL's directories)
set -eu
PG_CONFIG=${1:-pg_config}
here=$(cd "$(dirname "$0")" && pwd)
want=$(cat "$here/PG_MAJOR")
have=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ "$have" != "$want" ]; then
    echo "this package is for PostgreSQL $want; $PG_CONFIG is PostgreSQL $have" >&2
    exit 1
fi
install -m 755 "$here/lib/pg_jwt.so" "$("$PG_CONFIG" --pkglibdir)/"
install -m 644 "$here"/extension/* "$("$PG_CONFIG" --sharedir)/extension/"
echo "pg_jwt installed into PostgreSQL $have. Next: shared_preload_libraries = 'pg_jwt' in"
echo "postgresql.conf, restart, then CREATE EXTENSION pg_jwt (see README.md)."
SH
    chmod 755 "$stage/install.sh"
    echo "$v" >"$stage/PG_MAJOR"
    cp README.md "$stage/README.md"
    tar -C "$work" -czf "dist/$name.tar.gz" "$name"
    rm -rf "$work"
    echo "dist/$name.tar.gz"
done
