-- pg_jwt golden file: the session token, settings and claim accessors under RLS.
CREATE EXTENSION pg_jwt;
\set key '{"kty":"oct","kid":"k1","alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}'
SET pg_jwt.jwks = :'key';
SELECT jwt_sign('{"sub":"alice","tenant_id":"a0000000-0000-4000-8000-00000000000a","roles":["member"],"org":42,"meta":{"tier":"gold"},"https://example.com/flag":true,"exp":4102444800}', :'key') AS alice \gset
SELECT jwt_sign('{"sub":"bob","tenant_id":"b0000000-0000-4000-8000-00000000000b","roles":"member","exp":4102444800}', :'key') AS bob \gset

CREATE TABLE docs (id int, tenant_id uuid, title text);
INSERT INTO docs VALUES (1, 'a0000000-0000-4000-8000-00000000000a', 'Acme plan'),
                        (2, 'b0000000-0000-4000-8000-00000000000b', 'Globex plan');
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON docs USING (tenant_id = jwt_claim_uuid('tenant_id'))
  WITH CHECK (tenant_id = jwt_claim_uuid('tenant_id'));
CREATE ROLE regress_pg_jwt_app;
GRANT SELECT, INSERT ON docs TO regress_pg_jwt_app;
SET ROLE regress_pg_jwt_app;

-- No token: accessors are NULL, policies match nothing.
SELECT jwt_claim('sub') AS sub, jwt_claims() AS claims;
SELECT * FROM docs;

BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT jwt_claim('sub') AS sub, jwt_claim('org') AS org, jwt_claim('meta') AS meta,
       jwt_claim('meta', 'tier') AS tier, jwt_claim('https://example.com/flag') AS dotted,
       jwt_claim_uuid('tenant_id') AS tenant, jwt_claim_bigint('org') AS org_bigint,
       jwt_claim_array('roles') AS roles, jwt_claim('absent') AS absent;
SELECT * FROM docs;
INSERT INTO docs VALUES (3, 'b0000000-0000-4000-8000-00000000000b', 'planted');
ROLLBACK;

BEGIN;
SET LOCAL pg_jwt.token = :'bob';
SELECT * FROM docs;
SELECT jwt_claim_array('roles') AS one_element;
SAVEPOINT s;
SET LOCAL pg_jwt.token = :'alice';
SELECT jwt_claim('sub');
ROLLBACK TO SAVEPOINT s;
SELECT jwt_claim('sub') AS after_rollback_to_savepoint;
COMMIT;
SELECT jwt_claim('sub') AS after_commit;

-- A rejected token is an error from every accessor and every policy.
BEGIN;
SET LOCAL pg_jwt.token = 'not.a.token';
SELECT * FROM docs;
ROLLBACK;
-- Typed accessors refuse claims of another type.
BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT jwt_claim_uuid('sub');
ROLLBACK;
BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT jwt_claim_bigint('meta');
ROLLBACK;

-- Key settings are superuser-only.
SET pg_jwt.jwks = '{}';
SET pg_jwt.leeway = 100;
SHOW pg_jwt.jwks;
RESET ROLE;
-- A misspelt setting is an error; a bad key set is refused when set.
SET pg_jwt.jwsk = '{}';
SET pg_jwt.jwks = '{"keys":[{"kty":"oct","k":""}]}';
SHOW pg_jwt.leeway;
SHOW pg_jwt.required_claims;
SHOW pg_jwt.max_token_bytes;
SHOW pg_jwt.cache_size;
DROP TABLE docs;
DROP ROLE regress_pg_jwt_app;
