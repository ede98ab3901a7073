//! Raw shared-memory regions of a size known when the server starts (pgrx's `PgLwLock` and
//! `PgAtomic` hold one typed value each; the revocation filter and the shared verification
//! cache are arrays of atomics). Each region is requested in `shmem_request_hook`, created
//! zeroed in `shmem_startup_hook`, and its address published in a process-local pointer that
//! forked backends inherit. All-zero must be a valid, empty state of what a region holds.
//! `_PG_init` hands the regions over (`init`), so this module imports no feature.
//!
//! Inventory of everything pg_jwt keeps in shared memory (only when preloaded), all of fixed
//! size, decided at server start:
//!
//! | object | kind | owner | size |
//! |---|---|---|---|
//! | `pg_jwt fetched key set` | pgrx `PgLwLock<FetchState>` | `jwks::state` | about 260 KiB (a 256 KiB key set, three 1 KiB URLs, a 512-byte error, counters) |
//! | `pg_jwt shared generation`, `pg_jwt keys generation`, `pg_jwt shared cache epoch` | pgrx `PgAtomic<u64>`s | `generations` | 8 bytes each |
//! | `pg_jwt fetch request ticket`, `... answered ticket`, `... request`, `pg_jwt last fetch request`, `pg_jwt worker proc` | pgrx `PgAtomic`s | `jwks::state` | 8 bytes each |
//! | `pg_jwt revocation filter` | `Region` | `revocation::filter` | 4 slots of 2 MiB bits plus a 48-byte header each: about 8 MiB |
//! | `pg_jwt shared verification cache` | `Region` | `shared_cache` | 320 bytes of counters plus one 400-byte bucket per 7 entries of `pg_jwt.shared_cache_size` (65,536: about 3.6 MiB) |
//! | `pg_jwt statistics` | `Region` | `stats` | a few hundred bytes of counters |
//! | `pg_jwt provider key sets`, `pg_jwt provider requests` | pgrx `PgLwLock`, `PgAtomic` | `providers::slots` | 8 bytes each (the lock of the slots; "a backend asked") |
//! | `pg_jwt provider key set slots` | `Region` | `providers::slots` | per slot of `pg_jwt.max_providers`: 32 bytes of signals, a 3.7 KiB head, a `pg_jwt.provider_jwks_max_bytes` buffer (16 × 64 KiB: about 1.1 MiB) |

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// One region: its name in PostgreSQL's shmem index, its size (read once, at request time, from
/// settings of context postmaster), and where it is mapped in this process (null if absent).
pub struct Region {
    pub name: &'static CStr,
    pub bytes: fn() -> usize,
    ptr: AtomicPtr<u8>,
    len: std::sync::atomic::AtomicUsize,
}

impl Region {
    pub const fn new(name: &'static CStr, bytes: fn() -> usize) -> Self {
        Region {
            name,
            bytes,
            ptr: AtomicPtr::new(std::ptr::null_mut()),
            len: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The region's start and length; None when it does not exist (library not preloaded).
    #[inline]
    pub fn get(&self) -> Option<(*mut u8, usize)> {
        let p = self.ptr.load(Ordering::Relaxed);
        if p.is_null() {
            None
        } else {
            Some((p, self.len.load(Ordering::Relaxed)))
        }
    }
}

/// Every region, in the order they are created: handed over by `_PG_init` (so that this module
/// imports none of the features that own them).
static REGIONS: std::sync::OnceLock<&'static [&'static Region]> = std::sync::OnceLock::new();

fn regions() -> &'static [&'static Region] {
    REGIONS.get().copied().unwrap_or_default()
}

// SAFETY (of both statics): written once in _PG_init (postmaster, single-threaded), read only by
// the hooks PostgreSQL calls afterwards in the same process.
static mut PREV_REQUEST: Option<unsafe extern "C-unwind" fn()> = None;
static mut PREV_STARTUP: Option<unsafe extern "C-unwind" fn()> = None;

/// Installs the hooks for `regions` (from `_PG_init`, under shared_preload_libraries only).
pub fn init(regions: &'static [&'static Region]) {
    let _ = REGIONS.set(regions);
    // SAFETY: _PG_init runs once, in the postmaster, before any other thread or process could
    // read these hooks; the previous hooks are kept and called first.
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(on_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(on_startup);
    }
}

#[pg_guard]
// SAFETY (for callers): installed as shmem_request_hook; PostgreSQL calls it in the postmaster.
unsafe extern "C-unwind" fn on_request() {
    // SAFETY: PostgreSQL calls the hook once, in the postmaster, during startup.
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        for r in regions() {
            pg_sys::RequestAddinShmemSpace((r.bytes)());
        }
    }
}

#[pg_guard]
// SAFETY (for callers): installed as shmem_startup_hook; PostgreSQL calls it after creating shared
// memory.
unsafe extern "C-unwind" fn on_startup() {
    // SAFETY: called in the postmaster (and each EXEC_BACKEND child) after the segment exists;
    // AddinShmemInitLock serializes ShmemInitStruct; a new region is zeroed (its valid empty
    // state, module note), a region found is left as it is.
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        // AddinShmemInitLock (a fixed slot of the main LWLock array, as pgrx's own regions use).
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        for r in regions() {
            let bytes = (r.bytes)();
            let mut found = false;
            let p = pg_sys::ShmemInitStruct(r.name.as_ptr(), bytes, &mut found).cast::<u8>();
            if !found {
                std::ptr::write_bytes(p, 0, bytes);
            }
            r.len.store(bytes, Ordering::Relaxed);
            r.ptr.store(p, Ordering::Relaxed);
        }
        pg_sys::LWLockRelease(lock);
    }
}
