//! Network faults on the cluster, by whichever means its nodes are
//! reached: the fault proxy on this machine, or the hosts' own firewall
//! and traffic shaping.
use crate::proxy::{Endpoint, Grudge, LinkFault};

use super::{Cluster, ClusterError};

impl Cluster {
    /// Replace the partition in force by `grudge` (receiver → the senders
    /// it loses); an empty grudge ends it. On hosts, returns the
    /// established connections the cut aborted.
    pub async fn partition(&self, grudge: &Grudge) -> Result<Option<usize>, ClusterError> {
        match &self.inner.hosts {
            Some(hosts) => Ok(Some(hosts.partition(grudge).await?)),
            None => {
                self.inner.proxy.partition(grudge);
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

    /// Remove the partition and every link fault.
    pub async fn heal_network(&self) -> Result<(), ClusterError> {
        match &self.inner.hosts {
            Some(hosts) => Ok(hosts.heal().await?),
            None => {
                self.inner.proxy.heal();
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
