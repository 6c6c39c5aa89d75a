//! Deciding a run: the checks that run after the test, each a typed
//! [`Check`]. The history's checkers (linearizability per key, durability
//! of acknowledged writes) and the checks beyond the history (liveness after
//! the final heal, error lines in node logs, node exits nobody asked for).
//! [`compose`] merges them: invalid beats unknown beats valid, so a crash
//! can never hide behind a valid history.
//!
//! A check's details stay typed from the checker to the report
//! ([`CheckDetails`]); `results.json` stores them with serde and reads them
//! back the same way.
use faultline_checkers::bank::BankReport;
use faultline_checkers::txn::TxnReport;
use faultline_checkers::{CheckResult, DurabilityResult, OpHistory, Verdict};
use serde::{Deserialize, Serialize};

pub mod bank;
pub mod convergence;
pub mod durability;
pub mod exits;
pub mod linearizable;
pub mod liveness;
pub mod logs;
pub mod transactions;

pub use convergence::Convergence;
pub use durability::Durability;
pub use exits::{NodeExits, NodeExitsCheck};
pub use linearizable::{Linearizable, LinearizableWith};
pub use liveness::Liveness;
pub use logs::{LogHit, LogScan};

/// One check's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `linearizable-kv`, `durability`, `liveness`, `node-logs`, ...
    pub name: String,
    pub verdict: Verdict,
    /// Why it is not valid, in one line naming what was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub details: CheckDetails,
}

/// What a check found, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CheckDetails {
    /// Per-key linearizability, with a counterexample per invalid key.
    Linearizable(CheckResult),
    /// Transactions: the anomalies of their dependency graph.
    Transactions(TxnReport),
    /// A bank: reads whose balances do not add up.
    Bank(BankReport),
    /// Acknowledged writes and what the reads after them showed.
    Durability(DurabilityResult),
    Liveness(Liveness),
    /// Each node's digest of its applied state once the cluster settled.
    Convergence(Convergence),
    NodeLogs(LogScan),
    NodeExits(NodeExits),
    /// The checker could not decide (an error, a panic): the reason says why.
    Failed,
    /// A checker of your own, in words (the Rust API).
    Notes { lines: Vec<String> },
}

impl Check {
    /// A checker that could not run: `unknown`, never `valid`.
    pub fn failed(name: impl Into<String>, reason: impl Into<String>) -> Check {
        Check { name: name.into(), verdict: Verdict::Unknown, reason: Some(reason.into()), details: CheckDetails::Failed }
    }

    /// The reason to show: the check's own, else a plain statement.
    pub fn reason_text(&self) -> Option<String> {
        if self.verdict == Verdict::Valid {
            return None;
        }
        Some(self.reason.clone().unwrap_or_else(|| format!("{} is {}", self.name, self.verdict.name())))
    }
}

/// Every check of a run and their merged verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// `None` when nothing was checked (a run that ended in an error).
    pub verdict: Option<Verdict>,
    pub checkers: Vec<Check>,
}

/// Merges checks: invalid beats unknown beats valid. A checker that could
/// not produce a result counts as unknown ([`Check::failed`]), as Jepsen's
/// `check-safe` does.
pub fn compose(checkers: Vec<Check>) -> Checks {
    let verdict = Verdict::merge_all(checkers.iter().map(|c| c.verdict));
    Checks { verdict: Some(verdict), checkers }
}

/// Judges a history. Implemented for the built-in checkers and for any of
/// your own (the Rust API); a panic inside `check` becomes `unknown`.
pub trait Checker: Send + Sync {
    fn name(&self) -> String;
    fn check(&self, history: &OpHistory) -> Check;
}

/// Runs `checker`, turning a panic into an `unknown` check.
pub fn check_safely(checker: &dyn Checker, history: &OpHistory) -> Check {
    unknown_on_panic(&checker.name(), || checker.check(history))
}

/// Runs the check `name`, turning a panic into an `unknown` check.
pub fn unknown_on_panic(name: &str, check: impl FnOnce() -> Check) -> Check {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(check) => check,
        Err(_) => Check::failed(name, format!("{name}: the checker panicked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panics;

    impl Checker for Panics {
        fn name(&self) -> String {
            "panics".into()
        }
        fn check(&self, _history: &OpHistory) -> Check {
            panic!("planted")
        }
    }

    #[test]
    fn a_panicking_checker_is_unknown_and_composes_above_valid() {
        let check = check_safely(&Panics, &OpHistory::default());
        assert_eq!((check.verdict, check.details.clone()), (Verdict::Unknown, CheckDetails::Failed));
        let valid = Check { name: "v".into(), verdict: Verdict::Valid, reason: None, details: CheckDetails::Notes { lines: vec![] } };
        let composed = compose(vec![valid, check]);
        assert_eq!(composed.verdict, Some(Verdict::Unknown));
    }

    #[test]
    fn checks_round_trip_through_json_with_their_kind() {
        let check = Check {
            name: "liveness".into(),
            verdict: Verdict::Invalid,
            reason: Some("no write".into()),
            details: CheckDetails::Liveness(Liveness { timeout_ms: 10, attempts: 2, failed: 2, ..Liveness::default() }),
        };
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["details"]["kind"], "liveness");
        assert_eq!(serde_json::from_value::<Check>(json).unwrap(), check);
    }
}
