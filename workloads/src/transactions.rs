//! Elle's transactional workloads: transactions of micro-operations on a
//! few integer keys drawn from a small active set.
//!
//! An operation is `f: "txn"` with no key and, as its value, a list of
//! micro-operations:
//! - list-append: `["append", k, v]` adds `v` to the end of key `k`'s
//!   list, `["r", k, null]` reads the whole list (the completion fills it
//!   in: `["r", k, [1, 2]]`);
//! - rw-register: `["w", k, v]` writes `v` to register `k`, `["r", k,
//!   null]` reads it (`["r", k, 2]`, or null for nil).
//!
//! Values are unique per key (each key counts its own writes from 1), so
//! every read names exactly which write it saw: what the transaction
//! checker infers version orders from. A key retires after
//! `ops_per_key_max` writes and a fresh one takes its place, as Elle's
//! generator does, so each key's history stays short.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::generator::{Context, Generator, Invocation, Next};
use crate::{WorkloadConfig, WorkloadKind};

/// Micro-operations per transaction: 1 to this many (Elle's
/// `max-txn-length` in most Jepsen tests).
pub const TXN_MOPS_MAX: usize = 4;

struct ActiveKey {
    key: u64,
    writes: u64,
}

/// The infinite operation source of a transactional workload.
pub struct TxnGenerator {
    /// The write micro-operation: `append` or `w`.
    write_f: &'static str,
    writes_per_key_max: u64,
    active: Vec<ActiveKey>,
    key_next: u64,
    rng: ChaCha8Rng,
}

impl TxnGenerator {
    pub fn new(config: &WorkloadConfig, seed: u64) -> Self {
        assert!(config.keys_active > 0, "keys_active must be positive (validated in the spec)");
        assert!(config.ops_per_key_max > 0, "ops_per_key_max must be positive (validated in the spec)");
        let write_f = match config.kind {
            WorkloadKind::ListAppend => "append",
            WorkloadKind::RwRegister => "w",
            other => panic!("{other} is not a transactional workload"),
        };
        let active = (0..u64::from(config.keys_active)).map(|key| ActiveKey { key, writes: 0 }).collect();
        TxnGenerator {
            write_f,
            writes_per_key_max: config.ops_per_key_max,
            active,
            key_next: u64::from(config.keys_active),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// One micro-operation on a random active key; a write that reaches
    /// the key's bound retires it.
    fn mop(&mut self) -> Value {
        let slot = self.rng.random_range(0..self.active.len());
        let key = self.active[slot].key;
        if self.rng.random_bool(0.5) {
            return json!(["r", key, null]);
        }
        self.active[slot].writes += 1;
        let value = self.active[slot].writes;
        if value >= self.writes_per_key_max {
            self.active[slot] = ActiveKey { key: self.key_next, writes: 0 };
            self.key_next += 1;
        }
        json!([self.write_f, key, value])
    }
}

impl Generator for TxnGenerator {
    fn next(&mut self, _ctx: &Context) -> Next {
        let length = self.rng.random_range(1..=TXN_MOPS_MAX);
        let mops: Vec<Value> = (0..length).map(|_| self.mop()).collect();
        Next::Invoke(Invocation { f: faultline_checkers::TXN_F.to_string(), key: None, value: Value::Array(mops) })
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
