-- pg_jwt golden file: the SQL functions, with deterministic keys (HMAC signatures are
-- deterministic) and tokens that expire in 2100.
CREATE EXTENSION pg_jwt;
\set VERBOSITY default
-- Shows "ok" or the SQLSTATE and message of an error.
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;

\set key '{"kty":"oct","kid":"k1","alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}'
SELECT jwt_sign('{"sub":"alice","tenant_id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","exp":4102444800}', :'key') AS t \gset
SELECT :'t' AS token;
SELECT jwt_verify(:'t', :'key');
SELECT jwt_decode_unverified(:'t');
-- Large integers stay exact.
SELECT jwt_verify(jwt_sign('{"exp":4102444800,"big":123456789012345678901234567890}', :'key'), :'key') ->> 'big' AS big;

-- NULL behaviour.
SELECT jwt_verify(NULL, :'key') IS NULL AS null_token, jwt_verify(:'t', NULL) IS NULL AS null_jwks,
       jwt_sign(NULL, :'key') IS NULL AS sign_strict, jwt_public_jwks(NULL) IS NULL AS public_strict,
       jwt_decode_unverified(NULL) IS NULL AS decode_strict, jwt_generate_jwk(NULL) IS NULL AS generate_null;

-- Every rejection is SQLSTATE 28000 with a reason from a fixed vocabulary.
SELECT try(format('SELECT jwt_verify(%L, %L)', q, :'key')) AS outcome FROM (VALUES
  (''), ('a.b'), ('a.b.c.d.e'), (repeat('a', 20000)),
  (:'t' || 'x'),
  (jwt_sign('{"exp":4102444800}', '{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}')),
  ('eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.'),
  (jwt_sign('{"exp":1000000000}', :'key')),
  (jwt_sign('{"exp":4102444800,"nbf":4102444000}', :'key')),
  (jwt_sign('{"exp":4102444800,"aud":"api"}', :'key')),
  (jwt_sign('{"sub":"no exp"}', :'key')),
  (jwt_sign('{"exp":"4102444800"}', :'key'))
) v(q);
SELECT try(format('SELECT jwt_verify(%L, %L, audience => %L)', :'t', :'key', 'api')) AS missing_aud,
       try(format('SELECT jwt_verify(%L, %L, issuer => %L)', jwt_sign('{"exp":4102444800,"iss":"a"}', :'key'), :'key', 'b')) AS wrong_iss;

-- Details name the claim or the time, never token bytes.
\set VERBOSITY default
SELECT jwt_verify(jwt_sign('{"exp":1000000000}', :'key'), :'key');
SELECT jwt_verify(jwt_sign('{"exp":4102444800,"iat":"x"}', :'key'), :'key');

-- Bad key sets, JWKs and arguments are SQLSTATE 22023.
SELECT try(format('SELECT jwt_verify(%L, %L)', :'t', j)) AS outcome FROM (VALUES
  ('{}'), ('{"keys":[]}'), ('{"keys":[{"kty":"oct","k":""}]}'), ('{"kty":"oct","k":"c2hvcnQ"}'),
  ('{"kty":"RSA","n":"AQAB","e":"AQAB"}'), ('{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}')
) v(j);
SELECT try(format('SELECT jwt_verify(%L, %L, leeway_seconds => -1)', :'t', :'key')) AS bad_leeway,
       try($$SELECT jwt_generate_jwk('RS256')$$) AS no_rsa_generation,
       try($$SELECT jwt_sign('[1]', '{"kty":"oct","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}')$$) AS claims_not_object;

-- The publishable form of a key set drops private members and secret keys.
SELECT jwt_public_jwks('{"keys":[{"kty":"RSA","kid":"r","n":"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw","e":"AQAB","d":"AQ","p":"AQ","q":"AQ"},{"kty":"oct","k":"AAAA"}]}');
SELECT jwt_generate_jwk('EdDSA', 'my-key') - 'x' - 'd' AS generated_without_key_material;

-- Volatility, strictness and parallel safety as declared.
SELECT proname, pg_get_function_identity_arguments(oid) AS args, provolatile, proparallel, proisstrict
FROM pg_proc WHERE proname LIKE 'jwt\_%' ORDER BY 1, 2;
