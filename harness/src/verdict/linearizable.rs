//! Linearizability per key against a model, within a time budget; an error
//! or a panic in the checker is `unknown`, never valid.
use faultline_checkers::{check_op_history, check_with, CheckConfig, CheckResult, Model, ModelKind, OpHistory, Verdict};

use super::{Check, CheckDetails, Checker};

/// A built-in model (`register`, `cas-register`, `kv`, `set`, `list-append`).
pub struct Linearizable {
    pub model: ModelKind,
    pub budget_ms: u64,
}

/// A model of your own (the Rust API).
pub struct LinearizableWith<M> {
    pub model: M,
    pub budget_ms: u64,
}

/// A run's history is judged on evidence: a key no read of which returned
/// is `unknown`, never `valid`.
fn config(model: Option<ModelKind>, budget_ms: u64) -> CheckConfig {
    CheckConfig { model, budget_ms: Some(budget_ms), require_evidence: true, ..CheckConfig::default() }
}

impl Checker for Linearizable {
    fn name(&self) -> String {
        format!("linearizable-{}", self.model.name())
    }

    fn check(&self, history: &OpHistory) -> Check {
        let result = check_op_history(history, &config(Some(self.model), self.budget_ms));
        to_check(self.name(), result.map_err(|error| error.to_string()))
    }
}

impl<M: Model + Send> Checker for LinearizableWith<M> {
    fn name(&self) -> String {
        format!("linearizable-{}", self.model.name())
    }

    fn check(&self, history: &OpHistory) -> Check {
        let result = check_with(&self.model, history, &config(None, self.budget_ms));
        to_check(self.name(), result.map_err(|error| error.to_string()))
    }
}

/// The check of a result: its reason names the first key with the
/// history's verdict.
pub fn to_check(name: String, result: Result<CheckResult, String>) -> Check {
    let result = match result {
        Ok(result) => result,
        Err(error) => return Check::failed(name, format!("checker error: {error}")),
    };
    let reason = (result.verdict != Verdict::Valid).then(|| {
        let alike = result.keys.iter().filter(|key| key.verdict == result.verdict).count();
        let reason = match result.keys.iter().find(|key| key.verdict == result.verdict) {
            Some(key) => format!("key {:?}: {}", key.key, key.reason.as_deref().unwrap_or(result.verdict.name())),
            None if result.keys.is_empty() => "no operation to check".to_string(),
            None => format!("history is {}", result.verdict.name()),
        };
        let more = match alike {
            0 | 1 => String::new(),
            alike => format!(" ({alike} of {} keys {})", result.keys.len(), result.verdict.name()),
        };
        format!("{name}: {reason}{more}")
    });
    Check { name, verdict: result.verdict, reason, details: CheckDetails::Linearizable(result) }
}
