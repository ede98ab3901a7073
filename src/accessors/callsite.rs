//! The per-call-site cache of the one-name accessors: each call site (one `FmgrInfo`, e.g. one
//! policy expression in one query) keeps in `fn_extra` the result it returned and what it
//! depends on (`CallSite`, `Entry`). `cached` is the per-row path; `guarded` and
//! `fill_call_site` the checked path that verifies (or finds) the token's claims and fills it.
//! See the module doc of `accessors` for the costs and the memory bounds.

use super::convert::{self, Kind};
use crate::fmgr;
use crate::{clock, encoding, expiry, gucs, session};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReportable;
use std::borrow::Cow;
use std::ffi::c_void;
use std::ptr::null_mut;

/// Copies of results a call site keeps in `fn_mcxt` over its life; after that many it keeps
/// none (every call takes the checked path), so its memory stays bounded however often the
/// token changes under it.
const MAX_KEPT: u32 = 16;

/// One cached result: a by-value datum, or a pointer to its copy in `fn_mcxt`.
#[repr(C)]
struct Entry {
    result_null: bool,
    result: pg_sys::Datum,
}

impl Entry {
    const EMPTY: Entry = Entry {
        result_null: true,
        result: pg_sys::Datum::null(),
    };
}

/// Per-call-site state, allocated zeroed in `fn_mcxt` (all-zero is a valid empty state:
/// `valid` false).
#[repr(C)]
struct CallSite {
    valid: bool,
    /// Whether the call site was inspected (`const_name` set).
    inspected: bool,
    /// The claim name is a constant of the expression (a `Const` node): the same at every call
    /// of this call site, so the per-row path does not look at it.
    const_name: bool,
    /// Read the clock on every call: the token is in its last seconds, or no timer covers it
    /// (`expiry`).
    check_clock: bool,
    /// The local generation (token, settings, expiry timer) the cached result was made under.
    local: u64,
    /// The shared generation (fetched key set, revocations) it was made under.
    keys: u64,
    current: Entry,
    /// Copies of results made in `fn_mcxt` so far (at most `MAX_KEPT`). None is ever freed
    /// before `fn_mcxt` is: a caller may hold any result it was given until the expression's
    /// evaluation ends (an array cast keeps every element until it builds the array), and
    /// whatever runs between two calls may have changed the token.
    kept: u32,
    /// The token's validity window (checked per call only when `check_clock`).
    window: pg_jwt_core::claims::Window,
}

/// The call site's state in `fn_extra`, created on first use.
///
/// # Safety
/// `fcinfo` must be a valid V1 call whose `fn_extra` is ours (set only here).
unsafe fn call_site<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a mut CallSite {
    let flinfo = (*fcinfo).flinfo;
    if (*flinfo).fn_extra.is_null() {
        // SAFETY: zeroed memory is a valid CallSite (null pointers, false, zero).
        (*flinfo).fn_extra =
            pg_sys::MemoryContextAllocZero((*flinfo).fn_mcxt, std::mem::size_of::<CallSite>()).cast::<c_void>();
    }
    &mut *(*flinfo).fn_extra.cast::<CallSite>()
}

/// The bytes of `result`'s SQL value (of `kind`): the bytes it points to (a uuid's 16, a whole
/// varlena), or for a bigint (passed by value) its 8 bytes, written to `int`.
///
/// # Safety
/// `result` must be a valid datum of `kind`'s SQL type; the slice borrows what it points to,
/// whose life the signature does not bound: the caller uses it only while the datum lives.
unsafe fn value_bytes<'a>(result: pg_sys::Datum, kind: Kind, int: &'a mut [u8; 8]) -> &'a [u8] {
    match kind {
        Kind::Bigint => {
            *int = (result.value() as i64).to_ne_bytes();
            int
        }
        Kind::Uuid => std::slice::from_raw_parts(result.cast_mut_ptr::<u8>(), 16),
        Kind::Claims | Kind::Text | Kind::Array | Kind::Provider => {
            let v = result.cast_mut_ptr::<pg_sys::varlena>();
            std::slice::from_raw_parts(v.cast::<u8>(), pgrx::varlena::varsize_any(v))
        }
    }
}

