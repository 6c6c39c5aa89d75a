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

fn config(model: Option<ModelKind>, budget_ms: u64) -> CheckConfig {
    CheckConfig { model, budget_ms: Some(budget_ms), ..CheckConfig::default() }
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
        let reason = result
            .keys
            .iter()
            .find(|key| key.verdict == result.verdict)
            .map(|key| format!("key {:?}: {}", key.key, key.reason.as_deref().unwrap_or(result.verdict.name())))
            .unwrap_or_else(|| format!("history is {}", result.verdict.name()));
        format!("{name}: {reason}")
    });
    Check { name, verdict: result.verdict, reason, details: CheckDetails::Linearizable(result) }
}
