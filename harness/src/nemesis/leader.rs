//! Finding the leader for leader-targeted faults: the cluster's own answer
//! first, else a majority vote of the nodes' `status` replies read through
//! their client addresses (the node nests `leader` inside `value`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cluster::{Cluster, NodeState};

/// Bound on one status exchange, connect included (a paused node never answers).
const STATUS_TIMEOUT_MS: u64 = 300;
const STATUS_LINE_BYTES_MAX: u64 = 64 * 1024;

pub async fn find_leader(cluster: &Cluster) -> Option<usize> {
    if let Some(leader) = cluster.leader().await {
        return Some(leader);
    }
    let mut probes = tokio::task::JoinSet::new();
    for node in 0..cluster.nodes() {
        if cluster.node_state(node) == NodeState::Running {
            probes.spawn(reported_leader(cluster.client_addr(node)));
        }
    }
    let mut reports = Vec::new();
    while let Some(report) = probes.join_next().await {
        if let Ok(Some(leader)) = report {
            reports.push(leader);
        }
    }
    majority(&reports, cluster.nodes())
}

/// The leader most reports name, if more than half of them agree.
pub fn majority(reports: &[usize], nodes: usize) -> Option<usize> {
    let mut counts = BTreeMap::new();
    for leader in reports.iter().filter(|leader| **leader < nodes) {
        *counts.entry(*leader).or_insert(0usize) += 1;
    }
    let (leader, count) = counts.into_iter().max_by_key(|(_, count)| *count)?;
    (count * 2 > reports.len()).then_some(leader)
}

/// The 0-based leader index one node reports.
async fn reported_leader(addr: SocketAddr) -> Option<usize> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"{\"id\":1,\"op\":\"status\"}\n").await.ok()?;
        let mut line = String::new();
        BufReader::new(stream).take(STATUS_LINE_BYTES_MAX).read_line(&mut line).await.ok()?;
        let reply: serde_json::Value = serde_json::from_str(&line).ok()?;
        let id = reply["value"]["leader"].as_u64().or_else(|| reply["leader"].as_u64())?;
        usize::try_from(id).ok()?.checked_sub(1)
    };
    tokio::time::timeout(Duration::from_millis(STATUS_TIMEOUT_MS), exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_needs_more_than_half() {
        assert_eq!(majority(&[1, 1, 2], 3), Some(1));
        assert_eq!(majority(&[1, 2], 3), None);
        assert_eq!(majority(&[], 3), None);
        assert_eq!(majority(&[7, 7], 3), None, "out-of-range ids are ignored");
    }
}
