//! A Bloom filter of `jwt_revocations` in shared memory, so that checking a token that is not
//! revoked (nearly every token) costs a few hashed bit reads instead of B-tree probes.
//!
//! The filter may say "maybe" for a value that is not in the table (then the exact index probe
//! in `revocation` decides), but never "no" for a committed row, because:
//! - every row written to the table goes through the row trigger, which sets its bits in the
//!   filter before the writing transaction commits (the trigger is `ENABLE ALWAYS`, so it fires
//!   under `session_replication_role = replica` and logical replication too); bits are never
//!   cleared except by a rebuild;
//! - a filter is built (at first use after the server starts, after a table is re-created, or
//!   when too many rows were added since the last build) by one backend that marks the slot
//!   BUILDING, clears it, then takes a SHARE lock on the table (waiting for every transaction
//!   that wrote rows, whose triggers may have set bits in a slot that was cleared) and scans it
//!   with a snapshot taken after the lock; only then is the slot VALID;
//! - a reader uses a slot only while it is VALID for this database and table, and rechecks the
//!   slot's state, owner and, last, epoch (bumped by every claim, after the claim stored its
//!   owner) after reading the bits: a slot taken over meanwhile answers "maybe";
//! - on a hot standby the primary's rows arrive by replay, without triggers: the filter is never
//!   used there (every check probes the index).
//!
//! Bounded: `SLOTS` filters (one per database and table, least recently used evicted) of
//! `BITS` bits each, in a region of fixed size.

use crate::shmem::Region;
use pgrx::pg_sys;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Filters held at once (databases with revocations; others probe the index).
const SLOTS: usize = 4;
/// 64-bit words per filter: 16 Mi bits (2 MiB). With 1 Mi values and 4 bits per value about
/// 0.4% of checks of a value not in the table answer "maybe" (and go on to the index probe);
/// with 2 Mi, about 3%.
const WORDS: usize = 1 << 18;
const HASHES: u32 = 4;
/// Above this many values added since the build, the filter is not used (too many false
/// "maybe"s) and is rebuilt once the count has doubled since the build.
const MAX_ADDED: u64 = 2 << 20;

const EMPTY: u32 = 0;
const BUILDING: u32 = 1;
const VALID: u32 = 2;

#[repr(C)]
struct Slot {
    /// (database OID << 32) | table OID; 0: none.
    owner: AtomicU64,
    state: AtomicU32,
    /// Bumped each time the slot is claimed (cleared for a build).
    epoch: AtomicU64,
    /// Values added since the slot was claimed (scan and triggers).
    added: AtomicU64,
    /// Rows the last build scanned.
    built_rows: AtomicU64,
    /// Unix seconds of the last use (for eviction).
    last_used: AtomicI64,
    bits: [AtomicU64; WORDS],
}

fn region_bytes() -> usize {
    SLOTS * std::mem::size_of::<Slot>()
}

pub static REGION: Region = Region::new(c"pg_jwt revocation filter", region_bytes);

fn slots() -> Option<&'static [Slot]> {
    let (p, len) = REGION.get()?;
    if len < region_bytes() {
        return None;
    }
    // SAFETY: the region is at least SLOTS Slots long, suitably aligned (ShmemInitStruct
    // aligns to a cache line), mapped for the life of the process, and all-zero (its initial
    // state) is a valid Slot: atomics of zero. Only atomics are accessed through it.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<Slot>(), SLOTS) })
}

fn owner_key(db: pg_sys::Oid, table: pg_sys::Oid) -> u64 {
    (u64::from(db.to_u32()) << 32) | u64::from(table.to_u32())
}

/// Where a value of a kind (`jti`, `sid`, `sub`) lives: one 64-bit word and `HASHES` bits in it
/// (a blocked Bloom filter: one memory read per check).
fn position(kind: &[u8], value: &[u8]) -> (usize, u64) {
    // SipHash with fixed keys: the same in every process of this build (the filter never
    // outlives the server). An attacker can at most make a value "maybe", which costs a probe.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    value.hash(&mut h);
    let a = h.finish();
    let word = (a % WORDS as u64) as usize;
    let mut bits = a / WORDS as u64;
    let mut mask = 0u64;
    for _ in 0..HASHES {
        mask |= 1 << (bits % 64);
        bits /= 64;
    }
    (word, mask)
}

fn set(slot: &Slot, kind: &[u8], value: &[u8]) {
    let (word, mask) = position(kind, value);
    if let Some(w) = slot.bits.get(word) {
        w.fetch_or(mask, Ordering::AcqRel);
    }
    slot.added.fetch_add(1, Ordering::AcqRel);
}

