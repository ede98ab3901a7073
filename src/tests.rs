//! `#[pg_test]`s: every SQL function inside a real backend, including NULLs, SQLSTATEs and the
//! declared volatility.
//!
//! Checklist rows F3, F6 and F12 are tested only in the client suite (a real non-superuser
//! login, RLS, a real transaction), which covers everything the in-backend versions did. F1,
//! F9-F11 and D19 are tested in both places because each side covers a different path: here
//! the function arguments, `request.jwt.claim.*`, a configured cache size and `SET` of the key
//! set; there the startup options, the session token under RLS, 100,000 tokens and reload.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;

    const RSA_PRIVATE: &str = include_str!("../testdata/rsa-2048-private.jwk.json");

    /// Runs `sql` and returns "ok" or "SQLSTATE message" (through a PL/pgSQL exception block).
    pub fn outcome(sql: &str) -> String {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN 'ok';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $f$",
        )
        .unwrap();
        Spi::get_one::<String>(&format!("SELECT pg_temp.outcome({})", quote(sql)))
            .unwrap()
            .unwrap()
    }

    pub fn quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    pub fn one_json(sql: &str) -> Option<serde_json::Value> {
        Spi::get_one::<JsonB>(sql).unwrap().map(|j| j.0)
    }

    pub fn one_text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap()
    }

    /// A private JWK for `alg` (RSA from RFC 7520's example key).
    pub fn private_jwk(alg: &str) -> String {
        if alg.starts_with("RS") || alg.starts_with("PS") {
            let mut v: serde_json::Value = serde_json::from_str(RSA_PRIVATE).unwrap();
            v["alg"] = alg.into();
            return v.to_string();
        }
        one_json(&format!("SELECT jwt_generate_jwk('{alg}', 'k1')"))
            .unwrap()
            .to_string()
    }

    /// The verification key set of a private JWK.
    pub fn verify_jwks(private: &str) -> String {
        if private.contains("\"oct\"") {
            return private.to_owned();
        }
        one_json(&format!("SELECT jwt_public_jwks({})", quote(private)))
            .unwrap()
            .to_string()
    }

    pub fn sign(claims: &str, private: &str) -> String {
        one_text(&format!("SELECT jwt_sign({}, {})", quote(claims), quote(private))).unwrap()
    }

    pub fn fresh(extra: &str) -> String {
        let exp = crate::clock::now_unix() + 600;
        format!(r#"{{"sub":"alice","exp":{exp}{extra}}}"#)
    }

    /// `jwt_verify` builds its jsonb straight from the parsed claims: the same value as
    /// `jsonb_in` makes of the claims text, for nested objects, arrays, unicode, escapes, large
    /// and exact numbers, booleans and null.
    #[pg_test]
    fn pg_jwt_verify_builds_the_same_jsonb_as_jsonb_in() {
        let claims = r#"{"sub":"\u00e9l\u00e8ve \"quoted\" \\ \ud83d\ude00","exp":9999999999,"n":12345678901234567890123,"f":-1.5e-7,"t":true,"z":null,"a":[1,"two",{"three":[3.0]}],"o":{"b":{"c":"d"},"a":1}}"#;
        let key = Spi::get_one::<JsonB>("SELECT jwt_generate_jwk('HS256', 'k')")
            .unwrap()
            .unwrap()
            .0
            .to_string();
        let same = Spi::get_one::<bool>(&format!(
            "SELECT jwt_verify(jwt_sign({c}::jsonb, {k}::jsonb), {k}::jsonb) = {c}::jsonb",
            c = quote(claims),
            k = quote(&key)
        ))
        .unwrap();
        assert_eq!(same, Some(true));
        // The text forms too (key order, number text).
        let same_text = Spi::get_one::<bool>(&format!(
            "SELECT jwt_verify(jwt_sign({c}::jsonb, {k}::jsonb), {k}::jsonb)::text = ({c}::jsonb)::text",
            c = quote(claims),
            k = quote(&key)
        ))
        .unwrap();
        assert_eq!(same_text, Some(true));
        // Integers that fit 64 bits take int64_to_numeric, the others numeric_in: the same bytes
        // as jsonb_in at every edge (sizes too: the scale of each number is the same).
        let numbers = r#"{"sub":"a","exp":9999999999,"z":0,"nz":-0,"m":-1,"max":9223372036854775807,"min":-9223372036854775808,"over":9223372036854775808,"under":-9223372036854775809,"tens":10000000000000000,"e":1e2,"E":1E2,"f":100.0,"small":1e-400,"deep":[[-7,[0,[12]]]]}"#;
        let same_bytes = Spi::get_one::<bool>(&format!(
            "WITH v AS (SELECT jwt_verify(jwt_sign({c}::jsonb, {k}::jsonb), {k}::jsonb) AS built, {c}::jsonb AS parsed)
             SELECT built = parsed AND built::text = parsed::text AND pg_column_size(built) = pg_column_size(parsed)
               AND jsonb_send(built) = jsonb_send(parsed) FROM v",
            c = quote(numbers),
            k = quote(&key)
        ))
        .unwrap();
        assert_eq!(same_bytes, Some(true));
    }

    /// A token signed with `private` (a JWK of `alg`, kid `k1` or `k`) over exactly `payload`:
    /// claims jwt_sign cannot take (it takes jsonb).
    fn sign_raw(payload: &str, private: &str, alg: &str) -> String {
        let signing = pg_jwt_core::SigningKey::parse(private.as_bytes()).unwrap();
        let kid = serde_json::from_str::<serde_json::Value>(private).unwrap()["kid"].clone();
        let b64 = |b: &[u8]| pg_jwt_core::b64::encode(b);
        let header = serde_json::json!({"alg": alg, "kid": kid}).to_string();
        let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        format!("{message}.{}", b64(&signing.sign(message.as_bytes()).unwrap()))
    }

    /// A signed claim number that numeric cannot hold (JSON sets no range): `jwt_verify` and
    /// `jwt_claims()` refuse to build their jsonb with 22003 and pg_jwt's message (not
    /// `numeric_in`'s, raised inside the build), at each limit of numeric; the token is not
    /// refused, and the accessors of its other claims still read them.
    #[pg_test]
    fn numbers_outside_numeric_range_are_22003_with_pg_jwts_message() {
        let key = private_jwk("HS256");
        let message = "22003 pg_jwt: a claim holds a number outside the range of PostgreSQL's numeric type (jsonb cannot hold it)";
        for n in [
            "1e1000000",
            "1e131072",
            "-1e131072",
            "1e-16384",
            "0e-16384",
            "[1, {\"x\": 1e-999999}]",
        ] {
            let token = sign_raw(&format!(r#"{{"sub":"a","exp":9999999999,"n":{n}}}"#), &key, "HS256");
            assert_eq!(
                outcome(&format!("SELECT jwt_verify({}, {})", quote(&token), quote(&key))),
                message,
                "{n}"
            );
        }
        // At the limits, inside the range: the same value as jsonb_in makes.
        let edge = r#"{"sub":"a","exp":9999999999,"big":1e131071,"small":1e-16383}"#;
        let token = sign_raw(edge, &key, "HS256");
        let same = Spi::get_one::<bool>(&format!(
            "SELECT jwt_verify({}, {}) = {}::jsonb",
            quote(&token),
            quote(&key),
            quote(edge)
        ))
        .unwrap();
        assert_eq!(same, Some(true));

        // The session token: jwt_claims() and the jsonb of that claim refuse; the others read.
        let p = private_jwk("ES256");
        Spi::run(&format!("SET pg_jwt.jwks = {}", quote(&verify_jwks(&p)))).unwrap();
        let exp = crate::clock::now_unix() + 600;
        set_token(&sign_raw(
            &format!(r#"{{"sub":"alice","exp":{exp},"n":1e999999,"deep":{{"m":[2e-99999]}}}}"#),
            &p,
            "ES256",
        ));
        assert_eq!(outcome("SELECT jwt_claims()"), message);
        assert_eq!(outcome("SELECT jwt_claims() -> 'n'"), message);
        assert_eq!(one_text("SELECT jwt_claim('sub')"), Some("alice".into()));
        assert_eq!(one_text("SELECT jwt_claim('n')"), Some("1e999999".into()));
    }

    #[pg_test]
    fn sign_then_verify_every_algorithm() {
        for alg in [
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ] {
            let p = private_jwk(alg);
            let t = sign(&fresh(""), &p);
            let claims = one_json(&format!(
                "SELECT jwt_verify({}, {})",
                quote(&t),
                quote(&verify_jwks(&p))
            ))
            .unwrap();
            assert_eq!(claims["sub"], "alice", "{alg}");
            let header = one_json(&format!("SELECT jwt_decode_unverified({}) -> 'header'", quote(&t))).unwrap();
            assert_eq!(header["alg"], alg);
            assert_eq!(header["typ"], "JWT");
        }
    }

    #[pg_test]
    fn jwt_verify_null_inputs_give_null() {
        let p = private_jwk("HS256");
        let t = sign(&fresh(""), &p);
        assert_eq!(one_json(&format!("SELECT jwt_verify(NULL, {})", quote(&p))), None);
        assert_eq!(one_json(&format!("SELECT jwt_verify({}, NULL)", quote(&t))), None);
        // NULL audience/issuer mean "not configured"; NULL leeway means the default.
        let v = one_json(&format!(
            "SELECT jwt_verify({}, {}, NULL, NULL, NULL)",
            quote(&t),
            quote(&p)
        ));
        assert!(v.is_some());
    }

    #[pg_test]
    fn jwt_verify_rejections_raise_28000() {
        let p = private_jwk("ES256");
        let jwks = verify_jwks(&p);
        let t = sign(&fresh(""), &p);
        let expired = sign(r#"{"sub":"a","exp":1000000000}"#, &p);
        let with_aud = sign(&fresh(r#","aud":"api""#), &p);
        let with_iss = sign(&fresh(r#","iss":"https://a.example""#), &p);
        let cases = [
            (format!("{t}x"), "malformed token", None, None),
            ("not a token".to_owned(), "malformed token", None, None),
            (t.replace("eyJ", "eyK"), "malformed token", None, None),
            (format!("{t}.a.b"), "unsupported token feature", None, None),
            ("x".repeat(20000), "token too large", None, None),
            (expired, "token expired", None, None),
            (with_aud.clone(), "audience mismatch", None, None),
            (with_aud, "audience mismatch", Some("other"), None),
            (t.clone(), "missing required claim", Some("api"), None),
            (with_iss, "issuer mismatch", None, Some("https://b.example")),
        ];
        for (token, reason, aud, iss) in cases {
            let sql = format!(
                "SELECT jwt_verify({}, {}, {}, {})",
                quote(&token),
                quote(&jwks),
                aud.map(quote).unwrap_or("NULL".into()),
                iss.map(quote).unwrap_or("NULL".into())
            );
            let out = outcome(&sql);
            assert_eq!(out, format!("28000 pg_jwt: {reason}"), "{reason}");
        }
        // Invalid signature: another key of the same type.
        let other = private_jwk("ES256");
        let forged = sign(&fresh(""), &other);
        assert_eq!(
            outcome(&format!("SELECT jwt_verify({}, {})", quote(&forged), quote(&jwks))),
            "28000 pg_jwt: invalid signature"
        );
    }

    #[pg_test]
    fn jwt_verify_bad_key_sets_and_arguments_raise_22023() {
        let p = private_jwk("HS256");
        let t = sign(&fresh(""), &p);
        for jwks in [
            r#"{}"#,
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kty":"oct","k":""}]}"#,
            r#"[1,2]"#,
            r#""a""#,
        ] {
            let out = outcome(&format!("SELECT jwt_verify({}, {})", quote(&t), quote(jwks)));
            assert!(out.starts_with("22023 pg_jwt: invalid key set"), "{jwks}: {out}");
        }
        // A private asymmetric key is refused: only public keys belong in a verification set.
        let es = private_jwk("ES256");
        let out = outcome(&format!("SELECT jwt_verify({}, {})", quote(&t), quote(&es)));
        assert!(out.starts_with("22023") && out.contains("private member d"), "{out}");
        for leeway in ["-1", "3601"] {
            let out = outcome(&format!(
                "SELECT jwt_verify({}, {}, leeway_seconds => {leeway})",
                quote(&t),
                quote(&p)
            ));
            assert!(out.starts_with("22023 pg_jwt: leeway_seconds"), "{out}");
        }
    }

    #[pg_test]
    fn jwt_verify_audience_issuer_and_leeway_parameters() {
        let p = private_jwk("HS256");
        let t = sign(&fresh(r#","aud":["api","web"],"iss":"https://i.example""#), &p);
        let ok = one_json(&format!(
            "SELECT jwt_verify({}, {}, audience => 'web', issuer => 'https://i.example')",
            quote(&t),
            quote(&p)
        ));
        assert_eq!(ok.unwrap()["iss"], "https://i.example");
        let now = crate::clock::now_unix();
        let recent = sign(&format!(r#"{{"exp":{}}}"#, now - 100), &p);
        let sql = |leeway: i32| {
            format!(
                "SELECT jwt_verify({}, {}, leeway_seconds => {leeway})",
                quote(&recent),
                quote(&p)
            )
        };
        assert_eq!(outcome(&sql(30)), "28000 pg_jwt: token expired");
        assert_eq!(outcome(&sql(3600)), "ok");
    }

    #[pg_test]
    fn e5_large_integers_exact_in_jsonb() {
        let p = private_jwk("HS256");
        let t = sign(
            &fresh(r#","big":123456789012345678901234567890,"dec":0.1000000000000000055511151231257827"#),
            &p,
        );
        let big = one_text(&format!("SELECT (jwt_verify({}, {}) ->> 'big')", quote(&t), quote(&p))).unwrap();
        assert_eq!(big, "123456789012345678901234567890");
        let dec = one_text(&format!("SELECT (jwt_verify({}, {}) ->> 'dec')", quote(&t), quote(&p))).unwrap();
        assert_eq!(dec, "0.1000000000000000055511151231257827");
    }

    #[pg_test]
    fn f10_error_text_carries_no_token_claim_or_key_bytes() {
        let p = private_jwk("HS256");
        let k = serde_json::from_str::<serde_json::Value>(&p).unwrap()["k"]
            .as_str()
            .unwrap()
            .to_owned();
        let t = sign(r#"{"sub":"TOPSECRETSUBJECT","exp":1000000000}"#, &p);
        let payload = t.split('.').nth(1).unwrap().to_owned();
        for sql in [
            format!("SELECT jwt_verify({}, {})", quote(&t), quote(&p)),
            format!("SELECT jwt_verify({}, {})", quote(&format!("{t}x")), quote(&p)),
            format!(
                "SELECT jwt_verify({}, {})",
                quote(&t),
                quote(&p.replace("\"HS256\"", "\"HS512\""))
            ),
        ] {
            let out = outcome(&sql);
            assert!(out.starts_with("28000") || out.starts_with("22023"), "{out}");
            for secret in ["TOPSECRETSUBJECT", &k, &payload[..10]] {
                assert!(!out.contains(secret), "{out}");
            }
        }
    }

    #[pg_test]
    fn jwt_sign_nulls_and_errors() {
        let p = private_jwk("HS256");
        assert_eq!(one_text(&format!("SELECT jwt_sign(NULL, {})", quote(&p))), None);
        assert_eq!(one_text("SELECT jwt_sign('{}', NULL)"), None);
        assert!(outcome(&format!("SELECT jwt_sign('[1]', {})", quote(&p)))
            .starts_with("22023 pg_jwt: claims must be a JSON object"));
        let public = verify_jwks(&private_jwk("ES256"));
        let out = outcome(&format!("SELECT jwt_sign('{{}}', {})", quote(&public)));
        assert!(out.starts_with("22023 pg_jwt: invalid JWK"), "{out}");
        let out = outcome(r#"SELECT jwt_sign('{}', '{"kty":"oct","k":"c2hvcnQ"}')"#);
        assert!(
            out.starts_with("22023 pg_jwt: invalid JWK") && out.contains("at least 32"),
            "{out}"
        );
        // The JWK's kid is carried in the header.
        let t = sign(&fresh(""), &p);
        let h = one_json(&format!("SELECT jwt_decode_unverified({}) -> 'header'", quote(&t))).unwrap();
        assert_eq!(h["kid"], "k1");
    }

    #[pg_test]
    fn jwt_public_jwks_strips_private_material() {
        for alg in ["RS256", "ES256", "ES384", "EdDSA"] {
            let p = private_jwk(alg);
            let public = one_json(&format!("SELECT jwt_public_jwks({})", quote(&p))).unwrap();
            let key = &public["keys"][0];
            for m in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(key.get(m).is_none(), "{alg}: {m}");
            }
            assert_eq!(key["alg"], alg);
        }
        // Secret keys are never published.
        let hs = private_jwk("HS256");
        let public = one_json(&format!("SELECT jwt_public_jwks({})", quote(&hs))).unwrap();
        assert_eq!(public["keys"].as_array().unwrap().len(), 0);
        assert_eq!(one_json("SELECT jwt_public_jwks(NULL)"), None);
        assert!(outcome("SELECT jwt_public_jwks('[1]')").starts_with("22023"));
    }

    #[pg_test]
    fn jwt_decode_unverified_shows_header_and_payload() {
        let p = private_jwk("HS256");
        let t = sign(r#"{"sub":"x","exp":1}"#, &p);
        let v = one_json(&format!("SELECT jwt_decode_unverified({})", quote(&t))).unwrap();
        assert_eq!(v["header"]["alg"], "HS256");
        assert_eq!(v["payload"]["sub"], "x");
        assert_eq!(one_json("SELECT jwt_decode_unverified(NULL)"), None);
        assert_eq!(
            outcome("SELECT jwt_decode_unverified('abc')"),
            "28000 pg_jwt: malformed token"
        );
    }

    #[pg_test]
    fn jwt_generate_jwk_algorithms_and_errors() {
        for alg in ["HS256", "HS384", "HS512", "ES256", "ES384", "EdDSA"] {
            let k = one_json(&format!("SELECT jwt_generate_jwk('{alg}')")).unwrap();
            assert_eq!(k["alg"], alg);
            assert!(k.get("kid").is_none());
        }
        assert_eq!(
            one_text("SELECT jwt_generate_jwk('EdDSA', 'x') ->> 'kid'"),
            Some("x".into())
        );
        assert_eq!(one_json("SELECT jwt_generate_jwk(NULL)"), None);
        let out = outcome("SELECT jwt_generate_jwk('RS256')");
        assert!(out.starts_with("22023") && out.contains("ring"), "{out}");
        assert!(outcome("SELECT jwt_generate_jwk('none')").starts_with("22023"));
        // Two generated keys differ.
        assert_eq!(
            one_text("SELECT ((jwt_generate_jwk('HS256') ->> 'k') <> (jwt_generate_jwk('HS256') ->> 'k'))::text"),
            Some("true".into())
        );
    }

    #[pg_test]
    fn declared_volatility_strictness_and_parallel_safety() {
        let rows = [
            ("jwt_verify", "s", "s", false),
            ("jwt_sign", "v", "s", true),
            ("jwt_public_jwks", "i", "s", true),
            ("jwt_decode_unverified", "i", "s", true),
            ("jwt_generate_jwk", "v", "s", false),
        ];
        for (name, vol, par, strict) in rows {
            let got = one_text(&format!(
                "SELECT provolatile::text || proparallel::text || proisstrict::text FROM pg_proc WHERE proname = '{name}'"
            ))
            .unwrap();
            assert_eq!(got, format!("{vol}{par}{strict}"), "{name}");
        }
    }

    #[pg_test]
    fn f9_hostile_inputs_end_in_clean_errors_and_the_backend_lives() {
        let p = private_jwk("HS256");
        let pid = Spi::get_one::<i32>("SELECT pg_backend_pid()").unwrap();
        let hostile = [
            "",
            ".",
            "..",
            "....",
            "a.b.c",
            "\u{e9}.\u{e9}.\u{e9}",
            "eyJ9.eyJ9.",
            "%00",
            "=====",
            "eyJhbGciOiJub25lIn0.e30.",
            "eyJhbGciOiJIUzI1NiJ9.W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1td.AA",
        ];
        for t in hostile {
            let out = outcome(&format!("SELECT jwt_verify({}, {})", quote(t), quote(&p)));
            assert!(out.starts_with("28000 pg_jwt: "), "{t:?}: {out}");
            // Decoding checks syntax only: a well-formed alg=none token decodes.
            let out = outcome(&format!("SELECT jwt_decode_unverified({})", quote(t)));
            assert!(out.starts_with("28000 pg_jwt: ") || out == "ok", "{t:?}: {out}");
        }
        // Each input's one right outcome: not JSON fails the jsonb cast (22P02); not a key set
        // is 22023; jwt_public_jwks only filters members (it does not import), so syntactically
        // plausible keys pass through it, while jwt_sign imports and refuses them.
        for (jwks, public_outcome) in [
            ("{", "22P02"),
            ("null", "22023"),
            ("{\"keys\":[null]}", "22023"),
            ("{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"\"}", "ok"),
            ("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"\",\"y\":\"\"}", "ok"),
        ] {
            let out = outcome(&format!("SELECT jwt_public_jwks({}::jsonb)", quote(jwks)));
            assert_eq!(out.get(..public_outcome.len()), Some(public_outcome), "{jwks}: {out}");
            let out = outcome(&format!("SELECT jwt_sign('{{}}', {}::jsonb)", quote(jwks)));
            let sign_outcome = if jwks == "{" { "22P02" } else { "22023" };
            assert!(out.starts_with(sign_outcome), "{jwks}: {out}");
        }
        assert_eq!(Spi::get_one::<i32>("SELECT pg_backend_pid()").unwrap(), pid);
        assert_eq!(Spi::get_one::<i32>("SELECT 1").unwrap(), Some(1));
    }

    // ------------------------------------------------------------------------------------
    // The session token, settings and claim accessors.

    /// Configures a key set and sets a token with `claims`; returns the private key.
    fn setup(claims: &str) -> String {
        let p = private_jwk("ES256");
        Spi::run(&format!("SET pg_jwt.jwks = {}", quote(&verify_jwks(&p)))).unwrap();
        set_token(&sign(claims, &p));
        p
    }

    fn set_token(t: &str) {
        Spi::run(&format!("SET pg_jwt.token = {}", quote(t))).unwrap();
    }

    #[pg_test]
    fn accessors_are_null_without_a_token() {
        setup(&fresh(""));
        for value in ["", "DEFAULT"] {
            if value.is_empty() {
                Spi::run("SET pg_jwt.token = ''").unwrap();
            } else {
                Spi::run("RESET pg_jwt.token").unwrap();
            }
            assert_eq!(one_text("SELECT jwt_claim('sub')"), None);
            assert_eq!(one_json("SELECT jwt_claims()"), None);
            assert_eq!(one_text("SELECT jwt_claim_uuid('sub')::text"), None);
            assert_eq!(one_text("SELECT jwt_claim_bigint('sub')::text"), None);
            assert_eq!(one_text("SELECT jwt_claim_array('sub')::text"), None);
        }
    }

    #[pg_test]
    fn accessors_read_verified_claims() {
        let claims = fresh(
            r#","tenant_id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","org":42,"admin":true,"n":null,
               "roles":["reader","writer"],"role":"reader","https://example.com/claims":{"tier":"gold"},
               "app_metadata":{"tenant_id":"8e1c1a7e-2a9d-4a53-b8a4-6f5d0b6f9c11","ids":[1,2]},
               "big":123456789012345678901234567890"#,
        );
        setup(&claims);
        assert_eq!(one_text("SELECT jwt_claim('sub')"), Some("alice".into()));
        assert_eq!(one_text("SELECT jwt_claim('org')"), Some("42".into()));
        assert_eq!(one_text("SELECT jwt_claim('admin')"), Some("true".into()));
        assert_eq!(one_text("SELECT jwt_claim('n')"), None);
        assert_eq!(one_text("SELECT jwt_claim('absent')"), None);
        assert_eq!(
            one_text("SELECT jwt_claim('roles')"),
            Some(r#"["reader","writer"]"#.into())
        );
        assert_eq!(
            one_text("SELECT jwt_claim('big')"),
            Some("123456789012345678901234567890".into())
        );
        // Dots are part of the name, never a path.
        assert_eq!(
            one_text("SELECT jwt_claim('https://example.com/claims')"),
            Some(r#"{"tier":"gold"}"#.into())
        );
        assert_eq!(
            one_text("SELECT jwt_claim('https://example.com/claims', 'tier')"),
            Some("gold".into())
        );
        assert_eq!(
            one_text("SELECT jwt_claim('app_metadata', 'tenant_id')"),
            Some("8e1c1a7e-2a9d-4a53-b8a4-6f5d0b6f9c11".into())
        );
        assert_eq!(one_text("SELECT jwt_claim('app_metadata', 'nope')"), None);
        assert_eq!(one_text("SELECT jwt_claim('sub', 'x')"), None);
        assert_eq!(one_text("SELECT jwt_claim(VARIADIC ARRAY['app_metadata', NULL])"), None);
        assert_eq!(
            one_text("SELECT jwt_claim_uuid('tenant_id')::text"),
            Some("3f2504e0-4f89-11d3-9a0c-0305e82c3301".into())
        );
        assert_eq!(
            one_text("SELECT jwt_claim_uuid('app_metadata', 'tenant_id')::text"),
            Some("8e1c1a7e-2a9d-4a53-b8a4-6f5d0b6f9c11".into())
        );
        assert_eq!(Spi::get_one::<i64>("SELECT jwt_claim_bigint('org')").unwrap(), Some(42));
        assert_eq!(
            one_text("SELECT jwt_claim_array('roles')::text"),
            Some("{reader,writer}".into())
        );
        assert_eq!(
            one_text("SELECT jwt_claim_array('role')::text"),
            Some("{reader}".into())
        );
        assert_eq!(
            one_text("SELECT jwt_claim_array('app_metadata', 'ids')::text"),
            Some("{1,2}".into())
        );
        assert_eq!(
            one_text("SELECT ('writer' = ANY (jwt_claim_array('roles')))::text"),
            Some("true".into())
        );
        assert_eq!(one_json("SELECT jwt_claims()").unwrap()["org"], 42);
        assert_eq!(
            one_text("SELECT jwt_claims() ->> 'big'"),
            Some("123456789012345678901234567890".into())
        );
    }

    #[pg_test]
    fn uuid_claims_accept_exactly_the_canonical_and_32_hex_forms() {
        setup(&fresh(
            r#","u1":"3F2504E0-4F89-11D3-9A0C-0305E82C3301","u2":"3f2504e04f8911d39a0c0305e82c3301","b":"{3f2504e0-4f89-11d3-9a0c-0305e82c3301}","urn":"urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301","moved":"3f2504e04-f89-11d3-9a0c-0305e82c3301","short":"3f2504e0-4f89-11d3-9a0c-0305e82c330","g":"3f2504e0-4f89-11d3-9a0c-0305e82c330g""#,
        ));
        for name in ["u1", "u2"] {
            assert_eq!(
                one_text(&format!("SELECT jwt_claim_uuid('{name}')::text")),
                Some("3f2504e0-4f89-11d3-9a0c-0305e82c3301".into()),
                "{name}"
            );
        }
        for name in ["b", "urn", "moved", "short", "g"] {
            let out = outcome(&format!("SELECT jwt_claim_uuid('{name}')"));
            assert!(
                out.starts_with("22P02 pg_jwt: the claim is not a valid uuid"),
                "{name}: {out}"
            );
        }
    }

    #[pg_test]
    fn typed_accessors_refuse_values_of_another_type() {
        setup(&fresh(r#","org":"x1","huge":99999999999999999999,"frac":1.5,"obj":{}"#));
        assert!(outcome("SELECT jwt_claim_uuid('sub')").starts_with("22P02 pg_jwt: the claim is not a valid uuid"));
        assert!(outcome("SELECT jwt_claim_uuid('obj')").starts_with("22P02"));
        assert!(outcome("SELECT jwt_claim_bigint('org')").starts_with("22P02"));
        assert!(outcome("SELECT jwt_claim_bigint('frac')").starts_with("22P02"));
        assert!(outcome("SELECT jwt_claim_bigint('huge')").starts_with("22003"));
    }

    #[pg_test]
    fn rejected_tokens_raise_28000_from_every_accessor() {
        let p = setup(&fresh(""));
        let expired = sign(r#"{"sub":"a","exp":1000000000}"#, &p);
        for (token, reason) in [("garbage", "malformed token"), (expired.as_str(), "token expired")] {
            set_token(token);
            for call in [
                "jwt_claims()",
                "jwt_claim('sub')",
                "jwt_claim('a', 'b')",
                "jwt_claim_uuid('sub')",
                "jwt_claim_uuid('a', 'b')",
                "jwt_claim_bigint('sub')",
                "jwt_claim_bigint('a', 'b')",
                "jwt_claim_array('sub')",
                "jwt_claim_array('a', 'b')",
            ] {
                assert_eq!(
                    outcome(&format!("SELECT {call}")),
                    format!("28000 pg_jwt: {reason}"),
                    "{call}"
                );
            }
        }
    }

    #[pg_test]
    fn validation_settings_apply_to_the_session_token() {
        let pad = "x".repeat(200);
        let p = setup(&fresh(&format!(
            r#","aud":"api","iss":"https://i.example","pad":"{pad}""#
        )));
        // A token with aud and no configured audience is refused (RFC 7519 4.1.3).
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "28000 pg_jwt: audience mismatch");
        Spi::run("SET pg_jwt.audience = 'api'").unwrap();
        assert_eq!(one_text("SELECT jwt_claim('sub')"), Some("alice".into()));
        Spi::run("SET pg_jwt.issuer = 'https://other.example'").unwrap();
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "28000 pg_jwt: issuer mismatch");
        Spi::run("SET pg_jwt.issuer = 'https://i.example'").unwrap();
        Spi::run("SET pg_jwt.required_claims = 'exp, tenant_id'").unwrap();
        assert_eq!(
            outcome("SELECT jwt_claim('sub')"),
            "28000 pg_jwt: missing required claim"
        );
        Spi::run("SET pg_jwt.required_claims = 'exp'").unwrap();
        Spi::run("SET pg_jwt.max_token_bytes = 256").unwrap();
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "28000 pg_jwt: token too large");
        Spi::run("RESET pg_jwt.max_token_bytes").unwrap();
        let recent = sign(
            &format!(
                r#"{{"exp":{},"aud":"api","iss":"https://i.example"}}"#,
                crate::clock::now_unix() - 100
            ),
            &p,
        );
        set_token(&recent);
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "28000 pg_jwt: token expired");
        Spi::run("SET pg_jwt.leeway = 3600").unwrap();
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "ok");
        for bad in [
            "SET pg_jwt.leeway = -1",
            "SET pg_jwt.leeway = 3601",
            "SET pg_jwt.max_token_bytes = 10",
        ] {
            assert!(outcome(bad).starts_with("22023"), "{bad}");
        }
    }

    #[pg_test]
    fn d19_key_rotation_invalidates_cached_verifications() {
        let p = setup(&fresh(""));
        assert_eq!(one_text("SELECT jwt_claim('sub')"), Some("alice".into()));
        let other = private_jwk("ES256");
        Spi::run(&format!("SET pg_jwt.jwks = {}", quote(&verify_jwks(&other)))).unwrap();
        // Same kid, another key: the signature no longer verifies.
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "28000 pg_jwt: invalid signature");
        Spi::run(&format!("SET pg_jwt.jwks = {}", quote(&verify_jwks(&p)))).unwrap();
        assert_eq!(one_text("SELECT jwt_claim('sub')"), Some("alice".into()));
    }

    #[pg_test]
    fn bad_or_missing_key_set_is_22023() {
        let out = outcome(r#"SET pg_jwt.jwks = '{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}'"#);
        assert!(out.starts_with("22023") && out.contains("pg_jwt.jwks"), "{out}");
        // A refused key set is never echoed: it may hold HMAC secrets.
        let out = outcome(r#"SET pg_jwt.jwks = '{"kty":"oct","k":"c2VjcmV0LXNob3J0"}'"#);
        assert!(out.starts_with("22023") && !out.contains("c2VjcmV0LXNob3J0"), "{out}");
        Spi::run("RESET pg_jwt.jwks").unwrap();
        Spi::run("SET pg_jwt.token = 'a.b.c'").unwrap();
        let out = outcome("SELECT jwt_claim('sub')");
        assert!(
            out.starts_with("22023 pg_jwt: invalid key set: pg_jwt.jwks is not set"),
            "{out}"
        );
    }

    #[pg_test]
    fn oversized_tokens_and_key_sets_are_refused_before_any_work() {
        setup(&fresh(""));
        // A 50 MB session token: refused by its size (checked before the token is hashed for the
        // cache or decoded).
        Spi::run("SELECT set_config('pg_jwt.token', repeat('a', 50 * 1024 * 1024), false)").unwrap();
        assert_eq!(outcome("SELECT jwt_claim('sub')"), "28000 pg_jwt: token too large");
        Spi::run("SET pg_jwt.token = ''").unwrap();
        // A 20 MB key set argument: 22023, and not kept in the key-set cache.
        let out = outcome(
            "SELECT jwt_verify('a.b.c', jsonb_build_object('keys', '[]'::jsonb, 'pad', repeat('x', 20 * 1024 * 1024)))",
        );
        assert!(out.starts_with("22023 pg_jwt: invalid key set: larger than"), "{out}");
    }

    #[pg_test]
    fn misspelt_settings_are_errors() {
        let out = outcome("SET pg_jwt.tokne = 'x'");
        assert!(out.contains("invalid configuration parameter name"), "{out}");
    }

    #[pg_test]
    fn key_fetcher_and_revocation_settings_refuse_bad_values() {
        for bad in [
            "http://id.example.com/jwks",
            "https://",
            "file:///etc/passwd",
            "ftp://x",
            "https://id.example.com/\u{e9}",
        ] {
            let out = outcome(&format!("SET pg_jwt.jwks_uri = {}", quote(bad)));
            assert!(out.starts_with("22023 pg_jwt: pg_jwt.jwks_uri must be"), "{bad}: {out}");
        }
        for good in ["https://id.example.com/.well-known/jwks.json", "discover", ""] {
            assert_eq!(
                outcome(&format!("SET pg_jwt.jwks_uri = {}", quote(good))),
                "ok",
                "{good}"
            );
        }
        // Worker-only settings are server-wide: not settable in a session.
        for stmt in [
            "SET pg_jwt.jwks_min_refresh = 5",
            "SET pg_jwt.jwks_max_refresh = 5",
            "SET pg_jwt.jwks_max_stale = 5",
            "SET pg_jwt.jwks_ca_file = '/tmp/x.pem'",
        ] {
            assert!(outcome(stmt).starts_with("55P02"), "{stmt}: {}", outcome(stmt));
        }
        assert!(outcome("SET pg_jwt.jwks_fetch_wait = -1").starts_with("22023"));
        assert_eq!(outcome("SET pg_jwt.jwks_fetch_wait = 0"), "ok");
        assert_eq!(outcome("SET pg_jwt.session_claim = 'session_id'"), "ok");
        Spi::run("RESET pg_jwt.jwks_uri; RESET pg_jwt.jwks_fetch_wait; RESET pg_jwt.session_claim").unwrap();
    }

    #[pg_test]
    fn key_fetcher_and_revocation_are_not_the_applications() {
        Spi::run("CREATE ROLE jwt_test_fetch NOSUPERUSER").unwrap();
        Spi::run("SET ROLE jwt_test_fetch").unwrap();
        for stmt in [
            "SET pg_jwt.jwks_uri = 'https://evil.example.com/jwks'",
            "SET pg_jwt.jwks_fetch_wait = 0",
            "SET pg_jwt.session_claim = 'x'",
            "SELECT jwt_jwks_refresh()",
            "SELECT jwt_revoke_token('x', now())",
        ] {
            assert!(outcome(stmt).starts_with("42501"), "{stmt}: {}", outcome(stmt));
        }
        Spi::run("RESET ROLE").unwrap();
    }

    #[pg_test]
    fn f1_other_settings_are_never_trusted() {
        setup(&fresh(""));
        Spi::run(r#"SELECT set_config('request.jwt.claims', '{"sub":"mallory"}', false)"#).unwrap();
        Spi::run(r#"SELECT set_config('request.jwt.claim.sub', 'mallory', false)"#).unwrap();
        assert_eq!(one_text("SELECT jwt_claim('sub')"), Some("alice".into()));
        Spi::run("SET pg_jwt.token = ''").unwrap();
        assert_eq!(one_text("SELECT jwt_claim('sub')"), None);
    }

    #[pg_test]
    fn verification_happens_once_per_distinct_token() {
        let p = setup(&fresh(""));
        let before = one_json("SELECT jwt_cache_stats()").unwrap()["verifications"]
            .as_u64()
            .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(jwt_claim('sub')) FROM generate_series(1, 10000)").unwrap(),
            Some(10000)
        );
        let t2 = sign(&fresh(r#","n":2"#), &p);
        for _ in 0..3 {
            set_token(&t2);
            assert_eq!(one_text("SELECT jwt_claim('n')"), Some("2".into()));
        }
        let after = one_json("SELECT jwt_cache_stats()").unwrap()["verifications"]
            .as_u64()
            .unwrap();
        assert_eq!(after - before, 2, "one verification per distinct token");
    }

    #[pg_test]
    fn f11_cache_stays_within_its_bound() {
        let p = setup(&fresh(""));
        Spi::run("SET pg_jwt.cache_size = 50").unwrap();
        Spi::run(&format!(
            "DO $$ BEGIN FOR i IN 1..500 LOOP
               PERFORM set_config('pg_jwt.token', jwt_sign(jsonb_build_object('i', i, 'exp', {}), {}), true);
               PERFORM jwt_claim('i');
             END LOOP; END $$",
            crate::clock::now_unix() + 600,
            quote(&p)
        ))
        .unwrap();
        let stats = one_json("SELECT jwt_cache_stats()").unwrap();
        assert_eq!(stats["capacity"], 50);
        assert!(stats["cached_tokens"].as_u64().unwrap() <= 50, "{stats}");
    }

    /// A full cache keeps a token the second time it misses, not the first (src/session/table.rs,
    /// `Table::keep`): a token met once does not evict one in use; every token still gets its
    /// own, right claims.
    #[pg_test]
    fn a_full_cache_admits_a_token_on_its_second_miss() {
        let p = setup(&fresh(""));
        Spi::run("SET pg_jwt.cache_size = 2").unwrap();
        let t: Vec<String> = (1..=3).map(|n| sign(&fresh(&format!(r#","n":{n}"#)), &p)).collect();
        let verifications = || {
            one_json("SELECT jwt_cache_stats()").unwrap()["verifications"]
                .as_u64()
                .unwrap()
        };
        let use_token = |i: usize| {
            set_token(&t[i]);
            let before = verifications();
            assert_eq!(one_text("SELECT jwt_claim('n')"), Some((i + 1).to_string()));
            let cached = one_json("SELECT jwt_cache_stats()").unwrap()["cached_tokens"]
                .as_u64()
                .unwrap();
            assert!(cached <= 2, "cached_tokens {cached}");
            verifications() - before
        };
        let expect = |i: usize, verified: u64| assert_eq!(use_token(i), verified, "token {}", i + 1);
        expect(0, 1); // t1, t2 fill the cache
        expect(1, 1);
        expect(2, 1); // t3: full, first miss: verified, not kept
        expect(0, 0); // t1 was not evicted
        expect(1, 0);
        expect(2, 1); // t3's second miss: verified again, kept (t1 or t2 goes: CLOCK, by slot order)
        expect(2, 0);
        // Exactly one of t1 and t2 was evicted: it is verified again (a first miss of the full
        // cache: not kept, so the other stays), the other is found.
        assert_eq!(use_token(0) + use_token(1), 1);
    }

    #[pg_test]
    fn call_site_cache_follows_token_changes_within_one_query() {
        let p = setup(&fresh(""));
        Spi::run("CREATE TEMP TABLE toks (i int, t text)").unwrap();
        for i in 0..5 {
            let t = sign(
                &fresh(&format!(
                    r#","n":{i},"tenant":"3f2504e0-4f89-11d3-9a0c-0305e82c330{i}""#
                )),
                &p,
            );
            Spi::run(&format!("INSERT INTO toks VALUES ({i}, {})", quote(&t))).unwrap();
        }
        Spi::run("INSERT INTO toks VALUES (5, '')").unwrap();
        // Each row sets its own token, then reads claims through the same call sites. The CTE is
        // MATERIALIZED and unsorted so that both are evaluated per row, left to right (a Sort or a
        // pushed-down filter would evaluate the STABLE accessors apart from the VOLATILE set_config).
        let mismatches = Spi::get_one::<i64>(
            "WITH q AS MATERIALIZED (
               SELECT i, set_config('pg_jwt.token', t, true) AS s,
                      jwt_claim('n') AS n, jwt_claim_bigint('n') AS nb,
                      jwt_claim_uuid('tenant')::text AS u, jwt_claim_array('n') AS a,
                      jwt_claims() ->> 'n' AS c
               FROM toks)
             SELECT count(*) FROM q
             WHERE n IS DISTINCT FROM CASE WHEN i < 5 THEN i::text END
                OR nb IS DISTINCT FROM CASE WHEN i < 5 THEN i::bigint END
                OR u IS DISTINCT FROM CASE WHEN i < 5 THEN '3f2504e0-4f89-11d3-9a0c-0305e82c330' || i END
                OR a IS DISTINCT FROM CASE WHEN i < 5 THEN ARRAY[i::text] END
                OR c IS DISTINCT FROM CASE WHEN i < 5 THEN i::text END",
        )
        .unwrap();
        assert_eq!(mismatches, Some(0));
        // The same call site with a different argument on each row.
        let names = Spi::get_one::<String>(
            "SELECT string_agg(coalesce(jwt_claim(k), '-'), ',' ORDER BY k)
             FROM (SELECT set_config('pg_jwt.token', t, true) FROM toks WHERE i = 2) s,
                  unnest(ARRAY['n', 'sub', 'tenant', 'missing']) k",
        )
        .unwrap();
        assert_eq!(names, Some("-,2,alice,3f2504e0-4f89-11d3-9a0c-0305e82c3302".into()));
    }

    #[pg_test]
    fn accessors_are_stable_strict_and_parallel_safe() {
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'jwt_claim%' AND provolatile = 's' AND proparallel = 's'",
        )
        .unwrap();
        assert_eq!(n, Some(9), "jwt_claims + 4 accessors x 2 forms");
        let strict =
            Spi::get_one::<i64>("SELECT count(*) FROM pg_proc WHERE proname IN ('jwt_claim_uuid', 'jwt_claim_bigint', 'jwt_claim_array') AND proisstrict")
                .unwrap();
        assert_eq!(strict, Some(6));
    }
}
