//! The search's memo: every `(linearized set, model state)` configuration
//! already explored, so the search never explores one twice (Lowe's
//! memoisation, as in Porcupine's `cache`).
//!
//! Open operations (unknown outcome, no return) are optional: a
//! configuration is also skipped when one known to fail had the same closed
//! operations and state and a subset of its open ones. That one could do
//! everything this one can (the extra open operations may simply never take
//! effect). So entries are keyed by their closed operations and state only,
//! and a chain keeps only the smallest open sets it has seen. Measured over
//! 139 histories of our own runs: never more configurations than exact
//! matching, 10 % fewer (geometric mean); the search's order does the rest
//! (see `search`).
//!
//! Bitsets live in one flat arena (`words` u64s per entry) and entries with
//! the same hash are chained, which keeps an entry at a few dozen bytes.
use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

/// The state's part of a cache key. Fx is fast and good enough here: the
/// states are the search's own, not input crafted to collide.
pub fn state_hash<S: Hash>(state: &S) -> u64 {
    FxBuildHasher.hash_one(state)
}

/// splitmix64: each operation's contribution to the bitset hash, so the hash
/// is updated in O(1) when an operation is linearized or undone.
pub fn op_hash(op_index: u32) -> u64 {
    let mut z = u64::from(op_index).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const CHAIN_END: u32 = u32::MAX;
const SLOTS_MIN: usize = 1 << 10;

/// Whether a stored linearized set covers `bits`: the same closed
/// operations, and a subset of its open ones. Word-by-word: the bitsets are
/// short, and a libc memcmp call costs more.
fn covers(stored: &[u64], bits: &[u64], open: &[u64]) -> bool {
    // A differing bit is allowed only where it is open and `bits` has it.
    stored.iter().zip(bits).zip(open).all(|((s, b), o)| (s ^ b) & (s | !o) == 0)
}

/// An open-addressing table from hash key to the head of its chain. Each
/// slot is 8 bytes, (tag, chain head), with the tag the key's high half: the
/// cache is memory-bound, and a small table misses the CPU cache less.
struct Heads {
    /// (tag, chain head); a head of `CHAIN_END` marks a free slot.
    slots: Vec<(u32, u32)>,
    len: usize,
}

impl Heads {
    fn new() -> Heads {
        Heads { slots: vec![(0, CHAIN_END); SLOTS_MIN], len: 0 }
    }

    fn tag(key: u64) -> u32 {
        (key >> 32) as u32
    }

    /// The slot holding `key`, or the free slot where it belongs.
    fn find(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let tag = Heads::tag(key);
        let mut at = (key as usize) & mask;
        // Bounded: the load factor stays at most 3/4, so a free slot exists.
        for _ in 0..self.slots.len() {
            let (slot_tag, head) = self.slots[at];
            if head == CHAIN_END || slot_tag == tag {
                return at;
            }
            at = (at + 1) & mask;
        }
        unreachable!("the heads table is never full");
    }

    fn grow_if_needed(&mut self, keys: &[u64]) {
        if (self.len + 1) * 4 <= self.slots.len() * 3 {
            return;
        }
        let doubled = vec![(0, CHAIN_END); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for (tag, head) in old.into_iter().filter(|(_, head)| *head != CHAIN_END) {
            let at = self.find(keys[head as usize]);
            self.slots[at] = (tag, head);
        }
    }
}

pub struct Cache<S> {
    words: usize,
    /// The open operations of the search (see [`covers`]).
    open: Vec<u64>,
    /// Whether `open` has any: without, no entry covers another.
    has_open: bool,
    bits: Vec<u64>,
    states: Vec<S>,
    chain_next: Vec<u32>,
    /// Each entry's full key: chains share a tag, not always a key.
    keys: Vec<u64>,
    /// Entries known to fail (see [`Cache::finish`]). One still on the
    /// search's stack covers nothing: it may be covering its own
    /// descendant (open operations that lead back to its state), and a
    /// search stopped at its step limit never finishes it.
    finished: Vec<bool>,
    heads: Heads,
    /// The stored states' heap parts, as their model reports them.
    state_heap_bytes: u64,
}

impl<S: Eq + Hash> Cache<S> {
    pub fn new(words: usize) -> Self {
        Cache {
            words,
            open: vec![0; words],
            has_open: false,
            bits: Vec::new(),
            states: Vec::new(),
            chain_next: Vec::new(),
            keys: Vec::new(),
            finished: Vec::new(),
            heads: Heads::new(),
            state_heap_bytes: 0,
        }
    }

    /// Empties the cache for a search of `open.len()`-word bitsets with
    /// these open operations, keeping its allocations: a worker searching
    /// key after key touches its pages once, not once per key (c50-ok:
    /// 4,541 -> 4,029 page faults).
    pub fn reset(&mut self, open: &[u64]) {
        self.words = open.len();
        self.open.clear();
        self.open.extend_from_slice(open);
        self.has_open = open.iter().any(|word| *word != 0);
        self.bits.clear();
        self.states.clear();
        self.chain_next.clear();
        self.keys.clear();
        self.finished.clear();
        // Clearing costs the table's size: worth it for a table the last
        // search filled, not for a large one after a small search (one big
        // key, then thousands of tiny ones, would clear it thousands of times).
        if self.heads.len * 4 >= self.heads.slots.len() {
            self.heads.slots.fill((0, CHAIN_END));
            self.heads.len = 0;
        } else {
            self.heads = Heads::new();
        }
        self.state_heap_bytes = 0;
    }

    /// Inserts the configuration and returns its entry; `None` if it, or
    /// one that covers it, was already there. `closed_hash` hashes the closed operations of `bits`
    /// only. `heap_bytes` is asked only for a state actually stored, and before the
    /// cache clones it, so that it can tell a fresh allocation from one
    /// already shared ([`crate::Model::state_heap_bytes`]).
    pub fn insert(&mut self, bits: &[u64], closed_hash: u64, state: &S, heap_bytes: impl FnOnce(&S) -> usize) -> Option<u32>
    where
        S: Clone,
    {
        debug_assert_eq!(bits.len(), self.words);
        let key = closed_hash ^ state_hash(state).rotate_left(17);
        let slot = self.heads.find(key);
        let head = self.heads.slots[slot].1;
        if head != CHAIN_END && self.chain_contains(head, key, bits, state) {
            return None;
        }
        let index = self.states.len() as u32;
        assert!(index != CHAIN_END, "cache entry count overflows u32");
        self.state_heap_bytes += heap_bytes(state) as u64;
        self.bits.extend_from_slice(bits);
        self.states.push(state.clone());
        self.chain_next.push(head);
        self.keys.push(key);
        self.finished.push(false);
        if head == CHAIN_END {
            self.heads.grow_if_needed(&self.keys);
            let slot = self.heads.find(key);
            self.heads.slots[slot] = (Heads::tag(key), index);
            self.heads.len += 1;
        } else {
            self.heads.slots[slot].1 = index;
            self.unlink_covered(index, key);
        }
        Some(index)
    }

    /// Marks an entry's configuration as known to fail: the search
    /// explored it and backtracked. Only such an entry covers another one.
    pub fn finish(&mut self, entry: u32) {
        self.finished[entry as usize] = true;
    }

    /// Takes out of `new`'s chain the entries it covers: they can never
    /// cover anything it does not, and the chain of one (closed set, state)
    /// would otherwise keep every set of open operations ever tried.
    fn unlink_covered(&mut self, new: u32, key: u64) {
        if !self.has_open {
            return;
        }
        let new_bits = new as usize * self.words..(new as usize + 1) * self.words;
        let mut prev = new as usize;
        let mut at = self.chain_next[prev];
        while at != CHAIN_END {
            let index = at as usize;
            let next = self.chain_next[index];
            let stored = &self.bits[index * self.words..(index + 1) * self.words];
            if self.keys[index] == key
                && covers(&self.bits[new_bits.clone()], stored, &self.open)
                && self.states[index] == self.states[new as usize]
            {
                self.chain_next[prev] = next;
            } else {
                prev = index;
            }
            at = next;
        }
    }

    fn chain_contains(&self, head: u32, key: u64, bits: &[u64], state: &S) -> bool {
        let mut at = head;
        while at != CHAIN_END {
            let index = at as usize;
            if self.keys[index] != key {
                at = self.chain_next[index];
                continue;
            }
            let stored = &self.bits[index * self.words..(index + 1) * self.words];
            if covers(stored, bits, &self.open) && self.finished[index] && self.states[index] == *state {
                return true;
            }
            at = self.chain_next[index];
        }
        false
    }

    pub fn state_heap_bytes(&self) -> u64 {
        self.state_heap_bytes
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Bytes held: entries, the heads table and the states' heap parts
    /// (vector slack beyond `len` is not counted: at most a doubling, or
    /// what an earlier search in this cache used, within its own budget).
    pub fn bytes(&self) -> u64 {
        let per_entry = self.words * 8 + std::mem::size_of::<S>() + 4 + 8 + 1;
        (self.len() * per_entry + self.heads.slots.len() * 8) as u64 + self.state_heap_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts and, as the search does once it backtracks, finishes.
    fn add(cache: &mut Cache<i64>, bits: &[u64], closed_hash: u64, state: i64) -> bool {
        let entry = cache.insert(bits, closed_hash, &state, |_| 0);
        entry.inspect(|entry| cache.finish(*entry)).is_some()
    }

    #[test]
    fn insert_reports_duplicates_only() {
        let mut cache: Cache<i64> = Cache::new(2);
        assert!(add(&mut cache, &[1, 0], op_hash(0), 5));
        assert!(!add(&mut cache, &[1, 0], op_hash(0), 5));
        assert!(add(&mut cache, &[1, 0], op_hash(0), 6));
        assert!(add(&mut cache, &[3, 0], op_hash(0) ^ op_hash(1), 5));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_content() {
        let mut cache: Cache<i64> = Cache::new(1);
        assert!(add(&mut cache, &[1], 42, 5));
        assert!(add(&mut cache, &[2], 42, 5));
        assert!(!add(&mut cache, &[2], 42, 5));
    }

    #[test]
    fn a_configuration_with_more_open_operations_is_covered() {
        let mut cache: Cache<i64> = Cache::new(1);
        // Operations 1 and 2 are open; 0 and 3 are closed.
        cache.reset(&[0b0110]);
        let closed_0 = op_hash(0);
        assert!(add(&mut cache, &[0b0011], closed_0, 5));
        assert!(!add(&mut cache, &[0b0111], closed_0, 5), "a superset of the open ones is covered");
        assert!(add(&mut cache, &[0b0101], closed_0, 5), "another open one is not a superset");
        assert!(add(&mut cache, &[0b0001], closed_0, 5), "a subset of the open ones is new");
        assert!(!add(&mut cache, &[0b0111], closed_0, 5));
        assert!(!add(&mut cache, &[0b0011], closed_0, 5), "covered by the subset that replaced it");
        assert!(add(&mut cache, &[0b1011], closed_0 ^ op_hash(3), 5), "another closed set is new");
        assert!(add(&mut cache, &[0b0011], closed_0, 6), "another state is new");
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn an_unfinished_entry_covers_nothing() {
        let mut cache: Cache<i64> = Cache::new(1);
        cache.reset(&[0b10]);
        let on_stack = cache.insert(&[0b01], op_hash(0), &5, |_| 0).expect("new");
        assert!(cache.insert(&[0b11], op_hash(0), &5, |_| 0).is_some(), "not known to fail yet");
        cache.finish(on_stack);
        assert!(cache.insert(&[0b11], op_hash(0), &5, |_| 0).is_none(), "known to fail: covers");
    }

    #[test]
    fn heap_bytes_are_counted_once_per_stored_state() {
        let mut cache: Cache<i64> = Cache::new(1);
        let empty = cache.bytes();
        let entry = cache.insert(&[1], 1, &5, |_| 1000).expect("new");
        cache.finish(entry);
        let one = cache.bytes();
        assert!(one >= empty + 1000);
        assert!(cache.insert(&[1], 1, &5, |_| panic!("asked for a duplicate")).is_none());
        assert_eq!(cache.bytes(), one);
    }
}
