-- pg_jwt 0.1.0 -> 0.2.0: the key fetcher's SQL functions (keys from the identity provider's
-- JWKS URL) and revocation. Everything else keeps its definition; the library keeps the 0.1.0 C symbols.
\echo Use "ALTER EXTENSION pg_jwt UPDATE TO '0.2.0'" to load this file. \quit

CREATE FUNCTION jwt_jwks_status() RETURNS TABLE (
	"uri" TEXT,
	"source" TEXT,
	"kids" TEXT[],
	"in_force" bool,
	"last_success" timestamp with time zone,
	"last_attempt" timestamp with time zone,
	"next_refresh" timestamp with time zone,
	"last_error" TEXT,
	"fetches" bigint,
	"failures" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'jwt_jwks_status_wrapper';
COMMENT ON FUNCTION jwt_jwks_status() IS 'The key fetcher: the source of the fetched key set, its kids, when it was fetched, the last error';

CREATE FUNCTION jwt_jwks_refresh() RETURNS jsonb
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_jwks_refresh_wrapper';
REVOKE EXECUTE ON FUNCTION jwt_jwks_refresh() FROM PUBLIC;
COMMENT ON FUNCTION jwt_jwks_refresh() IS 'Superuser: fetch pg_jwt.jwks_uri now, wait for the result (bounded) and return the status';

-- 0.2.0 documents jwt_cache_stats() like the other functions.
COMMENT ON FUNCTION jwt_cache_stats() IS 'This backend''s verification cache: verifications, cached_tokens, capacity';


-- Revocation (src/revocation.rs): the denylist, its trigger and the functions that fill it.
CREATE TABLE jwt_revocations (
    kind text NOT NULL CHECK (kind IN ('jti', 'sub', 'sid')),
    value text NOT NULL,
    issued_before timestamptz,
    expires timestamptz,
    revoked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    revoked_by name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (kind, value),
    CHECK ((kind = 'sub') = (issued_before IS NOT NULL))
);
COMMENT ON TABLE jwt_revocations IS 'Revoked tokens (by jti), sessions (by sid) and subjects (tokens issued before issued_before); kept until expires (NULL: until removed)';
REVOKE ALL ON jwt_revocations FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jwt_revocations', '');
CREATE FUNCTION pg_jwt_revocations_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_revocations_changed';
REVOKE ALL ON FUNCTION pg_jwt_revocations_changed() FROM PUBLIC;
CREATE TRIGGER jwt_revocations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION pg_jwt_revocations_changed();
-- Row level: each written value enters the shared filter before it can commit
-- (src/revocation_filter.rs). Both fire under session_replication_role = replica too.
CREATE TRIGGER jwt_revocations_filter AFTER INSERT OR UPDATE ON jwt_revocations
    FOR EACH ROW EXECUTE FUNCTION pg_jwt_revocations_changed();
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_changed;
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_filter;

CREATE FUNCTION jwt_revoke_token(jti text, expires timestamptz) RETURNS void
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ INSERT INTO @extschema@.jwt_revocations (kind, value, expires) VALUES ('jti', jti, expires)
          ON CONFLICT (kind, value) DO UPDATE
          SET expires = GREATEST(jwt_revocations.expires, excluded.expires),
              revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER $$;
COMMENT ON FUNCTION jwt_revoke_token(text, timestamptz) IS 'Revoke the token with this jti until expires (its exp)';

CREATE FUNCTION jwt_revoke_session(sid text, expires timestamptz) RETURNS void
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ INSERT INTO @extschema@.jwt_revocations (kind, value, expires) VALUES ('sid', sid, expires)
          ON CONFLICT (kind, value) DO UPDATE
          SET expires = GREATEST(jwt_revocations.expires, excluded.expires),
              revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER $$;
COMMENT ON FUNCTION jwt_revoke_session(text, timestamptz) IS 'Revoke every token of this session id (claim pg_jwt.session_claim) until expires';

CREATE FUNCTION jwt_revoke_subject(sub text, issued_before timestamptz DEFAULT pg_catalog.now(),
                                   expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ INSERT INTO @extschema@.jwt_revocations (kind, value, issued_before, expires)
          SELECT 'sub', sub, issued_before, expires WHERE sub IS NOT NULL AND issued_before IS NOT NULL
          ON CONFLICT (kind, value) DO UPDATE
          SET issued_before = GREATEST(jwt_revocations.issued_before, excluded.issued_before),
              expires = CASE WHEN jwt_revocations.expires IS NULL OR excluded.expires IS NULL THEN NULL
                             ELSE GREATEST(jwt_revocations.expires, excluded.expires) END,
              revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER $$;
COMMENT ON FUNCTION jwt_revoke_subject(text, timestamptz, timestamptz) IS 'Log out everywhere: revoke every token of this subject issued before issued_before (tokens without iat included); kept until expires (NULL: until removed)';

CREATE FUNCTION jwt_unrevoke(kind text, value text) RETURNS boolean
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ WITH gone AS (DELETE FROM @extschema@.jwt_revocations r WHERE r.kind = $1 AND r.value = $2 RETURNING 1)
          SELECT pg_catalog.count(*) > 0 FROM gone $$;
COMMENT ON FUNCTION jwt_unrevoke(text, text) IS 'Undo a revocation (kind jti, sid or sub); true if there was one';

CREATE FUNCTION jwt_purge_revocations() RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ WITH gone AS (DELETE FROM @extschema@.jwt_revocations
                        WHERE expires OPERATOR(pg_catalog.<) (pg_catalog.now()
                              OPERATOR(pg_catalog.-) pg_catalog.current_setting('pg_jwt.leeway')::interval)
                        RETURNING 1)
          SELECT pg_catalog.count(*) FROM gone $$;
COMMENT ON FUNCTION jwt_purge_revocations() IS 'Delete revocations whose tokens have expired anyway (expires plus pg_jwt.leeway in the past); returns how many';

REVOKE ALL ON FUNCTION jwt_revoke_token(text, timestamptz), jwt_revoke_session(text, timestamptz),
    jwt_revoke_subject(text, timestamptz, timestamptz), jwt_unrevoke(text, text), jwt_purge_revocations() FROM PUBLIC;

-- Role from a claim (src/roles.rs).
CREATE FUNCTION jwt_set_role() RETURNS text
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_set_role_wrapper';
COMMENT ON FUNCTION jwt_set_role() IS 'SET LOCAL ROLE to the role named by the verified claim pg_jwt.role_claim, if listed in pg_jwt.allowed_roles (never a superuser or BYPASSRLS role)';

-- PostgREST: db-pre-request = 'jwt_token_from_request_headers' (src/roles.rs).
CREATE FUNCTION jwt_token_from_request_headers() RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    headers text := current_setting('request.headers', true);
    auth_header text;
    bearer text[];
BEGIN
    IF headers IS NOT NULL AND headers <> '' THEN
        BEGIN
            SELECT h.value INTO auth_header FROM json_each_text(headers::json) h
             WHERE lower(h.key) = 'authorization' LIMIT 1;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'pg_jwt: request.headers is not a JSON object' USING ERRCODE = '22023';
        END;
    END IF;
    bearer := regexp_match(coalesce(auth_header, ''), '^\s*bearer\s+(\S+)\s*$', 'i');
    -- No (or no bearer) authorization: no token, so no claims (PostgREST's anonymous role).
    PERFORM set_config('pg_jwt.token', coalesce(bearer[1], ''), true);
END $$;
COMMENT ON FUNCTION jwt_token_from_request_headers() IS 'For PostgREST db-pre-request: set pg_jwt.token for the transaction from the Bearer token in request.headers';
