//! etcd membership changes on a real 3-member etcd cluster with one spare
//! slot, behind the fault proxy: a key written at the start; the spare
//! joins as a learner, is promoted, and the cluster reports four voters;
//! node 0 is removed and killed, the cluster reports the other three; the
//! new member serves the key; nothing is left running.
//!
//! Skipped with a message when etcd is not installed, unless
//! `FAULTLINE_REQUIRE_ADAPTERS=1` (CI), where a missing etcd fails.
mod etcd_support;
use etcd_support::{etcd_or_skip, test_dir};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::cluster::{Cluster, ClusterConfig, Members, NodeState};
use faultline::systems::etcd::EtcdDb;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `mkey` and `survives`, base64 as the v3 gateway wants them.
const KEY_BASE64: &str = "bWtleQ==";
const VALUE_BASE64: &str = "c3Vydml2ZXM=";
/// Bound on each wait in this test.
const WAIT_MS: u64 = 15_000;
/// Bound on one HTTP exchange.
const REQUEST_TIMEOUT_MS: u64 = 3_000;
/// Largest response read.
const RESPONSE_BYTES_MAX: u64 = 1024 * 1024;

/// The process is gone (or a zombie about to be reaped by init).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// One POST to etcd's v3 gateway (a fresh connection, closed after), its
/// JSON body if it answered 200 in time.
async fn post(addr: SocketAddr, path: &str, body: &str) -> Option<Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(format!("{head}{body}").as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.take(RESPONSE_BYTES_MAX).read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        // The body is small: one JSON object, whether or not it came chunked.
        let json = &body[body.find('{')?..=body.rfind('}')?];
        serde_json::from_str(json).ok()
    };
    tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), exchange).await.ok().flatten()
}

/// Poll `probe` until it gives a value, for at most `WAIT_MS`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while Instant::now() < deadline {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {WAIT_MS} ms");
}

async fn reported_as(cluster: &Cluster, expected: &Members) -> Members {
    let reported = eventually("the reported membership", || async {
        cluster.reported_members().await.filter(|members| members == expected)
    });
    reported.await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_takes_in_a_learner_promotes_it_and_removes_a_member() {
    let Some(binary) = etcd_or_skip("etcd membership test") else { return };
    let dir = test_dir("etcd-membership");
    let db = EtcdDb { election_timeout_ms: 500, heartbeat_interval_ms: 50, ..EtcdDb::new(binary) };
    let config = ClusterConfig { spares: 1, ready_timeout_ms: 15_000, ..ClusterConfig::new(3, dir.clone(), 11) };
    let cluster = Cluster::start(Arc::new(db), config).await.unwrap_or_else(|e| panic!("etcd start: {e}"));
    assert_eq!((cluster.slots(), cluster.members()), (4, vec![0, 1, 2]));
    assert_eq!(cluster.node_state(3), NodeState::Killed, "the spare is not started");
    let initial = Members { voters: vec![0, 1, 2], learners: vec![] };
    reported_as(&cluster, &initial).await;

    let put = format!(r#"{{"key":"{KEY_BASE64}","value":"{VALUE_BASE64}"}}"#);
    eventually("the first put", || post(cluster.client_addr(0), "/v3/kv/put", &put)).await;

    let added = cluster.add_learner(3).await.unwrap_or_else(|e| panic!("add learner 3: {e}"));
    eprintln!("etcd membership: {added:?}");
    assert_eq!(cluster.members(), vec![0, 1, 2, 3]);
    assert_eq!(cluster.node_state(3), NodeState::Running);
    let promoted = cluster.promote_member(3).await.unwrap_or_else(|e| panic!("promote 3: {e}"));
    eprintln!("etcd membership: {promoted:?}");
    reported_as(&cluster, &Members { voters: vec![0, 1, 2, 3], learners: vec![] }).await;

    let pids: Vec<u32> = (0..4).filter_map(|node| cluster.pid(node)).collect();
    assert_eq!(pids.len(), 4);
    let removed = cluster.remove_member(0).await.unwrap_or_else(|e| panic!("remove 0: {e}"));
    eprintln!("etcd membership: {removed:?}");
    assert_eq!(cluster.members(), vec![1, 2, 3]);
    assert_eq!(cluster.node_state(0), NodeState::Killed);
    assert!(dead(pids[0]), "the removed member still runs");
    reported_as(&cluster, &Members { voters: vec![1, 2, 3], learners: vec![] }).await;

    let range = format!(r#"{{"key":"{KEY_BASE64}"}}"#);
    let read = eventually("a read through node 3", || async {
        post(cluster.client_addr(3), "/v3/kv/range", &range).await.filter(|reply| reply["kvs"].is_array())
    });
    let reply = read.await;
    assert_eq!(reply["kvs"][0]["value"], Value::String(VALUE_BASE64.into()), "{reply}");

    // A removed etcd member exits by itself (status 0) as soon as it
    // applies its removal, which may be before the harness kills it.
    let exits = cluster.unexpected_exits();
    eprintln!("etcd membership: exits nobody asked for: {exits:?}");
    assert!(exits.iter().all(|exit| exit.node == 0 && exit.code == Some(0)), "{exits:?}");
    assert!(cluster.failed_restarts().is_empty(), "{:?}", cluster.failed_restarts());

    cluster.shutdown().await;
    for pid in pids {
        assert!(dead(pid), "etcd pid {pid} survived shutdown");
    }
    let leftovers = std::process::Command::new("pgrep").args(["-f", &dir.display().to_string()]).output().unwrap();
    assert!(leftovers.stdout.is_empty(), "etcd left running: {}", String::from_utf8_lossy(&leftovers.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `faultline test --nemesis membership` on etcd: members join as
/// learners, are promoted and leave while clients run, and etcd stays
/// linearizable.
#[test]
fn etcd_stays_valid_while_members_join_and_leave() {
    if etcd_or_skip("etcd membership test").is_none() {
        return;
    }
    let store = test_dir("etcd-membership-run");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/etcd.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--spec", spec, "--nemesis", "membership", "--time-limit", "20s", "--seed", "1"])
        .args(["--name", "t", "--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    let run_dir = store.join("t/latest");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "valid", "{:#}", results["reasons"]);
    assert_eq!(output.status.code(), Some(0));
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let changed = history
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["process"] == "nemesis" && event["type"] == "ok")
        .filter(|event| ["added", "removed", "replaced"].iter().any(|change| event["value"].get(change).is_some()))
        .count();
    assert!(changed >= 1, "no member joined or left: {}", run_dir.display());
    let _ = std::fs::remove_dir_all(&store);
}
