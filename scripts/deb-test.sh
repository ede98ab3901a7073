#!/usr/bin/env bash
# The Debian package test (PostgreSQL 15, the system's packages): builds the package (make deb),
# installs it with dpkg -i into the system PostgreSQL, checks that dpkg owns every file, starts
# a cluster from the system's binaries, runs the SQL golden files against it, stops it, removes
# the package with dpkg -r and checks that its files are gone. Then the way into an existing
# server from source: install-deps.sh's stops (a wrong pg_config, no cargo), and
# make install PG_CONFIG=... (which puts the build of this checkout back, as before the test).
# Prints a cargo-style result line.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ "$PG_MAJOR" = 15 ] || { echo "the package test runs against the system PostgreSQL 15" >&2; exit 2; }
deb=$(bash scripts/deb.sh 15 | tail -1)
passed=0
failed=0
check() { # name, ok (0/1)
    if [ "$2" = 0 ]; then passed=$((passed + 1)); else echo "deb: $1 FAILED" >&2; failed=$((failed + 1)); fi
}
pkg=postgresql-15-pg-jwt
check "control: name, version, Depends" "$(dpkg-deb -f "$deb" Package Depends | tr '\n' ' ' | grep -q "^Package: $pkg Depends: postgresql-15" && echo 0 || echo 1)"
$SUDO dpkg -i "$deb" >/dev/null 2>&1
files=$(dpkg -L "$pkg")
check "the library at the PGDG path" "$(echo "$files" | grep -qx /usr/lib/postgresql/15/lib/pg_jwt.so && echo 0 || echo 1)"
for f in pg_jwt.control pg_jwt--0.3.0.sql pg_jwt--0.2.0--0.3.0.sql pg_jwt_auth.control pg_jwt_auth--0.1.1.sql; do
    check "$f installed" "$(echo "$files" | grep -qx "/usr/share/postgresql/15/extension/$f" && echo 0 || echo 1)"
done
PGPORT=${PGJWT_DEB_PORT:-54341}
start_cluster "shared_preload_libraries = 'pg_jwt'
log_min_messages = warning"
line=$(bash scripts/regress.sh 2>&1 | grep -E '^test result:' || true)
stop_cluster
check "the golden files against the installed package" "$(echo "$line" | grep -q '^test result: ok' && echo 0 || echo 1)"
$SUDO dpkg -r "$pkg" >/dev/null 2>&1
left=0
while read -r f; do
    [ -f "$f" ] && left=1
done < <(echo "$files")
check "dpkg -r removes every file" "$left"
check "dpkg no longer lists the package" "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && echo 1 || echo 0)"
# make install into an existing server: only what it needs, and a clear stop for what is missing.
out=$(PG_CONFIG=/nonexistent/pg_config bash scripts/install-deps.sh 2>&1 || true)
check "install: a wrong pg_config is named" "$(echo "$out" | grep -q "no pg_config at '/nonexistent/pg_config'" && echo 0 || echo 1)"
out=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin bash scripts/install-deps.sh 2>&1 || true)
check "install: without cargo, how to install Rust" "$(echo "$out" | grep -q "rustup" && echo 0 || echo 1)"
# The build of this checkout back in the system PostgreSQL, the way a DBA installs from source.
make --no-print-directory install PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null 2>&1
check "make install PG_CONFIG=... installs the library" "$([ -f /usr/lib/postgresql/15/lib/pg_jwt.so ] && echo 0 || echo 1)"
echo "test result: $([ "$failed" = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (Debian package)"
[ "$failed" = 0 ]
