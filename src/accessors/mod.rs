//! The per-row path of the claim accessors: `jwt_claims()`, the one-name accessors
//! `jwt_claim(text)`, `jwt_claim_uuid(text)`, `jwt_claim_bigint(text)`, `jwt_claim_array(text)`
//! and their VARIADIC path forms.
//!
//! This file holds their SQL declarations and the V1 entry points; `callsite` the per-call-site
//! cache, `convert` the conversions of claim values to SQL types.
//!
//! They are plain V1 C functions (declared by `extension_sql!` below) so that a call costs only
//! what it must and text crosses the encoding boundary under our control (`encoding`). Each
//! call site of a one-name accessor (one `FmgrInfo`, e.g. one policy expression in one query)
//! keeps in `fn_extra` the result it returned and what it depends on. The per-row path
//! (`cached`) returns it after: one load of the local generation (bumped when the token or a
//! setting changes, and by the expiry timer shortly before the token expires, see `expiry`),
//! one load of the shared generation (fetched key set, revocations). Only a call site whose
//! claim name is a constant of its expression keeps a result: one whose name varies (a column,
//! a PL/pgSQL variable, an array cast calling the accessor per element) takes the slow path at
//! every call, whose result lives in the caller's memory context. The per-row path calls nothing in
//! PostgreSQL and cannot panic, so it runs without pgrx's guard; anything else goes through the
//! guarded slow path (`session::current_claims` and the conversions of `convert`), which
//! raises the errors. In the last second of a token's validity the per-row path also reads the
//! (coarse) clock.
//!
//! Memory: the slow path builds its result in the caller's memory context (the executor resets
//! it per row), and keeps a copy for the cache in the call site's context (`fn_mcxt`, which
//! lives as long as the query or the PL/pgSQL expression). A copy it replaced is never freed
//! before that context is: the caller may still hold it (an array cast holds every element
//! until it builds the array), and whatever runs between two calls may have changed the token.
//! After `MAX_KEPT` (16) copies a call site keeps none and takes the slow path at
//! every call: so it holds at most 16 results, whatever the number of rows or token changes.

pub mod callsite;
pub mod convert;

use crate::fmgr::v1_finfo;
use crate::{encoding, session};
use callsite::{cached, guarded};
use convert::Kind;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReportable;
use pgrx::prelude::*;
use std::borrow::Cow;
use std::ptr::null_mut;

/// A claim name (or path element) longer than the largest token (`pg_jwt.max_token_bytes` is at
/// most 1 MiB) is in no claim set: the accessors answer NULL without copying it.
pub(crate) const MAX_NAME_BYTES: usize = 1024 * 1024;

/// A VARIADIC path accessor: `jwt_claim('app_metadata', 'tenant_id')`. No per-call-site cache
/// (the verified claims are still cached per backend); the result lives in the caller's memory
/// context. A NULL path element gives NULL.
///
/// # Safety
/// `fcinfo` must be a valid V1 call whose argument 0 is a non-NULL text[] (the function is
/// STRICT).
unsafe fn path_accessor(fcinfo: pg_sys::FunctionCallInfo, kind: Kind) -> pg_sys::Datum {
    let claims = session::current_claims().unwrap_or_report();
    let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0);
    let array = pg_sys::pg_detoast_datum(raw.cast_mut_ptr()).cast::<pg_sys::ArrayType>();
    let mut elems: *mut pg_sys::Datum = null_mut();
    let mut nulls: *mut bool = null_mut();
    let mut n: std::ffi::c_int = 0;
    // SAFETY: array is a detoasted text[]; deconstruct_array fills palloc'd arrays of n items.
    pg_sys::deconstruct_array(
        array,
        pg_sys::TEXTOID,
        -1,
        false,
        pg_sys::TYPALIGN_INT as std::ffi::c_char,
        &mut elems,
        &mut nulls,
        &mut n,
    );
    let n = usize::try_from(n).unwrap_or(0);
    // No claims, or a path deeper than any verified claim set can be (the parser refuses more
    // nesting): NULL, before a path of the caller's length is built on the Rust heap.
    if claims.is_none() || n > pg_jwt_core::json::MAX_DEPTH {
        return pgrx::fcinfo::pg_return_null(fcinfo);
    }
    let mut path: Vec<Option<Cow<str>>> = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: i < n, the length deconstruct_array reported for both arrays.
        if *nulls.add(i) {
            path.push(None);
        } else {
            let v = pg_sys::pg_detoast_datum_packed((*elems.add(i)).cast_mut_ptr());
            let len = pgrx::varlena::varsize_any_exhdr(v);
            if len > MAX_NAME_BYTES {
                return pgrx::fcinfo::pg_return_null(fcinfo);
            }
            let bytes = std::slice::from_raw_parts(pgrx::varlena::vardata_any(v).cast::<u8>(), len);
            path.push(Some(Cow::Owned(
                encoding::from_server(bytes).unwrap_or_report().into_owned(),
            )));
        }
    }
    match convert::lookup_as_datum(claims.as_deref(), &path, kind).unwrap_or_report() {
        Some(d) => d,
        None => pgrx::fcinfo::pg_return_null(fcinfo),
    }
}

