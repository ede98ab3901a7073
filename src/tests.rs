//! `#[pg_test]`s: every SQL function inside a real backend, including NULLs, SQLSTATEs and the
//! declared volatility.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;

    const RSA_PRIVATE: &str = include_str!("../../shared/vectors/rfc7520/RFC7520-RSA-private.json");

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
        for leeway in ["-1", "86401"] {
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
        for jwks in [
            "{",
            "null",
            "{\"keys\":[null]}",
            "{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"\"}",
            "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"\",\"y\":\"\"}",
        ] {
            let out = outcome(&format!("SELECT jwt_public_jwks({}::jsonb)", quote(jwks)));
            assert!(
                out.starts_with("22023") || out.starts_with("22P02") || out == "ok",
                "{jwks}: {out}"
            );
            let out = outcome(&format!("SELECT jwt_sign('{{}}', {}::jsonb)", quote(jwks)));
            assert!(out.starts_with("22023") || out.starts_with("22P02"), "{jwks}: {out}");
        }
        assert_eq!(Spi::get_one::<i32>("SELECT pg_backend_pid()").unwrap(), pid);
        assert_eq!(Spi::get_one::<i32>("SELECT 1").unwrap(), Some(1));
    }
}
