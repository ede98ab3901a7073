-- pg_jwt 0.1.0 -> 0.2.0: the key fetcher's SQL functions (keys from the identity provider's
-- JWKS URL). Everything else keeps its definition; the library keeps the 0.1.0 C symbols.
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
