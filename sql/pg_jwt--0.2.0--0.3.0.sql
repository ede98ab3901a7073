-- pg_jwt 0.2.0 -> 0.3.0 (one line per change):
-- jwt_revoke_token, jwt_revoke_session: expires NULL (and the new default) means until removed, a NULL jti or sid raises 22004 (was: a silent no-op).
-- jwt_revoke_subject: a NULL subject or issued_before raises 22004 (was: a silent no-op).
-- jwt_revoke_*, jwt_unrevoke, jwt_purge_revocations: SQL-standard bodies (BEGIN ATOMIC), bound to jwt_revocations by OID, not by the schema's name.
-- pg_jwt_not_null(text, text), pg_jwt_not_null(timestamptz, text): new, the revoking functions' NULL guard (22004).
-- jwt_purge_revocations: keeps rows for the largest leeway (3600 s), not the purging session's.
-- jwt_revocations_changing: a BEFORE statement trigger marks a revoking transaction before any row changes.
\echo Use "ALTER EXTENSION pg_jwt UPDATE TO '0.3.0'" to load this file. \quit

-- Every body below is SQL-standard (BEGIN ATOMIC): its table, functions and operators are bound
-- when the extension script creates it, by OID, never looked up by name when it runs. A database
-- owner who renames the extension's schema and plants a jwt_revocations (with triggers) in a new
-- one of the old name reaches nothing here. pg_jwt_not_null is their NULL guard (they cannot RAISE).
CREATE FUNCTION pg_jwt_not_null(value text, what text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pg_jwt_not_null_text';
COMMENT ON FUNCTION pg_jwt_not_null(text, text) IS 'Internal: value, or 22004 pg_jwt: <what> when it is NULL (the revoking functions'' guard)';
CREATE FUNCTION pg_jwt_not_null(value timestamptz, what text) RETURNS timestamptz
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pg_jwt_not_null_timestamptz';
COMMENT ON FUNCTION pg_jwt_not_null(timestamptz, text) IS 'Internal: value, or 22004 pg_jwt: <what> when it is NULL (the revoking functions'' guard)';

CREATE OR REPLACE FUNCTION jwt_revoke_token(jti text, expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    -- expires NULL: until removed (jwt_unrevoke); a NULL on either side of a repeat wins.
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, expires)
    VALUES ('jti', @extschema@.pg_jwt_not_null(jti, 'jwt_revoke_token needs a jti, not NULL'::pg_catalog.text), expires)
    ON CONFLICT (kind, value) DO UPDATE
    SET expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER;
END;
COMMENT ON FUNCTION jwt_revoke_token(text, timestamptz) IS 'Revoke the token with this jti until expires (its exp; NULL: until removed)';

CREATE OR REPLACE FUNCTION jwt_revoke_session(sid text, expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    -- expires NULL: until removed (jwt_unrevoke); a NULL on either side of a repeat wins.
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, expires)
    VALUES ('sid', @extschema@.pg_jwt_not_null(sid, 'jwt_revoke_session needs a session id, not NULL'::pg_catalog.text), expires)
    ON CONFLICT (kind, value) DO UPDATE
    SET expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER;
END;
COMMENT ON FUNCTION jwt_revoke_session(text, timestamptz) IS 'Revoke every token of this session id (claim pg_jwt.session_claim) until expires (NULL: until removed)';

CREATE OR REPLACE FUNCTION jwt_revoke_subject(sub text, issued_before timestamptz DEFAULT pg_catalog.now(),
                                   expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, issued_before, expires)
    VALUES ('sub', @extschema@.pg_jwt_not_null(sub, 'jwt_revoke_subject needs a subject, not NULL'::pg_catalog.text),
            @extschema@.pg_jwt_not_null(issued_before, 'jwt_revoke_subject needs issued_before, not NULL'::pg_catalog.text),
            expires)
    ON CONFLICT (kind, value) DO UPDATE
    SET issued_before = GREATEST(r.issued_before, excluded.issued_before),
        expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER;
END;
COMMENT ON FUNCTION jwt_revoke_subject(text, timestamptz, timestamptz) IS 'Log out everywhere: revoke every token of this subject issued before issued_before (tokens without iat included); kept until expires (NULL: until removed)';

CREATE OR REPLACE FUNCTION jwt_unrevoke(kind text, value text) RETURNS boolean
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH gone AS (DELETE FROM @extschema@.jwt_revocations r
                  WHERE r.kind OPERATOR(pg_catalog.=) jwt_unrevoke.kind AND r.value OPERATOR(pg_catalog.=) jwt_unrevoke.value
                  RETURNING 1)
    SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM gone;
END;
COMMENT ON FUNCTION jwt_unrevoke(text, text) IS 'Undo a revocation (kind jti, sid or sub); true if there was one';

-- The purge keeps a row until its expiry plus the largest leeway any session may use (the bound
-- of pg_jwt.leeway, 3600 s): a session with a larger leeway than the purging one's must never
-- accept a revoked token again because its row was purged.
CREATE OR REPLACE FUNCTION jwt_purge_revocations() RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH gone AS (DELETE FROM @extschema@.jwt_revocations
                  WHERE expires OPERATOR(pg_catalog.<) (pg_catalog.now()
                        OPERATOR(pg_catalog.-) '3600 seconds'::pg_catalog.interval)
                  RETURNING 1)
    SELECT pg_catalog.count(*) FROM gone;
END;
COMMENT ON FUNCTION jwt_purge_revocations() IS 'Delete revocations whose tokens have expired anyway (expires plus the largest pg_jwt.leeway, 3600 s, in the past); returns how many';

CREATE TRIGGER jwt_revocations_changing BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION pg_jwt_revocations_changed();
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_changing;
