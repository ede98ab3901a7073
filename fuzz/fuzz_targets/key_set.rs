//! Key-set import: never panics; an accepted set re-exports (jwt_public_jwks) to a set that
//! imports to the same key ids.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::jwk::public_key_set;
use pg_jwt_core::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = KeySet::parse(data) else {
        let _ = public_key_set(data);
        return;
    };
    let Ok(public) = public_key_set(data) else { return };
    // Secret (oct) keys are dropped from the public set: compare the others.
    if let Ok(again) = KeySet::parse(public.to_json_string().as_bytes()) {
        for kid in again.kids() {
            assert!(set.kids().contains(&kid), "re-export invented kid {kid:?}");
        }
    }
});
