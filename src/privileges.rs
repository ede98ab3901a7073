//! The privileges of every member of the extension are the ones its scripts write, whatever
//! default privileges say. `ALTER DEFAULT PRIVILEGES` of the role that runs `CREATE EXTENSION`
//! or `ALTER EXTENSION ... UPDATE` (in the extension's schema, or everywhere) applies to each
//! table and function the script creates: `GRANT ALL ON TABLES TO app` would hand the
//! application role `jwt_revocations` (delete every revocation), and `GRANT ALL ON FUNCTIONS`
//! the revoking functions, `jwt_stats_reset()` and the cluster-wide statistics. The last
//! statement of the install script and of each upgrade script takes back, on every member,
//! every privilege of each role a default privilege of the member's owner names (PUBLIC's
//! EXECUTE on functions excepted: the scripts revoke it themselves where it must not be), then
//! grants `pg_monitor` again what the scripts grant it. Grants a DBA made by hand to other roles
//! (`GRANT EXECUTE ON FUNCTION jwt_revoke_token ... TO revoker`) survive an update.

use pgrx::prelude::*;

extension_sql!(
    r#"
-- upgrade 0.3.0 begin
-- Default privileges never reach pg_jwt's members (src/privileges.rs): each role that a default
-- privilege of the member's owner names (for its schema, or everywhere) loses every privilege
-- on the member, PUBLIC too for the table (functions keep PUBLIC's EXECUTE where the script
-- left it); then pg_monitor gets back what the script grants it. Members are found through
-- pg_depend. A grant made by hand to a role no default privilege names is kept.
DO $pg_jwt_privileges$
DECLARE
    r record;
BEGIN
    FOR r IN
        WITH member AS (
            SELECT pg_catalog.format('FUNCTION %s', p.oid::pg_catalog.regprocedure) AS object,
                   p.proowner AS owner, p.pronamespace AS schema, 'f'::pg_catalog."char" AS kind
              FROM pg_catalog.pg_extension e
              JOIN pg_catalog.pg_depend d
                ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
               AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
              JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt'
            UNION ALL
            SELECT pg_catalog.format('TABLE %s', c.oid::pg_catalog.regclass),
                   c.relowner, c.relnamespace, 'r'::pg_catalog."char"
              FROM pg_catalog.pg_extension e
              JOIN pg_catalog.pg_depend d
                ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
               AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt' AND c.relkind OPERATOR(pg_catalog.=) 'r'
        )
        SELECT DISTINCT m.object, a.grantee
          FROM member m
          JOIN pg_catalog.pg_default_acl da
            ON da.defaclrole OPERATOR(pg_catalog.=) m.owner
           AND da.defaclobjtype OPERATOR(pg_catalog.=) m.kind
           AND da.defaclnamespace OPERATOR(pg_catalog.=) ANY (ARRAY[m.schema, 0::pg_catalog.oid])
         CROSS JOIN LATERAL pg_catalog.aclexplode(da.defaclacl) a
         WHERE a.grantee OPERATOR(pg_catalog.<>) m.owner
           AND NOT (m.kind OPERATOR(pg_catalog.=) 'f' AND a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid)
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', r.object,
            CASE WHEN r.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
                 ELSE r.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
    GRANT EXECUTE ON FUNCTION @extschema@.pg_jwt_stats_counts(), @extschema@.jwt_stats() TO pg_monitor;
END
$pg_jwt_privileges$;
-- upgrade 0.3.0 end
"#,
    name = "privileges",
    finalize
);
