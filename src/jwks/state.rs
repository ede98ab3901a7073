//! State shared between the key-fetching worker (`worker`) and every backend, in shared memory
//! (only when the library is preloaded: `gucs::preloaded`).
//!
//! - `FETCHED`: the last good key set fetched from `pg_jwt.jwks_uri` (bounded: at most
//!   `http::MAX_BODY_BYTES` of JSON), where it came from, and the fetch history, under an
//!   LWLock. Only the worker writes it.
//! - (The shared generation the worker bumps when the key set in force changes is in
//!   `generations`, with every other invalidation counter.)
//! - `REQUEST`, `LAST_REQUEST`: a backend's request for a refetch (unknown `kid`, or
//!   `jwt_jwks_refresh()`), rate limited across all backends.
//! - `REQUEST_TICKET`, `ANSWERED_TICKET`: each request takes a ticket; the worker, at the start
//!   of a turn, notes the last ticket issued, and when the turn is over marks every ticket up to
//!   it answered. A backend waits for its own ticket, never for a fetch that started before it
//!   asked.
//! - `WORKER_PROC`: the worker's PGPROC, whose latch a backend sets to wake it.

use crate::{clock, gucs};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic, PgLwLock};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

pub const MAX_JWKS: usize = crate::jwks::http::MAX_BODY_BYTES;
const MAX_URI: usize = 1024;
const MAX_ERROR: usize = 512;

/// No request pending.
pub const REQUEST_NONE: u64 = 0;
/// A backend met an unknown `kid`: fetch unless the last attempt was under `jwks_min_refresh` ago.
pub const REQUEST_UNKNOWN_KID: u64 = 1;
/// `jwt_jwks_refresh()`: fetch now.
pub const REQUEST_FORCED: u64 = 2;

/// The fetched key set and its history. Plain bytes and integers: all-zero is the empty state.
#[derive(Copy, Clone)]
#[repr(C)]
pub struct FetchState {
    /// Length of the key set in force in `jwks`; 0: none.
    pub jwks_len: u32,
    pub jwks: [u8; MAX_JWKS],
    /// The `pg_jwt.jwks_uri` value the worker works for.
    pub uri_len: u32,
    pub uri: [u8; MAX_URI],
    /// For `discover`: the `pg_jwt.issuer` whose discovery document named the key set's URL
    /// (empty otherwise). With `uri` it is the source's identity: keys discovered for one
    /// issuer are never in force for another.
    pub issuer_len: u32,
    pub issuer: [u8; MAX_URI],
    /// The URL the key set came from (differs from `uri` after discovery).
    pub from_len: u32,
    pub from: [u8; MAX_URI],
    /// The last error, if the last attempt failed.
    pub error_len: u32,
    pub error: [u8; MAX_ERROR],
    /// Unix seconds; 0: never.
    pub last_success: i64,
    pub last_attempt: i64,
    pub next_refresh: i64,
    pub fetches: u64,
    pub failures: u64,
}

// SAFETY: FetchState is plain old data (integers and byte arrays): valid at any bit pattern and
// without pointers, so it means the same in every process that maps the segment.
unsafe impl PGRXSharedMemory for FetchState {}

impl Default for FetchState {
    fn default() -> Self {
        // SAFETY: all-zero is a valid FetchState (see the SAFETY note above): the empty state.
        unsafe { std::mem::zeroed() }
    }
}

