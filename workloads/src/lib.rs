//! Pure, seeded generators of client operations. Each workload names the
//! checker its history needs. Generators never read a clock or do I/O: time
//! arrives in the context the interpreter (the harness runner) passes in.
//!
//! Operations, as they appear in the history (`f`, `value` on invoke → on ok):
//! - register: `read` null → integer or null; `write` integer.
//! - cas-register: register ops plus `cas` `[from, to]`. A `fail` means it
//!   changed nothing (often: the register did not hold `from`); the checkers
//!   do not read it as an observation of the value (see the history schema
//!   in faultline-checkers).
//! - kv: `get` null → string or null; `put` a string unique to this write;
//!   `append` a unique string, concatenated to the value.
//! - set: `add` a unique integer; `read` null → list of integers.
//! - append: `append` a unique integer; `read` null → the list, in order.
//! - list-append: `txn`, no key, a list of micro-operations
//!   `["append", k, v]` and `["r", k, null]` → the same list with each read
//!   filled in (see [`transactions`]); checked as transactions, not per key.
//! - rw-register: `txn` of `["w", k, v]` and `["r", k, null]` → each read
//!   filled in with the value or null.
//! - bank: `transfer` `{"from", "to", "amount"}`; `read` of every account's
//!   balance (see [`bank`]); every read must show the same total.
//!
//! A single-key workload may mix in list-append or rw-register
//! transactions ([`TransactionShare`]): its history then holds both kinds,
//! and [`WorkloadConfig::checkers`] names both checkers.
pub mod bank;
pub mod combinators;
pub mod final_reads;
pub mod generator;
pub mod keyed;
pub mod transactions;

use std::fmt;
use std::str::FromStr;

use faultline_checkers::txn::TxnKind;
use faultline_checkers::ModelKind;
use serde::{Deserialize, Serialize};

pub use combinators::{each, limit, mix, phases, stagger, time_limit};
pub use final_reads::FinalReads;
pub use generator::{Context, Generator, Invocation, Next};
pub use keyed::{final_reads, key_name, KeyedGenerator};
pub use bank::BankGenerator;
pub use transactions::TxnGenerator;

/// Which workload a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Register,
    CasRegister,
    Kv,
    Set,
    Append,
    ListAppend,
    RwRegister,
    Bank,
}

/// The checkers a workload's history needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CheckerNeed {
    /// Per-key linearizability against `model`, and, for workloads with
    /// final reads that must hold every acknowledged write, the durability
    /// checker.
    Linearizable { model: ModelKind, durability: bool },
    /// The transaction (dependency-graph) checker on transactions of this
    /// kind.
    Transactions(TxnKind),
    /// The bank checker: every read shows the whole total, no balance
    /// below zero.
    Bank,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 8] = [
        WorkloadKind::Register,
        WorkloadKind::CasRegister,
        WorkloadKind::Kv,
        WorkloadKind::Set,
        WorkloadKind::Append,
        WorkloadKind::ListAppend,
        WorkloadKind::RwRegister,
        WorkloadKind::Bank,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::CasRegister => "cas-register",
            WorkloadKind::Kv => "kv",
            WorkloadKind::Set => "set",
            WorkloadKind::Append => "append",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::RwRegister => "rw-register",
            WorkloadKind::Bank => "bank",
        }
    }

    /// Operations are transactions (`f: "txn"`) over integer keys rather
    /// than single-key operations.
    pub fn is_transactional(self) -> bool {
        matches!(self, WorkloadKind::ListAppend | WorkloadKind::RwRegister | WorkloadKind::Bank)
    }

    fn key_prefix(self) -> &'static str {
        match self {
            WorkloadKind::Register => "reg",
            WorkloadKind::CasRegister => "cas",
            WorkloadKind::Kv => "kv",
            WorkloadKind::Set => "set",
            WorkloadKind::Append => "list",
            // Transaction keys are bare integers.
            WorkloadKind::ListAppend | WorkloadKind::RwRegister | WorkloadKind::Bank => "",
        }
    }

    pub fn checker(self) -> CheckerNeed {
        let (model, durability) = match self {
            WorkloadKind::Register => (ModelKind::Register, false),
            WorkloadKind::CasRegister => (ModelKind::CasRegister, false),
            WorkloadKind::Kv => (ModelKind::Kv, false),
            WorkloadKind::Set => (ModelKind::Set, true),
            WorkloadKind::Append => (ModelKind::ListAppend, true),
            WorkloadKind::ListAppend => return CheckerNeed::Transactions(TxnKind::ListAppend),
            WorkloadKind::RwRegister => return CheckerNeed::Transactions(TxnKind::RwRegister),
            WorkloadKind::Bank => return CheckerNeed::Bank,
        };
        CheckerNeed::Linearizable { model, durability }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown workload {0:?} (expected register, cas-register, kv, set, append, list-append, rw-register or bank)")]
pub struct UnknownWorkload(String);

impl FromStr for WorkloadKind {
    type Err = UnknownWorkload;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        WorkloadKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| UnknownWorkload(text.to_string()))
    }
}

/// The workload part of a test plan (validated by the harness spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    pub kind: WorkloadKind,
    /// Keys in use at any moment.
    pub keys_active: u32,
    /// Operations on one key before it is retired for a fresh one.
    pub ops_per_key_max: u64,
    /// A share of the operations run as transactions beside a single-key
    /// workload: one history then feeds both checkers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TransactionShare>,
}

/// Transactions of `kind` (list-append or rw-register) mixed into a
/// single-key workload, `per_mille` of its operations. Why mix rather
/// than run two tests: bugs in a system's transaction path and bugs in its
/// replication are then found by the same run, under the same faults,
/// which is what a default test needs. Transaction keys are bare integers
/// and single-key workloads prefix theirs (`kv-3`), so the two never share
/// a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionShare {
    pub kind: WorkloadKind,
    pub per_mille: u32,
}

/// The most a share may take: some single-key operations must remain.
pub const TRANSACTION_SHARE_PER_MILLE_MAX: u32 = 999;

impl WorkloadConfig {
    /// The infinite, seeded operation source for this workload.
    pub fn generator(&self, seed: u64) -> Box<dyn Generator> {
        let main = self.single_generator(seed);
        let Some(share) = self.transactions else { return main };
        assert!(
            (1..=TRANSACTION_SHARE_PER_MILLE_MAX).contains(&share.per_mille),
            "a transaction share is 1..=999 per mille (validated in the spec)"
        );
        let txns = WorkloadConfig { kind: share.kind, transactions: None, ..self.clone() };
        // Other seeds than the main generator's: the two draw independently.
        let arms = vec![(1_000 - share.per_mille, main), (share.per_mille, txns.single_generator(seed ^ 0x7478_6e73))];
        Box::new(mix(seed.rotate_left(17), arms))
    }

    fn single_generator(&self, seed: u64) -> Box<dyn Generator> {
        match self.kind {
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => Box::new(TxnGenerator::new(self, seed)),
            WorkloadKind::Bank => Box::new(BankGenerator::new(self, seed)),
            _ => Box::new(KeyedGenerator::new(self, seed)),
        }
    }

    /// Every checker the history needs: the main workload's, then the
    /// share's.
    pub fn checkers(&self) -> Vec<CheckerNeed> {
        let mut needs = vec![self.kind.checker()];
        needs.extend(self.transactions.map(|share| share.kind.checker()));
        needs
    }
}
