-- pg_jwt_auth: Supabase's auth.uid(), auth.jwt(), auth.role(), auth.email(), with Supabase's
-- names and types, backed only by pg_jwt's verified claims (never by request.jwt.claims or any
-- other setting a SQL user can write). Each is a one-line SQL function over a pg_jwt accessor,
-- so PostgreSQL inlines it into the policy: per row it costs what the accessor costs.
\echo Use "CREATE EXTENSION pg_jwt_auth" to load this file. \quit

DO $$
DECLARE
    pg_jwt_schema text;
BEGIN
    -- Refuse to take over an existing schema auth (Supabase's own, or anyone's).
    IF EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'auth') THEN
        RAISE EXCEPTION 'pg_jwt_auth: schema "auth" already exists and does not belong to pg_jwt_auth'
            USING ERRCODE = '42P06',
                  DETAIL = 'pg_jwt_auth creates the schema auth and its functions itself; it never adds functions to a schema it does not own.',
                  HINT = 'Use pg_jwt''s functions directly (jwt_claim_uuid(''sub''), jwt_claims()), or rename the existing schema.';
    END IF;
    -- upgrade 0.1.1 begin
    -- No schema is renamed, created or dropped in this database until the transaction ends.
    LOCK TABLE pg_catalog.pg_namespace IN SHARE MODE;
    SELECT n.nspname INTO pg_jwt_schema
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt';
    -- upgrade 0.1.1 end
    CREATE SCHEMA auth;
    COMMENT ON SCHEMA auth IS 'pg_jwt_auth: Supabase-compatible functions over pg_jwt''s verified claims';
    GRANT USAGE ON SCHEMA auth TO PUBLIC;
    -- upgrade 0.1.1 begin
    -- The schema's name is whatever its owner (perhaps not a superuser) chose: it reaches the
    -- statements below only through format's %I (an identifier), never spliced into a quoted
    -- string by hand. The bodies are SQL-standard (RETURN): the pg_jwt function each calls is
    -- bound now, by OID, so renaming the schema later and planting functions of the same names
    -- in a new one of the old name changes nothing. PostgreSQL still inlines them into policies.
    EXECUTE pg_catalog.format(
        'CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claim_uuid(%L::pg_catalog.text)',
        pg_jwt_schema, 'sub');
    EXECUTE pg_catalog.format(
        'CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claims()',
        pg_jwt_schema);
    EXECUTE pg_catalog.format(
        'CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claim(%L::pg_catalog.text)',
        pg_jwt_schema, 'role');
    EXECUTE pg_catalog.format(
        'CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE RETURN %I.jwt_claim(%L::pg_catalog.text)',
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
    -- upgrade 0.1.1 end
END $$;

COMMENT ON FUNCTION auth.uid() IS 'The verified token''s sub as uuid (NULL without a token); jwt_claim_uuid(''sub'')';
COMMENT ON FUNCTION auth.jwt() IS 'The verified token''s claims as jsonb (NULL without a token); jwt_claims()';
COMMENT ON FUNCTION auth.role() IS 'The verified token''s role claim (NULL without a token); jwt_claim(''role'')';
COMMENT ON FUNCTION auth.email() IS 'The verified token''s email claim (NULL without a token); jwt_claim(''email'')';
