//! The history checkers a workload needs, run on the history as read back
//! from `history.jsonl` (the second path: what the checkers judge is what
//! was durably recorded).
use faultline_checkers::{CheckConfig, Event, ModelKind, Named, Verdict};
use faultline_workloads::CheckerNeed;
use serde_json::json;

/// Linearizability per key against the workload's model, within
/// `budget_ms`; an error or a panic in the checker is `unknown`, never valid.
pub fn check_history(events: &[Event], need: CheckerNeed, budget_ms: u64) -> Named {
    let name = format!("linearizable-{}", need.model);
    let unknown = |reason: String| Named {
        name: name.clone(),
        verdict: Verdict::Unknown,
        details: json!({ "reason": reason }),
    };
    let model: ModelKind = match need.model.parse() {
        Ok(model) => model,
        Err(error) => return unknown(format!("no checker model: {error}")),
    };
    let config = CheckConfig { model: Some(model), budget_ms: Some(budget_ms), ..CheckConfig::default() };
    let outcome = std::panic::catch_unwind(|| faultline_checkers::check_history(events, &config));
    match outcome {
        Ok(Ok(result)) => {
            let details = serde_json::to_value(&result).unwrap_or_else(|e| json!({ "reason": e.to_string() }));
            let mut named = Named { name: name.clone(), verdict: result.verdict, details };
            if result.verdict != Verdict::Valid {
                let reason = result
                    .keys
                    .iter()
                    .find(|key| key.verdict == result.verdict)
                    .map(|key| format!("key {:?}: {}", key.key, key.reason.as_deref().unwrap_or(result.verdict.name())))
                    .unwrap_or_else(|| format!("history is {}", result.verdict.name()));
                named.details["reason"] = json!(format!("{name}: {reason}"));
            }
            named
        }
        Ok(Err(error)) => unknown(format!("checker error: {error}")),
        Err(_) => unknown("the checker panicked".to_string()),
    }
}

/// Set-full durability of unique elements (set adds, list appends): every
/// acknowledged element must be in the reads that follow it.
pub fn check_durability(events: &[Event]) -> Named {
    use faultline_checkers::durability::{check_durability, DurabilityConfig};
    let name = "durability".to_string();
    let outcome = std::panic::catch_unwind(|| check_durability(events, &DurabilityConfig::default()));
    match outcome {
        Ok(Ok(result)) => {
            let mut details = serde_json::to_value(&result).unwrap_or_else(|e| json!({ "reason": e.to_string() }));
            if result.verdict != Verdict::Valid {
                let counts = &result.counts;
                details["reason"] = json!(format!(
                    "durability: {} lost, {} stale, {} unexpected of {} acknowledged",
                    counts.lost, counts.stale, counts.unexpected, counts.acknowledged
                ));
            }
            Named { name, verdict: result.verdict, details }
        }
        Ok(Err(error)) => Named { name, verdict: Verdict::Unknown, details: json!({ "reason": format!("durability: {error}") }) },
        Err(_) => Named { name, verdict: Verdict::Unknown, details: json!({ "reason": "durability: the checker panicked" }) },
    }
}
