//! The table of the session cache (`session`): verified tokens by their exact bytes, at most
//! `capacity` of them, the least recently useful evicted by CLOCK (second chance).
//!
//! Why not a linked LRU (the `lru` crate, until 0.3.x): a pooled connection meets a token again
//! only after many other transactions, so every lookup walks cold memory. `perf` on the
//! 100-user pgbench of `make bench` (section 4c) put 0.44 µs of a lookup's 0.69 µs on loading
//! the LRU's node (its key's address and length), behind the hash table's control bytes and
//! bucket, before the token's bytes were compared and the node moved to the front (two more
//! nodes written). Here a probe reads an array of 4-byte slots (a 2-byte tag and 2 bytes of
//! admission: compact, as the control bytes were, so a miss stays cheap), and a hit then the entry (the full hash, the
//! key's address and length, the value, the CLOCK bit) and the token's bytes, and writes only
//! the entry's bit.
//!
//! Admission (`keep`): once the table is full, a key is kept on the second time it misses, not
//! the first. With more users than the capacity (a pool serving 20,000 users, each backend
//! holding 1,000), nearly every token is new to the backend, and putting each one into the full
//! cache evicted its coldest entry: a walk through cold memory (the entry, its key, its claims
//! and their frees) that `perf` put at 1.1 µs of 14 µs of pg_jwt's cost per transaction (with
//! the LRU of 0.3.x), for a token met again only one time in twenty. A key seen twice among the
//! last misses is admitted, so a working set slightly over the capacity still settles in, and a
//! stream of one-off keys no longer flushes the ones in use (the "doorkeeper" of TinyLFU). Only
//! where a token is kept changes: one not admitted was verified like any other and serves its
//! transaction; its next miss verifies it again (from the shared cache, when it is there). The
//! misses are remembered beside the tags, 2 bytes per slot at the key's home slot (15 bits of
//! its hash; a collision admits a key early or late, never changes a result): a miss's probe
//! has just read that line, where a table of its own (4 KiB for 1,000 entries) cost a cold
//! line per miss, about 0.26 µs a transaction with 20,000 users in `perf`.
//!
//! Open addressing with linear probing, at most half full (the table doubles as entries arrive,
//! from 16 slots up to twice the capacity rounded up to a power of two); removal shifts the following entries
//! back, so there are no tombstones and a probe ends at the first empty slot. Lookups compare
//! the tag, the full hash, then every byte of the key.

use pg_jwt_core::token;

/// The hash of a token in this backend's cache (admission uses the same hash): `token::tail_hash` (its length and its last 16
/// bytes, signature bytes), with a seed drawn at random for each cache. Hashing all of it cost
/// two passes over hundreds of bytes per new token (a miss's lookup and the insert), and an
/// eviction read the evicted token's bytes again. Equality still compares every byte, so this
/// only chooses the bucket. Only verified tokens are in the cache; the seed keeps someone who
/// can obtain many signed tokens from choosing the ones that share a bucket (the hash cannot be
/// computed without it).
#[derive(Clone, Copy)]
pub struct TailHash(u64);

impl TailHash {
    pub fn new() -> TailHash {
        // std's RandomState: random keys per process (from the OS), so a seed per cache.
        TailHash(std::hash::BuildHasher::hash_one(
            &std::hash::RandomState::new(),
            0x7461_696c_u64,
        ))
    }
}

pub struct TailHasher(u64);

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0)
    }
}

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = token::tail_hash(self.0, bytes);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(29) ^ n as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// An entry: its key's full hash, its key, its value, its CLOCK bit.
struct Entry<V> {
    hash: u64,
    key: Box<[u8]>,
    value: V,
    referenced: bool,
}

/// At most `capacity` values by their keys' exact bytes (see the module doc).
pub struct Table<V> {
    seed: TailHash,
    /// Per slot: `[0]`, the top 15 bits of its entry's hash with the low bit set, or 0 for an
    /// empty slot; `[1]`, the tag of the last key that missed the full table with this slot as
    /// its home (admission, see the module doc), or 0. 4 bytes a slot, so a probe that finds
    /// nothing (most lookups of a pool with more users than the capacity) and the admission
    /// after it read only this array, 8 KiB for the default 1,000 entries (with full 64-bit
    /// hashes, 16 KiB, and a second array for admission, `perf` found both cold at every
    /// transaction).
    tags: Vec<[u16; 2]>,
    /// The entries, by slot (`None` where the slot's tag, `tags[i][0]`, is 0).
    entries: Vec<Option<Entry<V>>>,
    len: usize,
    capacity: usize,
    /// The CLOCK hand: the next slot eviction looks at.
    hand: usize,
}

