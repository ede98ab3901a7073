-- The pg_jwt demo: run with psql as a superuser on a scratch database (make demo does this).
\set QUIET on
\pset footer off
\set VERBOSITY default
\set ON_ERROR_STOP off

\echo '=== 1. Schema, policies and the non-superuser role "app" (examples/schema.sql)'
\ir schema.sql

\echo '=== 2. Keys: the identity provider publishes its JWKS over HTTPS; pg_jwt fetches it'
-- A stand-in identity provider (scripts/demo-idp.py) serves :jwks_uri. Its private key never
-- enters the database in production; the demo keeps it in a superuser-only table to sign.
CREATE SCHEMA idp;
REVOKE ALL ON SCHEMA idp FROM PUBLIC;
CREATE TABLE idp.signing_key AS SELECT jwt_generate_jwk('ES256', 'demo-2026') AS jwk;
-- The provider publishes the public half:
SELECT jsonb_build_object('keys', jsonb_agg(jwt_public_jwks(jwk) -> 'keys' -> 0)) FROM idp.signing_key
\g (format=unaligned tuples_only=on) :idp_jwks
SELECT current_database() AS db \gset
ALTER SYSTEM SET pg_jwt.jwks_uri = :'jwks_uri';
ALTER SYSTEM SET pg_jwt.jwks_ca_file = :'idp_ca';
ALTER SYSTEM SET pg_jwt.jwks_min_refresh = 1;
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_sleep(0.3) \gset
\c
\set QUIET on
\pset footer off
SELECT jwt_jwks_refresh() -> 'kids' AS "kids fetched from the provider";
SELECT uri, kids, in_force, last_error FROM jwt_jwks_status();
ALTER DATABASE :"db" SET pg_jwt.audience = 'https://api.example.com';
ALTER DATABASE :"db" SET pg_jwt.issuer = 'https://id.example.com';
\c
\set QUIET on
\pset footer off

\echo '=== 3. Tokens signed by the "identity provider"'
CREATE FUNCTION pg_temp.token(claims jsonb, ttl int DEFAULT 600) RETURNS text LANGUAGE sql AS $$
  SELECT jwt_sign(jsonb_build_object('iss', 'https://id.example.com', 'aud', 'https://api.example.com',
                  'iat', extract(epoch FROM now())::bigint,
                  'exp', extract(epoch FROM now())::bigint + ttl) || claims, jwk)
  FROM idp.signing_key $$;
SELECT pg_temp.token('{"sub":"alice","tenant_id":"a0000000-0000-4000-8000-00000000000a","roles":["member"]}') AS alice \gset
SELECT pg_temp.token('{"sub":"bob","tenant_id":"b0000000-0000-4000-8000-00000000000b","roles":["member"]}') AS bob \gset
SELECT pg_temp.token('{"sub":"carol","tenant_id":"a0000000-0000-4000-8000-00000000000a","roles":["member","admin"]}') AS carol \gset
SELECT pg_temp.token('{"sub":"alice","tenant_id":"a0000000-0000-4000-8000-00000000000a"}', -3600) AS expired \gset
SELECT jwt_sign(jsonb_build_object('iss', 'https://id.example.com', 'aud', 'https://other-api.example.com',
       'exp', extract(epoch FROM now())::bigint + 600, 'sub', 'alice', 'tenant_id', 'a0000000-0000-4000-8000-00000000000a'), jwk)
  AS wrong_aud FROM idp.signing_key \gset
-- Tampered: Bob's signature on a payload that claims Acme's tenant.
SELECT split_part(:'bob', '.', 1) || '.' ||
       split_part(:'alice', '.', 2) || '.' || split_part(:'bob', '.', 3) AS tampered \gset
SELECT left(:'alice', 60) || '...' AS "Alice's token (ES256)";
SELECT jwt_decode_unverified(:'alice') -> 'payload' AS "its payload (decoded without verification, debugging only)";

\echo ''
\echo '=== From here on we are the application: role "app", no superuser'
-- The token goes in with set_config (SET LOCAL as a function). An application passes it as a
-- bind parameter ($1), which keeps it out of the statement text (pg_stat_activity, the log);
-- psql 15 has no \bind, so here it is a literal, which pg_stat_statements normalizes away.
SET ROLE app;

\echo ''
\echo '--- 4. Alice (tenant Acme) sees only Acme documents'
BEGIN;
SELECT set_config('pg_jwt.token', :'alice', true) IS NULL AS token_set \gset
SELECT jwt_claim('sub') AS sub, jwt_claim_uuid('tenant_id') AS tenant_id, jwt_claim_array('roles') AS roles;
SELECT id, title, owner FROM documents ORDER BY id;
COMMIT;

\echo '--- 5. Bob (tenant Globex) sees only Globex documents'
BEGIN;
SELECT set_config('pg_jwt.token', :'bob', true) IS NULL AS token_set \gset
SELECT id, title, owner FROM documents ORDER BY id;
SELECT name FROM users;
COMMIT;

\echo '--- 6. WITH CHECK: Alice may write into Acme, not into Globex'
BEGIN;
SELECT set_config('pg_jwt.token', :'alice', true) IS NULL AS token_set \gset
INSERT INTO documents (title) VALUES ('Acme offsite notes') RETURNING id, tenant_id, owner, title;
INSERT INTO documents (tenant_id, title) VALUES ('b0000000-0000-4000-8000-00000000000b', 'planted in Globex');
ROLLBACK;

\echo '--- 7. No token: nothing is visible (the accessors return NULL, policies fail closed)'
SELECT count(*) AS "documents visible without a token" FROM documents;

