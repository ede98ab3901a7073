//! Whether a key set holds secret material (issue: HMAC key sets must never be stored in a
//! catalog other roles can read). The SQL layer refuses such a set for `ALTER DATABASE/ROLE ...
//! SET` and function `SET` clauses; here, the detection itself.

mod common;
use common::*;
use pg_jwt_core::KeySet;

#[test]
fn an_hmac_key_set_holds_secrets() {
    let private = private_jwk("HS256", Some("h"));
    assert!(keyset(&verify_jwks(&private)).holds_secrets);
    // A single JWK, not wrapped in a set.
    assert!(KeySet::parse(private.as_bytes()).unwrap().holds_secrets);
}

#[test]
fn public_key_sets_hold_no_secrets() {
    for alg in ["RS256", "ES256", "ES384", "EdDSA"] {
        let private = private_jwk(alg, Some("k"));
        assert!(!keyset(&verify_jwks(&private)).holds_secrets, "{alg}");
    }
}

#[test]
fn a_skipped_oct_key_still_counts_as_a_secret() {
    // An oct key marked for encryption is skipped for verification, but its secret is in the text.
    let es = verify_jwks(&private_jwk("ES256", Some("sig")));
    let es_key = es.trim_start_matches("{\"keys\":[").trim_end_matches("]}");
    let jwks = format!(
        "{{\"keys\":[{es_key},{{\"kty\":\"oct\",\"use\":\"enc\",\"kid\":\"e\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI\"}}]}}"
    );
    let set = keyset(&jwks);
    assert_eq!(set.skipped, 1);
    assert!(set.holds_secrets);
}

#[test]
fn merged_key_sets_refuse_a_shared_kid_and_mixed_kinds() {
    let a = verify_jwks(&private_jwk("ES256", Some("a")));
    let b = verify_jwks(&private_jwk("EdDSA", Some("b")));
    let merged = KeySet::merge(keyset(&a), keyset(&b)).unwrap();
    assert_eq!(merged.kids(), vec!["a", "b"]);
    let a_again = verify_jwks(&private_jwk("ES384", Some("a")));
    assert!(
        KeySet::merge(keyset(&a), keyset(&a_again)).is_err(),
        "the same kid twice"
    );
    let hmac = verify_jwks(&private_jwk("HS256", Some("h")));
    assert!(
        KeySet::merge(keyset(&a), keyset(&hmac)).is_err(),
        "oct beside asymmetric keys"
    );
}
