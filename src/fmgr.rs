//! Helpers for the V1 C functions that bypass pgrx's argument conversions on hot paths
//! (`accessors`, `jwt_verify`): raw argument access and text/jsonb conversions.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use std::ffi::{CStr, CString};

/// Declares the `pg_finfo_*` record PostgreSQL looks for next to a V1 function.
macro_rules! v1_finfo {
    ($finfo:ident) => {
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record = pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}
pub(crate) use v1_finfo;

/// Declares a V1 C function and its `pg_finfo_*` record. The body evaluates to
/// `Result<Datum, ErrorReport>`; an `Err` is raised as the PostgreSQL error it describes (with
/// its SQLSTATE). The body runs in the function's unsafe context: PostgreSQL calls it through
/// its SQL declaration, with the declared arguments.
macro_rules! v1_function {
    ($(#[$attr:meta])* fn $name:ident / $finfo:ident ($fcinfo:ident) $body:block) => {
        $crate::fmgr::v1_finfo!($finfo);

        $(#[$attr])*
        #[no_mangle]
        #[::pgrx::pg_guard]
        // SAFETY (for callers): only PostgreSQL calls this, through its SQL declaration, with a valid fcinfo.
        pub unsafe extern "C-unwind" fn $name(fcinfo: ::pgrx::pg_sys::FunctionCallInfo) -> ::pgrx::pg_sys::Datum {
            #[allow(unused_unsafe)]
            // SAFETY (for callers): called only by the wrapper above, with PostgreSQL's fcinfo.
            unsafe fn body(
                $fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
            ) -> Result<::pgrx::pg_sys::Datum, ::pgrx::pg_sys::panic::ErrorReport> {
                $body
            }
            // SAFETY: PostgreSQL calls this through its SQL declaration, with its arguments.
            ::pgrx::pg_sys::panic::ErrorReportable::unwrap_or_report(unsafe { body(fcinfo) })
        }
    };
}
pub(crate) use v1_function;

/// Whether argument `i` is NULL.
///
/// # Safety
/// `fcinfo` must be the valid call PostgreSQL passed in, with more than `i` arguments.
pub unsafe fn arg_is_null(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> bool {
    pgrx::fcinfo::pg_arg_is_null(fcinfo, i)
}

/// The payload bytes of varlena argument `i` (text, jsonb), detoasted if needed. Not NULL.
///
/// # Safety
/// `fcinfo` must be the valid call PostgreSQL passed in, and argument `i` a non-NULL varlena.
/// The caller chooses `'a`: it must not outlive the call (the argument, or its detoasted copy
/// in the current memory context, lives that long and no longer).
// SAFETY (for callers): see # Safety above: a valid call, a non-NULL varlena, 'a within the call.
pub unsafe fn arg_bytes<'a>(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> &'a [u8] {
    let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i);
    let v = pg_sys::pg_detoast_datum_packed(raw.cast_mut_ptr());
    let len = pgrx::varlena::varsize_any_exhdr(v);
    std::slice::from_raw_parts(pgrx::varlena::vardata_any(v).cast::<u8>(), len)
}

/// Integer argument `i`. Not NULL.
///
/// # Safety
/// `fcinfo` must be the valid call PostgreSQL passed in, and argument `i` a non-NULL integer.
pub unsafe fn arg_i32(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> i32 {
    pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i).value() as i32
}

/// The text of jsonb argument `i` (through `jsonb_out`), as UTF-8. Not NULL.
///
/// Text longer than `max` bytes (`what` names the argument) raises 22023 before any copy on the
/// Rust heap: a Rust allocation that fails aborts the backend, which restarts the cluster.
///
/// # Safety
/// `fcinfo` must be a valid call with a non-NULL jsonb argument `i`.
pub unsafe fn arg_jsonb_text(
    fcinfo: pg_sys::FunctionCallInfo,
    i: usize,
    max: usize,
    what: &str,
) -> Result<String, ErrorReport> {
    let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i);
    match pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(raw)]) {
        Some(out) => {
            let text = CStr::from_ptr(out.cast_mut_ptr::<std::ffi::c_char>());
            if text.to_bytes().len() > max {
                return Err(crate::errors::bad_argument(format!(
                    "{what} is larger than {max} bytes"
                )));
            }
            let utf8 = crate::encoding::from_server(text.to_bytes())?.into_owned();
            pg_sys::pfree(out.cast_mut_ptr());
            Ok(utf8)
        }
        None => Ok(String::new()),
    }
}

