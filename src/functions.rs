//! SQL functions that take their token and keys as arguments: `jwt_verify`, `jwt_sign`,
//! `jwt_public_jwks`, `jwt_decode_unverified`, `jwt_generate_jwk`. Thin wrappers over the core.

use crate::fmgr::{self, v1_function};
use crate::{clock, encoding, errors};
use lru::LruCache;
use pg_jwt_core::token::{self, HeaderPolicy};
use pg_jwt_core::{jwk, Json, KeyError, KeySet, SigningKey, Validation};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::rc::Rc;

/// Largest leeway accepted, in seconds: the same bound as the `pg_jwt.leeway` setting.
pub const MAX_LEEWAY_SECONDS: i32 = pg_jwt_core::claims::MAX_LEEWAY as i32;
/// Token size cap of `jwt_decode_unverified` (fixed, so the function can be IMMUTABLE).
const DECODE_MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Key sets imported by `jwt_verify`, keyed by the raw bytes of the jsonb argument (jsonb's
/// binary form is canonical), so a query verifying many tokens against one key set imports it
/// once. Bounded; per backend.
const KEY_SET_CACHE: usize = 16;

thread_local! {
    static KEY_SETS: RefCell<LruCache<Vec<u8>, Rc<Result<KeySet, KeyError>>>> =
        RefCell::new(LruCache::new(NonZeroUsize::new(KEY_SET_CACHE).unwrap_or(NonZeroUsize::MIN)));
}

/// The largest claims `jwt_sign` signs, as jsonb prints them (a space after each `,` and `:`,
/// which the signed text has not): twice the largest `pg_jwt.max_token_bytes` (1 MiB), so a
/// claim set whose token could be verified is never refused.
const MAX_CLAIMS_BYTES: usize = 2 * 1024 * 1024;

// SAFETY (for callers): fcinfo is a valid call whose argument i is a non-NULL jsonb.
unsafe fn key_set_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Result<Rc<Result<KeySet, KeyError>>, ErrorReport> {
    let raw = fmgr::arg_bytes(fcinfo, i);
    if raw.len() > jwk::MAX_KEY_SET_BYTES {
        // Refused before it is converted or kept in the cache.
        return Ok(Rc::new(Err(KeyError::Set(format!(
            "larger than {} bytes",
            jwk::MAX_KEY_SET_BYTES
        )))));
    }
    if let Some(hit) = KEY_SETS.with(|c| c.borrow_mut().get(raw).cloned()) {
        return Ok(hit);
    }
    let text = fmgr::arg_jsonb_text(fcinfo, i, jwk::MAX_KEY_SET_BYTES, "the key set")?;
    let parsed = Rc::new(KeySet::parse(text.as_bytes()));
    KEY_SETS.with(|c| c.borrow_mut().put(raw.to_vec(), Rc::clone(&parsed)));
    Ok(parsed)
}

v1_function! {
    /// `jwt_verify(token, jwks, audience, issuer, leeway_seconds)`: the verified claims of
    /// `token` against `jwks` (a JWKS or a single JWK). NULL token or key set gives NULL. STABLE
    /// (it reads the clock), PARALLEL SAFE. It reads the key set's raw jsonb bytes for the cache
    /// and builds the result straight from the parsed claims (`fmgr::jsonb_from_json`).
    fn pg_jwt_verify / pg_finfo_pg_jwt_verify(fcinfo) {
        if fmgr::arg_is_null(fcinfo, 0) || fmgr::arg_is_null(fcinfo, 1) {
            return Ok(pgrx::fcinfo::pg_return_null(fcinfo));
        }
        let audience = text_arg(fcinfo, 2)?;
        let issuer = text_arg(fcinfo, 3)?;
        let leeway = checked_leeway((!fmgr::arg_is_null(fcinfo, 4)).then(|| fmgr::arg_i32(fcinfo, 4)))?;
        let token = fmgr::arg_bytes(fcinfo, 0);
        let keys = key_set_arg(fcinfo, 1)?;
        let keys = keys.as_ref().as_ref().map_err(errors::bad_key)?;
        let required: Vec<String> = pg_jwt_core::claims::DEFAULT_REQUIRED_CLAIMS
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let validation = Validation {
            leeway: i64::from(leeway),
            audience: audience.as_deref(),
            issuer: issuer.as_deref(),
            ..Validation::new(clock::now_unix(), &required)
        };
        let verified = token::verify(token, keys, &HeaderPolicy::default(), &validation)
            .map_err(|e| errors::token_rejected(&e))?;
        fmgr::jsonb_from_json(&verified.claims)
    }
}

extension_sql!(
    r#"
CREATE FUNCTION jwt_verify(token text, jwks jsonb, audience text DEFAULT NULL, issuer text DEFAULT NULL,
                           leeway_seconds integer DEFAULT 30) RETURNS jsonb
    STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_verify';
COMMENT ON FUNCTION jwt_verify(text, jsonb, text, text, integer) IS
    'The verified claims of token against jwks (a JWKS or one JWK); NULL token or jwks gives NULL';
"#,
    name = "jwt_verify"
);

pub fn checked_leeway(leeway: Option<i32>) -> Result<i32, ErrorReport> {
    match leeway {
        None => Ok(pg_jwt_core::claims::DEFAULT_LEEWAY as i32),
        Some(l) if (0..=MAX_LEEWAY_SECONDS).contains(&l) => Ok(l),
        Some(_) => Err(errors::bad_argument(format!(
            "leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}"
        ))),
    }
}

/// The text of argument `i` (text) as UTF-8, or `None` when NULL.
///
/// # Safety
/// `fcinfo` must be a valid call with a text argument `i`.
unsafe fn text_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Result<Option<String>, ErrorReport> {
    if fmgr::arg_is_null(fcinfo, i) {
        return Ok(None);
    }
    // An audience, issuer, algorithm or kid: never near this; refused before it is copied.
    const MAX_TEXT_ARG: usize = 64 * 1024;
    if fmgr::arg_bytes(fcinfo, i).len() > MAX_TEXT_ARG {
        return Err(errors::bad_argument(format!(
            "a text argument is larger than {MAX_TEXT_ARG} bytes"
        )));
    }
    Ok(Some(encoding::from_server(fmgr::arg_bytes(fcinfo, i))?.into_owned()))
}

v1_function! {
    /// `jwt_sign(claims jsonb, jwk jsonb)`: signs `claims` with the private JWK `jwk`.
    /// VOLATILE: ECDSA and RSA-PSS signatures are randomized. STRICT. (The symbol names of these
    /// functions are the ones of the 0.1.0 release, so an installed catalog still finds them.)
    fn jwt_sign_wrapper / pg_finfo_jwt_sign_wrapper(fcinfo) {
        let jwk = fmgr::arg_jsonb_text(fcinfo, 1, jwk::MAX_KEY_SET_BYTES, "the JWK")?;
        let key = SigningKey::parse(jwk.as_bytes()).map_err(|e| errors::bad_key(&e))?;
        // A token of more than the largest pg_jwt.max_token_bytes could never be verified.
        let claims = Json::parse(fmgr::arg_jsonb_text(fcinfo, 0, MAX_CLAIMS_BYTES, "the claim set")?.as_bytes())
            .map_err(|_| errors::bad_argument("claims must be a JSON object"))?;
        let token = token::sign(&claims, &key).map_err(|e| errors::bad_key(&e))?;
        fmgr::text_datum(&token)
    }
}

v1_function! {
    /// `jwt_public_jwks(jwks jsonb)`: the publishable form of a key set, private members and
    /// secret keys removed. IMMUTABLE, STRICT.
    fn jwt_public_jwks_wrapper / pg_finfo_jwt_public_jwks_wrapper(fcinfo) {
        let text = fmgr::arg_jsonb_text(fcinfo, 0, jwk::MAX_KEY_SET_BYTES, "the key set")?;
        let public = jwk::public_key_set(text.as_bytes()).map_err(|e| errors::bad_key(&e))?;
        fmgr::jsonb_from_text(&public.to_json_string())
    }
}

v1_function! {
    /// `jwt_decode_unverified(token text)`: `{"header": ..., "payload": ...}` of a token,
    /// WITHOUT verifying anything. For debugging only: never use its output for authorization.
    /// IMMUTABLE (fixed size cap), STRICT. A token is base64url: any non-ASCII byte makes it
    /// malformed, in every encoding.
    fn jwt_decode_unverified_wrapper / pg_finfo_jwt_decode_unverified_wrapper(fcinfo) {
        let token = fmgr::arg_bytes(fcinfo, 0);
        let (header, payload) =
            token::decode_unverified(token, DECODE_MAX_TOKEN_BYTES).map_err(|e| errors::token_rejected(&e))?;
        let both = Json::Object(vec![("header".into(), header), ("payload".into(), payload)]);
        fmgr::jsonb_from_text(&both.to_json_string())
    }
}

v1_function! {
    /// `jwt_generate_jwk(alg text, kid text DEFAULT NULL)`: a new private JWK for `alg`
    /// (HS256/384/512, ES256, ES384, EdDSA). VOLATILE: random. NULL alg gives NULL.
    fn jwt_generate_jwk_wrapper / pg_finfo_jwt_generate_jwk_wrapper(fcinfo) {
        let Some(alg) = text_arg(fcinfo, 0)? else {
            return Ok(pgrx::fcinfo::pg_return_null(fcinfo));
        };
        let kid = text_arg(fcinfo, 1)?;
        let key = jwk::generate_jwk(&alg, kid.as_deref()).map_err(|e| errors::bad_key(&e))?;
        fmgr::jsonb_from_text(&key.to_json_string())
    }
}

extension_sql!(
    r#"
-- Signing and key helpers: V1 C functions (src/functions.rs), text converted to and from the
-- database encoding at the boundary.
CREATE FUNCTION jwt_sign(claims jsonb, jwk jsonb) RETURNS text
    VOLATILE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_sign_wrapper';
CREATE FUNCTION jwt_public_jwks(jwks jsonb) RETURNS jsonb
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_public_jwks_wrapper';
CREATE FUNCTION jwt_decode_unverified(token text) RETURNS jsonb
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_decode_unverified_wrapper';
CREATE FUNCTION jwt_generate_jwk(alg text, kid text DEFAULT NULL) RETURNS jsonb
    VOLATILE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_generate_jwk_wrapper';
"#,
    name = "signing_and_key_helpers"
);
