//! Every invalidation counter, in one place: they are what makes the per-row path cheap. A cached
//! result is reused while the counters it was made under are unchanged, so each counter names
//! exactly what its bump invalidates.
//!
//! | counter | where | bumped by | voids |
//! |---|---|---|---|
//! | token generation | this backend | the assign hook of `pg_jwt.token` (SET, SET LOCAL, RESET, restore at COMMIT/ROLLBACK/ROLLBACK TO SAVEPOINT, parallel workers) | the session's current claims |
//! | config generation | this backend | the assign hooks of every validation setting (a reload assigns them all, changed or not) | the session's key set and settings; its verification cache only when a value a verification reads changed (`session`) |
//! | local generation | this backend | both of the above, the expiry timer (`expiry`), and a rolled-back change of the revocation list (`revocation`) | every call site's cached result (`accessors`) |
//! | shared generation | shared memory | a new fetched key set (`key_set_changed`), a committed change of the revocation list, standby replay progress | what the per-row path compares: every backend's current claims and call sites are checked again at their next access |
//! | keys generation | shared memory | `key_set_changed` only | every backend's key sets and cached verifications (signatures and claims) |
//! | shared cache epoch | shared memory | `key_set_changed` only (a reload does not: each hit checks the settings again) | the shared verification cache's entries |
//!
//! So a revocation (or standby replay) costs each backend one revocation check per token it
//! meets again (the filter, at most a few B-tree probes), never a re-import of its key sets or a
//! verification: its cached verifications stay, each re-checked for revocation under the new
//! shared generation (`session`). A key-set change voids what depends on keys.
//!
//! The per-row path compares the local generation (a process-local atomic) and the shared
//! generation (one atomic load of shared memory through a process-local pointer); nothing else.
//! Assign hooks run on every change of value, so generations are compared instead of strings:
//! a freed token string may be reallocated at the same address.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

static TOKEN_GENERATION: AtomicU64 = AtomicU64::new(1);
static CONFIG_GENERATION: AtomicU64 = AtomicU64::new(1);
/// Bumped with either of the two above and by the expiry timer: what the per-row path
/// compares, one load for all three.
static LOCAL_GENERATION: AtomicU64 = AtomicU64::new(1);
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static SHARED_GENERATION: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt shared generation") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static KEYS_GENERATION: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt keys generation") };
// SAFETY: a name unique to pg_jwt; initialized once by `init` under preloading.
static SHARED_CACHE_EPOCH: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_jwt shared cache epoch") };
/// Where `SHARED_GENERATION` is mapped, once `shared_generation` ran in this process (null
/// before).
static SHARED_PTR: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

/// Whether `init` ran (in `_PG_init` under shared_preload_libraries; forked backends and
/// parallel workers inherit it from the postmaster): the shared generation exists.
static SHARED_EXISTS: AtomicBool = AtomicBool::new(false);

/// Reserves the shared generation. Call from `_PG_init`, only when preloaded.
pub fn init() {
    pg_shmem_init!(SHARED_GENERATION);
    pg_shmem_init!(KEYS_GENERATION);
    pg_shmem_init!(SHARED_CACHE_EPOCH);
    SHARED_EXISTS.store(true, Ordering::Relaxed);
}

/// Changes whenever `pg_jwt.token` is assigned a value.
#[inline]
pub fn token_generation() -> u64 {
    TOKEN_GENERATION.load(Ordering::Relaxed)
}

/// Changes whenever the key set or a validation setting is assigned a value.
#[inline]
pub fn config_generation() -> u64 {
    CONFIG_GENERATION.load(Ordering::Relaxed)
}

/// Changes whenever the token or the configuration changes, when the expiry timer fires, and
/// when a change of the revocation list is rolled back.
#[inline]
pub fn local_generation() -> u64 {
    LOCAL_GENERATION.load(Ordering::Relaxed)
}

/// The assign hook of `pg_jwt.token`.
pub fn token_assigned() {
    TOKEN_GENERATION.fetch_add(1, Ordering::Relaxed);
    LOCAL_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The assign hooks of the validation settings.
pub fn config_assigned() {
    CONFIG_GENERATION.fetch_add(1, Ordering::Relaxed);
    LOCAL_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The expiry timer's handler and revocation rollbacks: async-signal-safe (one atomic add).
#[inline]
pub fn bump_local_generation() {
    LOCAL_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The shared generation; 0 when the library is not preloaded (then there is no shared memory).
/// One atomic load: cheap enough for the per-row path.
#[inline]
pub fn shared_generation() -> u64 {
    if SHARED_EXISTS.load(Ordering::Relaxed) {
        let g = SHARED_GENERATION.get();
        SHARED_PTR.store(std::ptr::from_ref(g).cast_mut(), Ordering::Relaxed);
        g.load(Ordering::Acquire)
    } else {
        0
    }
}

/// `shared_generation` for the per-row path: one load of a process-local pointer and one of
/// shared memory, nothing that can fail. 0 until `shared_generation` ran (which every per-row
/// cache entry was made after).
#[inline(always)]
pub fn shared_generation_fast() -> u64 {
    let p = SHARED_PTR.load(Ordering::Relaxed);
    if p.is_null() {
        0
    } else {
        // SAFETY: p points to the shared-memory atomic, mapped for the life of the process.
        unsafe { (*p).load(Ordering::Acquire) }
    }
}

/// Every backend's cached verifications are void at their next access (a committed change of
/// the revocation list, standby replay progress).
pub fn bump_shared_generation() {
    SHARED_GENERATION.get().fetch_add(1, Ordering::AcqRel);
}

/// The shared verification cache's epoch: an entry made in another epoch is void. Only called
/// where the cache exists (preloaded).
#[inline]
pub fn shared_cache_epoch() -> u64 {
    SHARED_CACHE_EPOCH.get().load(Ordering::Acquire)
}

/// Every entry of the shared verification cache is void (a key set in force changed).
pub fn bump_shared_cache_epoch() {
    SHARED_CACHE_EPOCH.get().fetch_add(1, Ordering::AcqRel);
}

/// The keys generation: changes only when a key set in force changes (`key_set_changed`); 0
/// when the library is not preloaded. Read on the slow path only.
#[inline]
pub fn keys_generation() -> u64 {
    if SHARED_EXISTS.load(Ordering::Relaxed) {
        KEYS_GENERATION.get().load(Ordering::Acquire)
    } else {
        0
    }
}

/// The key set in force changed (new content, dropped as stale, another source): every cached
/// verification and every entry of the shared verification cache is void. The keys generation
/// first, so that a backend that sees the new shared generation sees it too.
pub fn key_set_changed() {
    KEYS_GENERATION.get().fetch_add(1, Ordering::AcqRel);
    bump_shared_generation();
    bump_shared_cache_epoch();
}

/// What a cached result of the session cache depends on: the token, the settings and the
/// shared generation. Any change of any of them makes it void.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Generations {
    pub token: u64,
    pub config: u64,
    pub shared: u64,
}

impl Generations {
    /// The current generations: two counters of this backend and one atomic load of shared
    /// memory.
    #[inline]
    pub fn now() -> Generations {
        Generations {
            token: token_generation(),
            config: config_generation(),
            shared: shared_generation(),
        }
    }
}