/// A jsonb datum in the current memory context from UTF-8 JSON text (through `jsonb_in`, so
/// numbers stay exact), converted to the database encoding first (22P05 if it cannot be).
///
/// # Safety
/// Call inside a transaction; the result lives in the current memory context.
pub unsafe fn jsonb_from_text(text: &str) -> Result<pg_sys::Datum, ErrorReport> {
    let server = crate::encoding::to_server(text)?;
    let c = CString::new(server.into_owned()).map_err(|_| crate::errors::internal("JSON text holds a NUL byte"))?;
    pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(c.as_ptr()))])
        .ok_or_else(|| crate::errors::internal("jsonb_in returned NULL"))
}

/// A jsonb datum in the current memory context built straight from a parsed JSON object or
/// array (`pushJsonbValue`), without printing it as text and parsing it again with `jsonb_in`:
/// strings converted to the database encoding (22P05 if they cannot be), numbers as `jsonb_in`
/// reads them (`numeric_in` of their exact text; an integer that fits 64 bits through
/// `int64_to_numeric`, the same value and scale). A scalar goes through `jsonb_from_text`.
///
/// Why two passes: every `pg_sys` call crosses pgrx's error guard (a `sigsetjmp` and its
/// bookkeeping), which cost more than the build itself when each member's key, value and copy
/// were a call of their own (about 1.5 µs for a typical claim set, measured with `perf`). The
/// first pass, in Rust, converts the text and flattens the value into `Step`s; the second makes
/// every server call of the build inside one guard (`build_flat`).
///
/// # Safety
/// Call inside a transaction; the result lives in the current memory context.
pub unsafe fn jsonb_from_json(value: &pg_jwt_core::Json) -> Result<pg_sys::Datum, ErrorReport> {
    use pg_jwt_core::Json;
    if !matches!(value, Json::Object(_) | Json::Array(_)) {
        if let Json::Number(n) = value {
            number(n)?;
        }
        return jsonb_from_text(&value.to_json_string());
    }
    let mut steps = Vec::with_capacity(32);
    flatten(value, pg_sys::JsonbIteratorToken::WJB_VALUE, &mut steps)?;
    // SAFETY: `build_flat` calls only the server functions declared in `raw`, with the arguments
    // their C declarations take; an error raised by one of them jumps back to this guard, which
    // turns it into a Rust panic that pgrx raises again as the same error. The frames it jumps
    // over (`build_flat`'s) own nothing to drop: `steps` lives here, outside the guard.
    let jsonb = pg_sys::ffi::pg_guard_ffi_boundary(|| build_flat(&steps));
    Ok(pg_sys::Datum::from(jsonb))
}

/// One step of a jsonb build, in document order, its text in the database encoding.
enum Step<'a> {
    Begin(pg_sys::JsonbIteratorToken::Type),
    End(pg_sys::JsonbIteratorToken::Type),
    /// A scalar under `token` (`WJB_KEY` for a member name, `WJB_VALUE` for a member's value,
    /// `WJB_ELEM` for an array element).
    Scalar(pg_sys::JsonbIteratorToken::Type, Scalar<'a>),
}