pub fn set_bytes(dst: &mut [u8], len: &mut u32, src: &[u8]) {
    let n = src.len().min(dst.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
    *len = n as u32;
}

/// `set_bytes` for text, cut to the buffer on a character boundary.
pub fn set_text(dst: &mut [u8], len: &mut u32, text: &str) {
    let mut end = text.len().min(dst.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    set_bytes(dst, len, text.get(..end).unwrap_or_default().as_bytes());
}

pub fn get_str(src: &[u8], len: u32) -> String {
    String::from_utf8_lossy(src.get(..len as usize).unwrap_or_default()).into_owned()
}

impl FetchState {
    pub fn uri(&self) -> String {
        get_str(&self.uri, self.uri_len)
    }
    pub fn issuer(&self) -> String {
        get_str(&self.issuer, self.issuer_len)
    }
    /// Whether the state is for this source (see `source_issuer`).
    pub fn is_for(&self, uri: &str, issuer: &str) -> bool {
        self.uri().as_bytes() == uri.as_bytes() && self.issuer().as_bytes() == issuer.as_bytes()
    }
    pub fn set_issuer(&mut self, issuer: &str) {
        set_bytes(&mut self.issuer, &mut self.issuer_len, issuer.as_bytes());
    }
    pub fn from(&self) -> String {
        get_str(&self.from, self.from_len)
    }
    pub fn error(&self) -> String {
        get_str(&self.error, self.error_len)
    }
    pub fn jwks(&self) -> Option<&[u8]> {
        (self.jwks_len > 0).then(|| self.jwks.get(..self.jwks_len as usize).unwrap_or_default())
    }
    pub fn set_uri(&mut self, uri: &str) {
        set_bytes(&mut self.uri, &mut self.uri_len, uri.as_bytes());
    }
    pub fn set_from(&mut self, from: &str) {
        set_bytes(&mut self.from, &mut self.from_len, from.as_bytes());
    }
    /// Records an error, cut to the buffer on a character boundary.
    pub fn set_error(&mut self, error: &str) {
        set_text(&mut self.error, &mut self.error_len, error);
    }
    /// Installs a key set (at most `MAX_JWKS` bytes: the fetcher's size cap is the same).
    pub fn set_jwks(&mut self, jwks: &[u8]) {
        set_bytes(&mut self.jwks, &mut self.jwks_len, jwks);
    }
    pub fn clear_jwks(&mut self) {
        self.jwks_len = 0;
    }
}

// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static FETCHED: PgLwLock<FetchState> = unsafe { PgLwLock::new(c"pg_jwt fetched key set") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static REQUEST_TICKET: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt fetch request ticket") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static ANSWERED_TICKET: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt fetch answered ticket") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static REQUEST: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt fetch request") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static LAST_REQUEST: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"pg_jwt last fetch request") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static WORKER_PROC: PgAtomic<AtomicUsize> = unsafe { PgAtomic::new(c"pg_jwt worker proc") };

/// The issuer part of a key source's identity: `pg_jwt.issuer` when the keys are discovered
/// from it (`jwks_uri = 'discover'`), empty for a fixed URL (whose keys do not depend on it).
pub fn source_issuer(uri: &str, issuer: Option<&str>) -> String {
    if uri == "discover" {
        issuer.unwrap_or_default().to_owned()
    } else {
        String::new()
    }
}

/// Reserves and initializes the shared state. Call from `_PG_init`, only when preloaded.
pub fn init() {
    pg_shmem_init!(FETCHED);
    pg_shmem_init!(REQUEST_TICKET);
    pg_shmem_init!(ANSWERED_TICKET);
    pg_shmem_init!(REQUEST);
    pg_shmem_init!(LAST_REQUEST);
    pg_shmem_init!(WORKER_PROC);
}

/// The last ticket answered: every request up to it has seen a complete worker turn.
pub fn answered_ticket() -> u64 {
    ANSWERED_TICKET.get().load(Ordering::Acquire)
}

/// Runs `f` on the fetch state under the shared lock, without copying the (256 KiB) buffer.
/// `f` must not raise an error or log: it runs while the lock is held.
pub fn read<R>(f: impl FnOnce(&FetchState) -> R) -> R {
    let guard = FETCHED.share();
    f(&guard)
}

/// Runs `f` on the fetch state under the exclusive lock (the worker only).
pub fn update<R>(f: impl FnOnce(&mut FetchState) -> R) -> R {
    let mut guard = FETCHED.exclusive();
    f(&mut guard)
}

/// The worker, at the start of a turn: the last ticket issued (answered when the turn is over).
pub fn last_ticket() -> u64 {
    REQUEST_TICKET.get().load(Ordering::Acquire)
}

/// The worker, at the end of a turn: every ticket up to `ticket` is answered.
pub fn answer(ticket: u64) {
    ANSWERED_TICKET.get().fetch_max(ticket, Ordering::AcqRel);
}

/// Publishes the worker's PGPROC (the worker calls it with `MyProc` at start, null at exit).
pub fn set_worker_proc(proc_: *mut pg_sys::PGPROC) {
    WORKER_PROC.get().store(proc_ as usize, Ordering::Release);
}

/// The pending request, cleared (the worker only).
pub fn take_request() -> u64 {
    REQUEST.get().swap(REQUEST_NONE, Ordering::AcqRel)
}

/// Asks the worker for a refetch and wakes it; the request's ticket (see `answered_ticket`).
/// An unknown-`kid` request is rate limited across all backends to one per `min_interval`
/// seconds: `None` (nothing asked) inside it.
pub fn request_refetch(kind: u64, now: i64, min_interval: i64) -> Option<u64> {
    if kind == REQUEST_UNKNOWN_KID {
        let last = LAST_REQUEST.get().load(Ordering::Acquire);
        // A request "in the future" was made before the clock moved back: not a recent one.
        if (0..min_interval).contains(&(now - last)) {
            return None;
        }
        if LAST_REQUEST
            .get()
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another backend asked at the same moment: its fetch serves this one too.
            return None;
        }
    }
    REQUEST.get().fetch_max(kind, Ordering::AcqRel);
    let ticket = REQUEST_TICKET.get().fetch_add(1, Ordering::AcqRel) + 1;
    wake_worker();
    Some(ticket)
}

/// Sets the key fetcher's latch (it also polls every 100 ms).
pub fn wake_worker() {
    let proc_ = WORKER_PROC.get().load(Ordering::Acquire) as *mut pg_sys::PGPROC;
    if !proc_.is_null() {
        // SAFETY: PGPROCs live in shared memory, mapped at the same address in every process of
        // the cluster, for the server's whole life; setting the latch of a slot another process
        // took over since only wakes that process once. The worker also polls every 100 ms.
        unsafe {
            pg_sys::SetLatch(std::ptr::addr_of_mut!((*proc_).procLatch));
        }
    }
}

/// After an unknown `kid`: asks the key fetcher to refetch and waits up to
/// `pg_jwt.jwks_fetch_wait` for it. True when the key set changed meanwhile (worth a retry).
/// False at once when fetching is off, waiting is off, or another request was made within
/// `pg_jwt.jwks_min_refresh` (so a flood of unknown kids costs at most one fetch per interval).
pub fn refetched_for_unknown_key() -> bool {
    let wait = gucs::jwks_fetch_wait_ms();
    if wait <= 0 || gucs::jwks_uri().is_none() {
        return false;
    }
    let keys = crate::generations::keys_generation();
    let Some(ticket) = request_refetch(REQUEST_UNKNOWN_KID, clock::now_unix(), gucs::jwks_min_refresh()) else {
        return false;
    };
    wait_for_answer(ticket, wait);
    crate::generations::keys_generation() != keys
}

/// Waits until the worker has answered request `ticket`, at most `wait_ms`; interruptible
/// (statement timeout, cancel).
pub fn wait_for_answer(ticket: u64, wait_ms: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
    while answered_ticket() < ticket && std::time::Instant::now() < deadline {
        sleep_10ms();
    }
}

/// Sleeps 10 ms on this backend's latch, then honours interrupts (statement timeout, cancel).
pub fn sleep_10ms() {
    // SAFETY: MyLatch is this backend's own latch; waiting on it with a timeout is how a
    // backend sleeps interruptibly.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            10,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    pgrx::check_for_interrupts!();
}
