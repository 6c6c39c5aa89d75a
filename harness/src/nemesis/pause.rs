//! Process pauses: SIGSTOP the leader or a random node; healing sends SIGCONT.
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_then_apply, leader_or, node_names, Effect, Fault, FaultFamily, Nemesis, NemesisError, PauseTarget, Targets};
use crate::cluster::{BoxFuture, Cluster};

pub struct PauseNemesis {
    rng: ChaCha8Rng,
    paused: Vec<usize>,
}

impl PauseNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        PauseNemesis { rng, paused: Vec::new() }
    }
}

impl Nemesis for PauseNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Pause]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        let node = match fault {
            Fault::Pause(PauseTarget::Leader) => leader_or(&mut self.rng, nodes, leader),
            Fault::Pause(PauseTarget::Random) => self.rng.random_range(0..nodes),
            _ => return None,
        };
        Some(Targets::Nodes(vec![node]))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Pause(_), Targets::Nodes(nodes)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            for node in &nodes {
                self.paused.push(*node);
                cluster.pause(*node)?;
            }
            Ok(json!({ "paused": node_names(&nodes) }))
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let paused = std::mem::take(&mut self.paused);
            if paused.is_empty() {
                return Ok(Effect::Null);
            }
            let mut first_error = None;
            for node in &paused {
                if let Err(error) = cluster.resume(*node) {
                    first_error.get_or_insert(error);
                }
            }
            match first_error {
                Some(error) => Err(error.into()),
                None => Ok(json!({ "resumed": node_names(&paused) })),
            }
        })
    }
}
