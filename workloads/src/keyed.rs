//! The five workloads over rotating keys: register, cas-register, kv, set
//! and append-list.
//!
//! Every workload spreads its operations over `keys_active` keys at a time
//! and retires a key after `ops_per_key_max` operations, replacing it with a
//! fresh one (Jepsen's `independent` generator). That keeps each key's
//! history short, so the per-key linearizability search stays cheap however
//! long the test runs.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::generator::{Context, Generator, Invocation, Next};
use crate::{WorkloadConfig, WorkloadKind};

/// Register values are drawn from a small range, as in Jepsen, so reads can
/// match earlier writes and the checker's state space stays small.
const REGISTER_VALUE_RANGE: u64 = 5;

struct ActiveKey {
    id: u64,
    ops_done: u64,
}

/// The infinite operation source of one workload.
pub struct KeyedGenerator {
    kind: WorkloadKind,
    ops_per_key_max: u64,
    active: Vec<ActiveKey>,
    key_id_next: u64,
    /// Source of unique values for kv writes, set adds and appends.
    unique_next: u64,
    rng: ChaCha8Rng,
}

impl KeyedGenerator {
    pub fn new(config: &WorkloadConfig, seed: u64) -> Self {
        assert!(config.keys_active > 0, "keys_active must be positive (validated in the spec)");
        assert!(config.ops_per_key_max > 0, "ops_per_key_max must be positive (validated in the spec)");
        assert!(!config.kind.is_transactional(), "transactions have their own generator");
        let active = (0..u64::from(config.keys_active))
            .map(|id| ActiveKey { id, ops_done: 0 })
            .collect();
        KeyedGenerator {
            kind: config.kind,
            ops_per_key_max: config.ops_per_key_max,
            active,
            key_id_next: u64::from(config.keys_active),
            unique_next: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn take_key(&mut self) -> String {
        let slot = self.rng.random_range(0..self.active.len());
        let key = key_name(self.kind, self.active[slot].id);
        self.active[slot].ops_done += 1;
        if self.active[slot].ops_done >= self.ops_per_key_max {
            self.active[slot] = ActiveKey { id: self.key_id_next, ops_done: 0 };
            self.key_id_next += 1;
        }
        key
    }

    fn unique(&mut self) -> u64 {
        self.unique_next += 1;
        self.unique_next
    }

    fn operation(&mut self, key: String) -> Invocation {
        let roll: u32 = self.rng.random_range(0..100);
        let (f, value) = match self.kind {
            WorkloadKind::Register if roll < 50 => ("read", json!(null)),
            WorkloadKind::Register => ("write", json!(self.rng.random_range(0..REGISTER_VALUE_RANGE))),
            WorkloadKind::CasRegister if roll < 34 => ("read", json!(null)),
            WorkloadKind::CasRegister if roll < 67 => {
                ("write", json!(self.rng.random_range(0..REGISTER_VALUE_RANGE)))
            }
            WorkloadKind::CasRegister => {
                let from = self.rng.random_range(0..REGISTER_VALUE_RANGE);
                let to = self.rng.random_range(0..REGISTER_VALUE_RANGE);
                ("cas", json!([from, to]))
            }
            WorkloadKind::Kv if roll < 40 => ("get", json!(null)),
            WorkloadKind::Kv if roll < 70 => ("put", json!(format!("v{}", self.unique()))),
            WorkloadKind::Kv => ("append", json!(format!(".{}", self.unique()))),
            WorkloadKind::Set if roll < 10 => ("read", json!(null)),
            WorkloadKind::Set => ("add", json!(self.unique())),
            WorkloadKind::Append if roll < 50 => ("read", json!(null)),
            WorkloadKind::Append => ("append", json!(self.unique())),
            WorkloadKind::ListAppend | WorkloadKind::RwRegister | WorkloadKind::Bank => {
                unreachable!("refused in KeyedGenerator::new")
            }
        };
        Invocation { f: f.to_string(), key: Some(key), value }
    }
}

impl Generator for KeyedGenerator {
    fn next(&mut self, _ctx: &Context) -> Next {
        let key = self.take_key();
        Next::Invoke(self.operation(key))
    }
}

/// The key name for key number `id` of a workload (`kv-3`, `set-0`, ...).
pub fn key_name(kind: WorkloadKind, id: u64) -> String {
    match kind.key_prefix() {
        "" => id.to_string(),
        prefix => format!("{prefix}-{id}"),
    }
}

/// One final read per key, issued by fresh clients after the recovery period.
pub fn final_reads(kind: WorkloadKind, keys: &[String]) -> Vec<Invocation> {
    keys.iter().filter_map(|key| final_read(kind, key)).collect()
}

/// The final read of one key: a read, a get, or for transactions a
/// read-only transaction of that key (`None` for a key that is not one of
/// the transactions' integer keys).
pub fn final_read(kind: WorkloadKind, key: &str) -> Option<Invocation> {
    let read = |f: &str| Invocation { f: f.to_string(), key: Some(key.to_string()), value: json!(null) };
    match kind {
        WorkloadKind::Kv => Some(read("get")),
        WorkloadKind::ListAppend | WorkloadKind::RwRegister => key.parse().ok().map(crate::transactions::read_txn),
        // Every bank read is of all accounts already.
        WorkloadKind::Bank => None,
        _ => Some(read("read")),
    }
}
