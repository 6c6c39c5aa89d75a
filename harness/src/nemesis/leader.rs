//! Finding the leader for leader-targeted faults: only the system's own
//! answer (`Db::leader`), so the harness never speaks one system's protocol
//! to another. Without an answer (a generic system, or no majority of nodes
//! agreeing), leader-targeted faults fall back to a seeded random node.
use crate::cluster::Cluster;

/// The leader as the system under test reports it, if it does.
pub async fn find_leader(cluster: &Cluster) -> Option<usize> {
    cluster.leader().await
}