impl<V> Table<V> {
    /// An empty table for at most `capacity` (at least 1) entries, with a new random seed.
    pub fn new(capacity: usize) -> Table<V> {
        Table {
            seed: TailHash::new(),
            tags: Vec::new(),
            entries: Vec::new(),
            len: 0,
            capacity: capacity.max(1),
            hand: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, key: &[u8]) -> u64 {
        std::hash::BuildHasher::hash_one(&self.seed, key)
    }

    /// The slot tag of a hash: its top 15 bits above a set low bit, so never 0 (which marks an
    /// empty slot). The low bits choose the slot.
    fn tag(h: u64) -> u16 {
        (h >> 48) as u16 | 1
    }

    /// The table's length less one (a power of two's mask); a wrapped value for an empty table,
    /// whose loops do not run.
    fn mask(&self) -> usize {
        self.tags.len().wrapping_sub(1)
    }

    /// The slot holding `key` (hashed `h`), if any.
    fn find(&self, key: &[u8], h: u64) -> Option<usize> {
        let mask = self.mask();
        // Lossless: masked to the table's length.
        let mut i = (h as usize) & mask;
        let tag = Self::tag(h);
        // At most half full: an empty slot ends every probe; the bound is a second guarantee.
        for _ in 0..self.tags.len() {
            match self.tags.get(i)?[0] {
                0 => return None,
                t if t == tag => {
                    if let Some(Some(e)) = self.entries.get(i) {
                        if e.hash == h && *e.key == *key {
                            return Some(i);
                        }
                    }
                }
                _ => {}
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The value of `key`, marked as used (CLOCK).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let i = self.find(key, self.hash(key))?;
        let e = self.entries.get_mut(i)?.as_mut()?;
        e.referenced = true;
        Some(&mut e.value)
    }

    /// Removes `key`, returning its value.
    pub fn pop(&mut self, key: &[u8]) -> Option<V> {
        let i = self.find(key, self.hash(key))?;
        self.remove_at(i)
    }

    /// Keeps `value` under `key` (which is not in the table) unless the table is full and `key`
    /// did not miss it before (admission, see the module doc); returns whether it was kept. (A
    /// key already there, on a full table, would keep its old value at the first call and take
    /// the new one at the second: never another key's.)
    pub fn keep(&mut self, key: &[u8], value: V) -> bool {
        let h = self.hash(key);
        if self.len >= self.capacity {
            let tag = Self::tag(h);
            // Lossless: masked to the table's length (not empty: full with capacity >= 1).
            let home = (h as usize) & self.mask();
            let Some(slot) = self.tags.get_mut(home) else {
                return false;
            };
            if slot[1] != tag {
                slot[1] = tag;
                return false;
            }
            slot[1] = 0;
        }
        self.insert(h, key, value);
        true
    }

    /// Keeps `value` under `key` (replacing its value if it is there), evicting an entry first
    /// when the table is full.
    #[cfg(test)]
    pub fn put(&mut self, key: &[u8], value: V) {
        self.insert(self.hash(key), key, value);
    }

    fn insert(&mut self, h: u64, key: &[u8], value: V) {
        if let Some(i) = self.find(key, h) {
            if let Some(Some(e)) = self.entries.get_mut(i) {
                e.value = value;
            }
            return;
        }
        if self.len >= self.capacity {
            self.evict();
        }
        if (self.len + 1) * 2 > self.tags.len() {
            self.grow();
        }
        self.place(Entry {
            hash: h,
            key: key.into(),
            value,
            referenced: false,
        });
    }

    /// Puts an entry into the first empty slot of its probe (there is one: at most half full).
    fn place(&mut self, entry: Entry<V>) {
        let mask = self.mask();
        // Lossless: masked to the table's length.
        let mut i = (entry.hash as usize) & mask;
        for _ in 0..self.tags.len() {
            match (self.tags.get_mut(i), self.entries.get_mut(i)) {
                (Some(tags), Some(slot)) if tags[0] == 0 => {
                    tags[0] = Self::tag(entry.hash);
                    *slot = Some(entry);
                    self.len += 1;
                    return;
                }
                (Some(_), Some(_)) => i = (i + 1) & mask,
                _ => return,
            }
        }
    }

    /// Doubles the table (from 16 slots), entries and their CLOCK bits kept.
    fn grow(&mut self) {
        let n = (self.tags.len() * 2).max(16);
        // Misses remembered so far are dropped (the table grows only while not full, before
        // admission starts).
        self.tags = vec![[0; 2]; n];
        let entries = std::mem::replace(&mut self.entries, (0..n).map(|_| None).collect());
        self.len = 0;
        self.hand = 0;
        for e in entries.into_iter().flatten() {
            self.place(e);
        }
    }

    /// Evicts one entry: the first at or after the hand whose CLOCK bit is clear, clearing the
    /// bits it passes (within two turns every bit it met is clear).
    fn evict(&mut self) {
        let n = self.tags.len().max(1);
        for _ in 0..2 * n {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let Some(Some(e)) = self.entries.get_mut(i) else {
                continue;
            };
            if e.referenced {
                e.referenced = false;
                continue;
            }
            // Dropped here, after the table is consistent again.
            let _evicted = self.remove_at(i);
            return;
        }
    }

    /// Empties slot `i` and shifts back the entries after it whose probe passed it.
    fn remove_at(&mut self, i: usize) -> Option<V> {
        let mask = self.mask();
        let entry = self.entries.get_mut(i)?.take()?;
        self.tags.get_mut(i)?[0] = 0;
        self.len -= 1;
        let mut hole = i;
        let mut j = i;
        for _ in 0..self.tags.len() {
            j = (j + 1) & mask;
            let Some(Some(e)) = self.entries.get(j) else { break };
            // Lossless: masked to the table's length.
            let home = (e.hash as usize) & mask;
            // The entry at j may move to the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                let moved = self.entries.get_mut(j)?.take();
                *self.entries.get_mut(hole)? = moved;
                self.tags.get_mut(hole)?[0] = self.tags.get(j)?[0];
                self.tags.get_mut(j)?[0] = 0;
                hole = j;
            }
        }
        Some(entry.value)
    }
}

#[cfg(test)]
mod tests {
    use super::{Table, TailHash};
    use std::hash::BuildHasher;

    /// A boxed key and the slice it is looked up by hash alike (the cache's lookups borrow the
    /// setting's bytes), short keys included; distinct tails spread over the buckets; the seed
    /// differs from cache to cache.
    #[test]
    fn keys_and_their_slices_hash_alike_and_tails_spread() {
        let h = TailHash::new();
        for len in [0usize, 1, 15, 16, 17, 600] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let boxed: Box<[u8]> = key.clone().into();
            assert_eq!(h.hash_one(&boxed), h.hash_one(key.as_slice()), "{len}");
        }
        let mut buckets = std::collections::HashSet::new();
        for i in 0..1000u32 {
            let mut token = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.".to_vec();
            token.extend_from_slice(format!("signature{i:08}tail").as_bytes());
            buckets.insert(h.hash_one(token.as_slice()) & 1023);
        }
        assert!(buckets.len() > 550, "{} of 1024 buckets", buckets.len());
        // Each cache has its own seed: the same token hashes differently in another cache.
        let token = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLWJ5dGVz".as_slice();
        assert_ne!(TailHash::new().hash_one(token), TailHash::new().hash_one(token));
    }

    /// Every key put is found until it is evicted or popped, with its last value; the table
    /// never holds more than its capacity; recently used entries survive an eviction that
    /// unused ones do not; removal keeps every other key findable (the shifts).
    #[test]
    fn the_table_keeps_what_it_holds_and_its_bound() {
        let key = |i: u32| format!("eyJhbGciOiJFUzI1NiJ9.payload{i}.sig{i:06}").into_bytes();
        let mut t: Table<u32> = Table::new(100);
        for i in 0..100 {
            t.put(&key(i), i);
        }
        assert_eq!(t.len(), 100);
        for i in 0..100 {
            assert_eq!(t.get_mut(&key(i)).copied(), Some(i), "{i}");
        }
        t.put(&key(7), 700);
        assert_eq!(t.get_mut(&key(7)).copied(), Some(700));
        assert_eq!(t.len(), 100);
        // Every entry was used: the first eviction clears their bits and takes one of them.
        t.put(&key(1000), 1000);
        assert_eq!(t.len(), 100);
        // Use 1..=89 (and the new one) again: the next ten evictions take none of them.
        for i in 0..90 {
            let _ = t.get_mut(&key(i));
        }
        let _ = t.get_mut(&key(1000));
        for i in 2000..2010 {
            t.put(&key(i), i);
        }
        assert_eq!(t.len(), 100);
        // The ten evictions take unused entries (the rest of the first 100, the new ones); only
        // if the hand wrapped around could one used entry go.
        let kept = (0..90).chain([1000]).filter(|&i| t.get_mut(&key(i)).is_some()).count();
        assert!(kept >= 90, "{kept} of the 91 entries in use kept");
        // Pop some, the rest are still found; popped ones are gone.
        let present: Vec<u32> = (0..2010).filter(|&i| t.get_mut(&key(i)).is_some()).collect();
        assert_eq!(present.len(), 100);
        for (n, i) in present.iter().enumerate() {
            if n % 3 == 0 {
                assert_eq!(t.pop(&key(*i)).is_some(), true);
            }
        }
        for (n, i) in present.iter().enumerate() {
            assert_eq!(t.get_mut(&key(*i)).is_some(), n % 3 != 0, "{i}");
        }
        assert_eq!(t.pop(&key(99_999)), None);
        // A key differing in one byte, or a prefix, is another key.
        let mut near = key(5000);
        t.put(&near, 1);
        let last = near.len() - 1;
        near[last] ^= 1;
        assert_eq!(t.get_mut(&near), None);
        assert_eq!(t.get_mut(&near[..last]), None);
        // Many puts and pops in turn: the bound holds, lookups stay right.
        let mut small: Table<u32> = Table::new(3);
        for i in 0..10_000u32 {
            small.put(&key(i % 17), i);
            if i % 5 == 0 {
                let _ = small.pop(&key((i / 5) % 17));
            }
            assert!(small.len() <= 3);
            assert_eq!(
                small.get_mut(&key(i % 17)).copied(),
                if i % 5 == 0 && (i / 5) % 17 == i % 17 {
                    None
                } else {
                    Some(i)
                }
            );
        }
    }

    /// Against a model (a map of everything put and not popped): whatever the table returns is
    /// the value last put under exactly that key, it never holds more than its capacity, and
    /// what it holds is found; many keys share tags and slots (small tables, long probes,
    /// shifts across the end of the array).
    #[test]
    fn the_table_never_answers_for_another_key() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for capacity in [1usize, 2, 3, 7, 8, 9, 50] {
            let mut t: Table<u64> = Table::new(capacity);
            let mut model = std::collections::HashMap::new();
            let keys: Vec<Vec<u8>> = (0..capacity * 4 + 5)
                .map(|i| {
                    let mut k = b"header.payload.".to_vec();
                    k.extend_from_slice(&(i as u64).to_le_bytes()[..1 + i % 3]);
                    k
                })
                .collect();
            for step in 0..8_000u64 {
                let r = next();
                let k = &keys[(r >> 8) as usize % keys.len()];
                match r % 4 {
                    0 | 1 => {
                        t.put(k, step);
                        model.insert(k.clone(), step);
                    }
                    2 => {
                        let got = t.pop(k);
                        let want = model.remove(k);
                        if let Some(v) = got {
                            assert_eq!(Some(v), want, "pop answered for another key");
                        }
                    }
                    _ => {
                        if let Some(v) = t.get_mut(k) {
                            assert_eq!(Some(&*v), model.get(k), "get answered for another key");
                        }
                    }
                }
                assert!(t.len() <= capacity);
                // Every entry the table counts is findable, under its own value.
                let found = keys
                    .iter()
                    .filter(|k| {
                        let v = t
                            .find(k, t.hash(k))
                            .and_then(|i| t.entries.get(i)?.as_ref().map(|e| e.value));
                        if let Some(v) = v {
                            assert_eq!(Some(&v), model.get(*k));
                        }
                        v.is_some()
                    })
                    .count();
                assert_eq!(found, t.len());
            }
        }
    }