\echo '--- 8. Refused tokens, each with its reason (SQLSTATE 28000)'
\echo '    a tampered token (Bob''s signature over a payload claiming Acme):'
BEGIN;
SELECT set_config('pg_jwt.token', :'tampered', true) IS NULL AS token_set \gset
SELECT count(*) FROM documents;
ROLLBACK;
\echo '    an expired token:'
BEGIN;
SELECT set_config('pg_jwt.token', :'expired', true) IS NULL AS token_set \gset
SELECT count(*) FROM documents;
ROLLBACK;
\echo '    a token for another audience:'
BEGIN;
SELECT set_config('pg_jwt.token', :'wrong_aud', true) IS NULL AS token_set \gset
SELECT count(*) FROM documents;
ROLLBACK;
\echo '    and the key settings are not the application''s to change (SQLSTATE 42501):'
SET pg_jwt.jwks = '{"keys":[]}';

\echo '--- 9. Carol carries the admin role claim: her view widens to every tenant'
BEGIN;
SELECT set_config('pg_jwt.token', :'carol', true) IS NULL AS token_set \gset
SELECT d.id, d.title, d.tenant_id FROM documents d ORDER BY d.id;
COMMIT;

RESET ROLE;
\echo ''
\echo '--- 10. Key rotation: the provider publishes a new key and signs with it; no DBA involved'
INSERT INTO idp.signing_key SELECT jwt_generate_jwk('ES256', 'demo-2027');
SELECT jsonb_build_object('keys', jsonb_agg(jwt_public_jwks(jwk) -> 'keys' -> 0)) FROM idp.signing_key
\g (format=unaligned tuples_only=on) :idp_jwks
SELECT pg_sleep(1.1) \gset
SELECT jwt_sign(jsonb_build_object('iss', 'https://id.example.com', 'aud', 'https://api.example.com',
       'exp', extract(epoch FROM now())::bigint + 600, 'sub', 'dave',
       'tenant_id', 'b0000000-0000-4000-8000-00000000000b', 'roles', '["member"]'::jsonb), jwk) AS dave
  FROM idp.signing_key WHERE jwk ->> 'kid' = 'demo-2027' \gset
SET ROLE app;
BEGIN;
SELECT set_config('pg_jwt.token', :'dave', true) IS NULL AS token_set \gset
-- The token names kid demo-2027, in no key set yet: pg_jwt asks its key fetcher to refetch.
SELECT jwt_claim('sub') AS sub, count(*) AS "Globex documents" FROM documents;
COMMIT;
RESET ROLE;
SELECT kids FROM jwt_jwks_status();

\echo ''
\echo '--- 11. Revocation: Alice logs out everywhere; her cached token stops working at once'
SET ROLE app;
BEGIN;
SELECT set_config('pg_jwt.token', :'alice', true) IS NULL AS token_set \gset
SELECT count(*) AS "Alice's documents before" FROM documents;
COMMIT;
RESET ROLE;
SELECT jwt_revoke_subject('alice', issued_before => now() + interval '1 second');
SELECT kind, value, revoked_by FROM jwt_revocations;
SET ROLE app;
BEGIN;
SELECT set_config('pg_jwt.token', :'alice', true) IS NULL AS token_set \gset
SELECT count(*) FROM documents;
ROLLBACK;
\echo '    and the application cannot see or change the list (SQLSTATE 42501):'
SELECT count(*) FROM jwt_revocations;
RESET ROLE;

\echo ''
\echo '--- 12. A second identity provider: machine tokens from an internal issuer, chosen by iss'
-- pg_jwt.providers lists named providers beside the one the settings above describe ("default").
CREATE TABLE idp.worker_key AS SELECT jwt_generate_jwk('ES256', 'workers-1') AS jwk;
SELECT format('[{"name": "workers", "issuer": "https://internal.example.com", "jwks": %s, "audience": "orders-db", "max_lifetime": 900, "required_claims": ["exp", "iat", "sub"]}]',
              jwt_public_jwks(jwk)) AS providers FROM idp.worker_key \gset
ALTER SYSTEM SET pg_jwt.providers = :'providers';
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_sleep(0.3) \gset
SELECT jwt_sign(jsonb_build_object('iss', 'https://internal.example.com', 'aud', 'orders-db', 'sub', 'billing-job',
       'tenant_id', 'b0000000-0000-4000-8000-00000000000b',
       'iat', extract(epoch FROM now())::bigint, 'exp', extract(epoch FROM now())::bigint + 300), jwk)
  AS worker FROM idp.worker_key \gset
SELECT jwt_sign(jsonb_build_object('iss', 'https://unknown.example.com', 'aud', 'orders-db', 'sub', 'mallory',
       'exp', extract(epoch FROM now())::bigint + 300), jwk) AS stranger FROM idp.worker_key \gset
SET ROLE app;
BEGIN;
SELECT set_config('pg_jwt.token', :'bob', true) IS NULL AS token_set \gset
SELECT jwt_claim('sub') AS sub, jwt_provider() AS provider;
COMMIT;
BEGIN;
SELECT set_config('pg_jwt.token', :'worker', true) IS NULL AS token_set \gset
SELECT jwt_claim('sub') AS sub, jwt_provider() AS provider, count(*) AS "Globex documents" FROM documents;
COMMIT;
\echo '    an issuer no provider has is refused, named in the DETAIL (SQLSTATE 28000):'
BEGIN;
SELECT set_config('pg_jwt.token', :'stranger', true) IS NULL AS token_set \gset
SELECT count(*) FROM documents;
ROLLBACK;
RESET ROLE;
ALTER SYSTEM RESET pg_jwt.providers;
SELECT pg_reload_conf() AS reloaded \gset

\echo ''
\echo 'Done: the SQL of this demo is in examples/schema.sql and examples/demo.sql.'
