//! One line of `schedule.jsonl`: its format as written, and the checks
//! that read it back into a [`RecordedEvent`] for a cluster of a given
//! size (node names, targets by family, times).
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::super::scenarios::Roles;
use super::super::{node_name, node_names, Fault, FaultFamily, Targets};
use super::RecordedEvent;

/// One line as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventLine {
    at_ms: u64,
    fault: String,
    duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grudge: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<RolesLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leader: Option<String>,
}

/// A scripted scenario's parts, by node name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesLine {
    voter: String,
    first: Vec<String>,
    second: Vec<String>,
}

impl EventLine {
    /// A membership change (its schedule ran with a spare slot).
    pub(super) fn is_membership(&self) -> bool {
        Fault::parse_name(&self.fault).is_ok_and(|faults| faults.iter().any(|fault| fault.family() == FaultFamily::Membership))
    }
}

impl From<&RecordedEvent> for EventLine {
    fn from(event: &RecordedEvent) -> Self {
        let (mut nodes, mut grudge, mut roles) = (None, None, None);
        match &event.targets {
            Some(Targets::Nodes(chosen)) => nodes = Some(node_names(chosen)),
            Some(Targets::Grudge(cut)) => {
                grudge = Some(cut.iter().map(|(r, s)| (node_name(*r), s.iter().map(|n| node_name(*n)).collect())).collect());
            }
            Some(Targets::Sides(parts)) => {
                roles = Some(RolesLine { voter: node_name(parts.voter), first: node_names(&parts.first), second: node_names(&parts.second) });
            }
            None => {}
        }
        EventLine {
            at_ms: event.at_ms,
            fault: event.fault.name().to_string(),
            duration_ms: event.duration_ms,
            group: Some(event.group.clone()),
            nodes,
            grudge,
            roles,
            leader: event.leader.map(node_name),
        }
    }
}

/// A node name (`n3`) in a cluster of `nodes`.
fn node_of(name: &str, nodes: usize) -> Result<usize, String> {
    let number: usize = name
        .strip_prefix('n')
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| format!("{name:?} is not a node name (n1, n2, ...)"))?;
    match number {
        1.. if number <= nodes => Ok(number - 1),
        _ => Err(format!("node {name} is not in a cluster of {nodes}")),
    }
}

fn nodes_of(names: &[String], nodes: usize) -> Result<Vec<usize>, String> {
    let chosen: Vec<usize> = names.iter().map(|name| node_of(name, nodes)).collect::<Result<_, _>>()?;
    let distinct: BTreeSet<usize> = chosen.iter().copied().collect();
    match (chosen.is_empty(), distinct.len() == chosen.len()) {
        (true, _) => Err("nodes is empty".to_string()),
        (_, false) => Err("nodes names a node twice".to_string()),
        _ => Ok(chosen),
    }
}

/// The targets of a line, checked against its fault's family.
fn targets_of(line: &EventLine, fault: Fault, nodes: usize) -> Result<Option<Targets>, String> {
    let family = fault.family();
    match (&line.nodes, &line.grudge, &line.roles) {
        (None, None, None) => Ok(None),
        (Some(names), None, None) => match family {
            FaultFamily::Kill
            | FaultFamily::Pause
            | FaultFamily::Power
            | FaultFamily::Link
            | FaultFamily::Corrupt
            | FaultFamily::Disk
            | FaultFamily::Clock => {
                Ok(Some(Targets::Nodes(nodes_of(names, nodes)?)))
            }
            // An add names nobody: it takes the lowest free slot.
            FaultFamily::Membership if names.is_empty() => Ok(Some(Targets::Nodes(Vec::new()))),
            FaultFamily::Membership => Ok(Some(Targets::Nodes(nodes_of(names, nodes)?))),
            _ => Err(format!("{fault} takes no nodes ({})", family_targets(family))),
        },
        (None, Some(grudge), None) => match family {
            FaultFamily::Partition => Ok(Some(Targets::Grudge(grudge_of(grudge, nodes)?))),
            _ => Err(format!("{fault} takes no grudge ({})", family_targets(family))),
        },
        (None, None, Some(roles)) => match family {
            FaultFamily::Revote | FaultFamily::FigureEight => Ok(Some(Targets::Sides(roles_of(roles, nodes)?))),
            _ => Err(format!("{fault} takes no roles ({})", family_targets(family))),
        },
        _ => Err("an event has one of nodes, grudge or roles".to_string()),
    }
}

