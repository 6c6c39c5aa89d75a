//! Convergence: once the faults are healed and the final reads are done, a
//! correct cluster's replicas hold the same state. Some replication bugs
//! leave a replica different without any client noticing during the run (a
//! follower that kept a stale entry, a commit index that ran past what was
//! replicated); comparing each node's digest of its applied state finds
//! them. For systems that report a digest (`Capabilities::digest`).
use std::time::{Duration, Instant};

use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use super::{Check, CheckDetails};
use crate::cluster::{Cluster, StateDigest};
use crate::fields::human_ms;
use crate::nemesis::node_name;

/// Pause between two rounds of digests.
const POLL_MS: u64 = 200;

/// What each node reported, the last time it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDigest {
    pub node: String,
    /// None: the node did not answer.
    pub digest: Option<StateDigest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convergence {
    pub timeout_ms: u64,
    /// How long until every node answered at one position (or the bound).
    pub waited_ms: u64,
    pub rounds: u64,
    pub nodes: Vec<NodeDigest>,
    /// Every node answered, at one position (or the system has none).
    pub settled: bool,
    /// Nodes the harness counted as members but the system, asked before
    /// the probe, no longer did (a removal that committed after the harness
    /// gave up on it): stopped, not compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_by_system: Vec<String>,
}

impl Convergence {
    /// Asks every node for its digest until all answer at one position, or
    /// `timeout_ms` passes. Positions let it stop at once when the digests
    /// differ at the same position; without them it waits for equal
    /// digests until the bound.
    pub async fn probe(cluster: &Cluster, timeout_ms: u64) -> Convergence {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(timeout_ms);
        let mut convergence = Convergence { timeout_ms, ..Convergence::default() };
        // Bounded by the deadline.
        loop {
            let reports = cluster.digests().await;
            convergence.rounds += 1;
            convergence.nodes = reports
                .iter()
                .map(|(node, digest)| NodeDigest { node: node_name(*node), digest: digest.clone() })
                .collect();
            let digests: Vec<Option<StateDigest>> = reports.into_iter().map(|(_, digest)| digest).collect();
            convergence.settled = settled(&digests);
            convergence.waited_ms = started.elapsed().as_millis() as u64;
            let same = agree(&digests);
            let positioned = digests.iter().flatten().all(|digest| digest.position.is_some());
            if convergence.settled && (same || positioned) || Instant::now() >= deadline {
                return convergence;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    pub fn check(&self) -> Check {
        let digests: Vec<Option<StateDigest>> = self.nodes.iter().map(|node| node.digest.clone()).collect();
        let (verdict, reason) = if self.settled && agree(&digests) {
            (Verdict::Valid, None)
        } else if self.settled {
            (Verdict::Invalid, Some(format!("replicas disagree: {}", self.listing())))
        } else {
            let why = format!(
                "the replicas did not settle at one position within {} ({})",
                human_ms(self.timeout_ms),
                self.listing()
            );
            (Verdict::Unknown, Some(why))
        };
        let reason = reason.map(|reason| format!("convergence: {reason}"));
        Check { name: "convergence".to_string(), verdict, reason, details: CheckDetails::Convergence(self.clone()) }
    }

    /// `n1 at 120: 9f3c, n2 at 120: 77aa, n3: no answer`.
    fn listing(&self) -> String {
        let node = |report: &NodeDigest| match &report.digest {
            None => format!("{}: no answer", report.node),
            Some(StateDigest { position: Some(position), digest }) => format!("{} at {position}: {digest}", report.node),
            Some(StateDigest { position: None, digest }) => format!("{}: {digest}", report.node),
        };
        let listing = self.nodes.iter().map(node).collect::<Vec<_>>().join(", ");
        match self.removed_by_system.is_empty() {
            true => listing,
            false => format!("{listing}; not compared, removed by the system: {}", self.removed_by_system.join(", ")),
        }
    }
}

/// Every node answered, all at one position (or none has positions).
fn settled(digests: &[Option<StateDigest>]) -> bool {
    let Some(answers) = digests.iter().map(Option::as_ref).collect::<Option<Vec<_>>>() else { return false };
    answers.windows(2).all(|pair| pair[0].position == pair[1].position)
}

/// Every node answered with one digest.
fn agree(digests: &[Option<StateDigest>]) -> bool {
    let Some(answers) = digests.iter().map(Option::as_ref).collect::<Option<Vec<_>>>() else { return false };
    answers.windows(2).all(|pair| pair[0].digest == pair[1].digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(position: Option<u64>, digest: &str) -> Option<StateDigest> {
        Some(StateDigest { position, digest: digest.into() })
    }

    fn convergence(digests: Vec<Option<StateDigest>>) -> Convergence {
        Convergence {
            timeout_ms: 10_000,
            settled: settled(&digests),
            nodes: digests.into_iter().enumerate().map(|(n, digest)| NodeDigest { node: node_name(n), digest }).collect(),
            ..Convergence::default()
        }
    }

    #[test]
    fn replicas_at_one_position_must_hold_one_state() {
        assert_eq!(convergence(vec![report(Some(9), "a"), report(Some(9), "a")]).check().verdict, Verdict::Valid);
        let diverged = convergence(vec![report(Some(9), "a"), report(Some(9), "b"), report(Some(9), "a")]).check();
        assert_eq!(diverged.verdict, Verdict::Invalid);
        assert_eq!(diverged.reason.unwrap(), "convergence: replicas disagree: n1 at 9: a, n2 at 9: b, n3 at 9: a");
        let behind = convergence(vec![report(Some(9), "a"), report(Some(8), "b")]).check();
        assert_eq!(behind.verdict, Verdict::Unknown, "never at one position: nothing shown");
        let silent = convergence(vec![report(Some(9), "a"), None]).check();
        assert_eq!(silent.verdict, Verdict::Unknown);
        assert!(silent.reason.unwrap().contains("n2: no answer"));
        assert_eq!(convergence(vec![report(None, "x"), report(None, "x")]).check().verdict, Verdict::Valid);
        assert_eq!(convergence(vec![report(None, "x"), report(None, "y")]).check().verdict, Verdict::Invalid);
    }

    #[test]
    fn nodes_the_system_removed_are_named_but_not_compared() {
        let mut diverged = convergence(vec![report(Some(9), "a"), report(Some(9), "b")]);
        diverged.removed_by_system = vec!["n3".to_string()];
        let reason = diverged.check().reason.expect("a reason");
        assert_eq!(reason, "convergence: replicas disagree: n1 at 9: a, n2 at 9: b; not compared, removed by the system: n3");
    }
}
