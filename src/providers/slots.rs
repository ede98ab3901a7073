//! The fetched key sets of listed providers, in shared memory: `pg_jwt.max_providers` slots of
//! at most `pg_jwt.provider_jwks_max_bytes` each, fixed at server start. The key fetcher assigns
//! a slot to each listed provider that fetches (`jwks_uri`), in list order, and keeps a slot
//! while its provider's source is unchanged; a provider that finds no free slot, or whose set is
//! larger than a slot, is reported in `jwt_jwks_status()` and fails closed. No provider ever
//! evicts another.
//!
//! Layout of the region: `n` [`Signals`] (atomics a backend writes without the lock: refetch
//! requests, and the counters it waits on), then `n` [`Head`]s (what the fetcher publishes, under
//! the lock `pg_jwt provider key sets`), then `n` key-set buffers of `cap` bytes. Only the key
//! fetcher writes heads and buffers (exclusive lock); backends read them under the shared lock,
//! only when a provider's keys are first needed or its fingerprint changed.

use crate::jwks::state::{get_str, set_bytes, set_text};
use crate::shmem::Region;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic, PgLwLock};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const MAX_NAME: usize = 64;
const MAX_URI: usize = 1024;
const MAX_ERROR: usize = 512;

/// A backend's wish, in `Signals::request`.
pub const REQUEST_UNKNOWN_KID: u64 = 1;
pub const REQUEST_FORCED: u64 = 2;

/// Per slot, written by backends without the lock.
#[repr(C)]
pub struct Signals {
    /// 0, `REQUEST_UNKNOWN_KID` or `REQUEST_FORCED` (the highest pending).
    pub request: AtomicU64,
    /// Unix seconds of the last unknown-`kid` request (rate limit across backends).
    pub last_request: AtomicI64,
    /// Fetches started (and requests declined), then finished: a backend that asked when
    /// `started` was `s` has its answer once `finished > s`.
    pub started: AtomicU64,
    pub finished: AtomicU64,
}

/// Per slot, written by the key fetcher under the exclusive lock. Plain data: all-zero is an
/// unused slot.
#[derive(Copy, Clone)]
#[repr(C)]
pub struct Head {
    /// 1: assigned to the provider named here.
    pub used: u32,
    /// Length of the key set in force in the slot's buffer; 0: none.
    pub jwks_len: u32,
    name_len: u32,
    name: [u8; MAX_NAME],
    /// The provider's `jwks_uri` (`discover` included) and, for `discover`, its issuer: the
    /// source's identity (as for the implicit provider, `jwks::state::source_issuer`).
    uri_len: u32,
    uri: [u8; MAX_URI],
    issuer_len: u32,
    issuer: [u8; MAX_URI],
    from_len: u32,
    from: [u8; MAX_URI],
    error_len: u32,
    error: [u8; MAX_ERROR],
    pub last_success: i64,
    pub last_attempt: i64,
    pub next_refresh: i64,
    pub fetches: u64,
    pub failures: u64,
    /// SHA-256 of the key set's text (`token::key_set_fingerprint`): backends re-import only
    /// when it changed.
    pub fingerprint: [u8; 32],
}

impl Head {
    pub fn name(&self) -> String {
        get_str(&self.name, self.name_len)
    }
    pub fn from(&self) -> String {
        get_str(&self.from, self.from_len)
    }
    pub fn error(&self) -> String {
        get_str(&self.error, self.error_len)
    }
    /// Whether the slot is assigned to provider `name` with this source (compared in place, no
    /// copy).
    pub fn is(&self, name: &str, uri: &str, issuer: &str) -> bool {
        fn eq(buf: &[u8], len: u32, s: &str) -> bool {
            buf.get(..len as usize) == Some(s.as_bytes())
        }
        self.used == 1
            && eq(&self.name, self.name_len, name)
            && eq(&self.uri, self.uri_len, uri)
            && eq(&self.issuer, self.issuer_len, issuer)
    }
    pub fn assign(&mut self, name: &str, uri: &str, issuer: &str) {
        *self = Head::default();
        self.used = 1;
        set_bytes(&mut self.name, &mut self.name_len, name.as_bytes());
        set_bytes(&mut self.uri, &mut self.uri_len, uri.as_bytes());
        set_bytes(&mut self.issuer, &mut self.issuer_len, issuer.as_bytes());
    }
    pub fn set_from(&mut self, from: &str) {
        set_bytes(&mut self.from, &mut self.from_len, from.as_bytes());
    }
    pub fn set_error(&mut self, error: &str) {
        set_text(&mut self.error, &mut self.error_len, error);
    }
}

