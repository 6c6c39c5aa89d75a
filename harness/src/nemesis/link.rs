//! Link faults: delay, blackhole, reset or throttle every peer link into
//! and out of one random node (in the proxy, or with a host's own tools).
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_then_apply, node_names, Effect, Fault, FaultFamily, LinkMode, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::{Endpoint, LinkFault};

/// Settings for the link faults (from the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSettings {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub bandwidth_bytes_per_s: u64,
}

/// The `LinkFault` one mode applies.
pub fn link_fault(mode: LinkMode, settings: LinkSettings) -> LinkFault {
    let none = LinkFault::default();
    match mode {
        LinkMode::Delay => LinkFault { delay_ms: settings.delay_ms, jitter_ms: settings.jitter_ms, ..none },
        LinkMode::Drop => LinkFault { drop: true, ..none },
        LinkMode::Reset => LinkFault { reset: true, ..none },
        LinkMode::Slow => LinkFault { bandwidth_bytes_per_s: Some(settings.bandwidth_bytes_per_s), ..none },
    }
}

/// Both directions between `node` and every other node.
pub fn links_of(node: usize, nodes: usize) -> Vec<(Endpoint, Endpoint)> {
    (0..nodes)
        .filter(|other| *other != node)
        .flat_map(|other| {
            [(Endpoint::Node(node), Endpoint::Node(other)), (Endpoint::Node(other), Endpoint::Node(node))]
        })
        .collect()
}

pub struct LinkNemesis {
    rng: ChaCha8Rng,
    settings: LinkSettings,
    active: bool,
}

impl LinkNemesis {
    pub fn new(rng: ChaCha8Rng, settings: LinkSettings) -> Self {
        LinkNemesis { rng, settings, active: false }
    }
}

impl Nemesis for LinkNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Link]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, _leader: Option<usize>) -> Option<Targets> {
        let Fault::Link(_) = fault else { return None };
        Some(Targets::Nodes(vec![self.rng.random_range(0..nodes)]))
    }

    /// The fault's values come from the spec's link settings, which a
    /// replay runs with again.
    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Link(mode), Targets::Nodes(nodes)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            let link_fault = link_fault(mode, self.settings);
            let links: Vec<(Endpoint, Endpoint)> = nodes.iter().flat_map(|node| links_of(*node, cluster.slots())).collect();
            self.active = true;
            let aborted = cluster.set_link_faults(&links, link_fault).await?;
            let mut effect = match nodes.as_slice() {
                [node] => json!({ "node": super::node_name(*node), "fault": link_fault }),
                _ => json!({ "nodes": node_names(&nodes), "fault": link_fault }),
            };
            if let Some(aborted) = aborted.filter(|_| link_fault.drop || link_fault.reset) {
                effect["connections_aborted"] = json!(aborted);
            }
            Ok(effect)
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            if !std::mem::take(&mut self.active) {
                return Ok(Effect::Null);
            }
            // A partition of another nemesis stays in force.
            cluster.clear_link_faults().await?;
            Ok(json!("links healed"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_sets_one_thing() {
        let settings = LinkSettings { delay_ms: 40, jitter_ms: 10, bandwidth_bytes_per_s: 1000 };
        assert_eq!(link_fault(LinkMode::Delay, settings).delay_ms, 40);
        assert_eq!(link_fault(LinkMode::Delay, settings).jitter_ms, 10);
        assert!(link_fault(LinkMode::Drop, settings).drop);
        assert!(link_fault(LinkMode::Reset, settings).reset);
        assert_eq!(link_fault(LinkMode::Slow, settings).bandwidth_bytes_per_s, Some(1000));
        assert!(!link_fault(LinkMode::Slow, settings).drop);
    }

    #[test]
    fn links_of_cover_both_directions() {
        let links = links_of(1, 3);
        assert_eq!(links.len(), 4);
        assert!(links.contains(&(Endpoint::Node(1), Endpoint::Node(0))));
        assert!(links.contains(&(Endpoint::Node(2), Endpoint::Node(1))));
        assert!(!links.iter().any(|(a, b)| a == b));
    }
}
