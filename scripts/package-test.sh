#!/usr/bin/env bash
# The package install test: builds the tarball for this PostgreSQL version (make package),
# installs it with its own install.sh into a fresh PostgreSQL (16 and 18: a new unpacked copy of
# the same wheel; 15: the system's packages, the only copy Debian's fixed paths allow), starts a
# cluster from that installation and runs the SQL golden files against it. Prints a cargo-style
# result line for the summary.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/package.sh "$PG_MAJOR"
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -1)
tarball="dist/pg_jwt-$version-pg$PG_MAJOR-linux-$(uname -m).tar.gz"
fresh=$(mktemp -d /tmp/pgjwt-fresh.XXXXXX)
chmod 755 "$fresh"
cleanup() { stop_cluster; rm -rf "$fresh"; }
trap cleanup EXIT
config=$PG_CONFIG
if [ "$PG_MAJOR" != 15 ]; then
    wheel=$(ls "$PG_WHEELS_DIR/pg$PG_MAJOR"/*.whl 2>/dev/null | head -1)
    [ -n "$wheel" ] || { echo "no wheel kept in $PG_WHEELS_DIR/pg$PG_MAJOR (run make setup)" >&2; exit 1; }
    python3 -m zipfile -e "$wheel" "$fresh/pg"
    chmod -R a+rX "$fresh/pg"
    config=$(find "$fresh/pg" -path '*/pginstall/bin/pg_config')
    chmod a+x "$(dirname "$config")"/*
    find "$fresh/pg" -name pg_regress -exec chmod a+x {} +
    if [ -e "$("$config" --pkglibdir)/pg_jwt.so" ]; then
        echo "the fresh copy already holds pg_jwt" >&2
        exit 1
    fi
fi
tar -C "$fresh" -xzf "$tarball"
"$fresh/pg_jwt-$version-pg$PG_MAJOR-linux-$(uname -m)/install.sh" "$config" >/dev/null
export PG_CONFIG=$config
PG_BIN=$("$config" --bindir)
PGPORT=${PGJWT_PACKAGE_PORT:-54337}
start_cluster "shared_preload_libraries = 'pg_jwt'
log_min_messages = warning"
bash scripts/regress.sh | sed 's/(pg_regress golden files)/(golden files against the installed package)/'
