//! Claim accessors for row-level-security policies: `jwt_claims()`, `jwt_claim(...)` and the
//! typed `jwt_claim_uuid/_bigint/_array(...)`, each with a one-name form and a VARIADIC path
//! form. All read the verified claims of `pg_jwt.token` (see `session`).
//!
//! - No token set (unset or empty): NULL, so policies fail closed.
//! - Token set but rejected: ERROR 28000 with the reason, from every accessor.
//! - A claim that is absent or JSON null: NULL.
//! - STABLE (never IMMUTABLE: a cached plan must follow the current token) and PARALLEL SAFE
//!   (the claims are derived from settings only, which parallel workers receive).

use crate::session;
use pg_jwt_core::Json;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum, JsonB, PgSqlErrorCode, Uuid, VariadicArray};

/// The result type of an accessor.
#[derive(Clone, Copy)]
pub enum Kind {
    /// The whole claims object as jsonb (`jwt_claims()`).
    Claims,
    Text,
    Uuid,
    Bigint,
    Array,
}

/// The value at `path` below `root` (object members by exact name, no dotted-path parsing);
/// `None` for a NULL path element, a missing member or JSON null.
fn walk<'a>(root: &'a Json, path: &mut dyn Iterator<Item = Option<&str>>) -> Option<&'a Json> {
    let mut at = root;
    for name in path {
        at = at.get(name?)?;
    }
    (!matches!(at, Json::Null)).then_some(at)
}

/// Looks up `path` in `claims` and converts the value to `kind`, as a Datum allocated in the
/// current memory context. `Ok(None)`: no token, no such claim, or JSON null.
pub fn lookup_as_datum(
    claims: Option<&session::Claims>,
    path: &mut dyn Iterator<Item = Option<&str>>,
    kind: Kind,
) -> Result<Option<pg_sys::Datum>, ErrorReport> {
    let Some(at) = claims.and_then(|c| walk(&c.json, path)) else {
        return Ok(None);
    };
    Ok(match kind {
        // SAFETY: called from a V1 function, inside a transaction.
        Kind::Claims => unsafe { crate::fmgr::jsonb_from_text(&at.to_json_string()) },
        Kind::Text => as_text(at).into_datum(),
        Kind::Uuid => to_uuid(at)?.into_datum(),
        Kind::Bigint => to_bigint(at)?.into_datum(),
        Kind::Array => to_array(at)?.into_datum(),
    })
}

/// The claim at `path` of the session token, converted by `f`.
fn with_claim<T>(
    path: &mut dyn Iterator<Item = Option<&str>>,
    f: impl FnOnce(&Json) -> Result<Option<T>, ErrorReport>,
) -> Result<Option<T>, ErrorReport> {
    let claims = session::current_claims()?;
    match claims.as_ref().and_then(|c| walk(&c.json, path)) {
        Some(v) => f(v),
        None => Ok(None),
    }
}

/// Text form of a claim: strings unquoted, everything else as JSON text.
fn as_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.to_string(),
        other => other.to_json_string(),
    }
}

fn conversion_error(code: PgSqlErrorCode, what: &str) -> ErrorReport {
    ErrorReport::new(code, format!("pg_jwt: the claim is not a valid {what}"), "pg_jwt")
}

pub fn to_uuid(v: &Json) -> Result<Option<Uuid>, ErrorReport> {
    let parsed = v.as_str().and_then(parse_uuid);
    parsed
        .map(|b| Some(Uuid::from_bytes(b)))
        .ok_or_else(|| conversion_error(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, "uuid"))
}

pub fn to_bigint(v: &Json) -> Result<Option<i64>, ErrorReport> {
    let text = match v {
        Json::Number(n) => n.as_str(),
        Json::String(s) => s.as_str(),
        _ => {
            return Err(conversion_error(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "bigint",
            ))
        }
    };
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(conversion_error(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "bigint",
        ));
    }
    text.parse::<i64>().map(Some).map_err(|_| {
        conversion_error(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "bigint (out of range)",
        )
    })
}

pub fn to_array(v: &Json) -> Result<Option<Vec<String>>, ErrorReport> {
    Ok(Some(match v {
        Json::Array(items) => items.iter().map(as_text).collect(),
        other => vec![as_text(other)],
    }))
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` or 32 hex digits, any case.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    let hex: [u8; 32] = match b.len() {
        36 => {
            if b.get(8) != Some(&b'-')
                || b.get(13) != Some(&b'-')
                || b.get(18) != Some(&b'-')
                || b.get(23) != Some(&b'-')
            {
                return None;
            }
            let mut out = [0u8; 32];
            let mut j = 0;
            for (i, c) in b.iter().enumerate() {
                if !matches!(i, 8 | 13 | 18 | 23) {
                    *out.get_mut(j)? = *c;
                    j += 1;
                }
            }
            out
        }
        32 => b.try_into().ok()?,
        _ => return None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *out.get_mut(i)? = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A nested claim as text: `jwt_claim('app_metadata', 'tenant_id')`.
#[pg_extern(stable, strict, parallel_safe, name = "jwt_claim")]
pub fn jwt_claim_path(path: VariadicArray<&str>) -> Result<Option<String>, ErrorReport> {
    with_claim(&mut path.iter(), |v| Ok(Some(as_text(v))))
}

#[pg_extern(stable, strict, parallel_safe, name = "jwt_claim_uuid")]
pub fn jwt_claim_uuid_path(path: VariadicArray<&str>) -> Result<Option<Uuid>, ErrorReport> {
    with_claim(&mut path.iter(), to_uuid)
}

#[pg_extern(stable, strict, parallel_safe, name = "jwt_claim_bigint")]
pub fn jwt_claim_bigint_path(path: VariadicArray<&str>) -> Result<Option<i64>, ErrorReport> {
    with_claim(&mut path.iter(), to_bigint)
}

#[pg_extern(stable, strict, parallel_safe, name = "jwt_claim_array")]
pub fn jwt_claim_array_path(path: VariadicArray<&str>) -> Result<Option<Vec<String>>, ErrorReport> {
    with_claim(&mut path.iter(), to_array)
}

/// This backend's verification cache: `{"verifications": n, "cached_tokens": n, "capacity": n}`.
#[pg_extern(volatile, parallel_safe)]
pub fn jwt_cache_stats() -> Result<JsonB, ErrorReport> {
    let (verifications, cached, capacity) = session::cache_stats();
    Ok(JsonB(serde_json::json!({
        "verifications": verifications,
        "cached_tokens": cached,
        "capacity": capacity,
    })))
}
