#!/usr/bin/env bash
# make deb: a Debian package per PostgreSQL version given (default 15 16 18) in dist/, named and
# laid out as the PGDG packages of extensions are: dist/postgresql-<NN>-pg-jwt_<version>_<arch>.deb
# with the library in /usr/lib/postgresql/<NN>/lib, the control file and every SQL script (fresh
# install and upgrades, pg_jwt_auth too) in /usr/share/postgresql/<NN>/extension, the README and
# the changelog in /usr/share/doc, and Depends: postgresql-<NN>. Built with cargo pgrx package
# against that version's pg_config (16 and 18: the wheels of scripts/setup.sh, whose server
# headers are those of the same major version), packed with dpkg-deb.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
versions=${*:-15 16 18}
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
mkdir -p dist
for v in $versions; do
    config=$(pg_config_of "$v")
    name="postgresql-$v-pg-jwt_${version}_$arch"
    work=$(mktemp -d /tmp/pgjwt-deb.XXXXXX)
    say "packaging dist/$name.deb"
    cargo pgrx package --pg-config "$config" --out-dir "$work/tree" >/dev/null
    stage="$work/$name"
    lib="$stage/usr/lib/postgresql/$v/lib"
    ext="$stage/usr/share/postgresql/$v/extension"
    doc="$stage/usr/share/doc/postgresql-$v-pg-jwt"
    mkdir -p "$lib" "$ext" "$doc" "$stage/DEBIAN"
    install -m 644 "$work/tree$("$config" --pkglibdir)/pg_jwt.so" "$lib/"
    install -m 644 "$work/tree$("$config" --sharedir)/extension/pg_jwt"* "$ext/"
    install -m 644 extensions/pg_jwt_auth/pg_jwt_auth.control extensions/pg_jwt_auth/pg_jwt_auth--*.sql "$ext/"
    rm -f "$ext/pg_jwt_auth--0.1.0.sql" # 0.1.0's install script was injectable (docs/security.md, S6)
    install -m 644 README.md CHANGELOG.md "$doc/"
    installed_kb=$(du -sk "$stage/usr" | cut -f1)
    cat >"$stage/DEBIAN/control" <<CONTROL
Package: postgresql-$v-pg-jwt
Version: $version
Architecture: $arch
Maintainer: pg_jwt developers <pg_jwt@localhost>
Depends: postgresql-$v, libc6 (>= 2.34)
Section: database
Priority: optional
Installed-Size: $installed_kb
Description: JSON Web Tokens verified inside PostgreSQL $v, claims for row-level security
 pg_jwt verifies the raw token an application sets on its connection against the identity
 provider's keys (fetched by a background worker), and exposes its claims to row-level
 security policies (jwt_claim, jwt_claim_uuid, jwt_claims). Requires
 shared_preload_libraries = 'pg_jwt' and a restart.
CONTROL
    dpkg-deb --build --root-owner-group "$stage" "dist/$name.deb" >/dev/null
    rm -rf "$work"
    echo "dist/$name.deb"
done
