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
pub mod combinators;
pub mod final_reads;
pub mod generator;
pub mod keyed;

use std::fmt;
use std::str::FromStr;

use faultline_checkers::ModelKind;
use serde::{Deserialize, Serialize};

pub use combinators::{each, limit, mix, phases, stagger, time_limit};
pub use final_reads::FinalReads;
pub use generator::{Context, Generator, Invocation, Next};
pub use keyed::{final_reads, key_name, KeyedGenerator};

/// Which workload a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Register,
    CasRegister,
    Kv,
    Set,
    Append,
}

/// The checkers a workload's history needs: per-key linearizability against
/// `model`, and, for workloads with final reads that must hold every
/// acknowledged write, the durability checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckerNeed {
    pub model: ModelKind,
    pub durability: bool,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 5] = [
        WorkloadKind::Register,
        WorkloadKind::CasRegister,
        WorkloadKind::Kv,
        WorkloadKind::Set,
        WorkloadKind::Append,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::CasRegister => "cas-register",
            WorkloadKind::Kv => "kv",
            WorkloadKind::Set => "set",
            WorkloadKind::Append => "append",
        }
    }

    fn key_prefix(self) -> &'static str {
        match self {
            WorkloadKind::Register => "reg",
            WorkloadKind::CasRegister => "cas",
            WorkloadKind::Kv => "kv",
            WorkloadKind::Set => "set",
            WorkloadKind::Append => "list",
        }
    }

    pub fn checker(self) -> CheckerNeed {
        let (model, durability) = match self {
            WorkloadKind::Register => (ModelKind::Register, false),
            WorkloadKind::CasRegister => (ModelKind::CasRegister, false),
            WorkloadKind::Kv => (ModelKind::Kv, false),
            WorkloadKind::Set => (ModelKind::Set, true),
            WorkloadKind::Append => (ModelKind::ListAppend, true),
        };
        CheckerNeed { model, durability }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown workload {0:?} (expected register, cas-register, kv, set or append)")]
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
}

impl WorkloadConfig {
    /// The infinite, seeded operation source for this workload.
    pub fn generator(&self, seed: u64) -> KeyedGenerator {
        KeyedGenerator::new(self, seed)
    }
}