macro_rules! v1_accessor {
    ($finfo:ident, $func:ident, path_accessor, $kind:expr) => {
        v1_finfo!($finfo);

        #[no_mangle]
        #[pg_guard]
        // SAFETY (for callers): only PostgreSQL calls this, through its SQL declaration, with a valid fcinfo.
        pub unsafe extern "C-unwind" fn $func(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: PostgreSQL calls this through the declaration below, with its arguments.
            unsafe { path_accessor(fcinfo, $kind) }
        }
    };
    ($finfo:ident, $func:ident, accessor, $kind:expr) => {
        v1_finfo!($finfo);

        #[no_mangle]
        // SAFETY (for callers): only PostgreSQL calls this, through its SQL declaration, with a valid fcinfo.
        pub unsafe extern "C-unwind" fn $func(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: PostgreSQL calls this through the declaration below, with its arguments.
            // The cached path cannot raise or panic (no guard needed); the rest is guarded.
            unsafe {
                match cached(fcinfo) {
                    Some(d) => d,
                    None => guarded(fcinfo, $kind),
                }
            }
        }
    };
}

v1_accessor!(pg_finfo_pg_jwt_claims, pg_jwt_claims, accessor, Kind::Claims);
v1_accessor!(pg_finfo_pg_jwt_claim_text, pg_jwt_claim_text, accessor, Kind::Text);
v1_accessor!(pg_finfo_pg_jwt_claim_uuid, pg_jwt_claim_uuid, accessor, Kind::Uuid);
v1_accessor!(
    pg_finfo_pg_jwt_claim_bigint,
    pg_jwt_claim_bigint,
    accessor,
    Kind::Bigint
);
v1_accessor!(pg_finfo_pg_jwt_claim_array, pg_jwt_claim_array, accessor, Kind::Array);
v1_accessor!(pg_finfo_pg_jwt_provider, pg_jwt_provider, accessor, Kind::Provider);
// The path forms keep the symbol names of the 0.1.0 release (pgrx wrappers then), so an
// installed 0.1.0 catalog still finds them.
v1_accessor!(
    pg_finfo_jwt_claim_path_wrapper,
    jwt_claim_path_wrapper,
    path_accessor,
    Kind::Text
);
v1_accessor!(
    pg_finfo_jwt_claim_uuid_path_wrapper,
    jwt_claim_uuid_path_wrapper,
    path_accessor,
    Kind::Uuid
);
v1_accessor!(
    pg_finfo_jwt_claim_bigint_path_wrapper,
    jwt_claim_bigint_path_wrapper,
    path_accessor,
    Kind::Bigint
);
v1_accessor!(
    pg_finfo_jwt_claim_array_path_wrapper,
    jwt_claim_array_path_wrapper,
    path_accessor,
    Kind::Array
);

extension_sql!(
    r#"
-- jwt_claims() and the claim accessors: V1 C functions (src/accessors/mod.rs); the one-name forms
-- keep a per-call-site cache.
CREATE FUNCTION jwt_claims() RETURNS jsonb
    STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_claims';
COMMENT ON FUNCTION jwt_claims() IS 'All verified claims of pg_jwt.token as jsonb (NULL without a token)';
CREATE FUNCTION jwt_claim(name text) RETURNS text
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_claim_text';
CREATE FUNCTION jwt_claim_uuid(name text) RETURNS uuid
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_claim_uuid';
CREATE FUNCTION jwt_claim_bigint(name text) RETURNS bigint
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_claim_bigint';
CREATE FUNCTION jwt_claim_array(name text) RETURNS text[]
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_claim_array';
COMMENT ON FUNCTION jwt_claim(text) IS 'One top-level claim of the verified pg_jwt.token as text (NULL without a token)';
COMMENT ON FUNCTION jwt_claim_uuid(text) IS 'One top-level claim of the verified pg_jwt.token as uuid';
COMMENT ON FUNCTION jwt_claim_bigint(text) IS 'One top-level claim of the verified pg_jwt.token as bigint';
COMMENT ON FUNCTION jwt_claim_array(text) IS 'One top-level claim of the verified pg_jwt.token as text[]';
CREATE FUNCTION jwt_claim(VARIADIC path text[]) RETURNS text
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_claim_path_wrapper';
CREATE FUNCTION jwt_claim_uuid(VARIADIC path text[]) RETURNS uuid
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_claim_uuid_path_wrapper';
CREATE FUNCTION jwt_claim_bigint(VARIADIC path text[]) RETURNS bigint
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_claim_bigint_path_wrapper';
CREATE FUNCTION jwt_claim_array(VARIADIC path text[]) RETURNS text[]
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_claim_array_path_wrapper';
-- upgrade 0.3.0 begin
-- Several providers (0.3.0): the provider that verified the session token, at the per-row cost
-- of a claim accessor.
CREATE FUNCTION jwt_provider() RETURNS text
    STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_provider';
COMMENT ON FUNCTION jwt_provider() IS 'The name of the provider (pg_jwt.providers, or default) that verified pg_jwt.token; NULL without a token';
-- upgrade 0.3.0 end
"#,
    name = "claim_accessors"
);
