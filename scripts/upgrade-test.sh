#!/usr/bin/env bash
# The upgrade parity test: install the previous release's SQL (tests/upgrade/), run
# ALTER EXTENSION pg_jwt UPDATE, and compare the resulting catalog (functions with their
# arguments, results, volatility, parallel safety, strictness, C symbols, comments and
# privileges; tables with columns, defaults, constraints, triggers and privileges; other
# member objects) with a fresh install of this version. They must be
# identical, also where default privileges of the installing role would grant pg_jwt's tables
# and functions to other roles (src/privileges.rs) and where a relation took the name of the
# revocation table's primary key first. Needs a running cluster (PGHOST/PGPORT set by the caller) with the current build
# installed. Prints a cargo-style result line for the summary.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
extdir="$("$PG_CONFIG" --sharedir)/extension"
for old in tests/upgrade/pg_jwt--*.sql; do
    $SUDO install -m 644 "$old" "$extdir/"
done
catalog() {
    psql -X -At -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
SELECT 'function ' || p.proname || '(' || pg_get_function_arguments(p.oid) || ') -> ' || pg_get_function_result(p.oid)
       || ' vol=' || p.provolatile::text || ' par=' || p.proparallel::text || ' strict=' || p.proisstrict::text
       || ' sym=' || p.prosrc || ' acl=' || coalesce(p.proacl, acldefault('f', p.proowner))::text
       || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass::oid
WHERE d.refclassid = 'pg_extension'::regclass::oid AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_jwt')
UNION ALL
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass::oid AND d.deptype = 'e' AND d.classid <> 'pg_proc'::regclass::oid
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_jwt')
UNION ALL
SELECT 'table ' || c.relname || ' acl=' || coalesce(c.relacl, acldefault('r', c.relowner))::text
       || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '') || ' columns='
       || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
                             || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), ', ' ORDER BY a.attnum)
           FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass::oid
