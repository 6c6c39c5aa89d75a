//! Deciding a run: the history checkers (from `faultline-checkers`) plus
//! the checks beyond the history: liveness after the final heal, error
//! lines in node logs, and node exits nobody asked for. Each becomes one
//! named verdict; `compose` merges them (invalid > unknown > valid), so a
//! crash can never hide behind a valid history.
pub mod history;
pub mod liveness;
pub mod logs;

use faultline_checkers::{Named, Verdict};
use serde_json::json;

use crate::cluster::{FailedRestart, UnexpectedExit};

pub use history::{check_durability, check_history};
pub use liveness::Liveness;
pub use logs::{scan_logs, LogHit};

/// Node exits nobody asked for, and restarts after which a node never
/// came back: any one fails the run.
pub fn unexpected_exits(exits: &[UnexpectedExit], failed_restarts: &[FailedRestart]) -> Named {
    let listed: Vec<serde_json::Value> = exits
        .iter()
        .map(|exit| {
            json!({
                "node": crate::nemesis::node_name(exit.node),
                "pid": exit.pid,
                "code": exit.code,
                "signal": exit.signal,
            })
        })
        .collect();
    let restarts: Vec<serde_json::Value> = failed_restarts
        .iter()
        .map(|failed| json!({ "node": crate::nemesis::node_name(failed.node), "error": failed.error }))
        .collect();
    let verdict = if exits.is_empty() && failed_restarts.is_empty() { Verdict::Valid } else { Verdict::Invalid };
    let reason = match (exits.first(), failed_restarts.first()) {
        (Some(first), _) => Some(format!(
            "node {} exited unexpectedly (code {:?}, signal {:?})",
            crate::nemesis::node_name(first.node),
            first.code,
            first.signal
        )),
        (None, Some(failed)) => Some(format!(
            "node {} did not come back after a restart: {}",
            crate::nemesis::node_name(failed.node),
            failed.error
        )),
        (None, None) => None,
    };
    Named {
        name: "node-exits".to_string(),
        verdict,
        details: json!({ "exits": listed, "failed_restarts": restarts, "reason": reason }),
    }
}

/// The first human reason a named result gives for not being valid.
pub fn reason(named: &Named) -> Option<String> {
    if named.verdict == Verdict::Valid {
        return None;
    }
    let text = named.details.get("reason").and_then(|r| r.as_str()).map(str::to_string);
    Some(text.unwrap_or_else(|| format!("{} is {}", named.name, named.verdict.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_unexpected_exit_is_invalid_with_a_reason() {
        assert_eq!(unexpected_exits(&[], &[]).verdict, Verdict::Valid);
        let exit = UnexpectedExit { node: 1, pid: 42, code: Some(101), signal: None };
        let named = unexpected_exits(&[exit], &[]);
        assert_eq!(named.verdict, Verdict::Invalid);
        assert_eq!(reason(&named).unwrap(), "node n2 exited unexpectedly (code Some(101), signal None)");
        let failed = FailedRestart { node: 2, error: "cluster: node 2 exited during startup".into() };
        let named = unexpected_exits(&[], &[failed]);
        assert_eq!(named.verdict, Verdict::Invalid, "a node that never came back fails the run");
        assert!(reason(&named).unwrap().starts_with("node n3 did not come back after a restart"));
    }
}