/// What a family's events may name, for errors.
fn family_targets(family: FaultFamily) -> &'static str {
    match family {
        FaultFamily::Partition => "a partition takes a grudge",
        FaultFamily::Revote | FaultFamily::FigureEight => "a scripted scenario takes roles",
        FaultFamily::Kill
        | FaultFamily::Pause
        | FaultFamily::Power
        | FaultFamily::Link
        | FaultFamily::Membership
        | FaultFamily::Corrupt
        | FaultFamily::Disk
        | FaultFamily::Clock => "it takes nodes",
        _ => "its nemesis chooses its own targets",
    }
}

fn grudge_of(grudge: &BTreeMap<String, Vec<String>>, nodes: usize) -> Result<crate::proxy::Grudge, String> {
    let mut parsed = crate::proxy::Grudge::new();
    for (receiver, senders) in grudge {
        let receiver = node_of(receiver, nodes)?;
        let senders: BTreeSet<usize> = senders.iter().map(|s| node_of(s, nodes)).collect::<Result<_, _>>()?;
        if senders.contains(&receiver) {
            return Err(format!("the grudge cuts {} off from itself", node_name(receiver)));
        }
        if !senders.is_empty() {
            parsed.insert(receiver, senders);
        }
    }
    Ok(parsed)
}

fn roles_of(line: &RolesLine, nodes: usize) -> Result<Roles, String> {
    let side = |names: &[String]| -> Result<Vec<usize>, String> {
        let mut side = names.iter().map(|name| node_of(name, nodes)).collect::<Result<Vec<_>, _>>()?;
        side.sort_unstable();
        Ok(side)
    };
    let roles = Roles { voter: node_of(&line.voter, nodes)?, first: side(&line.first)?, second: side(&line.second)? };
    roles.check(nodes).map_err(|message| format!("roles: {message}"))?;
    Ok(roles)
}

/// One event of a cluster of `nodes` whose faults may name `slots` nodes.
pub(super) fn event_of(line: &EventLine, nodes: usize, slots: usize, time_limit_ms: u64) -> Result<RecordedEvent, String> {
    let fault = match Fault::parse_name(&line.fault)?.as_slice() {
        [fault] => *fault,
        _ => return Err(format!("{:?} names several faults; an event is one fault (kill-leader, partition-halves, ...)", line.fault)),
    };
    if nodes < fault.nodes_min() {
        return Err(format!("{fault} needs at least {} nodes, the cluster has {nodes}", fault.nodes_min()));
    }
    if line.at_ms >= time_limit_ms {
        return Err(format!("at_ms {} is not before the time limit ({time_limit_ms} ms)", line.at_ms));
    }
    if line.duration_ms == 0 || line.duration_ms > time_limit_ms {
        return Err(format!("duration_ms {} is not in 1..={time_limit_ms} (the time limit)", line.duration_ms));
    }
    let group = line.group.clone().unwrap_or_else(|| fault.family().name().to_string());
    if group.is_empty() || group.len() > 64 {
        return Err("group must be 1 to 64 characters".to_string());
    }
    let leader = line.leader.as_deref().map(|name| node_of(name, slots)).transpose()?;
    Ok(RecordedEvent { at_ms: line.at_ms, fault, duration_ms: line.duration_ms, group, targets: targets_of(line, fault, slots)?, leader })
}
