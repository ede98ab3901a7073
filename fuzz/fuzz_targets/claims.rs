//! Claim validation is total (never panics) and does not depend on the order of members; the
//! claims from a shared cache record (`token::verify_recorded`, which reads the payload's
//! top-level members without building the tree) are those of a full parse and validation of the
//! same payload, and so is their tree; and so are those of the claims read to choose a provider
//! (`token::peek`) and verified from the record (`token::verify_recorded_peeked`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::claims::validate;
use pg_jwt_core::{Json, Validation};

fuzz_target!(|data: &[u8]| {
    let required = vec!["exp".to_owned(), "sub".to_owned()];
    let mut v = Validation::new(1_700_000_000, &required);
    v.audience = Some("api");
    v.issuer = Some("https://issuer.example");
    // The record's path over a token whose payload segment is `data` encoded.
    let token = format!("e30.{}.c2ln", pg_jwt_core::b64::encode(data));
    let recorded = pg_jwt_core::token::verify_recorded(
        token.as_bytes(),
        pg_jwt_core::Algorithm::ES256,
        &pg_jwt_core::HeaderPolicy::default(),
        &v,
    )
    .map(|r| {
        r.and_then(|(c, t)| c.tree().cloned().map(|c| (c, t.exp, t.nbf)))
            .map_err(|e| e.to_string())
    });
    let parsed = pg_jwt_core::token::parse_claims(data)
        .and_then(|c| validate(&c, &v).map(|t| (c, t.exp, t.nbf)))
        .map_err(|e| e.to_string());
    if token.len() <= pg_jwt_core::token::DEFAULT_MAX_TOKEN_BYTES {
        assert_eq!(recorded, Some(parsed), "a record's claims differ from a full parse");
    }
    // The claims read to choose a provider (`token::peek`), then verified from the record: the
    // same outcome as the record's path over the token itself (the header is a good one, so
    // that peek's refusals are the payload's).
    let policy = pg_jwt_core::HeaderPolicy::default();
    let token = format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", pg_jwt_core::b64::encode(data));
    let show = |r: Result<(pg_jwt_core::claims::Body, pg_jwt_core::TimeClaims), pg_jwt_core::TokenError>| {
        r.and_then(|(c, t)| c.tree().cloned().map(|c| (c, t.exp, t.nbf)))
            .map_err(|e| e.to_string())
    };
    let alg = pg_jwt_core::Algorithm::ES256;
    let peeked = match pg_jwt_core::token::peek(token.as_bytes(), &policy) {
        Ok(p) => pg_jwt_core::token::verify_recorded_peeked(token.as_bytes(), p, alg, &policy, &v).map(show),
        Err(e) => Some(Err(e.to_string())),
    };
    let direct = pg_jwt_core::token::verify_recorded(token.as_bytes(), alg, &policy, &v).map(show);
    assert_eq!(peeked, direct, "peeked claims differ from the record's path");
    let Ok(claims) = Json::parse(data) else { return };
    let first = validate(&claims, &v).map(|t| (t.exp, t.nbf)).map_err(|e| e.to_string());
    if let Json::Object(members) = &claims {
        let reversed = Json::Object(members.iter().rev().cloned().collect());
        let second = validate(&reversed, &v).map(|t| (t.exp, t.nbf)).map_err(|e| e.to_string());
        assert_eq!(first, second, "member order changed the outcome");
    }
});