/// The row trigger: a value written to the table (every filter of this table).
pub fn add(db: pg_sys::Oid, table: pg_sys::Oid, kind: &[u8], value: &[u8]) {
    let Some(slots) = slots() else { return };
    let key = owner_key(db, table);
    for slot in slots {
        if slot.owner.load(Ordering::Acquire) == key && slot.state.load(Ordering::Acquire) != EMPTY {
            set(slot, kind, value);
        }
    }
}

/// A filter in use: which slot, at which epoch.
#[derive(Clone, Copy)]
pub struct Reader {
    slot: &'static Slot,
    epoch: u64,
    owner: u64,
}

/// What a reader needs next.
pub enum Found {
    /// A valid filter.
    Use(Reader),
    /// No usable filter; this backend should build one (`Builder`).
    Build(Builder),
    /// No usable filter now (another backend builds it, or none can be had): probe the index.
    Probe,
}

/// The databases that have a filter (in use since the server started): the ones whose
/// revocations the background worker purges.
pub fn databases() -> Vec<pg_sys::Oid> {
    let mut out: Vec<pg_sys::Oid> = Vec::new();
    for slot in slots().unwrap_or_default() {
        let owner = slot.owner.load(Ordering::Acquire);
        let db = pg_sys::Oid::from((owner >> 32) as u32);
        if owner != 0 && slot.state.load(Ordering::Acquire) == VALID && !out.contains(&db) {
            out.push(db);
        }
    }
    out
}

/// The valid filter of this database's table, if there is one (never claims a slot).
pub fn peek(db: pg_sys::Oid, table: pg_sys::Oid, now: i64) -> Option<Reader> {
    peek_in(slots()?, owner_key(db, table), now)
}

fn peek_in(slots: &'static [Slot], key: u64, now: i64) -> Option<Reader> {
    slots.iter().find_map(|slot| {
        let epoch = slot.epoch.load(Ordering::Acquire);
        (slot.owner.load(Ordering::Acquire) == key
            && slot.state.load(Ordering::Acquire) == VALID
            && slot.added.load(Ordering::Acquire) <= MAX_ADDED)
            .then(|| {
                slot.last_used.store(now, Ordering::Relaxed);
                Reader {
                    slot,
                    epoch,
                    owner: key,
                }
            })
    })
}

/// The filter of this database's table, or what to do without one.
pub fn find_or_claim(db: pg_sys::Oid, table: pg_sys::Oid, now: i64) -> Found {
    let Some(slots) = slots() else { return Found::Probe };
    // Before any claim: registering can fail (FATAL), which must not leave a slot claimed.
    register_exit_callback();
    let found = find_in(slots, owner_key(db, table), now);
    if let Found::Build(b) = &found {
        // Nothing else moves the epoch of a slot this backend holds BUILDING.
        record_building(Some((b.slot, b.slot.epoch.load(Ordering::Acquire))));
    }
    found
}

fn find_in(slots: &'static [Slot], key: u64, now: i64) -> Found {
    for slot in slots {
        let epoch = slot.epoch.load(Ordering::Acquire);
        if slot.owner.load(Ordering::Acquire) != key {
            continue;
        }
        match slot.state.load(Ordering::Acquire) {
            VALID => {
                slot.last_used.store(now, Ordering::Relaxed);
                let added = slot.added.load(Ordering::Acquire);
                if added <= MAX_ADDED {
                    return Found::Use(Reader {
                        slot,
                        epoch,
                        owner: key,
                    });
                }
                if added >= 2 * slot.built_rows.load(Ordering::Acquire) {
                    // Too many values added since the build: rebuild it (deleted rows go).
                    if slot
                        .state
                        .compare_exchange(VALID, BUILDING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return Found::Build(Builder::claimed(slot, key));
                    }
                }
                return Found::Probe;
            }
            _ => return Found::Probe,
        }
    }
    // None: take a free slot, or the least recently used valid one.
    for slot in slots {
        if slot
            .state
            .compare_exchange(EMPTY, BUILDING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Found::Build(Builder::claimed(slot, key));
        }
    }
    let oldest = slots
        .iter()
        .filter(|s| s.state.load(Ordering::Acquire) == VALID)
        .min_by_key(|s| s.last_used.load(Ordering::Relaxed));
    if let Some(slot) = oldest {
        // Only slots unused for a minute: two busy databases do not evict each other in turn.
        if now - slot.last_used.load(Ordering::Relaxed) > 60
            && slot
                .state
                .compare_exchange(VALID, BUILDING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Found::Build(Builder::claimed(slot, key));
        }
    }
    Found::Probe
}