WHERE d.refclassid = 'pg_extension'::regclass::oid AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_jwt')
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid IN (SELECT d.objid FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass::oid AND d.refclassid = 'pg_extension'::regclass::oid AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_jwt'))
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT d.objid FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass::oid AND d.refclassid = 'pg_extension'::regclass::oid AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_jwt'))
UNION ALL
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'pg_jwt'
ORDER BY 1;
SQL
}
failed=0
passed=0
# The unreleased upgrade script is generated from the one source of each object (src/).
if python3 scripts/upgrade-script.py --check; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
for old in tests/upgrade/pg_jwt--*.sql; do
    from=$(basename "$old" .sql | sed 's/^pg_jwt--//')
    say "upgrade parity: $from -> the current version"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS upgrade_old" -c "DROP DATABASE IF EXISTS upgrade_new" \
        -c "CREATE DATABASE upgrade_old" -c "CREATE DATABASE upgrade_new"
    psql -X -q -v ON_ERROR_STOP=1 -d upgrade_old -c "CREATE EXTENSION pg_jwt VERSION '$from'" \
        -c "ALTER EXTENSION pg_jwt UPDATE"
    psql -X -q -v ON_ERROR_STOP=1 -d upgrade_new -c "CREATE EXTENSION pg_jwt"
    fresh=$(catalog upgrade_new)
    if [ "$(printf '%s\n' "$fresh" | grep -c '^function ')" -lt 15 ]; then
        echo "the catalog query found too few functions: the comparison would prove nothing" >&2
        failed=$((failed + 1))
    elif diff -u <(printf '%s\n' "$fresh") <(catalog upgrade_old); then
        passed=$((passed + 1))
    else
        echo "the catalog after upgrading from $from differs from a fresh install (- fresh, + upgraded)" >&2
        failed=$((failed + 1))
    fi
    # The same with default privileges of the installing role (hardened: PUBLIC's EXECUTE on
    # functions revoked, tables and functions granted to another role and to pg_monitor) and a
    # relation that took the primary key's name before the table was created: upgraded and
    # fresh, the catalogs agree; the privileged members hold no default privilege; the
    # functions for everyone keep what default privileges gave.
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS upgrade_dp" -c "DROP DATABASE IF EXISTS upgrade_dpnew" \
        -c "CREATE DATABASE upgrade_dp" -c "CREATE DATABASE upgrade_dpnew" \
        -c "DO \$\$ BEGIN CREATE ROLE upgrade_app; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" \
        -c "DO \$\$ BEGIN CREATE ROLE upgrade_keeper; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$"
    for db in upgrade_dp upgrade_dpnew; do
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
            -c "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO upgrade_app, pg_monitor" \
            -c "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC" \
            -c "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO upgrade_app, pg_monitor" \
            -c "CREATE TABLE decoy (a int CONSTRAINT jwt_revocations_pkey PRIMARY KEY)"
    done
    psql -X -q -v ON_ERROR_STOP=1 -d upgrade_dp -c "CREATE EXTENSION pg_jwt VERSION '$from'"
    # A grant made by hand to a role no default privilege names survives the update.
    kept=t
    if [ "$from" != 0.1.0 ]; then
        psql -X -q -v ON_ERROR_STOP=1 -d upgrade_dp -c "GRANT SELECT ON jwt_revocations TO upgrade_keeper"
    fi
    psql -X -q -v ON_ERROR_STOP=1 -d upgrade_dp -c "ALTER EXTENSION pg_jwt UPDATE"
    if [ "$from" != 0.1.0 ]; then
        kept=$(psql -X -At -d upgrade_dp -c "SELECT has_table_privilege('upgrade_keeper', 'jwt_revocations', 'SELECT')")
        psql -X -q -d upgrade_dp -c "REVOKE SELECT ON jwt_revocations FROM upgrade_keeper"
    fi
    if [ "$kept" = t ]; then
        passed=$((passed + 1))
    else
        echo "the update from $from took back a grant made by hand" >&2
        failed=$((failed + 1))
    fi
    psql -X -q -v ON_ERROR_STOP=1 -d upgrade_dpnew -c "CREATE EXTENSION pg_jwt"
    if diff -u <(catalog upgrade_dpnew) <(catalog upgrade_dp); then
        passed=$((passed + 1))
    else
        echo "with default privileges and a planted key name, the catalog after upgrading from $from differs from a fresh install (- fresh, + upgraded)" >&2
        failed=$((failed + 1))
    fi
    for db in upgrade_dp upgrade_dpnew; do
        privileges=$(psql -X -At -d "$db" <<'SQL'
SELECT string_agg(format('%s=%s', priv, ok), ' ' ORDER BY priv) FROM (VALUES
    ('revocations-delete', has_table_privilege('upgrade_app', 'jwt_revocations', 'DELETE')),
    ('revocations-select-monitor', has_table_privilege('pg_monitor', 'jwt_revocations', 'SELECT')),
    ('revoke', has_function_privilege('upgrade_app', 'jwt_revoke_token(text, timestamptz)', 'EXECUTE')),
    ('reset', has_function_privilege('upgrade_app', 'jwt_stats_reset()', 'EXECUTE')),
    ('stats', has_function_privilege('upgrade_app', 'jwt_stats()', 'EXECUTE')),
    ('stats-monitor', has_function_privilege('pg_monitor', 'jwt_stats()', 'EXECUTE')),
    ('claim', has_function_privilege('upgrade_app', 'jwt_claim(text)', 'EXECUTE'))) v(priv, ok)
SQL
)
        want="claim=t reset=f revocations-delete=f revocations-select-monitor=f revoke=f stats=f stats-monitor=t"
        if [ "$privileges" = "$want" ]; then
            passed=$((passed + 1))
        else
            echo "default privileges on $db ($from): got $privileges, want $want" >&2
            failed=$((failed + 1))
        fi
    done
    psql -X -q -d postgres -c "DROP DATABASE upgrade_old" -c "DROP DATABASE upgrade_new" \
        -c "DROP DATABASE upgrade_dp" -c "DROP DATABASE upgrade_dpnew"
done
psql -X -q -d postgres -c "DROP ROLE IF EXISTS upgrade_app" -c "DROP ROLE IF EXISTS upgrade_keeper"
if [ "$failed" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (upgrade parity)"
else
    echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (upgrade parity)"
    exit 1
fi
