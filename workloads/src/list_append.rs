//! Elle's list-append workload: transactions of micro-operations on a few
//! integer keys drawn from a small active set.
//!
//! An operation is `f: "txn"` with no key and, as its value, a list of
//! micro-operations: `["append", k, v]` adds `v` to the end of key `k`'s
//! list, `["r", k, null]` reads the whole list (the completion fills it in:
//! `["r", k, [1, 2]]`). Values are unique per key (each key counts its own
//! appends from 1), so every read names exactly which appends it saw, in
//! which order: what the transaction checker infers version orders from.
//! A key retires after `ops_per_key_max` appends and a fresh one takes its
//! place, as Elle's generator does, so each key's list stays short.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::generator::{Context, Generator, Invocation, Next};
use crate::WorkloadConfig;

/// Micro-operations per transaction: 1 to this many (Elle's
/// `max-txn-length` in most Jepsen tests).
pub const TXN_MOPS_MAX: usize = 4;

struct ActiveKey {
    key: u64,
    appends: u64,
}

/// The infinite operation source of the list-append workload.
pub struct ListAppendGenerator {
    appends_per_key_max: u64,
    active: Vec<ActiveKey>,
    key_next: u64,
    rng: ChaCha8Rng,
}

impl ListAppendGenerator {
    pub fn new(config: &WorkloadConfig, seed: u64) -> Self {
        assert!(config.keys_active > 0, "keys_active must be positive (validated in the spec)");
        assert!(config.ops_per_key_max > 0, "ops_per_key_max must be positive (validated in the spec)");
        let active = (0..u64::from(config.keys_active)).map(|key| ActiveKey { key, appends: 0 }).collect();
        ListAppendGenerator {
            appends_per_key_max: config.ops_per_key_max,
            active,
            key_next: u64::from(config.keys_active),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// One micro-operation on a random active key; an append that reaches
    /// the key's bound retires it.
    fn mop(&mut self) -> Value {
        let slot = self.rng.random_range(0..self.active.len());
        let key = self.active[slot].key;
        if self.rng.random_bool(0.5) {
            return json!(["r", key, null]);
        }
        self.active[slot].appends += 1;
        let value = self.active[slot].appends;
        if value >= self.appends_per_key_max {
            self.active[slot] = ActiveKey { key: self.key_next, appends: 0 };
            self.key_next += 1;
        }
        json!(["append", key, value])
    }
}

impl Generator for ListAppendGenerator {
    fn next(&mut self, _ctx: &Context) -> Next {
        let length = self.rng.random_range(1..=TXN_MOPS_MAX);
        let mops: Vec<Value> = (0..length).map(|_| self.mop()).collect();
        Next::Invoke(Invocation { f: "txn".to_string(), key: None, value: Value::Array(mops) })
    }
}

/// A read-only transaction of one key: how final reads look in this workload.
pub fn read_txn(key: u64) -> Invocation {
    Invocation { f: "txn".to_string(), key: None, value: json!([["r", key, null]]) }
}

/// The keys a transaction's micro-operations touch (malformed ones skipped:
/// the checker reports those).
pub fn keys_of(value: &Value) -> impl Iterator<Item = u64> + '_ {
    value.as_array().into_iter().flatten().filter_map(|mop| mop.get(1)?.as_u64())
}