impl Reader {
    /// false: certainly not in the table; true: maybe (probe the index). A slot taken over
    /// while reading answers true.
    pub fn may_contain(&self, kind: &[u8], value: &[u8]) -> bool {
        let (word, mask) = position(kind, value);
        let all = self
            .slot
            .bits
            .get(word)
            .is_none_or(|w| w.load(Ordering::Acquire) & mask == mask);
        fence(Ordering::Acquire);
        // The epoch last: a claim stores the owner before it moves the epoch, so a slot taken
        // over meanwhile (even back by this reader's owner, after another owner's claim had
        // kept a trigger from setting a bit here) shows a newer epoch. Checked first, the
        // epoch could be the old one and the owner already back.
        all || self.slot.state.load(Ordering::Acquire) != VALID
            || self.slot.owner.load(Ordering::Acquire) != self.owner
            || self.slot.epoch.load(Ordering::Acquire) != self.epoch
    }
}

/// A slot this backend claimed (state BUILDING) and must finish or release.
pub struct Builder {
    slot: &'static Slot,
    done: bool,
}

impl Builder {
    fn claimed(slot: &'static Slot, key: u64) -> Builder {
        // The owner first, then the epoch: a reader loads the epoch, then the owner, and
        // re-checks the epoch after reading bits. If it saw this claim's epoch it sees this
        // owner (Release/Acquire); if it saw an earlier epoch, the re-check finds it changed.
        // (The other order let a reader pair the new epoch with the previous owner, and read
        // another database's filter as its own once that filter turned VALID.)
        slot.owner.store(key, Ordering::Release);
        slot.epoch.fetch_add(1, Ordering::AcqRel);
        // Release: a reader that sees a cleared word sees the new epoch after it.
        for w in &slot.bits {
            w.store(0, Ordering::Release);
        }
        slot.added.store(0, Ordering::Release);
        slot.built_rows.store(0, Ordering::Release);
        Builder { slot, done: false }
    }

    /// A row found by the build scan.
    pub fn add(&self, kind: &[u8], value: &[u8]) {
        set(self.slot, kind, value);
    }

    /// The scan is complete (it ran under the SHARE lock, with a snapshot taken after it).
    pub fn finish(mut self, rows: u64, now: i64) {
        record_building(None);
        self.slot.built_rows.store(rows.max(1), Ordering::Release);
        self.slot.last_used.store(now, Ordering::Relaxed);
        self.slot.state.store(VALID, Ordering::Release);
        self.done = true;
    }
}

impl Drop for Builder {
    /// Not finished (an error or a cancel, which pgrx unwinds through Rust frames, or no lock):
    /// the slot is free again.
    fn drop(&mut self) {
        if !self.done {
            // The record first: the exit callback must never release a slot released here
            // (and perhaps claimed by another backend since).
            record_building(None);
            release(self.slot);
        }
    }
}

fn release(slot: &Slot) {
    slot.owner.store(0, Ordering::Release);
    slot.state.store(EMPTY, Ordering::Release);
}

