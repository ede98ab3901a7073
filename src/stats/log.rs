//! The refusal log and the verified-identity log, in the server log only (never sent to the
//! client), without the statement (which may carry a token as a literal) or a context line.
//!
//! - `pg_jwt.log_refusals` (on): one line per refused token, `pg_jwt: refused token:
//!   reason=<reason> provider=<name> kid=<kid> iss=<iss> sub=<sub> jti=<jti>`. `sub` and `jti`
//!   appear only when the signature was valid (the refusal came after it: expiry, audience,
//!   issuer, required claims, revocation; not an `iss` no listed provider has, refused before
//!   any signature); otherwise the line says `claims=unverified` and `kid`
//!   and `iss` are what the token claims, unverified. Never the token, a segment or a
//!   signature; every value is quoted, escaped and cut to 128 characters.
//! - Rate limited cluster-wide: at most `pg_jwt.log_refusals_per_second` lines per second; the
//!   rest are counted and reported as `pg_jwt: <n> refused-token lines suppressed` (by the
//!   next refusal in a later second, or by the key fetcher within 100 ms).
//! - `pg_jwt.log_verified = first`: `pg_jwt: verified token: provider=<name> sub=<sub>
//!   jti=<jti> sid=<sid> exp=<exp>` at the first verification of each distinct token in each
//!   backend (when it enters the backend's cache), so that with `%p` or `%c` in
//!   `log_line_prefix` every other line of that backend (pgaudit, `log_statement`) can be tied
//!   to a person.

use super::{words, LOG_LINES, LOG_SECOND, LOG_SUPPRESSED, OUTCOMES, REVOKED};
use crate::{clock, gucs};
use pg_jwt_core::Json;
use std::sync::atomic::Ordering;

/// The outcomes that come after the signature check (so the claims are the issuer's).
fn after_signature(outcome: usize) -> bool {
    outcome == REVOKED || (8..=13).contains(&outcome)
}

