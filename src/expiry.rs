//! The expiry timer of the per-row path: instead of reading the clock on every row, a backend
//! arms one PostgreSQL timeout (`enable_timeout_at`) for shortly before the current token stops
//! being valid. When it fires, its handler bumps the local generation
//! (`generations::bump_local_generation`), so every call site of an accessor takes the checked slow
//! path at its next call, which reads the clock. In the last `MARGIN` seconds of a token's
//! validity (and when no timer can be had) the call sites check the clock on every row, as
//! before: a token that expires during a statement stops working at once.
//!
//! `RegisterTimeout` and friends (utils/timeout.h) are not in pgrx's bindings: declared here.

use std::cell::Cell;
use std::ffi::c_int;

/// `USER_TIMEOUT` in `enum TimeoutId` (PostgreSQL 17 added TRANSACTION_TIMEOUT before it).
#[cfg(any(feature = "pg15", feature = "pg16"))]
const USER_TIMEOUT: c_int = 12;
#[cfg(any(feature = "pg17", feature = "pg18"))]
const USER_TIMEOUT: c_int = 13;

/// Seconds before the end of the validity window at which the timer fires; from then on the
/// clock is read per row.
const MARGIN: f64 = 1.0;

// SAFETY (of the declarations): the signatures of utils/timeout.h (TimeoutId is a C enum, an
// int; TimestampTz an int64; the handler a plain void function).
extern "C-unwind" {
    fn RegisterTimeout(id: c_int, handler: Option<unsafe extern "C" fn()>) -> c_int;
    fn enable_timeout_at(id: c_int, fin_time: i64);
    fn get_timeout_active(id: c_int) -> bool;
}

thread_local! {
    /// Our timeout's id, once registered in this backend.
    static ID: Cell<Option<c_int>> = const { Cell::new(None) };
    /// The Unix time the timer is armed for.
    static ARMED_AT: Cell<f64> = const { Cell::new(f64::NAN) };
}

/// The timeout handler: runs in a signal handler, so it only bumps an atomic counter.
// SAFETY (for callers): PostgreSQL's timeout signal handler calls it; it only does an atomic add.
unsafe extern "C" fn on_timeout() {
    crate::generations::bump_local_generation();
}

/// Any abort: the error that caused it may have been recovered from at the top level, which
/// disables every timeout (`disable_all_timeouts`), ours included. Call sites that outlive it
/// (an open cursor's, after `ROLLBACK TO SAVEPOINT`) would otherwise skip the clock with no
/// timer to stop them at the token's expiry: the local generation moves, so each one takes the
/// checked path at its next call, which arms the timer again (or reads the clock per row).
// SAFETY (for callers): registered with RegisterXactCallback; PostgreSQL calls it on this
// backend's thread; it only does an atomic add.
unsafe extern "C-unwind" fn on_transaction_event(event: pgrx::pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pgrx::pg_sys::XactEvent::*;
    if event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT {
        crate::generations::bump_local_generation();
    }
}

/// A subtransaction's abort: see `on_transaction_event`.
// SAFETY (for callers): registered with RegisterSubXactCallback; as above.
unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pgrx::pg_sys::SubXactEvent::Type,
    _sub: pgrx::pg_sys::SubTransactionId,
    _parent: pgrx::pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pgrx::pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        crate::generations::bump_local_generation();
    }
}

/// Makes sure the timer fires before `until` (the end of the current token's validity window,
/// Unix seconds) leaves the last `MARGIN` seconds. True when the call sites may skip the clock
/// (a timer covers them, or the window has no end); false when they must read it per row.
///
/// Slow path only (it may call into PostgreSQL).
pub fn arm(until: f64, now: f64) -> bool {
    if until == f64::INFINITY {
        return true;
    }
    let fire_at = until - MARGIN;
    if !(fire_at > now) {
        return false;
    }
    let id = match ID.with(Cell::get) {
        Some(id) => id,
        None => {
            // SAFETY: registering a timeout handler in a backend after InitPostgres (we are in a
            // SQL function); the handler is async-signal-safe (see on_timeout).
            let id = unsafe { RegisterTimeout(USER_TIMEOUT, Some(on_timeout)) };
            ID.with(|c| c.set(Some(id)));
            // SAFETY: registered once per backend (ID is set just above), from a SQL function's
            // call; the callbacks only bump an atomic counter.
            unsafe {
                pgrx::pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
                pgrx::pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
            }
            id
        }
    };
    // Re-arm unless a deadline at or before this one is pending: a timer that fires early only
    // sends every call site through the checked path once, which arms it again for the token
    // then current. Moving a pending deadline costs a `setitimer` call whenever the new one is
    // the earlier, and tokens of a pool's users expire at different times: keeping the earlier
    // deadline makes that once per deadline reached instead of about every other token change.
    // Error recovery disables every timeout (disable_all_timeouts), hence the check that it is
    // still active.
    // SAFETY: `id` was returned by RegisterTimeout in this process.
    let active = unsafe { get_timeout_active(id) };
    if !active || !(ARMED_AT.with(Cell::get) <= fire_at) {
        let at = ((fire_at - crate::clock::POSTGRES_EPOCH_UNIX as f64) * 1_000_000.0) as i64;
        // SAFETY: as above; enable_timeout_at replaces any earlier deadline of this id.
        unsafe { enable_timeout_at(id, at) };
        ARMED_AT.with(|c| c.set(fire_at));
    }
    true
}
