//! Network partitions: grudges computed as plain data, applied through the
//! fault proxy.
use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_then_apply, leader_or, Effect, Fault, FaultFamily, Nemesis, NemesisError, PartitionMode, Targets};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::Grudge;

/// The name this family's cut goes by in the cluster's network.
const PARTITION_OWNER: &str = "partition";

/// Every node of each component loses everything sent from the others.
pub fn complete_grudge(components: &[Vec<usize>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (index, component) in components.iter().enumerate() {
        let others: BTreeSet<usize> = components
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .flat_map(|(_, nodes)| nodes.iter().copied())
            .collect();
        for node in component {
            if !others.is_empty() {
                grudge.insert(*node, others.clone());
            }
        }
    }
    grudge
}

fn shuffled(rng: &mut ChaCha8Rng, nodes: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..nodes).collect();
    order.shuffle(rng);
    order
}

/// Two random halves; the first (smaller) half has `nodes / 2` members.
pub fn halves(rng: &mut ChaCha8Rng, nodes: usize) -> Grudge {
    let order = shuffled(rng, nodes);
    let (small, large) = order.split_at(nodes / 2);
    complete_grudge(&[small.to_vec(), large.to_vec()])
}

/// `node` alone against the rest.
pub fn isolate(node: usize, nodes: usize) -> Grudge {
    let rest: Vec<usize> = (0..nodes).filter(|other| *other != node).collect();
    complete_grudge(&[vec![node], rest])
}

/// `leader` and `nodes / 2 - 1` random others against the rest: the
/// leader on the minority side of two halves.
pub fn leader_minority(rng: &mut ChaCha8Rng, leader: usize, nodes: usize) -> Grudge {
    let others: Vec<usize> = shuffled(rng, nodes).into_iter().filter(|node| *node != leader).collect();
    let (with_leader, rest) = others.split_at((nodes / 2).saturating_sub(1));
    let minority: Vec<usize> = std::iter::once(leader).chain(with_leader.iter().copied()).collect();
    complete_grudge(&[minority, rest.to_vec()])
}

/// Jepsen's majorities ring: nodes on a random ring each see themselves and
/// their nearest neighbours, exactly a majority, so every node sees a
/// majority but no two see the same one (for 5 nodes and more).
pub fn majority_ring(rng: &mut ChaCha8Rng, nodes: usize) -> Grudge {
    let order = shuffled(rng, nodes);
    let majority = nodes / 2 + 1;
    let mut grudge = Grudge::new();
    for (position, node) in order.iter().enumerate() {
        // The majority window starts `(majority - 1) / 2` places back.
        let back = (majority - 1) / 2;
        let visible: BTreeSet<usize> = (0..majority)
            .map(|offset| order[(position + nodes - back + offset) % nodes])
            .collect();
        let lost: BTreeSet<usize> = order.iter().copied().filter(|n| !visible.contains(n)).collect();
        if !lost.is_empty() {
            grudge.insert(*node, lost);
        }
    }
    grudge
}

/// Two halves and one bridge node in touch with both.
pub fn bridge(rng: &mut ChaCha8Rng, nodes: usize) -> Grudge {
    let order = shuffled(rng, nodes);
    let bridge_node = order[0];
    let rest = &order[1..];
    let (left, right) = rest.split_at(rest.len() / 2);
    let mut grudge = complete_grudge(&[left.to_vec(), right.to_vec()]);
    grudge.remove(&bridge_node);
    grudge
}

/// One random node loses everything the others send it; they still hear it.
pub fn one_way(rng: &mut ChaCha8Rng, nodes: usize) -> Grudge {
    let victim = shuffled(rng, nodes)[0];
    let others: BTreeSet<usize> = (0..nodes).filter(|n| *n != victim).collect();
    Grudge::from([(victim, others)])
}

/// The grudge as history JSON, with node names: `{"n1": ["n2", "n3"]}`.
pub fn grudge_json(grudge: &Grudge) -> Effect {
    let map: serde_json::Map<String, Effect> = grudge
        .iter()
        .map(|(receiver, senders)| {
            let senders: Vec<String> = senders.iter().map(|s| super::node_name(*s)).collect();
            (super::node_name(*receiver), json!(senders))
        })
        .collect();
    Effect::Object(map)
}

pub struct PartitionNemesis {
    rng: ChaCha8Rng,
    active: bool,
}

impl PartitionNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        PartitionNemesis { rng, active: false }
    }

    fn grudge(&mut self, mode: PartitionMode, nodes: usize, leader: Option<usize>) -> Grudge {
        match mode {
            PartitionMode::Halves => halves(&mut self.rng, nodes),
            PartitionMode::Leader => isolate(leader_or(&mut self.rng, nodes, leader), nodes),
            PartitionMode::LeaderMinority => {
                let leader = leader_or(&mut self.rng, nodes, leader);
                leader_minority(&mut self.rng, leader, nodes)
            }
            PartitionMode::Random => isolate(self.rng.random_range(0..nodes), nodes),
            PartitionMode::Ring => majority_ring(&mut self.rng, nodes),
            PartitionMode::Bridge => bridge(&mut self.rng, nodes),
            PartitionMode::OneWay => one_way(&mut self.rng, nodes),
        }
    }
}

