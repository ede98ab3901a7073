//! Helpers shared by the core's integration tests: keys, token construction, default checks.
#![allow(dead_code)]

use pg_jwt_core::b64;
use pg_jwt_core::json::Json;
use pg_jwt_core::jwk::{generate_jwk, public_key_set};
use pg_jwt_core::token::{self, HeaderPolicy, VerifiedToken};
use pg_jwt_core::{KeySet, SigningKey, TokenError, Validation};
use std::path::PathBuf;

/// `../shared/vectors` beside the project root (override with PG_JWT_VECTORS).
pub fn vectors_dir() -> PathBuf {
    match std::env::var_os("PG_JWT_VECTORS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

/// Whether the shared vectors are there. A clone without `../shared` still runs every other
/// test; the vector suites say they were skipped (CI always has the vectors).
pub fn vectors_present() -> bool {
    let present = vectors_dir().is_dir();
    if !present {
        eprintln!(
            "SKIPPED: {} not found (clone the project beside shared/ or set PG_JWT_VECTORS)",
            vectors_dir().display()
        );
    }
    present
}

pub fn read_vector(rel: &str) -> String {
    let path = vectors_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A private JWK (text) for `alg`; RSA keys come from the repository's own test key
/// (`testdata/`: ring cannot generate RSA keys).
pub fn private_jwk(alg: &str, kid: Option<&str>) -> String {
    if alg.starts_with("RS") || alg.starts_with("PS") {
        let mut j = Json::parse(include_str!("../../../testdata/rsa-2048-private.jwk.json").as_bytes()).unwrap();
        if let Json::Object(m) = &mut j {
            m.retain(|(k, _)| k != "kid" && k != "alg");
            m.push(("alg".into(), Json::String(alg.into())));
            if let Some(kid) = kid {
                m.push(("kid".into(), Json::String(kid.into())));
            }
        }
        return j.to_json_string();
    }
    generate_jwk(alg, kid).unwrap().to_json_string()
}

/// The verification key set for a private JWK: the public half, or the secret itself for oct.
pub fn verify_jwks(private: &str) -> String {
    let j = Json::parse(private.as_bytes()).unwrap();
    if j.get("kty").and_then(Json::as_str) == Some("oct") {
        return format!("{{\"keys\":[{private}]}}");
    }
    public_key_set(private.as_bytes()).unwrap().to_json_string()
}

pub fn keyset(jwks: &str) -> KeySet {
    KeySet::parse(jwks.as_bytes()).unwrap()
}

/// A token with exactly this header and payload text, signed by `private`.
pub fn token_raw(header: &str, payload: &str, private: &str) -> String {
    let key = SigningKey::parse(private.as_bytes()).unwrap();
    let input = format!("{}.{}", b64::encode(header.as_bytes()), b64::encode(payload.as_bytes()));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

/// A token for the given claims object text, signed with `private` (header from jwt_sign).
pub fn token(claims: &str, private: &str) -> String {
    let key = SigningKey::parse(private.as_bytes()).unwrap();
    token::sign(&Json::parse(claims.as_bytes()).unwrap(), &key).unwrap()
}

/// Claims valid for ten minutes.
pub fn fresh_claims() -> String {
    format!("{{\"sub\":\"alice\",\"exp\":{}}}", now() + 600)
}

pub fn verify_with(token: &str, keys: &KeySet, v: &Validation<'_>) -> Result<VerifiedToken, TokenError> {
    token::verify(token.as_bytes(), keys, &HeaderPolicy::default(), v)
}

/// Verification with the defaults of jwt_verify: exp required, 30 s leeway, no aud/iss.
pub fn verify(token: &str, keys: &KeySet) -> Result<VerifiedToken, TokenError> {
    let required = vec!["exp".to_owned()];
    verify_with(token, keys, &Validation::new(now(), &required))
}

/// An HS256 secret key and its key set.
pub fn hs256() -> (String, KeySet) {
    let p = private_jwk("HS256", None);
    let ks = keyset(&verify_jwks(&p));
    (p, ks)
}

pub fn b64(s: &str) -> String {
    b64::encode(s.as_bytes())
}

/// Replaces segment `i` of a token.
pub fn with_segment(token: &str, i: usize, value: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = value;
    parts.join(".")
}

pub fn segment(token: &str, i: usize) -> String {
    token.split('.').nth(i).unwrap().to_owned()
}

/// Removes private members of asymmetric keys (keeps oct secrets): for vector key sets.
pub fn strip_private(jwks: &serde_json::Value) -> serde_json::Value {
    let strip = |k: &serde_json::Value| {
        let mut k = k.clone();
        if let Some(o) = k.as_object_mut() {
            if o.get("kty").and_then(|v| v.as_str()) != Some("oct") {
                for m in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                    o.remove(m);
                }
            }
        }
        k
    };
    match jwks.get("keys").and_then(|k| k.as_array()) {
        Some(keys) => serde_json::json!({"keys": keys.iter().map(strip).collect::<Vec<_>>()}),
        None => strip(jwks),
    }
}
