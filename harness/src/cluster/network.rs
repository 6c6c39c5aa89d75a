//! Network faults on the cluster, by whichever means its nodes are
//! reached: the fault proxy on this machine, or the hosts' own firewall
//! and traffic shaping.
use std::collections::BTreeMap;

use crate::proxy::{Endpoint, Grudge, LinkFault};

use super::{lock, Cluster, ClusterError};

/// The partition each nemesis holds, by its name.
pub(super) type PartitionLayers = BTreeMap<&'static str, Grudge>;

/// Sets `owner`'s layer (an empty grudge removes it); what the network
/// must enforce now: every receiver loses the senders any layer says.
fn set_layer(layers: &mut PartitionLayers, owner: &'static str, grudge: &Grudge) -> Grudge {
    match grudge.is_empty() {
        true => layers.remove(owner),
        false => layers.insert(owner, grudge.clone()),
    };
    let mut union = Grudge::new();
    for (receiver, senders) in layers.values().flatten() {
        union.entry(*receiver).or_default().extend(senders.iter().copied());
    }
    union
}

impl Cluster {
    /// Replace the partition `owner` holds by `grudge` (receiver → the
    /// senders it loses); an empty grudge ends it. The network enforces
    /// the union of every owner's partition, so one nemesis's heal leaves
    /// another's cut in force (a partition family healing on its own
    /// schedule used to mend the cut a membership fault made a second
    /// earlier). On hosts, returns the established connections the cut
    /// aborted.
    pub async fn partition(&self, owner: &'static str, grudge: &Grudge) -> Result<Option<usize>, ClusterError> {
        let union = set_layer(&mut lock(&self.inner.partitions), owner, grudge);
        match &self.inner.hosts {
            Some(hosts) => Ok(Some(hosts.partition(&union).await?)),
            None => {
                self.inner.proxy.partition(&union);
                Ok(None)
            }
        }
    }

    /// Set `fault` on each link (one direction each). On hosts, returns
    /// the established connections a drop or reset aborted.
    pub async fn set_link_faults(&self, links: &[(Endpoint, Endpoint)], fault: LinkFault) -> Result<Option<usize>, ClusterError> {
        match &self.inner.hosts {
            Some(hosts) => Ok(Some(hosts.set_link_faults(links, fault).await?)),
            None => {
                for (from, to) in links {
                    self.inner.proxy.set_link_fault(*from, *to, fault);
                }
                Ok(None)
            }
        }
    }

    /// Remove every link fault; a partition stays.
    pub async fn clear_link_faults(&self) -> Result<(), ClusterError> {
        match &self.inner.hosts {
            Some(hosts) => Ok(hosts.clear_link_faults().await?),
            None => {
                let (_, links) = self.inner.proxy.faults();
                for (from, to) in links.into_keys() {
                    self.inner.proxy.set_link_fault(from, to, LinkFault::default());
                }
                Ok(())
            }
        }
    }

    /// Fails, naming the host, when a link cannot be delayed there (the
    /// proxy always can): asked before a run whose faults delay links.
    pub async fn check_link_delay(&self) -> Result<(), ClusterError> {
        match &self.inner.hosts {
            Some(hosts) => Ok(hosts.check_netem().await?),
            None => Ok(()),
        }
    }

    /// True when a partition or link fault in force touches `node`'s links
    /// to its peers: a restart that waits for the node to see a leader
    /// cannot finish while it holds.
    pub async fn is_cut_off(&self, node: usize) -> bool {
        let (grudge, links) = match &self.inner.hosts {
            Some(hosts) => hosts.faults_in_force().await,
            None => self.inner.proxy.faults(),
        };
        let in_grudge = grudge.iter().any(|(receiver, senders)| {
            (*receiver == node && senders.iter().any(|sender| *sender != node)) || (*receiver != node && senders.contains(&node))
        });
        let in_links = links.keys().any(|(from, to)| {
            matches!((from, to), (Endpoint::Node(a), Endpoint::Node(b)) if a != b && (*a == node || *b == node))
        });
        in_grudge || in_links
    }

    /// True when the nodes run on hosts (no proxy between them).
    pub fn on_hosts(&self) -> bool {
        self.inner.hosts.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owner_heals_only_its_own_cut() {
        let mut layers = PartitionLayers::new();
        let cut = |pairs: &[(usize, &[usize])]| -> Grudge { pairs.iter().map(|(to, from)| (*to, from.iter().copied().collect())).collect() };
        let membership = cut(&[(0, &[1, 2]), (1, &[0]), (2, &[0])]);
        assert_eq!(set_layer(&mut layers, "membership", &membership), membership);
        let both = set_layer(&mut layers, "partition", &cut(&[(0, &[3]), (3, &[0])]));
        assert_eq!(both, cut(&[(0, &[1, 2, 3]), (1, &[0]), (2, &[0]), (3, &[0])]), "the union of both cuts");
        assert_eq!(set_layer(&mut layers, "partition", &Grudge::new()), membership, "the partition's heal leaves the membership cut");
        assert_eq!(set_layer(&mut layers, "membership", &Grudge::new()), Grudge::new());
        assert!(layers.is_empty());
    }
}