/// A datum of `kind` holding `value` (bytes from `value_bytes`), copied into `cxt`: (datum, the
/// chunk to free later, or null for a bigint, passed by value).
///
/// # Safety
/// `value` must be the bytes of a valid value of `kind`'s SQL type; `cxt` a valid context.
unsafe fn datum_of(cxt: pg_sys::MemoryContext, value: &[u8], kind: Kind) -> (pg_sys::Datum, *mut c_void) {
    if let Kind::Bigint = kind {
        let mut int = [0u8; 8];
        if let Some(to) = int.get_mut(..value.len()) {
            to.copy_from_slice(value);
        }
        return (pg_sys::Datum::from(i64::from_ne_bytes(int)), null_mut());
    }
    let copy = pg_sys::MemoryContextAlloc(cxt, value.len());
    std::ptr::copy_nonoverlapping(value.as_ptr(), copy.cast::<u8>(), value.len());
    (pg_sys::Datum::from(copy), copy)
}

/// A copy of `result` (of `kind`) in `cxt`: (datum, its chunk, or null for a bigint, passed by value).
///
/// # Safety
/// `result` must be a valid datum of `kind`'s SQL type.
unsafe fn copy_result(cxt: pg_sys::MemoryContext, result: pg_sys::Datum, kind: Kind) -> (pg_sys::Datum, *mut c_void) {
    let mut int = [0u8; 8];
    datum_of(cxt, value_bytes(result, kind, &mut int), kind)
}