enum Scalar<'a> {
    Null,
    Bool(bool),
    /// An integer that fits 64 bits, written without sign of zero, fraction or exponent.
    Int(i64),
    /// Any other number, its exact text (valid JSON number syntax, so valid `numeric_in` input).
    Number(&'a str),
    String(std::borrow::Cow<'a, [u8]>),
}

/// Appends the steps that build `v` (a scalar under `token`).
fn flatten<'a>(
    v: &'a pg_jwt_core::Json,
    token: pg_sys::JsonbIteratorToken::Type,
    out: &mut Vec<Step<'a>>,
) -> Result<(), ErrorReport> {
    use pg_jwt_core::Json;
    use pg_sys::JsonbIteratorToken::{
        WJB_BEGIN_ARRAY, WJB_BEGIN_OBJECT, WJB_ELEM, WJB_END_ARRAY, WJB_END_OBJECT, WJB_KEY, WJB_VALUE,
    };
    let string = |s: &'a str| -> Result<Scalar<'a>, ErrorReport> {
        let bytes = crate::encoding::to_server(s)?;
        // jsonb's string length limit (JENTRY_OFFLENMASK, 2^28 - 1) is far above any token's.
        if bytes.len() >= (1 << 28) {
            return Err(crate::errors::internal("a string too long for jsonb"));
        }
        Ok(Scalar::String(bytes))
    };
    match v {
        Json::Object(members) => {
            out.push(Step::Begin(WJB_BEGIN_OBJECT));
            for (name, value) in members {
                out.push(Step::Scalar(WJB_KEY, string(name)?));
                flatten(value, WJB_VALUE, out)?;
            }
            out.push(Step::End(WJB_END_OBJECT));
        }
        Json::Array(items) => {
            out.push(Step::Begin(WJB_BEGIN_ARRAY));
            for item in items {
                flatten(item, WJB_ELEM, out)?;
            }
            out.push(Step::End(WJB_END_ARRAY));
        }
        Json::Null => out.push(Step::Scalar(token, Scalar::Null)),
        Json::Bool(b) => out.push(Step::Scalar(token, Scalar::Bool(*b))),
        Json::Number(n) => out.push(Step::Scalar(token, number(n)?)),
        Json::String(s) => out.push(Step::Scalar(token, string(s)?)),
    }
    Ok(())
}

/// A JSON number (valid syntax) as `Scalar::Int` when `numeric_in` would read it as a 64-bit
/// integer of scale 0, else its text. `-0` keeps the text path (the same value either way).
/// A number `numeric` cannot hold is refused here (22003, `pg_jwt:`), not by `numeric_in`
/// inside the build.
fn number(n: &str) -> Result<Scalar<'_>, ErrorReport> {
    let digits = n.strip_prefix('-').unwrap_or(n);
    if digits.bytes().all(|b| b.is_ascii_digit()) && digits != "0" || n == "0" {
        if let Ok(i) = n.parse::<i64>() {
            return Ok(Scalar::Int(i));
        }
    }
    if !pg_jwt_core::json::fits_pg_numeric(n) {
        return Err(crate::errors::numeric_out_of_range());
    }
    Ok(Scalar::Number(n))
}

/// The server functions of a jsonb build, declared here to be called without pgrx's guard
/// around each: `jsonb_from_json` runs the whole build inside one (`pg_guard_ffi_boundary`).
/// Their C declarations are the same in PostgreSQL 15 to 18.
mod raw {
    use pgrx::pg_sys;
    // SAFETY: these are the server's own symbols with the signatures of its headers (the same as
    // pgrx's bindings for PostgreSQL 15 to 18); they are called only from `build_flat`, inside
    // `pg_guard_ffi_boundary`, which turns an error's longjmp into a Rust panic.
    unsafe extern "C-unwind" {
        pub fn palloc(size: pg_sys::Size) -> *mut std::ffi::c_void;
        pub fn pushJsonbValue(
            pstate: *mut *mut pg_sys::JsonbParseState,
            seq: pg_sys::JsonbIteratorToken::Type,
            jbval: *mut pg_sys::JsonbValue,
        ) -> *mut pg_sys::JsonbValue;
        pub fn JsonbValueToJsonb(val: *mut pg_sys::JsonbValue) -> *mut pg_sys::Jsonb;
        pub fn int64_to_numeric(val: i64) -> pg_sys::Numeric;
        pub fn numeric_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
        pub fn DirectFunctionCall3Coll(
            func: pg_sys::PGFunction,
            collation: pg_sys::Oid,
            arg1: pg_sys::Datum,
            arg2: pg_sys::Datum,
            arg3: pg_sys::Datum,
        ) -> pg_sys::Datum;
    }
}