impl Nemesis for PartitionNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Partition]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        let Fault::Partition(mode) = fault else { return None };
        Some(Targets::Grudge(self.grudge(mode, nodes, leader)))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Partition(_), Targets::Grudge(grudge)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            let aborted = cluster.partition(PARTITION_OWNER, &grudge).await?;
            self.active = true;
            let mut effect = json!({ "grudge": grudge_json(&grudge) });
            if let Some(aborted) = aborted {
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
            cluster.partition(PARTITION_OWNER, &Grudge::new()).await?;
            Ok(json!("network healed"))
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn sees(grudge: &Grudge, receiver: usize, sender: usize) -> bool {
        !grudge.get(&receiver).is_some_and(|lost| lost.contains(&sender))
    }

    #[test]
    fn halves_split_into_a_minority_and_a_majority() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let grudge = halves(&mut rng, 5);
        assert_eq!(grudge.len(), 5, "every node loses someone");
        let mut sizes: Vec<usize> = grudge.values().map(BTreeSet::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [2, 2, 2, 3, 3], "3 majority nodes lose 2, 2 minority nodes lose 3");
        for (receiver, senders) in &grudge {
            for sender in senders {
                assert!(!sees(&grudge, *sender, *receiver), "halves are cut both ways");
            }
        }
    }

    #[test]
    fn leader_minority_puts_the_leader_with_a_minority() {
        for (nodes, minority) in [(3, 1), (5, 2), (7, 3)] {
            let mut rng = ChaCha8Rng::seed_from_u64(nodes as u64);
            let grudge = leader_minority(&mut rng, 1, nodes);
            let with_leader: Vec<usize> = (0..nodes).filter(|node| sees(&grudge, 1, *node)).collect();
            assert_eq!(with_leader.len(), minority, "{nodes} nodes: the leader's side {with_leader:?}");
            assert!(with_leader.contains(&1));
            for node in (0..nodes).filter(|node| !with_leader.contains(node)) {
                assert!(!sees(&grudge, node, 1) && !sees(&grudge, 1, node), "cut both ways");
            }
        }
    }

    #[test]
    fn isolate_cuts_one_node_from_all() {
        let grudge = isolate(2, 5);
        assert_eq!(grudge[&2], BTreeSet::from([0, 1, 3, 4]));
        for other in [0, 1, 3, 4] {
            assert_eq!(grudge[&other], BTreeSet::from([2]));
        }
    }

    #[test]
    fn majority_ring_gives_every_node_a_distinct_majority() {
        for nodes in [3, 5, 7] {
            let mut rng = ChaCha8Rng::seed_from_u64(nodes as u64);
            let grudge = majority_ring(&mut rng, nodes);
            let majority = nodes / 2 + 1;
            let mut views = BTreeSet::new();
            for node in 0..nodes {
                let visible: BTreeSet<usize> = (0..nodes).filter(|s| sees(&grudge, node, *s)).collect();
                assert_eq!(visible.len(), majority, "{nodes} nodes: node {node} sees {visible:?}");
                assert!(visible.contains(&node));
                views.insert(visible);
            }
            if nodes >= 5 {
                assert_eq!(views.len(), nodes, "no two nodes see the same majority");
            }
        }
    }

    #[test]
    fn bridge_node_sees_both_sides() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let grudge = bridge(&mut rng, 5);
        let bridge_nodes: Vec<usize> = (0..5).filter(|n| !grudge.contains_key(n)).collect();
        assert_eq!(bridge_nodes.len(), 1);
        let bridge_node = bridge_nodes[0];
        for node in 0..5 {
            assert!(sees(&grudge, node, bridge_node), "everyone hears the bridge");
        }
        assert_eq!(grudge.len(), 4);
        assert!(grudge.values().all(|lost| lost.len() == 2 && !lost.contains(&bridge_node)));
    }

    #[test]
    fn one_way_cuts_one_direction() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let grudge = one_way(&mut rng, 3);
        assert_eq!(grudge.len(), 1);
        let (victim, lost) = grudge.iter().next().unwrap();
        assert_eq!(lost.len(), 2);
        for other in lost {
            assert!(sees(&grudge, *other, *victim), "others still hear the victim");
        }
    }

    #[test]
    fn grudges_are_seeded() {
        let a = halves(&mut ChaCha8Rng::seed_from_u64(9), 7);
        let b = halves(&mut ChaCha8Rng::seed_from_u64(9), 7);
        assert_eq!(a, b);
        let json = grudge_json(&isolate(0, 2));
        assert_eq!(json, json!({"n1": ["n2"], "n2": ["n1"]}));
    }
}
