//! Text crossing the boundary between the core (UTF-8, as JSON requires) and the database
//! (its own encoding).
//!
//! - Claim values leave as the database encoding: a `sub` of "é" must read back as "é" in an
//!   EUC_JP or LATIN1 database, never as the bytes of another character. A value the database
//!   encoding cannot represent raises 22P05 (untranslatable_character), without the value; so
//!   does one whose conversion does not convert back to it (two characters written alike).
//! - Claim names and other text arguments arrive in the database encoding and are converted to
//!   UTF-8 before they are compared with the token's names.
//! - Tokens are base64url (ASCII by construction). Key sets are JSON: ASCII in practice (a
//!   non-ASCII `kid` in a jsonb argument is converted like any other argument).
//!
//! ASCII text is the same in every server encoding, so it is never converted: the common case
//! costs one `is_ascii` scan and no allocation. In a UTF8 or SQL_ASCII database nothing is
//! converted either (SQL_ASCII stores the bytes as given, which is what that encoding means).

use crate::errors;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use std::borrow::Cow;
use std::cell::Cell;
use std::ffi::c_int;

/// How this backend's database encoding relates to UTF-8 (fixed for the backend's life).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Database {
    /// UTF8 or SQL_ASCII: bytes pass through.
    PassThrough,
    /// Another encoding: non-ASCII text is converted (`proc_oid`: the UTF8 -> database
    /// conversion; `back_oid`: database -> UTF8, to check that a value survives the round trip).
    Convert {
        encoding: c_int,
        proc_oid: pg_sys::Oid,
        back_oid: pg_sys::Oid,
    },
}

thread_local! {
    static DATABASE: Cell<Option<Database>> = const { Cell::new(None) };
}

fn database() -> Database {
    if let Some(d) = DATABASE.with(Cell::get) {
        return d;
    }
    // SAFETY: plain reads of backend state; FindDefaultConversionProc does a catalog lookup,
    // which is allowed here because every caller runs inside a transaction (a SQL function).
    let d = unsafe {
        let encoding = pg_sys::GetDatabaseEncoding();
        if encoding == pg_sys::pg_enc::PG_UTF8 as c_int || encoding == pg_sys::pg_enc::PG_SQL_ASCII as c_int {
            Database::PassThrough
        } else {
            Database::Convert {
                encoding,
                proc_oid: pg_sys::FindDefaultConversionProc(pg_sys::pg_enc::PG_UTF8 as c_int, encoding),
                back_oid: pg_sys::FindDefaultConversionProc(encoding, pg_sys::pg_enc::PG_UTF8 as c_int),
            }
        }
    };
    DATABASE.with(|c| c.set(Some(d)));
    d
}

fn untranslatable() -> ErrorReport {
    errors::untranslatable("a claim value cannot be represented in the database encoding")
}

/// UTF-8 text (a claim value, JSON text) as bytes in the database encoding.
pub fn to_server(s: &str) -> Result<Cow<'_, [u8]>, ErrorReport> {
    if s.is_ascii() {
        return Ok(Cow::Borrowed(s.as_bytes()));
    }
    let (encoding, proc_oid, back_oid) = match database() {
        Database::PassThrough => return Ok(Cow::Borrowed(s.as_bytes())),
        Database::Convert {
            encoding,
            proc_oid,
            back_oid,
        } => (encoding, proc_oid, back_oid),
    };
    if proc_oid == pg_sys::InvalidOid || back_oid == pg_sys::InvalidOid {
        return Err(untranslatable());
    }
    let converted =
        convert(proc_oid, pg_sys::pg_enc::PG_UTF8 as c_int, encoding, s.as_bytes()).ok_or_else(untranslatable)?;
    // Not every conversion is one to one: EUC_JP writes U+00A6 and U+FFE4 as the same bytes, so
    // two identities (or two member names of jwt_claims()) would read as one. The text must come
    // back as it was; otherwise the database encoding cannot represent it.
    if convert(back_oid, encoding, pg_sys::pg_enc::PG_UTF8 as c_int, &converted).as_deref() != Some(s.as_bytes()) {
        return Err(untranslatable());
    }
    Ok(Cow::Owned(converted))
}

/// `src` (text in encoding `from`) converted to `to` by the conversion function `proc_oid`, or
/// None when some of it has no equivalent there (never an error: nothing of `src` is shown).
fn convert(proc_oid: pg_sys::Oid, from: c_int, to: c_int, src: &[u8]) -> Option<Vec<u8>> {
    let src_len = c_int::try_from(src.len()).ok()?;
    // pg_do_encoding_conversion_buf converts only what surely fits: srclen < (dstlen - 1) / 4.
    let dst_len = src
        .len()
        .checked_mul(pg_sys::MAX_CONVERSION_GROWTH as usize)
        .and_then(|n| n.checked_add(8))?;
    let dst_len_c = c_int::try_from(dst_len).ok()?;
    let mut input = src.to_vec();
    let mut dst = vec![0u8; dst_len];
    // With noError = true the conversion reports how much of the input it converted instead of
    // raising an error (for a character without equivalent, or input that is not valid in
    // `from`), and it NUL-terminates its output inside dst.
    // SAFETY: input and dst are valid buffers of the lengths passed; the function is called by
    // OID, which needs a transaction: every caller runs in one (a SQL function, the accessors).
    let consumed = unsafe {
        pg_sys::pg_do_encoding_conversion_buf(
            proc_oid,
            from,
            to,
            input.as_mut_ptr(),
            src_len,
            dst.as_mut_ptr(),
            dst_len_c,
            true,
        )
    };
    if consumed != src_len {
        return None;
    }
    let end = dst.iter().position(|b| *b == 0).unwrap_or(dst.len());
    dst.truncate(end);
    Some(dst)
}

/// Text in the database encoding (a claim name, an argument) as UTF-8.
pub fn from_server(b: &[u8]) -> Result<Cow<'_, str>, ErrorReport> {
    if b.is_ascii() {
        // ASCII is valid UTF-8: from_utf8 cannot fail here.
        return Ok(Cow::Borrowed(std::str::from_utf8(b).unwrap_or_default()));
    }
    let not_utf8 = || errors::untranslatable("a text argument cannot be represented in UTF-8");
    let converted: Vec<u8> = match database() {
        Database::PassThrough => return std::str::from_utf8(b).map(Cow::Borrowed).map_err(|_| not_utf8()),
        // Without raising PostgreSQL's own error, which would show the bytes (`convert`).
        Database::Convert { encoding, back_oid, .. } if back_oid != pg_sys::InvalidOid => {
            convert(back_oid, encoding, pg_sys::pg_enc::PG_UTF8 as c_int, b).ok_or_else(not_utf8)?
        }
        Database::Convert { .. } => return Err(not_utf8()),
    };
    String::from_utf8(converted).map(Cow::Owned).map_err(|_| not_utf8())
}
