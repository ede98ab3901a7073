//! The shared verification cache: verified tokens, in shared memory, so that a token verified
//! by one backend is not verified again by any other (issue: many users through a pool).
//!
//! - Keyed by SHA-256 over a fingerprint of the key set in force and the exact token bytes
//!   (`pg_jwt_core::token::CacheKeyer`, the key set's block hashed once): two tokens differing
//!   in one byte, or one token under two key sets (another database's `pg_jwt.jwks`, a rotated
//!   set), never share an entry.
//! - An entry says "these bytes passed every check of a verification before the claims (size,
//!   form, header policy, key choice, signature) under this key set", with the header's
//!   algorithm. A backend that finds one (`token::verify_recorded`) checks again only what may
//!   differ since: the size cap and the algorithm allowlist; it decodes the payload from the
//!   token, checks it with the strict parser (keeping its top-level members, not a tree:
//!   `json::Members`) and checks the claims against its own settings and the clock, then
//!   revocation as for any verification. It skips the header's decoding, parsing and policy,
//!   the key choice and the signature. An entry is stored once signature and claims are good,
//!   before the revocation check (every hit checks revocation again).
//! - Why record the algorithm, not only "the signature is good": with the signature alone on
//!   record, the next backend decoded, parsed and checked the header, chose the key and decoded
//!   the signature again (`make bench`, section 4e, times both paths over the same tokens:
//!   `Signature::KnownGood` against the record's).
//! - An entry is void once `not_after` (the token's `exp` plus the inserting backend's leeway)
//!   has passed, and whenever the shared cache epoch (`generations`) moved: the key fetcher bumps
//!   it whenever a fetched key set changes. A changed key set also changes the fingerprint, so
//!   entries made under the old set are unreachable at once. A reload does not void it: what a
//!   record vouches for depends on the key set only, and every setting is checked again at each
//!   hit (voiding it at every reload sent every backend through a new signature check of every
//!   token it met).
//! - The bucket is chosen by the token's bytes (`token::tail_hash` of its length and last 16
//!   bytes, with a seed drawn at random by the first backend to use the cache), not by the
//!   SHA-256: so the caller can start fetching the bucket (`place`) before it computes the
//!   SHA-256, and the two overlap. The bucket was a cache miss in shared memory on most lookups,
//!   about a tenth of a next backend's verification (`perf`, section 4e's loop). Equality is
//!   still the whole SHA-256 key.
//! - Bounded: `pg_jwt.shared_cache_size` entries (fixed at server start), in buckets of `WAYS`
//!   entries. No lock: a reader checks a bucket's sequence number before and after reading
//!   (a bucket being written reads as a miss); a writer takes a bucket by one compare-and-swap
//!   of that number and skips the insert if another writer holds it. The victim in a full
//!   bucket is a void entry, else the one that expires first.

use crate::shmem::Region;
use pg_jwt_core::token;
use pg_jwt_core::Algorithm;
use std::sync::atomic::{fence, AtomicI64, AtomicU64, Ordering};

/// Entries per bucket (one bucket is 400 bytes).
const WAYS: usize = 7;

#[repr(C)]
struct Entry {
    /// The cache key (SHA-256); all zero: empty.
    key: [AtomicU64; 4],
    /// Unix seconds after which the entry is void.
    not_after: AtomicI64,
    /// The shared epoch the entry was made in.
    epoch: AtomicU64,
    /// The header's algorithm: its index in `Algorithm::ALL` plus one (0: none recorded).
    alg: AtomicU64,
}

#[repr(C)]
struct Bucket {
    /// Even: stable; odd: a writer is in the bucket.
    seq: AtomicU64,
    entries: [Entry; WAYS],
}

/// Word 0: the seed of the bucket hash (0 until the first backend draws one); then counters,
/// each on its own cache line (index × 8 words).
const SEED: usize = 0;
const HITS: usize = 8;
const MISSES: usize = 16;
const INSERTS: usize = 24;
const EVICTIONS: usize = 32;
const HEADER_WORDS: usize = 40;

fn buckets_for(entries: usize) -> usize {
    entries.div_ceil(WAYS)
}

