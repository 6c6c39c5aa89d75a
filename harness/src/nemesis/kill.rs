//! Crash faults: SIGKILL one node, the leader, a minority or a majority;
//! healing restarts them on their own data.
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_nodes, choose_then_apply, leader_or, node_names, Effect, Fault, FaultFamily, KillTarget, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster};

/// How many nodes a kill target takes down in a cluster of `nodes`.
pub fn kill_count(target: KillTarget, nodes: usize) -> usize {
    match target {
        KillTarget::Random | KillTarget::Leader => 1,
        KillTarget::Minority => ((nodes - 1) / 2).max(1),
        KillTarget::Majority => nodes / 2 + 1,
    }
}

pub struct KillNemesis {
    rng: ChaCha8Rng,
    killed: Vec<usize>,
}

impl KillNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        KillNemesis { rng, killed: Vec::new() }
    }

    fn targets(&mut self, target: KillTarget, nodes: usize, leader: Option<usize>) -> Vec<usize> {
        match target {
            KillTarget::Leader => vec![leader_or(&mut self.rng, nodes, leader)],
            KillTarget::Random => vec![self.rng.random_range(0..nodes)],
            KillTarget::Minority | KillTarget::Majority => {
                choose_nodes(&mut self.rng, nodes, kill_count(target, nodes))
            }
        }
    }
}

impl Nemesis for KillNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Kill]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        let Fault::Kill(target) = fault else { return None };
        Some(Targets::Nodes(self.targets(target, nodes, leader)))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Kill(_), Targets::Nodes(targets)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            for node in &targets {
                // Remember before acting, so a half-done kill is still healed.
                self.killed.push(*node);
                cluster.kill(*node).await?;
            }
            Ok(json!({ "killed": node_names(&targets) }))
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let killed = std::mem::take(&mut self.killed);
            if killed.is_empty() {
                return Ok(Effect::Null);
            }
            cluster.restart_all(&killed).await?;
            Ok(json!({ "restarted": node_names(&killed) }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_counts_match_their_names() {
        assert_eq!(kill_count(KillTarget::Minority, 5), 2);
        assert_eq!(kill_count(KillTarget::Majority, 5), 3);
        assert_eq!(kill_count(KillTarget::Minority, 3), 1);
        assert_eq!(kill_count(KillTarget::Majority, 3), 2);
        assert_eq!(kill_count(KillTarget::Random, 5), 1);
        for nodes in 3..10 {
            assert!(kill_count(KillTarget::Minority, nodes) * 2 < nodes);
            assert!(kill_count(KillTarget::Majority, nodes) * 2 > nodes);
        }
    }
}