/// The per-row path of a one-name accessor (or `jwt_claims()`): the cached result if the call
/// site has one that is still valid, else None. Loads and comparisons only: nothing here calls
/// into PostgreSQL or can panic, so it runs without pgrx's guard.
///
/// # Safety
/// `fcinfo` must be a valid V1 call of one of the functions declared below.
#[inline(always)]
pub(super) unsafe fn cached(fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::Datum> {
    let site = (*(*fcinfo).flinfo).fn_extra.cast::<CallSite>();
    if site.is_null() {
        return None;
    }
    let site = &*site;
    if !site.valid
        || site.local != crate::generations::local_generation()
        || site.keys != crate::generations::shared_generation_fast()
    {
        return None;
    }
    // Only a call site whose name is a constant keeps a result (see `fill_call_site`); this
    // load also covers a site not inspected yet (all zero: not valid either).
    if !site.const_name {
        return None;
    }
    if site.check_clock && !site.window.contains(clock::now_unix_coarse() as f64) {
        return None;
    }
    if site.current.result_null {
        (*fcinfo).isnull = true;
    }
    Some(site.current.result)
}

/// Whether argument 0 of the call is a `Const` node of its expression (so the same value at
/// every call of this `FmgrInfo`). Not `get_fn_expr_arg_stable`, which also counts external
/// parameters: PL/pgSQL evaluates one expression state with changing parameter values.
///
/// # Safety
/// `fcinfo` must be a valid V1 call.
unsafe fn arg_is_const(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    let expr = (*(*fcinfo).flinfo).fn_expr;
    if expr.is_null() || (*expr).type_ != pg_sys::NodeTag::T_FuncExpr {
        return false;
    }
    let args = (*expr.cast::<pg_sys::FuncExpr>()).args;
    if args.is_null() || (*args).length < 1 {
        return false;
    }
    let first = (*(*args).elements).ptr_value.cast::<pg_sys::Node>();
    !first.is_null() && (*first).type_ == pg_sys::NodeTag::T_Const && !(*first.cast::<pg_sys::Const>()).constisnull
}

/// The checked path, under pgrx's guard (errors become PostgreSQL errors). Not inlined: the
/// per-row path stays small.
///
/// # Safety
/// As `cached`.
#[inline(never)]
pub(super) unsafe fn guarded(fcinfo: pg_sys::FunctionCallInfo, kind: Kind) -> pg_sys::Datum {
    // SAFETY: the top of an extern "C-unwind" function's work, as pg_guard would expand it.
    pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(move || {
        // Read before the work: a change during it voids what is cached below.
        let local = crate::generations::local_generation();
        let now = session::Generations::now();
        // jwt_claims() has no argument; the others take the claim name (STRICT: never NULL).
        let name: &[u8] = if kind.no_argument() {
            b""
        } else {
            fmgr::arg_bytes(fcinfo, 0)
        };
        let site = call_site(fcinfo);
        if !site.inspected {
            site.const_name = kind.no_argument() || arg_is_const(fcinfo);
            site.inspected = true;
        }
        fill_call_site(fcinfo, site, name, kind, now, local)
    })
}

/// The result of (`name`, `kind`) converted from `claims` before (`session::Converted`), as a
/// datum in the current memory context: `Some(None)` for NULL; `None` if none is kept.
///
/// # Safety
/// Call from a SQL function (inside a transaction), as `convert::lookup_as_datum`.
unsafe fn converted(claims: &session::Claims, name: &[u8], kind: Kind) -> Option<Option<pg_sys::Datum>> {
    // Copied out first: nothing that can raise an error runs while the claims are borrowed.
    let mut value = [0u8; session::Converted::MAX_VALUE];
    let len = match claims.converted.borrow().get(kind.tag(), name)? {
        None => return Some(None),
        Some(bytes) => {
            value.get_mut(..bytes.len())?.copy_from_slice(bytes);
            bytes.len()
        }
    };
    let cxt = pg_sys::CurrentMemoryContext;
    Some(Some(datum_of(cxt, value.get(..len)?, kind).0))
}

/// Verifies (or finds) the session token's claims, looks the claim up, caches the result.
/// Errors (rejected token, bad key set, wrong claim type) are raised here, never cached.
///
/// # Safety
/// As `accessor`; `site` is this call's call site.
unsafe fn fill_call_site(
    fcinfo: pg_sys::FunctionCallInfo,
    site: &mut CallSite,
    name: &[u8],
    kind: Kind,
    now: session::Generations,
    local: u64,
) -> pg_sys::Datum {
    site.valid = false;
    let claims = session::current_claims().unwrap_or_report();
    // Built in the caller's memory context: never freed by us.
    let result = match claims.as_deref().map(|c| converted(c, name, kind)) {
        Some(Some(kept)) => kept,
        // Longer than the largest token: in no claim set (never copied or converted).
        _ if !kind.no_argument() && name.len() > super::MAX_NAME_BYTES => None,
        _ => {
            let path: Vec<Option<Cow<str>>> = if kind.no_argument() {
                Vec::new()
            } else {
                vec![Some(encoding::from_server(name).unwrap_or_report())]
            };
            let result = convert::lookup_as_datum(claims.as_deref(), &path, kind).unwrap_or_report();
            if let (Some(c), true) = (claims.as_deref(), kind.tag() != 0) {
                let mut int = [0u8; 8];
                let value = result.map(|d| value_bytes(d, kind, &mut int));
                c.converted.borrow_mut().put(kind.tag(), name, value);
            }
            result
        }
    };
    // Only for a constant name: a call site whose name varies (a column, or an array cast that
    // calls the accessor per element) would replace its entry at almost every call. Those, and
    // a call site that has made `MAX_KEPT` copies, get the result made above, in the caller's
    // memory context, every time.
    if site.const_name && site.kept < MAX_KEPT {
        let cxt = (*(*fcinfo).flinfo).fn_mcxt;
        // The copy `current` pointed to stays in fn_mcxt (see `kept`).
        site.current = Entry::EMPTY;
        if let Some(d) = result {
            let (datum, chunk) = copy_result(cxt, d, kind);
            site.current.result = datum;
            site.current.result_null = false;
            if !chunk.is_null() {
                site.kept += 1;
            }
        }
        site.local = local;
        site.keys = now.shared;
        // The leeway of the token's provider (the implicit one's is pg_jwt.leeway).
        let (times, leeway) = claims
            .as_ref()
            .map_or((Default::default(), gucs::leeway()), |c| (c.times, c.leeway));
        site.window = times.window(leeway);
        // A timer ends the fast path shortly before the window does; in the last seconds (or
        // without a token) the clock is read per call.
        site.check_clock = claims.is_none() || !expiry::arm(site.window.until, clock::now_unix_coarse() as f64);
        site.valid = true;
    }
    match result {
        Some(d) => d,
        None => pgrx::fcinfo::pg_return_null(fcinfo),
    }
}
