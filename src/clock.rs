//! The wall clock used for `exp`/`nbf`/`iat` checks.
//!
//! Wall-clock time, not the transaction start: a token that expires during a long
//! transaction must stop working (checklist F12).

use std::time::{SystemTime, UNIX_EPOCH};

/// The PostgreSQL epoch (2000-01-01 00:00 UTC) in Unix seconds: a timestamptz is microseconds
/// since it.
pub const POSTGRES_EPOCH_UNIX: i64 = 946_684_800;

/// Seconds since the Unix epoch (0 for a clock before it). Read with `clock_gettime`
/// directly: a verification reads the clock up to three times, and `SystemTime`'s conversion
/// and checks cost as much as the read.
#[inline]
pub fn now_unix() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    if rc == 0 {
        ts.tv_sec.max(0)
    } else {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// Seconds since the Unix epoch from the coarse clock (a few nanoseconds, millisecond
/// resolution): used on the per-row path, where a second-resolution check is all that is needed.
#[inline]
pub fn now_unix_coarse() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc == 0 {
        ts.tv_sec.max(0)
    } else {
        now_unix()
    }
}
