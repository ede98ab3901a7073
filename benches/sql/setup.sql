-- Benchmark data and roles (run as superuser by benches/runner; the cluster is throwaway).
CREATE EXTENSION IF NOT EXISTS pg_jwt;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE ROLE bench_app LOGIN;   -- asymmetric key set (RS256, ES256, EdDSA)
CREATE ROLE bench_hs LOGIN;    -- HMAC key set (a set may not mix oct and asymmetric keys)

CREATE TABLE bench_keys (alg text PRIMARY KEY, private jsonb, public jsonb);

-- 1,000,000 rows over 10 tenants, and a 20,000-row slice for the slow PL/pgSQL verifier.
CREATE TABLE rls_1m (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, amount int NOT NULL, note text NOT NULL);
INSERT INTO rls_1m
SELECT g, ('00000000-0000-4000-8000-' || lpad((g % 10)::text, 12, '0'))::uuid, ((g::bigint * 7919) % 1000)::int, 'row ' || g
FROM generate_series(1, 1000000) g;
CREATE INDEX rls_1m_tenant ON rls_1m (tenant_id);
CREATE TABLE rls_20k AS SELECT * FROM rls_1m WHERE id <= 20000;
ALTER TABLE rls_20k ADD PRIMARY KEY (id);
CREATE INDEX rls_20k_tenant ON rls_20k (tenant_id);
ALTER TABLE rls_1m ENABLE ROW LEVEL SECURITY;
ALTER TABLE rls_20k ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON rls_1m, rls_20k TO bench_app, bench_hs;

CREATE TABLE bench_tokens (alg text, id int, token text, PRIMARY KEY (alg, id));
GRANT SELECT ON bench_tokens TO bench_app, bench_hs;

-- The pgjwt way: HS256 verified in PL/pgSQL with pgcrypto's hmac(), written for this benchmark.
CREATE FUNCTION b64url_decode(s text) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT decode(rpad(translate(s, '-_', '+/'), 4 * ((length(s) + 3) / 4), '='), 'base64') $$;
CREATE FUNCTION b64url_encode(b bytea) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT translate(encode(b, 'base64'), E'+/=\n', '-_') $$;
CREATE FUNCTION plpgsql_jwt_verify(token text, secret bytea) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  parts text[] := string_to_array(token, '.');
  header jsonb;
  payload jsonb;
BEGIN
  IF array_length(parts, 1) <> 3 THEN RETURN NULL; END IF;
  header := convert_from(b64url_decode(parts[1]), 'UTF8')::jsonb;
  IF header ->> 'alg' <> 'HS256' THEN RETURN NULL; END IF;
  IF b64url_encode(hmac(convert_to(parts[1] || '.' || parts[2], 'UTF8'), secret, 'sha256')) <> parts[3] THEN
    RETURN NULL;
  END IF;
  payload := convert_from(b64url_decode(parts[2]), 'UTF8')::jsonb;
  IF (payload ->> 'exp')::numeric <= extract(epoch FROM now()) THEN RETURN NULL; END IF;
  RETURN payload;
END $$;
GRANT EXECUTE ON FUNCTION plpgsql_jwt_verify(text, bytea) TO bench_app, bench_hs;