thread_local! {
    /// The slot this backend is building, if any: a FATAL (`pg_terminate_backend`, a
    /// shutdown) during the build scan exits the process without unwinding the Rust frames,
    /// so `Builder`'s `Drop` never runs; `on_exit` frees the slot then (else it stayed
    /// BUILDING for good, and its database never had a filter again until a restart).
    /// With the epoch its claim gave it.
    static BUILDING_SLOT: std::cell::Cell<Option<(&'static Slot, u64)>> = const { std::cell::Cell::new(None) };
    static EXIT_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Registers `on_exit` once per process. Only a backend's main thread calls it
/// (`find_or_claim`): it calls into PostgreSQL.
fn register_exit_callback() {
    if !EXIT_CALLBACK.with(|c| c.replace(true)) {
        // SAFETY: once per process, in a backend (a build runs in a transaction); the callback
        // only touches atomics of shared memory, which is still attached when
        // before_shmem_exit callbacks run.
        unsafe { pg_sys::before_shmem_exit(Some(on_exit), pg_sys::Datum::from(0usize)) };
    }
}

/// Records the slot this process is building, with its claim's epoch (`None`: none any more).
fn record_building(slot: Option<(&'static Slot, u64)>) {
    BUILDING_SLOT.with(|b| b.set(slot));
}

// SAFETY (for callers): registered with before_shmem_exit; PostgreSQL calls it on this
// process's thread while it exits, shared memory still attached.
unsafe extern "C-unwind" fn on_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if let Some((slot, epoch)) = BUILDING_SLOT.with(std::cell::Cell::take) {
        // Still this process's claim (the same epoch, still BUILDING): free it.
        if slot.epoch.load(Ordering::Acquire) == epoch && slot.state.load(Ordering::Acquire) == BUILDING {
            release(slot);
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// `SLOTS` zeroed slots of the test's own (leaked), not the shared ones.
    fn private_slots() -> &'static [Slot] {
        let layout = std::alloc::Layout::array::<Slot>(SLOTS).unwrap();
        // SAFETY: all-zero is a valid Slot (atomics of zero); the memory is leaked, so
        // 'static holds; the layout is that of SLOTS Slots.
        unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<Slot>();
            assert!(!p.is_null());
            std::slice::from_raw_parts(p, SLOTS)
        }
    }

    /// A build that never finishes nor unwinds (FATAL during its scan: `proc_exit` runs the
    /// exit callbacks, not Rust's `Drop`) leaves no slot BUILDING: the exit callback frees it.
    #[pg_test]
    fn a_build_ended_by_fatal_frees_its_slot_at_exit() {
        let slots = private_slots();
        let Found::Build(b) = find_in(slots, 7 << 32 | 1, 1_000) else {
            panic!("an empty slot is claimed");
        };
        let slot = b.slot;
        record_building(Some((slot, slot.epoch.load(Ordering::Acquire))));
        // As under FATAL: the Builder is never dropped.
        std::mem::forget(b);
        assert_eq!(slot.state.load(Ordering::Acquire), BUILDING);
        // SAFETY: the callback only stores to the atomics of the slot recorded above.
        unsafe { on_exit(1, pg_sys::Datum::from(0usize)) };
        assert_eq!(slot.state.load(Ordering::Acquire), EMPTY);
        assert_eq!(slot.owner.load(Ordering::Acquire), 0);
        // A finished build leaves nothing to free.
        let Found::Build(b) = find_in(slots, 7 << 32 | 1, 1_000) else {
            panic!("the freed slot is claimed again");
        };
        let slot = b.slot;
        record_building(Some((slot, slot.epoch.load(Ordering::Acquire))));
        b.finish(1, 1_000);
        // SAFETY: as above.
        unsafe { on_exit(1, pg_sys::Datum::from(0usize)) };
        assert_eq!(slot.state.load(Ordering::Acquire), VALID);
        // A stale record (its slot released, then claimed by another backend) frees nothing.
        let Found::Build(b) = find_in(slots, 8 << 32 | 1, 1_000) else {
            panic!("an empty slot is claimed");
        };
        let slot = b.slot;
        record_building(Some((slot, slot.epoch.load(Ordering::Acquire))));
        release(slot);
        std::mem::forget(b);
        let Found::Build(other) = find_in(slots, 9 << 32 | 1, 1_000) else {
            panic!("the released slot is claimed again");
        };
        assert!(std::ptr::eq(other.slot, slot));
        // SAFETY: as above.
        unsafe { on_exit(1, pg_sys::Datum::from(0usize)) };
        assert_eq!(slot.state.load(Ordering::Acquire), BUILDING);
        other.finish(1, 1_000);
        assert_eq!(slot.state.load(Ordering::Acquire), VALID);
    }

    /// More databases than slots, slots taken over all the time (a clock that jumps past the
    /// eviction age), and readers that check that the filter they were handed is their own:
    /// each database's filter holds its own value, so a reader handed another database's
    /// filter sees "certainly not" for its value. Threads touch only the atomics of a private
    /// copy of the slots (no PostgreSQL call), so this runs in any backend.
    #[pg_test]
    fn filter_slots_are_never_read_as_another_databases() {
        let slots = private_slots();
        const DATABASES: u64 = 2 * SLOTS as u64 + 1;
        let value = |db: u64| format!("value-of-{db}").into_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(AtomicI64::new(1_000));
        let wrong = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let builds = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for t in 0..2u64 {
            let (stop, clock, builds) = (stop.clone(), clock.clone(), builds.clone());
            threads.push(std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let db = 1 + i % DATABASES;
                    let now = clock.fetch_add(61, Ordering::Relaxed);
                    if let Found::Build(b) = find_in(slots, db << 32 | 1, now) {
                        b.add(b"jti", &value(db));
                        b.finish(1, now);
                        builds.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in 0..3u64 {
            let (stop, wrong, reads) = (stop.clone(), wrong.clone(), reads.clone());
            threads.push(std::thread::spawn(move || {
                let mut i = t * 7;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let db = 1 + i % DATABASES;
                    // Reads at time 0: every slot stays old enough to be taken over.
                    if let Some(reader) = peek_in(slots, db << 32 | 1, 0) {
                        reads.fetch_add(1, Ordering::Relaxed);
                        if !reader.may_contain(b"jti", &value(db)) {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let (reads, builds) = (reads.load(Ordering::Relaxed), builds.load(Ordering::Relaxed));
        assert!(
            reads > 1000 && builds > 100,
            "too little contention to prove anything: {reads} reads, {builds} builds"
        );
        assert_eq!(
            wrong.load(Ordering::Relaxed),
            0,
            "a reader was answered from another database's filter ({reads} reads, {builds} builds)"
        );
    }
}
