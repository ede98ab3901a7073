//! Token verification against fixed keys: never panics on any input; and a token accepted
//! under the key set is refused after any single-byte change of its header, payload or
//! signature segment (the first input bytes choose the position and the new byte).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::token::{self, HeaderPolicy};
use pg_jwt_core::{Json, KeySet, SigningKey, Validation};
use std::sync::OnceLock;

const HS: &str = r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}"#;

fn fixture() -> &'static (KeySet, String) {
    static F: OnceLock<(KeySet, String)> = OnceLock::new();
    F.get_or_init(|| {
        let keys = KeySet::parse(format!(r#"{{"keys":[{HS}]}}"#).as_bytes()).unwrap();
        let claims = Json::parse(br#"{"sub":"fuzz","tenant":"t1","exp":4102444800}"#).unwrap();
        let t = token::sign(&claims, &SigningKey::parse(HS.as_bytes()).unwrap()).unwrap();
        (keys, t)
    })
}

fuzz_target!(|data: &[u8]| {
    let (keys, good) = fixture();
    let required = vec!["exp".to_owned()];
    let v = Validation::new(1_700_000_000, &required);
    let policy = HeaderPolicy::default();
    // Any input: never panics.
    let _ = token::verify(data, keys, &policy, &v);
    // One byte of a good token changed: refused.
    if data.len() >= 3 {
        let pos = (usize::from(data[0]) << 8 | usize::from(data[1])) % good.len();
        let mut t = good.clone().into_bytes();
        if t[pos] != data[2] {
            t[pos] = data[2];
            assert!(
                token::verify(&t, keys, &policy, &v).is_err(),
                "a token with byte {pos} changed was accepted"
            );
        }
    }
});
