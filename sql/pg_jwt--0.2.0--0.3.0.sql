-- pg_jwt 0.2.0 -> 0.3.0 (one line per change):
-- jwt_revoke_token, jwt_revoke_session: expires NULL (and the new default) means until removed, a NULL jti or sid raises 22004 (was: a silent no-op).
-- jwt_revoke_subject: a NULL subject or issued_before raises 22004 (was: a silent no-op).
-- jwt_unrevoke: operators qualified (no user operator can intervene).
-- jwt_purge_revocations: keeps rows for the largest leeway (3600 s), not the purging session's.
-- jwt_revocations_changing: a BEFORE statement trigger marks a revoking transaction before any row changes.
\echo Use "ALTER EXTENSION pg_jwt UPDATE TO '0.3.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION jwt_revoke_token(jti text, expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'pg_jwt: jwt_revoke_token needs a jti, not NULL' USING ERRCODE = '22004';
    END IF;
    -- expires NULL: until removed (jwt_unrevoke); a NULL on either side of a repeat wins.
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, expires) VALUES ('jti', $1, $2)
    ON CONFLICT (kind, value) DO UPDATE
    SET expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = now(), revoked_by = CURRENT_USER;
END $$;
COMMENT ON FUNCTION jwt_revoke_token(text, timestamptz) IS 'Revoke the token with this jti until expires (its exp; NULL: until removed)';

CREATE OR REPLACE FUNCTION jwt_revoke_session(sid text, expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'pg_jwt: jwt_revoke_session needs a session id, not NULL' USING ERRCODE = '22004';
    END IF;
    -- expires NULL: until removed (jwt_unrevoke); a NULL on either side of a repeat wins.
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, expires) VALUES ('sid', $1, $2)
    ON CONFLICT (kind, value) DO UPDATE
    SET expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = now(), revoked_by = CURRENT_USER;
END $$;
COMMENT ON FUNCTION jwt_revoke_session(text, timestamptz) IS 'Revoke every token of this session id (claim pg_jwt.session_claim) until expires (NULL: until removed)';

CREATE OR REPLACE FUNCTION jwt_revoke_subject(sub text, issued_before timestamptz DEFAULT pg_catalog.now(),
                                   expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF $1 IS NULL OR $2 IS NULL THEN
        RAISE EXCEPTION 'pg_jwt: jwt_revoke_subject needs a subject and issued_before, not NULL' USING ERRCODE = '22004';
    END IF;
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, issued_before, expires) VALUES ('sub', $1, $2, $3)
    ON CONFLICT (kind, value) DO UPDATE
    SET issued_before = GREATEST(r.issued_before, excluded.issued_before),
        expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = now(), revoked_by = CURRENT_USER;
END $$;
COMMENT ON FUNCTION jwt_revoke_subject(text, timestamptz, timestamptz) IS 'Log out everywhere: revoke every token of this subject issued before issued_before (tokens without iat included); kept until expires (NULL: until removed)';

CREATE OR REPLACE FUNCTION jwt_unrevoke(kind text, value text) RETURNS boolean
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ WITH gone AS (DELETE FROM @extschema@.jwt_revocations r
                        WHERE r.kind OPERATOR(pg_catalog.=) $1 AND r.value OPERATOR(pg_catalog.=) $2 RETURNING 1)
          SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM gone $$;
COMMENT ON FUNCTION jwt_unrevoke(text, text) IS 'Undo a revocation (kind jti, sid or sub); true if there was one';

-- The purge keeps a row until its expiry plus the largest leeway any session may use (the bound
-- of pg_jwt.leeway, 3600 s): a session with a larger leeway than the purging one's must never
-- accept a revoked token again because its row was purged.
CREATE OR REPLACE FUNCTION jwt_purge_revocations() RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ WITH gone AS (DELETE FROM @extschema@.jwt_revocations
                        WHERE expires OPERATOR(pg_catalog.<) (pg_catalog.now()
                              OPERATOR(pg_catalog.-) '3600 seconds'::pg_catalog.interval)
                        RETURNING 1)
          SELECT pg_catalog.count(*) FROM gone $$;
COMMENT ON FUNCTION jwt_purge_revocations() IS 'Delete revocations whose tokens have expired anyway (expires plus the largest pg_jwt.leeway, 3600 s, in the past); returns how many';

CREATE TRIGGER jwt_revocations_changing BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION pg_jwt_revocations_changed();
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_changing;
