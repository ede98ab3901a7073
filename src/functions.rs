//! SQL functions that take their token and keys as arguments: `jwt_verify`, `jwt_sign`,
//! `jwt_public_jwks`, `jwt_decode_unverified`, `jwt_generate_jwk`. Thin wrappers over the core.

use crate::{clock, errors, jsonb};
use pg_jwt_core::token::{self, HeaderPolicy};
use pg_jwt_core::{jwk, Json, KeySet, SigningKey, Validation};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Largest leeway accepted, in seconds (one day).
pub const MAX_LEEWAY_SECONDS: i32 = 86_400;
/// Token size cap of `jwt_decode_unverified` (fixed, so the function can be IMMUTABLE).
const DECODE_MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Verifies `token` against `jwks` (a JWKS or a single JWK) and returns its claims.
/// NULL token or key set gives NULL. STABLE: it reads the clock.
#[pg_extern(stable, parallel_safe)]
pub fn jwt_verify(
    token: Option<&str>,
    jwks: Option<JsonB>,
    audience: default!(Option<&str>, "NULL"),
    issuer: default!(Option<&str>, "NULL"),
    leeway_seconds: default!(Option<i32>, 30),
) -> Result<Option<JsonB>, ErrorReport> {
    let (Some(token), Some(jwks)) = (token, jwks) else {
        return Ok(None);
    };
    let leeway = checked_leeway(leeway_seconds)?;
    let keys = KeySet::parse(jsonb::to_text(&jwks)?.as_bytes()).map_err(|e| errors::bad_key(&e))?;
    let required = vec!["exp".to_owned()];
    let validation = Validation {
        leeway: i64::from(leeway),
        audience,
        issuer,
        ..Validation::new(clock::now_unix(), &required)
    };
    let verified = token::verify(token.as_bytes(), &keys, &HeaderPolicy::default(), &validation)
        .map_err(|e| errors::token_rejected(&e))?;
    jsonb::from_json(&verified.claims).map(Some)
}

pub fn checked_leeway(leeway: Option<i32>) -> Result<i32, ErrorReport> {
    match leeway {
        None => Ok(pg_jwt_core::claims::DEFAULT_LEEWAY as i32),
        Some(l) if (0..=MAX_LEEWAY_SECONDS).contains(&l) => Ok(l),
        Some(_) => Err(errors::bad_argument(format!(
            "leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}"
        ))),
    }
}

/// Signs `claims` with the private JWK `jwk`. VOLATILE: ECDSA and RSA-PSS signatures are
/// randomized.
#[pg_extern(volatile, strict, parallel_safe)]
pub fn jwt_sign(claims: JsonB, jwk: JsonB) -> Result<String, ErrorReport> {
    let key = SigningKey::parse(jsonb::to_text(&jwk)?.as_bytes()).map_err(|e| errors::bad_key(&e))?;
    let claims = Json::parse(jsonb::to_text(&claims)?.as_bytes())
        .map_err(|_| errors::bad_argument("claims must be a JSON object"))?;
    token::sign(&claims, &key).map_err(|e| errors::bad_key(&e))
}

/// The publishable form of a key set: private members and secret keys removed.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn jwt_public_jwks(jwks: JsonB) -> Result<JsonB, ErrorReport> {
    let public = jwk::public_key_set(jsonb::to_text(&jwks)?.as_bytes()).map_err(|e| errors::bad_key(&e))?;
    jsonb::from_json(&public)
}

/// `{"header": ..., "payload": ...}` of a token, WITHOUT verifying anything. For debugging only:
/// never use its output for authorization.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn jwt_decode_unverified(token: &str) -> Result<JsonB, ErrorReport> {
    let (header, payload) =
        token::decode_unverified(token.as_bytes(), DECODE_MAX_TOKEN_BYTES).map_err(|e| errors::token_rejected(&e))?;
    jsonb::from_json(&Json::Object(vec![
        ("header".to_owned(), header),
        ("payload".to_owned(), payload),
    ]))
}

/// A new private JWK for `alg` (HS256/384/512, ES256, ES384, EdDSA). VOLATILE: random.
#[pg_extern(volatile, parallel_safe)]
pub fn jwt_generate_jwk(alg: Option<&str>, kid: default!(Option<&str>, "NULL")) -> Result<Option<JsonB>, ErrorReport> {
    let Some(alg) = alg else { return Ok(None) };
    let key = jwk::generate_jwk(alg, kid).map_err(|e| errors::bad_key(&e))?;
    jsonb::from_json(&key).map(Some)
}
