-- pg_jwt_auth 0.1.0 -> 0.1.1 (one line per change):
-- the install script quotes pg_jwt's schema name with format's %I (0.1.0 spliced it into a quoted body, so a hostile schema name ran SQL as the installing superuser).
-- auth.uid(), auth.jwt(), auth.role(), auth.email(): SQL-standard bodies (RETURN), bound to pg_jwt's functions by OID, not by the schema's name.
\echo Use "ALTER EXTENSION pg_jwt_auth UPDATE TO '0.1.1'" to load this file. \quit

DO $$
DECLARE
    pg_jwt_schema text;
BEGIN
    -- No schema is renamed, created or dropped in this database until the transaction ends.
    LOCK TABLE pg_catalog.pg_namespace IN SHARE MODE;
    SELECT n.nspname INTO pg_jwt_schema
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt';
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claim_uuid(%L::pg_catalog.text)',
        pg_jwt_schema, 'sub');
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claims()',
        pg_jwt_schema);
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claim(%L::pg_catalog.text)',
        pg_jwt_schema, 'role');
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claim(%L::pg_catalog.text)',
        pg_jwt_schema, 'email');
    -- Whatever names resolved to above (a rename committed after this transaction's snapshot
    -- was taken, under REPEATABLE READ): each function must call pg_jwt's own functions only.
    IF EXISTS (
        SELECT FROM pg_catalog.unnest(ARRAY['auth.uid()', 'auth.jwt()', 'auth.role()', 'auth.email()']::pg_catalog.regprocedure[]) f
         WHERE NOT EXISTS (
                 SELECT FROM pg_catalog.pg_depend d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                    AND d.objid OPERATOR(pg_catalog.=) f::pg_catalog.oid
                    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass)
            OR EXISTS (
                 SELECT FROM pg_catalog.pg_depend d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                    AND d.objid OPERATOR(pg_catalog.=) f::pg_catalog.oid
                    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                    AND NOT EXISTS (
                          SELECT FROM pg_catalog.pg_depend m JOIN pg_catalog.pg_extension e
                                   ON e.oid OPERATOR(pg_catalog.=) m.refobjid AND e.extname OPERATOR(pg_catalog.=) 'pg_jwt'
                           WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                             AND m.objid OPERATOR(pg_catalog.=) d.refobjid
                             AND m.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                             AND m.deptype OPERATOR(pg_catalog.=) 'e'))
    ) THEN
        RAISE EXCEPTION 'pg_jwt_auth: the auth functions would not call pg_jwt''s own functions (was a schema renamed during the install?)'
            USING ERRCODE = '55000';
    END IF;
END $$;
