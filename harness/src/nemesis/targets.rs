//! What a fault hit, as plain data: the nodes a kill, pause, power cut or
//! link fault took, or the grudge a partition applied. A nemesis chooses
//! its targets first and applies them second, so a recorded schedule can
//! hand the same targets back ([`super::recorded`]), and a replay can aim
//! at the same roles instead of the same node numbers ([`Targets::by_role`]).
use std::collections::BTreeSet;

use super::scenarios::Roles;
use super::{node_name, node_names};
use crate::proxy::Grudge;

/// How a replay aims a recorded fault (`--schedule-targets`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetsBy {
    /// At the same roles: the leader now where the leader was hit.
    #[default]
    Role,
    /// At the same node numbers, whoever leads.
    Node,
}

impl std::str::FromStr for TargetsBy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "role" => Ok(TargetsBy::Role),
            "node" => Ok(TargetsBy::Node),
            other => Err(format!("{other:?}: expected role or node")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// The nodes a kill, pause, power cut or link fault takes (sorted as
    /// chosen).
    Nodes(Vec<usize>),
    /// Each receiving node and the senders it loses.
    Grudge(Grudge),
    /// The parts a scripted scenario (revote, figure-8) gave each node.
    Sides(Roles),
}

impl Targets {
    /// Every node named, for validation against a cluster's size.
    pub fn nodes(&self) -> BTreeSet<usize> {
        match self {
            Targets::Nodes(nodes) => nodes.iter().copied().collect(),
            Targets::Grudge(grudge) => grudge.iter().flat_map(|(r, s)| std::iter::once(*r).chain(s.iter().copied())).collect(),
            Targets::Sides(roles) => roles.first.iter().chain(&roles.second).copied().chain(std::iter::once(roles.voter)).collect(),
        }
    }

    /// In words, after the fault's name: ` on n1, n3`, `: n1 no longer
    /// hears n3; ...`, ` with voter n2, first side n1, second side n3`.
    pub fn describe(&self) -> String {
        let names = |nodes: &[usize]| node_names(nodes).join(", ");
        match self {
            Targets::Nodes(nodes) => format!(" on {}", names(nodes)),
            Targets::Grudge(grudge) => {
                let cut = |(receiver, senders): (&usize, &BTreeSet<usize>)| {
                    format!("{} no longer hears {}", node_name(*receiver), names(&senders.iter().copied().collect::<Vec<_>>()))
                };
                format!(": {}", grudge.iter().map(cut).collect::<Vec<_>>().join("; "))
            }
            Targets::Sides(roles) => format!(
                " with voter {}, first side {}, second side {}",
                node_name(roles.voter),
                names(&roles.first),
                names(&roles.second)
            ),
        }
    }

    /// These targets with node numbers relabelled by `map`.
    pub(crate) fn relabel(&self, map: impl Fn(usize) -> usize) -> Targets {
        match self {
            Targets::Nodes(nodes) => Targets::Nodes(nodes.iter().map(|n| map(*n)).collect()),
            Targets::Grudge(grudge) => {
                Targets::Grudge(grudge.iter().map(|(r, s)| (map(*r), s.iter().map(|n| map(*n)).collect())).collect())
            }
            Targets::Sides(roles) => {
                let side = |nodes: &[usize]| {
                    let mut side: Vec<usize> = nodes.iter().map(|n| map(*n)).collect();
                    side.sort_unstable();
                    side
                };
                Targets::Sides(Roles { voter: map(roles.voter), first: side(&roles.first), second: side(&roles.second) })
            }
        }
    }

    /// The same roles in a cluster whose leader is now `leader_now`: the
    /// node that led when these targets were recorded and the leader now
    /// trade places, so a fault that hit the leader hits the leader again
    /// and one that hit a follower hits a follower. Unchanged when either
    /// leader is unknown.
    pub fn aimed(&self, by: TargetsBy, leader_then: Option<usize>, leader_now: Option<usize>) -> Targets {
        match by {
            TargetsBy::Role => self.by_role(leader_then, leader_now),
            TargetsBy::Node => self.clone(),
        }
    }

    pub fn by_role(&self, leader_then: Option<usize>, leader_now: Option<usize>) -> Targets {
        match (leader_then, leader_now) {
            (Some(then), Some(now)) if then != now => self.relabel(|node| match node {
                n if n == then => now,
                n if n == now => then,
                n => n,
            }),
            _ => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::partition::isolate;

    #[test]
    fn by_role_trades_the_old_leader_and_the_new() {
        let kill = Targets::Nodes(vec![2]);
        assert_eq!(kill.by_role(Some(2), Some(4)), Targets::Nodes(vec![4]), "the leader then is the leader now");
        assert_eq!(Targets::Nodes(vec![4]).by_role(Some(2), Some(4)), Targets::Nodes(vec![2]), "a follower stays a follower");
        assert_eq!(Targets::Nodes(vec![1, 3]).by_role(Some(2), Some(4)), Targets::Nodes(vec![1, 3]));
        assert_eq!(kill.by_role(None, Some(4)), kill, "no recorded leader: the recorded nodes");
        assert_eq!(kill.by_role(Some(2), None), kill, "no leader now: the recorded nodes");
        let partition = Targets::Grudge(isolate(0, 3));
        assert_eq!(partition.by_role(Some(0), Some(2)), Targets::Grudge(isolate(2, 3)));
        assert_eq!(partition.nodes(), BTreeSet::from([0, 1, 2]));
        let sides = Targets::Sides(Roles { voter: 1, first: vec![0, 4], second: vec![2, 3] });
        let aimed = Targets::Sides(Roles { voter: 1, first: vec![3, 4], second: vec![0, 2] });
        assert_eq!(sides.by_role(Some(0), Some(3)), aimed, "the leader now opens on the first side");
        assert_eq!(sides.nodes(), BTreeSet::from([0, 1, 2, 3, 4]));
        assert_eq!(kill.aimed(TargetsBy::Node, Some(2), Some(4)), kill, "by node: as recorded");
        assert_eq!(kill.aimed(TargetsBy::Role, Some(2), Some(4)), Targets::Nodes(vec![4]));
        assert_eq!("node".parse::<TargetsBy>(), Ok(TargetsBy::Node));
        assert!("leader".parse::<TargetsBy>().unwrap_err().contains("expected role or node"));
    }
}
