//! A byte-budgeted LRU cache of computed artifacts, stored in a preallocated slab.
//!
//! The cache is the demo app's memory knob. Its whole `--cache-mb` budget is
//! allocated and written at startup, as a slab of equal-sized slots (every
//! artifact of a run has the size set by `--algorithm`), so resident memory
//! follows the setting from the first second of a trial, just like a JVM
//! started with `-XX:+AlwaysPreTouch` or a memcached with preallocated slabs.
//! Without that, RSS would trail the setting by minutes while the cache
//! fills, and servo would measure the memory cost of a setting wrongly.
//!
//! Hits read the digest back out of the stored artifact, so the cached bytes
//! are really used. Recency is tracked with a monotonically increasing tick per
//! access and a `BTreeMap` from tick to key, which keeps every operation
//! `O(log n)` without an `unsafe` linked list; at a few hundred requests per
//! second that is negligible next to a miss.

use std::collections::{BTreeMap, HashMap};

/// Bookkeeping bytes charged to every entry on top of its slot (hash map
/// entry and recency index node, rounded up), so that `--cache-mb` bounds what
/// the cache really costs rather than only its payload.
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = 128;

/// Length of the digest stored at the start of every artifact.
pub(crate) const DIGEST_BYTES: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: usize,
    tick: u64,
}

/// Least-recently-used cache of fixed-size artifacts, bounded by bytes.
#[derive(Debug)]
pub(crate) struct LruCache {
    slot_bytes: usize,
    capacity_bytes: usize,
    /// `capacity * slot_bytes` bytes, written at construction so it is resident.
    storage: Box<[u8]>,
    free: Vec<usize>,
    next_tick: u64,
    slots: HashMap<u64, Slot>,
    recency: BTreeMap<u64, u64>,
}

impl LruCache {
    /// A cache of as many `slot_bytes` artifacts (at least [`DIGEST_BYTES`])
    /// as fit in `capacity_bytes`, counting [`ENTRY_OVERHEAD_BYTES`] each.
    pub(crate) fn new(capacity_bytes: usize, slot_bytes: usize) -> Self {
        let slot_bytes = slot_bytes.max(DIGEST_BYTES);
        let capacity = capacity_bytes / (slot_bytes + ENTRY_OVERHEAD_BYTES);
        // A non-zero fill makes the allocator write every page (zeroed memory
        // would be mapped lazily and not count as resident until first use).
        let storage = vec![0xa5; capacity * slot_bytes].into_boxed_slice();
        Self {
            slot_bytes,
            capacity_bytes,
            storage,
            free: (0..capacity).rev().collect(),
            next_tick: 0,
            slots: HashMap::with_capacity(capacity),
            recency: BTreeMap::new(),
        }
    }

    /// Number of entries the cache can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.storage.len() / self.slot_bytes
    }

    /// Returns the digest cached for `key` and marks it most recently used.
    pub(crate) fn get(&mut self, key: u64) -> Option<[u8; 32]> {
        let tick = self.bump_tick();
        let slot = self.slots.get_mut(&key)?;
        self.recency.remove(&slot.tick);
        slot.tick = tick;
        self.recency.insert(tick, key);
        let start = slot.index * self.slot_bytes;
        let mut digest = [0u8; DIGEST_BYTES];
        digest.copy_from_slice(&self.storage[start..start + DIGEST_BYTES]);
        Some(digest)
    }

    /// Stores `artifact` under `key` as the most recently used entry, evicting
    /// the least recently used one if the cache is full. The artifact must
    /// begin with its digest; it is truncated or zero-padded to the slot size.
    /// With no capacity (`--cache-mb 0`), nothing is stored.
    pub(crate) fn insert(&mut self, key: u64, artifact: &[u8]) {
        let index = match self.slots.remove(&key) {
            Some(existing) => {
                self.recency.remove(&existing.tick);
                existing.index
            }
            None => match self.free.pop() {
                Some(index) => index,
                None => match self.recency.pop_first() {
                    Some((_, victim)) => match self.slots.remove(&victim) {
                        Some(evicted) => evicted.index,
                        None => return,
                    },
                    None => return,
                },
            },
        };
        let slot = &mut self.storage[index * self.slot_bytes..(index + 1) * self.slot_bytes];
        let copied = artifact.len().min(slot.len());
        slot[..copied].copy_from_slice(&artifact[..copied]);
        slot[copied..].fill(0);
        let tick = self.bump_tick();
        self.recency.insert(tick, key);
        self.slots.insert(key, Slot { index, tick });
    }

    fn bump_tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// Bytes charged for the entries currently cached.
    pub(crate) fn used_bytes(&self) -> usize {
        self.slots.len() * (self.slot_bytes + ENTRY_OVERHEAD_BYTES)
    }

    /// The budget the cache was created with (`--cache-mb`).
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: usize = 100;

    fn artifact(tag: u8) -> Vec<u8> {
        vec![tag; SLOT]
    }

    /// Room for exactly `n` entries.
    fn cache_for(n: usize) -> LruCache {
        LruCache::new(n * (SLOT + ENTRY_OVERHEAD_BYTES), SLOT)
    }

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let mut cache = cache_for(2);
        assert_eq!(cache.capacity(), 2);
        cache.insert(1, &artifact(1));
        cache.insert(2, &artifact(2));
        assert_eq!(cache.get(1), Some([1; 32]), "touching 1 makes 2 the LRU");
        cache.insert(3, &artifact(3));
        assert_eq!(cache.get(2), None);
        assert_eq!(cache.get(1), Some([1; 32]));
        assert_eq!(cache.get(3), Some([3; 32]));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.used_bytes(), 2 * (SLOT + ENTRY_OVERHEAD_BYTES));
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let mut cache = LruCache::new(0, SLOT);
        assert_eq!(cache.capacity(), 0);
        cache.insert(7, &artifact(7));
        assert_eq!(cache.get(7), None);
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn reinserting_a_key_replaces_it_in_place() {
        let mut cache = cache_for(2);
        cache.insert(1, &artifact(1));
        cache.insert(2, &artifact(2));
        cache.insert(1, &artifact(9));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(1), Some([9; 32]));
        assert_eq!(cache.get(2), Some([2; 32]), "replacing must not evict");
    }

    #[test]
    fn the_budget_is_allocated_up_front() {
        let cache = LruCache::new(10 * (SLOT + ENTRY_OVERHEAD_BYTES) + 50, SLOT);
        assert_eq!(cache.capacity(), 10);
        assert_eq!(cache.storage.len(), 10 * SLOT);
        assert!(cache.storage.iter().all(|&byte| byte != 0));
    }

    #[test]
    fn short_artifacts_are_padded_and_long_ones_truncated() {
        let mut cache = cache_for(2);
        cache.insert(1, &[4u8; DIGEST_BYTES]);
        assert_eq!(cache.get(1), Some([4; 32]));
        cache.insert(2, &vec![5u8; SLOT * 3]);
        assert_eq!(cache.get(2), Some([5; 32]));
        assert_eq!(
            cache.get(1),
            Some([4; 32]),
            "the long artifact stays in its slot"
        );
    }
}
