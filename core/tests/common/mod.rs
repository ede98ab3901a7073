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
    parse_set(jwks.as_bytes()).unwrap()
}

/// `KeySet::parse`, recorded in the checklist corpus (see [`corpus`]).
pub fn parse_set(text: &[u8]) -> Result<KeySet, pg_jwt_core::KeyError> {
    let result = KeySet::parse(text);
    if let Ok(text) = std::str::from_utf8(text) {
        corpus::record_key_set(text, &result);
        if let Ok(keys) = &result {
            corpus::remember_key_set(keys, text);
        }
    }
    result
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
    let result = token::verify(token.as_bytes(), keys, &HeaderPolicy::default(), v);
    corpus::record_token(token, keys, v, &result);
    result
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

/// The checklist corpus: with PG_JWT_CHECKLIST_CORPUS=<file>, every token a checklist test
/// verifies (with the header policy and a validation that SQL can express) and every key set
/// it imports or refuses is appended to <file> as one JSON line, with the row (from the test's
/// name, e.g. `b12_...` is B12) and the outcome the core gave. The client suite replays the
/// file through the SQL functions (tests/client/tests/checklist_corpus.rs), so each row's
/// inputs are also checked at SQL level. Without the variable nothing is recorded.
pub mod corpus {
    use pg_jwt_core::token::{self, HeaderPolicy, VerifiedToken};
    use pg_jwt_core::{KeyError, KeySet, TokenError, Validation};
    use std::io::Write;
    use std::sync::Mutex;

    /// Key sets by their identity (a KeySet does not keep the text it was parsed from).
    static KEY_SETS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    static FILE: Mutex<()> = Mutex::new(());

    fn path() -> Option<std::path::PathBuf> {
        std::env::var_os("PG_JWT_CHECKLIST_CORPUS").map(Into::into)
    }

    /// The checklist row of the running test: `e8_expired_...` gives `E8`.
    fn row() -> Option<String> {
        let name = std::thread::current().name()?.to_owned();
        let name = name.rsplit("::").next()?.to_owned();
        let (head, _) = name.split_once('_')?;
        let mut chars = head.chars();
        let letter = chars.next()?.to_ascii_uppercase();
        let digits: String = chars.collect();
        ("ABCDE".contains(letter) && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{letter}{digits}"))
    }

    fn append(line: serde_json::Value) {
        let Some(p) = path() else { return };
        let _guard = FILE.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        writeln!(f, "{line}").unwrap();
    }

    /// What tells key sets apart: each key's kid, alg and material (public bytes; for a
    /// secret, a MAC of a fixed message). Debug output never shows key bytes, so it cannot.
    fn identity(keys: &KeySet) -> String {
        use pg_jwt_core::jwk::KeyMaterial;
        let mut out = format!("skipped={};", keys.skipped);
        for k in &keys.keys {
            let material: Vec<u8> = match &k.material {
                KeyMaterial::Hmac { keys, .. } => keys
                    .first()
                    .map(|(_, key)| ring::hmac::sign(key, b"pg_jwt corpus").as_ref().to_vec())
                    .unwrap_or_default(),
                KeyMaterial::Rsa { n, e } => [n.as_slice(), e.as_slice()].concat(),
                KeyMaterial::Ec { point, .. } => point.clone(),
                KeyMaterial::Ed25519 { x } => x.clone(),
            };
            out.push_str(&format!(
                "{:?}/{:?}/{};",
                k.kid,
                k.alg,
                pg_jwt_core::b64::encode(&material)
            ));
        }
        out
    }

    pub fn remember_key_set(keys: &KeySet, text: &str) {
        if path().is_none() {
            return;
        }
        KEY_SETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((identity(keys), text.to_owned()));
    }

    /// A key set a test imported (or expected to be refused), with the outcome.
    pub fn record_key_set(text: &str, result: &Result<KeySet, KeyError>) {
        if path().is_none() {
            return;
        }
        let Some(row) = row() else { return };
        // Only JSON text can be passed to the SQL functions (their argument is jsonb).
        if serde_json::from_str::<serde_json::Value>(text).is_err() {
            return;
        }
        append(serde_json::json!({
            "row": row,
            "what": "key_set",
            "jwks": text,
            "expect": if result.is_ok() { "ok" } else { "config" },
        }));
    }

    pub fn record_token(
        token_text: &str,
        keys: &KeySet,
        v: &Validation<'_>,
        result: &Result<VerifiedToken, TokenError>,
    ) {
        if path().is_none() {
            return;
        }
        let Some(row) = row() else { return };
        let debug = identity(keys);
        let Some(jwks) = KEY_SETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|(d, _)| *d == debug)
            .map(|(_, t)| t.clone())
        else {
            return;
        };
        // SQL reads the clock itself: only checks made at the present time, with no maximum
        // lifetime (there is no such setting), are replayed.
        if (v.now - super::now()).abs() > 1 || v.max_lifetime.is_some() {
            return;
        }
        // Whether the outcome depends on when it is replayed: the same check two minutes later.
        let later = Validation {
            now: v.now + 120,
            ..v.clone()
        };
        let later = token::verify(token_text.as_bytes(), keys, &HeaderPolicy::default(), &later);
        append(serde_json::json!({
            "row": row,
            "what": "token",
            "token": token_text,
            "jwks": jwks,
            "audience": v.audience,
            "issuer": v.issuer,
            "leeway": v.leeway,
            "required": v.required,
            "expect": match result { Ok(_) => "ok".to_owned(), Err(e) => format!("{e:?}") },
            "rejected": result.is_err(),
            "clock_sensitive": later.is_ok() != result.is_ok(),
        }));
    }
}