fn region_bytes() -> usize {
    HEADER_WORDS * 8 + buckets_for(crate::gucs::shared_cache_size()) * std::mem::size_of::<Bucket>()
}

pub static REGION: Region = Region::new(c"pg_jwt shared verification cache", region_bytes);

struct Table {
    header: &'static [AtomicU64],
    buckets: &'static [Bucket],
}

fn table() -> Option<Table> {
    let (p, len) = REGION.get()?;
    let header_bytes = HEADER_WORDS * 8;
    let n = len.checked_sub(header_bytes)? / std::mem::size_of::<Bucket>();
    // SAFETY: the region (mapped for the process's life, cache-line aligned) is HEADER_WORDS
    // header words then `n` whole buckets (region_bytes); all-zero, its initial state, is valid
    // for both (atomics of zero: empty entries), and only atomics are accessed through them.
    unsafe {
        Some(Table {
            header: std::slice::from_raw_parts(p.cast::<AtomicU64>(), HEADER_WORDS),
            buckets: std::slice::from_raw_parts(p.add(header_bytes).cast::<Bucket>(), n),
        })
    }
}

fn words(key: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, chunk) in key.chunks_exact(8).enumerate() {
        if let (Some(slot), Ok(bytes)) = (w.get_mut(i), <[u8; 8]>::try_from(chunk)) {
            *slot = u64::from_le_bytes(bytes);
        }
    }
    w
}

impl Table {
    fn counter(&self, i: usize) -> &AtomicU64 {
        &self.header[i]
    }

    /// The bucket hash's seed: drawn at random by the first backend that needs it (a region is
    /// created zeroed), the same for every backend after (a compare-and-swap from 0 decides).
    fn seed(&self) -> u64 {
        let word = &self.header[SEED];
        let seed = word.load(Ordering::Relaxed);
        if seed != 0 {
            return seed;
        }
        // std's RandomState: keys drawn from the OS per process.
        let drawn = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0x7368_6172_6564_u64) | 1;
        match word.compare_exchange(0, drawn, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => drawn,
            Err(current) => current,
        }
    }

    fn bucket(&self, token: &[u8]) -> Option<&'static Bucket> {
        let n = self.buckets.len() as u64;
        if n == 0 {
            return None;
        }
        // The hash scaled to [0, n) by a multiplication (a 64-bit division costs tens of cycles).
        let at = (u128::from(token::tail_hash(self.seed(), token)) * u128::from(n)) >> 64;
        self.buckets.get(at as usize)
    }
}

