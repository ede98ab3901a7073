//! Claim validation is total (never panics) and does not depend on the order of members.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::claims::validate;
use pg_jwt_core::{Json, Validation};

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = Json::parse(data) else { return };
    let required = vec!["exp".to_owned(), "sub".to_owned()];
    let mut v = Validation::new(1_700_000_000, &required);
    v.audience = Some("api");
    v.issuer = Some("https://issuer.example");
    let first = validate(&claims, &v).map(|t| (t.exp, t.nbf)).map_err(|e| e.to_string());
    if let Json::Object(members) = &claims {
        let reversed = Json::Object(members.iter().rev().cloned().collect());
        let second = validate(&reversed, &v).map(|t| (t.exp, t.nbf)).map_err(|e| e.to_string());
        assert_eq!(first, second, "member order changed the outcome");
    }
});
