//! The privileges of pg_jwt's privileged members are the ones its scripts write, whatever
//! default privileges say. `ALTER DEFAULT PRIVILEGES` of the role that runs `CREATE EXTENSION`
//! or `ALTER EXTENSION ... UPDATE` (in the extension's schema, or everywhere) applies to each
//! table and function the script creates: `GRANT ALL ON TABLES TO app` would hand the
//! application role `jwt_revocations` (delete every revocation), and `GRANT ALL ON FUNCTIONS`
//! the revoking functions, `jwt_stats_reset()` and the cluster-wide statistics.
//!
//! The last statement of the install script and of each upgrade script takes back, on each
//! member the scripts keep from PUBLIC (the table, the revoking, purging, statistics and
//! refetching functions, the trigger function), every privilege of each role that a default
//! privilege of the member's owner names, with `CASCADE` (what that role granted on goes too);
//! `pg_monitor`'s EXECUTE on `jwt_stats()` and its counters, which the scripts grant, stays.
//! The other functions (the accessors, `jwt_verify`, ...) are for everyone and keep whatever
//! default privileges gave: a hardened set-up that revokes PUBLIC's EXECUTE by default and
//! grants it to the application role keeps working. Grants made by hand to roles no default
//! privilege names survive an update.

use pgrx::prelude::*;

extension_sql!(
    r#"
-- upgrade 0.3.0 begin
-- Default privileges never reach pg_jwt's privileged members (src/privileges.rs): on each
-- member the scripts keep from PUBLIC, each role that a default privilege of the member's owner
-- names (for its schema, or everywhere) loses every privilege, except pg_monitor's EXECUTE on
-- jwt_stats() and its counters. Members are found through pg_depend. A grant made by hand to a
-- role no default privilege names is kept.
DO $pg_jwt_privileges$
DECLARE
    r record;
BEGIN
    FOR r IN
        WITH member AS (
            SELECT pg_catalog.format('FUNCTION %s', p.oid::pg_catalog.regprocedure) AS object,
                   p.proname AS name, p.proowner AS owner, p.pronamespace AS schema, 'f'::pg_catalog."char" AS kind
              FROM pg_catalog.pg_extension e
              JOIN pg_catalog.pg_depend d
                ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
               AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
              JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt'
               AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['jwt_revoke_token', 'jwt_revoke_session',
                   'jwt_revoke_subject', 'jwt_unrevoke', 'jwt_purge_revocations', 'jwt_stats', 'jwt_stats_reset',
                   'pg_jwt_stats_counts', 'jwt_jwks_refresh', 'pg_jwt_revocations_changed']::pg_catalog.name[])
            UNION ALL
            SELECT pg_catalog.format('TABLE %s', c.oid::pg_catalog.regclass),
                   c.relname, c.relowner, c.relnamespace, 'r'::pg_catalog."char"
              FROM pg_catalog.pg_extension e
              JOIN pg_catalog.pg_depend d
                ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
               AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt' AND c.relkind OPERATOR(pg_catalog.=) 'r'
        )
        SELECT DISTINCT m.object, m.name, a.grantee
          FROM member m
          JOIN pg_catalog.pg_default_acl da
            ON da.defaclrole OPERATOR(pg_catalog.=) m.owner
           AND da.defaclobjtype OPERATOR(pg_catalog.=) m.kind
           AND da.defaclnamespace OPERATOR(pg_catalog.=) ANY (ARRAY[m.schema, 0::pg_catalog.oid])
         CROSS JOIN LATERAL pg_catalog.aclexplode(da.defaclacl) a
         WHERE a.grantee OPERATOR(pg_catalog.<>) m.owner
           AND NOT (a.grantee OPERATOR(pg_catalog.=) 'pg_monitor'::pg_catalog.regrole
                    AND m.name OPERATOR(pg_catalog.=) ANY (ARRAY['jwt_stats', 'pg_jwt_stats_counts']::pg_catalog.name[]))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s CASCADE', r.object,
            CASE WHEN r.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
                 ELSE r.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
END
$pg_jwt_privileges$;
-- upgrade 0.3.0 end
"#,
    name = "privileges",
    finalize
);
