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
/// # Safety
/// `fcinfo` must be a valid call with a non-NULL jsonb argument `i`.
pub unsafe fn arg_jsonb_text(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Result<String, ErrorReport> {
    let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i);
    match pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(raw)]) {
        Some(out) => {
            let text = CStr::from_ptr(out.cast_mut_ptr::<std::ffi::c_char>());
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
/// strings converted to the database encoding (22P05 if they cannot be), numbers through
/// `numeric_in` from their exact text (as `jsonb_in` reads them). A scalar goes through
/// `jsonb_from_text`.
///
/// # Safety
/// Call inside a transaction; the result lives in the current memory context.
pub unsafe fn jsonb_from_json(value: &pg_jwt_core::Json) -> Result<pg_sys::Datum, ErrorReport> {
    use pg_jwt_core::Json;
    if !matches!(value, Json::Object(_) | Json::Array(_)) {
        return jsonb_from_text(&value.to_json_string());
    }
    let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
    let root = push_jsonb(&mut state, value, pg_sys::JsonbIteratorToken::WJB_VALUE)?;
    Ok(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(root)))
}

/// A scalar as a `JsonbValue` (strings and numbers palloc'd in the current memory context).
///
/// # Safety
/// As `jsonb_from_json`.
unsafe fn jsonb_scalar(v: &pg_jwt_core::Json) -> Result<pg_sys::JsonbValue, ErrorReport> {
    use pg_jwt_core::Json;
    use pg_sys::jbvType::{jbvBool, jbvNull, jbvNumeric, jbvString};
    let mut out: pg_sys::JsonbValue = std::mem::zeroed();
    match v {
        Json::Null => out.type_ = jbvNull,
        Json::Bool(b) => {
            out.type_ = jbvBool;
            out.val.boolean = *b;
        }
        Json::Number(n) => {
            let c = CString::new(n.as_bytes()).map_err(|_| crate::errors::internal("a number holds a NUL byte"))?;
            let d = pgrx::fcinfo::direct_function_call_as_datum(
                pg_sys::numeric_in,
                &[
                    Some(pg_sys::Datum::from(c.as_ptr())),
                    Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                    Some(pg_sys::Datum::from(-1i32)),
                ],
            )
            .ok_or_else(|| crate::errors::internal("numeric_in returned NULL"))?;
            out.type_ = jbvNumeric;
            out.val.numeric = d.cast_mut_ptr();
        }
        Json::String(text) => {
            let bytes = crate::encoding::to_server(text)?;
            let len = i32::try_from(bytes.len()).map_err(|_| crate::errors::internal("a string too long"))?;
            out.type_ = jbvString;
            out.val.string.len = len;
            // SAFETY: bytes is valid for len bytes; the copy (all of them, whatever they hold) is
            // palloc'd in the current context.
            let copy = pg_sys::palloc(bytes.len().max(1)).cast::<u8>();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
            out.val.string.val = copy.cast();
        }
        Json::Array(_) | Json::Object(_) => return Err(crate::errors::internal("not a scalar")),
    }
    Ok(out)
}

/// Pushes `v` (under `token` when it is a scalar: an object member's value or an array
/// element) and returns what `pushJsonbValue` returned (the finished container at the end).
///
/// # Safety
/// As `jsonb_from_json`; `state` is the parse state being built.
unsafe fn push_jsonb(
    state: &mut *mut pg_sys::JsonbParseState,
    v: &pg_jwt_core::Json,
    token: pg_sys::JsonbIteratorToken::Type,
) -> Result<*mut pg_sys::JsonbValue, ErrorReport> {
    use pg_jwt_core::Json;
    use pg_sys::JsonbIteratorToken::{
        WJB_BEGIN_ARRAY, WJB_BEGIN_OBJECT, WJB_ELEM, WJB_END_ARRAY, WJB_END_OBJECT, WJB_KEY, WJB_VALUE,
    };
    match v {
        Json::Object(members) => {
            pg_sys::pushJsonbValue(state, WJB_BEGIN_OBJECT, std::ptr::null_mut());
            for (name, value) in members {
                let mut key = jsonb_scalar(&Json::String(name.clone()))?;
                pg_sys::pushJsonbValue(state, WJB_KEY, &mut key);
                push_jsonb(state, value, WJB_VALUE)?;
            }
            Ok(pg_sys::pushJsonbValue(state, WJB_END_OBJECT, std::ptr::null_mut()))
        }
        Json::Array(items) => {
            pg_sys::pushJsonbValue(state, WJB_BEGIN_ARRAY, std::ptr::null_mut());
            for item in items {
                push_jsonb(state, item, WJB_ELEM)?;
            }
            Ok(pg_sys::pushJsonbValue(state, WJB_END_ARRAY, std::ptr::null_mut()))
        }
        scalar => {
            let mut jv = jsonb_scalar(scalar)?;
            Ok(pg_sys::pushJsonbValue(state, token, &mut jv))
        }
    }
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