/// The bucket of one token, found once per verification (its lookup and its insert both use
/// it). `None`: no cache (size 0, or not preloaded).
pub struct Place(Option<&'static Bucket>);

/// The bucket of `token`, which this starts fetching into the CPU's cache, so that a lookup
/// after the SHA-256 of the key finds it there (a hint only: it changes no state).
pub fn place(token: &[u8]) -> Place {
    let Some(b) = table().and_then(|t| t.bucket(token)) else {
        return Place(None);
    };
    let start = std::ptr::from_ref(b).cast::<u8>();
    for offset in (0..std::mem::size_of::<Bucket>()).step_by(64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that never faults and has no effect on the program's
        // state; the address lies inside the bucket (offset < its size) all the same.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (start, offset);
    }
    Place(Some(b))
}

/// The record of a verified token: its header's algorithm. (`lookup` never returns
/// `Some(None)`: an entry without a valid algorithm reads as a miss.)
pub type Record = Option<Algorithm>;

/// What is on record for the token of `place`, whose key is `key` (not void at `now`): `None`
/// when nothing is.
pub fn lookup(place: &Place, key: &[u8; 32], now: i64) -> Option<Record> {
    let t = table()?;
    let k = words(key);
    let b = place.0?;
    let epoch = crate::generations::shared_cache_epoch();
    let s1 = b.seq.load(Ordering::Acquire);
    let mut found = None;
    if s1 & 1 == 0 {
        found = b
            .entries
            .iter()
            .find(|e| {
                e.key[0].load(Ordering::Relaxed) == k[0]
                    && e.key[1].load(Ordering::Relaxed) == k[1]
                    && e.key[2].load(Ordering::Relaxed) == k[2]
                    && e.key[3].load(Ordering::Relaxed) == k[3]
                    && e.epoch.load(Ordering::Relaxed) == epoch
                    && now < e.not_after.load(Ordering::Relaxed)
            })
            // An entry without a valid algorithm (no writer stores one) is a miss: fail closed,
            // never a signature vouched for by an entry that cannot be read.
            .and_then(|e| {
                let alg = e.alg.load(Ordering::Relaxed) as usize;
                alg.checked_sub(1).and_then(Algorithm::from_index).map(Some)
            });
        fence(Ordering::Acquire);
        // A writer came in meanwhile: what was read may be torn; a miss is always safe.
        if b.seq.load(Ordering::Relaxed) != s1 {
            found = None;
        }
    }
    t.counter(if found.is_some() { HITS } else { MISSES })
        .fetch_add(1, Ordering::Relaxed);
    found
}

/// Records the verified token of `place`, whose key is `key` (with its header's algorithm), void
/// after `not_after`. Skipped (never waits) if another backend is writing the same bucket.
pub fn insert(place: &Place, key: &[u8; 32], not_after: i64, now: i64, alg: Algorithm) {
    let Some(t) = table() else { return };
    let k = words(key);
    if k == [0; 4] {
        return; // the empty marker (a SHA-256 of all zeros does not happen)
    }
    let Some(b) = place.0 else { return };
    let s = b.seq.load(Ordering::Acquire);
    if s & 1 == 1
        || b.seq
            .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    fence(Ordering::Release);
    let epoch = crate::generations::shared_cache_epoch();
    let key_of = |e: &Entry| [0, 1, 2, 3].map(|i| e.key[i].load(Ordering::Relaxed));
    let void = |e: &Entry| {
        key_of(e) == [0; 4] || e.epoch.load(Ordering::Relaxed) != epoch || e.not_after.load(Ordering::Relaxed) <= now
    };
    let victim = b
        .entries
        .iter()
        .find(|e| key_of(e) == k)
        .or_else(|| b.entries.iter().find(|e| void(e)))
        .map(|e| (e, false))
        .or_else(|| {
            b.entries
                .iter()
                .min_by_key(|e| e.not_after.load(Ordering::Relaxed))
                .map(|e| (e, true))
        });
    if let Some((e, evicted)) = victim {
        for (i, w) in k.iter().enumerate() {
            e.key[i].store(*w, Ordering::Relaxed);
        }
        e.not_after.store(not_after, Ordering::Relaxed);
        e.epoch.store(epoch, Ordering::Relaxed);
        e.alg.store(alg.index() as u64 + 1, Ordering::Relaxed);
        t.counter(INSERTS).fetch_add(1, Ordering::Relaxed);
        if evicted {
            t.counter(EVICTIONS).fetch_add(1, Ordering::Relaxed);
        }
    }
    b.seq.store(s + 2, Ordering::Release);
}

/// The cache's figures for `jwt_cache_stats()`.
pub struct Stats {
    pub capacity: u64,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
}

pub fn stats(now: i64) -> Stats {
    let Some(t) = table() else {
        return Stats {
            capacity: 0,
            entries: 0,
            hits: 0,
            misses: 0,
            inserts: 0,
            evictions: 0,
        };
    };
    let epoch = crate::generations::shared_cache_epoch();
    let entries = t
        .buckets
        .iter()
        .flat_map(|b| b.entries.iter())
        .filter(|e| {
            e.key[0].load(Ordering::Relaxed) != 0
                && e.epoch.load(Ordering::Relaxed) == epoch
                && now < e.not_after.load(Ordering::Relaxed)
        })
        .count() as u64;
    Stats {
        capacity: (t.buckets.len() * WAYS) as u64,
        entries,
        hits: t.counter(HITS).load(Ordering::Relaxed),
        misses: t.counter(MISSES).load(Ordering::Relaxed),
        inserts: t.counter(INSERTS).load(Ordering::Relaxed),
        evictions: t.counter(EVICTIONS).load(Ordering::Relaxed),
    }
}