impl Default for Head {
    fn default() -> Self {
        // SAFETY: Head is integers and byte arrays: all-zero is valid (an unused slot).
        unsafe { std::mem::zeroed() }
    }
}

/// The lock's own value: the number of slots (for a sanity check).
#[derive(Copy, Clone, Default)]
#[repr(C)]
pub struct Lock {
    pub slots: u64,
}

// SAFETY: plain old data, valid at any bit pattern, without pointers.
unsafe impl PGRXSharedMemory for Lock {}

// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static LOCK: PgLwLock<Lock> = unsafe { PgLwLock::new(c"pg_jwt provider key sets") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static REQUESTED: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt provider requests") };

fn slots() -> usize {
    crate::gucs::max_providers()
}

/// The buffer size: the setting, rounded up to 8 bytes.
pub fn capacity() -> usize {
    crate::gucs::provider_jwks_max_bytes().div_ceil(8) * 8
}

fn region_bytes() -> usize {
    slots() * (std::mem::size_of::<Signals>() + std::mem::size_of::<Head>() + capacity())
}

pub static REGION: Region = Region::new(c"pg_jwt provider key set slots", region_bytes);

/// Reserves the lock. Call from `_PG_init`, only when preloaded.
pub fn init() {
    pg_shmem_init!(LOCK);
    pg_shmem_init!(REQUESTED);
}

/// The key fetcher: whether any backend asked for a provider's refetch since the last call
/// (then it looks at every slot's request).
pub fn take_requests() -> bool {
    REQUESTED.get().swap(0, Ordering::AcqRel) != 0
}

struct Parts {
    signals: *mut Signals,
    heads: *mut Head,
    data: *mut u8,
    n: usize,
    cap: usize,
}

fn parts() -> Option<Parts> {
    let (p, len) = REGION.get()?;
    let n = slots();
    let cap = capacity();
    if n == 0 || len < region_bytes() {
        return None;
    }
    // SAFETY: the region is `region_bytes()` long (checked): n Signals, then n Heads, then n
    // buffers of `cap` bytes; each part starts at a multiple of 8 (Signals and Head sizes are).
    unsafe {
        let signals = p.cast::<Signals>();
        let heads = p.add(n * std::mem::size_of::<Signals>()).cast::<Head>();
        let data = p.add(n * (std::mem::size_of::<Signals>() + std::mem::size_of::<Head>()));
        Some(Parts {
            signals,
            heads,
            data,
            n,
            cap,
        })
    }
}

/// The number of slots (0 when the region does not exist).
pub fn count() -> usize {
    parts().map_or(0, |p| p.n)
}

/// Slot `i`'s signals (no lock: atomics only).
pub fn signals(i: usize) -> Option<&'static Signals> {
    let p = parts()?;
    if i >= p.n {
        return None;
    }
    // SAFETY: i < n; the Signals live as long as the process's mapping; all-zero is valid and
    // only atomics are accessed.
    Some(unsafe { &*p.signals.add(i) })
}

/// Read access to every slot, under the shared lock.
pub struct Reader<'a> {
    parts: Parts,
    _guard: pgrx::lwlock::PgLwLockShareGuard<'a, Lock>,
}

impl Reader<'_> {
    pub fn len(&self) -> usize {
        self.parts.n
    }
    pub fn head(&self, i: usize) -> Option<&Head> {
        // SAFETY: i < n; heads are written only under the exclusive lock, and this reader holds
        // the shared one.
        (i < self.parts.n).then(|| unsafe { &*self.parts.heads.add(i) })
    }
    /// The key set in force in slot `i`, if any.
    pub fn jwks(&self, i: usize) -> Option<&[u8]> {
        let head = self.head(i)?;
        let len = (head.jwks_len as usize).min(self.parts.cap);
        // SAFETY: the buffer of slot i is `cap` bytes at data + i*cap, written only under the
        // exclusive lock.
        (len > 0).then(|| unsafe { std::slice::from_raw_parts(self.parts.data.add(i * self.parts.cap), len) })
    }
    /// The slot of the provider `name` with this source, if it has one.
    pub fn find(&self, name: &str, uri: &str, issuer: &str) -> Option<usize> {
        (0..self.len()).find(|&i| self.head(i).is_some_and(|h| h.is(name, uri, issuer)))
    }
}

