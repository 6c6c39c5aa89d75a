//! The proxy really partitions: with the leader isolated, a write sent to
//! it does not succeed (it times out or is refused), while the majority
//! side elects a leader and commits; after the heal the whole cluster
//! serves writes again.
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::client::{Client, ClientConfig, Outcome};
use faultline::systems::faultline_node::NodeClient;
use faultline::cluster::{Cluster, ClusterConfig};
use faultline::systems::faultline_node::{find_node_binary, FaultlineNodeDb};
use faultline::nemesis::partition::isolate;
use faultline_workloads::{Invocation, WorkloadKind};

fn put(key: &str, value: &str) -> Invocation {
    Invocation { f: "put".to_string(), key: Some(key.to_string()), value: serde_json::json!(value) }
}

fn client(cluster: &Cluster, redirects_max: u32, node: usize) -> NodeClient {
    let config = ClientConfig {
        addrs: (0..cluster.nodes()).map(|n| cluster.client_addr(n)).collect(),
        kind: WorkloadKind::Kv,
        transactions: None,
        op_timeout_ms: 1_500,
        connect_timeout_ms: 500,
        redirects_max,
    };
    // A client starts at node `process % nodes`.
    NodeClient::new(Arc::new(config), node as u64)
}

/// Retries a write (each a fresh operation) until one succeeds or the bound passes.
async fn write_eventually(cluster: &Cluster, start_node: usize, key: &str, bound: Duration) -> Option<Duration> {
    let begin = Instant::now();
    let mut attempt = 0;
    while begin.elapsed() < bound {
        attempt += 1;
        let mut client = client(cluster, 5, start_node);
        if let Outcome::Ok(_) = client.invoke(&put(key, &format!("v{attempt}"))).await.outcome {
            return Some(begin.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_cannot_commit_while_the_majority_can() {
    let binary = find_node_binary().expect("build faultline-node first: cargo build --release -p faultline-node");
    let dir = std::env::temp_dir().join(format!("faultline-partition-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = Cluster::start(Arc::new(FaultlineNodeDb::new(binary)), ClusterConfig::new(3, dir.clone(), 7))
        .await
        .expect("cluster starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(leader) = cluster.leader().await {
            break leader;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(write_eventually(&cluster, leader, "before", Duration::from_secs(5)).await.is_some(), "healthy write");

    cluster.proxy().partition(&isolate(leader, 3));
    let mut isolated = client(&cluster, 0, leader);
    let outcome = isolated.invoke(&put("isolated", "lost")).await.outcome;
    assert!(!matches!(outcome, Outcome::Ok(_)), "a write on the isolated side must not commit: {outcome:?}");

    let majority_node = (leader + 1) % 3;
    let committed = write_eventually(&cluster, majority_node, "majority", Duration::from_secs(10)).await;
    assert!(committed.is_some(), "the majority side must elect a leader and commit");
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, Some(leader), "the isolated node cannot stay the leader the others follow");

    cluster.proxy().heal();
    let healed = write_eventually(&cluster, leader, "healed", Duration::from_secs(10)).await;
    assert!(healed.is_some(), "after the heal, writes through the old leader succeed (via redirects)");
    let stats = cluster.proxy().stats();
    // A two-way cut closes the pair's connections (and drops any bytes).
    assert!(stats.connections_cut > 0 || stats.bytes_dropped > 0, "the partition cut links: {stats:?}");
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