/// A value for a log line: quoted, control characters and quotes escaped, at most 128
/// characters; `-` when absent or not a string.
fn field(v: Option<&Json>) -> String {
    let Some(s) = v.and_then(Json::as_str) else {
        return "-".to_owned();
    };
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 128 {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Everything but printable ASCII, escaped: a claim must not forge or disguise a line.
            c if !shown_as_is(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a character of a claim goes into a log line as it is: printable ASCII and the
/// space. Everything else is escaped: controls, and beyond ASCII characters that look like
/// nothing or like something else (line separators, bidirectional overrides, zero-width and
/// format characters; which ones are would need Unicode's tables), so no claim can forge or
/// disguise a line.
fn shown_as_is(c: char) -> bool {
    c == ' ' || c.is_ascii_graphic()
}

/// A number claim for a log line (`exp`), or `-`.
fn number(v: Option<&Json>) -> String {
    match v {
        Some(Json::Number(n)) if n.len() <= 32 => n.to_string(),
        _ => "-".to_owned(),
    }
}

/// Writes `message` to the server log at `LOG_SERVER_ONLY` (never to the client, whatever its
/// `client_min_messages`), without the statement or context lines.
///
/// Callers hold Rust state (the session cache is borrowed while a verification logs), so no
/// PostgreSQL error may jump over their frames: interrupts are held while the line is written
/// (`errfinish` checks for them, and a pending cancel or `statement_timeout` raised its ERROR
/// there, leaving the session cache borrowed for the life of the backend), and the calls run
/// inside pgrx's FFI guard, which turns any other error into a Rust panic that unwinds them.
pub fn emit(message: &str) {
    // errstart/errfinish as pgrx's own ereport calls them; errhidestmt and errhidecontext keep
    // the statement (which may hold a token literal) and the context out of the line.
    // SAFETY (of the declarations): the signatures of utils/elog.h in PostgreSQL 15 to 18.
    unsafe extern "C-unwind" {
        fn errstart(elevel: std::ffi::c_int, domain: *const std::ffi::c_char) -> bool;
        fn errfinish(filename: *const std::ffi::c_char, lineno: std::ffi::c_int, funcname: *const std::ffi::c_char);
        fn errmsg_internal(fmt: *const std::ffi::c_char, ...) -> std::ffi::c_int;
        fn errhidestmt(hide: bool) -> std::ffi::c_int;
        fn errhidecontext(hide: bool) -> std::ffi::c_int;
    }
    /// HOLD_INTERRUPTS() for its life; RESUME_INTERRUPTS() when dropped, also when a panic
    /// unwinds through it.
    struct HeldInterrupts;
    impl HeldInterrupts {
        fn hold() -> HeldInterrupts {
            // SAFETY: the backend's (or worker's) own counter, on its main thread, as the
            // HOLD_INTERRUPTS() macro increments it.
            unsafe { pgrx::pg_sys::InterruptHoldoffCount += 1 };
            HeldInterrupts
        }
    }
    impl Drop for HeldInterrupts {
        fn drop(&mut self) {
            // SAFETY: as in `hold`; RESUME_INTERRUPTS() decrements it (never below zero here:
            // error recovery may have reset it to zero before this drop runs).
            unsafe {
                let count = pgrx::pg_sys::InterruptHoldoffCount;
                pgrx::pg_sys::InterruptHoldoffCount = count.saturating_sub(1);
            }
        }
    }
    let Ok(text) = std::ffi::CString::new(message.replace('\0', "")) else {
        return;
    };
    let _held = HeldInterrupts::hold();
    // The sequence PostgreSQL's ereport() expands to, at LOG_SERVER_ONLY (below ERROR, so
    // errfinish returns; with interrupts held it does not process a cancel); errstart's false
    // means the line is not wanted and nothing else may be called.
    // SAFETY: as ereport() does; the format is a constant "%s" whose one argument is
    // NUL-terminated and outlives the call; an error raised inside reaches the guard as a panic.
    unsafe {
        pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| {
            if errstart(pgrx::pg_sys::LOG_SERVER_ONLY as std::ffi::c_int, std::ptr::null()) {
                errmsg_internal(c"%s".as_ptr(), text.as_ptr());
                errhidestmt(true);
                errhidecontext(true);
                errfinish(
                    c"src/stats/log.rs".as_ptr(),
                    line!() as std::ffi::c_int,
                    c"pg_jwt".as_ptr(),
                );
            }
        });
    }
}

/// Reports the lines suppressed in an earlier second, if any, and starts counting this one.
/// Called by every refusal and by the key fetcher's loop.
pub fn roll_second() {
    let Some(w) = words() else { return };
    let (Some(second), Some(lines), Some(suppressed)) = (w.get(LOG_SECOND), w.get(LOG_LINES), w.get(LOG_SUPPRESSED))
    else {
        return;
    };
    let now = u64::try_from(clock::now_unix()).unwrap_or(0);
    let seen = second.load(Ordering::Acquire);
    if seen != now
        && second
            .compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        lines.store(0, Ordering::Release);
        let n = suppressed.swap(0, Ordering::AcqRel);
        if n > 0 {
            emit(&format!("pg_jwt: {n} refused-token lines suppressed"));
        }
    }
}

/// A refused token: counts it, and writes its line if the log wants it and the rate allows.
/// `token` is the raw token (only its header and claims are read, never written out); `signed`:
/// it got past its signature (its claims are the issuer's when the reason is about them).
pub fn refused(provider: &str, outcome: usize, token: Option<&[u8]>, signed: bool) {
    super::count(super::row_of(provider), outcome);
    if !gucs::log_refusals() {
        return;
    }
    roll_second();
    let Some(w) = words() else { return };
    let (Some(lines), Some(suppressed)) = (w.get(LOG_LINES), w.get(LOG_SUPPRESSED)) else {
        return;
    };
    let limit = u64::try_from(gucs::log_refusals_per_second()).unwrap_or(0);
    if lines.fetch_add(1, Ordering::AcqRel) >= limit {
        suppressed.fetch_add(1, Ordering::AcqRel);
        return;
    }
    let (header, claims) = token
        .and_then(|t| pg_jwt_core::token::decode_unverified(t, gucs::max_token_bytes()).ok())
        .map_or((None, None), |(h, c)| (Some(h), Some(c)));
    let reason = OUTCOMES.get(outcome).copied().unwrap_or("refused");
    let kid = field(header.as_ref().and_then(|h| h.get("kid")));
    let iss = field(claims.as_ref().and_then(|c| c.get("iss")));
    let tail = if signed && after_signature(outcome) {
        format!(
            "sub={} jti={}",
            field(claims.as_ref().and_then(|c| c.get("sub"))),
            field(claims.as_ref().and_then(|c| c.get("jti")))
        )
    } else {
        "claims=unverified".to_owned()
    };
    emit(&format!(
        "pg_jwt: refused token: reason=\"{reason}\" provider={provider} kid={kid} iss={iss} {tail}"
    ));
}

/// The backend starts serving another token's claims (`session::log_identity`).
pub fn verified(provider: &str, claims: &pg_jwt_core::claims::Body) {
    if !gucs::log_verified_first() {
        return;
    }
    let Ok(claims) = claims.tree() else { return };
    let session_claim = gucs::session_claim();
    emit(&format!(
        "pg_jwt: verified token: provider={provider} sub={} jti={} sid={} exp={}",
        field(claims.get("sub")),
        field(claims.get("jti")),
        field(claims.get(&session_claim)),
        number(claims.get("exp"))
    ));
}
