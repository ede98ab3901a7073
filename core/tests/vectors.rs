//! The Wycheproof JOSE vectors and RFC 7520 / RFC 7797 examples from ../shared/vectors, run at
//! the signature (JWS) layer: their payloads are not JSON objects, so the claims layer would
//! reject even the valid ones. Every disagreement with the vector's label is listed below with
//! its reason; any other disagreement fails the test.

mod common;

use common::*;
use pg_jwt_core::token::{verify_signature, HeaderPolicy};
use pg_jwt_core::{KeySet, TokenError};
use std::collections::BTreeMap;

/// Labelled differently from what pg_jwt does, on purpose (see ../shared/vectors/README.md).
const DEVIATIONS: &[(&str, &str, &str)] = &[
    // (file, tcId, reason)
    (
        "jws",
        "367",
        "labelled invalid but byte-identical to valid tc357 (C2SP/wycheproof#236): accepted",
    ),
    (
        "jws",
        "370",
        "labelled invalid but byte-identical to valid tc357 (C2SP/wycheproof#236): accepted",
    ),
    (
        "jws",
        "372",
        "labelled valid but contains '?': a strict base64url decoder rejects it (A9)",
    ),
    (
        "jws",
        "373",
        "labelled valid but contains '?': a strict base64url decoder rejects it (A9)",
    ),
    (
        "jws",
        "346",
        "labelled valid, but the key's alg pins PS256 and the token says PS384: rejected (B4, RFC 8725 3.1)",
    ),
    (
        "jws",
        "350",
        "labelled valid, but the key's alg pins PS256 and the token says PS384: rejected (B4, RFC 8725 3.1)",
    ),
    (
        "jws",
        "347",
        "ES512 (P-521) is not supported by ring (C6): the key is skipped, the token rejected",
    ),
    (
        "jws",
        "351",
        "ES512 (P-521) is not supported by ring (C6): the key is skipped, the token rejected",
    ),
];

fn deviation(file: &str, tc: &str) -> Option<&'static str> {
    DEVIATIONS
        .iter()
        .find(|(f, t, _)| *f == file && *t == tc)
        .map(|(_, _, r)| *r)
}

/// Runs one Wycheproof file; returns (checked, disagreements that are not documented).
fn run_wycheproof(file: &str, short: &str) -> (usize, Vec<String>, BTreeMap<String, String>) {
    let doc: serde_json::Value = serde_json::from_str(&read_vector(&format!("wycheproof/{file}"))).unwrap();
    let mut checked = 0;
    let mut unexpected = Vec::new();
    let mut outcomes = BTreeMap::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let key = group.get("public").unwrap_or(&group["private"]);
        let jwks = strip_private(key).to_string();
        let keys: Result<KeySet, _> = KeySet::parse(jwks.as_bytes());
        for test in group["tests"].as_array().unwrap() {
            let tc = test["tcId"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| test["tcId"].to_string());
            let Some(jws) = test["jws"].as_str() else { continue };
            let result = test["result"].as_str().unwrap();
            let outcome: Result<(), String> = match &keys {
                Err(e) => Err(format!("key set refused: {e}")),
                Ok(k) => verify_signature(jws.as_bytes(), k, &HeaderPolicy::default())
                    .map(|_| ())
                    .map_err(|e: TokenError| format!("{e}: {}", e.detail())),
            };
            checked += 1;
            outcomes.insert(tc.clone(), format!("{result} -> {outcome:?}"));
            let agrees = match result {
                "valid" => outcome.is_ok(),
                "invalid" => outcome.is_err(),
                _ => true, // "acceptable": either outcome is fine
            };
            if !agrees && deviation(short, &tc).is_none() {
                unexpected.push(format!(
                    "{file} tc{tc} ({}): expected {result}, got {outcome:?}",
                    test["comment"]
                ));
            }
            if let Some(reason) = deviation(short, &tc) {
                assert!(
                    !agrees || result == "acceptable",
                    "{file} tc{tc} is listed as a deviation ({reason}) but agrees"
                );
            }
        }
    }
    (checked, unexpected, outcomes)
}

#[test]
fn wycheproof_json_web_signature() {
    if !vectors_present() {
        return;
    }
    let (checked, unexpected, outcomes) = run_wycheproof("json_web_signature_test.json", "jws");
    assert!(checked > 350, "only {checked} vectors ran");
    assert!(
        unexpected.is_empty(),
        "{} disagreements:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    // Spot checks named by the checklist.
    for tc in ["16", "341", "342", "343", "344"] {
        assert!(
            outcomes[tc].contains("algorithm not allowed"),
            "B1 tc{tc}: {}",
            outcomes[tc]
        );
    }
    for tc in ["346", "350"] {
        assert!(
            outcomes[tc].contains("Err"),
            "B4 tc{tc}: key pins PS256, token says PS384: {}",
            outcomes[tc]
        );
    }
}

#[test]
fn wycheproof_json_web_key() {
    if !vectors_present() {
        return;
    }
    let (checked, unexpected, _) = run_wycheproof("json_web_key_test.json", "jwk");
    assert!(checked >= 20, "only {checked} vectors ran");
    assert!(
        unexpected.is_empty(),
        "{} disagreements:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

#[test]
fn rfc7520_section4_examples() {
    if !vectors_present() {
        return;
    }
    let doc: serde_json::Value = serde_json::from_str(&read_vector("rfc7520/jws_rfc7520.json")).unwrap();
    let mut verified = Vec::new();
    for test in doc["tests"].as_array().unwrap() {
        let name = test["name"].as_str().unwrap();
        let public = read_vector(&format!("rfc7520/{}", test["public_key"].as_str().unwrap()));
        let compact = test["compact"].as_str().unwrap();
        let alg = test["protected"]["alg"].as_str().unwrap();
        let keys = KeySet::parse(public.as_bytes());
        if alg == "ES512" {
            // Documented deviation (C6): the P-521 key is skipped, so the set has no usable key.
            assert!(keys.is_err(), "{name}: a P-521-only key set must be refused");
            continue;
        }
        let keys = keys.unwrap_or_else(|e| panic!("{name}: {e}"));
        let signed = verify_signature(compact.as_bytes(), &keys, &HeaderPolicy::default())
            .unwrap_or_else(|e| panic!("{name}: {e} ({})", e.detail()));
        assert_eq!(
            String::from_utf8(signed.payload).unwrap(),
            doc["payload"].as_str().unwrap()
        );
        verified.push(alg.to_owned());
    }
    assert_eq!(verified, ["RS256", "PS384", "HS256"]);
}

#[test]
fn b7_rfc7797_unencoded_payload_examples_unsupported() {
    if !vectors_present() {
        return;
    }
    let doc: serde_json::Value = serde_json::from_str(&read_vector("rfc7520/jws_rfc7797.json")).unwrap();
    // RFC 7797 section 4 uses the HMAC key of RFC 7515 appendix A.1.
    let key =
        r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;
    let keys = KeySet::parse(key.as_bytes()).unwrap();
    let mut b64_false_seen = 0;
    for test in doc["tests"].as_array().unwrap() {
        let compact = test["compact"].as_str().unwrap();
        let r = verify_signature(compact.as_bytes(), &keys, &HeaderPolicy::default());
        if test["protected"].get("b64").is_some() {
            b64_false_seen += 1;
            assert!(matches!(r, Err(TokenError::Unsupported(_))), "{}: {r:?}", test["name"]);
        } else {
            assert!(r.is_ok(), "{}: {r:?}", test["name"]);
        }
    }
    assert!(b64_false_seen >= 1);
}
