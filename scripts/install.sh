#!/usr/bin/env bash
# Builds pg_jwt in release mode and installs it into the system PostgreSQL.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
say "building and installing pg_jwt (release)"
if [ -n "$SUDO" ]; then
    cargo pgrx install --release --sudo --pg-config "$PG_CONFIG" >/dev/null
else
    cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
# The optional pure-SQL companion extension (Supabase-compatible names), beside pg_jwt.
$SUDO rm -f "$("$PG_CONFIG" --sharedir)/extension/pg_jwt_auth--0.1.0.sql"  # 0.1.0 installed through an injectable script
$SUDO install -m 644 extensions/pg_jwt_auth/pg_jwt_auth.control extensions/pg_jwt_auth/pg_jwt_auth--*.sql \
    "$("$PG_CONFIG" --sharedir)/extension/"
