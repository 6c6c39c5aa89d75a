//! The fault state as plain data: who is partitioned from whom and which
//! link faults are in force, and the pure answer to "what happens to bytes
//! sent by A to B".
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One side of a proxied connection: a node (0-based index) or the clients,
/// which all sit on the control node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    Node(usize),
    Client,
}

/// What happens to bytes sent one way over a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFault {
    /// Added one-way latency.
    pub delay_ms: u64,
    /// Uniform extra latency in `0..=jitter_ms`; order is kept, as TCP does.
    pub jitter_ms: u64,
    /// Blackhole: bytes are read and discarded.
    pub drop: bool,
    /// Connections carrying this direction are reset (RST), new ones on accept.
    pub reset: bool,
    /// Throughput cap for this direction of each connection; `Some(0)` is
    /// a drop.
    pub bandwidth_bytes_per_s: Option<u64>,
}

/// A partition: receiver → the senders whose bytes it loses.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// What to do with a whole connection, given the faults on its two
/// directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Open,
    /// The pair is partitioned both ways: close (FIN) both sides.
    Close,
    /// A direction carries `reset`: RST both sides.
    Reset,
}

/// The partition and link faults in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultTable {
    grudge: Grudge,
    links: BTreeMap<(Endpoint, Endpoint), LinkFault>,
}

impl FaultTable {
    /// Replace the partition; self-grudges and empty sets are dropped so the
    /// table stays canonical.
    pub(crate) fn partition(&mut self, grudge: &Grudge) {
        self.grudge = grudge
            .iter()
            .map(|(receiver, senders)| {
                let senders: BTreeSet<usize> =
                    senders.iter().copied().filter(|s| s != receiver).collect();
                (*receiver, senders)
            })
            .filter(|(_, senders)| !senders.is_empty())
            .collect();
    }

    pub(crate) fn set_link(&mut self, from: Endpoint, to: Endpoint, fault: LinkFault) {
        if fault == LinkFault::default() {
            self.links.remove(&(from, to));
        } else {
            self.links.insert((from, to), fault);
        }
    }

    pub(crate) fn heal(&mut self) {
        self.grudge.clear();
        self.links.clear();
    }

    pub(crate) fn grudge(&self) -> &Grudge {
        &self.grudge
    }

    pub(crate) fn links(&self) -> &BTreeMap<(Endpoint, Endpoint), LinkFault> {
        &self.links
    }

    /// True when bytes sent by `from` to `to` are lost to the partition.
    /// Clients are never partitioned.
    pub(crate) fn partitioned(&self, from: Endpoint, to: Endpoint) -> bool {
        match (from, to) {
            (Endpoint::Node(sender), Endpoint::Node(receiver)) => self
                .grudge
                .get(&receiver)
                .is_some_and(|senders| senders.contains(&sender)),
            _ => false,
        }
    }

    /// The fault on bytes sent by `from` to `to`: the link fault, plus a drop
    /// when the partition cuts that direction.
    pub(crate) fn direction(&self, from: Endpoint, to: Endpoint) -> LinkFault {
        let mut fault = self.links.get(&(from, to)).copied().unwrap_or_default();
        if fault.bandwidth_bytes_per_s == Some(0) {
            fault.bandwidth_bytes_per_s = None;
            fault.drop = true;
        }
        if self.partitioned(from, to) {
            fault.drop = true;
        }
        fault
    }

    /// The fate of a connection between `a` and `b` (either side opened it).
    pub(crate) fn verdict(&self, a: Endpoint, b: Endpoint) -> Verdict {
        if self.direction(a, b).reset || self.direction(b, a).reset {
            return Verdict::Reset;
        }
        if self.partitioned(a, b) && self.partitioned(b, a) {
            return Verdict::Close;
        }
        Verdict::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grudge(pairs: &[(usize, &[usize])]) -> Grudge {
        pairs.iter().map(|(r, s)| (*r, s.iter().copied().collect())).collect()
    }

    #[test]
    fn one_way_partition_drops_one_direction_only() {
        let mut table = FaultTable::default();
        table.partition(&grudge(&[(1, &[0])]));
        assert!(table.direction(Endpoint::Node(0), Endpoint::Node(1)).drop);
        assert!(!table.direction(Endpoint::Node(1), Endpoint::Node(0)).drop);
        assert_eq!(table.verdict(Endpoint::Node(0), Endpoint::Node(1)), Verdict::Open);
    }

    #[test]
    fn two_way_partition_closes() {
        let mut table = FaultTable::default();
        table.partition(&grudge(&[(1, &[0]), (0, &[1])]));
        assert_eq!(table.verdict(Endpoint::Node(1), Endpoint::Node(0)), Verdict::Close);
        assert_eq!(table.verdict(Endpoint::Node(0), Endpoint::Node(2)), Verdict::Open);
    }

    #[test]
    fn clients_are_never_partitioned() {
        let mut table = FaultTable::default();
        table.partition(&grudge(&[(0, &[0, 1, 2])]));
        assert!(!table.direction(Endpoint::Client, Endpoint::Node(0)).drop);
        assert!(!table.direction(Endpoint::Node(0), Endpoint::Client).drop);
        // A node's grudge against itself is meaningless and dropped.
        assert!(!table.grudge()[&0].contains(&0));
    }

    #[test]
    fn link_faults_are_per_direction_and_heal_clears_all() {
        let mut table = FaultTable::default();
        let slow = LinkFault { delay_ms: 30, ..LinkFault::default() };
        table.set_link(Endpoint::Client, Endpoint::Node(2), slow);
        table.set_link(Endpoint::Node(2), Endpoint::Node(0), LinkFault { reset: true, ..slow });
        assert_eq!(table.direction(Endpoint::Client, Endpoint::Node(2)).delay_ms, 30);
        assert_eq!(table.direction(Endpoint::Node(2), Endpoint::Client).delay_ms, 0);
        assert_eq!(table.verdict(Endpoint::Node(0), Endpoint::Node(2)), Verdict::Reset);
        table.partition(&grudge(&[(1, &[2])]));
        table.heal();
        assert_eq!(table, FaultTable::default());
    }

    #[test]
    fn setting_the_default_fault_removes_the_link() {
        let mut table = FaultTable::default();
        table.set_link(Endpoint::Node(0), Endpoint::Node(1), LinkFault { drop: true, ..LinkFault::default() });
        table.set_link(Endpoint::Node(0), Endpoint::Node(1), LinkFault::default());
        assert!(table.links().is_empty());
    }
}
