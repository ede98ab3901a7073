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
use pg_jwt_core::claims::Scalar;
use pg_jwt_core::Json;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{pg_sys, IntoDatum, PgSqlErrorCode, Uuid};

/// The result type of an accessor.
#[derive(Clone, Copy)]
pub enum Kind {
    /// The whole claims object as jsonb (`jwt_claims()`).
    Claims,
    Text,
    Uuid,
    Bigint,
    Array,
    /// The name of the provider that verified the token (`jwt_provider()`).
    Provider,
}

impl Kind {
    /// Whether the accessor takes no claim name (`jwt_claims()`, `jwt_provider()`).
    #[inline]
    pub fn no_argument(self) -> bool {
        matches!(self, Kind::Claims | Kind::Provider)
    }

    /// The key of this kind's results among the claims' converted ones (`session::Converted`);
    /// 0 for the kinds whose results are not kept there (a jsonb or an array: large, and built
    /// from the tree).
    #[inline]
    pub fn tag(self) -> u8 {
        match self {
            Kind::Claims | Kind::Array => 0,
            Kind::Text => 1,
            Kind::Uuid => 2,
            Kind::Bigint => 3,
            Kind::Provider => 4,
        }
    }
}

/// The value at `path` below `root` (object members by exact name, no dotted-path parsing);
/// `None` for a NULL path element, a missing member or JSON null. Names are UTF-8 (converted
/// from the database encoding by the caller).
fn walk<'a, S: AsRef<str>>(root: &'a Json, path: &[Option<S>]) -> Option<&'a Json> {
    let mut at = root;
    for name in path {
        at = at.get(name.as_ref()?.as_ref())?;
    }
    (!matches!(at, Json::Null)).then_some(at)
}

/// Looks up `path` in `claims` and converts the value to `kind`, as a Datum allocated in the
/// current memory context (the caller's, normally the executor's per-row context).
/// `Ok(None)`: no token, no such claim, or JSON null. Text leaves in the database encoding.
///
/// # Safety
/// Call from a SQL function (inside a transaction); the result lives in the current memory
/// context and is valid as long as that context is.
pub unsafe fn lookup_as_datum<S: AsRef<str>>(
    claims: Option<&session::Claims>,
    path: &[Option<S>],
    kind: Kind,
) -> Result<Option<pg_sys::Datum>, ErrorReport> {
    if let Kind::Provider = kind {
        return claims.map(|c| crate::fmgr::text_datum(&c.provider)).transpose();
    }
    let Some(c) = claims else { return Ok(None) };
    // A scalar accessor of one top-level name (a policy's jwt_claim_uuid('tenant_id')): the
    // member is read without the tree, which a token verified from the shared cache's record
    // does not have until something needs the whole value.
    if let ([Some(name)], Kind::Text | Kind::Uuid | Kind::Bigint) = (path, kind) {
        let (string, number) = match c.body.scalar(name.as_ref()) {
            Scalar::Absent => return Ok(None),
            Scalar::Str(s) => (Some(s), None),
            Scalar::Number(n) => (None, Some(n)),
            Scalar::Other => (None, None),
        };
        if let Some(text) = string.or(number) {
            return Ok(match kind {
                Kind::Text => Some(crate::fmgr::text_datum(text)?),
                Kind::Uuid => uuid_of(string)?.into_datum(),
                _ => bigint_of(Some(text))?.into_datum(),
            });
        }
    }
    let Some(at) = walk(c.json()?, path) else {
        return Ok(None);
    };
    Ok(match kind {
        Kind::Claims => Some(crate::fmgr::jsonb_from_json(at)?),
        // A string straight from the claims (no copy into a String first).
        Kind::Text => Some(match at {
            Json::String(s) => crate::fmgr::text_datum(s)?,
            other => crate::fmgr::text_datum(&other.to_json_string())?,
        }),
        Kind::Uuid => to_uuid(at)?.into_datum(),
        Kind::Bigint => to_bigint(at)?.into_datum(),
        Kind::Array => Some(text_array_datum(&to_array(at)?.unwrap_or_default())?),
        Kind::Provider => None,
    })
}

/// A one-dimensional text[] datum in the current memory context; `None` items are NULL
/// elements.
///
/// # Safety
/// As `lookup_as_datum`.
unsafe fn text_array_datum(items: &[Option<String>]) -> Result<pg_sys::Datum, ErrorReport> {
    let mut elems = Vec::with_capacity(items.len());
    let mut nulls = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Some(text) => {
                elems.push(crate::fmgr::text_datum(text)?);
                nulls.push(false);
            }
            None => {
                elems.push(pg_sys::Datum::null());
                nulls.push(true);
            }
        }
    }
    let mut dims = [i32::try_from(elems.len()).map_err(|_| crate::errors::internal("array too long"))?];
    let mut lower_bounds = [1];
    // SAFETY: elems and nulls hold dims[0] entries each (a valid text datum wherever the null
    // flag is false); text is varlena (-1), not by value, int-aligned. No element: an empty
    // array (construct_md_array's own rule).
    let array = pg_sys::construct_md_array(
        elems.as_mut_ptr(),
        nulls.as_mut_ptr(),
        1,
        dims.as_mut_ptr(),
        lower_bounds.as_mut_ptr(),
        pg_sys::TEXTOID,
        -1,
        false,
        pg_sys::TYPALIGN_INT as std::ffi::c_char,
    );
    Ok(pg_sys::Datum::from(array))
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
    uuid_of(v.as_str())
}

/// A uuid from a string claim (`None`: the claim is not a string).
fn uuid_of(s: Option<&str>) -> Result<Option<Uuid>, ErrorReport> {
    let parsed = s.and_then(parse_uuid);
    parsed
        .map(|b| Some(Uuid::from_bytes(b)))
        .ok_or_else(|| conversion_error(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, "uuid"))
}

pub fn to_bigint(v: &Json) -> Result<Option<i64>, ErrorReport> {
    bigint_of(match v {
        Json::Number(n) => Some(n.as_str()),
        Json::String(s) => Some(s.as_str()),
        _ => None,
    })
}

/// A bigint from a number's or a string's text (`None`: the claim is neither).
fn bigint_of(text: Option<&str>) -> Result<Option<i64>, ErrorReport> {
    let Some(text) = text else {
        return Err(conversion_error(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "bigint",
        ));
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

/// An array claim's elements as text (a JSON null element: a NULL element, as `jwt_claim` gives
/// NULL for a null claim; an array or object element: its JSON text); a scalar claim: a
/// one-element array.
pub fn to_array(v: &Json) -> Result<Option<Vec<Option<String>>>, ErrorReport> {
    let element = |v: &Json| (!matches!(v, Json::Null)).then(|| as_text(v));
    Ok(Some(match v {
        Json::Array(items) => items.iter().map(element).collect(),
        other => vec![element(other)],
    }))
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` or 32 hex digits, any case (the `uuid`
/// crate's parser, limited to those two forms by length: its braced and `urn:uuid:` forms are
/// not accepted here).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    if !matches!(s.len(), 32 | 36) {
        return None;
    }
    uuid::Uuid::try_parse_ascii(s.as_bytes()).ok().map(|u| u.into_bytes())
}
