//! Node exits nobody asked for, and restarts after which a node never came
//! back: any one fails the run.
use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use super::{Check, CheckDetails};
use crate::cluster::{FailedRestart, UnexpectedExit};
use crate::nemesis::node_name;

/// One node process that exited on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// `n1` is node 0.
    pub node: String,
    pub pid: u32,
    /// Exit code, or None when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// A restart after which the node never became ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    pub node: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExits {
    pub exits: Vec<Exit>,
    pub failed_restarts: Vec<Restart>,
}

/// Builds the check from what the cluster saw.
pub struct NodeExitsCheck;

impl NodeExitsCheck {
    pub fn check(exits: &[UnexpectedExit], failed_restarts: &[FailedRestart]) -> Check {
        let details = NodeExits {
            exits: exits
                .iter()
                .map(|exit| Exit { node: node_name(exit.node), pid: exit.pid, code: exit.code, signal: exit.signal })
                .collect(),
            failed_restarts: failed_restarts
                .iter()
                .map(|failed| Restart { node: node_name(failed.node), error: failed.error.clone() })
                .collect(),
        };
        let reason = match (details.exits.first(), details.failed_restarts.first()) {
            (Some(first), _) => Some(format!(
                "node {} exited unexpectedly (code {:?}, signal {:?})",
                first.node, first.code, first.signal
            )),
            (None, Some(failed)) => Some(format!("node {} did not come back after a restart: {}", failed.node, failed.error)),
            (None, None) => None,
        };
        let verdict = if reason.is_none() { Verdict::Valid } else { Verdict::Invalid };
        Check { name: "node-exits".to_string(), verdict, reason, details: CheckDetails::NodeExits(details) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_unexpected_exit_is_invalid_with_a_reason() {
        assert_eq!(NodeExitsCheck::check(&[], &[]).verdict, Verdict::Valid);
        let exit = UnexpectedExit { node: 1, pid: 42, code: Some(101), signal: None };
        let check = NodeExitsCheck::check(&[exit], &[]);
        assert_eq!(check.verdict, Verdict::Invalid);
        assert_eq!(check.reason.unwrap(), "node n2 exited unexpectedly (code Some(101), signal None)");
        let failed = FailedRestart { node: 2, error: "cluster: node 2 exited during startup".into() };
        let check = NodeExitsCheck::check(&[], &[failed]);
        assert_eq!(check.verdict, Verdict::Invalid, "a node that never came back fails the run");
        assert!(check.reason.unwrap().starts_with("node n3 did not come back after a restart"));
    }
}
