//! The supervisor and the proxy with the real system under test: a
//! three-node faultline-node cluster behind the proxy elects a leader,
//! serves writes through the proxied client address, elects a new leader
//! when the old one is partitioned away, and survives kill + restart.
//! Needs the faultline-node binary (built by `cargo test --workspace`, or
//! named by FAULTLINE_NODE_BIN).
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::cluster::{Cluster, ClusterConfig};
use faultline::systems::faultline_node::{find_node_binary, FaultlineNodeDb};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LEADER_WAIT_MS: u64 = 15_000;

async fn request(addr: SocketAddr, line: &str) -> Option<serde_json::Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(format!("{line}\n").as_bytes()).await.ok()?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).await.ok()?;
        serde_json::from_str(&reply).ok()
    };
    tokio::time::timeout(Duration::from_secs(3), exchange).await.ok().flatten()
}

/// Poll `cluster.leader()` until it names a node other than `not`.
async fn await_leader(cluster: &Cluster, not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
    while Instant::now() < deadline {
        if let Some(leader) = cluster.leader().await.filter(|l| Some(*l) != not) {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader other than {not:?} within {LEADER_WAIT_MS} ms");
}

/// Put through the proxied client address of the leader, retrying while
/// leadership settles (bounded).
async fn put(cluster: &Cluster, key: &str, value: &str) -> bool {
    for attempt in 0..50 {
        let leader = await_leader(cluster, None).await;
        let line = format!(r#"{{"id":{attempt},"op":"put","key":"{key}","value":"{value}"}}"#);
        if let Some(reply) = request(cluster.client_addr(leader), &line).await {
            if reply["ok"] == true {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_the_proxy_survive_a_partition_and_a_restart() {
    let binary = find_node_binary().expect("faultline-node is built");
    let dir = std::env::temp_dir().join(format!("faultline-cluster-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ClusterConfig::new(3, dir, 11);
    let cluster = Cluster::start(Arc::new(FaultlineNodeDb::new(binary)), config).await.unwrap();

    let first = await_leader(&cluster, None).await;
    assert!(put(&cluster, "a", "1").await, "a write through the proxy commits");

    let others: BTreeSet<usize> = (0..3).filter(|n| *n != first).collect();
    let mut grudge = faultline::proxy::Grudge::new();
    grudge.insert(first, others.clone());
    for other in &others {
        grudge.insert(*other, BTreeSet::from([first]));
    }
    cluster.proxy().partition(&grudge);
    let second = await_leader(&cluster, Some(first)).await;
    assert!(others.contains(&second));
    assert!(cluster.proxy().stats().bytes_dropped > 0 || cluster.proxy().stats().connections_cut > 0);

    cluster.proxy().heal();
    cluster.kill(second).await.unwrap();
    cluster.restart(second).await.unwrap();
    assert!(put(&cluster, "b", "2").await, "the cluster serves writes after heal and restart");
    let leader = await_leader(&cluster, None).await;
    let reply = request(cluster.client_addr(leader), r#"{"id":99,"op":"get","key":"a"}"#).await;
    assert_eq!(reply.map(|r| r["value"].clone()), Some(serde_json::json!("1")));
    assert!(cluster.unexpected_exits().is_empty(), "{:?}", cluster.unexpected_exits());
    cluster.shutdown().await;
}

/// A node that cannot start again after a kill (its WAL directory replaced
/// by a file) is remembered as a failed restart, which fails the run's
/// node-exits check: a crash at startup cannot hide behind the nemesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_comes_back_fails_the_run() {
    let binary = find_node_binary().expect("faultline-node is built");
    let dir = std::env::temp_dir().join(format!("faultline-cluster-failed-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = ClusterConfig::new(3, dir.clone(), 12);
    config.ready_timeout_ms = 3_000;
    let cluster = Cluster::start(Arc::new(FaultlineNodeDb::new(binary)), config).await.unwrap();
    cluster.kill(1).await.unwrap();
    let wal = cluster.node_env(1).data_dir.join("wal");
    std::fs::remove_dir_all(&wal).unwrap();
    std::fs::write(&wal, b"not a directory").unwrap();
    assert!(cluster.restart_all(&[1]).await.is_err(), "a node without its WAL dir must not start");
    let failed = cluster.failed_restarts();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].node, 1);
    let named = faultline::verdict::NodeExitsCheck::check(&cluster.unexpected_exits(), &failed);
    assert_eq!(named.verdict, faultline_checkers::Verdict::Invalid);
    assert!(named.reason_text().unwrap().contains("n2 did not come back"), "{named:?}");
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
