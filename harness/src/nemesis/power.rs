//! Power loss: a node (the leader, a majority, or every node) dies and
//! everything it wrote but did not fsync is gone when it comes back. Needs
//! the cluster's lazyfs volumes (see the `faultline-lazyfs` crate); healing restarts the
//! nodes on what their disks kept.
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::kill::kill_count;
use super::{choose_nodes, choose_then_apply, leader_or, node_names, Effect, Fault, FaultFamily, KillTarget, Nemesis, NemesisError, Targets};
use super::PowerTarget;
use crate::cluster::{BoxFuture, Cluster};

pub struct PowerNemesis {
    rng: ChaCha8Rng,
    cut: Vec<usize>,
}

impl PowerNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        PowerNemesis { rng, cut: Vec::new() }
    }

    fn targets(&mut self, target: PowerTarget, nodes: usize, leader: Option<usize>) -> Vec<usize> {
        match target {
            PowerTarget::Leader => vec![leader_or(&mut self.rng, nodes, leader)],
            PowerTarget::Random => vec![self.rng.random_range(0..nodes)],
            PowerTarget::Majority => choose_nodes(&mut self.rng, nodes, kill_count(KillTarget::Majority, nodes)),
            PowerTarget::All => (0..nodes).collect(),
        }
    }
}

impl Nemesis for PowerNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Power]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        let Fault::Power(target) = fault else { return None };
        Some(Targets::Nodes(self.targets(target, nodes, leader)))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Power(_), Targets::Nodes(targets)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            // Every target dies before any disk is cut over, as when one
            // switch feeds them all.
            for node in &targets {
                self.cut.push(*node);
                cluster.kill(*node).await?;
            }
            for node in &targets {
                cluster.power_cut(*node).await?;
            }
            Ok(json!({ "power-lost": node_names(&targets) }))
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let cut = std::mem::take(&mut self.cut);
            if cut.is_empty() {
                return Ok(Effect::Null);
            }
            cluster.restart_all(&cut).await?;
            Ok(json!({ "restarted": node_names(&cut) }))
        })
    }
}