    /// Admission: below the capacity every key is kept; once full, a key is kept on its second
    /// miss (evicting one), and a miss of another key with the same home slot in between makes
    /// it start again.
    #[test]
    fn a_full_table_keeps_a_key_on_its_second_miss() {
        let key = |i: u32| format!("header.payload{i}.sig{i:06}").into_bytes();
        let mut t: Table<u32> = Table::new(2);
        assert!(t.keep(&key(1), 1));
        assert!(t.keep(&key(2), 2));
        assert!(!t.keep(&key(3), 3));
        assert_eq!(t.get_mut(&key(3)), None);
        assert_eq!(t.len(), 2);
        assert!(t.keep(&key(3), 3));
        assert_eq!(t.get_mut(&key(3)).copied(), Some(3));
        assert_eq!(t.len(), 2);
        // The slot was cleared when key 3 was admitted: its next miss (if evicted) starts again.
        // Another key with key 4's home slot missing in between replaces the remembered miss.
        let home = |t: &Table<u32>, k: &[u8]| (t.hash(k) as usize) & t.mask();
        let k4 = key(4);
        let rival = (5..10_000)
            .map(key)
            .find(|k| home(&t, k) == home(&t, &k4) && Table::<u32>::tag(t.hash(k)) != Table::<u32>::tag(t.hash(&k4)))
            .unwrap();
        assert!(!t.keep(&k4, 4));
        assert!(!t.keep(&rival, 5));
        assert!(!t.keep(&k4, 4));
        assert!(t.keep(&k4, 4));
        assert_eq!(t.get_mut(&k4).copied(), Some(4));
        assert!(t.len() <= 2);
    }
}
