//! A bounded cache from what a series' labels are made of (the resource's
//! label-relevant attributes, the metric's Prometheus name and the data
//! point's attributes, encoded as bytes) to the finished label set, so that
//! a series seen before is not rebuilt, sorted and hashed again for every
//! sample. Handing out the same shared label set every time also lets the
//! store find the series by address instead of comparing strings.
//!
//! Invariants: an entry is returned only when its key bytes equal the
//! looked-up key exactly (the hash only picks the slot; a collision is a
//! miss and the newer key takes the slot). Keys are hashed with a random
//! seed per cache, so a sender cannot aim collisions at other senders'
//! entries. At most `capacity` entries are held: each shard keeps two
//! generations, a full current one becomes the previous one and the old
//! previous one is dropped (counted as evicted); a hit in the previous
//! generation moves the entry back to the current one, so series in use
//! stay and series gone idle for two generations go.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tocsin_rules::promql::value::Labels;

/// Shards, each behind its own lock, so concurrent requests rarely wait.
const SHARDS: usize = 16;

/// The keys are already seeded xxh64 hashes: use them as they are.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Generation = HashMap<u64, (Box<[u8]>, Cached), BuildHasherDefault<PassThrough>>;

/// What the cache holds for one key: the label set and how many of the
/// point's attributes were dropped building it (still counted per point).
#[derive(Debug, Clone)]
pub struct Cached {
    pub labels: Labels,
    pub dropped: usize,
}

#[derive(Default)]
struct Shard {
    current: Generation,
    previous: Generation,
}

/// The label-set cache of the metrics translation. Safe to share.
pub struct LabelCache {
    seed: u64,
    /// Entries per generation and shard; 0 disables the cache.
    generation_cap: usize,
    shards: Vec<Mutex<Shard>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evicted: AtomicU64,
}

impl std::fmt::Debug for LabelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelCache")
            .field("generation_cap", &self.generation_cap)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl LabelCache {
    /// A cache of at most `capacity` entries (0: caches nothing).
    pub fn new(capacity: usize) -> LabelCache {
        LabelCache {
            seed: RandomState::new().hash_one(0x7f4a_7c15_u64),
            generation_cap: capacity / (2 * SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Whether the cache holds anything at all.
    pub fn enabled(&self) -> bool {
        self.generation_cap > 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        xxhash_rust::xxh64::xxh64(key, self.seed)
    }

    fn shard(&self, h: u64) -> std::sync::MutexGuard<'_, Shard> {
        // High bits pick the shard; the maps use the low bits.
        let i = (h >> 59) as usize % SHARDS;
        // Every update leaves a shard's maps whole; a panic elsewhere
        // while holding the lock does not make them unusable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry whose key is exactly `key`.
    pub fn get(&self, key: &[u8]) -> Option<Cached> {
        if !self.enabled() {
            return None;
        }
        let h = self.hash(key);
        let mut shard = self.shard(h);
        if let Some((k, c)) = shard.current.get(&h)
            && **k == *key
        {
            let c = c.clone();
            drop(shard);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(c);
        }
        let found = match shard.previous.get(&h) {
            Some((k, _)) if **k == *key => shard.previous.remove(&h),
            _ => None,
        };
        let out = found.map(|(k, c)| {
            let out = c.clone();
            self.insert_locked(&mut shard, h, k, c);
            out
        });
        drop(shard);
        let counter = if out.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Remembers `value` under `key`.
    pub fn insert(&self, key: &[u8], value: Cached) {
        if !self.enabled() {
            return;
        }
        let h = self.hash(key);
        let mut shard = self.shard(h);
        self.insert_locked(&mut shard, h, key.into(), value);
    }

    fn insert_locked(&self, shard: &mut Shard, h: u64, key: Box<[u8]>, value: Cached) {
        if shard.current.len() >= self.generation_cap && !shard.current.contains_key(&h) {
            let dropped = std::mem::take(&mut shard.previous);
            self.evicted
                .fetch_add(dropped.len() as u64, Ordering::Relaxed);
            shard.previous = std::mem::take(&mut shard.current);
            // The old previous generation's table is reused, emptied.
            shard.current = dropped;
            shard.current.clear();
        }
        shard.current.insert(h, (key, value));
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.current.len() + s.previous.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries dropped to stay within the capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// Appends `s` to a cache key, length first, so that no two sequences of
/// strings encode alike.
pub fn push_str(key: &mut Vec<u8>, s: &str) {
    push_len(key, s.len());
    key.extend_from_slice(s.as_bytes());
}

/// Appends a length or count to a cache key.
pub fn push_len(key: &mut Vec<u8>, n: usize) {
    key.extend_from_slice(&(n as u64).to_le_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Cached {
        Cached {
            labels: Labels::from_pairs([("__name__", name)]),
            dropped: 0,
        }
    }

    #[test]
    fn a_hit_needs_the_exact_key() {
        let c = LabelCache::new(1000);
        c.insert(b"abc", entry("a"));
        assert_eq!(c.get(b"abc").unwrap().labels.metric_name(), "a");
        assert!(c.get(b"abd").is_none());
        assert!(c.get(b"ab").is_none());
        assert_eq!((c.hits(), c.misses()), (1, 2));
    }

    #[test]
    fn stays_within_its_capacity_and_keeps_entries_in_use() {
        let cap = 2 * SHARDS * 10;
        let c = LabelCache::new(cap);
        c.insert(b"hot", entry("hot"));
        for i in 0..10_000u32 {
            c.insert(&i.to_le_bytes(), entry("cold"));
            // The hot entry is used all the time, so it is never evicted.
            assert!(c.get(b"hot").is_some(), "lost after {i}");
            assert!(c.len() <= cap, "{} > {cap}", c.len());
        }
        assert!(c.evicted() > 0);
        assert!(c.len() + c.evicted() as usize >= 10_000);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let c = LabelCache::new(0);
        c.insert(b"k", entry("a"));
        assert!(c.get(b"k").is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn key_encoding_separates_strings() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        push_str(&mut a, "ab");
        push_str(&mut a, "c");
        push_str(&mut b, "a");
        push_str(&mut b, "bc");
        assert_ne!(a, b);
    }
}