/// Write access to every slot (the key fetcher only), under the exclusive lock.
pub struct Writer<'a> {
    parts: Parts,
    _guard: pgrx::lwlock::PgLwLockExclusiveGuard<'a, Lock>,
}

impl Writer<'_> {
    pub fn len(&self) -> usize {
        self.parts.n
    }
    pub fn head(&mut self, i: usize) -> Option<&mut Head> {
        // SAFETY: i < n; this writer holds the exclusive lock.
        (i < self.parts.n).then(|| unsafe { &mut *self.parts.heads.add(i) })
    }
    /// Installs a key set in slot `i`; false (nothing changed) when it does not fit.
    pub fn set_jwks(&mut self, i: usize, jwks: &[u8], fingerprint: [u8; 32]) -> bool {
        if i >= self.parts.n || jwks.len() > self.parts.cap {
            return false;
        }
        // SAFETY: i < n and jwks fits the slot's `cap`-byte buffer; exclusive lock held.
        unsafe {
            std::ptr::copy_nonoverlapping(jwks.as_ptr(), self.parts.data.add(i * self.parts.cap), jwks.len());
        }
        if let Some(h) = self.head(i) {
            h.jwks_len = jwks.len() as u32;
            h.fingerprint = fingerprint;
        }
        true
    }
    pub fn clear_jwks(&mut self, i: usize) {
        if let Some(h) = self.head(i) {
            h.jwks_len = 0;
            h.fingerprint = [0; 32];
        }
    }
}

/// Runs `f` with read access under the shared lock; `None` without slots. `f` must not raise an
/// error or log.
pub fn read<R>(f: impl FnOnce(&Reader<'_>) -> R) -> Option<R> {
    let parts = parts()?;
    let reader = Reader {
        parts,
        _guard: LOCK.share(),
    };
    Some(f(&reader))
}

/// Runs `f` with write access under the exclusive lock (the key fetcher only).
pub fn write<R>(f: impl FnOnce(&mut Writer<'_>) -> R) -> Option<R> {
    let parts = parts()?;
    let mut writer = Writer {
        parts,
        _guard: LOCK.exclusive(),
    };
    Some(f(&mut writer))
}

/// A backend's request for slot `i` (an unknown `kid`: at most one per `min_interval` seconds
/// across backends; forced: always), waking the fetcher. The value of `started` to wait past,
/// or `None` when nothing was asked.
pub fn request(i: usize, kind: u64, now: i64, min_interval: i64) -> Option<u64> {
    let s = signals(i)?;
    if kind == REQUEST_UNKNOWN_KID {
        let last = s.last_request.load(Ordering::Acquire);
        // A request "in the future" was made before the clock moved back: not a recent one.
        if (0..min_interval).contains(&(now - last))
            || s.last_request
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return None;
        }
    }
    let started = s.started.load(Ordering::Acquire);
    s.request.fetch_max(kind, Ordering::AcqRel);
    REQUESTED.get().store(1, Ordering::Release);
    crate::jwks::state::wake_worker();
    Some(started)
}

/// No fetch of slot `i` is outstanding any more (its provider was dropped with a fetch in
/// flight, or the slot is given to another): every request made so far counts as answered, so
/// that the next provider's waits end at its own fetches, not one fetch later.
pub fn settle(i: usize) {
    if let Some(s) = signals(i) {
        s.finished
            .fetch_max(s.started.load(Ordering::Acquire), Ordering::AcqRel);
    }
}

/// Waits (interruptibly, at most `wait_ms`) until a fetch of slot `i` that started after
/// `started` was read has finished.
pub fn wait(i: usize, started: u64, wait_ms: i64) {
    let Some(s) = signals(i) else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
    while s.finished.load(Ordering::Acquire) <= started && std::time::Instant::now() < deadline {
        crate::jwks::state::sleep_10ms();
    }
}