/// Builds the jsonb of `steps` (a whole object or array, from `flatten`). Runs inside a guard:
/// nothing here owns anything that needs dropping, so an error's jump over these frames loses
/// nothing.
///
/// # Safety
/// Inside a transaction, within `pg_guard_ffi_boundary`; the result lives in the current
/// memory context.
unsafe fn build_flat(steps: &[Step<'_>]) -> *mut pg_sys::Jsonb {
    use pg_sys::jbvType::{jbvBool, jbvNull, jbvNumeric, jbvString};
    let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
    let mut root: *mut pg_sys::JsonbValue = std::ptr::null_mut();
    for step in steps {
        root = match step {
            Step::Begin(t) | Step::End(t) => raw::pushJsonbValue(&mut state, *t, std::ptr::null_mut()),
            Step::Scalar(token, s) => {
                // SAFETY: JsonbValue is a plain C struct; all zero is a valid (jbvNull) value.
                let mut jv: pg_sys::JsonbValue = std::mem::zeroed();
                match s {
                    Scalar::Null => jv.type_ = jbvNull,
                    Scalar::Bool(b) => {
                        jv.type_ = jbvBool;
                        jv.val.boolean = *b;
                    }
                    Scalar::Int(i) => {
                        jv.type_ = jbvNumeric;
                        jv.val.numeric = raw::int64_to_numeric(*i);
                    }
                    Scalar::Number(text) => {
                        // numeric_in reads a NUL-terminated string: a palloc'd copy.
                        let c = raw::palloc(text.len() + 1).cast::<u8>();
                        std::ptr::copy_nonoverlapping(text.as_ptr(), c, text.len());
                        *c.add(text.len()) = 0;
                        let d = raw::DirectFunctionCall3Coll(
                            Some(raw::numeric_in),
                            pg_sys::InvalidOid,
                            pg_sys::Datum::from(c),
                            pg_sys::Datum::from(pg_sys::InvalidOid),
                            pg_sys::Datum::from(-1i32),
                        );
                        jv.type_ = jbvNumeric;
                        jv.val.numeric = d.cast_mut_ptr();
                    }
                    Scalar::String(bytes) => {
                        // The copy (all the bytes, whatever they hold) in the current context;
                        // flatten checked the length fits.
                        let copy = raw::palloc(bytes.len().max(1)).cast::<u8>();
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
                        jv.type_ = jbvString;
                        jv.val.string.len = bytes.len() as i32;
                        jv.val.string.val = copy.cast();
                    }
                }
                raw::pushJsonbValue(&mut state, *token, &mut jv)
            }
        };
    }
    raw::JsonbValueToJsonb(root)
}

/// A text datum in the current memory context from UTF-8 text, converted to the database
/// encoding (22P05 if it cannot be represented).
///
/// # Safety
/// Call inside a transaction; the result lives in the current memory context.
pub unsafe fn text_datum(s: &str) -> Result<pg_sys::Datum, ErrorReport> {
    let bytes = crate::encoding::to_server(s)?;
    let len = i32::try_from(bytes.len()).map_err(|_| crate::errors::internal("text too long"))?;
    // SAFETY: bytes is valid for len bytes; the result is palloc'd in the current context.
    Ok(pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
        bytes.as_ptr().cast(),
        len,
    )))
}
