-- pg_jwt: sign and verify tokens from SQL.
\pset footer off
CREATE EXTENSION IF NOT EXISTS pg_jwt;
\echo '--- a key (in real use: your identity provider''s public JWKS)'
SELECT jwt_generate_jwk('ES256', 'demo-key') AS private_jwk \gset
SELECT jwt_public_jwks(:'private_jwk') AS jwks \gset
SELECT :'jwks'::jsonb AS public_jwks;
\echo '--- a token signed with it'
SELECT jwt_sign(jsonb_build_object('sub', 'alice', 'tenant_id', 'a1b2', 'exp', extract(epoch FROM now())::bigint + 600), :'private_jwk') AS token \gset
\echo '--- verified claims'
SELECT jwt_verify(:'token', :'jwks') AS claims;
\echo '--- a tampered token is refused (SQLSTATE 28000)'
\set VERBOSITY default
SELECT jwt_verify(:'token' || 'x', :'jwks');
