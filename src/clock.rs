//! The wall clock used for `exp`/`nbf`/`iat` checks.
//!
//! Wall-clock time, not the transaction start: a token that expires during a long
//! transaction must stop working (checklist F12).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}
