//! The per-row path of `jwt_claims()` and the one-name accessors: `jwt_claim(text)`,
//! `jwt_claim_uuid(text)`, `jwt_claim_bigint(text)` and `jwt_claim_array(text)`.
//!
//! They are plain V1 C functions (declared by `extension_sql!` below) so that a call costs only
//! what it must. Each call site (one `FmgrInfo`, e.g. one policy expression in one query)
//! keeps in `fn_extra`: the token and configuration generations it saw, the claim name, the
//! result it returned, and the time window in which the token is valid. While the generations
//! and the name are unchanged and the clock is inside the window, the cached result is returned:
//! two counter loads, a short comparison and a coarse clock read. Anything else goes through
//! the checked slow path (`session::current_claims` and the conversions of `accessors`), which
//! raises the errors.

use crate::accessors::{self, Kind};
use crate::fmgr::{self, v1_finfo};
use crate::{clock, gucs, session};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReportable;
use pgrx::prelude::*;
use std::ffi::c_void;

/// Claim names up to this length are cached per call site; longer ones always take the slow path.
const MAX_CACHED_NAME: usize = 64;

/// Per-call-site state, allocated zeroed in `fn_mcxt` (plain data: nothing to drop).
#[repr(C)]
struct CallSite {
    valid: bool,
    token_generation: u64,
    config_generation: u64,
    name_len: usize,
    name: [u8; MAX_CACHED_NAME],
    result_null: bool,
    result: pg_sys::Datum,
    /// The cached result may be returned while `valid_from <= now < valid_until`.
    valid_from: f64,
    valid_until: f64,
}

unsafe fn call_site(fcinfo: pg_sys::FunctionCallInfo) -> *mut CallSite {
    let flinfo = (*fcinfo).flinfo;
    if (*flinfo).fn_extra.is_null() {
        (*flinfo).fn_extra =
            pg_sys::MemoryContextAllocZero((*flinfo).fn_mcxt, std::mem::size_of::<CallSite>()).cast::<c_void>();
    }
    (*flinfo).fn_extra.cast::<CallSite>()
}

unsafe fn accessor(fcinfo: pg_sys::FunctionCallInfo, kind: Kind) -> pg_sys::Datum {
    // jwt_claims() has no argument; the others take the claim name.
    let name: &[u8] = if matches!(kind, Kind::Claims) {
        b""
    } else {
        fmgr::arg_bytes(fcinfo, 0)
    };
    let site = &mut *call_site(fcinfo);
    let tg = gucs::token_generation();
    let cg = gucs::config_generation();
    if site.valid
        && site.token_generation == tg
        && site.config_generation == cg
        && site.name.get(..site.name_len) == Some(name)
    {
        let now = clock::now_unix_coarse() as f64;
        if site.valid_from <= now && now < site.valid_until {
            return if site.result_null {
                pgrx::fcinfo::pg_return_null(fcinfo)
            } else {
                site.result
            };
        }
    }
    slow_path(fcinfo, site, name, kind, tg, cg)
}

unsafe fn slow_path(
    fcinfo: pg_sys::FunctionCallInfo,
    site: &mut CallSite,
    name: &[u8],
    kind: Kind,
    tg: u64,
    cg: u64,
) -> pg_sys::Datum {
    site.valid = false;
    // Errors (rejected token, bad key set, wrong claim type) are raised here, never cached.
    let claims = session::current_claims().unwrap_or_report();
    let name_str = String::from_utf8_lossy(name);
    // Build the result in the call site's memory context so it lives as long as the cache.
    let old = pg_sys::MemoryContextSwitchTo((*(*fcinfo).flinfo).fn_mcxt);
    let mut path = std::iter::once(Some(name_str.as_ref())).filter(|_| !matches!(kind, Kind::Claims));
    let result = accessors::lookup_as_datum(claims.as_deref(), &mut path, kind);
    pg_sys::MemoryContextSwitchTo(old);
    let result = result.unwrap_or_report();
    if name.len() <= MAX_CACHED_NAME {
        site.name[..name.len()].copy_from_slice(name);
        site.name_len = name.len();
        site.token_generation = tg;
        site.config_generation = cg;
        site.result_null = result.is_none();
        site.result = result.unwrap_or(pg_sys::Datum::from(0));
        let leeway = gucs::leeway() as f64;
        let times = claims.as_ref().map(|c| c.times).unwrap_or_default();
        site.valid_until = times.exp.map_or(f64::INFINITY, |exp| exp + leeway);
        site.valid_from = times.nbf.map_or(f64::NEG_INFINITY, |nbf| nbf - leeway);
        site.valid = true;
    }
    match result {
        Some(d) => d,
        None => pgrx::fcinfo::pg_return_null(fcinfo),
    }
}

macro_rules! v1_accessor {
    ($finfo:ident, $func:ident, $kind:expr) => {
        v1_finfo!($finfo);

        #[no_mangle]
        #[pg_guard]
        pub unsafe extern "C-unwind" fn $func(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            accessor(fcinfo, $kind)
        }
    };
}

v1_accessor!(pg_finfo_pg_jwt_claims, pg_jwt_claims, Kind::Claims);
v1_accessor!(pg_finfo_pg_jwt_claim_text, pg_jwt_claim_text, Kind::Text);
v1_accessor!(pg_finfo_pg_jwt_claim_uuid, pg_jwt_claim_uuid, Kind::Uuid);
v1_accessor!(pg_finfo_pg_jwt_claim_bigint, pg_jwt_claim_bigint, Kind::Bigint);
v1_accessor!(pg_finfo_pg_jwt_claim_array, pg_jwt_claim_array, Kind::Array);

extension_sql!(
    r#"
-- jwt_claims() and the one-name claim accessors: V1 C functions with a per-call-site cache
-- (src/fastpath.rs).
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
"#,
    name = "one_name_accessors"
);
