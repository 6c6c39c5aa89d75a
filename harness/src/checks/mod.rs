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

use crate::cluster::UnexpectedExit;

pub use history::{check_durability, check_history};
pub use liveness::Liveness;
pub use logs::{scan_logs, LogHit};

/// Node exits nobody asked for: any one fails the run.
pub fn unexpected_exits(exits: &[UnexpectedExit]) -> Named {
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
    let verdict = if exits.is_empty() { Verdict::Valid } else { Verdict::Invalid };
    let reason = (!exits.is_empty()).then(|| {
        let first = &exits[0];
        format!(
            "node {} exited unexpectedly (code {:?}, signal {:?})",
            crate::nemesis::node_name(first.node),
            first.code,
            first.signal
        )
    });
    Named { name: "node-exits".to_string(), verdict, details: json!({ "exits": listed, "reason": reason }) }
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
        assert_eq!(unexpected_exits(&[]).verdict, Verdict::Valid);
        let exit = UnexpectedExit { node: 1, pid: 42, code: Some(101), signal: None };
        let named = unexpected_exits(&[exit]);
        assert_eq!(named.verdict, Verdict::Invalid);
        assert_eq!(reason(&named).unwrap(), "node n2 exited unexpectedly (code Some(101), signal None)");
    }
}
