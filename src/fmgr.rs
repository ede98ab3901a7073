//! Helpers for the V1 C functions that bypass pgrx's argument conversions on hot paths
//! (`fastpath`, `jwt_verify`): raw argument access and text/jsonb conversions.

use pgrx::pg_sys;
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

/// Whether argument `i` is NULL.
pub unsafe fn arg_is_null(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> bool {
    pgrx::fcinfo::pg_arg_is_null(fcinfo, i)
}

/// The payload bytes of varlena argument `i` (text, jsonb), detoasted if needed. Not NULL.
pub unsafe fn arg_bytes<'a>(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> &'a [u8] {
    let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i);
    let v = pg_sys::pg_detoast_datum_packed(raw.cast_mut_ptr());
    let len = pgrx::varlena::varsize_any_exhdr(v);
    std::slice::from_raw_parts(pgrx::varlena::vardata_any(v).cast::<u8>(), len)
}

/// Integer argument `i`. Not NULL.
pub unsafe fn arg_i32(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> i32 {
    pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i).value() as i32
}

/// The text of jsonb argument `i` (through `jsonb_out`). Not NULL.
pub unsafe fn arg_jsonb_text(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> String {
    let raw = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, i);
    match pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(raw)]) {
        Some(out) => CStr::from_ptr(out.cast_mut_ptr::<std::ffi::c_char>())
            .to_string_lossy()
            .into_owned(),
        None => String::new(),
    }
}

/// A jsonb datum from JSON text (through `jsonb_in`, so numbers stay exact).
pub unsafe fn jsonb_from_text(text: &str) -> Option<pg_sys::Datum> {
    let c = CString::new(text).ok()?;
    pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(c.as_ptr()))])
}
