-- pg_jwt golden file: coming from Supabase/PostgREST (the pg_jwt_auth extension and
-- jwt_token_from_request_headers) and role from a claim (jwt_set_role), with the spoofing
-- attempts: request.jwt.claims, a forged token in request.headers, a role claim naming a
-- superuser or a BYPASSRLS role. (CONTEXT lines differ between versions: not shown.)
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS pg_jwt;
\set key '{"kty":"oct","kid":"k1","alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}'
\set other '{"kty":"oct","kid":"k1","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}'
SET pg_jwt.jwks = :'key';
SELECT jwt_sign('{"sub":"8d3c6f1e-6a3b-4a57-9c1e-0f2b8a7d4e21","email":"alice@example.com","role":"authenticated","app_metadata":{"role":"regress_editor"},"exp":4102444800}', :'key') AS alice \gset
SELECT jwt_sign('{"sub":"00000000-0000-4000-8000-000000000666","role":"postgres","app_metadata":{"role":"regress_bypass"},"exp":4102444800}', :'key') AS admin \gset
SELECT jwt_sign('{"sub":"00000000-0000-4000-8000-000000000666","role":"service_role","exp":4102444800}', :'other') AS forged \gset

-- pg_jwt_auth refuses a schema auth it did not create.
CREATE SCHEMA auth;
CREATE EXTENSION pg_jwt_auth;
DROP SCHEMA auth;
CREATE EXTENSION pg_jwt_auth;
SELECT p.proname, pg_get_function_result(p.oid) AS result, p.provolatile, p.proparallel,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p WHERE p.pronamespace = 'auth'::regnamespace ORDER BY 1;

CREATE ROLE regress_pg_jwt_web;
CREATE ROLE regress_editor;
CREATE ROLE regress_bypass BYPASSRLS;
GRANT regress_editor, regress_bypass TO regress_pg_jwt_web;
SET pg_jwt.allowed_roles = 'regress_editor, regress_bypass, postgres';
SET ROLE regress_pg_jwt_web;

-- No token: NULL, as Supabase's functions without a JWT.
SELECT auth.uid(), auth.jwt(), auth.role(), auth.email();
-- request.jwt.claims is never read, whatever a SQL user puts there.
SET request.jwt.claims = '{"sub":"00000000-0000-4000-8000-000000000666","role":"service_role"}';
SELECT auth.uid() AS uid_from_spoofed_setting, auth.role() AS role_from_spoofed_setting;
BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT auth.uid(), auth.role(), auth.email(), auth.jwt() ->> 'email' AS email_from_jwt;
ROLLBACK;

-- PostgREST's db-pre-request: the bearer token from request.headers (any case).
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'alice')::text, true) IS NOT NULL AS set;
SELECT jwt_token_from_request_headers();
SELECT auth.uid() AS uid_via_headers;
SELECT set_config('request.headers', json_build_object('Authorization', 'bEaReR  ' || :'alice')::text, true) IS NOT NULL AS set;
SELECT jwt_token_from_request_headers();
SELECT auth.email() AS email_via_mixed_case;
-- No authorization header, or another scheme: no token, so no claims.
SELECT set_config('request.headers', '{"accept":"*/*"}', true) IS NOT NULL AS set;
SELECT jwt_token_from_request_headers();
SELECT auth.uid() IS NULL AS anonymous;
SELECT set_config('request.headers', json_build_object('authorization', 'Basic ' || :'alice')::text, true) IS NOT NULL AS set;
SELECT jwt_token_from_request_headers();
SELECT auth.uid() IS NULL AS basic_is_not_bearer;
-- A forged token in the header is verified like any other: refused.
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'forged')::text, true) IS NOT NULL AS set;
SELECT jwt_token_from_request_headers();
SELECT auth.uid();
ROLLBACK;
BEGIN;
SELECT set_config('request.headers', 'not json', true) IS NOT NULL AS set;
SELECT jwt_token_from_request_headers();
ROLLBACK;

-- jwt_set_role: the role named by pg_jwt.role_claim, if allow-listed, for the transaction only.
SELECT jwt_set_role();
BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT jwt_set_role();
ROLLBACK;
RESET ROLE;
SET pg_jwt.role_claim = '/app_metadata/role';
SET ROLE regress_pg_jwt_web;
BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT jwt_set_role(), current_user;
COMMIT;
SELECT current_user AS after_commit;
-- Inside a security-definer function, where PostgreSQL refuses the role setting itself:
-- refused first, in pg_jwt's words (42501).
CREATE FUNCTION pg_temp.definer_sets_role() RETURNS text SECURITY DEFINER LANGUAGE sql AS 'SELECT jwt_set_role()';
BEGIN;
SET LOCAL pg_jwt.token = :'alice';
SELECT pg_temp.definer_sets_role();
ROLLBACK;
DROP FUNCTION pg_temp.definer_sets_role();
-- A BYPASSRLS role, or a superuser, is refused even when listed.
BEGIN;
SET LOCAL pg_jwt.token = :'admin';
SELECT jwt_set_role();
ROLLBACK;
RESET ROLE;
SET pg_jwt.role_claim = 'role';
SET ROLE regress_pg_jwt_web;
BEGIN;
SET LOCAL pg_jwt.token = :'admin';
SELECT jwt_set_role();
ROLLBACK;
-- The settings are a superuser's.
SET pg_jwt.allowed_roles = 'regress_pg_jwt_web';
SET pg_jwt.role_claim = 'sub';
RESET ROLE;
RESET pg_jwt.allowed_roles;
RESET pg_jwt.role_claim;
RESET request.jwt.claims;
DROP EXTENSION pg_jwt_auth;
SELECT count(*) AS auth_schema_left FROM pg_namespace WHERE nspname = 'auth';
DROP ROLE regress_pg_jwt_web, regress_editor, regress_bypass;
