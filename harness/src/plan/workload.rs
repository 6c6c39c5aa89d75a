//! The workload section of a plan: the standard workload (kind, keys, a
//! transaction share), and what the Rust API puts in its place.
use std::sync::Arc;

use faultline_workloads::{Generator, Invocation, TransactionShare, WorkloadConfig, WorkloadKind, TRANSACTION_SHARE_PER_MILLE_MAX};

use crate::fields::SpecError;
use crate::verdict::Checker;

use super::WorkloadSpec;

/// An upper bound that keeps a typo from starting a runaway test.
const KEYS_ACTIVE_MAX: u32 = 10_000;

/// Builds a run's main-phase generator from its seed.
pub type GeneratorFactory = Arc<dyn Fn(u64) -> Box<dyn Generator> + Send + Sync>;

#[derive(Clone)]
pub struct WorkloadPlan {
    /// The standard workload: what the built-in clients map, what the final
    /// reads read, and (unless `checkers` says otherwise) what is checked.
    pub config: WorkloadConfig,
    /// A generator of your own for the main phase (the Rust API); None:
    /// the standard workload's.
    pub generator: Option<GeneratorFactory>,
    /// Checkers of your own for the history (the Rust API); None: the ones
    /// the standard workload names.
    pub checkers: Option<Vec<Arc<dyn Checker>>>,
    /// The write the liveness probe makes on attempt n (the Rust API, for a
    /// client that does not speak `put`); None: `put faultline-liveness`.
    pub liveness_write: Option<LivenessWrite>,
    /// The transaction share was named with a trailing `?`: left out, with
    /// a warning, of a run whose system has no transactional client.
    pub transactions_optional: bool,
}

/// The liveness probe's write for attempt n (1-based).
pub type LivenessWrite = Arc<dyn Fn(u64) -> Invocation + Send + Sync>;

impl std::fmt::Debug for WorkloadPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadPlan")
            .field("config", &self.config)
            .field("generator", &self.generator.as_ref().map(|_| "custom"))
            .field("checkers", &self.checkers.as_ref().map(|checkers| checkers.iter().map(|c| c.name()).collect::<Vec<_>>()))
            .field("transactions_optional", &self.transactions_optional)
            .finish()
    }
}

pub(super) fn workload_plan(spec: &WorkloadSpec) -> Result<WorkloadPlan, SpecError> {
    let kind: WorkloadKind = spec
        .kind
        .parse()
        .map_err(|e: faultline_workloads::UnknownWorkload| SpecError::value("workload.kind", e.to_string()))?;
    if spec.keys_active == 0 || spec.keys_active > KEYS_ACTIVE_MAX {
        return Err(SpecError::value(
            "workload.keys_active",
            format!("{} is not in 1..={KEYS_ACTIVE_MAX}", spec.keys_active),
        ));
    }
    if spec.ops_per_key_max == 0 {
        return Err(SpecError::value("workload.ops_per_key_max", "must be at least 1"));
    }
    if kind == WorkloadKind::Bank && spec.keys_active < 2 {
        return Err(SpecError::value("workload.keys_active", "a bank moves money between accounts: at least 2".to_string()));
    }
    let (transactions, transactions_optional) = transaction_share(spec, kind)?;
    let config = WorkloadConfig { kind, keys_active: spec.keys_active, ops_per_key_max: spec.ops_per_key_max, transactions };
    Ok(WorkloadPlan { config, generator: None, checkers: None, liveness_write: None, transactions_optional })
}

/// The share of transactions mixed into the workload when the spec names
/// none: enough for two transactions to race on a key many times a second
/// at the default rate, most operations left to the single-key checker.
pub const TRANSACTIONS_SHARE_DEFAULT: f64 = 0.2;

/// `workload.transactions` and its share, validated, and whether it was
/// optional (`list-append?`). An optional share beside a workload that
/// runs transactions itself is dropped here: it has nothing to add.
fn transaction_share(spec: &WorkloadSpec, kind: WorkloadKind) -> Result<(Option<TransactionShare>, bool), SpecError> {
    let share = spec.transactions_share.unwrap_or(TRANSACTIONS_SHARE_DEFAULT);
    if !(share > 0.0 && share < 1.0) {
        return Err(SpecError::value("workload.transactions_share", format!("{share} is not a share in (0, 1)")));
    }
    let written = spec.transactions.as_deref().map(str::trim).unwrap_or("none");
    let (name, optional) = match written.strip_suffix('?') {
        Some(name) => (name, true),
        None => (written, false),
    };
    if name == "none" {
        return Ok((None, false));
    }
    let share_kind = match name.parse::<WorkloadKind>() {
        Ok(share_kind @ (WorkloadKind::ListAppend | WorkloadKind::RwRegister)) => share_kind,
        _ => return Err(SpecError::value("workload.transactions", format!("{name:?} is not list-append, rw-register or none"))),
    };
    if kind.is_transactional() {
        return match optional {
            true => Ok((None, true)),
            false => Err(SpecError::value(
                "workload.transactions",
                format!("mixes transactions into a single-key workload, and {kind} is transactional already"),
            )),
        };
    }
    let per_mille = ((share * 1_000.0).round() as u32).clamp(1, TRANSACTION_SHARE_PER_MILLE_MAX);
    Ok((Some(TransactionShare { kind: share_kind, per_mille }), optional))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SpecFile, TestPlan};

    #[test]
    fn the_transaction_share_is_validated_and_left_to_single_key_workloads() {
        let spec = |workload: &str| SpecFile::from_yaml(&format!("workload:\n{workload}"), "t").unwrap();
        let plan = TestPlan::from_spec(&spec("  kind: kv\n  transactions: rw-register\n  transactions_share: 0.35\n"), 1).unwrap();
        assert_eq!(plan.workload.config.transactions, Some(TransactionShare { kind: WorkloadKind::RwRegister, per_mille: 350 }));
        assert!(!plan.workload.transactions_optional);
        let none = TestPlan::from_spec(&spec("  kind: kv\n"), 1).unwrap();
        assert_eq!(none.workload.config.transactions, None, "a written workload section gets only what it names");
        let optional = TestPlan::from_spec(&spec("  kind: list-append\n  transactions: list-append?\n"), 1).unwrap();
        assert_eq!(optional.workload.config.transactions, None, "a transactional workload has nothing to add");
        let refusals = [
            ("  kind: list-append\n  transactions: list-append\n", "transactional already"),
            ("  kind: kv\n  transactions: bank\n", "is not list-append, rw-register or none"),
            ("  kind: kv\n  transactions: list-append\n  transactions_share: 1\n", "workload.transactions_share"),
            ("  kind: kv\n  transactions: list-append\n  transactions_share: 0\n", "workload.transactions_share"),
        ];
        for (workload, expected) in refusals {
            let error = TestPlan::from_spec(&spec(workload), 1).expect_err(workload).to_string();
            assert!(error.contains(expected), "{workload}: {error}");
        }
    }
}
