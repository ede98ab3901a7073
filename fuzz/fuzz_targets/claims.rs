//! Claim validation is total (never panics) and does not depend on the order of members; the
//! claims from a shared cache record (`token::verify_recorded`, which reads the payload's
//! top-level members without building the tree) are those of a full parse and validation of the
//! same payload, and so is their tree.
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
    let Ok(claims) = Json::parse(data) else { return };
    let first = validate(&claims, &v).map(|t| (t.exp, t.nbf)).map_err(|e| e.to_string());
    if let Json::Object(members) = &claims {
        let reversed = Json::Object(members.iter().rev().cloned().collect());
        let second = validate(&reversed, &v).map(|t| (t.exp, t.nbf)).map_err(|e| e.to_string());
        assert_eq!(first, second, "member order changed the outcome");
    }
});
